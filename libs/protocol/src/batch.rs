//! ML-node batches (seed 002): the batch shapes, the frames an ML node and batch-ingest
//! exchange over the node's WebSocket, the content hash that deduplicates them, and the names
//! (paths, close reasons, stream, API methods) both sides share.
//!
//! The ML node's protocol is fixed, because real ML nodes speak it:
//!
//! - ML node → ingest: `{"type": "generated" | "validated", "batch": {...}, "id": "<uuid v4>"}`
//!   ([`BatchFrame`]); ingest → ML node: `{"type": "ack", "id": "<the same uuid>"}` ([`BatchAck`]).
//! - The HTTP callbacks (`POST {callback}/generated`, `/validated`) carry the bare batch.
//! - The `id` is new on every attempt, so a batch is recognised by [`Batch::content_hash`], a
//!   SHA-256 over a canonical encoding of its fields (never the `id`).
//!
//! On the bus a batch is the bare [`GeneratedBatch`]/[`ValidatedBatch`] as a named MessagePack
//! map on `sb.ingest.batch.generated`/`.validated`, stored in the JetStream stream
//! [`STREAM_NAME`] with `Nats-Msg-Id` = the content hash.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::subject::Subjects;

mod frame;
mod hash;
mod progress;

pub use frame::{BatchAck, BatchFrame};
pub use hash::ContentHash;
pub use progress::{
    ApiError, BatchProgress, ConnectionState, KindCounts, NodeInfo, NodeReply, NodeRequest,
    PathCounts,
};

/// The JetStream stream holding every stored batch.
pub const STREAM_NAME: &str = "SB_BATCHES";

/// Where an ML node serves its WebSocket endpoint.
pub const ML_NODE_WS_PATH: &str = "/api/v1/pow/ws";

/// The HTTP callback for generated batches on batch-ingest's listener. An ML node is given
/// `http://<listen>/v1/poc-batches` as its callback URL and appends `/generated`.
pub const CALLBACK_PATH_GENERATED: &str = "/v1/poc-batches/generated";

/// The HTTP callback for validated batches on batch-ingest's listener.
pub const CALLBACK_PATH_VALIDATED: &str = "/v1/poc-batches/validated";

/// The prefix an ML node's callback URL is built from: `http://<listen>` + this.
pub const CALLBACK_PATH_PREFIX: &str = "/v1/poc-batches";

/// The close code an ML node refuses a WebSocket client with (RFC 6455 "policy violation").
pub const REFUSED_CLOSE_CODE: u16 = 1008;

/// The close reason of an ML node that already serves another client.
pub const REASON_ANOTHER_CLIENT: &str = "Another client is already connected";

/// The close reason of an ML node whose PoW is not running.
pub const REASON_POW_NOT_RUNNING: &str = "PoW is not running";

/// The service token of batch-ingest's request/reply API: `sb.api.batch_ingest.<method>`.
pub const API_SERVICE: &str = "batch_ingest";

/// Queue group of the API subscription, so one replica answers each request.
pub const API_QUEUE_GROUP: &str = "sb-batch-ingest-api";

/// API methods on `sb.api.batch_ingest.<method>`.
pub mod api_method {
    /// Lists the registered ML nodes.
    pub const LIST_NODES: &str = "list_nodes";
    /// Registers (or replaces) a node: `{id, url, active?}`.
    pub const REGISTER_NODE: &str = "register_node";
    /// Stops and removes a node: `{id}`.
    pub const REMOVE_NODE: &str = "remove_node";
    /// Starts a node's WebSocket worker: `{id}`.
    pub const START_NODE: &str = "start_node";
    /// Stops a node's WebSocket worker: `{id}`.
    pub const STOP_NODE: &str = "stop_node";
    /// Every method, for subscribing and documentation.
    pub const ALL: [&str; 5] = [
        LIST_NODES,
        REGISTER_NODE,
        REMOVE_NODE,
        START_NODE,
        STOP_NODE,
    ];
}

/// The room batch-ingest reports its progress to.
pub const PROGRESS_ROOM: &str = "tasks";

/// The event name of batch-ingest's progress reports in [`PROGRESS_ROOM`].
pub const PROGRESS_EVENT: &str = "batch_progress";

/// Which of the two batch kinds a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// Nonces and distances a node generated.
    Generated,
    /// A batch another node validated.
    Validated,
}

impl BatchKind {
    /// Both kinds, generated first.
    pub const ALL: [BatchKind; 2] = [BatchKind::Generated, BatchKind::Validated];

