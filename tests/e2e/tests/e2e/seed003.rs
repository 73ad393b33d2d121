//! Seed 003's four test scenarios on real NATS and Redis, with `switchboard-gateway` and
//! `switchboard-device-reader` as processes: normal operation; server restart (SIGKILL, a new
//! gateway on the same port ~2 s later) with the seed's reconnecting client; network drop (a
//! TCP proxy that cuts every connection and refuses new ones for a while); an idle health
//! connection answered with `pong` and kept alive by it.

use std::time::Duration;

use e2e::proxy::TcpProxy;
use e2e::reader::DeviceReaderProcess;
use e2e::seed::{Backoff, ClientLog, Next, ReconnectingClient, SeedSocket};
use e2e::{GatewayProcess, Stack, eventually, health_url, power_url};
use tokio::time::Instant;

/// Timer slack allowed on top of a backoff delay on a loaded machine.
const TIMER_SLACK: Duration = Duration::from_secs(1);

async fn mock_reader(stack: &Stack) -> DeviceReaderProcess {
    DeviceReaderProcess::spawn(
        stack,
        "dr-seed",
        "[[device_reader.devices]]\nid = \"opm-1\"\nmodules = [4]\ninterval = \"100ms\"\n",
        &[],
    )
    .await
}

fn heartbeat_env(stack: &Stack, server_id: &str) -> Vec<(&'static str, String)> {
    let mut env = stack.gateway_env(server_id);
    env.push(("SWITCHBOARD__GATEWAY__HEARTBEAT_INTERVAL", "1s".to_owned()));
    env.push(("SWITCHBOARD__GATEWAY__HEARTBEAT_TIMEOUT", "4s".to_owned()));
    env
}

