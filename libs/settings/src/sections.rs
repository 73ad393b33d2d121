//! Configuration sections shared by several services. A service's `Config` embeds them under
//! the conventional keys `bus`, `store`, `auth` and `telemetry`; problem messages use those keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Secret, SettingsError};

/// Shortest HMAC secret accepted; mirrors `auth::MIN_HMAC_SECRET_BYTES` (RFC 7518 §3.2) so
/// `--check-config` catches a weak secret before the verifier refuses it.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Largest token leeway accepted; mirrors `auth::MAX_LEEWAY`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The message bus (NATS) connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// NATS server URL(s), e.g. `nats://nats:4222`, or several servers of one cluster separated
    /// by commas (`nats://n1:4222,nats://n2:4222`; a TOML array is joined the same way). The
    /// client connects to one of them and fails over to another when it is lost. Unset: the
    /// embedded in-memory bus, which only works when every component runs in one process (the
    /// standalone binary, tests).
    #[serde(deserialize_with = "one_or_many_urls")]
    pub nats_url: Option<String>,
    /// First segment of every subject this deployment uses. Change it to run two deployments
    /// on one NATS cluster without crosstalk.
    pub subject_prefix: String,
    /// How long to wait for the first connection at startup before failing. Raise it when NATS
    /// starts slowly next to the service (compose, cold clusters).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a request/reply (e.g. a node command) waits for its answer. Raise it for slow
    /// responders; lower it to fail fast.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How many NATS servers keep a copy of each JetStream stream this service creates (1 to
    /// 5). 1 on a single server; 3 on a cluster of three or more, so a stream's history and
    /// acknowledged messages survive the loss of a node.
    pub stream_replicas: usize,
}

/// Most replicas JetStream allows per stream.
pub const MAX_STREAM_REPLICAS: usize = 5;

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            nats_url: None,
            subject_prefix: "sb".to_owned(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            stream_replicas: 1,
        }
    }
}

impl BusConfig {
    /// Appends every problem with this section to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        check_prefix("bus.subject_prefix", &self.subject_prefix, problems);
        check_positive("bus.connect_timeout", self.connect_timeout, problems);
        check_positive("bus.request_timeout", self.request_timeout, problems);
        if !(1..=MAX_STREAM_REPLICAS).contains(&self.stream_replicas) {
            problems.push(format!(
                "bus.stream_replicas must be from 1 to {MAX_STREAM_REPLICAS}"
            ));
        }
        check_not_blank("bus.nats_url", self.nats_url.as_deref(), problems);
        if let Some(urls) = self
            .nats_url
            .as_deref()
            .filter(|urls| !urls.trim().is_empty())
        {
            check_nats_urls("bus.nats_url", urls, problems);
        }
    }

    /// Returns the NATS server URLs of `nats_url`, split at commas and trimmed; empty when unset.
    pub fn nats_urls(&self) -> Vec<&str> {
        self.nats_url
            .as_deref()
            .map(|urls| urls.split(',').map(str::trim).collect())
            .unwrap_or_default()
    }

    /// Appends a problem when `nats_url` is unset: a service running as its own process
    /// (`binary`) cannot use the in-memory bus, which only reaches its own process.
    pub fn require_url(&self, binary: &str, problems: &mut Vec<String>) {
        if self.nats_url.is_none() {
            problems.push(format!(
                "bus.nats_url is required for {binary} (set SWITCHBOARD__BUS__NATS_URL)"
            ));
        }
    }
}

/// Accepts `nats_url` as one string (possibly a comma-separated list) or as an array of
/// strings, which is joined with commas so every layer ends up with the same form.
fn one_or_many_urls<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(
        Option::<OneOrMany>::deserialize(deserializer)?.map(|urls| match urls {
            OneOrMany::One(url) => url,
            OneOrMany::Many(urls) => urls.join(","),
        }),
    )
}

/// Schemes the NATS client speaks.
const NATS_SCHEMES: [&str; 4] = ["nats", "tls", "ws", "wss"];

