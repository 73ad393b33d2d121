//! Addressing beyond rooms on three `switchboard-gateway` processes sharing one NATS and
//! Redis: a personal message reaches every connection of its user on every gateway and
//! nobody else, a message to a connection id reaches that one connection wherever it is, and
//! a broadcast reaches every connection exactly once. Published through the HTTP API of one
//! gateway and directly on NATS, as an extra service would.

use std::time::Duration;

use bytes::Bytes;
use e2e::{GatewayProcess, Stack, TEST_API_KEY, TestClient, connect, token, viewer, within};
use gateway::test_util::http_request;
use protocol::direct::DirectEnvelope;
use protocol::envelope::encode_bus;
use protocol::{DirectMessage, ServerFrame, ServerMessage, Subjects};
use serde_json::{Value, json};

/// How long a client is watched for anything more (a duplicate or a stray message).
const QUIET: Duration = Duration::from_millis(500);

async fn post(addr: std::net::SocketAddr, body: &Value) -> u16 {
    let auth = format!("Bearer {TEST_API_KEY}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    http_request(addr, "POST", "/api/ws/publish", &headers, &body.to_string())
        .await
        .map(|(status, _)| status)
        .unwrap_or(0)
}

async fn envelope_on_nats(bus: &bus::Bus, subject: &str, event: &str) {
    let envelope = DirectEnvelope {
        event: event.to_owned(),
        data: json!({"via": "nats"}),
        timestamp: None,
        role: None,
    };
    bus.publish(subject, Bytes::from(encode_bus(&envelope).unwrap()))
        .await
        .unwrap();
    bus.flush().await.unwrap();
}

/// Collects the direct messages a client gets until it has been quiet for [`QUIET`].
async fn drain_direct(client: &mut TestClient) -> Vec<DirectMessage> {
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(QUIET, async {
            loop {
                match client.next_frame().await {
                    Some(Ok(ServerFrame::Direct(message))) => return Some(message),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await;
        match next {
            Ok(Some(message)) => seen.push(message),
            _ => return seen,
        }
    }
}

/// Waits until a client has `count` direct messages, then checks nothing more comes.
async fn expect_direct(client: &mut TestClient, count: usize) -> Vec<DirectMessage> {
    let seen = within(Duration::from_secs(10), async {
        let mut seen = Vec::new();
        while seen.len() < count {
            match client.next_frame().await {
                Some(Ok(ServerFrame::Direct(message))) => seen.push(message),
                Some(Ok(_)) => continue,
                other => panic!("connection ended while waiting: {other:?}"),
            }
        }
        seen
    })
    .await;
    let mut seen = seen;
    seen.extend(drain_direct(client).await);
    seen
}

fn connection_id(greeting: &ServerMessage) -> String {
    match greeting {
        ServerMessage::ConnectionEstablished { connection_id, .. } => connection_id.clone(),
        other => panic!("not a greeting: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_connection_and_broadcast_messages_reach_exactly_their_connections_across_three_gateways()
 {
    let stack = Stack::start().await;
    // The third gateway routes personal messages from one `sb.user.*` subscription
    // (`gateway.user_subscriptions = "shared"`); the others hold one per user.
    let mut shared_env = stack.gateway_env("gw-a3");
    shared_env.push((
        "SWITCHBOARD__GATEWAY__USER_SUBSCRIPTIONS",
        "shared".to_owned(),
    ));
    let gateways = [
        GatewayProcess::spawn(&stack.gateway_env("gw-a1")).await,
        GatewayProcess::spawn(&stack.gateway_env("gw-a2")).await,
        GatewayProcess::spawn(&shared_env).await,
    ];
    // alice: one connection on each gateway and a second one on the first; bob and carol
    // elsewhere. `connect` waits for `connection_established`.
    let alice = viewer("alice@example.com");
    let mut alices = Vec::new();
    for gateway in gateways.iter().chain([&gateways[0]]) {
        alices.push(connect(&gateway.ws_url(&token(&alice))).await);
    }
    let mut bob = connect(&gateways[1].ws_url(&token(&viewer("bob")))).await;
    let mut carol = TestClient::connect(
        &gateways[2].ws_url(&token(&viewer("carol"))),
        protocol::Codec::MsgPack,
    )
    .await
    .unwrap();
    let carol_id = connection_id(&carol.expect_established().await);

    // To alice: once through gateway 1's HTTP API, once on NATS.
    let bus = stack.bus().await;
    assert_eq!(
        post(
            gateways[0].addr,
            &json!({"user": "alice@example.com", "type": "note", "data": {"via": "http"}})
        )
        .await,
        202
    );
    envelope_on_nats(&bus, &Subjects::default().user("alice@example.com"), "note").await;
    for client in &mut alices {
        let seen = expect_direct(client, 2).await;
        assert_eq!(
            seen.len(),
            2,
            "each alice connection gets both, once: {seen:?}"
        );
        assert!(seen.iter().all(|message| message.event == "note"
            && message.user.as_deref() == Some("alice@example.com")));
        let mut via: Vec<&str> = seen.iter().filter_map(|m| m.data["via"].as_str()).collect();
        via.sort_unstable();
        assert_eq!(via, ["http", "nats"]);
    }
    assert!(
        drain_direct(&mut bob).await.is_empty(),
        "bob got alice's messages"
    );
    assert!(
        drain_direct(&mut carol).await.is_empty(),
        "carol got alice's messages"
    );

    // To carol's one connection on gateway 3, through gateway 1's API.
    assert_eq!(
        post(
            gateways[0].addr,
            &json!({"connection_id": carol_id, "type": "just_you", "data": {}})
        )
        .await,
        202
    );
    let seen = expect_direct(&mut carol, 1).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].connection_id.as_deref(), Some(carol_id.as_str()));
    for client in alices.iter_mut().chain([&mut bob]) {
        assert!(drain_direct(client).await.is_empty());
    }

    // Broadcast: through gateway 2's API and on NATS; every connection gets each once.
    assert_eq!(
        post(
            gateways[1].addr,
            &json!({"broadcast": true, "type": "maintenance", "data": {"via": "http"}})
        )
        .await,
        202
    );
    envelope_on_nats(&bus, &Subjects::default().broadcast(), "maintenance").await;
    for client in alices.iter_mut().chain([&mut bob, &mut carol]) {
        let seen = expect_direct(client, 2).await;
        assert_eq!(
            seen.len(),
            2,
            "each connection gets each broadcast once: {seen:?}"
        );
        assert!(seen.iter().all(|message| message.broadcast == Some(true)));
    }
}

/// Measurement, not a check (run with `--ignored --nocapture`): what the personal-message
/// subscription adds to a connect on real NATS. Connections of distinct users each make a
/// `sb.user.<sub>` subscription and a flush before their greeting; further connections of one
/// user reuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints connect figures"]
async fn measure_the_connect_cost_of_the_user_subscription() {
    const CONNECTIONS: usize = 300;
    let stack = Stack::start().await;
    // The per-user connection rate would refuse the "same user" rounds.
    let gateway = stack
        .gateway(|config| config.gateway.connections_per_user_per_minute = 100_000)
        .await;
    let mut figures = Vec::new();
    for (label, distinct) in [
        ("same user", false),
        ("distinct users", true),
        ("same user again", false),
    ] {
        let mut clients = Vec::with_capacity(CONNECTIONS);
        let mut times = Vec::with_capacity(CONNECTIONS);
        for n in 0..CONNECTIONS {
            let sub = if distinct {
                format!("user-{n}")
            } else {
                "shared".to_owned()
            };
            let url = gateway.ws_url(&token(&viewer(&sub)));
            let started = std::time::Instant::now();
            clients.push(connect(&url).await);
            times.push(started.elapsed());
        }
        times.sort_unstable();
        let mean = times.iter().sum::<Duration>() / u32::try_from(CONNECTIONS).unwrap();
        figures.push(format!(
            "{label}: {CONNECTIONS} sequential connects to greeting, mean {mean:?}, p50 {:?}, p99 {:?}",
            times[CONNECTIONS / 2],
            times[CONNECTIONS * 99 / 100]
        ));
        drop(clients);
    }
    for line in figures {
        println!("{line}");
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("process status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Measurement, not a check (run with `--ignored --nocapture`; `E2E_GATEWAY_BIN` for a
/// release binary): the memory a held user costs a gateway process (its `sb.user.<sub>`
/// subscription, dispatch task and map entry), from the RSS growth of 2000 connections of
/// one user against 2000 connections of 2000 users, each in a fresh gateway process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints memory figures"]
async fn measure_the_memory_cost_of_a_held_user() {
    const CONNECTIONS: usize = 2000;
    let stack = Stack::start().await;
    let mut figures = Vec::new();
    for (label, distinct, mode) in [
        ("one user", false, "per_user"),
        ("distinct users", true, "per_user"),
        (
            "distinct users, user_subscriptions = shared",
            true,
            "shared",
        ),
    ] {
        let mut env = stack.gateway_env(&format!("gw-mem-{distinct}-{mode}"));
        env.push((
            "SWITCHBOARD__GATEWAY__CONNECTIONS_PER_USER_PER_MINUTE",
            "100000".to_owned(),
        ));
        env.push(("SWITCHBOARD__GATEWAY__USER_SUBSCRIPTIONS", mode.to_owned()));
        let gateway = GatewayProcess::spawn(&env).await;
        let before = rss_kib(gateway.pid());
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for n in 0..CONNECTIONS {
            let sub = if distinct {
                format!("user-{n}")
            } else {
                "shared".to_owned()
            };
            clients.push(connect(&gateway.ws_url(&token(&viewer(&sub)))).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kib(gateway.pid());
        let per_connection = (after.saturating_sub(before)) as f64 / CONNECTIONS as f64;
        figures.push((label, per_connection));
        drop(clients);
        gateway.kill();
    }
    for (label, per_connection) in &figures {
        println!(
            "{label}: {CONNECTIONS} connections, RSS growth {per_connection:.2} KiB per connection"
        );
    }
    println!(
        "a held user costs about {:.2} KiB per_user, {:.2} KiB shared",
        figures[1].1 - figures[0].1,
        figures[2].1 - figures[0].1
    );
}
