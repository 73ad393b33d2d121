//! Supervision at the process level (issue 11 item 4): a panic in a background task of the
//! `switchboard-gateway` process ends it with a non-zero status (so Kubernetes restarts it)
//! after it deregistered, instead of leaving a gateway that no longer sends heartbeats.
//!
//! The fault is injected through `SWITCHBOARD_TEST_FAULT`, which only binaries built with the
//! gateway's `test-util` feature read (the test suite builds with `--all-features`).

use std::time::Duration;

use e2e::{GatewayProcess, Stack, eventually};
use gateway::test_util::Fault;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_gateway_background_task_ends_the_process_with_status_1() {
    let stack = Stack::start().await;
    for task in [Fault::HEARTBEAT, Fault::LIVENESS, Fault::PRESENCE_WRITER] {
        let server_id = format!("gw-fault-{}", task.replace(' ', "-"));
        let mut env = stack.gateway_env(&server_id);
        env.push((Fault::ENV, format!("{task}@1500")));
        let mut process = GatewayProcess::spawn(&env).await;
        let store = store::Store::connect(&stack.gateway_config().store)
            .await
            .expect("redis reachable");
        eventually(Duration::from_secs(5), || async {
            store
                .live_gateways()
                .await
                .is_ok_and(|live| live.iter().any(|gateway| gateway.id == server_id))
        })
        .await;
        let status = process
            .exit_within(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the gateway is still running 15 s after a panic in {task}: was it built with \
                 `--all-features` (the fault needs the `test-util` feature)?"
                )
            });
        assert_eq!(status.code(), Some(1), "{task}: exit status {status}");
        let live = store.live_gateways().await.expect("redis reachable");
        assert!(
            live.iter().all(|gateway| gateway.id != server_id),
            "{task}: the failed gateway deregistered before exiting: {live:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_does_not_stop_a_gateway_without_tls() {
    let stack = Stack::start().await;
    let mut process = GatewayProcess::spawn(&stack.gateway_env("gw-hangup")).await;
    for _ in 0..2 {
        let sent = std::process::Command::new("kill")
            .arg("-HUP")
            .arg(process.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        process.exit_within(Duration::from_secs(1)).await.is_none(),
        "SIGHUP stopped the gateway"
    );
    let (status, _) = gateway::test_util::get_json(process.addr, "/readyz").await;
    assert_eq!(status, 200);
}
