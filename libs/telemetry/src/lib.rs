//! Logging, tracing and metrics set-up for Switchboard services.
//!
//! [`init`] installs the process-wide `tracing` subscriber once at startup: an `EnvFilter`
//! (config, else `RUST_LOG`, else `info`), JSON or pretty log lines on stderr, and, when an
//! OTLP endpoint is configured, an OpenTelemetry layer that exports spans over gRPC. Keep the
//! returned [`TelemetryGuard`] alive until exit; dropping it flushes pending spans.
//!
//! Trace context crosses process boundaries as a W3C `traceparent` header:
//! [`current_traceparent`] reads it from the current span for an outgoing message, and
//! [`set_parent_from_traceparent`] makes a new span the child of an incoming one.
//! [`encode_metrics`] renders a Prometheus registry for the admin `/metrics` endpoint, and
//! [`init_for_tests`] is the idempotent test-logging helper.

#![warn(missing_docs)]

mod init;
mod metrics;
mod propagation;
mod testing;

pub use init::{InitError, TelemetryGuard, init};
pub use metrics::{METRICS_CONTENT_TYPE, encode_metrics};
pub use propagation::{current_traceparent, set_parent_from_traceparent};
pub use testing::init_for_tests;
