//! The batch handler both delivery paths share (the seed's `BatchHandler`): deduplicate by
//! content hash, store in JetStream, record the hash, and only then report success.
//!
//! # Ordering, and why a crash never loses or doubles a batch
//!
//! 1. The hash record is checked. Present: the batch is stored; acknowledge, store nothing.
//! 2. The batch is published to `SB_BATCHES` with `Nats-Msg-Id` = its hash, and the step
//!    waits for JetStream's ack. JetStream stores each id once per duplicate window, so two
//!    paths racing past step 1 with the same batch produce one message.
//! 3. The hash record is written (set-if-absent, long TTL).
//! 4. The caller acknowledges the node (WebSocket `ack`, HTTP 200).
//!
//! A crash or failure before 2 completes: nothing acknowledged, the node retries. Between 2
//! and 3: stored but unrecorded and unacknowledged; the node's retry (seconds later, well
//! within the window) is a JetStream duplicate, step 3 runs for it, and it is acknowledged.
//! Between 3 and 4: the retry hits the record at step 1 and is acknowledged. Any failing step
//! leaves the delivery unacknowledged, so the node keeps the batch in its retry queue. The
//! record is written only after JetStream's ack, so a record never claims a batch that is not
//! stored.

use std::sync::Arc;
use std::time::Duration;

use bus::{Bus, DurablePublishError, Headers, StreamSpec};
use bytes::Bytes;
use protocol::Subjects;
use protocol::batch::{Batch, ContentHash};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::{IngestError, StepTimeout};
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::records::HashRecords;

/// How a batch reached batch-ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Over the node's WebSocket.
    WebSocket,
    /// Over an HTTP callback.
    Http,
}

impl Path {
    /// Returns the metric label (`websocket`, `http`).
    pub fn as_str(self) -> &'static str {
        match self {
            Path::WebSocket => "websocket",
            Path::Http => "http",
        }
    }
}

/// One received batch.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The batch.
    pub batch: Batch,
    /// How it arrived.
    pub path: Path,
    /// The registered node whose WebSocket it came on; `None` for HTTP callbacks.
    pub node: Option<String>,
}

/// What happened to a delivered batch; either way the node is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored for the first time at this stream sequence.
    Stored {
        /// The batch's sequence in `SB_BATCHES`.
        sequence: u64,
    },
    /// Already stored; nothing was stored again.
    Duplicate {
        /// How it was recognised.
        by: DuplicateBy,
    },
}

/// How a duplicate was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateBy {
    /// Its content-hash record (any age up to `hash_ttl`).
    Record,
    /// JetStream's duplicate window (the record was not written yet, or the two paths raced).
    Window,
}

/// Settings of the [`Pipeline`].
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Upper bound on each store step.
    pub store_timeout: Duration,
    /// How long hash records are kept.
    pub hash_ttl: Duration,
    /// The batch stream, re-ensured when JetStream reports it missing.
    pub stream: StreamSpec,
    /// Subject names.
    pub subjects: Subjects,
}

