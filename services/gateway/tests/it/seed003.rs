//! Seed 003's endpoints: `/api/v1/ws/v2/power` (flat frames at each client's own interval,
//! errors, heartbeats, drain) and `/api/v1/ws/v2/health` (ping → pong).

use std::time::Duration;

use auth::Issuer;
use auth::test_keys::{OTHER_HMAC_SECRET, claims};
use bus::Bus;
use gateway::test_util::{TestGateway, test_config};
use serde_json::json;
use store::Store;

use crate::devices::{
    FakeDeviceReader, Feed, SeedClient, keys, of_kind, publish_fault, publish_reading, status,
    wait_for_subscribers,
};
use crate::helpers::{assert_recent_rfc3339, token};

const ROOM: &str = "devices.opm-1.m4";

async fn gateway_on(bus: &Bus, adjust: impl FnOnce(&mut gateway::Config)) -> TestGateway {
    let mut config = test_config();
    adjust(&mut config);
    TestGateway::start(config, bus.clone(), Store::memory()).await
}

fn power(query: &str, sub: &str) -> String {
    format!("/api/v1/ws/v2/power?{query}&token={}", token(&claims(sub)))
}

#[tokio::test]
async fn each_power_client_gets_the_newest_reading_once_per_its_own_interval() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, |_| {}).await;
    let mut fast = SeedClient::connect(
        &gateway,
        &power("device=opm-1&module=4&interval=0.1", "fast"),
    )
    .await
    .expect("upgrade");
    let mut slow =
        SeedClient::connect(&gateway, &power("device=opm-1&module=4&interval=1", "slow"))
            .await
            .expect("upgrade");
    wait_for_subscribers(&gateway, ROOM, 2).await;
    // 50 readings per second: the fast client wants one in five, the slow one in fifty.
    let feed = Feed::start(&bus, "opm-1", 4, Duration::from_millis(20));
    fast.next_of("data").await;
    slow.next_of("data").await;
    let window = Duration::from_secs(3);
    let (fast_frames, slow_frames) = tokio::join!(
        fast.collect(window, Some(&feed.latest)),
        slow.collect(window, Some(&feed.latest))
    );
    let fast_data = of_kind(&fast_frames, "data");
    let slow_data = of_kind(&slow_frames, "data");
    // 10/s and 1/s over 3 s, with room for a loaded machine.
    assert!(
        (22..=33).contains(&fast_data.len()),
        "interval 0.1 got {} readings in 3 s",
        fast_data.len()
    );
    assert!(
        (2..=4).contains(&slow_data.len()),
        "interval 1 got {} readings in 3 s",
        slow_data.len()
    );
    for frames in [&fast_data, &slow_data] {
        let mut previous = 0.0;
        for (frame, latest_at_arrival) in frames.iter() {
            let seq = frame["ch1_power"].as_f64().expect("ch1_power is a number");
            assert!(seq > previous, "readings go forward, never a backlog");
            previous = seq;
            // The newest: a backlog would fall further behind with every frame (49 readings
            // per frame for the slow client); allow half a second of a loaded machine's lag.
            assert!(
                *latest_at_arrival as f64 - seq <= 25.0,
                "reading {seq} arrived when {latest_at_arrival} was the newest"
            );
        }
    }
    let (frame, _) = fast_data[0];
    assert_eq!(
        keys(frame),
        [
            "ch1_power",
            "ch2_power",
            "ch3_power",
            "ch4_power",
            "device_id",
            "module",
            "timestamp",
            "type",
            "unit",
            "wavelength_nm"
        ]
    );
    assert_eq!(frame["module"], 4);
    assert_eq!(frame["unit"], "dBm");
    assert_eq!(frame["wavelength_nm"], json!(1310.0));
    let timestamp = frame["timestamp"]
        .as_f64()
        .expect("unix seconds with a fraction");
    let now = protocol::time::now_unix_ms() as f64 / 1000.0;
    assert!(
        (now - timestamp).abs() < 60.0,
        "timestamp {timestamp} is unix seconds"
    );
}

#[tokio::test]
async fn a_client_at_the_device_rate_gets_every_reading() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, |_| {}).await;
    let mut client = SeedClient::connect(
        &gateway,
        &power("device=opm-1&module=4&interval=0.1", "matched"),
    )
    .await
    .expect("upgrade");
    wait_for_subscribers(&gateway, ROOM, 1).await;
    let feed = Feed::start(&bus, "opm-1", 4, Duration::from_millis(100));
    client.next_of("data").await;
    let frames = client
        .collect(Duration::from_secs(3), Some(&feed.latest))
        .await;
    let readings = of_kind(&frames, "data");
    // Deliveries keep to the interval's grid, so timer lateness does not add up into
    // skipped readings; allow for a loaded machine's jitter.
    assert!(
        (26..=31).contains(&readings.len()),
        "a 100 ms client of a 100 ms device got {} readings in 3 s",
        readings.len()
    );
}

