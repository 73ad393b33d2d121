//! The frames an ML node and batch-ingest exchange over the node's WebSocket.

use serde::{Deserialize, Serialize};

use super::{Batch, BatchError, GeneratedBatch, ValidatedBatch, check_values};

/// A frame an ML node sends over its WebSocket: one batch and the attempt's `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchFrame {
    /// A generated batch.
    Generated {
        /// The batch.
        batch: GeneratedBatch,
        /// This attempt's id (a UUID v4), echoed in the ack.
        id: String,
    },
    /// A validated batch.
    Validated {
        /// The batch.
        batch: ValidatedBatch,
        /// This attempt's id (a UUID v4), echoed in the ack.
        id: String,
    },
}

impl BatchFrame {
    /// Wraps `batch` with the attempt id `id`.
    pub fn new(batch: Batch, id: String) -> Self {
        match batch {
            Batch::Generated(batch) => BatchFrame::Generated { batch, id },
            Batch::Validated(batch) => BatchFrame::Validated { batch, id },
        }
    }

    /// Decodes a text frame and checks the batch's values.
    ///
    /// # Errors
    /// A [`BatchError`] naming what is wrong with the frame.
    pub fn from_json(text: &[u8]) -> Result<BatchFrame, BatchError> {
        let frame: BatchFrame =
            serde_json::from_slice(text).map_err(|error| BatchError::from_json(&error))?;
        if frame.id().is_empty() {
            return Err(BatchError::InvalidValue("id is empty".into()));
        }
        match &frame {
            BatchFrame::Generated { batch: b, .. } => {
                check_values(&b.public_key, &b.block_hash, b.block_height)?;
            }
            BatchFrame::Validated { batch: b, .. } => {
                check_values(&b.public_key, &b.block_hash, b.block_height)?;
            }
        }
        Ok(frame)
    }

    /// Returns the attempt id.
    pub fn id(&self) -> &str {
        match self {
            BatchFrame::Generated { id, .. } | BatchFrame::Validated { id, .. } => id,
        }
    }

    /// Splits the frame into its batch and attempt id.
    pub fn into_parts(self) -> (Batch, String) {
        match self {
            BatchFrame::Generated { batch, id } => (Batch::Generated(batch), id),
            BatchFrame::Validated { batch, id } => (Batch::Validated(batch), id),
        }
    }

    /// Encodes the frame as JSON text.
    pub fn to_json(&self) -> String {
        // As for `Batch::to_json`: these types always serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Batch-ingest's confirmation that a batch is stored: `{"type": "ack", "id": "<attempt id>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AckWire", into = "AckWire")]
pub struct BatchAck {
    /// The attempt id of the frame being confirmed.
    pub id: String,
}

/// The wire form of [`BatchAck`]; an enum so decoding checks `type` (a tagged struct would
/// accept any `type`).
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AckWire {
    Ack { id: String },
}

impl From<AckWire> for BatchAck {
    fn from(wire: AckWire) -> Self {
        let AckWire::Ack { id } = wire;
        BatchAck { id }
    }
}

impl From<BatchAck> for AckWire {
    fn from(ack: BatchAck) -> Self {
        AckWire::Ack { id: ack.id }
    }
}

impl BatchAck {
    /// Encodes the ack as JSON text.
    pub fn to_json(&self) -> String {
        // A struct of one string field always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}
