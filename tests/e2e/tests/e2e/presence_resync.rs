//! Presence after a store outage (issue 11 item 3): Redis is flushed and restarted under a
//! gateway process holding thousands of WebSocket connections. `/api/ws/stats` must show
//! every open connection and room membership again within one liveness TTL, and none of the
//! connections closed while Redis was away or while the gateway was writing its entries
//! again may come back.
//!
//! The gateway runs as its own process: the client sockets of this process and the server
//! sockets of the gateway would not both fit under one process's file limit. 2,000
//! connections by default (the CI suite); `E2E_RESYNC_CONNECTIONS=10000` for the full form:
//!
//! ```text
//! E2E_RESYNC_CONNECTIONS=10000 cargo test -p e2e --test e2e presence_resync -- --nocapture
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{GatewayProcess, Stack, token, viewer};
use futures_util::SinkExt;
use serde_json::{Value, json};
use store::{RedisOptions, Store};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const DEFAULT_CONNECTIONS: usize = 2_000;
const ROOM: &str = "presence.resync";
/// The gateway's default liveness TTL, left as it is: the bound the test holds it to.
const LIVENESS_TTL: Duration = Duration::from_secs(15);
/// Handshakes in flight at once while the clients connect.
const CONNECT_CONCURRENCY: usize = 200;
/// Connections are closed in steps from the restart on, for this long: past the first
/// liveness refresh after the restart (a third of the TTL, plus one retry) and so through
/// the resync.
const CLOSE_WINDOW: Duration = Duration::from_secs(8);
const CLOSE_STEP: Duration = Duration::from_millis(100);

