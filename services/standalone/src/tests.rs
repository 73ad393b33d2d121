//! Supervision of the services in one process: a service that fails or panics ends `serve`
//! with an error naming it (exit status 1 from the shared `main`), not a clean exit.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use gateway::test_util::Fault;
use tokio_util::sync::CancellationToken;

use super::*;

async fn bound() -> Standalone {
    let mut config = Config::default();
    config.gateway.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.gateway.shutdown_delay = Duration::ZERO;
    config.simulation.nodes = 0;
    config.simulation.ml_node = false;
    Standalone::bind(config)
        .await
        .expect("the standalone binds")
}

async fn serve_unstopped(standalone: Standalone) -> Result<(), RunError> {
    // Nobody cancels the token: only a failing service may end `serve`.
    tokio::time::timeout(
        Duration::from_secs(30),
        standalone.serve(CancellationToken::new()),
    )
    .await
    .expect("serve ends when a service stops")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_panics_ends_serve_with_an_error_naming_it() {
    let mut standalone = bound().await;
    standalone.gateway.inject_fault(Fault {
        task: Fault::SERVE,
        after: Duration::from_millis(300),
    });
    match serve_unstopped(standalone).await {
        Err(RunError::ServicePanicked { service, .. }) => assert_eq!(service, "gateway"),
        other => panic!("expected the gateway's panic, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_background_task_panics_ends_serve_with_its_error() {
    let mut standalone = bound().await;
    standalone.gateway.inject_fault(Fault {
        task: Fault::HEARTBEAT,
        after: Duration::from_millis(300),
    });
    let error = serve_unstopped(standalone).await.unwrap_err();
    assert!(
        matches!(&error, RunError::Gateway(gateway::RunError::Task(failure)) if failure.task() == "heartbeat"),
        "{error:?}"
    );
    let chain = service::error_chain(&error);
    assert!(chain.contains("injected fault in heartbeat"), "{chain}");
}
