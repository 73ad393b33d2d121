//! `GET /api/ws/devices[/{id}]`: the device reader's answers over the bus, 503 without one.

use bus::Bus;
use gateway::test_util::{TestGateway, get_json, test_config};
use protocol::ErrorCode;
use store::Store;

use crate::devices::{FakeDeviceReader, status};

#[tokio::test]
async fn devices_are_unavailable_without_a_device_reader() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    for path in ["/api/ws/devices", "/api/ws/devices/opm-1"] {
        let (status, body) = get_json(gateway.addr, path).await;
        assert_eq!(status, 503, "{path}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(body["error"]["message"], "no device reader answered");
    }
}

#[tokio::test]
async fn devices_are_proxied_to_the_device_reader_with_its_errors() {
    let bus = Bus::memory();
    let gateway = TestGateway::start(test_config(), bus.clone(), Store::memory()).await;
    let _reader = FakeDeviceReader::start(&bus, vec![status("opm-1", &[1, 4])]).await;
    let (code, body) = get_json(gateway.addr, "/api/ws/devices").await;
    assert_eq!(code, 200);
    assert_eq!(body[0]["device_id"], "opm-1");
    assert_eq!(body[0]["state"], "connected");
    assert_eq!(body[0]["modules"], serde_json::json!([1, 4]));
    let (code, body) = get_json(gateway.addr, "/api/ws/devices/opm-1").await;
    assert_eq!(code, 200);
    assert_eq!(body["reader_id"], "dr-test");
    // The device reader's error keeps its code, status and reason.
    let (code, body) = get_json(gateway.addr, "/api/ws/devices/opm-9").await;
    assert_eq!(code, ErrorCode::NodeNotConnected.http_status());
    assert_eq!(body["error"]["code"], ErrorCode::NodeNotConnected.as_str());
    assert_eq!(body["error"]["message"], "no device opm-9");
    let (code, body) = get_json(gateway.addr, "/api/ws/devices/bad.id").await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["code"], "invalid_message");
}
