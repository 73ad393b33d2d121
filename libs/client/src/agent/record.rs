//! What the agent remembers between reports: counters, the last sync, the operation log.

use std::collections::VecDeque;

use protocol::NodeState;
use serde_json::{Value, json};

/// The node-side bookkeeping behind every `node_state` report.
#[derive(Debug)]
pub(crate) struct Record {
    /// Reports sent so far (each is one update of the node's published state).
    update_count: u64,
    last_sync_time: Option<String>,
    last_sync_count: u64,
    /// Newest last; bounded by `log_capacity`, oldest dropped first.
    operation_log: VecDeque<Value>,
    log_capacity: usize,
}

impl Record {
    pub(crate) fn new(log_capacity: usize) -> Self {
        Self {
            update_count: 0,
            last_sync_time: None,
            last_sync_count: 0,
            operation_log: VecDeque::with_capacity(log_capacity),
            log_capacity,
        }
    }

    /// Appends `{timestamp, operation, ...details}` to the log, dropping the oldest entry
    /// when full. `details` fields are merged in when it is an object.
    pub(crate) fn log(&mut self, operation: &str, details: Value) {
        if self.log_capacity == 0 {
            return;
        }
        let mut entry = json!({
            "timestamp": protocol::time::now_rfc3339(),
            "operation": operation,
        });
        if let (Value::Object(entry), Value::Object(details)) = (&mut entry, details) {
            for (key, value) in details {
                entry.entry(key).or_insert(value);
            }
        }
        while self.operation_log.len() >= self.log_capacity {
            self.operation_log.pop_front();
        }
        self.operation_log.push_back(entry);
    }

    pub(crate) fn record_sync(&mut self, count: u64) {
        self.last_sync_time = Some(protocol::time::now_rfc3339());
        self.last_sync_count = count;
        self.log("sync", json!({ "count": count }));
    }

    pub(crate) fn update_count(&self) -> u64 {
        self.update_count
    }

    /// Counts one more report and builds it around `current_data`.
    pub(crate) fn next_report(
        &mut self,
        node_id: &str,
        layer: &str,
        current_data: Value,
    ) -> NodeState {
        self.update_count += 1;
        NodeState {
            node_id: node_id.to_owned(),
            layer: layer.to_owned(),
            update_count: self.update_count,
            last_sync_time: self.last_sync_time.clone(),
            last_sync_count: self.last_sync_count,
            current_data,
            operation_log: self.operation_log.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_log_keeps_the_newest_entries() {
        let mut record = Record::new(3);
        for n in 0..5 {
            record.log("op", json!({ "n": n }));
        }
        let report = record.next_report("n1", "edge", json!({}));
        let kept: Vec<i64> = report
            .operation_log
            .iter()
            .map(|entry| entry["n"].as_i64().unwrap())
            .collect();
        assert_eq!(kept, [2, 3, 4]);
        assert_eq!(report.operation_log[0]["operation"], "op");
    }

    #[test]
    fn reports_count_up_and_carry_the_last_sync() {
        let mut record = Record::new(50);
        assert_eq!(record.next_report("n1", "edge", json!(1)).update_count, 1);
        record.record_sync(42);
        let report = record.next_report("n1", "edge", json!(2));
        assert_eq!(report.update_count, 2);
        assert_eq!(report.last_sync_count, 42);
        assert!(report.last_sync_time.is_some());
        assert_eq!(report.current_data, json!(2));
        assert_eq!(report.operation_log.last().unwrap()["operation"], "sync");
    }
}
