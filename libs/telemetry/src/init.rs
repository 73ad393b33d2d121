//! Subscriber and exporter set-up, and the guard that flushes on exit.

use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_otlp::WithTonicConfig as _;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use settings::{LogFormat, TelemetryConfig};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

/// Telemetry could not be set up. `main` exits 64 on [`InitError::Filter`] and
/// [`InitError::Exporter`] (configuration), 1 on the others.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// `log_filter` or `RUST_LOG` is not a valid filter.
    #[error("invalid log filter")]
    Filter(#[source] tracing_subscriber::filter::FromEnvError),
    /// An OTLP endpoint is configured but no Tokio runtime is running.
    #[error("telemetry::init with otlp_endpoint must run inside a tokio runtime")]
    NoRuntime,
    /// The OTLP exporter could not be built (e.g. an unparsable endpoint).
    #[error("cannot build the otlp exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// A global `tracing` subscriber was already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInitialized(#[source] tracing_subscriber::util::TryInitError),
}

/// Keeps the trace exporter alive; dropping it flushes pending spans and shuts the exporter
/// down, waiting at most `otlp_timeout` (plus the exporter's own deadline). Drop it at the end
/// of `main` while the Tokio runtime still runs (the gRPC channel lives on it), ideally a
/// multi-thread runtime, since the drop blocks its thread while flushing.
#[must_use = "dropping the guard immediately shuts trace export down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    shutdown_timeout: Duration,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(error) = provider.shutdown_with_timeout(self.shutdown_timeout)
        {
            tracing::warn!(error = %error, "trace exporter shutdown failed");
        }
    }
}

/// Installs the global `tracing` subscriber for `service_name`.
///
/// Filter: `config.log_filter`, else `RUST_LOG`, else `info`. Format: `json`, `pretty`, or
/// `auto` (pretty when stderr is a terminal). With `config.otlp_endpoint` set, spans are
/// batched (on the SDK's own thread) and exported over OTLP/gRPC with resource attribute
/// `service.name = service_name`, and the W3C trace-context propagator becomes the global
/// propagator. Without it, no OpenTelemetry layer is installed, so [`crate::current_traceparent`]
/// returns `None` and [`crate::set_parent_from_traceparent`] does nothing.
///
/// # Errors
///
/// [`InitError::Filter`] for an invalid filter, [`InitError::NoRuntime`] when an OTLP endpoint
/// is set outside a Tokio runtime, [`InitError::Exporter`] when the exporter cannot be built,
/// [`InitError::AlreadyInitialized`] when a global subscriber exists.
pub fn init(service_name: &str, config: &TelemetryConfig) -> Result<TelemetryGuard, InitError> {
    let filter = build_filter(config.log_filter.as_deref())?;
    let use_json = match config.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let log_layer = if use_json {
        fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        fmt::layer().with_writer(std::io::stderr).boxed()
    };

    let tracer_provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(build_tracer_provider(
            service_name,
            endpoint,
            config.otlp_timeout,
        )?),
        None => None,
    };
    let otel_layer = tracer_provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name.to_owned()))
    });

    tracing_subscriber::registry()
        .with(filter)
        .with(log_layer)
        .with(otel_layer)
        .try_init()
        .map_err(InitError::AlreadyInitialized)?;
    if tracer_provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    Ok(TelemetryGuard {
        tracer_provider,
        shutdown_timeout: config.otlp_timeout,
    })
}

/// Builds the filter from the configured directives, else `RUST_LOG`, else `info`.
pub(crate) fn build_filter(configured: Option<&str>) -> Result<EnvFilter, InitError> {
    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    match configured {
        Some(directives) => builder
            .parse(directives)
            .map_err(|error| InitError::Filter(error.into())),
        None => builder.from_env().map_err(InitError::Filter),
    }
}

fn build_tracer_provider(
    service_name: &str,
    endpoint: &str,
    timeout: Duration,
) -> Result<SdkTracerProvider, InitError> {
    // tonic's lazy channel spawns its connection task on the current runtime; without one it
    // would panic instead of returning an error.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(InitError::NoRuntime);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(timeout);
    if endpoint.to_ascii_lowercase().starts_with("https://") {
        // rustls (ring) trusting the platform's roots; SSL_CERT_FILE / SSL_CERT_DIR add a
        // private CA. Without roots tonic's default TLS config would trust nothing.
        exporter = exporter.with_tls_config(ClientTlsConfig::new().with_native_roots());
    }
    let exporter = exporter.build().map_err(InitError::Exporter)?;
    let resource = Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_filter_is_validated() {
        assert!(build_filter(Some("info,switchboard_gateway=debug")).is_ok());
        assert!(matches!(
            build_filter(Some("info,[[[")),
            Err(InitError::Filter(_))
        ));
    }

    #[test]
    fn otlp_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            build_tracer_provider("svc", "http://127.0.0.1:4317", Duration::from_millis(100)),
            Err(InitError::NoRuntime)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_https_collector_is_spoken_to_over_tls() {
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        use tokio::io::AsyncReadExt as _;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("https://{}", listener.local_addr().unwrap());
        let provider = build_tracer_provider("svc", &endpoint, Duration::from_millis(500))
            .expect("an https endpoint builds");
        provider.tracer("test").in_span("exported", |_| {});
        // Shutting down exports what is pending, so the exporter connects.
        let shutting_down = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(Duration::from_millis(500))
        });
        let (mut collector, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the exporter connects")
            .unwrap();
        let mut first = [0u8; 3];
        collector.read_exact(&mut first).await.unwrap();
        // A TLS handshake record (0x16, version 3.x), not HTTP/2's plaintext preface "PRI".
        assert_eq!(first[..2], [0x16, 0x03], "{first:?}");
        drop(collector);
        let _ = shutting_down.await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn otlp_provider_builds_and_shuts_down_without_a_collector() {
        // Port 9 (discard) on loopback: nothing answers, so shutdown must still return.
        let provider =
            build_tracer_provider("svc", "http://127.0.0.1:9", Duration::from_millis(200)).unwrap();
        let guard = TelemetryGuard {
            tracer_provider: Some(provider),
            shutdown_timeout: Duration::from_millis(200),
        };
        let started = std::time::Instant::now();
        drop(guard);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