/// Appends one problem per entry of the comma-separated `urls` that is not a NATS server
/// address (`[scheme://][user[:pass]@]host[:port]`), naming the entry.
fn check_nats_urls(key: &str, urls: &str, problems: &mut Vec<String>) {
    for url in urls.split(',').map(str::trim) {
        if let Err(reason) = nats_url_problem(url) {
            problems.push(format!(
                "{key}: {url:?} is not a NATS server URL ({reason})"
            ));
        }
    }
}

fn nats_url_problem(url: &str) -> Result<(), &'static str> {
    if url.is_empty() {
        return Err("empty entry in the comma-separated list");
    }
    if url.contains(char::is_whitespace) {
        return Err("contains whitespace");
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) => {
            if !NATS_SCHEMES.contains(&scheme) {
                return Err("scheme must be nats://, tls://, ws:// or wss://");
            }
            rest
        }
        None => url,
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:4222`.
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err("unclosed '[' in the host"),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("no host");
    }
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |port| port == 0)
    {
        return Err("the port must be a number from 1 to 65535");
    }
    Ok(())
}

/// The metadata store (Redis) connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Redis URL, e.g. `redis://redis:6379`, or a Redis behind Sentinel:
    /// `redis+sentinel://[user:pass@]s1:26379,s2:26379,s3:26379/<master_name>[?db=N]` (see
    /// [`SentinelUrl`](crate::SentinelUrl)). Unset: an in-memory store, which only works when
    /// every component runs in one process (the standalone binary, tests).
    pub redis_url: Option<String>,
    /// Prefix of every key this deployment writes. Change it to share one Redis between
    /// deployments.
    pub key_prefix: String,
    /// How long one Redis command may take before it counts as failed. Raise it for a
    /// distant or overloaded Redis.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            redis_url: None,
            key_prefix: "sb".to_owned(),
            response_timeout: Duration::from_secs(2),
        }
    }
}

impl StoreConfig {
    /// Appends every problem with this section to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        check_prefix("store.key_prefix", &self.key_prefix, problems);
        check_positive("store.response_timeout", self.response_timeout, problems);
        check_not_blank("store.redis_url", self.redis_url.as_deref(), problems);
        if let Some(url) = self.redis_url.as_deref()
            && crate::SentinelUrl::is_sentinel_url(url)
            && let Err(error) = crate::SentinelUrl::parse(url)
        {
            problems.push(format!("store.redis_url: {error}"));
        }
    }

    /// Appends a problem when `redis_url` is unset: a service running as its own process
    /// (`binary`) cannot share the in-memory store with the rest of the cluster.
    pub fn require_url(&self, binary: &str, problems: &mut Vec<String>) {
        if self.redis_url.is_none() {
            problems.push(format!(
                "store.redis_url is required for {binary} (set SWITCHBOARD__STORE__REDIS_URL)"
            ));
        }
    }
}

/// Token verification keys and the publish API key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Current HS256 secret (at least 32 bytes). Set it when your token issuer shares a secret
    /// with Switchboard.
    pub hmac_secret: Option<Secret>,
    /// The secret being rotated out; tokens signed with it stay valid until you unset it.
    /// Set it to the old `hmac_secret` when rotating, remove it once old tokens have expired.
    pub previous_hmac_secret: Option<Secret>,
    /// RS256/ES256 public key as PEM text. Set it when tokens are signed with a private key.
    pub public_key_pem: Option<String>,
    /// File holding a PEM public key; read at startup. May be set together with
    /// `public_key_pem` (both are accepted, e.g. during a key rotation).
    pub public_key_file: Option<PathBuf>,
    /// Key required by `POST /api/ws/publish`. Unset: that endpoint is disabled.
    pub api_key: Option<Secret>,
    /// Clock-skew allowance on token expiry. Zero enforces `exp` exactly; raise it (a few
    /// seconds) only if issuer and gateway clocks drift.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The issuer (`iss`) every token must name. Set it when your identity provider also
    /// issues tokens for other purposes with the same keys; unset, `iss` is not checked.
    pub issuer: Option<String>,
    /// The audience (`aud`) every token must name (alone or in an array). Set it when the
    /// identity provider serves several services; unset, a token carrying any `aud` is refused.
    pub audience: Option<String>,
    /// URL of a JSON Web Key Set (`https://…/.well-known/jwks.json`, `http://…` for an
    /// in-cluster provider, or `file:///path` for a set mounted from a Secret). Tokens are then
    /// verified by the key their header's `kid` names; the set is fetched at start (a failure
    /// stops the start), every `jwks_refresh_interval`, and when a token names an unknown `kid`
    /// (at most once per 10 s). May be combined with the static keys above.
    pub jwks_url: Option<String>,
    /// How often the key set is fetched again; unset: every 5 minutes. Lower it if your
    /// identity provider rotates keys without publishing the next one ahead of time.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh_interval: Option<Duration>,
}

