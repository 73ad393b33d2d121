//! Test logging helper.

use std::sync::Once;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

/// Installs a test subscriber once per process; later calls do nothing. Silent unless the
/// environment has `TEST_LOG=1`; then logs go through libtest's capture, filtered by
/// `RUST_LOG` (else `info`).
///
/// It also installs an OpenTelemetry layer with a tracer provider that exports nothing, so
/// trace-context propagation ([`crate::current_traceparent`]) works in tests without a
/// collector. If another subscriber is already installed, that one is kept.
pub fn init_for_tests() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Reading the environment here is the point of this helper: the test runner, not the
        // code under test, chooses verbosity.
        let show_logs = std::env::var_os("TEST_LOG").is_some_and(|value| value == "1");
        let log_layer = show_logs.then(|| {
            let filter = crate::init::build_filter(None)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            fmt::layer().with_test_writer().with_filter(filter)
        });
        let tracer = SdkTracerProvider::builder()
            .build()
            .tracer("switchboard-tests");
        let otel_layer = tracing_opentelemetry::layer().with_tracer(tracer);
        // Err means a subscriber is already set (e.g. by the test itself): keep it.
        let _already_installed = tracing_subscriber::registry()
            .with(log_layer)
            .with(otel_layer)
            .try_init();
    });
}
