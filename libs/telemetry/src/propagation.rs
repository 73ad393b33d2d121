//! W3C trace-context propagation between `tracing` spans and message headers.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use protocol::envelope::HEADER_TRACEPARENT;
use tracing_opentelemetry::{OpenTelemetrySpanExt as _, SetParentError};

/// Returns the W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) of the current `tracing`
/// span, for an outgoing message's headers. `None` outside any span, and when no OpenTelemetry
/// layer is installed (no OTLP endpoint configured).
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(HEADER_TRACEPARENT)
}

/// Makes `span` a child of the remote span described by `traceparent` (an incoming message's
/// header). Call it right after creating the span, before entering it: OpenTelemetry fixes a
/// span's parent when it starts. An invalid header is ignored, so the span stays a local root;
/// without an OpenTelemetry layer this does nothing.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(HEADER_TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let remote = TraceContextPropagator::new().extract(&carrier);
    if !remote.span().span_context().is_valid() {
        return;
    }
    match span.set_parent(remote) {
        Ok(()) | Err(SetParentError::LayerNotFound | SetParentError::SpanDisabled) => {}
        Err(error) => tracing::debug!(error = %error, "remote trace parent not applied"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMOTE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips_through_a_child_span() {
        crate::init_for_tests();
        let span = tracing::info_span!("handle_message");
        set_parent_from_traceparent(&span, REMOTE);
        let traceparent = span.in_scope(current_traceparent).expect("inside a span");
        let fields: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(fields.len(), 4, "{traceparent}");
        assert_eq!(fields[0], "00");
        assert_eq!(fields[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
        assert_ne!(fields[2], "00f067aa0ba902b7", "a new child span id");
        assert_eq!(fields[3], "01");
    }

    #[test]
    fn a_span_without_remote_parent_starts_its_own_trace() {
        crate::init_for_tests();
        let span = tracing::info_span!("root");
        let traceparent = span.in_scope(current_traceparent).expect("inside a span");
        assert!(!traceparent.contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn garbage_traceparent_is_ignored() {
        crate::init_for_tests();
        for garbage in [
            "",
            "00-zz-yy-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            let span = tracing::info_span!("incoming");
            set_parent_from_traceparent(&span, garbage);
            let traceparent = span.in_scope(current_traceparent).expect("inside a span");
            assert!(!traceparent.contains("00000000000000000000000000000000"));
        }
    }

    #[test]
    fn no_span_means_no_traceparent() {
        crate::init_for_tests();
        assert_eq!(current_traceparent(), None);
    }
}