    /// Returns the wire name (`generated`, `validated`).
    pub fn as_str(self) -> &'static str {
        match self {
            BatchKind::Generated => "generated",
            BatchKind::Validated => "validated",
        }
    }

    /// Returns the subject batches of this kind are stored under.
    pub fn subject(self, subjects: &Subjects) -> String {
        match self {
            BatchKind::Generated => subjects.batch_generated(),
            BatchKind::Validated => subjects.batch_validated(),
        }
    }

    /// Returns the kind stored under `subject`, if it is a batch subject.
    pub fn of_subject(subjects: &Subjects, subject: &str) -> Option<BatchKind> {
        BatchKind::ALL
            .into_iter()
            .find(|kind| kind.subject(subjects) == subject)
    }

    /// Returns the HTTP callback path of this kind on batch-ingest's listener.
    pub fn callback_path(self) -> &'static str {
        match self {
            BatchKind::Generated => CALLBACK_PATH_GENERATED,
            BatchKind::Validated => CALLBACK_PATH_VALIDATED,
        }
    }
}

impl fmt::Display for BatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returns the subjects of the [`STREAM_NAME`] stream.
pub fn stream_subjects(subjects: &Subjects) -> Vec<String> {
    BatchKind::ALL
        .into_iter()
        .map(|kind| kind.subject(subjects))
        .collect()
}

/// A batch of nonces an ML node generated, with their distances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedBatch {
    /// The node's public key.
    pub public_key: String,
    /// Hash of the block the PoW round started at.
    pub block_hash: String,
    /// Height of that block.
    pub block_height: i64,
    /// The nonces.
    pub nonces: Vec<i64>,
    /// The distance of each nonce.
    pub dist: Vec<f64>,
    /// The ML node's numeric id.
    pub node_id: u64,
}

/// A batch another node validated: the generated fields plus the validation's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidatedBatch {
    /// The public key of the node whose batch was validated.
    pub public_key: String,
    /// Hash of the block the PoW round started at.
    pub block_hash: String,
    /// Height of that block.
    pub block_height: i64,
    /// The nonces.
    pub nonces: Vec<i64>,
    /// The distances the validator computed.
    pub dist: Vec<f64>,
    /// The ML node's numeric id.
    pub node_id: u64,
    /// The distances the batch's producer claimed.
    pub received_dist: Vec<f64>,
    /// The distance target.
    pub r_target: f64,
    /// The fraud threshold.
    pub fraud_threshold: f64,
    /// How many nonces failed validation.
    pub n_invalid: i64,
    /// Probability that the producer is honest.
    pub probability_honest: f64,
    /// Whether fraud was detected.
    pub fraud_detected: bool,
}

/// A batch of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// A generated batch.
    Generated(GeneratedBatch),
    /// A validated batch.
    Validated(ValidatedBatch),
}

/// Why a batch was refused before it was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The text is not JSON (or ends early).
    #[error("malformed json: {0}")]
    MalformedJson(String),
    /// A required field is absent.
    #[error("{0}")]
    MissingField(String),
    /// A field has the wrong type, or the frame's `type` is unknown.
    #[error("{0}")]
    WrongType(String),
    /// A field has an unusable value.
    #[error("{0}")]
    InvalidValue(String),
}

impl BatchError {
    /// Returns a stable snake_case name of the problem (`malformed_json`, `missing_field`,
    /// `wrong_type`, `invalid_value`), for error bodies and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BatchError::MalformedJson(_) => "malformed_json",
            BatchError::MissingField(_) => "missing_field",
            BatchError::WrongType(_) => "wrong_type",
            BatchError::InvalidValue(_) => "invalid_value",
        }
    }

    fn from_json(error: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let text = error.to_string();
        match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => BatchError::MalformedJson(text),
            Category::Data if text.starts_with("missing field") => BatchError::MissingField(text),
            Category::Data => BatchError::WrongType(text),
        }
    }
}

impl Batch {
    /// Decodes the JSON body of an HTTP callback for `kind` and checks its values.
    ///
    /// # Errors
    /// A [`BatchError`] naming what is wrong with the body.
    pub fn from_json(kind: BatchKind, body: &[u8]) -> Result<Batch, BatchError> {
        let batch = match kind {
            BatchKind::Generated => serde_json::from_slice(body).map(Batch::Generated),
            BatchKind::Validated => serde_json::from_slice(body).map(Batch::Validated),
        }
        .map_err(|error| BatchError::from_json(&error))?;
        batch.validate()?;
        Ok(batch)
    }

    /// Returns the batch's kind.
    pub fn kind(&self) -> BatchKind {
        match self {
            Batch::Generated(_) => BatchKind::Generated,
            Batch::Validated(_) => BatchKind::Validated,
        }
    }

