//! The driver task: one per client, owning the socket, the subscriptions and the offline
//! queue. Handles talk to it over a bounded command channel; it reports over the state watch
//! and the bounded event channel.
//!
//! Its life is a loop of attempts. Each attempt waits for its delay (backoff or the server's
//! `retry_after`), connects within `connect_timeout`, and then serves the connection
//! ([`session`]) until it is lost, refused or closed. While no connection is up, commands
//! still flow: subscriptions update the room set, messages go to the offline queue.

mod renewal;
mod session;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::ErrorCode;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite;
use tracing::{debug, info, warn};

use crate::builder::Settings;
use crate::client::{Command, Counters};
use crate::event::{ClientEvent, LostReason};
use crate::queue::OfflineQueue;
use crate::state::{ConnectionState, DisconnectReason};

/// The application asked to stop (close, or every handle dropped).
pub(crate) struct Stopped;

/// How one served connection ended.
pub(crate) enum Served {
    /// The application closed the client.
    Stopped,
    /// The server refused the token; final.
    Refused(DisconnectReason),
    /// The connection was lost; reconnect.
    Lost {
        reason: LostReason,
        /// Whether the server had greeted it (then the attempt count starts again).
        greeted: bool,
        /// The server's `retry_after`, which replaces the backoff delay.
        retry_after: Option<Duration>,
    },
}

pub(crate) struct Driver {
    settings: Settings,
    command_rx: mpsc::Receiver<Command>,
    state_tx: watch::Sender<ConnectionState>,
    events_tx: mpsc::Sender<ClientEvent>,
    counters: Arc<Counters>,
    /// Rooms to be joined on every connection.
    rooms: BTreeSet<String>,
    /// The last `seq` seen per room, sent as `since` on resubscription.
    last_seq: HashMap<String, u64>,
    queue: OfflineQueue,
}

impl Driver {
    pub(crate) fn new(
        settings: Settings,
        command_rx: mpsc::Receiver<Command>,
        state_tx: watch::Sender<ConnectionState>,
        events_tx: mpsc::Sender<ClientEvent>,
        counters: Arc<Counters>,
    ) -> Self {
        let queue = OfflineQueue::new(settings.offline_queue);
        Self {
            settings,
            command_rx,
            state_tx,
            events_tx,
            counters,
            rooms: BTreeSet::new(),
            last_seq: HashMap::new(),
            queue,
        }
    }

    pub(crate) async fn run(mut self) {
        // `connect` already set `Connecting`; the stream starts with it all the same.
        let initial = self.state_tx.borrow().clone();
        self.emit(ClientEvent::StateChanged(initial));
        let reason = self.run_attempts().await;
        match &reason {
            DisconnectReason::Closed => debug!("client closed"),
            other => warn!(reason = ?other, url = %self.settings.url, "client stopped"),
        }
        self.set_state(ConnectionState::Disconnected { reason });
    }

