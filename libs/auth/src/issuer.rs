//! Token issuing, for tools, tests and deployments where Switchboard mints its own tokens.

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::claims::Claims;
use crate::error::{IssueError, KeyError};

/// Signs [`Claims`] into tokens with one key. `Debug` redacts the key.
#[derive(Clone)]
pub struct Issuer {
    algorithm: Algorithm,
    key: EncodingKey,
    key_id: Option<String>,
}

impl Issuer {
    /// Creates an HS256 issuer. A [`crate::Verifier`] only accepts secrets of at least
    /// [`crate::MIN_HMAC_SECRET_BYTES`] bytes, so use one at least that long.
    pub fn hs256(secret: &[u8]) -> Self {
        Issuer {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret),
            key_id: None,
        }
    }

    /// Creates an RS256 or ES256 issuer from a PKCS#8 (`-----BEGIN PRIVATE KEY-----`) PEM;
    /// RS256 also takes PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`). The key is checked by
    /// signing a probe token, so a key that loads here also signs later.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnsupportedAlgorithm`] for any `alg` other than `"RS256"`/`"ES256"`, and
    /// [`KeyError::InvalidPem`] when the PEM is not a private key usable with `alg`.
    pub fn from_pem(alg: &str, private_pem: &str) -> Result<Self, KeyError> {
        let invalid = |source| KeyError::InvalidPem { index: 0, source };
        let (algorithm, key) = match alg {
            "RS256" => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(private_pem.as_bytes()).map_err(invalid)?,
            ),
            "ES256" => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(invalid)?,
            ),
            other => {
                return Err(KeyError::UnsupportedAlgorithm(
                    other.chars().take(32).collect(),
                ));
            }
        };
        let issuer = Issuer {
            algorithm,
            key,
            key_id: None,
        };
        jsonwebtoken::encode(
            &Header::new(algorithm),
            &serde_json::Map::new(),
            &issuer.key,
        )
        .map_err(invalid)?;
        Ok(issuer)
    }

    /// Signs `claims` into a compact JWT with header `{"alg": <alg>, "typ": "JWT"}`.
    ///
    /// # Errors
    ///
    /// [`IssueError::Signing`] if the key fails to sign (not expected for a key that loaded).
    pub fn issue(&self, claims: &Claims) -> Result<String, IssueError> {
        self.issue_payload(claims)
    }

    /// Signs any serialisable payload, for claims beyond [`Claims`] (`iss`, `aud`, …).
    ///
    /// # Errors
    ///
    /// [`IssueError::Signing`] if the payload does not serialise or the key fails to sign.
    pub fn issue_payload<T: serde::Serialize>(&self, payload: &T) -> Result<String, IssueError> {
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.key_id);
        jsonwebtoken::encode(&header, payload, &self.key).map_err(IssueError::Signing)
    }

    /// Returns this issuer writing `kid: key_id` into every token's header, so verifiers
    /// with a JWKS pick the key by id.
    #[must_use]
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("key", &"[redacted]")
            .finish()
    }
}
