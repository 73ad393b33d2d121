//! What this process's connections saw, as plain data that crosses process boundaries.

use serde::{Deserialize, Serialize};

use super::ERROR_SAMPLES;
use crate::histogram::HistogramData;

/// What this process's connections saw, summed; the unit subscriber processes report to the
/// publisher, and that merges exactly ([`FleetResult::merge`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct FleetResult {
    pub(crate) clients: u64,
    pub(crate) connected: u64,
    pub(crate) connect_failures: u64,
    pub(crate) disconnects: u64,
    pub(crate) expected: u64,
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    pub(crate) out_of_order: u64,
    pub(crate) invalid: u64,
    pub(crate) control_messages: u64,
    pub(crate) bytes: u64,
    pub(crate) started_ns: u64,
    pub(crate) last_connected_ns: u64,
    pub(crate) last_receive_ns: u64,
    pub(crate) latency: HistogramData,
    pub(crate) handshake: HistogramData,
    pub(crate) error_samples: Vec<String>,
}

impl FleetResult {
    /// Adds another process's figures to these.
    pub(crate) fn merge(&mut self, other: &FleetResult) {
        self.clients += other.clients;
        self.connected += other.connected;
        self.connect_failures += other.connect_failures;
        self.disconnects += other.disconnects;
        self.expected += other.expected;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.invalid += other.invalid;
        self.control_messages += other.control_messages;
        self.bytes += other.bytes;
        self.started_ns = match (self.started_ns, other.started_ns) {
            (0, theirs) => theirs,
            (mine, 0) => mine,
            (mine, theirs) => mine.min(theirs),
        };
        self.last_connected_ns = self.last_connected_ns.max(other.last_connected_ns);
        self.last_receive_ns = self.last_receive_ns.max(other.last_receive_ns);
        self.latency.merge(&other.latency);
        self.handshake.merge(&other.handshake);
        for sample in &other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(sample.clone());
            }
        }
    }
}
