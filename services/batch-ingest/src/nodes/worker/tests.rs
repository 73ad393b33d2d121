//! The node connector against a real `wss://` endpoint (TLS by tokio-rustls, certificates
//! from a private CA made at test time).

use http_front::test_pki::TestPki;
use tokio::net::TcpListener;

use super::*;

/// A `wss://` endpoint that upgrades every connection and then holds it; returns its URL.
async fn wss_node(pki: &TestPki) -> String {
    let acceptor = pki.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await
                    && let Ok(mut socket) = tokio_tungstenite::accept_async(tls).await
                {
                    while socket.next().await.is_some() {}
                }
            });
        }
    });
    format!("wss://{addr}/api/v1/pow/ws")
}

fn settings_trusting(ca_file: &std::path::Path) -> WorkerSettings {
    WorkerSettings {
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 4,
        drain_timeout: Duration::from_secs(1),
        tls: Some(client::tls::client_config(Some(ca_file)).unwrap()),
    }
}

#[tokio::test]
async fn a_wss_node_signed_by_the_configured_ca_is_connected() {
    let pki = TestPki::new("ml node test ca");
    let url = wss_node(&pki).await;
    let settings = settings_trusting(&pki.ca_path());
    let socket = connect(&url, &settings).await;
    assert!(socket.is_ok(), "{:?}", socket.err());
}

#[tokio::test]
async fn a_wss_node_signed_by_another_ca_is_refused() {
    let pki = TestPki::new("ml node test ca");
    let url = wss_node(&pki).await;
    let other = TestPki::new("some other ca");
    let settings = settings_trusting(&other.ca_path());
    let error = connect(&url, &settings).await.expect_err("refused");
    assert!(error.contains("UnknownIssuer"), "{error}");
}