#[tokio::test]
async fn faults_are_never_conflated_and_the_stream_carries_on() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, |_| {}).await;
    let mut client = SeedClient::connect(&gateway, &power("device=opm-1&module=4&interval=2", "c"))
        .await
        .expect("upgrade");
    wait_for_subscribers(&gateway, ROOM, 1).await;
    publish_reading(&bus, "opm-1", 4, 1).await;
    assert_eq!(client.next_of("data").await["ch1_power"], json!(1.0));
    // Within the 2 s interval: a reading that waits, then three faults in a row.
    publish_reading(&bus, "opm-1", 4, 2).await;
    for count in 1..=3 {
        publish_fault(&bus, "opm-1", 4, count).await;
    }
    for count in 1..=3 {
        let frame = client.next().await.expect("open");
        assert_eq!(
            frame["type"], "error",
            "faults come at once, before any held reading: {frame}"
        );
        assert_eq!(frame["error_count"], count);
        assert_eq!(frame["recoverable"], true);
        assert_eq!(frame["message"], "Hardware temporarily unavailable");
        assert_eq!(
            keys(&frame),
            [
                "device_id",
                "error_count",
                "message",
                "module",
                "recoverable",
                "timestamp",
                "type"
            ]
        );
    }
    // The device recovers: the next reading arrives when the interval is over; the one from
    // before the faults is never shown after them.
    publish_reading(&bus, "opm-1", 4, 3).await;
    let frame = tokio::time::timeout(Duration::from_secs(8), client.next_of("data"))
        .await
        .expect("a reading after the interval");
    assert_eq!(frame["ch1_power"], json!(3.0));
}

#[tokio::test]
async fn power_and_health_clients_get_seed_heartbeats_counting_instrument_streams() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, |config| {
        config.gateway.heartbeat_interval = Duration::from_millis(200);
        config.gateway.heartbeat_timeout = Duration::from_secs(5);
    })
    .await;
    let mut stream = SeedClient::connect(&gateway, &power("device=opm-1&module=4", "p"))
        .await
        .expect("upgrade");
    wait_for_subscribers(&gateway, ROOM, 1).await;
    let mut health = SeedClient::connect(&gateway, "/api/v1/ws/v2/health")
        .await
        .expect("no token needed");
    for client in [&mut stream, &mut health] {
        let heartbeat = client.next_of("heartbeat").await;
        assert_eq!(keys(&heartbeat), ["active_streams", "timestamp", "type"]);
        assert_eq!(
            heartbeat["active_streams"], 1,
            "one instrument stream is open"
        );
        assert_recent_rfc3339(heartbeat["timestamp"].as_str().expect("a string"));
    }
}

#[tokio::test]
async fn health_answers_a_text_ping_with_pong_and_needs_a_token_only_when_configured() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut probe = SeedClient::connect(&gateway, "/api/v1/ws/v2/health")
        .await
        .expect("upgrade");
    probe.send_text("ping").await;
    let pong = probe.next().await.expect("open");
    assert_eq!(keys(&pong), ["timestamp", "type"]);
    assert_eq!(pong["type"], "pong");
    assert_recent_rfc3339(pong["timestamp"].as_str().expect("a string"));
    probe.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(probe.next_of("pong").await["type"], "pong");
    probe
        .send_text(r#"{"type":"subscribe","rooms":["nodes"]}"#)
        .await;
    assert_eq!(probe.next_of("error").await["code"], "unknown_type");

    let guarded =
        TestGateway::start_memory(|config| config.gateway.health_requires_token = true).await;
    let mut anonymous = SeedClient::connect(&guarded, "/api/v1/ws/v2/health")
        .await
        .expect("refusals come on the socket");
    assert_eq!(
        anonymous.next().await.expect("error frame")["code"],
        "token_missing"
    );
    assert_eq!(anonymous.next().await.expect_err("closed"), Some(4401));
    let path = format!("/api/v1/ws/v2/health?token={}", token(&claims("probe")));
    let mut allowed = SeedClient::connect(&guarded, &path).await.expect("upgrade");
    allowed.send_text("ping").await;
    assert_eq!(allowed.next_of("pong").await["type"], "pong");
}

