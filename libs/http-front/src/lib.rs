//! The HTTP/1.1 front door every Switchboard listener shares (gateway, batch-ingest, device
//! reader): one accept loop that sets hyper's limits, caps connections before serving them,
//! and drains within one deadline.
//!
//! - **Timers.** hyper gets a timer, so its header-read timeout applies: a client that sends
//!   half a request head, or keeps an idle keep-alive connection, is closed after
//!   [`Limits::header_read_timeout`] (hyper restarts that timer whenever a connection waits
//!   for its next request head).
//! - **Small buffers.** Request heads must fit [`MAX_BUF_SIZE`] bytes and [`MAX_HEADERS`]
//!   headers; Switchboard's requests are small.
//! - **Connection cap.** A connection takes a permit of [`Limits::max_connections`] before it
//!   is served, so idle and half-open sockets count. A handler that upgrades the connection
//!   takes the permit along ([`ConnectionSlot::take`]) so the upgraded session keeps it. When
//!   the cap is reached, [`Limits::probe_headroom`] more connections are served without a
//!   permit to hand over (probes, `/metrics`; no upgrades, no keep-alive); beyond that a
//!   connection is closed at once, so the process never runs out of files.
//! - **TLS.** With [`FrontDoor::tls`] every connection is a TLS connection ([`tls`]): the
//!   handshake runs on the connection's own task, holding its permit, within
//!   `header_read_timeout`; SIGHUP reloads the certificate and key for new handshakes.
//! - **Bounded drain.** The shutdown future yields the deadline of the whole drain; requests
//!   in progress get until then, and whatever HTTP connection is left is cut off.
//!
//! Used instead of `axum::serve` because that serves through hyper-util's HTTP version
//! auto-detection, whose extra buffered layer stays under every upgraded WebSocket, and it
//! leaves Nagle's algorithm on. Measured with massif on 1,000 idle connections: ~2.8 KiB per
//! connection of HTTP connection state outlived the upgrade.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

mod request;
#[cfg(any(test, feature = "test-util"))]
pub mod test_pki;
pub mod tls;

pub use request::{BodyError, bearer, read_body};
pub use tls::{ServerTls, TlsError, TlsMetrics};
use tls::{Transport, hangup_signals, next_hangup};

/// Largest buffered request head (and hyper's read/write buffer cap), in bytes. A WebSocket
/// upgrade with a token in its query and a browser's headers fits in well under half.
pub const MAX_BUF_SIZE: usize = 16 * 1024;

/// Most headers a request may carry: a browser's upgrade sends about 15, proxies add a few.
pub const MAX_HEADERS: usize = 64;

/// File descriptors kept out of the derived connection cap: bus and store connections, the
/// listener, the runtime's own, log files.
pub const FILE_RESERVE: u64 = 256;

/// Default headroom of connections served beyond the cap (probes, `/metrics`).
pub const DEFAULT_PROBE_HEADROOM: usize = 32;

/// Pause after an accept error that is not about one connection (out of files, say), so
/// the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The limits of one listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// How long a client may take to send a request head; also how long an idle keep-alive
    /// connection stays open.
    pub header_read_timeout: Duration,
    /// Connections served with a permit (upgraded ones included).
    pub max_connections: usize,
    /// Connections served beyond `max_connections`, one request each and never upgraded, so
    /// probes still get an answer when the cap is reached.
    pub probe_headroom: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: ConnectionCap::derive(DEFAULT_PROBE_HEADROOM).max_connections,
            probe_headroom: DEFAULT_PROBE_HEADROOM,
        }
    }
}

impl Limits {
    /// The limits of an internal listener (batch-ingest's callbacks, the device reader's
    /// management API): few clients, so at most [`INTERNAL_MAX_CONNECTIONS`] connections
    /// (less if the file limit says so) and 8 for probes. Several services in one process
    /// (the standalone) then leave the file limit to the gateway.
    pub fn internal() -> Self {
        let headroom = 8;
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: ConnectionCap::derive(headroom)
                .max_connections
                .min(INTERNAL_MAX_CONNECTIONS),
            probe_headroom: headroom,
        }
    }
}