    async fn run_attempts(&mut self) -> DisconnectReason {
        // 0 is the first connection; after a loss, attempts count from 1 until one is greeted.
        let mut attempt: u32 = 0;
        let mut delay = Duration::ZERO;
        loop {
            self.set_state(if attempt == 0 {
                ConnectionState::Connecting
            } else {
                ConnectionState::Reconnecting { attempt }
            });
            if !delay.is_zero() && self.idle(tokio::time::sleep(delay)).await.is_err() {
                return DisconnectReason::Closed;
            }
            Counters::add(&self.counters.attempts, 1);
            let token = match self.token_for_attempt().await {
                Ok(token) => token,
                Err(AttemptToken::Stopped) => return DisconnectReason::Closed,
                Err(AttemptToken::Failed(text)) => {
                    debug!(error = %text, "token provider failed");
                    self.emit(ClientEvent::ConnectionLost(LostReason::ConnectFailed(text)));
                    attempt = attempt.saturating_add(1);
                    if !self.settings.reconnect.allows(attempt) {
                        return DisconnectReason::GaveUp {
                            attempts: attempt - 1,
                        };
                    }
                    delay = self.settings.reconnect.delay(attempt, &mut rand::rng());
                    continue;
                }
            };
            let request = match self.settings.request_with(token.header.as_ref()) {
                Ok(request) => request,
                Err(error) => return DisconnectReason::InvalidUrl(error.to_string()),
            };
            let connect_timeout = self.settings.connect_timeout;
            let connector = self.settings.tls.clone().map(crate::tls::connector);
            let opened = tokio::time::timeout(
                connect_timeout,
                tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector),
            );
            let Ok(opened) = self.idle(opened).await else {
                return DisconnectReason::Closed;
            };
            let retry_after = match opened {
                Ok(Ok((socket, _response))) => match self.serve(socket, token.exp).await {
                    Served::Stopped => return DisconnectReason::Closed,
                    Served::Refused(reason) => return reason,
                    Served::Lost {
                        reason,
                        greeted,
                        retry_after,
                    } => {
                        info!(reason = ?reason, "connection lost");
                        self.emit(ClientEvent::ConnectionLost(reason));
                        if greeted {
                            attempt = 0;
                        }
                        retry_after
                    }
                },
                Ok(Err(error)) => match classify_connect_error(error) {
                    ConnectFailure::Final(reason) => return reason,
                    ConnectFailure::Retry(text) => {
                        debug!(error = %text, "connection attempt failed");
                        self.emit(ClientEvent::ConnectionLost(LostReason::ConnectFailed(text)));
                        None
                    }
                },
                Err(_elapsed) => {
                    let text = format!("no upgrade within {connect_timeout:?}");
                    self.emit(ClientEvent::ConnectionLost(LostReason::ConnectFailed(text)));
                    None
                }
            };
            attempt = attempt.saturating_add(1);
            if !self.settings.reconnect.allows(attempt) {
                return DisconnectReason::GaveUp {
                    attempts: attempt - 1,
                };
            }
            delay = retry_after
                .unwrap_or_else(|| self.settings.reconnect.delay(attempt, &mut rand::rng()));
        }
    }

    /// The token of one attempt: the provider's (called now, within `connect_timeout`), or
    /// the static one.
    async fn token_for_attempt(&mut self) -> Result<AttemptTokenOk, AttemptToken> {
        let Some(provider) = self.settings.token_provider.clone() else {
            return Ok(AttemptTokenOk {
                header: self.settings.token.clone(),
                exp: None,
            });
        };
        let limit = self.settings.connect_timeout;
        let fetched = self
            .idle(tokio::time::timeout(limit, provider.fetch()))
            .await
            .map_err(|Stopped| AttemptToken::Stopped)?;
        let token = match fetched {
            Ok(Ok(token)) => token,
            Ok(Err(error)) => {
                return Err(AttemptToken::Failed(format!(
                    "token provider failed: {error}"
                )));
            }
            Err(_elapsed) => {
                return Err(AttemptToken::Failed(format!(
                    "token provider gave no token within {limit:?}"
                )));
            }
        };
        let header = crate::builder::bearer(&token).map_err(|_| {
            AttemptToken::Failed("token provider returned a token that is no header value".into())
        })?;
        Ok(AttemptTokenOk {
            header: Some(header),
            exp: crate::token::token_exp(&token),
        })
    }

    /// Runs `future` while keeping commands flowing in offline mode.
    async fn idle<F: Future>(&mut self, future: F) -> Result<F::Output, Stopped> {
        tokio::pin!(future);
        loop {
            tokio::select! {
                output = &mut future => return Ok(output),
                command = self.command_rx.recv() => match command {
                    None | Some(Command::Close) => return Err(Stopped),
                    Some(command) => self.apply_offline(command),
                },
            }
        }
    }

    /// Applies a command while no greeted connection is up.
    fn apply_offline(&mut self, command: Command) {
        match command {
            Command::Subscribe(rooms) => self.rooms.extend(rooms),
            Command::Unsubscribe(rooms) => self.forget_rooms(&rooms),
            Command::Send(message) => {
                let dropped = self.queue.push(message);
                self.note_queue(dropped);
            }
            Command::Close => {}
        }
    }

    fn forget_rooms(&mut self, rooms: &[String]) {
        for room in rooms {
            self.rooms.remove(room);
            self.last_seq.remove(room);
        }
    }

    fn note_queue(&self, dropped: u64) {
        if dropped > 0 {
            Counters::add(&self.counters.offline_dropped, dropped);
            debug!(dropped, "offline queue full; oldest message dropped");
        }
        let queued = u64::try_from(self.queue.len()).unwrap_or(u64::MAX);
        self.counters
            .offline_queued
            .store(queued, Ordering::Relaxed);
    }

    /// Hands `event` to the application, or drops and counts it when the buffer is full.
    fn emit(&self, event: ClientEvent) {
        match self.events_tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                Counters::add(&self.counters.events_dropped, 1);
            }
            // The application dropped its event stream; it does not want events.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn set_state(&self, state: ConnectionState) {
        let changed = self.state_tx.send_if_modified(|current| {
            if *current == state {
                return false;
            }
            *current = state.clone();
            true
        });
        if changed {
            self.emit(ClientEvent::StateChanged(state));
        }
    }
}

