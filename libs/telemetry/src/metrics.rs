//! Prometheus text exposition.

use prometheus::{Encoder as _, Registry, TextEncoder};

/// The `Content-Type` of [`encode_metrics`] output.
pub const METRICS_CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Renders every metric in `registry` in the Prometheus text exposition format.
///
/// A metric family that fails to encode (only possible for malformed custom collectors) is
/// logged and left out, so one bad collector does not blank the whole scrape.
pub fn encode_metrics(registry: &Registry) -> String {
    let encoder = TextEncoder::new();
    let mut output = Vec::new();
    for family in registry.gather() {
        if let Err(error) = encoder.encode(std::slice::from_ref(&family), &mut output) {
            tracing::warn!(error = %error, metric = family.name(), "metric family not encodable");
        }
    }
    String::from_utf8_lossy(&output).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounter, IntGaugeVec, Opts};

    #[test]
    fn registered_metrics_appear_in_text_format() {
        let registry = Registry::new();
        let counter = IntCounter::new("switchboard_test_messages_total", "Messages seen.").unwrap();
        let gauge = IntGaugeVec::new(
            Opts::new("switchboard_test_queue_depth", "Queue depth."),
            &["queue"],
        )
        .unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(gauge.clone())).unwrap();
        counter.inc_by(3);
        gauge.with_label_values(&["outbound"]).set(7);

        let text = encode_metrics(&registry);
        assert!(
            text.contains("# TYPE switchboard_test_messages_total counter"),
            "{text}"
        );
        assert!(text.contains("switchboard_test_messages_total 3"), "{text}");
        assert!(
            text.contains("switchboard_test_queue_depth{queue=\"outbound\"} 7"),
            "{text}"
        );
        assert!(METRICS_CONTENT_TYPE.starts_with("text/plain"));
    }

    #[test]
    fn empty_registry_encodes_to_empty_text() {
        assert_eq!(encode_metrics(&Registry::new()), "");
    }
}
