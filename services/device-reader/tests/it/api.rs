//! The management API's contract, over NATS and HTTP.

use std::time::Duration;

use bus::Bus;
use device_reader::DeviceConfig;
use protocol::ErrorCode;
use protocol::device::{
    DeviceRequest, DeviceState, DeviceStatus, FaultRequest, ListDevicesRequest, api,
};
use protocol::metrics::ApiReply;
use serde_json::json;
use store::Store;

use crate::helpers::{Collector, ask, config, eventually, http, spawn};

#[tokio::test]
async fn nats_api_lists_gets_adds_starts_and_stops_devices() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let mut idle = DeviceConfig::mock("idle", vec![1], Duration::from_millis(100));
    idle.active = false;
    let reader = spawn(config("dr-a", vec![idle]), &bus, &store).await;

    let listed: ApiReply<Vec<DeviceStatus>> =
        ask(&bus, api::LIST_DEVICES, &ListDevicesRequest {}).await;
    let listed = listed.into_result().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, DeviceState::Stopped);
    assert_eq!(listed[0].driver, "mock");

    let unknown: ApiReply<DeviceStatus> = ask(
        &bus,
        api::GET_DEVICE,
        &DeviceRequest {
            device_id: "nope".into(),
        },
    )
    .await;
    assert_eq!(
        unknown.into_result().unwrap_err().code,
        ErrorCode::DeviceNotFound
    );

    // add_device takes a device's configuration table (here as JSON).
    let added: ApiReply<DeviceStatus> = ask(
        &bus,
        api::ADD_DEVICE,
        &json!({"id": "opm-9", "modules": [3], "interval": "100ms", "unit": "mW"}),
    )
    .await;
    let added = added.into_result().unwrap();
    assert_eq!(added.modules, vec![3]);
    assert_eq!(added.interval_ms, 100);
    eventually(Duration::from_secs(3), "the added device reads", || async {
        !collector.events("devices.opm-9.m3", "data").is_empty()
    })
    .await;
    assert_eq!(
        collector.events("devices.opm-9.m3", "data")[0].data["unit"],
        "mW"
    );
    let twice: ApiReply<DeviceStatus> = ask(
        &bus,
        api::ADD_DEVICE,
        &json!({"id": "opm-9", "modules": [3]}),
    )
    .await;
    assert_eq!(
        twice.into_result().unwrap_err().code,
        ErrorCode::InvalidMessage
    );
    let invalid: ApiReply<DeviceStatus> = ask(
        &bus,
        api::ADD_DEVICE,
        &json!({"id": "bad.id", "interval": "1ms"}),
    )
    .await;
    let invalid = invalid.into_result().unwrap_err();
    assert_eq!(invalid.code, ErrorCode::InvalidMessage);
    assert!(invalid.message.contains("interval"), "{}", invalid.message);

    let stopped: ApiReply<DeviceStatus> = ask(
        &bus,
        api::STOP_DEVICE,
        &DeviceRequest {
            device_id: "opm-9".into(),
        },
    )
    .await;
    assert_eq!(stopped.into_result().unwrap().state, DeviceState::Stopped);
    eventually(
        Duration::from_secs(2),
        "stopped status published",
        || async {
            collector
                .statuses("opm-9")
                .last()
                .is_some_and(|status| status["state"] == "stopped")
        },
    )
    .await;
    let before = collector.events("devices.opm-9.m3", "data").len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        collector.events("devices.opm-9.m3", "data").len(),
        before,
        "a stopped device is not read"
    );

    let started: ApiReply<DeviceStatus> = ask(
        &bus,
        api::START_DEVICE,
        &DeviceRequest {
            device_id: "idle".into(),
        },
    )
    .await;
    assert_eq!(started.into_result().unwrap().state, DeviceState::Starting);
    eventually(
        Duration::from_secs(3),
        "the started device reads",
        || async { !collector.events("devices.idle.m1", "data").is_empty() },
    )
    .await;

    let unknown_method: ApiReply<()> = ask(&bus, "bogus", &json!({})).await;
    assert_eq!(
        unknown_method.into_result().unwrap_err().code,
        ErrorCode::InvalidMessage
    );
    let missing: ApiReply<DeviceStatus> = ask(
        &bus,
        api::INJECT_FAULT,
        &FaultRequest {
            device_id: "nope".into(),
            stuck: Some(true),
            ..FaultRequest::default()
        },
    )
    .await;
    assert_eq!(
        missing.into_result().unwrap_err().code,
        ErrorCode::DeviceNotFound
    );
    reader.stop().await;
}

