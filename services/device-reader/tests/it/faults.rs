//! Hardware errors never end the stream: error_count 1, 2, 3 …, unavailable after the
//! configured number, retried with backoff, connected again on the first good reading.

use protocol::device::EVENT_ERROR;
use std::time::Duration;

use bus::Bus;
use device_reader::DeviceConfig;
use protocol::device::{DeviceStatus, FaultRequest, api};
use protocol::metrics::ApiReply;
use store::Store;

use crate::helpers::{Collector, ask, config, eventually, spawn};

async fn switch(bus: &Bus, request: FaultRequest) {
    let reply: ApiReply<DeviceStatus> = ask(bus, api::INJECT_FAULT, &request).await;
    reply.into_result().expect("fault switched");
}

#[tokio::test]
async fn errors_count_up_turn_unavailable_and_recover_to_connected() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let device = DeviceConfig::mock("opm-f", vec![2], Duration::from_millis(100));
    let reader = spawn(config("dr-a", vec![device]), &bus, &store).await;
    let room = "devices.opm-f.m2";
    eventually(Duration::from_secs(3), "first reading", || async {
        !collector.events(room, "data").is_empty()
    })
    .await;

    switch(
        &bus,
        FaultRequest {
            device_id: "opm-f".into(),
            disconnected: Some(true),
            ..FaultRequest::default()
        },
    )
    .await;
    eventually(Duration::from_secs(5), "five errors", || async {
        collector.events(room, EVENT_ERROR).len() >= 5
    })
    .await;
    let errors = collector.events(room, EVENT_ERROR);
    let counts: Vec<u64> = errors
        .iter()
        .map(|seen| seen.data["error_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts[..5], [1, 2, 3, 4, 5], "{counts:?}");
    let recoverable: Vec<bool> = errors
        .iter()
        .map(|seen| seen.data["recoverable"].as_bool().unwrap())
        .collect();
    assert_eq!(recoverable[..4], [true, true, false, false]);
    assert!(
        errors[0].data["message"]
            .as_str()
            .unwrap()
            .contains("connection")
    );
    // After the third failure the device is retried with backoff (100, 200, 400 ms), not at
    // every 100 ms tick.
    let spacing = errors[4].at - errors[3].at;
    assert!(spacing >= Duration::from_millis(180), "{spacing:?}");
    eventually(Duration::from_secs(2), "unavailable status", || async {
        collector
            .statuses("opm-f")
            .iter()
            .any(|status| status["state"] == "unavailable")
    })
    .await;
    let known: ApiReply<DeviceStatus> = ask(
        &bus,
        api::GET_DEVICE,
        &protocol::device::DeviceRequest {
            device_id: "opm-f".into(),
        },
    )
    .await;
    let known = known.into_result().unwrap();
    assert_eq!(known.state, protocol::device::DeviceState::Unavailable);
    assert!(known.error_count >= 3);

    collector.clear();
    switch(
        &bus,
        FaultRequest {
            device_id: "opm-f".into(),
            disconnected: Some(false),
            ..FaultRequest::default()
        },
    )
    .await;
    eventually(Duration::from_secs(3), "connected again", || async {
        collector
            .statuses("opm-f")
            .iter()
            .any(|status| status["state"] == "connected" && status["error_count"] == 0)
    })
    .await;
    eventually(Duration::from_secs(2), "readings again", || async {
        collector.events(room, "data").len() >= 3
    })
    .await;

    // The count starts over after the recovery.
    collector.clear();
    switch(
        &bus,
        FaultRequest {
            device_id: "opm-f".into(),
            fail_next: Some(1),
            ..FaultRequest::default()
        },
    )
    .await;
    eventually(Duration::from_secs(2), "one transient error", || async {
        !collector.events(room, EVENT_ERROR).is_empty()
    })
    .await;
    let error = &collector.events(room, EVENT_ERROR)[0].data;
    assert_eq!(error["error_count"], 1);
    assert_eq!(error["recoverable"], true);
    assert_eq!(error["message"], "Hardware temporarily unavailable");
    reader.stop().await;
}

#[tokio::test]
async fn a_stuck_mock_is_timed_out_and_the_stream_goes_on() {
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let mut device = DeviceConfig::mock("opm-s", vec![1], Duration::from_millis(100));
    device.timeout = Duration::from_millis(150);
    device.stuck = true;
    let reader = spawn(config("dr-a", vec![device]), &bus, &store).await;
    eventually(Duration::from_secs(3), "two timeouts", || async {
        collector.events("devices.opm-s.m1", EVENT_ERROR).len() >= 2
    })
    .await;
    let error = &collector.events("devices.opm-s.m1", EVENT_ERROR)[0].data;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{error}"
    );
    switch(
        &bus,
        FaultRequest {
            device_id: "opm-s".into(),
            stuck: Some(false),
            ..FaultRequest::default()
        },
    )
    .await;
    eventually(
        Duration::from_secs(3),
        "readings after unsticking",
        || async { !collector.events("devices.opm-s.m1", "data").is_empty() },
    )
    .await;
    reader.stop().await;
}
