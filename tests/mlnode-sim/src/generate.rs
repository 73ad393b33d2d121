//! Deterministic batches: the same seed, node and index always give the same batch, and
//! different indices never collide (their nonces differ).

use protocol::batch::{Batch, GeneratedBatch, ValidatedBatch};

use crate::SimConfig;

/// SplitMix64: a tiny, well-mixed generator whose output is fixed forever (unlike `rand`'s
/// algorithms, which may change between versions).
fn splitmix64(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A float in `[0, 1)` from 53 random bits.
fn unit_float(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

/// Returns batch number `index` of the node `config` describes.
pub fn batch_at(config: &SimConfig, index: u64) -> Batch {
    let base = splitmix64(config.seed ^ config.node_num.rotate_left(32));
    let per_batch = config.nonces_per_batch as u64;
    let first_nonce = index.saturating_mul(per_batch);
    let nonces: Vec<i64> = (0..per_batch)
        .map(|offset| i64::try_from(first_nonce + offset).unwrap_or(i64::MAX))
        .collect();
    let dist: Vec<f64> = (0..per_batch)
        .map(|offset| unit_float(splitmix64(base ^ (first_nonce + offset))))
        .collect();
    let public_key = format!("sim-pk-{:016x}", splitmix64(base));
    let block_hash = format!("0x{:016x}", splitmix64(base.wrapping_add(1)));
    let block_height = i64::try_from(1_000 + base % 1_000).unwrap_or(1_000);
    let validated =
        config.validated_every > 0 && index % config.validated_every == config.validated_every - 1;
    if !validated {
        return Batch::Generated(GeneratedBatch {
            public_key,
            block_hash,
            block_height,
            nonces,
            dist,
            node_id: config.node_num,
        });
    }
    let n_invalid = i64::try_from(splitmix64(base ^ index) % 3).unwrap_or(0);
    Batch::Validated(ValidatedBatch {
        public_key,
        block_hash,
        block_height,
        received_dist: dist.clone(),
        nonces,
        dist,
        node_id: config.node_num,
        r_target: 1.5,
        fraud_threshold: 0.01,
        n_invalid,
        probability_honest: 1.0 - 0.01 * n_invalid as f64,
        fraud_detected: n_invalid > 1,
    })
}

/// Returns every batch the node generates, in order; empty when `config.batches` is `None`.
pub fn expected_batches(config: &SimConfig) -> Vec<Batch> {
    (0..config.batches.unwrap_or(0))
        .map(|index| batch_at(config, index))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use protocol::batch::BatchKind;

    use super::*;

    #[test]
    fn batches_are_deterministic_distinct_and_mixed() {
        let config = SimConfig {
            batches: Some(40),
            ..SimConfig::default()
        };
        let first = expected_batches(&config);
        assert_eq!(first, expected_batches(&config));
        let hashes: HashSet<_> = first.iter().map(Batch::content_hash).collect();
        assert_eq!(hashes.len(), 40);
        let validated = first
            .iter()
            .filter(|batch| batch.kind() == BatchKind::Validated)
            .count();
        assert_eq!(validated, 10);
        for batch in &first {
            assert!(batch.validate().is_ok());
        }
        let other_seed = SimConfig {
            seed: 2,
            ..config.clone()
        };
        assert_ne!(batch_at(&other_seed, 0), first[0]);
    }
}
