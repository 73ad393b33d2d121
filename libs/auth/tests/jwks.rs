//! JWKS against a real local HTTP server (axum on a free port): `kid` lookup, key rotation
//! picked up on an unknown `kid` (rate-limited) and on the refresh interval, `file://` sets.
#![cfg(all(feature = "jwks", feature = "test-util"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use switchboard_auth::test_keys::{
    EC_PRIVATE_PEM, EC_PUBLIC_PEM, OTHER_EC_PRIVATE_PEM, OTHER_EC_PUBLIC_PEM, claims, ec_jwk,
    es256_token_with_kid,
};
use switchboard_auth::{JwksSource, Verifier, VerifierKeys, VerifyError};

/// A key-set server whose document can be swapped, counting the requests it answers.
#[derive(Clone, Default)]
struct KeyServer {
    document: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(keys: Value) -> (Self, SocketAddr) {
        let server = KeyServer::default();
        server.publish(keys);
        let router = Router::new()
            .route("/.well-known/jwks.json", get(serve))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (server, addr)
    }

    fn publish(&self, keys: Value) {
        *self.document.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(State(server): State<KeyServer>) -> String {
    server.requests.fetch_add(1, Ordering::SeqCst);
    server.document.lock().unwrap().clone()
}

fn jwks_verifier() -> Verifier {
    Verifier::new(VerifierKeys {
        jwks: true,
        ..VerifierKeys::default()
    })
    .unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn tokens_are_verified_by_the_key_their_kid_names_and_a_rotation_is_picked_up() {
    let (server, addr) = KeyServer::start(json!([ec_jwk(EC_PUBLIC_PEM, "key-1")])).await;
    let source = JwksSource::start(url(addr), jwks_verifier(), Duration::from_secs(3600))
        .await
        .unwrap()
        .with_min_refetch_interval(Duration::ZERO);
    let old_token = es256_token_with_kid(EC_PRIVATE_PEM, "key-1", &claims("u1"));
    assert_eq!(source.verify(&old_token).await.unwrap().sub, "u1");

    // The identity provider rotates: key-2 is published, key-1 withdrawn.
    let new_token = es256_token_with_kid(OTHER_EC_PRIVATE_PEM, "key-2", &claims("u2"));
    assert!(matches!(
        source.verifier().verify(&new_token),
        Err(VerifyError::UnknownKeyId(kid)) if kid == "key-2"
    ));
    server.publish(json!([ec_jwk(OTHER_EC_PUBLIC_PEM, "key-2")]));
    let fetches_before = server.requests();
    assert_eq!(source.verify(&new_token).await.unwrap().sub, "u2");
    assert_eq!(
        server.requests(),
        fetches_before + 1,
        "one fetch for the unknown kid"
    );
    assert!(matches!(
        source.verify(&old_token).await,
        Err(VerifyError::UnknownKeyId(_))
    ));

    // A token claiming key-2 but signed by another key is a bad signature, not a new key.
    let forged = es256_token_with_kid(EC_PRIVATE_PEM, "key-2", &claims("mallory"));
    assert_eq!(source.verify(&forged).await, Err(VerifyError::BadSignature));
}

#[tokio::test]
async fn unknown_kids_fetch_at_most_once_per_interval() {
    let (server, addr) = KeyServer::start(json!([ec_jwk(EC_PUBLIC_PEM, "key-1")])).await;
    let source = JwksSource::start(url(addr), jwks_verifier(), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(server.requests(), 1);
    for n in 0..20 {
        let made_up = es256_token_with_kid(EC_PRIVATE_PEM, &format!("made-up-{n}"), &claims("x"));
        assert!(matches!(
            source.verify(&made_up).await,
            Err(VerifyError::UnknownKeyId(_))
        ));
    }
    assert_eq!(
        server.requests(),
        1,
        "the start fetch was less than 10 s ago"
    );
}

#[tokio::test]
async fn the_set_is_fetched_again_every_refresh_interval() {
    let (server, addr) = KeyServer::start(json!([ec_jwk(EC_PUBLIC_PEM, "key-1")])).await;
    let source = Arc::new(
        JwksSource::start(url(addr), jwks_verifier(), Duration::from_millis(100))
            .await
            .unwrap(),
    );
    let stop = Arc::new(tokio::sync::Notify::new());
    let refresher = tokio::spawn({
        let source = source.clone();
        let stop = stop.clone();
        async move { source.refresh_periodically(stop.notified()).await }
    });
    server.publish(json!([ec_jwk(OTHER_EC_PUBLIC_PEM, "key-2")]));
    let token = es256_token_with_kid(OTHER_EC_PRIVATE_PEM, "key-2", &claims("u"));
    // The plain (non-fetching) check passes once the periodic refresh has run.
    tokio::time::timeout(Duration::from_secs(5), async {
        while source.verifier().verify(&token).is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the refresh installed key-2");
    stop.notify_one();
    refresher.await.unwrap();
}

#[tokio::test]
async fn a_file_url_and_an_hs256_token_naming_a_jwks_kid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(
        &path,
        json!({ "keys": [ec_jwk(EC_PUBLIC_PEM, "key-1")] }).to_string(),
    )
    .unwrap();
    let source = JwksSource::start(
        format!("file://{}", path.display()),
        jwks_verifier(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let token = es256_token_with_kid(EC_PRIVATE_PEM, "key-1", &claims("u"));
    assert!(source.verify(&token).await.is_ok());
    // Algorithm confusion: an HS256 token naming the EC key's kid is never checked with it.
    let confused = switchboard_auth::Issuer::hs256(b"whatever-secret-of-32-bytes-long")
        .with_key_id("key-1")
        .issue(&claims("mallory"))
        .unwrap();
    assert!(matches!(
        source.verify(&confused).await,
        Err(VerifyError::UnsupportedAlgorithm(_))
    ));
    // Nothing usable at start is a start error.
    std::fs::write(&path, r#"{"keys": []}"#).unwrap();
    assert!(
        JwksSource::start(
            format!("file://{}", path.display()),
            jwks_verifier(),
            Duration::from_secs(3600),
        )
        .await
        .is_err()
    );
}
