//! Batch-ingest end to end (issue 5): the simulated ML node, batch-ingest, real NATS with
//! JetStream and real Redis. Every scenario ends by reading `SB_BATCHES` with a fresh
//! consumer and checking it holds exactly the node's batches, each once.
//!
//! The process-kill test runs the `switchboard-batch-ingest` binary: build it first with
//! `cargo build -p switchboard-batch-ingest` (same profile as the tests).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use batch_ingest::test_util::{
    TestBatchIngest, eventually, http_request, read_stored_batches, test_config,
};
use batch_ingest::{Config, NodeConfig};
use e2e::{Stack, free_port};
use mlnode_sim::{
    ConnectionEventKind, DeliveryMode, MlNodeSim, SimConfig, SimHandle, expected_batches,
};
use protocol::Subjects;
use protocol::batch::{CALLBACK_PATH_PREFIX, STREAM_NAME};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// How long any wait may take.
const WAIT: Duration = Duration::from_secs(30);

/// A simulated node with short ack and retry timings, so faults resolve quickly.
fn sim_config(seed: u64, batches: u64) -> SimConfig {
    SimConfig {
        seed,
        node_num: seed,
        batches: Some(batches),
        interval: Duration::from_millis(2),
        ack_timeout: Duration::from_millis(600),
        retry_interval: Duration::from_millis(400),
        http_timeout: Duration::from_secs(2),
        ..SimConfig::default()
    }
}

struct Sim {
    handle: SimHandle,
    ws_url: String,
    config: SimConfig,
    shutdown: CancellationToken,
}

impl Sim {
    async fn start(config: SimConfig) -> Self {
        let sim = MlNodeSim::bind(config.clone()).await.expect("sim binds");
        let ws_url = sim.ws_url();
        let handle = sim.handle();
        let shutdown = CancellationToken::new();
        tokio::spawn(sim.serve(shutdown.clone()));
        Self {
            handle,
            ws_url,
            config,
            shutdown,
        }
    }

    fn expected_hashes(&self) -> BTreeSet<String> {
        expected_batches(&self.config)
            .iter()
            .map(|batch| batch.content_hash().to_hex())
            .collect()
    }