/// Stores batches exactly once; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    bus: Bus,
    records: HashRecords,
    settings: PipelineSettings,
    metrics: Arc<Metrics>,
    progress: Arc<Progress>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    pub(crate) fn new(
        bus: Bus,
        records: HashRecords,
        settings: PipelineSettings,
        metrics: Arc<Metrics>,
        progress: Arc<Progress>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                bus,
                records,
                settings,
                metrics,
                progress,
            }),
        }
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.inner.progress
    }

    /// The unit of work: stores one delivered batch unless it is already stored, following
    /// the ordering in the module docs, and counts it. `Ok` means the node may be
    /// acknowledged.
    ///
    /// # Errors
    /// [`IngestError::Unavailable`] when a store step failed or timed out (do not
    /// acknowledge; the node retries); [`IngestError::TooLarge`] when the bus refuses the
    /// batch's size.
    pub async fn process_next_batch(&self, delivery: Delivery) -> Result<Outcome, IngestError> {
        let hash = delivery.batch.content_hash();
        let kind = delivery.batch.kind();
        let span = tracing::debug_span!(
            "batch",
            hash = %hash,
            kind = kind.as_str(),
            path = delivery.path.as_str(),
            node = delivery.node.as_deref().unwrap_or(""),
        );
        let result = self.store_once(&delivery, &hash).instrument(span).await;
        let metrics = &self.inner.metrics;
        let path = delivery.path.as_str();
        match &result {
            Ok(outcome) => {
                metrics
                    .received
                    .with_label_values(&[path, kind.as_str()])
                    .inc();
                match outcome {
                    Outcome::Stored { .. } => {
                        metrics
                            .stored
                            .with_label_values(&[path, kind.as_str()])
                            .inc();
                    }
                    Outcome::Duplicate { by } => {
                        let by = match by {
                            DuplicateBy::Record => "record",
                            DuplicateBy::Window => "window",
                        };
                        metrics
                            .duplicates
                            .with_label_values(&[path, kind.as_str(), by])
                            .inc();
                    }
                }
                let label = self
                    .inner
                    .progress
                    .label(delivery.node.as_deref(), delivery.batch.node_id());
                self.inner.progress.record(
                    &label,
                    delivery.batch.node_id(),
                    kind,
                    delivery.path,
                    outcome,
                    delivery.batch.block_height(),
                );
            }
            Err(error) => {
                metrics
                    .store_failures
                    .with_label_values(&[path, error.stage()])
                    .inc();
                tracing::warn!(
                    error = %error,
                    source = ?std::error::Error::source(error),
                    hash = %hash,
                    path,
                    "batch not stored; the node will retry"
                );
            }
        }
        result
    }

    async fn store_once(
        &self,
        delivery: &Delivery,
        hash: &ContentHash,
    ) -> Result<Outcome, IngestError> {
        let inner = &self.inner;
        let timeout = inner.settings.store_timeout;
        let recorded = within(timeout, inner.records.contains(hash))
            .await
            .map_err(|error| IngestError::unavailable("record_check", error))?;
        if recorded {
            return Ok(Outcome::Duplicate {
                by: DuplicateBy::Record,
            });
        }

        let kind = delivery.batch.kind();
        let payload = delivery
            .batch
            .encode_bus()
            .map_err(|error| IngestError::unavailable("publish", error))?;
        let mut headers = Headers::new();
        if let Some(traceparent) = telemetry::current_traceparent() {
            headers.insert(protocol::envelope::HEADER_TRACEPARENT, traceparent);
        }
        let subject = kind.subject(&inner.settings.subjects);
        let started = Instant::now();
        let published = tokio::time::timeout(
            timeout,
            inner
                .bus
                .publish_durable(&subject, &hash.to_hex(), headers, Bytes::from(payload)),
        )
        .await;
        let ack = match published {
            Err(_) => return Err(IngestError::unavailable("publish", StepTimeout(timeout))),
            Ok(Ok(ack)) => ack,
            Ok(Err(error @ DurablePublishError::PayloadTooLarge { .. })) => {
                return Err(IngestError::TooLarge(error));
            }
            Ok(Err(error @ DurablePublishError::NoStream { .. })) => {
                // Someone deleted the stream (or a memory-storage NATS restarted): put it
                // back for the node's retry.
                if let Err(ensure) = inner.bus.ensure_stream(&inner.settings.stream).await {
                    tracing::warn!(error = %ensure, "batch stream could not be re-created");
                }
                return Err(IngestError::unavailable("publish", error));
            }
            Ok(Err(error)) => return Err(IngestError::unavailable("publish", error)),
        };
        inner
            .metrics
            .store_seconds
            .with_label_values(&[kind.as_str()])
            .observe(started.elapsed().as_secs_f64());

        within(
            timeout,
            inner
                .records
                .record(hash, ack.sequence, inner.settings.hash_ttl),
        )
        .await
        .map_err(|error| IngestError::unavailable("record_write", error))?;
        Ok(if ack.duplicate {
            Outcome::Duplicate {
                by: DuplicateBy::Window,
            }
        } else {
            Outcome::Stored {
                sequence: ack.sequence,
            }
        })
    }
}

/// Runs a record-store call under the store timeout (the records apply their own timeout
/// too; this one also bounds the memory backend's lock, trivially).
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, crate::records::RecordError>>,
) -> Result<T, Box<dyn std::error::Error + Send + Sync + 'static>> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Box::new(error)),
        Err(_) => Err(Box::new(StepTimeout(timeout))),
    }
}
