//! Static test keys and token helpers (feature `test-util`). The keys were generated for this
//! crate's tests with `openssl genpkey` and protect nothing: never deploy them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Claims, Issuer, Role, Verifier, VerifierKeys};

/// The HS256 secret test tokens are signed with (32 bytes, the minimum a verifier accepts).
pub const TEST_HMAC_SECRET: &[u8] = b"switchboard-test-secret-32-bytes";

/// A second HS256 secret, for rotation and wrong-key tests.
pub const OTHER_HMAC_SECRET: &[u8] = b"switchboard-other-secret-32bytes";

/// RSA 2048 private key (PKCS#8), for [`crate::Issuer::from_pem`] with `"RS256"`.
pub const RSA_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCgt8Ihar/O8+jY
vhdPZU4kmfoK+3Lio0iokn9/i7fRP2VuQsZI5FcoknQNIdeDkA6oilhOTIR333Dj
9TSiXQmhbfAiSVKuD/FkmDvHExyfo7Zkc4R4stjZIvLSkJlMfOHsF1wciqS/73j3
YYD0FBFqtS7fFbCBgFNuwpezHMkfrwbhtJ/7dgJFCwvt4xoqYRwxVrxO367C+hNX
uAU8V4tEEeE4APaRlY8GRNoESySe9ONtH4NZOkLeYWfy8/17D0nTkcQib/2u8M7M
82Gf8LkZiM0sz/9WuvQqsuU2Y3ZPx8mkMaK+X+3lPCXa5iKLi709yi4yHwu6KKSk
scH5DZVxAgMBAAECggEAEFmpcQNeaJQ1ScmK7wuYF86nWrMqhKaGZ4nh2SyyYmH/
9GfsKrG6MTk2/7gD6BFBgIF0iuCrcFOFtVc2h9cNugPIdIB/nhAmp2x6Vl4aIR6D
WXRME4hkWbC9wdCum9KvnDhjKU8shA89f/NGLm6VOAUfM9hNyNrwgfnfe3wP9P5M
vVG8mD/BaXf+AbCv3Fx2m98UHWm3vLVmiEhr0a43D7QbRNqKUN3XTnibtaTmCEXH
EzCtAqOn7p4IGlHOSq4ugc3Qdvgmg8oj+Nml7q13+YqyqEqPtI08sUyKdUvENYDb
4RDHoMKzfqOsbn9hYFGPxKV0QScb0rs1EMb/OHmQEQKBgQDcAbMvTNw+0xFKf7d8
qYZ9raKfQfU1NFH2s9f/cPaA1AoUBvgvCZpabj+9g3oTPTYO7bgWJL8Ch2GEOiHK
BN1jLAZGvHUbGoPX0tQ1A9sJNQYGHEdvxhHSM2a9XOf0ruQ80243bLSzU12uCWX7
/HDU+eaGIXDi+Hhf7JyZudNpaQKBgQC7Au2j8S0zS627LxPHUL/vR07csDucW2bH
xFTl6Wdnw4bxhqCy5YThKkaqqqo0JytHExFfPFisIzQyTm/mvujakdakFOkjB+XH
gnHGFnfchz+V3orOoJGWDo6P9+JLQhDVdInCXNbY4CwpMdXbVRSgSF+HIsyW50wA
32/SRLUCyQKBgQDRdlzfH9JhjhrcTxSm/9AoP/Sgo++NpC6VL0zqyuYmabrernQE
dKQcjPLqwA6t2o1pUTL/AiVJhxN1DNO2v0L4dKXVGwBzuZ7lELkxcGZOMcl2b94j
sPSuqHmcuKOu9gQfVT2OT1ULlseONyx96S6T1wl/kr8jmWUiDuhaA+4gYQKBgH4Y
Kl25N433wCuPQZnJ47CV9yGsnnT92B5oTgo7x2JanzlpWh9lzKP52m4m5t6FbpPc
0oDRcsSWdBJbeu4t2VnOrdgy1UOuhotwdABpk+YZN5F43UUXVTLFm/CM5oNyB2G1
01E/Qgo3lO8t0BG0m1S7l9XJbANv73pDLeWsOBSpAoGBAKeMSJp8r23AMeNjboxJ
3i7s5qwVC/yi1XddAAuzrqPW8ffo4weJqpZ27e/4D+OVAkYQiJoCNo+2cERMXUbi
kKt5O2QU/0zd6KTfV+PwC6h9ZPDdE367Xx1r6TznaqElfOy2svHY9p7ZTCv8/AnI
2TeuQzYbVOjcs7tiGGfYEzYC
-----END PRIVATE KEY-----
";

