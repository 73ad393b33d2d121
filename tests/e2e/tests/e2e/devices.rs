//! The device reader on real NATS and Redis (issue 10): two `switchboard-device-reader`
//! processes share a device; killing the one that reads it (SIGKILL, no lease release) hands
//! the device to the other within two intervals, and no tick is published twice. Seed 003's
//! power clients on two gateway processes each get their own interval of one device, and a
//! failing instrument (the fake SCPI one) reaches them as counted errors, then data again.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::reader::DeviceReaderProcess;
use e2e::seed::{Next, SeedSocket};
use e2e::{GatewayProcess, Stack, eventually, power_url, workspace_binary};
use gateway::test_util::get_json;
use instrument_sim::{InstrumentSim, Mode};
use protocol::RoomEnvelope;
use protocol::envelope::decode_bus;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_millis(500);

struct Reader {
    id: &'static str,
    child: Child,
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_reader(stack: &Stack, id: &'static str, config: &std::path::Path) -> Reader {
    let child = Command::new(workspace_binary("switchboard-device-reader"))
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SWITCHBOARD__BUS__NATS_URL", stack.nats.url())
        .env("SWITCHBOARD__STORE__REDIS_URL", stack.redis.url())
        .env("SWITCHBOARD__STORE__KEY_PREFIX", &stack.key_prefix)
        .env(
            "SWITCHBOARD__DEVICE_READER__LISTEN",
            format!("127.0.0.1:{}", e2e::free_port()),
        )
        .env("SWITCHBOARD__DEVICE_READER__INSTANCE_ID", id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("switchboard-device-reader starts");
    Reader { id, child }
}

#[derive(Debug, Clone)]
struct Seen {
    event: String,
    data: serde_json::Value,
    seq: Option<u64>,
    at: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_reading_replica_hands_the_device_over_without_duplicates() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("device-reader.toml");
    std::fs::write(
        &config,
        format!(
            "[[device_reader.devices]]\nid = \"opm-e\"\nmodules = [1]\ninterval = \"{}ms\"\n",
            INTERVAL.as_millis()
        ),
    )
    .expect("configuration written");
    let bus = stack.bus().await;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    for pattern in ["sb.room.devices", "sb.room.devices.opm-e.m1"] {
        let mut subscription = bus.subscribe(pattern).await.expect("subscribed");
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                if let Ok(envelope) = decode_bus::<RoomEnvelope>(&message.payload) {
                    seen.lock().unwrap().push(Seen {
                        event: envelope.event,
                        data: envelope.data,
                        seq: envelope.seq,
                        at: Instant::now(),
                    });
                }
            }
        });
    }
    bus.flush().await.expect("subscriptions registered");
    let readings = || -> Vec<Seen> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|seen| seen.event == "data")
            .cloned()
            .collect()
    };
    let reader_of_last_status = || -> Option<String> {
        seen.lock()
            .unwrap()
            .iter()
            .rev()
            .find(|seen| seen.event == "device_status")
            .and_then(|seen| seen.data["reader_id"].as_str().map(str::to_owned))
    };

    let mut a = Some(spawn_reader(&stack, "dr-e1", &config));
    let mut b = Some(spawn_reader(&stack, "dr-e2", &config));
    eventually(Duration::from_secs(20), || async { readings().len() >= 4 }).await;
    let holder = reader_of_last_status().expect("a status names the reader");
    let victim = if a.as_ref().is_some_and(|r| r.id == holder) {
        a.take()
    } else {
        b.take()
    }
    .expect("the holder is one of the two");
    let died_at = Instant::now();
    drop(victim); // SIGKILL: the lease is not released, it has to expire
    eventually(Duration::from_secs(10), || async {
        readings().iter().any(|seen| seen.at > died_at)
    })
    .await;
    let first_after = readings()
        .into_iter()
        .find(|seen| seen.at > died_at)
        .expect("a reading after the kill");
    let takeover = first_after.at - died_at;
    assert!(
        takeover <= INTERVAL * 2 + Duration::from_millis(300),
        "took over after {takeover:?}"
    );
    assert_ne!(first_after.data["device_id"], serde_json::Value::Null);
    eventually(Duration::from_secs(5), || async {
        reader_of_last_status().is_some_and(|reader| reader != holder)
    })
    .await;
    tokio::time::sleep(INTERVAL * 4).await;
    let ticks: Vec<u64> = readings().iter().filter_map(|seen| seen.seq).collect();
    let unique: HashSet<u64> = ticks.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ticks.len(),
        "a tick was published twice: {ticks:?}"
    );
    drop((a, b));
}

