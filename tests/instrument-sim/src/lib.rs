//! A fake SCPI-over-TCP optical power meter for tests of the device reader's `scpi-tcp` driver.
//!
//! [`InstrumentSim::bind`] listens on a TCP address and answers, one line per query:
//! - `*IDN?` → `Switchboard,InstrumentSim,0,1.0`
//! - `SENS<m>:CHAN<c>:POW:WAV?` → the module's wavelength in metres (`1.310000E-06`)
//! - `READ<m>:CHAN<c>:POW?` or `FETC<m>:CHAN<c>:POW?` → the channel's power in dBm
//!   (`-1.785000E+01`), a fixed level per channel plus a small step per query
//! - anything else → no answer (as a real instrument, which only queues an error).
//!
//! On command ([`InstrumentSim::set_mode`]) it hangs (reads queries, never answers), answers
//! garbage, closes every connection (and each new one after its first query), or goes silent
//! for a while and then answers again. [`InstrumentSim::connections`] counts accepted
//! connections, so tests can see reconnects and that a reader keeps one connection.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the instrument behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers every query.
    Normal,
    /// Reads queries and never answers (a stuck instrument).
    Hang,
    /// Answers every query with a line that is not a number.
    Garbage,
    /// Closes the connection when a query arrives.
    Close,
    /// Answers nothing until the instant, then answers normally again.
    SilentUntil(Instant),
}

/// What the instrument shares between its connections.
#[derive(Debug)]
struct State {
    mode: Mutex<Mode>,
    connections: AtomicU64,
    queries: AtomicU64,
    open: AtomicU64,
    /// Cancelled to drop every open connection at once ([`Mode::Close`]).
    close_all: Mutex<CancellationToken>,
}

/// A running fake instrument.
#[derive(Debug)]
pub struct InstrumentSim {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    accept: JoinHandle<()>,
}

impl InstrumentSim {
    /// Binds `addr` (use `127.0.0.1:0` in tests) and starts answering.
    ///
    /// # Errors
    /// The OS error when the address cannot be bound.
    pub async fn bind(addr: &str) -> std::io::Result<InstrumentSim> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            mode: Mutex::new(Mode::Normal),
            connections: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            open: AtomicU64::new(0),
            close_all: Mutex::new(CancellationToken::new()),
        });
        let shutdown = CancellationToken::new();
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state), shutdown.clone()));
        Ok(InstrumentSim {
            addr,
            state,
            shutdown,
            accept,
        })
    }

    /// The listening address, `host:port` for the driver's `address`.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the behaviour; [`Mode::Close`] also drops every open connection now.
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut current) = self.state.mode.lock() {
            *current = mode;
        }
        if mode == Mode::Close
            && let Ok(mut token) = self.state.close_all.lock()
        {
            token.cancel();
            *token = CancellationToken::new();
        }
    }

    /// Goes silent for `duration`, then answers again.
    pub fn go_silent_for(&self, duration: Duration) {
        self.set_mode(Mode::SilentUntil(Instant::now() + duration));
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> u64 {
        self.state.open.load(Ordering::Relaxed)
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.state.queries.load(Ordering::Relaxed)
    }

    /// Stops listening and closes every connection.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.accept.await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, shutdown: CancellationToken) {
    let tasks = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        state.connections.fetch_add(1, Ordering::Relaxed);
        let close = state
            .close_all
            .lock()
            .map(|token| token.clone())
            .unwrap_or_default();
        tasks.spawn(serve_connection(
            stream,
            Arc::clone(&state),
            shutdown.clone(),
            close,
        ));
    }
    tasks.close();
    tasks.wait().await;
}

async fn serve_connection(
    stream: TcpStream,
    state: Arc<State>,
    shutdown: CancellationToken,
    close: CancellationToken,
) {
    state.open.fetch_add(1, Ordering::Relaxed);
    let (read_half, mut write_half) = stream.into_split();
    let mut lines = BufReader::new(read_half).lines();
    loop {
        let line = tokio::select! {
            () = shutdown.cancelled() => break,
            () = close.cancelled() => break,
            line = lines.next_line() => line,
        };
        let Ok(Some(line)) = line else {
            break;
        };
        let query_number = state.queries.fetch_add(1, Ordering::Relaxed);
        let mode = state.mode.lock().map(|mode| *mode).unwrap_or(Mode::Normal);
        let reply = match mode {
            Mode::Normal => answer(line.trim(), query_number),
            Mode::SilentUntil(until) if Instant::now() >= until => {
                answer(line.trim(), query_number)
            }
            Mode::Hang | Mode::SilentUntil(_) => None,
            Mode::Garbage => Some("#$%garbage!!".to_owned()),
            Mode::Close => break,
        };
        if let Some(reply) = reply
            && write_half
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .is_err()
        {
            break;
        }
    }
    state.open.fetch_sub(1, Ordering::Relaxed);
}

/// The answer to one query, or `None` for a query the instrument does not know.
fn answer(query: &str, query_number: u64) -> Option<String> {
    let upper = query.to_ascii_uppercase();
    if upper == "*IDN?" {
        return Some("Switchboard,InstrumentSim,0,1.0".to_owned());
    }
    let (module, channel) = module_and_channel(&upper)?;
    if upper.ends_with(":POW:WAV?") {
        let nm = if module % 2 == 0 { 1550.0 } else { 1310.0 };
        return Some(format!("{:E}", nm * 1e-9));
    }
    if (upper.starts_with("READ") || upper.starts_with("FETC")) && upper.ends_with(":POW?") {
        let level = -10.0 - 5.0 * f64::from(channel) - f64::from(module) / 10.0;
        let step = f64::from(u32::try_from(query_number % 10).unwrap_or(0)) / 100.0;
        return Some(format!("{:.6E}", level + step));
    }
    None
}

/// `(module, channel)` of `XXXX<m>:CHAN<c>:…`.
fn module_and_channel(query: &str) -> Option<(u16, u16)> {
    let (head, rest) = query.split_once(':')?;
    let module = head.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let channel = rest.strip_prefix("CHAN")?.split(':').next()?;
    Some((module.parse().ok()?, channel.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_of_an_optical_power_meter_are_answered() {
        assert_eq!(module_and_channel("READ4:CHAN2:POW?"), Some((4, 2)));
        assert!(answer("SENS1:CHAN1:POW:WAV?", 0).is_some_and(|reply| reply.contains("E-")));
        assert!(answer("READ1:CHAN3:POW?", 0).is_some());
        assert_eq!(answer("BOGUS?", 0), None);
    }
}