/// Connection cap of an internal listener ([`Limits::internal`]).
pub const INTERNAL_MAX_CONNECTIONS: usize = 1024;

/// A connection cap derived from the process's file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCap {
    /// The cap.
    pub max_connections: usize,
    /// The soft `RLIMIT_NOFILE` it was derived from; `None` when unlimited.
    pub file_limit: Option<u64>,
    /// Files kept out of the cap (the reserve plus the probe headroom).
    pub reserved: u64,
}

impl ConnectionCap {
    /// The soft `RLIMIT_NOFILE` minus [`FILE_RESERVE`] and `probe_headroom` (at least 1; an
    /// unlimited file limit counts as 1,048,576).
    pub fn derive(probe_headroom: usize) -> Self {
        let file_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Self::from_file_limit(file_limit, probe_headroom)
    }

    fn from_file_limit(file_limit: Option<u64>, probe_headroom: usize) -> Self {
        let reserved = FILE_RESERVE + probe_headroom as u64;
        let files = file_limit.unwrap_or(1 << 20);
        let max_connections =
            usize::try_from(files.saturating_sub(reserved).max(1)).unwrap_or(usize::MAX);
        Self {
            max_connections,
            file_limit,
            reserved,
        }
    }
}

impl std::fmt::Display for ConnectionCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.file_limit {
            Some(limit) => write!(f, "RLIMIT_NOFILE {limit} - {} reserved", self.reserved),
            None => write!(
                f,
                "RLIMIT_NOFILE unlimited, taken as 1048576 - {}",
                self.reserved
            ),
        }
    }
}

/// The connection's place under the cap, in every request's extensions.
#[derive(Clone)]
pub struct ConnectionSlot(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl ConnectionSlot {
    /// Takes the connection's permit, to keep it for as long as an upgraded session runs.
    /// `None` on a connection served from the probe headroom (refuse its upgrade with "too
    /// many connections") or when the permit was already taken.
    pub fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Gives back a permit taken by [`ConnectionSlot::take`] when the handler answers
    /// without upgrading after all, so the connection stays counted while it lives on.
    pub fn put_back(&self, permit: OwnedSemaphorePermit) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(permit);
    }
}

/// What the drain did.
#[derive(Debug, Clone, Copy)]
pub struct Drained {
    /// The deadline the shutdown future set; later phases of the caller's drain share it.
    pub deadline: Instant,
    /// HTTP connections still open at the deadline, closed without an answer.
    pub cut_off: usize,
}

/// A listener's front door: its limits and its connection cap.
pub struct FrontDoor {
    limits: Limits,
    slots: Arc<Semaphore>,
    headroom: Arc<Semaphore>,
    refused: Option<prometheus::IntCounter>,
    tls: Option<ServerTls>,
}

