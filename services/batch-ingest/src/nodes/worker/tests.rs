//! The node connector against a real `wss://` endpoint (TLS by tokio-rustls, certificates
//! from a private CA made at test time).

use std::io::Write;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;

struct TestPki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn test_pki(name: &str) -> TestPki {
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
    TestPki {
        ca_pem: ca.pem(),
        chain: vec![cert.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

/// A `wss://` endpoint that upgrades every connection and then holds it; returns its URL.
async fn wss_node(pki: &TestPki) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
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

fn settings_trusting(ca_pem: &str) -> (WorkerSettings, tempfile::NamedTempFile) {
    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    ca_file.write_all(ca_pem.as_bytes()).unwrap();
    let settings = WorkerSettings {
        reconnect_min: Duration::from_millis(10),
        reconnect_max: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        max_batch_bytes: 1024 * 1024,
        max_in_flight: 4,
        drain_timeout: Duration::from_secs(1),
        tls: Some(client::tls::client_config(Some(ca_file.path())).unwrap()),
    };
    (settings, ca_file)
}

#[tokio::test]
async fn a_wss_node_signed_by_the_configured_ca_is_connected() {
    let pki = test_pki("ml node test ca");
    let url = wss_node(&pki).await;
    let (settings, _ca_file) = settings_trusting(&pki.ca_pem);
    let socket = connect(&url, &settings).await;
    assert!(socket.is_ok(), "{:?}", socket.err());
}

#[tokio::test]
async fn a_wss_node_signed_by_another_ca_is_refused() {
    let pki = test_pki("ml node test ca");
    let url = wss_node(&pki).await;
    let (settings, _ca_file) = settings_trusting(&test_pki("some other ca").ca_pem);
    let error = connect(&url, &settings).await.expect_err("refused");
    assert!(error.contains("UnknownIssuer"), "{error}");
}
