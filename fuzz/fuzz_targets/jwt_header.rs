//! Tokens as the gateway and publisher verify them: `Verifier::verify`, which peeks at the
//! header's `alg` before any key is touched, then checks the signature and the claims.
//!
//! The first byte picks the mode. Even: the rest is the token text as it came in. Odd: the
//! rest is `header JSON \0 payload JSON`, base64url-encoded and signed with the verifier's
//! HMAC key, so arbitrary headers and claims get past the signature and reach the header peek,
//! jsonwebtoken's own header parse and the claims checks.
#![no_main]

use std::sync::LazyLock;

use auth::{Role, Verifier, VerifyError, test_keys};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Accepts HS256 (the test secret), RS256 and ES256 (the test public keys).
static VERIFIER: LazyLock<Verifier> = LazyLock::new(test_keys::verifier);
static SIGNING_KEY: LazyLock<EncodingKey> =
    LazyLock::new(|| EncodingKey::from_secret(test_keys::TEST_HMAC_SECRET));

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    if rest.len() > 2 * auth::MAX_TOKEN_BYTES {
        return;
    }
    if selector & 1 == 0 {
        let token = String::from_utf8_lossy(rest);
        check_outcome(&token, VERIFIER.verify(&token), None);
    } else {
        let mut parts = rest.splitn(2, |&byte| byte == 0);
        let header = parts.next().unwrap_or_default();
        let payload = parts.next().unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let Ok(signature) =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &SIGNING_KEY, Algorithm::HS256)
        else {
            return;
        };
        let token = format!("{signing_input}.{signature}");
        check_outcome(&token, VERIFIER.verify(&token), Some(header));
    }
});

/// What holds for every outcome; `header` is the raw header JSON when the target wrote it.
fn check_outcome(token: &str, outcome: Result<auth::Claims, VerifyError>, header: Option<&[u8]>) {
    match outcome {
        Ok(claims) => {
            assert!(
                token.len() <= auth::MAX_TOKEN_BYTES,
                "an oversized token was accepted"
            );
            assert!(
                !claims.sub.is_empty(),
                "a token without a subject was accepted"
            );
            if claims.role == Role::Node {
                let node_id = claims.node_id.as_deref().unwrap_or_default();
                assert!(
                    protocol::room::validate_node_id(node_id).is_ok(),
                    "a node token with node_id {node_id:?} was accepted"
                );
            }
            // Only HS256 was signed here, so only a header naming HS256 may verify: anything
            // else would be the algorithm-confusion hole the header peek exists to close.
            if let Some(header) = header {
                let alg = serde_json::from_slice::<Value>(header)
                    .ok()
                    .and_then(|value| value.get("alg").and_then(Value::as_str).map(str::to_owned));
                assert_eq!(
                    alg.as_deref(),
                    Some("HS256"),
                    "a token whose header is {:?} verified with the HMAC key",
                    String::from_utf8_lossy(header)
                );
            }
        }
        Err(VerifyError::UnsupportedAlgorithm(alg)) => {
            assert!(
                alg.chars().count() <= 32,
                "an unbounded alg reached the error: {alg:?}"
            );
        }
        Err(_) => {}
    }
}
