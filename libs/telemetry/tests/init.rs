//! `telemetry::init` installs a process-global subscriber, so it gets its own test binary.

use std::time::Duration;

use settings::{LogFormat, TelemetryConfig};
use switchboard_telemetry as telemetry;
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_exports_spans_to_the_configured_endpoint_and_refuses_a_second_init() {
    // A bare TCP listener stands in for the collector: an accepted connection proves the
    // exporter tried to ship the span; nothing answers, so shutdown must still return.
    let collector = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = TelemetryConfig {
        log_format: LogFormat::Json,
        log_filter: Some("info".into()),
        otlp_endpoint: Some(format!("http://{}", collector.local_addr().unwrap())),
        otlp_timeout: Duration::from_millis(300),
        ..TelemetryConfig::default()
    };
    let guard = telemetry::init("switchboard-telemetry-test", &config).unwrap();

    let traceparent = tracing::info_span!("unit_of_work").in_scope(|| {
        tracing::info!("inside the span");
        telemetry::current_traceparent()
    });
    assert!(traceparent.is_some_and(|value| value.starts_with("00-")));

    assert!(matches!(
        telemetry::init("again", &TelemetryConfig::default()),
        Err(telemetry::InitError::AlreadyInitialized(_))
    ));

    let accepted = tokio::spawn(async move { collector.accept().await });
    // The guard's drop blocks while flushing; keep it off the runtime's worker threads.
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || drop(guard)),
    )
    .await
    .expect("shutdown is bounded by the export timeout")
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), accepted)
        .await
        .expect("the exporter connected to the collector")
        .unwrap()
        .unwrap();
}
