//! Tests of the configuration.
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn defaults_are_valid() {
    assert_eq!(Config::default().validate(), Ok(()));
}

#[test]
fn devices_come_from_toml_tables_with_defaults() {
    let toml = r#"
        [device_reader]
        listen = "127.0.0.1:9100"

        [[device_reader.devices]]
        id = "opm-1"
        driver = "scpi-tcp"
        address = "10.0.0.7"
        modules = [1, 4]
        interval = "250ms"

        [[device_reader.devices]]
        id = "mock-1"
        fault_rate = 0.1
        active = false
    "#;
    let path =
        std::env::temp_dir().join(format!("device-reader-config-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let config: Config = settings::load(Some(&path), &Default::default()).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(config.validate(), Ok(()));
    let devices = &config.device_reader.devices;
    assert_eq!(devices[0].driver, DriverKind::ScpiTcp);
    assert_eq!(
        devices[0].socket_address().as_deref(),
        Some("10.0.0.7:5025")
    );
    assert_eq!(devices[0].interval, Duration::from_millis(250));
    assert_eq!(devices[1].driver, DriverKind::Mock);
    assert_eq!(devices[1].modules, vec![1]);
    assert!(!devices[1].active);
}

#[test]
fn every_problem_is_listed() {
    let mut config = Config::default();
    let mut bad = DeviceConfig::mock("a.b", vec![], Duration::from_millis(10));
    bad.fault_rate = 2.0;
    let mut scpi = DeviceConfig::scpi("s", "", vec![1, 1], Duration::from_secs(1));
    scpi.power_query = "READ?".into();
    config.device_reader.devices = vec![
        bad,
        scpi,
        DeviceConfig::mock("s", vec![1], Duration::from_secs(1)),
    ];
    config.device_reader.failures_before_unavailable = 0;
    let problems = config.validate().unwrap_err();
    // id, modules, interval, fault_rate; address, module twice, power_query; duplicate id;
    // failures_before_unavailable.
    assert_eq!(problems.len(), 9, "{problems:#?}");
}

#[test]
fn lease_timing_keeps_takeover_within_two_intervals() {
    let section = DeviceReaderConfig::default();
    let timing = section.lease_timing(Duration::from_millis(500));
    assert_eq!(timing.renew, Duration::from_millis(250));
    assert_eq!(timing.ttl, Duration::from_millis(750));
    assert!(timing.ttl + timing.renew <= Duration::from_secs(1));
    let slow = section.lease_timing(Duration::from_secs(3600));
    assert_eq!(slow.renew, Duration::from_secs(5));
    let fixed = DeviceReaderConfig {
        lease_ttl: Some(Duration::from_secs(3)),
        lease_renew_interval: Some(Duration::from_secs(1)),
        ..DeviceReaderConfig::default()
    };
    assert_eq!(
        fixed.lease_timing(Duration::from_millis(100)),
        LeaseTiming {
            ttl: Duration::from_secs(3),
            renew: Duration::from_secs(1)
        }
    );
}

#[test]
fn addresses_get_the_default_port() {
    let device = |address: &str| DeviceConfig::scpi("d", address, vec![1], MIN_INTERVAL);
    assert_eq!(
        device("host:6000").socket_address().as_deref(),
        Some("host:6000")
    );
    assert_eq!(
        device("host").socket_address().as_deref(),
        Some("host:5025")
    );
    assert_eq!(device(" ").socket_address(), None);
}