    async fn until_all_confirmed(&self) {
        eventually(WAIT, "the node has every batch confirmed", || async {
            self.handle.all_confirmed()
        })
        .await;
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn node(id: &str, url: &str) -> NodeConfig {
    NodeConfig {
        id: id.to_owned(),
        url: url.to_owned(),
        active: true,
    }
}

fn ingest_config(stack: &Stack) -> Config {
    let mut config = test_config();
    config.bus.nats_url = Some(stack.nats.url());
    config.store.redis_url = Some(stack.redis.url());
    config.store.key_prefix = stack.key_prefix.clone();
    config
}

async fn start_ingest(stack: &Stack, adjust: impl FnOnce(&mut Config)) -> TestBatchIngest {
    let mut config = ingest_config(stack);
    adjust(&mut config);
    let bus = batch_ingest::connect_bus(&config)
        .await
        .expect("nats reachable");
    let records = batch_ingest::connect_records(&config)
        .await
        .expect("redis reachable");
    TestBatchIngest::start(config, bus, records).await
}

/// Reads `SB_BATCHES` over its own connection and returns the hashes, failing on a batch
/// stored twice.
async fn stored_hashes(stack: &Stack) -> BTreeSet<String> {
    let bus = stack.bus().await;
    let stored = read_stored_batches(&bus, &Subjects::default()).await;
    let hashes: BTreeSet<String> = stored.iter().map(|s| s.msg_id.clone()).collect();
    assert_eq!(hashes.len(), stored.len(), "a batch was stored twice");
    hashes
}

async fn metric(addr: SocketAddr, line_prefix: &str) -> u64 {
    let (_, text) = http_request(addr, "GET", "/metrics", b"").await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(line_prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_path_alone_stores_every_batch_exactly_once() {
    let stack = Stack::start().await;
    let sim = Sim::start(sim_config(101, 120)).await;
    let ingest = start_ingest(&stack, |c| {
        c.batch_ingest.nodes = vec![node("ml-ws", &sim.ws_url)]
    })
    .await;
    sim.until_all_confirmed().await;
    let counters = sim.handle.counters();
    assert_eq!(
        (counters.acked_ws, counters.acked_http, counters.sent_http),
        (120, 0, 0)
    );
    assert_eq!(stored_hashes(&stack).await, sim.expected_hashes());
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_path_alone_stores_every_batch_exactly_once() {
    let stack = Stack::start().await;
    let ingest = start_ingest(&stack, |_| {}).await;
    let mut config = sim_config(102, 120);
    config.callback_url = Some(ingest.callback_url());
    let sim = Sim::start(config).await;
    sim.until_all_confirmed().await;
    let counters = sim.handle.counters();
    assert_eq!(
        (counters.acked_ws, counters.acked_http, counters.sent_ws),
        (0, 120, 0)
    );
    assert_eq!(stored_hashes(&stack).await, sim.expected_hashes());
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_paths_at_once_with_every_batch_overlapping_store_each_once() {
    let stack = Stack::start().await;
    let mut config = sim_config(103, 150);
    config.mode = DeliveryMode::Both;
    config.paused = true;
    let sim = Sim::start(config).await;
    let ingest = start_ingest(&stack, |c| {
        c.batch_ingest.nodes = vec![node("ml-both", &sim.ws_url)]
    })
    .await;
    sim.handle.set_callback_url(Some(ingest.callback_url()));
    eventually(WAIT, "the client is connected", || async {
        sim.handle.is_client_connected()
    })
    .await;
    // Generation starts with both paths up, so every batch goes both ways at once.
    sim.handle.resume_generation();
    sim.until_all_confirmed().await;
    // Every batch also went the other way; wait until those deliveries were answered too.
    eventually(WAIT, "every http callback is answered", || async {
        let c = sim.handle.counters();
        c.http_ok + c.http_errors >= c.sent_http
    })
    .await;
    let counters = sim.handle.counters();
    assert!(
        counters.sent_ws >= 150 && counters.sent_http >= 150,
        "{counters:?}"
    );
    assert_eq!(stored_hashes(&stack).await, sim.expected_hashes());
    let duplicates = metric(
        ingest.addr,
        "switchboard_batch_ingest_duplicates_dropped_total",
    )
    .await;
    let stored = metric(ingest.addr, "switchboard_batch_ingest_batches_stored_total").await;
    assert_eq!(stored, 150);
    assert!(
        duplicates >= 150,
        "every batch arrived twice: {duplicates} duplicates"
    );
    ingest.stop().await;
}

/// `switchboard-batch-ingest` as a child process, killed on drop.
struct IngestProcess {
    child: Child,
}

fn ingest_binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("switchboard-batch-ingest");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p switchboard-batch-ingest`",
        path.display()
    );
    path
}

impl IngestProcess {
    async fn spawn(stack: &Stack, config_file: &std::path::Path, addr: SocketAddr) -> Self {
        let child = Command::new(ingest_binary())
            .arg("--config")
            .arg(config_file)
            .env_clear()
            .env("SWITCHBOARD__BUS__NATS_URL", stack.nats.url())
            .env("SWITCHBOARD__STORE__REDIS_URL", stack.redis.url())
            .env("SWITCHBOARD__STORE__KEY_PREFIX", &stack.key_prefix)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if std::env::var("TEST_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("switchboard-batch-ingest starts");
        let process = Self { child };
        eventually(WAIT, "batch-ingest is ready", || async {
            matches!(
                http_request(addr, "GET", "/readyz", b"").await,
                Ok((200, _))
            )
        })
        .await;
        process
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for IngestProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_ingest_killed_mid_stream_and_restarted_loses_and_doubles_nothing() {
    let stack = Stack::start().await;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut config = sim_config(104, 300);
    config.interval = Duration::from_millis(5);
    config.callback_url = Some(format!("http://{addr}{CALLBACK_PATH_PREFIX}"));
    let sim = Sim::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("batch-ingest.toml");
    std::fs::write(
        &config_file,
        format!(
            "[batch_ingest]\nlisten = \"{addr}\"\nreconnect_min = \"200ms\"\nreconnect_max = \"400ms\"\n\
             store_timeout = \"1s\"\n\n[[batch_ingest.nodes]]\nid = \"ml-kill\"\nurl = \"{}\"\n",
            sim.ws_url
        ),
    )
    .unwrap();

    let first = IngestProcess::spawn(&stack, &config_file, addr).await;
    eventually(WAIT, "a third of the batches are confirmed", || async {
        sim.handle.counters().confirmed >= 100
    })
    .await;
    first.kill();
    let at_kill = sim.handle.counters();
    assert!(
        at_kill.confirmed < 300,
        "the kill came too late to matter: {at_kill:?}"
    );
    eventually(WAIT, "the node notices and retries", || async {
        sim.handle.counters().http_errors > 0 && !sim.handle.is_client_connected()
    })
    .await;

    let second = IngestProcess::spawn(&stack, &config_file, addr).await;
    sim.until_all_confirmed().await;
    assert_eq!(stored_hashes(&stack).await, sim.expected_hashes());
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_mid_stream_loses_and_doubles_nothing_and_callbacks_get_503_meanwhile() {
    let mut stack = Stack::start().await;
    let ingest_addr;
    let ingest = {
        let ingest = start_ingest(&stack, |c| {
            c.batch_ingest.store_timeout = Duration::from_millis(500)
        })
        .await;
        ingest_addr = ingest.addr;
        ingest
    };
    let mut config = sim_config(105, 300);
    config.interval = Duration::from_millis(5);
    config.callback_url = Some(ingest.callback_url());
    let sim = Sim::start(config).await;
    let _registered = http_request(
        ingest_addr,
        "POST",
        "/v1/nodes",
        format!("{{\"id\": \"ml-nats\", \"url\": \"{}\"}}", sim.ws_url).as_bytes(),
    )
    .await
    .unwrap();
    eventually(WAIT, "a third of the batches are confirmed", || async {
        sim.handle.counters().confirmed >= 100
    })
    .await;

    stack.nats.stop().await;
    // One of the node's own batches: if the publish that timed out still reaches JetStream
    // after the restart, it is a batch the test expects anyway.
    let probe = mlnode_sim::batch_at(&sim.config, 299);
    let (status, body) = http_request(
        ingest_addr,
        "POST",
        probe.kind().callback_path(),
        probe.to_json().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 503, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "unavailable");
    eventually(WAIT, "readiness turns false while NATS is down", || async {
        matches!(
            http_request(ingest_addr, "GET", "/readyz", b"").await,
            Ok((503, _))
        )
    })
    .await;
    stack.nats.restart().await;

    sim.until_all_confirmed().await;
    assert_eq!(stored_hashes(&stack).await, sim.expected_hashes());
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_cut_repeatedly_reconnects_within_3_to_5_seconds_each_time() {
    let stack = Stack::start().await;
    let mut config = sim_config(106, 400);
    config.interval = Duration::from_millis(20);
    let sim = Sim::start(config).await;
    // The default reconnect delay, 3-5 s with jitter, as the seed requires.
    let ingest = start_ingest(&stack, |c| {
        c.batch_ingest.reconnect_min = Duration::from_secs(3);
        c.batch_ingest.reconnect_max = Duration::from_secs(5);
        c.batch_ingest.nodes = vec![node("ml-cut", &sim.ws_url)];
    })
    .await;
    for cut in 1..=3_usize {
        eventually(WAIT, "the client is connected", || async {
            sim.handle
                .connection_log()
                .iter()
                .filter(|event| event.kind == ConnectionEventKind::Accepted)
                .count()
                == cut
        })
        .await;
        assert!(sim.handle.cut_connection(), "cut {cut}");
    }
    sim.until_all_confirmed().await;
    let log = sim.handle.connection_log();
    let gaps: Vec<Duration> = log
        .windows(2)
        .filter(|pair| {
            pair[0].kind == ConnectionEventKind::Closed
                && pair[1].kind == ConnectionEventKind::Accepted
        })
        .map(|pair| pair[1].at - pair[0].at)
        .collect();
    eprintln!("websocket reconnect gaps after cuts: {gaps:?}");
    assert_eq!(gaps.len(), 3, "{log:?}");
    for gap in gaps {
        assert!(
            gap >= Duration::from_millis(2950) && gap <= Duration::from_millis(5500),
            "reconnected after {gap:?}"
        );
    }
    assert_eq!(sim.handle.counters().acked_http, 0);
    assert_eq!(stored_hashes(&stack).await, sim.expected_hashes());
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_batches_get_clear_errors_and_nothing_is_stored() {
    let stack = Stack::start().await;
    let sim = Sim::start(SimConfig {
        batches: Some(0),
        ..sim_config(107, 0)
    })
    .await;
    let ingest = start_ingest(&stack, |c| {
        c.batch_ingest.max_batch_bytes = 8 * 1024;
        c.batch_ingest.nodes = vec![node("ml-bad", &sim.ws_url)];
    })
    .await;
    let valid: Value =
        serde_json::from_str(&mlnode_sim::batch_at(&sim.config, 0).to_json()).unwrap();
    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("dist");
    let mut wrong = valid.clone();
    wrong["nonces"] = serde_json::json!(["one", "two"]);
    let mut negative = valid.clone();
    negative["node_id"] = serde_json::json!(-4);
    let mut oversized = valid.clone();
    oversized["nonces"] = serde_json::json!(vec![123_456_789_i64; 2000]);
    let cases = [
        (
            "generated",
            "not json at all".to_owned(),
            400,
            "malformed_json",
        ),
        ("generated", missing.to_string(), 400, "missing_field"),
        ("generated", wrong.to_string(), 400, "wrong_type"),
        ("generated", negative.to_string(), 400, "wrong_type"),
        ("validated", valid.to_string(), 400, "missing_field"),
        ("generated", oversized.to_string(), 413, "too_large"),
    ];
    for (kind, body, status, reason) in cases {
        let path = format!("{CALLBACK_PATH_PREFIX}/{kind}");
        let (got, text) = http_request(ingest.addr, "POST", &path, body.as_bytes())
            .await
            .unwrap();
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (got, answer["error"]["reason"].as_str()),
            (status, Some(reason)),
            "{text}"
        );
        let code = if status == 413 {
            "message_too_large"
        } else {
            "invalid_message"
        };
        assert_eq!(answer["error"]["code"], code);
    }
    // Over the WebSocket an invalid frame is not acknowledged and not stored.
    eventually(WAIT, "the client is connected", || async {
        sim.handle.is_client_connected()
    })
    .await;
    assert!(sim.handle.send_raw_frame(&format!(
        "{{\"type\":\"generated\",\"id\":\"x\",\"batch\":{}}}",
        missing
    )));
    assert!(
        sim.handle
            .send_raw_frame("{\"type\":\"mined\",\"id\":\"y\"}")
    );
    eventually(WAIT, "both frames are counted as invalid", || async {
        metric(
            ingest.addr,
            "switchboard_batch_ingest_batches_invalid_total{path=\"websocket\"",
        )
        .await
            == 2
    })
    .await;
    assert_eq!(
        sim.handle.counters().late_acks,
        0,
        "invalid frames are never acknowledged"
    );
    let bus = stack.bus().await;
    assert_eq!(bus.stream_state(STREAM_NAME).await.unwrap().messages, 0);
    ingest.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_older_than_the_jetstream_window_is_caught_by_the_redis_record() {
    let stack = Stack::start().await;
    let ingest = start_ingest(&stack, |c| {
        c.batch_ingest.duplicate_window = Duration::from_secs(1);
        c.batch_ingest.stream_max_age = Duration::ZERO;
    })
    .await;
    let batch = mlnode_sim::batch_at(&sim_config(108, 1), 0);
    let path = batch.kind().callback_path();
    let (status, text) = http_request(ingest.addr, "POST", path, batch.to_json().as_bytes())
        .await
        .unwrap();
    assert_eq!(status, 200, "{text}");
    let key = format!(
        "{}:batch:{}",
        stack.key_prefix,
        batch.content_hash().to_hex()
    );
    let ttl = Command::new("redis-cli")
        .args(["-p", &stack.redis.port().to_string(), "PTTL", &key])
        .output()
        .expect("redis-cli runs");
    let ttl_ms: i64 = String::from_utf8_lossy(&ttl.stdout).trim().parse().unwrap();
    assert!(
        ttl_ms > 23 * 3600 * 1000,
        "the record lives about a day: {ttl_ms} ms"
    );
    // Past JetStream's window: only the record can recognise the batch now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, text) = http_request(ingest.addr, "POST", path, batch.to_json().as_bytes())
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (status, answer["status"].as_str(), answer["by"].as_str()),
        (200, Some("duplicate"), Some("record"))
    );
    assert_eq!(stored_hashes(&stack).await.len(), 1);
    ingest.stop().await;
}

/// Throughput and ACK latency of the WebSocket path against real NATS and Redis, for the
/// closing note: the node keeps 512 batches unconfirmed at most and generates as fast as
/// that allows. Run in release, one at a time:
/// `cargo test --release -p e2e --test e2e batches::measure -- --ignored --nocapture --test-threads 1`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check; run by hand in release"]
async fn measure_websocket_throughput_and_ack_latency() {
    measure_websocket(20_000, Duration::ZERO).await;
}

/// ACK latency of the WebSocket path at a paced 1,000 batches/s (below saturation).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check; run by hand in release"]
async fn measure_websocket_ack_latency_at_1000_per_second() {
    measure_websocket(5_000, Duration::from_millis(1)).await;
}

async fn measure_websocket(total: u64, interval: Duration) {
    let stack = Stack::start().await;
    let sim = Sim::start(SimConfig {
        interval,
        max_pending: 512,
        ack_timeout: Duration::from_secs(3),
        retry_interval: Duration::from_secs(5),
        paused: true,
        ..sim_config(109, total)
    })
    .await;
    let handle = sim.handle.clone();
    let ingest = start_ingest(&stack, |c| {
        c.batch_ingest.max_in_flight_per_node = 256;
        c.batch_ingest.nodes = vec![node("ml-bench", &sim.ws_url)];
    })
    .await;
    eventually(WAIT, "connected", || async { handle.is_client_connected() }).await;
    let started = tokio::time::Instant::now();
    handle.resume_generation();
    eventually(Duration::from_secs(300), "all confirmed", || async {
        handle.all_confirmed()
    })
    .await;
    let elapsed = started.elapsed();
    report("websocket", total, elapsed, handle.ack_latencies(), &handle);
    ingest.stop().await;
}

/// The same for the HTTP callbacks (the simulator opens a connection per request, as a
/// node posting occasionally would; 32 requests in flight).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check; run by hand in release"]
async fn measure_http_throughput_and_ack_latency() {
    let stack = Stack::start().await;
    let total = 10_000;
    let ingest = start_ingest(&stack, |_| {}).await;
    let sim = Sim::start(SimConfig {
        interval: Duration::ZERO,
        max_pending: 512,
        ack_timeout: Duration::from_secs(3),
        retry_interval: Duration::from_secs(5),
        callback_url: Some(ingest.callback_url()),
        paused: true,
        ..sim_config(110, total)
    })
    .await;
    let started = tokio::time::Instant::now();
    sim.handle.resume_generation();
    eventually(Duration::from_secs(300), "all confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    let elapsed = started.elapsed();
    report(
        "http",
        total,
        elapsed,
        sim.handle.http_latencies(),
        &sim.handle,
    );
    ingest.stop().await;
}

fn report(
    path: &str,
    total: u64,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
    sim: &SimHandle,
) {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    eprintln!(
        "{path}: {total} batches stored with ack in {elapsed:?}: {:.0} batches/s; ack latency \
         p50 {:?} p90 {:?} p99 {:?} max {:?}; counters {:?}",
        total as f64 / elapsed.as_secs_f64(),
        pick(0.5),
        pick(0.9),
        pick(0.99),
        latencies.last().copied().unwrap_or_default(),
        sim.counters()
    );
}
