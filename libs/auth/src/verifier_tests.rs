use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::test_keys::{self, *};
use crate::{Issuer, Role};

fn hmac_only(secrets: &[&[u8]]) -> Verifier {
    Verifier::new(VerifierKeys {
        hmac_secrets: secrets.iter().map(|secret| secret.to_vec()).collect(),
        ..VerifierKeys::default()
    })
    .unwrap()
}

fn pem_only(pems: &[&str]) -> Verifier {
    Verifier::new(VerifierKeys {
        public_keys_pem: pems.iter().map(|pem| pem.to_string()).collect(),
        ..VerifierKeys::default()
    })
    .unwrap()
}

/// Signs an arbitrary JSON payload with HS256 and `secret`, bypassing `Claims`.
fn hs256_raw(payload: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        payload,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn in_one_hour() -> u64 {
    claims("x").exp
}

#[test]
fn hs256_token_verifies_and_returns_its_claims() {
    let claims = claims("user-1");
    assert_eq!(verifier().verify(&hs256_token(&claims)), Ok(claims));
}

#[test]
fn rs256_token_verifies() {
    let claims = claims("user-rs");
    assert_eq!(
        pem_only(&[RSA_PUBLIC_PEM]).verify(&rs256_token(&claims)),
        Ok(claims)
    );
}

#[test]
fn es256_token_verifies() {
    let claims = claims("user-es");
    assert_eq!(
        pem_only(&[EC_PUBLIC_PEM]).verify(&es256_token(&claims)),
        Ok(claims)
    );
}

#[test]
fn alg_none_token_is_rejected() {
    let token = none_alg_token(&claims("mallory"));
    assert_eq!(
        verifier().verify(&token),
        Err(VerifyError::UnsupportedAlgorithm("none".into()))
    );
    for alg in ["None", "NONE", "nOnE"] {
        let header = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        let payload = token.split('.').nth(1).unwrap();
        let forged = format!("{header}.{payload}.{}", b64(b"sig"));
        assert!(matches!(
            verifier().verify(&forged),
            Err(VerifyError::UnsupportedAlgorithm(_))
        ));
    }
}

#[test]
fn token_signed_with_another_key_is_rejected() {
    let claims = claims("u");
    let wrong_secret = Issuer::hs256(OTHER_HMAC_SECRET).issue(&claims).unwrap();
    assert_eq!(
        verifier().verify(&wrong_secret),
        Err(VerifyError::BadSignature)
    );
    let wrong_ec = Issuer::from_pem("ES256", OTHER_EC_PRIVATE_PEM)
        .unwrap()
        .issue(&claims)
        .unwrap();
    assert_eq!(verifier().verify(&wrong_ec), Err(VerifyError::BadSignature));
}

#[test]
fn tampered_payload_is_rejected() {
    let token = hs256_token(&claims("u"));
    let mut segments: Vec<&str> = token.split('.').collect();
    let mut admin = claims("u");
    admin.role = Role::Admin;
    let forged_payload = b64(&serde_json::to_vec(&admin).unwrap());
    segments[1] = &forged_payload;
    assert_eq!(
        verifier().verify(&segments.join(".")),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn expired_token_is_rejected_as_expired() {
    let expired_claims = expired(claims("u"), 30);
    let error = verifier()
        .verify(&hs256_token(&expired_claims))
        .unwrap_err();
    assert_eq!(error, VerifyError::Expired);
    assert_eq!(error.code(), protocol::ErrorCode::TokenExpired);
    assert_eq!(error.reason_label(), "expired");
}

#[test]
fn leeway_accepts_a_recently_expired_token() {
    let lenient = Verifier::new(VerifierKeys {
        hmac_secrets: vec![TEST_HMAC_SECRET.to_vec()],
        leeway: Duration::from_secs(60),
        ..VerifierKeys::default()
    })
    .unwrap();
    assert!(
        lenient
            .verify(&hs256_token(&expired(claims("u"), 30)))
            .is_ok()
    );
    assert_eq!(
        lenient.verify(&hs256_token(&expired(claims("u"), 120))),
        Err(VerifyError::Expired)
    );
}

#[test]
fn bad_signature_is_reported_before_expiry() {
    let token = Issuer::hs256(OTHER_HMAC_SECRET)
        .issue(&expired(claims("u"), 30))
        .unwrap();
    assert_eq!(verifier().verify(&token), Err(VerifyError::BadSignature));
}

#[test]
fn algorithm_without_a_configured_key_is_rejected() {
    let only_pem = pem_only(&[RSA_PUBLIC_PEM]);
    assert_eq!(
        only_pem.verify(&hs256_token(&claims("u"))),
        Err(VerifyError::UnsupportedAlgorithm("HS256".into()))
    );
    assert_eq!(
        only_pem.verify(&es256_token(&claims("u"))),
        Err(VerifyError::UnsupportedAlgorithm("ES256".into()))
    );
    assert_eq!(
        hmac_only(&[TEST_HMAC_SECRET]).verify(&rs256_token(&claims("u"))),
        Err(VerifyError::UnsupportedAlgorithm("RS256".into()))
    );
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims("u"),
        &EncodingKey::from_secret(TEST_HMAC_SECRET),
    )
    .unwrap();
    assert_eq!(
        verifier().verify(&hs384),
        Err(VerifyError::UnsupportedAlgorithm("HS384".into()))
    );
}

#[test]
fn hmac_signed_with_the_public_key_is_rejected() {
    // The classic confusion attack: sign with HMAC keyed by the (public) RSA PEM, then claim
    // either HS256 or RS256 in the header.
    let forged_hs = Issuer::hs256(RSA_PUBLIC_PEM.as_bytes())
        .issue(&claims("mallory"))
        .unwrap();
    assert_eq!(
        pem_only(&[RSA_PUBLIC_PEM]).verify(&forged_hs),
        Err(VerifyError::UnsupportedAlgorithm("HS256".into()))
    );
    assert_eq!(
        verifier().verify(&forged_hs),
        Err(VerifyError::BadSignature)
    );

    let (_, rest) = forged_hs.split_once('.').unwrap();
    let forged_rs = format!("{}.{rest}", b64(br#"{"alg":"RS256","typ":"JWT"}"#));
    assert_eq!(
        pem_only(&[RSA_PUBLIC_PEM]).verify(&forged_rs),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        verifier().verify(&forged_rs),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn previous_secret_still_verifies_during_rotation() {
    let rotating = hmac_only(&[OTHER_HMAC_SECRET, TEST_HMAC_SECRET]);
    let claims = claims("u");
    assert_eq!(rotating.verify(&hs256_token(&claims)), Ok(claims.clone()));
    let current = Issuer::hs256(OTHER_HMAC_SECRET).issue(&claims).unwrap();
    assert_eq!(rotating.verify(&current), Ok(claims.clone()));
    let retired = Issuer::hs256(b"a-retired-secret-of-32-bytes-len")
        .issue(&claims)
        .unwrap();
    assert_eq!(rotating.verify(&retired), Err(VerifyError::BadSignature));
    let both_ec = pem_only(&[OTHER_EC_PUBLIC_PEM, EC_PUBLIC_PEM]);
    assert_eq!(both_ec.verify(&es256_token(&claims)), Ok(claims));
}

#[test]
fn node_role_requires_a_valid_node_id() {
    let mut node = claims("node-7");
    node.role = Role::Node;
    assert_eq!(
        verifier().verify(&hs256_token(&node)),
        Err(VerifyError::MissingClaim("node_id"))
    );
    node.node_id = Some("has.dots".into());
    assert_eq!(
        verifier().verify(&hs256_token(&node)),
        Err(VerifyError::InvalidClaim("node_id"))
    );
    node.node_id = Some("node-7".into());
    assert_eq!(verifier().verify(&hs256_token(&node)), Ok(node));
}

#[test]
fn required_and_forbidden_claims_are_enforced() {
    let exp = in_one_hour();
    let cases = [
        (json!({"sub": "u"}), VerifyError::MissingClaim("exp")),
        (json!({"exp": exp}), VerifyError::MissingClaim("sub")),
        (
            json!({"exp": exp, "sub": ""}),
            VerifyError::InvalidClaim("sub"),
        ),
        (
            json!({"exp": "soon", "sub": "u"}),
            VerifyError::InvalidClaim("exp"),
        ),
        (
            json!({"exp": exp, "sub": "u", "aud": "other"}),
            VerifyError::InvalidClaim("aud"),
        ),
        (
            json!({"exp": exp, "sub": "u", "nbf": exp}),
            VerifyError::InvalidClaim("nbf"),
        ),
        (
            json!({"exp": exp, "sub": "u", "publish": [1]}),
            VerifyError::InvalidClaim("publish"),
        ),
    ];
    for (payload, expected) in cases {
        let token = hs256_raw(&payload, TEST_HMAC_SECRET);
        assert_eq!(verifier().verify(&token), Err(expected), "{payload}");
    }
    let non_object = hs256_raw(&json!([1, 2]), TEST_HMAC_SECRET);
    assert_eq!(verifier().verify(&non_object), Err(VerifyError::Malformed));
}

#[test]
fn unusable_keys_are_refused_at_construction() {
    assert!(matches!(
        Verifier::new(VerifierKeys::default()),
        Err(KeyError::NoKeys)
    ));
    let short = VerifierKeys {
        hmac_secrets: vec![b"secret".to_vec()],
        ..VerifierKeys::default()
    };
    assert!(matches!(
        Verifier::new(short),
        Err(KeyError::HmacSecretTooShort { index: 0, len: 6 })
    ));
    let with_pems = |pem: &str| {
        Verifier::new(VerifierKeys {
            public_keys_pem: vec![EC_PUBLIC_PEM.to_owned(), pem.to_owned()],
            ..VerifierKeys::default()
        })
    };
    assert!(matches!(
        with_pems(RSA_PRIVATE_PEM),
        Err(KeyError::PrivateKeyGiven { index: 1 })
    ));
    assert!(matches!(
        with_pems(P384_PUBLIC_PEM),
        Err(KeyError::UnsupportedKeyType { index: 1 })
    ));
    assert!(matches!(
        with_pems("not a pem"),
        Err(KeyError::InvalidPem { index: 1, .. })
    ));
    let truncated = &RSA_PUBLIC_PEM[..RSA_PUBLIC_PEM.len() / 2];
    assert!(matches!(
        with_pems(truncated),
        Err(KeyError::InvalidPem { index: 1, .. })
    ));
    assert!(matches!(
        Issuer::from_pem("HS256", RSA_PRIVATE_PEM),
        Err(KeyError::UnsupportedAlgorithm(_))
    ));
    assert!(matches!(
        Issuer::from_pem("ES256", RSA_PRIVATE_PEM),
        Err(KeyError::InvalidPem { .. })
    ));
    assert!(matches!(
        Issuer::from_pem("RS256", EC_PRIVATE_PEM),
        Err(KeyError::InvalidPem { .. })
    ));
}

#[test]
fn debug_output_hides_secrets() {
    let keys = VerifierKeys {
        hmac_secrets: vec![TEST_HMAC_SECRET.to_vec()],
        ..VerifierKeys::default()
    };
    let secret_text = String::from_utf8_lossy(TEST_HMAC_SECRET).into_owned();
    assert!(!format!("{keys:?}").contains(&secret_text));
    assert!(!format!("{:?}", Verifier::new(keys).unwrap()).contains(&secret_text));
    assert!(!format!("{:?}", Issuer::hs256(TEST_HMAC_SECRET)).contains(&secret_text));
}

#[test]
fn garbage_never_panics_and_never_verifies() {
    let valid = test_keys::es256_token(&claims("u"));
    let header_only = b64(br#"{"alg":"HS256"}"#);
    let mut inputs: Vec<String> = [
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "ééé.ü.∂",
        "\0.\0.\0",
        "eyJ.eyJ.sig",
        "%%%.%%%.%%%",
        "=.=.=",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    inputs.push(format!("{header_only}.."));
    inputs.push(format!("{header_only}.{header_only}.{header_only}"));
    inputs.push(format!("{}.e30.", b64(br#"{"alg":7}"#)));
    inputs.push(format!("{}.e30.", b64(br#"{"typ":"JWT"}"#)));
    inputs.push(format!("{}.e30.", b64(b"[]")));
    inputs.push(format!("{}.e30.", b64(&[0xff, 0xfe, 0x00])));
    inputs.push("a".repeat(MAX_TOKEN_BYTES + 1));
    inputs.push(format!("{valid}{}", "A".repeat(MAX_TOKEN_BYTES)));
    inputs.push(".".repeat(10_000));
    for cut in 0..valid.len() {
        inputs.push(valid[..cut].to_owned());
    }
    // Deterministic pseudo-random tokens over the base64url alphabet plus dots.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    let mut state: u64 = 0x5eed;
    for length in 0..400 {
        let token: String = (0..length)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                alphabet[(state >> 33) as usize % alphabet.len()] as char
            })
            .collect();
        inputs.push(token);
    }
    let verifier = verifier();
    for input in &inputs {
        assert!(verifier.verify(input).is_err(), "accepted {input:?}");
    }
    assert!(verifier.verify(&valid).is_ok());
}

fn with_issuer_and_audience(issuer: Option<&str>, audience: Option<&str>) -> Verifier {
    Verifier::new(VerifierKeys {
        hmac_secrets: vec![TEST_HMAC_SECRET.to_vec()],
        issuer: issuer.map(str::to_owned),
        audience: audience.map(str::to_owned),
        ..VerifierKeys::default()
    })
    .unwrap()
}

fn token_with(extra: Value) -> String {
    let mut payload = json!({"sub": "u", "exp": in_one_hour()});
    if let (Some(payload), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        payload.extend(extra);
    }
    hs256_raw(&payload, TEST_HMAC_SECRET)
}

#[test]
fn configured_issuer_is_required_and_must_match() {
    let verifier = with_issuer_and_audience(Some("https://idp.example"), None);
    assert!(
        verifier
            .verify(&token_with(json!({"iss": "https://idp.example"})))
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&token_with(json!({"iss": "https://evil.example"}))),
        Err(VerifyError::InvalidClaim("iss"))
    );
    assert_eq!(
        verifier.verify(&token_with(json!({}))),
        Err(VerifyError::MissingClaim("iss"))
    );
    // Without a configured issuer, `iss` is not looked at.
    assert!(
        with_issuer_and_audience(None, None)
            .verify(&token_with(json!({"iss": "anyone"})))
            .is_ok()
    );
}

#[test]
fn configured_audience_is_required_and_must_match() {
    let verifier = with_issuer_and_audience(None, Some("switchboard"));
    assert!(
        verifier
            .verify(&token_with(json!({"aud": "switchboard"})))
            .is_ok()
    );
    assert!(
        verifier
            .verify(&token_with(json!({"aud": ["billing", "switchboard"]})))
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&token_with(json!({"aud": "billing"}))),
        Err(VerifyError::InvalidClaim("aud"))
    );
    assert_eq!(
        verifier.verify(&token_with(json!({}))),
        Err(VerifyError::MissingClaim("aud"))
    );
    // Without a configured audience, a token meant for some audience is refused.
    assert_eq!(
        with_issuer_and_audience(None, None).verify(&token_with(json!({"aud": "switchboard"}))),
        Err(VerifyError::InvalidClaim("aud"))
    );
}
