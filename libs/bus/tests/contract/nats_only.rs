//! What only a networked backend has: reconnecting and failing to connect.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use bus::test_util::NatsServer;
use bus::{Bus, ConnectError, NatsOptions};
use bytes::Bytes;

use tokio::time::Instant;

use crate::fixture::{WAIT, connect, eventually, unique_subject};

#[tokio::test]
async fn subscription_resumes_after_server_restart() {
    let mut server = NatsServer::start().await;
    let bus = connect(&server, NatsOptions::default()).await;
    let subject = unique_subject("restart");
    let mut subscription = bus.subscribe(&subject).await.expect("subscribe");
    bus.flush().await.expect("flush");
    assert_eq!(bus.backend_name(), "nats");

    server.stop().await;
    eventually("the client notices the server is gone", || async {
        !bus.is_connected()
    })
    .await;
    server.restart().await;
    eventually("the client reconnects", || async { bus.is_connected() }).await;

    // The client restores subscriptions on reconnect; probe until one gets through.
    let deadline = Instant::now() + WAIT;
    loop {
        bus.publish(&subject, Bytes::from("probe"))
            .await
            .expect("publish after reconnect");
        let probe = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
        if matches!(probe, Ok(Some(_))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivery did not resume after the restart"
        );
    }
}

#[tokio::test]
async fn connecting_where_no_server_listens_fails_as_unreachable() {
    let free_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();

    let result = Bus::connect_nats(
        &format!("nats://127.0.0.1:{free_port}"),
        NatsOptions::default(),
    )
    .await;

    assert!(
        matches!(result, Err(ConnectError::Unreachable { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn memory_bus_names_its_backend() {
    let bus = Bus::memory();
    assert_eq!(bus.backend_name(), "memory");
    assert!(bus.is_connected());
    assert_eq!(bus.dropped_messages(), 0);
}
