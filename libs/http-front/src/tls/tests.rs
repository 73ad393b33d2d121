//! TLS termination through a real front door on a loopback port: reload on SIGHUP, a stalled
//! handshake cut by the timeout.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream as ClientTlsStream;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::test_pki::TestPki;
use crate::{FrontDoor, Limits};

/// A client that trusts only `pki`'s CA.
fn connector(pki: &TestPki) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Serves a `/ping` route through a front door with `tls`; returns its address.
async fn serve(
    tls: ServerTls,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/ping", get(|| async { "pong" }));
    let door = FrontDoor::new(Limits {
        header_read_timeout,
        max_connections: 16,
        probe_headroom: 0,
    })
    .tls(tls);
    tokio::spawn(door.serve(listener, router, async move {
        shutdown.cancelled().await;
        tokio::time::Instant::now()
    }));
    addr
}

async fn connect(pki: &TestPki, addr: std::net::SocketAddr) -> ClientTlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    connector(pki).connect(name, tcp).await.unwrap()
}

fn served_certificate(stream: &ClientTlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// Sends a keep-alive `GET /ping` and reads the answer.
async fn ping(stream: &mut ClientTlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"pong") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(read > 0, "connection closed before the answer");
        answer.extend_from_slice(&buf[..read]);
    }
    String::from_utf8(answer).unwrap()
}

/// Polls `condition` every 20 ms for up to 5 s.
async fn eventually<F: AsyncFnMut() -> bool>(mut condition: F) -> bool {
    for _ in 0..250 {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn sighup_reloads_the_certificate_for_new_connections_and_keeps_old_ones() {
    let pki = TestPki::new("front door test ca");
    let first = pki.issue().chain[0].clone();
    let registry = prometheus::Registry::new();
    let metrics = TlsMetrics::register(&registry, "test").unwrap();
    let tls = ServerTls::load(&pki.cert_path(), &pki.key_path())
        .unwrap()
        .with_metrics(metrics.clone());
    let shutdown = CancellationToken::new();
    let addr = serve(tls, Duration::from_secs(5), shutdown.clone()).await;

    // Served once: the accept loop is running, so its SIGHUP handler is installed.
    let mut existing = connect(&pki, addr).await;
    assert_eq!(served_certificate(&existing), first);
    assert!(ping(&mut existing).await.starts_with("HTTP/1.1 200"));

    let second = pki.issue().chain[0].clone();
    assert_ne!(first, second);
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP).unwrap();
    assert!(
        eventually(async || metrics.reloads.with_label_values(&["ok"]).get() == 1).await,
        "the reload is counted"
    );
    let fresh = connect(&pki, addr).await;
    assert_eq!(
        served_certificate(&fresh),
        second,
        "new handshakes use the new pair"
    );
    assert!(
        ping(&mut existing).await.starts_with("HTTP/1.1 200"),
        "the connection from before the reload is still served"
    );

    // A broken new pair: logged, counted, and the pair in use stays.
    std::fs::write(pki.cert_path(), "not a certificate").unwrap();
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP).unwrap();
    assert!(
        eventually(async || metrics.reloads.with_label_values(&["error"]).get() == 1).await,
        "the failed reload is counted"
    );
    let after_failure = connect(&pki, addr).await;
    assert_eq!(served_certificate(&after_failure), second);
    shutdown.cancel();
}

#[tokio::test]
async fn a_client_stalled_in_the_handshake_is_closed_at_the_header_read_timeout() {
    let pki = TestPki::new("front door test ca");
    pki.issue();
    let registry = prometheus::Registry::new();
    let metrics = TlsMetrics::register(&registry, "test").unwrap();
    let tls = ServerTls::load(&pki.cert_path(), &pki.key_path())
        .unwrap()
        .with_metrics(metrics.clone());
    let shutdown = CancellationToken::new();
    let addr = serve(tls, Duration::from_millis(300), shutdown.clone()).await;

    // The first bytes of a ClientHello record header, then nothing.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf))
        .await
        .expect("the server closes the stalled connection");
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not answered: {read:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed at the timeout, after {waited:?}"
    );
    assert_eq!(
        metrics
            .handshake_failures
            .with_label_values(&["timeout"])
            .get(),
        1
    );
    shutdown.cancel();
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let pki = TestPki::new("front door test ca");
    pki.issue();
    let other = TestPki::new("front door test ca");
    other.issue();
    assert!(matches!(
        ServerTls::load(&pki.cert_path(), &other.key_path()),
        Err(TlsError::Refused { .. })
    ));
    assert!(matches!(
        ServerTls::load(Path::new("/nonexistent/cert.pem"), &pki.key_path()),
        Err(TlsError::Read {
            what: "certificate",
            ..
        })
    ));
}