#[tokio::test]
async fn http_api_answers_like_nats_and_serves_health_and_metrics() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let scpi = DeviceConfig::scpi("opm-s", "127.0.0.1:9", vec![1], Duration::from_secs(1));
    let mut idle = DeviceConfig::mock("idle", vec![1], Duration::from_millis(100));
    idle.active = false;
    let reader = spawn(config("dr-a", vec![scpi, idle]), &bus, &store).await;
    let addr = reader.addr;

    let (status, body) = http(addr, "GET", "/v1/devices", None).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 2);
    let (status, body) = http(addr, "GET", "/v1/devices/idle", None).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("stopped")));
    let (status, body) = http(addr, "GET", "/v1/devices/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "device_not_found");

    let (status, body) = http(
        addr,
        "POST",
        "/v1/devices",
        Some(json!({"id": "opm-h", "modules": [1, 2], "interval": "200ms"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["device_id"], "opm-h");
    let (status, _) = http(addr, "POST", "/v1/devices", Some(json!({"id": 5}))).await;
    assert_eq!(status, 400);

    let (status, body) = http(
        addr,
        "POST",
        "/v1/devices/opm-h/faults",
        Some(json!({"fault_rate": 0.5})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        addr,
        "POST",
        "/v1/devices/opm-s/faults",
        Some(json!({"stuck": true})),
    )
    .await;
    assert_eq!(status, 400, "scpi devices take no injected faults: {body}");
    let (status, body) = http(addr, "POST", "/v1/devices/idle/start", None).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("starting")));
    let (status, body) = http(addr, "POST", "/v1/devices/idle/stop", None).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("stopped")));
    let (status, _) = http(addr, "POST", "/v1/devices/nope/stop", None).await;
    assert_eq!(status, 404);

    assert_eq!(http(addr, "GET", "/healthz", None).await.0, 200);
    let (status, body) = http(addr, "GET", "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instance_id"], "dr-a");
    eventually(Duration::from_secs(3), "readings counted", || async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text.contains("switchboard_device_reader_readings_total{device=\"opm-h\"}")
            && text.contains(
                "switchboard_device_reader_read_errors_total{device=\"opm-s\",kind=\"connection\"}",
            )
    })
    .await;
    reader.stop().await;
}

#[tokio::test]
async fn a_change_on_one_replica_holds_on_every_replica() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let device = || {
        vec![DeviceConfig::mock(
            "opm-r",
            vec![1],
            Duration::from_millis(100),
        )]
    };
    let a = spawn(config("dr-a", device()), &bus, &store).await;
    let b = spawn(config("dr-b", device()), &bus, &store).await;
    eventually(Duration::from_secs(3), "readings", || async {
        !collector.events("devices.opm-r.m1", "data").is_empty()
    })
    .await;
    // Stopped through whichever replica answers: neither may read it afterwards.
    let (status, _) = http(a.addr, "POST", "/v1/devices/opm-r/stop", None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = collector.events("devices.opm-r.m1", "data").len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(collector.events("devices.opm-r.m1", "data").len(), before);
    let (_, listed) = http(b.addr, "GET", "/v1/devices/opm-r", None).await;
    assert_eq!(listed["state"], "stopped");
    // Added on b, read by one of them.
    let (status, _) = http(
        b.addr,
        "POST",
        "/v1/devices",
        Some(json!({"id": "opm-n", "interval": "100ms"})),
    )
    .await;
    assert_eq!(status, 201);
    eventually(Duration::from_secs(3), "the added device reads", || async {
        !collector.events("devices.opm-n.m1", "data").is_empty()
    })
    .await;
    let (status, _) = http(a.addr, "GET", "/v1/devices/opm-n", None).await;
    assert_eq!(status, 200, "the other replica knows the added device");
    a.stop().await;
    b.stop().await;
}
