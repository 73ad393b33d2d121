//! The scpi-tcp driver against the fake instrument: garbage is an error, a hang times out, a
//! closed connection is reconnected, and readings come back when the instrument recovers.

use protocol::device::EVENT_ERROR;
use std::time::Duration;

use bus::Bus;
use device_reader::DeviceConfig;
use device_reader::driver::{Driver, ReadError, ScpiDriver};
use instrument_sim::{InstrumentSim, Mode};
use store::Store;
use tokio::time::Instant;

use crate::helpers::{Collector, config, eventually, spawn};

fn device(sim: &InstrumentSim) -> DeviceConfig {
    let mut device = DeviceConfig::scpi(
        "opm-x",
        &sim.local_addr().to_string(),
        vec![1, 2],
        Duration::from_millis(100),
    );
    device.timeout = Duration::from_millis(200);
    device.reconnect_min = Duration::from_millis(50);
    device.reconnect_max = Duration::from_millis(200);
    device
}

#[tokio::test]
async fn reads_wavelength_and_four_channels_over_one_connection() {
    let sim = InstrumentSim::bind("127.0.0.1:0").await.unwrap();
    let mut driver = ScpiDriver::new(&device(&sim));
    for _ in 0..10 {
        let values = driver.read(1).await.unwrap();
        assert!((values.wavelength_nm - 1310.0).abs() < 1e-6);
        assert!((values.channels[0] - -15.1).abs() < 0.2, "{values:?}");
        assert!((values.channels[3] - -30.1).abs() < 0.2, "{values:?}");
        let other = driver.read(2).await.unwrap();
        assert!((other.wavelength_nm - 1550.0).abs() < 1e-6);
    }
    assert_eq!(sim.connections(), 1, "one connection, kept");
    assert_eq!(sim.queries(), 100);
}

#[tokio::test]
async fn garbage_is_an_error_and_the_next_read_starts_afresh() {
    let sim = InstrumentSim::bind("127.0.0.1:0").await.unwrap();
    let mut driver = ScpiDriver::new(&device(&sim));
    driver.read(1).await.unwrap();
    sim.set_mode(Mode::Garbage);
    match driver.read(1).await {
        Err(ReadError::Garbage { query, reason }) => {
            assert_eq!(query, "SENS1:CHAN1:POW:WAV?");
            assert_eq!(reason, "not a number");
        }
        other => panic!("expected garbage, got {other:?}"),
    }
    assert!(!driver.is_connected());
    sim.set_mode(Mode::Normal);
    driver.read(1).await.unwrap();
    assert_eq!(sim.connections(), 2);
}

#[tokio::test]
async fn a_hanging_instrument_is_timed_out() {
    let sim = InstrumentSim::bind("127.0.0.1:0").await.unwrap();
    let mut driver = ScpiDriver::new(&device(&sim));
    driver.read(1).await.unwrap();
    sim.set_mode(Mode::Hang);
    let started = Instant::now();
    assert_eq!(
        driver.read(1).await,
        Err(ReadError::Timeout(Duration::from_millis(200)))
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_millis(600),
        "{took:?}"
    );
    sim.set_mode(Mode::Normal);
    driver.read(1).await.unwrap();
}

#[tokio::test]
async fn a_closed_connection_is_reconnected() {
    let sim = InstrumentSim::bind("127.0.0.1:0").await.unwrap();
    let mut driver = ScpiDriver::new(&device(&sim));
    driver.read(1).await.unwrap();
    sim.set_mode(Mode::Close);
    assert!(matches!(
        driver.read(1).await,
        Err(ReadError::Connection(_))
    ));
    sim.set_mode(Mode::Normal);
    driver.read(1).await.unwrap();
    assert_eq!(sim.connections(), 2);
    assert_eq!(sim.open_connections(), 1);
}

#[tokio::test]
async fn an_unreachable_instrument_is_retried_with_backoff() {
    let sim = InstrumentSim::bind("127.0.0.1:0").await.unwrap();
    let config = device(&sim);
    sim.shutdown().await;
    let mut driver = ScpiDriver::new(&config);
    assert!(matches!(
        driver.read(1).await,
        Err(ReadError::Connection(_))
    ));
    // Within the backoff no connect is attempted; the read fails at once.
    match driver.read(1).await {
        Err(ReadError::Connection(reason)) => assert!(reason.contains("next attempt"), "{reason}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[tokio::test]
async fn silence_then_recovery_through_the_reader() {
    let sim = InstrumentSim::bind("127.0.0.1:0").await.unwrap();
    let (bus, store) = (Bus::memory(), Store::memory());
    let collector = Collector::start(&bus).await;
    let mut device = device(&sim);
    device.modules = vec![1];
    let reader = spawn(config("dr-a", vec![device]), &bus, &store).await;
    let room = "devices.opm-x.m1";
    eventually(Duration::from_secs(3), "readings", || async {
        collector.events(room, "data").len() >= 3
    })
    .await;
    sim.go_silent_for(Duration::from_millis(1500));
    eventually(Duration::from_secs(3), "timeouts counted", || async {
        collector.events(room, EVENT_ERROR).len() >= 3
    })
    .await;
    let errors = collector.events(room, EVENT_ERROR);
    assert_eq!(errors[0].data["error_count"], 1);
    assert_eq!(errors[1].data["error_count"], 2);
    assert_eq!(errors[2].data["recoverable"], false);
    eventually(
        Duration::from_secs(5),
        "connected after the silence",
        || async {
            collector
                .statuses("opm-x")
                .last()
                .is_some_and(|status| status["state"] == "connected" && status["error_count"] == 0)
        },
    )
    .await;
    let unavailable_seen = collector
        .statuses("opm-x")
        .iter()
        .any(|status| status["state"] == "unavailable");
    assert!(unavailable_seen, "connected → unavailable → connected");
    // Garbage and a closed connection are failures the stream survives too.
    collector.clear();
    sim.set_mode(Mode::Garbage);
    eventually(Duration::from_secs(2), "garbage reported", || async {
        !collector.events(room, EVENT_ERROR).is_empty()
    })
    .await;
    sim.set_mode(Mode::Close);
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.set_mode(Mode::Normal);
    eventually(Duration::from_secs(5), "readings again", || async {
        collector
            .statuses("opm-x")
            .last()
            .is_some_and(|status| status["state"] == "connected")
            && !collector.events(room, "data").is_empty()
    })
    .await;
    assert!(
        sim.open_connections() <= 1,
        "never more than one connection"
    );
    reader.stop().await;
    sim.shutdown().await;
}