impl FrontDoor {
    /// A front door with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            headroom: Arc::new(Semaphore::new(limits.probe_headroom)),
            limits,
            refused: None,
            tls: None,
        }
    }

    /// Terminates TLS with `tls` on every connection, and reloads its files on SIGHUP while
    /// serving.
    #[must_use]
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Counts connections closed at accept because the cap and its headroom were full.
    #[must_use]
    pub fn count_refused(mut self, counter: prometheus::IntCounter) -> Self {
        self.refused = Some(counter);
        self
    }

    /// The limits it serves with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Serves `router` on `listener` until `shutdown` yields the drain's deadline; then stops
    /// accepting, lets requests in progress finish until the deadline, cuts off what is
    /// left and returns. Upgraded connections are not HTTP connections any more: their
    /// sessions run on, holding their permits.
    pub async fn serve(
        self,
        listener: TcpListener,
        router: Router,
        shutdown: impl Future<Output = Instant>,
    ) -> Drained {
        let connections = TaskTracker::new();
        let closing = CancellationToken::new();
        let cut = CancellationToken::new();
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(MAX_BUF_SIZE)
            .max_headers(MAX_HEADERS);
        let mut probe_builder = builder.clone();
        probe_builder.keep_alive(false);
        tokio::pin!(shutdown);
        let mut hangups = self.tls.as_ref().and_then(|_| hangup_signals());
        let deadline = loop {
            let accepted = tokio::select! {
                deadline = &mut shutdown => break deadline,
                accepted = listener.accept() => accepted,
                Some(()) = next_hangup(&mut hangups) => {
                    if let Some(tls) = self.tls.clone() {
                        // Off the accept loop: the files are read on the blocking pool.
                        connections.spawn(async move {
                            // A failed reload is logged and counted where it happens.
                            let _ = tls.reload().await;
                        });
                    }
                    continue;
                }
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    warn!(error = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let (permit, kept, builder) = match self.slots.clone().try_acquire_owned() {
                Ok(permit) => (Some(permit), None, &builder),
                // A headroom permit stays with the connection's task: never upgraded.
                Err(_) => match self.headroom.clone().try_acquire_owned() {
                    Ok(permit) => (None, Some(permit), &probe_builder),
                    Err(_) => {
                        if let Some(refused) = &self.refused {
                            refused.inc();
                        }
                        drop(stream);
                        continue;
                    }
                },
            };
            // Realtime frames are small; waiting to coalesce them would only add latency.
            if let Err(error) = stream.set_nodelay(true) {
                debug!(error = %error, "TCP_NODELAY not set");
            }
            let slot = ConnectionSlot(Arc::new(Mutex::new(permit)));
            let router = router.clone();
            let service = service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(slot.clone());
                router.clone().oneshot(request)
            });
            let builder = builder.clone();
            let tls = self.tls.clone();
            let handshake_timeout = self.limits.header_read_timeout;
            let closing = closing.clone();
            let cut = cut.clone();
            connections.spawn(async move {
                let _headroom = kept;
                let transport = match tls {
                    None => Transport::Plain(stream),
                    Some(tls) => {
                        let handshake =
                            tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream));
                        // Nothing was asked yet, so a drain just closes a handshake under way.
                        let outcome = tokio::select! {
                            outcome = handshake => outcome,
                            () = closing.cancelled() => return,
                        };
                        match outcome {
                            Ok(Ok(stream)) => Transport::Tls(Box::new(stream)),
                            Ok(Err(error)) => {
                                debug!(error = %error, "tls handshake failed");
                                tls.count_handshake_failure("error");
                                return;
                            }
                            Err(_elapsed) => {
                                debug!("tls handshake not done within header_read_timeout");
                                tls.count_handshake_failure("timeout");
                                return;
                            }
                        }
                    }
                };
                let connection = builder
                    .serve_connection(TokioIo::new(transport), service)
                    .with_upgrades();
                tokio::pin!(connection);
                let finished = tokio::select! {
                    finished = connection.as_mut() => finished,
                    () = closing.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        tokio::select! {
                            finished = connection.as_mut() => finished,
                            () = cut.cancelled() => return,
                        }
                    }
                };
                if let Err(error) = finished {
                    debug!(error = %error, "http connection ended with an error");
                }
            });
        };
        drop(listener);
        closing.cancel();
        connections.close();
        let mut cut_off = 0;
        if tokio::time::timeout_at(deadline, connections.wait())
            .await
            .is_err()
        {
            cut_off = connections.len();
            cut.cancel();
            connections.wait().await;
        }
        Drained { deadline, cut_off }
    }
}

/// Accept errors that concern one connection only (it was reset before we took it).
fn is_per_connection(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_cap_leaves_the_reserve_and_the_headroom() {
        let cap = ConnectionCap::from_file_limit(Some(20_000), 32);
        assert_eq!(cap.max_connections, 20_000 - 256 - 32);
        assert_eq!(cap.to_string(), "RLIMIT_NOFILE 20000 - 288 reserved");
        assert_eq!(
            ConnectionCap::from_file_limit(Some(100), 32).max_connections,
            1
        );
        assert_eq!(
            ConnectionCap::from_file_limit(None, 0).max_connections,
            (1 << 20) - 256
        );
    }
}
