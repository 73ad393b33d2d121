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

    // No server of the list answers: retried until the connect timeout, then unreachable.
    let connect_timeout = Duration::from_millis(600);
    let started = Instant::now();
    let result = Bus::connect_nats(
        &format!("nats://127.0.0.1:{free_port}"),
        NatsOptions {
            connect_timeout,
            ..NatsOptions::default()
        },
    )
    .await;
    let took = started.elapsed();
    assert!(
        took >= connect_timeout / 2 && took < connect_timeout * 3,
        "gave up after {took:?}"
    );

    assert!(
        matches!(result, Err(ConnectError::Unreachable { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_server_list_connects_to_a_live_entry_and_names_a_malformed_one() {
    let server = NatsServer::start().await;
    let free_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let dead = format!("nats://127.0.0.1:{free_port}");
    for urls in [
        format!("{dead},{}", server.url()),
        format!("{} , {dead}", server.url()),
    ] {
        let bus = Bus::connect_nats(&urls, NatsOptions::default())
            .await
            .unwrap_or_else(|error| panic!("{urls}: {error}"));
        let attached = bus.connected_server().expect("connected");
        assert_eq!(attached.port, server.port(), "{urls}");
    }

    let result = Bus::connect_nats(
        &format!("{},http://127.0.0.1:1", server.url()),
        NatsOptions::default(),
    )
    .await;
    assert!(
        matches!(&result, Err(ConnectError::InvalidUrl { url, .. }) if url == "http://127.0.0.1:1"),
        "{result:?}"
    );
}

#[tokio::test]
async fn initial_connect_waits_for_a_server_that_starts_late() {
    let mut server = NatsServer::start().await;
    let url = server.url();
    server.stop().await;
    let restart = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.restart().await;
        server
    });
    let bus = Bus::connect_nats(
        &url,
        NatsOptions {
            connect_timeout: Duration::from_secs(10),
            ..NatsOptions::default()
        },
    )
    .await
    .expect("the connect is retried until the server is up");
    assert!(bus.is_connected());
    drop(restart.await.expect("restart task"));
}

#[tokio::test]
async fn memory_bus_names_its_backend() {
    let bus = Bus::memory();
    assert_eq!(bus.backend_name(), "memory");
    assert_eq!(bus.connected_server(), None);
    assert!(bus.is_connected());
    assert_eq!(bus.dropped_messages(), 0);
}
