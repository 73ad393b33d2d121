//! JSON Web Key Sets (RFC 7517): the public keys of an identity provider, picked by the
//! token header's `kid`.
//!
//! Only signature keys the verifier supports are kept: RSA (RS256) and EC P-256 (ES256).
//! Symmetric (`oct`) keys are never taken from a key set (a published HMAC secret would let
//! anyone sign), and keys without `kid`, for encryption (`use: enc`), with an `alg` other than
//! their type's, or on other curves are skipped and counted.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

/// Largest key set accepted, in bytes: identity providers publish a handful of keys (a few
/// KiB); anything far larger is a wrong URL or an attack on memory.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A key set could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The document is not a JSON object with a `keys` array, or is over [`MAX_JWKS_BYTES`].
    #[error("key set is not a JWKS document: {0}")]
    Malformed(String),
    /// The document holds no key the verifier can use.
    #[error("key set holds no usable signature key ({skipped} skipped)")]
    NoUsableKey {
        /// Keys present but skipped.
        skipped: usize,
    },
    /// Fetching the document failed (HTTP status, connection, timeout, file).
    #[error("key set could not be fetched from {url}: {reason}")]
    Fetch {
        /// Where from.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// One usable key of a set.
pub(crate) struct JwkKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

/// The usable keys of one key set, by `kid`.
#[derive(Default)]
pub(crate) struct JwksKeys {
    pub by_kid: HashMap<String, JwkKey>,
}

impl JwksKeys {
    /// Parses a JWKS document, keeping the usable keys.
    pub(crate) fn parse(document: &[u8]) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        if document.len() > MAX_JWKS_BYTES {
            return Err(JwksError::Malformed(format!(
                "{} bytes, more than {MAX_JWKS_BYTES}",
                document.len()
            )));
        }
        let parsed: Document = serde_json::from_slice(document)
            .map_err(|error| JwksError::Malformed(error.to_string()))?;
        let mut keys = JwksKeys::default();
        let mut skipped = 0;
        for value in parsed.keys {
            match serde_json::from_value::<Jwk>(value).ok().and_then(usable) {
                Some((kid, key)) => {
                    keys.by_kid.insert(kid, key);
                }
                None => skipped += 1,
            }
        }
        if keys.by_kid.is_empty() {
            return Err(JwksError::NoUsableKey { skipped });
        }
        Ok(keys)
    }
}

fn usable(jwk: Jwk) -> Option<(String, JwkKey)> {
    let kid = jwk.common.key_id.clone()?;
    if matches!(jwk.common.public_key_use, Some(ref key_use) if *key_use != PublicKeyUse::Signature)
    {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let declared_matches = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_matches {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some((kid, JwkKey { algorithm, key }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_keys_are_kept_by_kid_and_the_rest_skipped() {
        use crate::test_keys::{EC_PUBLIC_PEM, OTHER_EC_PUBLIC_PEM, ec_jwk};
        let mut without_kid = ec_jwk(EC_PUBLIC_PEM, "x");
        without_kid.as_object_mut().unwrap().remove("kid");
        let mut for_encryption = ec_jwk(EC_PUBLIC_PEM, "enc");
        for_encryption["use"] = "enc".into();
        let mut wrong_alg = ec_jwk(EC_PUBLIC_PEM, "wrong-alg");
        wrong_alg["alg"] = "RS256".into();
        let document = serde_json::json!({"keys": [
            ec_jwk(EC_PUBLIC_PEM, "ec-1"),
            ec_jwk(OTHER_EC_PUBLIC_PEM, "ec-2"),
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            without_kid,
            for_encryption,
            wrong_alg,
            {"kty": "weird", "kid": "w"}
        ]});
        let keys = JwksKeys::parse(document.to_string().as_bytes()).unwrap();
        let mut kids: Vec<&str> = keys.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        assert_eq!(kids, ["ec-1", "ec-2"]);
        assert_eq!(keys.by_kid["ec-1"].algorithm, Algorithm::ES256);
    }

    #[test]
    fn documents_without_usable_keys_are_refused() {
        assert!(matches!(
            JwksKeys::parse(br#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#),
            Err(JwksError::NoUsableKey { skipped: 1 })
        ));
        assert!(matches!(
            JwksKeys::parse(b"[]"),
            Err(JwksError::Malformed(_))
        ));
    }
}