/// Seed 003's data frame: exactly these keys (`device_id` is Switchboard's addition).
const DATA_KEYS: [&str; 10] = [
    "ch1_power",
    "ch2_power",
    "ch3_power",
    "ch4_power",
    "device_id",
    "module",
    "timestamp",
    "type",
    "unit",
    "wavelength_nm",
];

fn keys(frame: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = frame
        .as_object()
        .expect("frames are JSON objects")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn of_kind<'a>(
    frames: &'a [(Instant, serde_json::Value)],
    kind: &str,
) -> Vec<&'a serde_json::Value> {
    frames
        .iter()
        .filter(|(_, frame)| frame["type"] == kind)
        .map(|(_, frame)| frame)
        .collect()
}

async fn device_status(gateway: &GatewayProcess, device: &str) -> serde_json::Value {
    get_json(gateway.addr, &format!("/api/ws/devices/{device}"))
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_clients_on_two_gateways_get_their_own_interval_of_one_device() {
    let stack = Stack::start().await;
    // 20 readings per second: the 0.1 s client gets every second one, the 1 s client one in 20.
    let _reader = DeviceReaderProcess::spawn(
        &stack,
        "dr-rate",
        "[[device_reader.devices]]\nid = \"opm-r\"\nmodules = [1]\ninterval = \"50ms\"\n",
        &[],
    )
    .await;
    let gateway_1 = GatewayProcess::spawn(&stack.gateway_env("gw-rate-1")).await;
    let gateway_2 = GatewayProcess::spawn(&stack.gateway_env("gw-rate-2")).await;
    let mut fast = SeedSocket::connect(&power_url(gateway_1.addr, "opm-r", 1, "0.1", "fast"))
        .await
        .expect("fast client connects");
    let mut slow = SeedSocket::connect(&power_url(gateway_2.addr, "opm-r", 1, "1", "slow"))
        .await
        .expect("slow client connects");
    fast.next_of("data", Duration::from_secs(15)).await;
    slow.next_of("data", Duration::from_secs(15)).await;

    let window = Duration::from_secs(10);
    let (fast_frames, slow_frames) = tokio::join!(fast.collect(window), slow.collect(window));
    let fast_data = of_kind(&fast_frames, "data");
    let slow_data = of_kind(&slow_frames, "data");
    // 10 per second and 1 per second over 10 s, ±20 %.
    assert!(
        (80..=120).contains(&fast_data.len()),
        "interval 0.1 got {} readings in 10 s",
        fast_data.len()
    );
    assert!(
        (8..=12).contains(&slow_data.len()),
        "interval 1 got {} readings in 10 s",
        slow_data.len()
    );
    for data in [&fast_data, &slow_data] {
        let mut previous = 0.0;
        for frame in data {
            assert_eq!(keys(frame), DATA_KEYS, "seed 003's flat shape: {frame}");
            assert_eq!(frame["device_id"], "opm-r");
            assert_eq!(frame["module"], 1);
            assert_eq!(frame["unit"], "dBm");
            assert!(frame["wavelength_nm"].is_number());
            for channel in 1..=4 {
                assert!(frame[format!("ch{channel}_power")].is_number(), "{frame}");
            }
            let timestamp = frame["timestamp"]
                .as_f64()
                .expect("timestamp in unix seconds with a fraction");
            let now = protocol::time::now_unix_ms() as f64 / 1000.0;
            assert!((now - timestamp).abs() < 30.0, "timestamp {timestamp}");
            assert!(
                timestamp > previous,
                "the newest reading each time, never a backlog"
            );
            previous = timestamp;
        }
    }
    // Conflated, not thinned: the slow client's readings are about a second apart and each
    // was the newest when sent (a backlog would lag further behind with every frame).
    let newest_slow = slow_data
        .last()
        .and_then(|frame| frame["timestamp"].as_f64())
        .expect("a timestamp");
    let newest_fast = fast_data
        .last()
        .and_then(|frame| frame["timestamp"].as_f64())
        .expect("a timestamp");
    assert!(
        (newest_fast - newest_slow).abs() < 2.0,
        "slow {newest_slow} lags fast {newest_fast}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrument_faults_reach_clients_as_counted_errors_and_the_stream_recovers() {
    let stack = Stack::start().await;
    let sim = InstrumentSim::bind("127.0.0.1:0")
        .await
        .expect("instrument binds");
    let config = format!(
        "[device_reader]\nfailures_before_unavailable = 4\nretry_min = \"300ms\"\nretry_max = \"600ms\"\n\n\
         [[device_reader.devices]]\nid = \"opm-s\"\ndriver = \"scpi-tcp\"\naddress = \"{}\"\n\
         modules = [1]\ninterval = \"100ms\"\ntimeout = \"250ms\"\nreconnect_min = \"50ms\"\n\
         reconnect_max = \"200ms\"\n",
        sim.local_addr()
    );
    let _reader = DeviceReaderProcess::spawn(&stack, "dr-faults", &config, &[]).await;
    let gateway = GatewayProcess::spawn(&stack.gateway_env("gw-faults")).await;
    let mut client = SeedSocket::connect(&power_url(gateway.addr, "opm-s", 1, "0.1", "lab"))
        .await
        .expect("client connects");
    let first = client.next_of("data", Duration::from_secs(15)).await;
    assert_eq!(keys(&first), DATA_KEYS);
    // Queried from the instrument (1.310000E-06 m); the metres → nm conversion is not rounded.
    let wavelength = first["wavelength_nm"].as_f64().expect("a wavelength");
    assert!((wavelength - 1310.0).abs() < 1e-6, "{first}");
    let state_is = |state: &'static str| {
        let gateway = &gateway;
        move || async move { device_status(gateway, "opm-s").await["state"] == state }
    };
    eventually(Duration::from_secs(5), state_is("connected")).await;

    // Garbage: each reading fails; the count climbs, the client stays, then unavailable.
    sim.set_mode(Mode::Garbage);
    let errors = errors_until_unavailable(&mut client, "unparseable reply").await;
    assert!(errors.len() >= 4, "{errors:?}");
    eventually(Duration::from_secs(5), state_is("unavailable")).await;
    let status = device_status(&gateway, "opm-s").await;
    assert!(status["error_count"].as_u64().unwrap_or(0) >= 4, "{status}");

    // Recovery: data again on the same connection, connected, the count reset.
    sim.set_mode(Mode::Normal);
    client.next_of("data", Duration::from_secs(10)).await;
    eventually(Duration::from_secs(5), state_is("connected")).await;
    assert_eq!(device_status(&gateway, "opm-s").await["error_count"], 0);

    // A hanging instrument is timed out: errors while it hangs, counted from 1 again.
    sim.set_mode(Mode::Hang);
    let errors = errors_until_unavailable(&mut client, "did not answer within 250ms").await;
    assert!(errors.len() >= 4, "{errors:?}");
    eventually(Duration::from_secs(5), state_is("unavailable")).await;
    sim.set_mode(Mode::Normal);
    client.next_of("data", Duration::from_secs(10)).await;
    eventually(Duration::from_secs(5), state_is("connected")).await;

    // A closed connection is reconnected and the data resumes.
    let connections_before = sim.connections();
    sim.set_mode(Mode::Close);
    let error = client.next_of("error", Duration::from_secs(10)).await;
    assert_eq!(error["error_count"], 1, "{error}");
    sim.set_mode(Mode::Normal);
    client.next_of("data", Duration::from_secs(10)).await;
    assert!(
        sim.connections() > connections_before,
        "the reader connected again ({} connections)",
        sim.connections()
    );
    eventually(Duration::from_secs(5), state_is("connected")).await;
    // Every fault above reached the client on its one connection.
    assert!(matches!(
        client.next(Duration::from_millis(300)).await,
        Next::Frame(_)
    ));
}

/// Reads error frames until the first with `recoverable: false`, checking that their
/// `error_count`s go 1, 2, 3 … and that each says `cause`; data may precede the first.
async fn errors_until_unavailable(client: &mut SeedSocket, cause: &str) -> Vec<serde_json::Value> {
    let mut errors: Vec<serde_json::Value> = Vec::new();
    loop {
        let frame = match client.next(Duration::from_secs(10)).await {
            Next::Frame(frame) => frame,
            other => panic!("expected error frames, got {other:?} after {errors:?}"),
        };
        if frame["type"] == "data" {
            assert!(
                errors.is_empty(),
                "data between errors: {frame} after {errors:?}"
            );
            continue;
        }
        if frame["type"] != "error" {
            continue;
        }
        let expected = errors.len() as u64 + 1;
        assert_eq!(frame["error_count"], expected, "{frame} after {errors:?}");
        let message = frame["message"].as_str().unwrap_or_default();
        assert!(message.contains(cause), "{frame}");
        let unavailable = frame["recoverable"] == false;
        errors.push(frame);
        if unavailable {
            return errors;
        }
    }
}

/// One way of watching the benchmark device.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// `/api/v1/ws/v2/power?interval=<seconds>`.
    Power(&'static str),
    /// `/api/ws/connect` and `subscribe`, with `min_interval_ms` when given.
    Subscribe(Option<u64>),
}

/// A process's CPU time (user + system) and resident memory, from `/proc`.
fn cpu_and_rss(pid: u32) -> (Duration, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // Fields after the command (which may hold spaces) start at state: utime and stime are
    // the 12th and 13th after it, in clock ticks (100 per second on Linux).
    let after_command = stat.rsplit_once(')').expect("stat has a command").1;
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    (Duration::from_millis(ticks * 10), rss_kib)
}

/// Counts the WebSocket frames in a server's byte stream (unmasked frames).
#[derive(Default)]
struct FrameCounter {
    header: Vec<u8>,
    payload_left: u64,
}

impl FrameCounter {
    fn count(&mut self, mut bytes: &[u8]) -> u64 {
        let mut frames = 0;
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let take = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= take;
                bytes = &bytes[take as usize..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if self.header.len() < 2 {
                continue;
            }
            let short_length = self.header[1] & 0x7f;
            let header_length = match short_length {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            if self.header.len() == header_length {
                self.payload_left = match short_length {
                    126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                    127 => u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes")),
                    length => u64::from(length),
                };
                self.header.clear();
                frames += 1;
            }
        }
        frames
    }
}

/// Opens one watcher and then counts the frames it receives without decoding them, so the
/// test process (a debug build) keeps up with every message of a plain subscriber.
async fn watch(
    addr: std::net::SocketAddr,
    watch: Watch,
    sub: String,
    frames: Arc<std::sync::atomic::AtomicU64>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::Message;
    let url = match watch {
        Watch::Power(interval) => power_url(addr, "bench", 1, interval, &sub),
        Watch::Subscribe(_) => format!(
            "ws://{addr}/api/ws/connect?token={}",
            e2e::token(&e2e::viewer(&sub))
        ),
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("watcher connects");
    if let Watch::Subscribe(min_interval_ms) = watch {
        let mut subscribe = serde_json::json!({"type": "subscribe", "rooms": ["devices.bench.m1"]});
        if let Some(min_interval_ms) = min_interval_ms {
            subscribe["min_interval_ms"] = min_interval_ms.into();
        }
        socket
            .send(Message::text(subscribe.to_string()))
            .await
            .expect("subscribe sent");
        while let Some(Ok(message)) = socket.next().await {
            if message
                .to_text()
                .is_ok_and(|text| text.contains("\"subscribed\""))
            {
                break;
            }
        }
    }
    let mut counter = FrameCounter::default();
    let mut buffer = vec![0u8; 16 * 1024];
    let stream = socket.get_mut();
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        frames.fetch_add(
            counter.count(&buffer[..read]),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The gateway's CPU and memory per conflated connection, against the same number of plain
/// subscribers, for BENCHMARKS.md. One device room gets `RATE_HZ` readings per second
/// (published here, as the device reader would); for each way of watching it a fresh
/// gateway gets `N` connections, and its CPU time and RSS are read from `/proc` over
/// `WINDOW_S` seconds. Run against a release gateway:
///
/// ```sh
/// cargo build --release -p switchboard-gateway
/// E2E_GATEWAY_BIN=target/release/switchboard-gateway N=1000 RATE_HZ=100 \
///   cargo test -p e2e --test e2e -- --ignored --nocapture gateway_cpu_per_conflated_connection
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for BENCHMARKS.md; run it on its own"]
async fn gateway_cpu_per_conflated_connection() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let clients = env_number("N", 1000);
    let rate_hz = env_number("RATE_HZ", 100);
    let window = Duration::from_secs(env_number("WINDOW_S", 10));
    let stack = Stack::start().await;
    let bus = stack.bus().await;
    let publisher = tokio::spawn(async move {
        let room = protocol::device::reading_room("bench", 1).expect("valid room");
        let subject = protocol::Subjects::new("sb").room(&room);
        let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate_hz as u32);
        for seq in 0u64.. {
            ticker.tick().await;
            let reading = serde_json::json!({
                "timestamp": protocol::time::now_unix_ms() as f64 / 1000.0, "module": 1,
                "wavelength_nm": 1310.0, "unit": "dBm", "ch1_power": -17.85 + (seq % 100) as f64 / 1000.0,
                "ch2_power": -21.56, "ch3_power": 6.94, "ch4_power": -60.12, "device_id": "bench"
            });
            let envelope = RoomEnvelope {
                event: protocol::device::EVENT_DATA.to_owned(),
                data: reading,
                timestamp: Some(protocol::time::now_rfc3339()),
                seq: None,
                priority: None,
            };
            let payload = protocol::envelope::encode_bus(&envelope).expect("envelope encodes");
            let _ = bus.publish(&subject, payload.into()).await;
        }
    });
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "N={clients} RATE_HZ={rate_hz} window={window:?} loadavg at start: {}",
        load.trim()
    );
    println!(
        "| watchers | gateway CPU s/s | CPU µs/s per connection | RSS MiB (idle → loaded) | KiB RSS per connection | frames/s delivered |"
    );
    println!("|---|---|---|---|---|---|");
    for watching in [
        Watch::Power("0.1"),
        Watch::Power("1"),
        Watch::Subscribe(Some(100)),
        Watch::Subscribe(None),
    ] {
        let mut env = stack.gateway_env("gw-bench");
        env.push((
            "SWITCHBOARD__GATEWAY__CONNECTIONS_PER_USER_PER_MINUTE",
            "1000000".to_owned(),
        ));
        env.push(("SWITCHBOARD__TELEMETRY__LOG_FILTER", "warn".to_owned()));
        let gateway = GatewayProcess::spawn(&env).await;
        let pid = gateway.pid();
        let (_, idle_rss) = cpu_and_rss(pid);
        let frames = Arc::new(AtomicU64::new(0));
        let slots = Arc::new(tokio::sync::Semaphore::new(64));
        let mut watchers = tokio::task::JoinSet::new();
        for index in 0..clients {
            let permit = Arc::clone(&slots)
                .acquire_owned()
                .await
                .expect("semaphore open");
            let frames = Arc::clone(&frames);
            let addr = gateway.addr;
            let (opened_tx, opened_rx) = tokio::sync::oneshot::channel::<()>();
            watchers.spawn(async move {
                let counted = Arc::new(AtomicU64::new(0));
                let mut watching_task = tokio::spawn(watch(
                    addr,
                    watching,
                    format!("w{index}"),
                    Arc::clone(&counted),
                ));
                // Opened once the first frame arrived.
                while counted.load(Ordering::Relaxed) == 0 && !watching_task.is_finished() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                drop(permit);
                let _ = opened_tx.send(());
                let mut last = 0;
                loop {
                    tokio::select! {
                        _ = &mut watching_task => break,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                    let now = counted.load(Ordering::Relaxed);
                    frames.fetch_add(now - last, Ordering::Relaxed);
                    last = now;
                }
            });
            drop(opened_rx);
        }
        // Every watcher has its first frame once all permits are back.
        let _all = slots.acquire_many(64).await.expect("semaphore open");
        tokio::time::sleep(Duration::from_secs(2)).await; // settle: the measurement starts here
        let (cpu_before, _) = cpu_and_rss(pid);
        let frames_before = frames.load(Ordering::Relaxed);
        tokio::time::sleep(window).await; // the measurement window
        let (cpu_after, loaded_rss) = cpu_and_rss(pid);
        let frames_delivered = frames.load(Ordering::Relaxed) - frames_before;
        let cpu_per_second = (cpu_after - cpu_before).as_secs_f64() / window.as_secs_f64();
        println!(
            "| {watching:?} | {cpu_per_second:.3} | {:.1} | {:.0} → {:.0} | {:.1} | {:.0} |",
            cpu_per_second * 1e6 / clients as f64,
            idle_rss as f64 / 1024.0,
            loaded_rss as f64 / 1024.0,
            loaded_rss.saturating_sub(idle_rss) as f64 / clients as f64,
            frames_delivered as f64 / window.as_secs_f64(),
        );
        watchers.abort_all();
        gateway.kill();
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("loadavg at end: {}", load.trim());
    publisher.abort();
}