fn connections() -> usize {
    std::env::var("E2E_RESYNC_CONNECTIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_CONNECTIONS)
}

fn user(n: usize) -> String {
    format!("resync-{n}")
}

async fn stats(gateway: &GatewayProcess) -> Value {
    gateway::test_util::get_json(gateway.addr, "/api/ws/stats")
        .await
        .1
}

/// Whether `stats` come from the store (not this gateway's own figures, which it reports
/// with `"degraded": true` while the store does not answer).
fn from_store(stats: &Value) -> bool {
    stats["degraded"] == false && stats["live_gateways"] == 1
}

fn shows(stats: &Value, open: usize) -> bool {
    from_store(stats)
        && stats["active_connections"] == open
        && stats["rooms"] == json!({ ROOM: open })
}

/// Opens `count` clients, each subscribed to [`ROOM`]; user `resync-<n>` is client `n`.
async fn open_clients(gateway: &GatewayProcess, count: usize) -> Vec<Socket> {
    let urls: Vec<String> = (0..count)
        .map(|n| gateway.ws_url(&token(&viewer(&user(n)))))
        .collect();
    let mut sockets: Vec<Option<Socket>> = (0..count).map(|_| None).collect();
    let mut pending = urls.into_iter().enumerate();
    let mut connecting = JoinSet::new();
    loop {
        while connecting.len() < CONNECT_CONCURRENCY {
            let Some((n, url)) = pending.next() else {
                break;
            };
            connecting.spawn(async move {
                let (mut socket, _) = tokio_tungstenite::connect_async(url)
                    .await
                    .unwrap_or_else(|error| panic!("client {n} connects: {error}"));
                let subscribe = json!({"type": "subscribe", "rooms": [ROOM]}).to_string();
                socket
                    .send(Message::text(subscribe))
                    .await
                    .unwrap_or_else(|error| panic!("client {n} subscribes: {error}"));
                (n, socket)
            });
        }
        let Some(joined) = connecting.join_next().await else {
            break;
        };
        let (n, socket) = joined.expect("a connect task does not panic");
        sockets[n] = Some(socket);
    }
    sockets
        .into_iter()
        .map(|socket| socket.expect("every client connected"))
        .collect()
}

/// The value of an unlabelled sample in Prometheus text, if present.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_is_flushed_and_restarted_stats_show_every_open_connection_within_one_ttl() {
    let total = connections();
    let mut stack = Stack::start().await;
    let mut env = stack.gateway_env("gw-resync");
    env.push((
        "SWITCHBOARD__GATEWAY__CONNECTIONS_PER_USER_PER_MINUTE",
        "100000".to_owned(),
    ));
    env.push(("SWITCHBOARD__TELEMETRY__LOG_FILTER", "info".to_owned()));
    let gateway = GatewayProcess::spawn(&env).await;

    let connect_started = Instant::now();
    let mut clients = open_clients(&gateway, total).await;
    let connected_in = connect_started.elapsed();
    e2e::eventually(Duration::from_secs(30), || async {
        shows(&stats(&gateway).await, total)
    })
    .await;

    // Redis forgets everything and restarts on the same port.
    let options = RedisOptions {
        key_prefix: stack.key_prefix.clone(),
        ..RedisOptions::default()
    };
    let observer = Store::connect_redis(&stack.redis.url(), options.clone())
        .await
        .expect("redis reachable");
    observer.flush().await.expect("FLUSHDB");
    stack.redis.restart().await;
    let restarted_at = Instant::now();

    // Clients leave in steps while the gateway notices and writes its entries again.
    let per_step = (total / 1000).max(1);
    let steps = usize::try_from(CLOSE_WINDOW.as_millis() / CLOSE_STEP.as_millis()).unwrap();
    let closed_total = per_step * steps;
    let closing: Vec<Socket> = clients.drain(..closed_total).collect();
    let closer = tokio::spawn(async move {
        let mut closing = closing.into_iter();
        let mut ticker = tokio::time::interval(CLOSE_STEP);
        for _ in 0..steps {
            ticker.tick().await;
            // Dropping the socket closes the TCP connection, like a client that goes away.
            closing.by_ref().take(per_step).for_each(drop);
        }
    });
    let open = total - closed_total;

    // "All visible again": at least every connection that is still open is counted; before
    // the resync the count is near zero.
    let mut visible_after = None;
    let mut exact_after = None;
    while restarted_at.elapsed() < LIVENESS_TTL + Duration::from_secs(5) {
        let now = stats(&gateway).await;
        let active = now["active_connections"].as_u64().unwrap_or(0);
        if visible_after.is_none() && from_store(&now) && active >= u64::try_from(open).unwrap() {
            visible_after = Some(restarted_at.elapsed());
        }
        if closer.is_finished() && shows(&now, open) {
            exact_after = Some(restarted_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    closer.await.expect("the closer does not panic");
    let final_stats = stats(&gateway).await;
    let exact_after = exact_after.unwrap_or_else(|| {
        panic!(
            "stats never showed exactly the {open} open connections within {LIVENESS_TTL:?} + 5 s \
             of the restart (all visible after {visible_after:?}); last: {final_stats}"
        )
    });
    let visible_after = visible_after.expect("visible before exact");

    // Nothing closed comes back later: past another liveness refresh, the store holds
    // exactly the open connections.
    tokio::time::sleep(LIVENESS_TTL / 3 + Duration::from_secs(1)).await;
    let later = stats(&gateway).await;
    assert!(shows(&later, open), "stats changed afterwards: {later}");
    let observer = Store::connect_redis(&stack.redis.url(), options)
        .await
        .expect("redis reachable");
    let stored: BTreeSet<String> = observer
        .gateway_connections("gw-resync")
        .await
        .expect("records readable")
        .into_iter()
        .map(|record| record.user_id)
        .collect();
    let expected: BTreeSet<String> = (closed_total..total).map(user).collect();
    let ghosts: Vec<&String> = stored.difference(&expected).take(5).collect();
    let missing: Vec<&String> = expected.difference(&stored).take(5).collect();
    assert!(
        ghosts.is_empty() && missing.is_empty(),
        "store differs from the open connections: ghosts {ghosts:?}, missing {missing:?}"
    );

    let (_, metrics) = gateway::test_util::http_request(gateway.addr, "GET", "/metrics", &[], "")
        .await
        .expect("metrics served");
    let resyncs: u64 = metrics
        .lines()
        .filter(|line| line.starts_with("switchboard_gateway_presence_resyncs_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let resync_seconds = sample(&metrics, "switchboard_gateway_presence_resync_seconds_sum");
    println!(
        "presence resync: {total} connections (opened in {connected_in:?}), {closed_total} closed \
         during the first {CLOSE_WINDOW:?} after the restart; all open ones visible again after \
         {visible_after:?}, exact after {exact_after:?} (liveness TTL {LIVENESS_TTL:?}); \
         {resyncs} resync(s) taking {resync_seconds:?} s in total"
    );
    assert!(
        visible_after <= LIVENESS_TTL && exact_after <= LIVENESS_TTL,
        "presence came back after {visible_after:?} (exact after {exact_after:?}), more than \
         one liveness TTL ({LIVENESS_TTL:?})"
    );
    assert!(resyncs >= 1, "no resync counted:\n{metrics}");
    drop(clients);
}