    /// Returns the ML node's numeric id.
    pub fn node_id(&self) -> u64 {
        match self {
            Batch::Generated(batch) => batch.node_id,
            Batch::Validated(batch) => batch.node_id,
        }
    }

    /// Returns the block height.
    pub fn block_height(&self) -> i64 {
        match self {
            Batch::Generated(batch) => batch.block_height,
            Batch::Validated(batch) => batch.block_height,
        }
    }

    /// Returns the number of nonces.
    pub fn nonce_count(&self) -> usize {
        match self {
            Batch::Generated(batch) => batch.nonces.len(),
            Batch::Validated(batch) => batch.nonces.len(),
        }
    }

    /// Checks what the types cannot: the key and block hash are not empty, the height is not
    /// negative and every float is finite. JSON cannot carry NaN or an infinity, but a bus
    /// payload (MessagePack) can, and such a batch would turn into a callback body
    /// ([`Batch::to_json`] writes `null`) that no reader accepts.
    ///
    /// # Errors
    /// [`BatchError::InvalidValue`] naming the first bad field.
    pub fn validate(&self) -> Result<(), BatchError> {
        match self {
            Batch::Generated(b) => {
                check_values(&b.public_key, &b.block_hash, b.block_height)?;
                check_finite("dist", &b.dist)
            }
            Batch::Validated(b) => {
                check_values(&b.public_key, &b.block_hash, b.block_height)?;
                check_finite("dist", &b.dist)?;
                check_finite("received_dist", &b.received_dist)?;
                check_finite("r_target", &[b.r_target])?;
                check_finite("fraud_threshold", &[b.fraud_threshold])?;
                check_finite("probability_honest", &[b.probability_honest])
            }
        }
    }

    /// Encodes the bare batch as a named MessagePack map, the payload on the bus.
    ///
    /// # Errors
    /// Only if serde refuses the value, which these plain types never make it do.
    pub fn encode_bus(&self) -> Result<Vec<u8>, crate::EncodeError> {
        match self {
            Batch::Generated(batch) => crate::envelope::encode_bus(batch),
            Batch::Validated(batch) => crate::envelope::encode_bus(batch),
        }
    }

    /// Decodes a batch of `kind` from its bus payload.
    ///
    /// # Errors
    /// [`crate::DecodeError`] when the payload does not hold a batch of that kind.
    pub fn decode_bus(kind: BatchKind, payload: &[u8]) -> Result<Batch, crate::DecodeError> {
        match kind {
            BatchKind::Generated => crate::envelope::decode_bus(payload).map(Batch::Generated),
            BatchKind::Validated => crate::envelope::decode_bus(payload).map(Batch::Validated),
        }
    }

    /// Encodes the bare batch as JSON, the body of an HTTP callback.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs into a String cannot fail: no maps with non-string
        // keys, no custom serializers. NaN and infinities become `null`, as serde_json does.
        let json = match self {
            Batch::Generated(batch) => serde_json::to_string(batch),
            Batch::Validated(batch) => serde_json::to_string(batch),
        };
        json.unwrap_or_default()
    }

    /// Returns the content hash: SHA-256 over a canonical, length-prefixed encoding of the
    /// kind and every field in declaration order (never the frame's `id`). The same batch
    /// sent again, by either path, with a new `id`, has the same hash.
    ///
    /// Encoding: the tag `switchboard.batch.v1`, then the kind, then each field; strings and
    /// lists as a little-endian `u64` length followed by their items; integers as 8 bytes
    /// little-endian; floats as their IEEE-754 bits little-endian, with `-0.0` written as
    /// `0.0` so equal numbers hash equally; booleans as one byte.
    pub fn content_hash(&self) -> ContentHash {
        hash::content_hash(self)
    }
}

fn check_values(public_key: &str, block_hash: &str, block_height: i64) -> Result<(), BatchError> {
    if public_key.is_empty() {
        return Err(BatchError::InvalidValue("public_key is empty".into()));
    }
    if block_hash.is_empty() {
        return Err(BatchError::InvalidValue("block_hash is empty".into()));
    }
    if block_height < 0 {
        return Err(BatchError::InvalidValue("block_height is negative".into()));
    }
    Ok(())
}

/// Refuses the first NaN or infinity in `values`, the values of the field `field`.
fn check_finite(field: &str, values: &[f64]) -> Result<(), BatchError> {
    match values.iter().position(|value| !value.is_finite()) {
        None => Ok(()),
        Some(_) if values.len() == 1 => Err(BatchError::InvalidValue(format!(
            "{field} is not a finite number"
        ))),
        Some(index) => Err(BatchError::InvalidValue(format!(
            "{field}[{index}] is not a finite number"
        ))),
    }
}

#[cfg(test)]
mod tests;
