//! Shared set-up: a batch-ingest and simulated ML nodes on one in-memory bus.

use std::collections::BTreeSet;
use std::time::Duration;

use batch_ingest::test_util::{TestBatchIngest, read_stored_batches, test_config};
use batch_ingest::{Config, HashRecords, NodeConfig};
use bus::Bus;
use mlnode_sim::{MlNodeSim, SimConfig, SimHandle, expected_batches};
use protocol::Subjects;
use tokio_util::sync::CancellationToken;

/// How long any wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// A simulated node for tests: short ack timeout and retry interval.
pub fn sim_config(seed: u64, batches: u64) -> SimConfig {
    SimConfig {
        seed,
        node_num: seed,
        batches: Some(batches),
        interval: Duration::from_millis(1),
        ack_timeout: Duration::from_millis(500),
        retry_interval: Duration::from_millis(300),
        http_timeout: Duration::from_secs(2),
        ..SimConfig::default()
    }
}

/// A running simulated node.
pub struct Sim {
    pub handle: SimHandle,
    pub ws_url: String,
    pub config: SimConfig,
    shutdown: CancellationToken,
}

impl Sim {
    pub async fn start(config: SimConfig) -> Self {
        let sim = MlNodeSim::bind(config.clone()).await.expect("sim binds");
        let ws_url = sim.ws_url();
        let handle = sim.handle();
        let shutdown = CancellationToken::new();
        tokio::spawn(sim.serve(shutdown.clone()));
        Self {
            handle,
            ws_url,
            config,
            shutdown,
        }
    }

    /// The content hashes of every batch this node generates.
    pub fn expected_hashes(&self) -> BTreeSet<String> {
        expected_batches(&self.config)
            .iter()
            .map(|batch| batch.content_hash().to_hex())
            .collect()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn node(id: &str, url: &str) -> NodeConfig {
    NodeConfig {
        id: id.to_owned(),
        url: url.to_owned(),
        active: true,
    }
}

/// Starts batch-ingest on a fresh memory bus with `adjust` applied to the test config.
pub async fn ingest(adjust: impl FnOnce(&mut Config)) -> TestBatchIngest {
    let mut config = test_config();
    adjust(&mut config);
    TestBatchIngest::start(config, Bus::memory(), HashRecords::memory()).await
}

/// The hashes stored in `SB_BATCHES`, failing on any duplicate.
pub async fn stored_hashes(bus: &Bus) -> BTreeSet<String> {
    let stored = read_stored_batches(bus, &Subjects::default()).await;
    let hashes: BTreeSet<String> = stored.iter().map(|s| s.msg_id.clone()).collect();
    assert_eq!(hashes.len(), stored.len(), "a batch was stored twice");
    hashes
}