/// The public half of [`RSA_PRIVATE_PEM`].
pub const RSA_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoLfCIWq/zvPo2L4XT2VO
JJn6Cvty4qNIqJJ/f4u30T9lbkLGSORXKJJ0DSHXg5AOqIpYTkyEd99w4/U0ol0J
oW3wIklSrg/xZJg7xxMcn6O2ZHOEeLLY2SLy0pCZTHzh7BdcHIqkv+9492GA9BQR
arUu3xWwgYBTbsKXsxzJH68G4bSf+3YCRQsL7eMaKmEcMVa8Tt+uwvoTV7gFPFeL
RBHhOAD2kZWPBkTaBEsknvTjbR+DWTpC3mFn8vP9ew9J05HEIm/9rvDOzPNhn/C5
GYjNLM//Vrr0KrLlNmN2T8fJpDGivl/t5Twl2uYii4u9PcouMh8LuiikpLHB+Q2V
cQIDAQAB
-----END PUBLIC KEY-----
";

/// EC P-256 private key (PKCS#8), for [`crate::Issuer::from_pem`] with `"ES256"`.
pub const EC_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAKyADInKuktljFNn
SYYVDL2UmosS5acsXcl41dvydNahRANCAAToNeaD2nvEEQg2gqjf7MQXsN/4xP2/
/wBrUu5/RoYAhG5KwWX6SyGzDT6vR4ZI68fD3m7UgAX8mDB5a9u2vOxI
-----END PRIVATE KEY-----
";

/// The public half of [`EC_PRIVATE_PEM`].
pub const EC_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6DXmg9p7xBEINoKo3+zEF7Df+MT9
v/8Aa1Luf0aGAIRuSsFl+kshsw0+r0eGSOvHw95u1IAF/JgweWvbtrzsSA==
-----END PUBLIC KEY-----
";

/// A second, unrelated P-256 private key: its tokens must fail against [`EC_PUBLIC_PEM`].
pub const OTHER_EC_PRIVATE_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVK4/RSuh4rwGj10p
V9HSayYPsWpxvLy9KIS5v7mIj3ehRANCAAQEc5HsYvg8zSWF0x0NZ/SiRwRmL6dN
XCuj2wmIWq+qmkdwVEMNkeBw2b1RE/wMDwMDef4I2cRIJFTYwtjVXEx1
-----END PRIVATE KEY-----
";

/// The public half of [`OTHER_EC_PRIVATE_PEM`].
pub const OTHER_EC_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEBHOR7GL4PM0lhdMdDWf0okcEZi+n
TVwro9sJiFqvqppHcFRDDZHgcNm9URP8DA8DA3n+CNnESCRU2MLY1VxMdQ==
-----END PUBLIC KEY-----
";

/// An EC P-384 public key, which verifiers refuse (ES256 only).
pub const P384_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEcdxl5081bxblzplTbKyEscyaR6uMiOhT
8A1VAp47xyZx53RIfqNCPdbXjLitFoAHCxVBJJE+3vrc9iuDaO57lhm08EwBTxBc
qrRg6dVwwXdI2k0hiG3dkvszctuQTRvN
-----END PUBLIC KEY-----
";

/// Returns viewer claims for `sub` that expire in one hour and allow subscribing to every
/// room (`[">"]`) and publishing to none.
pub fn claims(sub: &str) -> Claims {
    let now = unix_now();
    Claims {
        sub: sub.to_owned(),
        exp: now + 3600,
        iat: Some(now),
        rooms: vec![">".to_owned()],
        publish: Vec::new(),
        role: Role::Viewer,
        node_id: None,
    }
}

/// Returns `claims` with `exp` set `seconds_ago` seconds in the past.
pub fn expired(mut claims: Claims, seconds_ago: u64) -> Claims {
    claims.exp = unix_now().saturating_sub(seconds_ago);
    claims
}