/// How often a JWKS is fetched again when `auth.jwks_refresh_interval` is unset.
pub const DEFAULT_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

impl AuthConfig {
    /// Returns the HMAC secrets in verification order: current first, then previous.
    pub fn hmac_secrets(&self) -> Vec<Vec<u8>> {
        [&self.hmac_secret, &self.previous_hmac_secret]
            .into_iter()
            .flatten()
            .map(|secret| secret.expose().as_bytes().to_vec())
            .collect()
    }

    /// Returns the public keys as PEM texts: `public_key_pem`, then the contents of
    /// `public_key_file`. Reads the file, so call it at startup, not on an async hot path.
    ///
    /// # Errors
    ///
    /// [`SettingsError::File`] if `public_key_file` cannot be read.
    pub fn public_keys_pem(&self) -> Result<Vec<String>, SettingsError> {
        let mut pems: Vec<String> = self.public_key_pem.iter().cloned().collect();
        if let Some(path) = &self.public_key_file {
            let pem = std::fs::read_to_string(path).map_err(|source| SettingsError::File {
                path: path.clone(),
                source,
            })?;
            pems.push(pem);
        }
        Ok(pems)
    }

    /// Reports whether any token verification key (or a key set) is configured.
    pub fn has_verification_key(&self) -> bool {
        self.hmac_secret.is_some()
            || self.public_key_pem.is_some()
            || self.public_key_file.is_some()
            || self.jwks_url.is_some()
    }

    /// Returns `jwks_refresh_interval`, or its default.
    pub fn jwks_refresh_interval(&self) -> Duration {
        self.jwks_refresh_interval
            .unwrap_or(DEFAULT_JWKS_REFRESH_INTERVAL)
    }

