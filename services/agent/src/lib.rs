//! `switchboard-agent`: the node agent for hosts that just report. It runs
//! [`client::agent::Agent`] with the host's real figures as `current_data` — CPU share from
//! `/proc/stat` deltas, memory from `/proc/meminfo`, load from `/proc/loadavg`, uptime from
//! `/proc/uptime`, disk use of the mounts in `agent.storage_mounts` from `statvfs` — so the
//! dashboard shows something true.
//!
//! Contract: [`run`] validates the configuration, starts sampling (one blocking read of
//! `/proc` per [`SAMPLE_PERIOD`], off the async threads) and the agent, then serves until
//! `shutdown` is cancelled or the gateway refuses the agent for good.
//!
//! Shutdown order: sampling stops; the agent sends its final state (operation `stop`) and
//! closes the connection with 1000; both bounded by `agent.shutdown_grace`.
#![warn(missing_docs)]

pub mod config;
mod error;
pub mod host;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use client::agent::Agent;
use client::{ConnectionState, DisconnectReason, ReconnectPolicy};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::Config;
pub use error::{RunError, StartError};
use host::Sampler;

/// How often `/proc` is read. CPU share is measured over this period, like `top`'s default
/// refresh; reports pick up the newest sample whatever their interval.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Where the host figures come from.
const PROC_ROOT: &str = "/proc";

/// Keys whose environment value is a comma-separated list.
pub const LIST_KEYS: &[&str] = &["agent.storage_mounts"];

/// First delay window of the reconnect backoff (seed 003: 1 s doubling).
const RECONNECT_INITIAL_DELAY: Duration = Duration::from_secs(1);

/// Runs the agent until `shutdown` is cancelled (then stops cleanly) or the gateway refuses it.
///
/// # Errors
/// [`RunError::Start`] for invalid configuration or no usable node id,
/// [`RunError::Disconnected`] when the client stopped for good (token refused, …).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    config.validate().map_err(StartError::Config)?;
    let settings = config.agent.clone();
    let configured_node_id = settings.node_id.clone();
    let storage_mounts = settings.storage_mounts.clone();
    let (node_id, first_sample, sampler) = tokio::task::spawn_blocking(move || {
        let mut sampler = Sampler::new(PROC_ROOT).with_storage_mounts(storage_mounts);
        let node_id = configured_node_id.or_else(|| host::hostname_node_id(Path::new(PROC_ROOT)));
        let first_sample = sampler.sample();
        (node_id, first_sample, sampler)
    })
    .await
    .map_err(|_| StartError::Sampling)?;
    let node_id = node_id.ok_or(StartError::NodeId)?;
    let latest = Arc::new(Mutex::new(first_sample));
    let provided = latest.clone();
    let token = match (&settings.token, &config.auth.hmac_secret) {
        (Some(token), _) if !token.expose().trim().is_empty() => token.expose().to_owned(),
        (_, Some(secret)) => {
            info!(%node_id, "no agent.token: signing a node token with auth.hmac_secret");
            self_signed_token(secret.expose().as_bytes(), &node_id).map_err(StartError::Token)?
        }
        // validate() has refused a configuration with neither.
        (_, None) => {
            return Err(StartError::Config(vec!["agent.token is required".to_owned()]).into());
        }
    };
    let mut builder = Agent::builder(settings.gateway_url.clone(), token);
    if let Some(ca_file) = &settings.tls_ca_file {
        builder = builder.tls_ca_file(ca_file.clone());
    }
    let agent = builder
        .node_id(node_id.clone())
        .layer(settings.layer.clone())
        .update_interval(settings.update_interval)
        .heartbeat_timeout(settings.heartbeat_timeout)
        .reconnect(ReconnectPolicy::exponential(
            RECONNECT_INITIAL_DELAY,
            settings.reconnect_max_delay,
        ))
        .state_provider(move || {
            provided
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()
        })
        .start()
        .map_err(StartError::Agent)?;
    info!(%node_id, url = %settings.gateway_url, "agent started");

    let sampling_shutdown = shutdown.child_token();
    let sampling = tokio::spawn(sample_periodically(
        sampler,
        latest,
        sampling_shutdown.clone(),
    ));
    let mut state_rx = agent.client().watch_state();
    let outcome = tokio::select! {
        () = shutdown.cancelled() => Ok(()),
        reason = wait_until_disconnected(&mut state_rx) => Err(RunError::Disconnected(reason)),
    };
    sampling_shutdown.cancel();
    let _ = sampling.await;
    if tokio::time::timeout(settings.shutdown_grace, agent.stop())
        .await
        .is_err()
    {
        warn!(grace = ?settings.shutdown_grace, "final state and close cut off by the grace period");
    }
    outcome
}

/// How long a self-signed node token is valid. When it expires the gateway closes the
/// connection (4402), the agent exits 1, and its supervisor (compose, Kubernetes, the local
/// cluster script) restarts it with a fresh token.
const SELF_SIGNED_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// A node token for `node_id` (role `node`, no rooms), signed with the cluster's HS256 secret.
fn self_signed_token(secret: &[u8], node_id: &str) -> Result<String, auth::IssueError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let claims = auth::Claims {
        sub: node_id.to_owned(),
        exp: (now + SELF_SIGNED_TOKEN_LIFETIME).as_secs(),
        iat: Some(now.as_secs()),
        rooms: Vec::new(),
        publish: Vec::new(),
        role: auth::Role::Node,
        node_id: Some(node_id.to_owned()),
    };
    auth::Issuer::hs256(secret).issue(&claims)
}

async fn wait_until_disconnected(
    state_rx: &mut watch::Receiver<ConnectionState>,
) -> DisconnectReason {
    match state_rx.wait_for(ConnectionState::is_disconnected).await {
        Ok(state) => match &*state {
            ConnectionState::Disconnected { reason } => reason.clone(),
            _ => DisconnectReason::Closed,
        },
        Err(_) => DisconnectReason::Closed,
    }
}

/// Reads `/proc` every [`SAMPLE_PERIOD`] on the blocking pool and publishes the newest sample.
async fn sample_periodically(
    sampler: Sampler,
    latest: Arc<Mutex<Value>>,
    shutdown: CancellationToken,
) {
    let mut sampler = Some(sampler);
    let mut ticker = tokio::time::interval(SAMPLE_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(mut owned) = sampler.take() else {
            return;
        };
        let sampled = tokio::task::spawn_blocking(move || {
            let sample = owned.sample();
            (owned, sample)
        })
        .await;
        match sampled {
            Ok((owned, sample)) => {
                sampler = Some(owned);
                *latest
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = sample;
            }
            Err(error) => {
                warn!(error = %error, "host sampling failed; reports keep the last sample");
                return;
            }
        }
    }
}