/// Checks the reconnect attempts against seed 003's schedule: numbered 1, 2, 3 …, each
/// after its backoff delay (measured from the loss or the previous attempt), all but the
/// last refused, the last opened; returns how many there were.
fn assert_backoff_schedule(log: &ClientLog) -> usize {
    let backoff = Backoff::SEED_003;
    let attempts = &log.attempts;
    assert!(!log.gave_up, "{log:?}");
    assert!(!attempts.is_empty(), "no reconnect attempt: {log:?}");
    let mut previous = *log.lost_at.first().expect("the connection was lost");
    for (index, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.number as usize, index + 1, "{attempts:?}");
        assert!(
            backoff.allows(attempt.number, attempt.delay, Duration::ZERO),
            "attempt {} waited {:?}",
            attempt.number,
            attempt.delay
        );
        let waited = attempt.at - previous;
        assert!(
            waited >= attempt.delay && waited <= attempt.delay + TIMER_SLACK * 2,
            "attempt {} came {waited:?} after the previous one, its delay was {:?}",
            attempt.number,
            attempt.delay
        );
        let last = index + 1 == attempts.len();
        assert_eq!(attempt.opened, last, "{attempts:?}");
        previous = attempt.at;
    }
    attempts.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_operation_health_answers_and_the_power_stream_delivers() {
    let stack = Stack::start().await;
    let _reader = mock_reader(&stack).await;
    let gateway = GatewayProcess::spawn(&heartbeat_env(&stack, "gw-normal")).await;

    let mut health = SeedSocket::connect(&health_url(gateway.addr))
        .await
        .expect("health connects without a token");
    health.send_text("ping").await;
    let pong = health.next_of("pong", Duration::from_secs(5)).await;
    assert!(pong["timestamp"].is_string(), "{pong}");

    let mut power = SeedSocket::connect(&power_url(gateway.addr, "opm-1", 4, "0.1", "lab"))
        .await
        .expect("power connects");
    power.next_of("data", Duration::from_secs(15)).await;
    let frames = power.collect(Duration::from_secs(2)).await;
    let data = frames
        .iter()
        .filter(|(_, frame)| frame["type"] == "data")
        .count();
    assert!((14..=24).contains(&data), "{data} readings in 2 s at 0.1 s");
    let heartbeat = power.next_of("heartbeat", Duration::from_secs(3)).await;
    assert!(
        heartbeat["active_streams"].as_u64().unwrap_or(0) >= 1,
        "{heartbeat}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_client_reconnects_with_backoff_and_data_flows_again() {
    let stack = Stack::start().await;
    let _reader = mock_reader(&stack).await;
    let env = stack.gateway_env("gw-restart");
    let gateway = GatewayProcess::spawn(&env).await;
    let addr = gateway.addr;
    let client = ReconnectingClient::connect(
        &power_url(addr, "opm-1", 4, "0.1", "lab"),
        Backoff::SEED_003,
    )
    .await;
    eventually(Duration::from_secs(15), || async {
        client.log().data_on(0) >= 5
    })
    .await;

    let killed_at = Instant::now();
    gateway.kill();
    tokio::time::sleep(Duration::from_secs(2)).await; // the outage itself
    let _restarted = GatewayProcess::spawn_at(addr, &env).await;
    eventually(Duration::from_secs(20), || async {
        client.log().data_on(1) >= 5
    })
    .await;

    let log = client.log();
    let lost_at = log.lost_at[0];
    assert!(
        lost_at - killed_at < Duration::from_secs(2),
        "the kill was noticed at once"
    );
    let attempts = assert_backoff_schedule(&log);
    // Down for 2 s plus the start: refused at ~1 s, open at ~3 s (~7 s or ~15 s when the
    // machine is slow to start a gateway).
    assert!((2..=4).contains(&attempts), "{:?}", log.attempts);
    assert_eq!(log.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_network_drop_the_client_reconnects_with_backoff_and_data_resumes() {
    let stack = Stack::start().await;
    let _reader = mock_reader(&stack).await;
    let gateway = GatewayProcess::spawn(&stack.gateway_env("gw-drop")).await;
    let proxy = TcpProxy::start(gateway.addr).await;
    let client = ReconnectingClient::connect(
        &power_url(proxy.addr(), "opm-1", 4, "0.1", "lab"),
        Backoff::SEED_003,
    )
    .await;
    eventually(Duration::from_secs(15), || async {
        client.log().data_on(0) >= 5
    })
    .await;

    let outage = Duration::from_secs(4);
    let cut_at = Instant::now();
    proxy.cut_for(outage).await;
    eventually(Duration::from_secs(25), || async {
        client.log().data_on(1) >= 5
    })
    .await;

    let log = client.log();
    assert!(
        log.lost_at[0] - cut_at < Duration::from_secs(1),
        "the cut was noticed at once"
    );
    let attempts = assert_backoff_schedule(&log);
    // Refused at ~1 s and ~3 s, through at ~7 s.
    assert!(attempts >= 3, "{:?}", log.attempts);
    let opened = log.attempts.last().expect("an attempt opened");
    assert!(opened.at - cut_at >= outage, "opened during the outage");
    assert_eq!(proxy.accepted(), 2, "refused, not accepted, while down");
    // The data resumed where the device is now, not with a backlog of the outage.
    let first_after = log
        .frames
        .iter()
        .find(|received| received.connection == 1 && received.frame["type"] == "data")
        .expect("data after the reconnect");
    let timestamp = first_after.frame["timestamp"]
        .as_f64()
        .expect("a timestamp");
    let now = protocol::time::now_unix_ms() as f64 / 1000.0;
    assert!(
        now - timestamp < 2.0,
        "first reading after the drop is {:.1} s old",
        now - timestamp
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_health_connection_gets_heartbeats_and_its_pings_are_answered_with_pong() {
    let stack = Stack::start().await;
    let gateway = GatewayProcess::spawn(&heartbeat_env(&stack, "gw-idle")).await;
    let mut pinging = SeedSocket::connect(&health_url(gateway.addr))
        .await
        .expect("health connects");
    let mut silent = SeedSocket::connect(&health_url(gateway.addr))
        .await
        .expect("health connects");

    // Three idle periods of 2 s, 6 s in all: longer than the 4 s heartbeat timeout, so only
    // the pings keep this connection open.
    let started = Instant::now();
    for _ in 0..3 {
        let idle = pinging.collect(Duration::from_secs(2)).await;
        let heartbeats: Vec<_> = idle
            .iter()
            .filter(|(_, frame)| frame["type"] == "heartbeat")
            .collect();
        assert!(
            !heartbeats.is_empty(),
            "no heartbeat in 2 s at 1 s: {idle:?}"
        );
        for (_, heartbeat) in heartbeats {
            assert!(heartbeat["timestamp"].is_string(), "{heartbeat}");
            assert!(heartbeat["active_streams"].is_u64(), "{heartbeat}");
        }
        pinging.send_text("ping").await;
        let pong = pinging.next_of("pong", Duration::from_secs(3)).await;
        assert!(pong["timestamp"].is_string(), "{pong}");
    }
    assert!(started.elapsed() > Duration::from_secs(4));

    // The one that sent nothing, not even the pongs to the gateway's WebSocket pings that a
    // browser sends by itself, was closed for silence after the timeout. (Its close frame,
    // 4408, is behind the unanswered pings that tungstenite answers first on a closed socket,
    // so this side sees a broken pipe rather than the code.)
    let closed = loop {
        match silent.next(Duration::from_secs(10)).await {
            Next::Frame(_) => {}
            other => break other,
        }
    };
    assert!(matches!(closed, Next::Closed(_)), "{closed:?}");
}
