//! The WebSocket path: one client per node, acks after the store, refusals and reconnects.

use batch_ingest::test_util::eventually;
use mlnode_sim::ConnectionEventKind;
use protocol::batch::{REASON_ANOTHER_CLIENT, REASON_POW_NOT_RUNNING};

use crate::helpers::{Sim, WAIT, ingest, node, sim_config, stored_hashes};

#[tokio::test]
async fn batches_over_the_websocket_are_stored_once_and_acknowledged() {
    let sim = Sim::start(sim_config(1, 60)).await;
    let ingest = ingest(|config| config.batch_ingest.nodes = vec![node("ml-1", &sim.ws_url)]).await;

    eventually(WAIT, "every batch is confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    let counters = sim.handle.counters();
    assert_eq!(
        (counters.acked_ws, counters.acked_http),
        (60, 0),
        "{counters:?}"
    );
    assert_eq!(stored_hashes(&ingest.bus).await, sim.expected_hashes());
    ingest.stop().await;
}

#[tokio::test]
async fn a_second_client_is_refused_with_1008_and_keeps_retrying() {
    let sim = Sim::start(sim_config(2, 20)).await;
    let ingest = ingest(|config| {
        config.batch_ingest.nodes = vec![node("first", &sim.ws_url), node("second", &sim.ws_url)];
    })
    .await;
    eventually(WAIT, "the second client is refused twice", || async {
        sim.handle
            .connection_log()
            .iter()
            .filter(|event| {
                event.kind == ConnectionEventKind::Refused(REASON_ANOTHER_CLIENT.into())
            })
            .count()
            >= 2
    })
    .await;
    eventually(WAIT, "every batch is confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    assert_eq!(stored_hashes(&ingest.bus).await, sim.expected_hashes());
    ingest.stop().await;
}

#[tokio::test]
async fn a_node_whose_pow_is_not_running_is_retried_until_it_runs() {
    let mut config = sim_config(3, 10);
    config.pow_running = false;
    let sim = Sim::start(config).await;
    let ingest = ingest(|config| config.batch_ingest.nodes = vec![node("ml-3", &sim.ws_url)]).await;
    eventually(WAIT, "the node refuses with PoW not running", || async {
        sim.handle
            .connection_log()
            .iter()
            .any(|event| event.kind == ConnectionEventKind::Refused(REASON_POW_NOT_RUNNING.into()))
    })
    .await;
    assert_eq!(sim.handle.counters().confirmed, 0);
    sim.handle.set_pow_running(true);
    eventually(
        WAIT,
        "every batch is confirmed over the websocket",
        || async { sim.handle.all_confirmed() },
    )
    .await;
    assert_eq!(sim.handle.counters().acked_ws, 10);
    assert_eq!(stored_hashes(&ingest.bus).await, sim.expected_hashes());
    ingest.stop().await;
}

#[tokio::test]
async fn a_cut_connection_is_reestablished_and_nothing_is_lost() {
    let mut config = sim_config(4, 200);
    config.interval = std::time::Duration::from_millis(5);
    let sim = Sim::start(config).await;
    let ingest = ingest(|config| config.batch_ingest.nodes = vec![node("ml-4", &sim.ws_url)]).await;
    for cut in 1..=3_u64 {
        eventually(WAIT, "the client is connected", || async {
            sim.handle.is_client_connected()
        })
        .await;
        eventually(WAIT, "some batches flowed", || async {
            sim.handle.counters().confirmed >= cut * 20
        })
        .await;
        assert!(sim.handle.cut_connection());
    }
    eventually(WAIT, "every batch is confirmed", || async {
        sim.handle.all_confirmed()
    })
    .await;
    assert!(sim.handle.counters().ws_accepted >= 4);
    assert_eq!(stored_hashes(&ingest.bus).await, sim.expected_hashes());
    ingest.stop().await;
}