/// The token an attempt connects with, and its `exp` when a provider gave it (then the
/// session refreshes it in-band).
struct AttemptTokenOk {
    header: Option<tokio_tungstenite::tungstenite::http::HeaderValue>,
    exp: Option<u64>,
}

/// Why an attempt has no token.
enum AttemptToken {
    Stopped,
    Failed(String),
}

enum ConnectFailure {
    Final(DisconnectReason),
    Retry(String),
}

/// Sorts a failed attempt: refusals of the request itself are final; everything that may
/// heal by itself (refused TCP, 5xx, 408, 429, timeouts) is retried.
fn classify_connect_error(error: tungstenite::Error) -> ConnectFailure {
    match error {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let retryable = status >= 500 || status == 408 || status == 429 || status < 400;
            if retryable {
                return ConnectFailure::Retry(format!("upgrade refused with http {status}"));
            }
            let body = response.body().as_deref().unwrap_or_default();
            let error = error_code_from_body(body);
            ConnectFailure::Final(DisconnectReason::Refused {
                code: status,
                error,
                reason: error
                    .map(|code| code.description().to_owned())
                    .unwrap_or_else(|| format!("http {status}")),
            })
        }
        tungstenite::Error::Url(error) => {
            ConnectFailure::Final(DisconnectReason::InvalidUrl(error.to_string()))
        }
        other => match crate::tls::untrusted_server(&other) {
            Some(text) => ConnectFailure::Final(DisconnectReason::UntrustedServer(text)),
            None => ConnectFailure::Retry(other.to_string()),
        },
    }
}

/// Reads the gateway's HTTP error body `{"error": {"code": "...", "message": "..."}}`.
fn error_code_from_body(body: &[u8]) -> Option<ErrorCode> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: ErrorCode,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .map(|body| body.error.code)
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::http::Response;

    use super::*;

    fn http_error(status: u16, body: &str) -> tungstenite::Error {
        let response = Response::builder()
            .status(status)
            .body(Some(body.as_bytes().to_vec()))
            .unwrap();
        tungstenite::Error::Http(Box::new(response))
    }

    #[test]
    fn refused_upgrades_are_final_and_overload_is_retried() {
        let forbidden = classify_connect_error(http_error(
            403,
            r#"{"error":{"code":"origin_not_allowed","message":"x"}}"#,
        ));
        assert!(matches!(
            forbidden,
            ConnectFailure::Final(DisconnectReason::Refused {
                code: 403,
                error: Some(ErrorCode::OriginNotAllowed),
                ..
            })
        ));
        for status in [503, 429, 408, 500] {
            assert!(matches!(
                classify_connect_error(http_error(status, "")),
                ConnectFailure::Retry(_)
            ));
        }
        let io =
            tungstenite::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            classify_connect_error(io),
            ConnectFailure::Retry(_)
        ));
    }
}
