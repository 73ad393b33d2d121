//! What leaves a replica: history writes (retried with back-off while the store fails) and
//! alerts (claimed once per cool-down in the store, then published to room `alerts`).

use std::time::Duration;

use protocol::RoomEnvelope;
use protocol::envelope::encode_bus;
use protocol::streams::events;
use store::history::HistoryWrite;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Aggregator, MAX_RETAINED_WRITES, MAX_WRITE_BACKOFF, SHUTDOWN_STORE_TIMEOUT};
use crate::detect::Candidate;

impl Aggregator {
    /// Writes to the store, retrying earlier failed writes first. While the store fails,
    /// attempts back off (doubling to 30 s) so ingestion is not held up by timeouts.
    pub(super) async fn write(&mut self, writes: Vec<HistoryWrite>, force: bool) {
        let mut writes = writes;
        if !self.retained.is_empty() {
            let mut retained = std::mem::take(&mut self.retained);
            retained.extend(writes);
            writes = retained;
        }
        if writes.is_empty() {
            return;
        }
        let backing_off = self.next_write_at.is_some_and(|at| Instant::now() < at);
        if backing_off && !force {
            self.retain(writes);
            return;
        }
        let written = if force {
            match tokio::time::timeout(SHUTDOWN_STORE_TIMEOUT, self.store.write_history(&writes))
                .await
            {
                Ok(written) => written.map_err(|error| error.to_string()),
                Err(_elapsed) => Err("store did not answer".to_owned()),
            }
        } else {
            self.store
                .write_history(&writes)
                .await
                .map_err(|error| error.to_string())
        };
        match written {
            Ok(()) => {
                if self.next_write_at.take().is_some() {
                    info!("history writes resumed");
                }
                self.write_backoff = Duration::ZERO;
            }
            Err(error) => {
                self.metrics.store_write_failures.inc();
                self.write_backoff =
                    (self.write_backoff * 2).clamp(self.config.flush_interval, MAX_WRITE_BACKOFF);
                self.next_write_at = Some(Instant::now() + self.write_backoff);
                warn!(error, writes = writes.len(), retry_in = ?self.write_backoff, "history write failed");
                self.retain(writes);
            }
        }
    }

    fn retain(&mut self, mut writes: Vec<HistoryWrite>) {
        if writes.len() > MAX_RETAINED_WRITES {
            let excess = writes.len() - MAX_RETAINED_WRITES;
            writes.drain(..excess);
            self.metrics
                .writes_dropped
                .inc_by(u64::try_from(excess).unwrap_or(u64::MAX));
        }
        self.retained = writes;
    }

    pub(super) async fn publish_alerts(&mut self) {
        if self.alerts.is_empty() {
            return;
        }
        for candidate in std::mem::take(&mut self.alerts) {
            match self
                .store
                .claim_once(&candidate.claim_key, candidate.claim_ttl)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    self.metrics.suppressed_by_claim();
                    continue;
                }
                Err(error) => {
                    // Better a duplicate than a lost alert.
                    warn!(error = %error, "alert claim failed; publishing anyway");
                }
            }
            self.publish_alert(candidate).await;
        }
    }

    async fn publish_alert(&mut self, candidate: Candidate) {
        let alert = candidate.alert;
        let kind = match serde_json::to_value(alert.kind) {
            Ok(serde_json::Value::String(kind)) => kind,
            _ => "alert".to_owned(),
        };
        let envelope = RoomEnvelope {
            event: events::ALERT.to_owned(),
            timestamp: Some(alert.timestamp.clone()),
            seq: None,
            priority: Some(alert.severity.priority().to_owned()),
            data: match serde_json::to_value(&alert) {
                Ok(data) => data,
                Err(error) => {
                    warn!(error = %error, "alert cannot be encoded");
                    return;
                }
            },
        };
        let payload = match encode_bus(&envelope) {
            Ok(payload) => payload,
            Err(error) => {
                warn!(error = %error, "alert cannot be encoded");
                return;
            }
        };
        match self.bus.publish(&self.alerts_subject, payload.into()).await {
            Ok(()) => {
                info!(metric = %alert.metric, kind, severity = ?alert.severity, value = alert.value, "alert published");
                self.metrics.alerts.with_label_values(&[&kind]).inc();
                self.probe.alert_published();
            }
            Err(error) => warn!(error = %error, metric = %alert.metric, "alert not published"),
        }
    }
}
