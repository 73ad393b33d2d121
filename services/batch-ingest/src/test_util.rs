//! Test helpers (feature `test-util`): an in-process batch-ingest on port 0, a reader that
//! returns everything in `SB_BATCHES`, and a tiny HTTP client for the callbacks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bus::Bus;
use protocol::Subjects;
use protocol::batch::{Batch, BatchKind, CALLBACK_PATH_PREFIX, STREAM_NAME};
use protocol::envelope::HEADER_MSG_ID;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{BatchIngest, Config, HashRecords, Pipeline, RunError};

/// A node URL ending with this makes that node's worker panic as it starts (tests of what
/// batch-ingest does with a worker that dies of a bug).
pub const PANIC_NODE_PATH: &str = "/test-util-panic";

/// A configuration for tests: port 0, fast reconnects and progress, short timeouts.
pub fn test_config() -> Config {
    let mut config = Config::default();
    let section = &mut config.batch_ingest;
    section.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    section.reconnect_min = Duration::from_millis(100);
    section.reconnect_max = Duration::from_millis(200);
    section.connect_timeout = Duration::from_secs(2);
    section.store_timeout = Duration::from_secs(1);
    section.progress_interval = Duration::from_millis(50);
    section.shutdown_grace = Duration::from_secs(3);
    config
}

/// A batch-ingest serving in this process.
pub struct TestBatchIngest {
    /// The callback listener's address.
    pub addr: SocketAddr,
    /// The bus it stores into.
    pub bus: Bus,
    /// Its batch handler.
    pub pipeline: Pipeline,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), RunError>>,
}

impl TestBatchIngest {
    /// Binds and serves `config` on `bus` with `records`.
    ///
    /// # Panics
    /// If it cannot bind.
    pub async fn start(config: Config, bus: Bus, records: HashRecords) -> Self {
        let ingest = BatchIngest::bind(config, bus.clone(), records)
            .await
            .expect("batch-ingest binds");
        let addr = ingest.local_addr();
        let pipeline = ingest.pipeline();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(ingest.serve(shutdown.clone()));
        Self {
            addr,
            bus,
            pipeline,
            shutdown,
            task,
        }
    }

    /// Returns the callback base URL an ML node is given, `http://<addr>/v1/poc-batches`.
    pub fn callback_url(&self) -> String {
        format!("http://{}{CALLBACK_PATH_PREFIX}", self.addr)
    }

    /// Cancels and waits for the drain.
    ///
    /// # Panics
    /// If serving failed or the drain takes more than 10 s.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("batch-ingest drains within 10 s")
            .expect("serve task not panicked")
            .expect("batch-ingest served cleanly");
    }
}

/// One message of `SB_BATCHES`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    /// Its kind, from the subject.
    pub kind: BatchKind,
    /// Its `Nats-Msg-Id`.
    pub msg_id: String,
    /// The decoded batch.
    pub batch: Batch,
    /// Its stream sequence.
    pub sequence: u64,
}

/// Reads every message of `SB_BATCHES` through a fresh durable consumer, checking that each
/// decodes and carries its content hash as `Nats-Msg-Id`.
///
/// # Panics
/// If the stream is missing, a message is malformed, or the messages the stream reports
/// do not all arrive within 10 s.
pub async fn read_stored_batches(bus: &Bus, subjects: &Subjects) -> Vec<StoredBatch> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let state = bus
        .stream_state(STREAM_NAME)
        .await
        .expect("SB_BATCHES exists");
    let durable = format!(
        "test-reader-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut consumer = bus
        .stream_consumer(STREAM_NAME, &durable)
        .await
        .expect("consumer opens");
    let mut stored = Vec::new();
    while (stored.len() as u64) < state.messages {
        let message = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("stream messages arrive within 10 s")
            .expect("consumer open")
            .expect("message delivered");
        let kind = BatchKind::of_subject(subjects, &message.subject).expect("a batch subject");
        let batch = Batch::decode_bus(kind, &message.payload).expect("payload is a batch");
        let msg_id = message
            .headers
            .get(HEADER_MSG_ID)
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            msg_id,
            batch.content_hash().to_hex(),
            "Nats-Msg-Id is the content hash"
        );
        message.ack().await.expect("ack");
        stored.push(StoredBatch {
            kind,
            msg_id,
            batch,
            sequence: message.sequence,
        });
    }
    stored
}

/// Sends one HTTP/1.1 request and returns the status and body.
///
/// # Errors
/// The I/O error when the server cannot be reached or answers garbage.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let (head, rest) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size_line, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size_line.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `condition` every 20 ms until it holds.
///
/// # Panics
/// When it does not hold within `timeout`; the message names `what`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