/// Signs `claims` with [`TEST_HMAC_SECRET`].
///
/// # Panics
///
/// Panics if signing fails, which would be a bug in this crate.
pub fn hs256_token(claims: &Claims) -> String {
    Issuer::hs256(TEST_HMAC_SECRET)
        .issue(claims)
        .expect("hs256 signing with a static secret works")
}

/// Signs `claims` plus the fields of `extra` (a JSON object: `iss`, `aud`, …) with
/// [`TEST_HMAC_SECRET`].
///
/// # Panics
///
/// Panics if `extra` is not an object or signing fails.
pub fn hs256_token_with(claims: &Claims, extra: serde_json::Value) -> String {
    let mut payload = serde_json::to_value(claims).expect("claims serialise to json");
    let (Some(payload_map), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra)
    else {
        panic!("claims and extra are JSON objects");
    };
    payload_map.extend(extra);
    Issuer::hs256(TEST_HMAC_SECRET)
        .issue_payload(&payload)
        .expect("hs256 signing with a static secret works")
}

/// Signs `claims` with [`RSA_PRIVATE_PEM`].
///
/// # Panics
///
/// Panics if the static key fails to load or sign, which would be a bug in this crate.
pub fn rs256_token(claims: &Claims) -> String {
    Issuer::from_pem("RS256", RSA_PRIVATE_PEM)
        .expect("static rsa test key loads")
        .issue(claims)
        .expect("rs256 signing with a static key works")
}

/// Signs `claims` with [`EC_PRIVATE_PEM`].
///
/// # Panics
///
/// Panics if the static key fails to load or sign, which would be a bug in this crate.
pub fn es256_token(claims: &Claims) -> String {
    Issuer::from_pem("ES256", EC_PRIVATE_PEM)
        .expect("static ec test key loads")
        .issue(claims)
        .expect("es256 signing with a static key works")
}

/// Builds an unsigned `{"alg":"none"}` token (`header.payload.` with an empty signature) for
/// negative tests. Verifiers must reject it.
///
/// # Panics
///
/// Panics if `claims` fails to serialise, which cannot happen for [`Claims`].
pub fn none_alg_token(claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialise to json");
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// Returns a verifier that accepts [`TEST_HMAC_SECRET`], [`RSA_PUBLIC_PEM`] and
/// [`EC_PUBLIC_PEM`] with zero leeway.
///
/// # Panics
///
/// Panics if the static keys fail to load, which would be a bug in this crate.
pub fn verifier() -> Verifier {
    Verifier::new(VerifierKeys {
        hmac_secrets: vec![TEST_HMAC_SECRET.to_vec()],
        public_keys_pem: vec![RSA_PUBLIC_PEM.to_owned(), EC_PUBLIC_PEM.to_owned()],
        leeway: Duration::ZERO,
        ..VerifierKeys::default()
    })
    .expect("static test keys load")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| since_epoch.as_secs())
}

/// Returns the JWK (`kty: EC`, `crv: P-256`, `use: sig`) of a P-256 public key PEM such as
/// [`EC_PUBLIC_PEM`], with `kid`, for key-set tests.
///
/// # Panics
///
/// Panics if `public_pem` is not a P-256 SubjectPublicKeyInfo PEM.
pub fn ec_jwk(public_pem: &str, kid: &str) -> serde_json::Value {
    use base64::engine::general_purpose::STANDARD;
    let body: String = public_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(body).expect("pem body is base64");
    // The SubjectPublicKeyInfo ends with the uncompressed point 0x04 || x || y.
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 0x04, "uncompressed P-256 point");
    serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
        "alg": "ES256",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    })
}

/// Signs `claims` with [`EC_PRIVATE_PEM`] (or `private_pem`) and `kid` in the header.
///
/// # Panics
///
/// Panics if the key fails to load or sign.
pub fn es256_token_with_kid(private_pem: &str, kid: &str, claims: &Claims) -> String {
    Issuer::from_pem("ES256", private_pem)
        .expect("ec test key loads")
        .with_key_id(kid)
        .issue(claims)
        .expect("es256 signing works")
}
