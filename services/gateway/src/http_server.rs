//! The gateway's HTTP front door: the shared accept loop of `http_front` with the limits of
//! `[gateway]` (header-read timeout, connection cap from accept on, probe headroom).

use http_front::{ConnectionCap, FrontDoor, Limits, ServerTls, TlsMetrics};
use tracing::warn;

use crate::config::GatewayConfig;
use crate::metrics::Metrics;

/// The front door `config` asks for, and where its connection cap came from: `None` when
/// `max_connections` was set, the file limit it was derived from otherwise. With `tls`, it
/// terminates TLS and reloads the pair on SIGHUP (counted as `switchboard_gateway_tls_*`).
pub(crate) fn front_door(
    config: &GatewayConfig,
    metrics: &Metrics,
    tls: Option<ServerTls>,
) -> (FrontDoor, Option<ConnectionCap>) {
    let derived = config
        .max_connections
        .is_none()
        .then(|| ConnectionCap::derive(config.probe_headroom));
    let limits = Limits {
        header_read_timeout: config.header_read_timeout,
        max_connections: config
            .max_connections
            .or(derived.map(|cap| cap.max_connections))
            .unwrap_or(1),
        probe_headroom: config.probe_headroom,
    };
    let mut door = FrontDoor::new(limits).count_refused(metrics.http_connections_refused.clone());
    if let Some(tls) = tls {
        let tls = match TlsMetrics::register(&metrics.registry, "gateway") {
            Ok(tls_metrics) => tls.with_metrics(tls_metrics),
            // Only a second front door on the same registry gets here; serve without counting.
            Err(error) => {
                warn!(error = %error, "tls metrics not registered");
                tls
            }
        };
        door = door.tls(tls);
    }
    (door, derived)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    #[test]
    fn an_unset_cap_is_derived_from_the_file_limit_and_a_set_one_wins() {
        let defaults: Config = settings::load(None, &HashMap::new()).expect("defaults load");
        assert_eq!(defaults.gateway.max_connections, None);
        let (door, derived) = front_door(&defaults.gateway, &Metrics::new(), None);
        let derived = derived.expect("an unset cap is derived");
        assert_eq!(door.limits().max_connections, derived.max_connections);
        assert!(
            derived.to_string().starts_with("RLIMIT_NOFILE"),
            "{derived}"
        );

        let env = HashMap::from([(
            "SWITCHBOARD__GATEWAY__MAX_CONNECTIONS".to_owned(),
            "500".to_owned(),
        )]);
        let set: Config = settings::load(None, &env).expect("the environment loads");
        let (door, derived) = front_door(&set.gateway, &Metrics::new(), None);
        assert_eq!((door.limits().max_connections, derived), (500, None));
    }

    #[test]
    fn tls_cert_and_key_are_set_together_and_must_load() {
        let mut gateway = Config::default().gateway;
        assert!(matches!(gateway.server_tls(), Ok(None)));
        gateway.tls_cert = Some("/nonexistent/cert.pem".into());
        assert_eq!(
            gateway.server_tls().err().as_deref(),
            Some("gateway.tls_cert and gateway.tls_key must be set together")
        );
        gateway.tls_key = Some("/nonexistent/key.pem".into());
        let problem = gateway
            .server_tls()
            .expect_err("an unreadable pair is refused");
        assert!(
            problem.starts_with(
                "gateway.tls_cert/tls_key: cannot read certificate file /nonexistent/cert.pem"
            ),
            "{problem}"
        );
    }
}
