//! Batch-ingest's boundary errors.

use std::net::SocketAddr;

/// Why batch-ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; every problem is listed.
    #[error("invalid configuration: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The callback listener could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bus could not be reached.
    #[error("cannot connect to the bus")]
    Bus(#[source] bus::ConnectError),
    /// The batch stream could not be created or updated.
    #[error("cannot set up the batch stream")]
    Stream(#[source] bus::StreamError),
    /// The hash-record store could not be reached.
    #[error("cannot connect to the hash-record store")]
    Records(#[source] crate::records::ConnectError),
    /// The management API could not subscribe on the bus.
    #[error("cannot subscribe the management api")]
    Subscribe(#[source] bus::SubscribeError),
}

/// Why batch-ingest stopped other than by a clean drain.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Batch-ingest could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The management API's bus subscription ended: the bus connection closed for good.
    #[error("the management api's subscription ended")]
    ApiEnded,
    /// A background task failed or panicked; batch-ingest drained and stopped.
    #[error("batch-ingest background {0}")]
    Task(#[source] service::supervise::TaskFailure),
    /// The worker of one ML node panicked (a bug); batch-ingest drained and stopped, so that
    /// it is restarted instead of leaving the node unserved.
    #[error("the worker of ml node {node} panicked: {message}")]
    NodeWorkerPanicked {
        /// The node's id.
        node: String,
        /// The panic message.
        message: String,
    },
}

/// Why one batch was not stored; what the node is told follows from the variant.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// JetStream or the hash-record store is unreachable or slow: answer 503 / no ack, so
    /// the node retries. The batch may have been stored; the retry is then a duplicate.
    #[error("batch store unavailable during {stage}")]
    Unavailable {
        /// Which step failed: `record_check`, `publish` or `record_write`.
        stage: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The batch is larger than the bus accepts: answer 413 / no ack.
    #[error("batch too large for the bus")]
    TooLarge(#[source] bus::DurablePublishError),
}

impl IngestError {
    pub(crate) fn unavailable(
        stage: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        IngestError::Unavailable {
            stage,
            source: source.into(),
        }
    }

    /// Returns the failed step, for metrics.
    pub fn stage(&self) -> &'static str {
        match self {
            IngestError::Unavailable { stage, .. } => stage,
            IngestError::TooLarge(_) => "publish",
        }
    }
}

/// A step that did not finish within `batch_ingest.store_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?}")]
pub(crate) struct StepTimeout(pub std::time::Duration);

impl service::ServiceError for RunError {
    fn is_config(&self) -> bool {
        matches!(self, RunError::Start(StartError::Config(_)))
    }
}