#[tokio::test]
async fn bad_parameters_are_refused_before_the_upgrade_with_the_protocol_error() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    for (query, mentions) in [
        ("device=opm-1&module=4&interval=0.01", "interval"),
        ("device=opm-1&module=4&interval=600", "interval"),
        ("device=opm-1&module=4&interval=soon", "interval"),
        ("device=opm-1&module=99", "module"),
        ("device=opm-1", "module"),
        ("device=opm.1&module=4", "device"),
    ] {
        let refusal = SeedClient::connect(&gateway, &power(query, "bad"))
            .await
            .err()
            .unwrap_or_else(|| panic!("{query} is refused"));
        assert_eq!(refusal.status, 400, "{query}");
        assert_eq!(refusal.body["error"]["code"], "invalid_message", "{query}");
        let message = refusal.body["error"]["message"]
            .as_str()
            .expect("a message");
        assert!(message.contains(mentions), "{query}: {message}");
    }
}

#[tokio::test]
async fn an_omitted_device_is_the_only_one_the_device_reader_knows() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, |_| {}).await;
    // Nobody to ask.
    let refusal = SeedClient::connect(&gateway, &power("module=4", "a"))
        .await
        .err()
        .expect("refused");
    assert_eq!(refusal.status, 503);
    assert_eq!(refusal.body["error"]["code"], "unavailable");

    let reader = FakeDeviceReader::start(&bus, vec![status("opm-1", &[1, 4])]).await;
    let mut client = SeedClient::connect(&gateway, &power("module=4&interval=0.05", "b"))
        .await
        .expect("the only device is chosen");
    wait_for_subscribers(&gateway, ROOM, 1).await;
    publish_reading(&bus, "opm-1", 4, 7).await;
    assert_eq!(client.next_of("data").await["ch1_power"], json!(7.0));
    let refusal = SeedClient::connect(&gateway, &power("module=2", "c"))
        .await
        .err()
        .expect("no such module");
    assert_eq!(refusal.status, 400);
    drop(reader);

    let _reader =
        FakeDeviceReader::start(&bus, vec![status("opm-1", &[4]), status("opm-2", &[4])]).await;
    let refusal = SeedClient::connect(&gateway, &power("module=4", "d"))
        .await
        .err()
        .expect("two devices: ambiguous");
    assert_eq!(refusal.status, 400);
    let message = refusal.body["error"]["message"]
        .as_str()
        .expect("a message");
    assert!(
        message.contains("opm-1") && message.contains("opm-2"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_forged_or_narrow_tokens_close_the_stream_with_their_codes() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    let mut missing = SeedClient::connect(&gateway, "/api/v1/ws/v2/power?device=opm-1&module=4")
        .await
        .expect("refusals come on the socket");
    assert_eq!(
        missing.next().await.expect("error frame")["code"],
        "token_missing"
    );
    assert_eq!(missing.next().await.expect_err("closed"), Some(4401));

    let forged = Issuer::hs256(OTHER_HMAC_SECRET)
        .issue(&claims("mallory"))
        .expect("signs");
    let path = format!("/api/v1/ws/v2/power?device=opm-1&module=4&token={forged}");
    let mut forged = SeedClient::connect(&gateway, &path).await.expect("upgrade");
    assert_eq!(
        forged.next().await.expect("error frame")["code"],
        "token_invalid"
    );
    assert_eq!(forged.next().await.expect_err("closed"), Some(4401));

    let mut narrow = claims("narrow");
    narrow.rooms = vec!["devices.opm-2.>".to_owned()];
    let path = format!(
        "/api/v1/ws/v2/power?device=opm-1&module=4&token={}",
        token(&narrow)
    );
    let mut refused = SeedClient::connect(&gateway, &path).await.expect("upgrade");
    assert_eq!(
        refused.next().await.expect("error frame")["code"],
        "forbidden"
    );
    assert_eq!(refused.next().await.expect_err("closed"), Some(4403));

    // A bearer header works as on every endpoint.
    let mut bearer = SeedClient::connect_with(
        &gateway,
        "/api/v1/ws/v2/power?device=opm-1&module=4",
        Some(&token(&claims("bearer"))),
    )
    .await
    .expect("upgrade");
    bearer.send_text("ping").await;
    assert_eq!(bearer.next_of("pong").await["type"], "pong");
}

#[tokio::test]
async fn drain_tells_power_clients_to_reconnect_then_closes_1001() {
    let bus = Bus::memory();
    let gateway = gateway_on(&bus, |_| {}).await;
    let mut client = SeedClient::connect(&gateway, &power("device=opm-1&module=4", "d"))
        .await
        .expect("upgrade");
    wait_for_subscribers(&gateway, ROOM, 1).await;
    let shutdown = tokio::spawn(gateway.shutdown());
    let reconnect = client.next_of("reconnect").await;
    assert_eq!(keys(&reconnect), ["reason", "retry_after", "type"]);
    let retry_after = reconnect["retry_after"].as_f64().expect("seconds");
    assert!((1.0..=5.0).contains(&retry_after), "{retry_after}");
    assert_eq!(client.next().await.expect_err("closed"), Some(1001));
    shutdown.await.expect("joined").expect("clean drain");
}
