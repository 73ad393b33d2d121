use std::io::Write;

use http_front::test_pki::TestPki;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::*;

fn pem_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file
}

/// Serves WebSocket upgrades over TLS on a free port until the test ends; returns the port.
async fn spawn_wss_server(pki: &TestPki) -> u16 {
    let acceptor = pki.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = tokio_tungstenite::accept_async(tls).await;
                }
            });
        }
    });
    port
}

async fn connect(
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let request = format!("wss://127.0.0.1:{port}/")
        .into_client_request()
        .unwrap();
    tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector(config)))
        .await
        .map(|_| ())
}

#[test]
fn a_generated_ca_is_accepted_as_a_root() {
    let pki = TestPki::new("sdk unit test ca");
    assert!(client_config(Some(&pki.ca_path())).is_ok());
}

#[test]
fn a_bad_ca_file_is_refused_with_its_path() {
    let missing = Path::new("/nonexistent/switchboard-ca.pem");
    assert!(matches!(
        client_config(Some(missing)),
        Err(TlsError::CaFile { path, .. }) if path == missing
    ));
    let empty = pem_file("not a certificate\n");
    assert!(matches!(
        client_config(Some(empty.path())),
        Err(TlsError::CaFileEmpty(_))
    ));
    let broken = pem_file("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
    assert!(client_config(Some(broken.path())).is_err());
}

#[tokio::test]
async fn the_ca_file_makes_a_private_server_trusted() {
    let pki = TestPki::new("sdk unit test ca");
    let port = spawn_wss_server(&pki).await;
    connect(port, client_config(Some(&pki.ca_path())).unwrap())
        .await
        .expect("a server signed by the CA of the CA file is trusted");
}

#[tokio::test]
async fn a_server_no_trusted_ca_signed_is_refused_as_untrusted() {
    let pki = TestPki::new("sdk unit test ca");
    let port = spawn_wss_server(&pki).await;
    // Each CA its own name, or a foreign CA would look like the issuer (BadSignature).
    let other = TestPki::new("another sdk unit test ca");
    let error = connect(port, client_config(Some(&other.ca_path())).unwrap())
        .await
        .expect_err("a server signed by another CA is refused");
    let text = untrusted_server(&error).expect("the refusal names the untrusted certificate");
    assert!(text.contains("UnknownIssuer"), "{text}");
}