    /// Appends every problem with this section to `problems`. Having no key at all is not a
    /// problem here: whether a service needs one is that service's call.
    pub fn validate(&self, problems: &mut Vec<String>) {
        for (key, secret) in [
            ("auth.hmac_secret", &self.hmac_secret),
            ("auth.previous_hmac_secret", &self.previous_hmac_secret),
        ] {
            if let Some(secret) = secret
                && secret.expose().len() < MIN_HMAC_SECRET_BYTES
            {
                problems.push(format!(
                    "{key} must be at least {MIN_HMAC_SECRET_BYTES} bytes"
                ));
            }
        }
        if self.previous_hmac_secret.is_some() && self.hmac_secret.is_none() {
            problems.push("auth.previous_hmac_secret is set without auth.hmac_secret".into());
        }
        if let Some(pem) = &self.public_key_pem
            && !pem.contains("-----BEGIN ")
        {
            problems.push("auth.public_key_pem is not PEM text".into());
        }
        if self
            .api_key
            .as_ref()
            .is_some_and(|key| key.expose().is_empty())
        {
            problems.push("auth.api_key must not be empty".into());
        }
        for (key, value) in [
            ("auth.issuer", &self.issuer),
            ("auth.audience", &self.audience),
        ] {
            if value
                .as_deref()
                .is_some_and(|value| value.trim().is_empty())
            {
                problems.push(format!("{key} must not be empty when set"));
            }
        }
        if let Some(url) = &self.jwks_url {
            let lower = url.to_ascii_lowercase();
            if !["https://", "http://", "file://"]
                .iter()
                .any(|scheme| lower.starts_with(scheme))
            {
                problems.push("auth.jwks_url must start with https://, http:// or file://".into());
            }
        }
        if self
            .jwks_refresh_interval
            .is_some_and(|interval| interval < Duration::from_secs(1))
        {
            problems.push("auth.jwks_refresh_interval must be at least 1s".into());
        }
        if self.leeway > MAX_LEEWAY {
            problems.push(format!(
                "auth.leeway must be at most {}s",
                MAX_LEEWAY.as_secs()
            ));
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable, coloured.
    Pretty,
}

/// Logging, tracing and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `auto`, `json` or `pretty`. Force `json` when a TTY-attached container still ships
    /// logs to a collector.
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax (`info,switchboard_gateway=debug`). Unset: `RUST_LOG`,
    /// else `info`.
    pub log_filter: Option<String>,
    /// OTLP/gRPC collector endpoint (`http://otel-collector:4317`). Unset: no trace export.
    pub otlp_endpoint: Option<String>,
    /// Per-export timeout towards the collector; also bounds the final flush at shutdown.
    /// Raise it for a distant collector; keep it below the shutdown grace period.
    #[serde(with = "humantime_serde")]
    pub otlp_timeout: Duration,
    /// Address of the admin HTTP server (`/metrics`, `/healthz`, `/readyz`), e.g.
    /// `0.0.0.0:9090`. Unset: no admin server.
    pub admin_listen: Option<SocketAddr>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Auto,
            log_filter: None,
            otlp_endpoint: None,
            otlp_timeout: Duration::from_secs(3),
            admin_listen: None,
        }
    }
}

impl TelemetryConfig {
    /// Appends every problem with this section to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            problems.push("telemetry.otlp_endpoint must start with http:// or https://".into());
        }
        check_positive("telemetry.otlp_timeout", self.otlp_timeout, problems);
        check_not_blank("telemetry.log_filter", self.log_filter.as_deref(), problems);
    }
}

fn check_positive(key: &str, value: Duration, problems: &mut Vec<String>) {
    if value.is_zero() {
        problems.push(format!("{key} must be greater than zero"));
    }
}

fn check_not_blank(key: &str, value: Option<&str>, problems: &mut Vec<String>) {
    if value.is_some_and(|value| value.trim().is_empty()) {
        problems.push(format!("{key} must not be blank when set"));
    }
}

