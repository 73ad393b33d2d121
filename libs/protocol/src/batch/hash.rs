//! The content hash: SHA-256 over a canonical encoding of a batch's fields.

use std::fmt;

use sha2::{Digest, Sha256};

use super::{Batch, BatchKind};

/// Hashes `batch` as documented on [`Batch::content_hash`].
pub(super) fn content_hash(batch: &Batch) -> ContentHash {
    let mut hasher = CanonicalHasher::new(batch.kind());
    match batch {
        Batch::Generated(batch) => {
            hasher.generated_fields(
                &batch.public_key,
                &batch.block_hash,
                batch.block_height,
                &batch.nonces,
                &batch.dist,
                batch.node_id,
            );
        }
        Batch::Validated(batch) => {
            hasher.generated_fields(
                &batch.public_key,
                &batch.block_hash,
                batch.block_height,
                &batch.nonces,
                &batch.dist,
                batch.node_id,
            );
            hasher.floats(&batch.received_dist);
            hasher.float(batch.r_target);
            hasher.float(batch.fraud_threshold);
            hasher.int(batch.n_invalid);
            hasher.float(batch.probability_honest);
            hasher.hasher.update([u8::from(batch.fraud_detected)]);
        }
    }
    ContentHash(hasher.hasher.finalize().into())
}

struct CanonicalHasher {
    hasher: Sha256,
}

impl CanonicalHasher {
    fn new(kind: BatchKind) -> Self {
        let mut hasher = Self {
            hasher: Sha256::new(),
        };
        hasher.text("switchboard.batch.v1");
        hasher.text(kind.as_str());
        hasher
    }

    fn generated_fields(
        &mut self,
        public_key: &str,
        block_hash: &str,
        block_height: i64,
        nonces: &[i64],
        dist: &[f64],
        node_id: u64,
    ) {
        self.text(public_key);
        self.text(block_hash);
        self.int(block_height);
        self.length(nonces.len());
        for nonce in nonces {
            self.int(*nonce);
        }
        self.floats(dist);
        self.hasher.update(node_id.to_le_bytes());
    }

    fn length(&mut self, length: usize) {
        self.hasher.update((length as u64).to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        self.length(text.len());
        self.hasher.update(text.as_bytes());
    }

    fn int(&mut self, value: i64) {
        self.hasher.update(value.to_le_bytes());
    }

    fn float(&mut self, value: f64) {
        let canonical = if value == 0.0 { 0.0_f64 } else { value };
        self.hasher.update(canonical.to_bits().to_le_bytes());
    }

    fn floats(&mut self, values: &[f64]) {
        self.length(values.len());
        for value in values {
            self.float(*value);
        }
    }
}

/// A batch's content hash; its lowercase hex form is the `Nats-Msg-Id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Returns the 64-character lowercase hex form.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Returns the raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}
