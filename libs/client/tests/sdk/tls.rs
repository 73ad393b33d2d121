//! `wss://` through a gateway that terminates TLS itself (`gateway.tls_cert`/`tls_key`),
//! with certificates from a private CA made at test time.

use std::path::PathBuf;

use client::{Client, ConnectionState, DisconnectReason};
use gateway::test_util::{TestGateway, test_config};

use crate::helpers::*;

/// A private CA and a gateway certificate for 127.0.0.1 it signed, as PEM files.
struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    fn new(name: &str) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(pki.ca(), ca.pem()).unwrap();
        std::fs::write(pki.dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(pki.dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        pki
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    async fn gateway(&self) -> TestGateway {
        let mut config = test_config();
        config.gateway.tls_cert = Some(self.dir.path().join("cert.pem"));
        config.gateway.tls_key = Some(self.dir.path().join("key.pem"));
        TestGateway::start(config, bus::Bus::memory(), store::Store::memory()).await
    }
}

#[tokio::test]
async fn a_client_trusting_the_private_ca_connects_over_wss() {
    let pki = TestPki::new("sdk test ca");
    let gateway = pki.gateway().await;
    let client = Client::builder(format!("wss://{}/api/ws/connect", gateway.addr))
        .token(viewer_token("tess"))
        .tls_ca_file(pki.ca())
        .build()
        .unwrap();
    let mut events = client.connect().unwrap();
    client.subscribe(["news"]).await.unwrap();
    subscribed_to(&mut events, "news").await;
    assert!(client.state().is_connected());
    client.close().await;
}

#[tokio::test]
async fn a_gateway_certificate_no_trusted_ca_signed_ends_the_client_with_a_clear_reason() {
    let pki = TestPki::new("sdk test ca");
    let gateway = pki.gateway().await;
    let other = TestPki::new("another ca");
    let client = Client::builder(format!("wss://{}/api/ws/connect", gateway.addr))
        .token(viewer_token("tess"))
        .tls_ca_file(other.ca())
        .reconnect(fast_policy())
        .build()
        .unwrap();
    let mut state = client.watch_state();
    let _events = client.connect().unwrap();
    let reached = tokio::time::timeout(WAIT, state.wait_for(ConnectionState::is_disconnected))
        .await
        .expect("the client stops instead of retrying")
        .unwrap()
        .clone();
    let ConnectionState::Disconnected {
        reason: DisconnectReason::UntrustedServer(text),
    } = reached
    else {
        panic!("expected UntrustedServer, got {reached:?}");
    };
    assert!(text.contains("UnknownIssuer"), "{text}");
}