/// A prefix becomes part of NATS subjects and Redis keys, so it may not be empty nor contain
/// whitespace or NATS wildcards.
fn check_prefix(key: &str, prefix: &str, problems: &mut Vec<String>) {
    let well_formed = !prefix.is_empty()
        && !prefix.starts_with('.')
        && !prefix.ends_with('.')
        && !prefix.contains(|c: char| c.is_whitespace() || c == '*' || c == '>');
    if !well_formed {
        problems.push(format!(
            "{key} must be non-empty, without whitespace, '*', '>' or leading/trailing '.'"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn problems_of(validate: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
        let mut problems = Vec::new();
        validate(&mut problems);
        problems
    }

    #[test]
    fn defaults_are_valid() {
        assert!(problems_of(|p| BusConfig::default().validate(p)).is_empty());
        assert!(problems_of(|p| StoreConfig::default().validate(p)).is_empty());
        assert!(problems_of(|p| AuthConfig::default().validate(p)).is_empty());
        assert!(problems_of(|p| TelemetryConfig::default().validate(p)).is_empty());
    }

    #[test]
    fn a_sentinel_redis_url_is_checked_and_a_bad_one_named() {
        let store = |url: &str| StoreConfig {
            redis_url: Some(url.to_owned()),
            ..StoreConfig::default()
        };
        let good = store("redis+sentinel://s1:26379,s2:26379,s3:26379/mymaster?db=1");
        assert!(problems_of(|p| good.validate(p)).is_empty());
        let plain = store("redis://redis:6379");
        assert!(problems_of(|p| plain.validate(p)).is_empty());
        let no_master = store("redis+sentinel://s1:26379,s2:26379");
        assert_eq!(
            problems_of(|p| no_master.validate(p)),
            vec![
                "store.redis_url: no master name: expected redis+sentinel://hosts/<master_name>"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let bus = BusConfig {
            subject_prefix: "a b".into(),
            connect_timeout: Duration::ZERO,
            ..BusConfig::default()
        };
        assert_eq!(problems_of(|p| bus.validate(p)).len(), 2);
        let auth = AuthConfig {
            previous_hmac_secret: Some(Secret::new("short")),
            public_key_pem: Some("not pem".into()),
            leeway: Duration::from_secs(3600),
            ..AuthConfig::default()
        };
        let problems = problems_of(|p| auth.validate(p));
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("auth.previous_hmac_secret"));
        let telemetry = TelemetryConfig {
            otlp_endpoint: Some("collector:4317".into()),
            ..TelemetryConfig::default()
        };
        assert_eq!(problems_of(|p| telemetry.validate(p)).len(), 1);
        assert!(matches!(
            SettingsError::from_problems(problems),
            Err(SettingsError::Invalid(listed)) if listed.len() == 4
        ));
        assert!(SettingsError::from_problems(Vec::new()).is_ok());
    }

    #[test]
    fn nats_url_takes_a_comma_separated_list_and_names_a_bad_entry() {
        let bus = |urls: &str| BusConfig {
            nats_url: Some(urls.to_owned()),
            ..BusConfig::default()
        };
        for good in [
            "nats://n1:4222",
            "nats://127.0.0.1:4222, nats://127.0.0.1:4223 ,tls://n3:4222",
            "n1:4222,n2",
            "nats://user:pass@n1:4222,ws://[::1]:8080",
        ] {
            assert!(problems_of(|p| bus(good).validate(p)).is_empty(), "{good}");
        }
        assert_eq!(bus(" nats://a:1 , b:2").nats_urls(), ["nats://a:1", "b:2"]);
        let problems = problems_of(|p| bus("nats://a:1,http://b:2,,nats://c:99999").validate(p));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("\"http://b:2\""), "{problems:?}");
        assert!(problems[1].contains("empty entry"), "{problems:?}");
        assert!(problems[2].contains("\"nats://c:99999\""), "{problems:?}");
        assert_eq!(problems_of(|p| bus("nats://:4222").validate(p)).len(), 1);
        for (replicas, problems) in [(0, 1), (1, 0), (3, 0), (5, 0), (6, 1)] {
            let bus = BusConfig {
                stream_replicas: replicas,
                ..BusConfig::default()
            };
            assert_eq!(
                problems_of(|p| bus.validate(p)).len(),
                problems,
                "{replicas}"
            );
        }
    }

    #[test]
    fn auth_keys_come_out_in_order() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"-----BEGIN PUBLIC KEY-----\nfile\n")
            .unwrap();
        let auth = AuthConfig {
            hmac_secret: Some(Secret::new("current")),
            previous_hmac_secret: Some(Secret::new("previous")),
            public_key_pem: Some("inline".into()),
            public_key_file: Some(file.path().to_path_buf()),
            ..AuthConfig::default()
        };
        assert_eq!(
            auth.hmac_secrets(),
            [b"current".to_vec(), b"previous".to_vec()]
        );
        let pems = auth.public_keys_pem().unwrap();
        assert_eq!(pems[0], "inline");
        assert!(pems[1].contains("file"));
        assert!(auth.has_verification_key());
        let missing = AuthConfig {
            public_key_file: Some("/no/such/key.pem".into()),
            ..AuthConfig::default()
        };
        assert!(matches!(
            missing.public_keys_pem(),
            Err(SettingsError::File { .. })
        ));
    }
}
