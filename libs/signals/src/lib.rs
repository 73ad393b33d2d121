//! Process signals for every Switchboard binary: the first SIGTERM or SIGINT cancels the
//! root [`CancellationToken`] (graceful drain); a second one exits the process with status 1.
//! SIGHUP never stops a binary: it reloads what can be reloaded (the gateway's TLS
//! certificate) and is otherwise logged.
#![warn(missing_docs)]

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Spawns the signal listener for `shutdown`.
///
/// # Panics
/// Panics if the signal handlers cannot be installed, which only happens outside a Tokio
/// runtime or when the OS refuses them at start-up.
pub fn spawn_listener(shutdown: CancellationToken) {
    #[cfg(unix)]
    keep_running_on_hangup();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown signal received; draining (send again to exit at once)");
        shutdown.cancel();
        wait_for_signal().await;
        warn!("second shutdown signal; exiting without drain");
        std::process::exit(1);
    });
}

/// Replaces SIGHUP's default action (terminate): `kill -HUP` is how an operator asks for a
/// reload, and a binary with nothing to reload must not die of it.
#[cfg(unix)]
fn keep_running_on_hangup() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    info!("SIGHUP received: reloading what this binary reloads; it keeps running");
                }
            });
        }
        Err(error) => {
            warn!(error = %error, "SIGHUP handler not installed; SIGHUP would stop this process")
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate =
            signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
