//! Token verification: header check, algorithm-to-key pinning, signature, expiry, claims.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::claims::Claims;
use crate::error::{KeyError, VerifyError};
use crate::jwks::{JwksError, JwksKeys};

/// Tokens longer than this are rejected as malformed before any decoding. Sized for a few
/// hundred room patterns; a browser sends the token in a header or query string, which most
/// proxies cap at 8–16 KiB anyway.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The shortest HMAC secret accepted: RFC 7518 §3.2 requires a key at least as long as the
/// hash output, 256 bits for HS256.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The largest leeway honoured; larger values are clamped. Clock skew beyond minutes is a
/// broken clock, not something to paper over.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The keys a [`Verifier`] accepts. `Debug` redacts the HMAC secrets.
#[derive(Clone, Default)]
pub struct VerifierKeys {
    /// HS256 secrets, each at least [`MIN_HMAC_SECRET_BYTES`] long. Several mean rotation:
    /// the first is current, the others are still accepted until removed.
    pub hmac_secrets: Vec<Vec<u8>>,
    /// RS256 (RSA, 2048–8192 bits) or ES256 (EC P-256) public keys as PEM
    /// (`-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----`); the type is detected.
    /// Several keys of one kind mean rotation, as for HMAC.
    pub public_keys_pem: Vec<String>,
    /// Clock-skew allowance on `exp` and `nbf`, in whole seconds (sub-second parts are dropped,
    /// values above [`MAX_LEEWAY`] are clamped). Defaults to zero: `exp` is enforced exactly,
    /// so an expired token is rejected the second it expires.
    pub leeway: Duration,
    /// The issuer tokens must name in `iss`. `None` does not check `iss` (whatever it holds);
    /// set, a token without `iss` or with another issuer is refused (`InvalidClaim("iss")`,
    /// `MissingClaim("iss")`).
    pub issuer: Option<String>,
    /// The audience tokens must name in `aud` (a string, or an array containing it). `None`
    /// refuses every token that carries an `aud` (a token meant for another service must
    /// not pass here); set, a token without it is refused.
    pub audience: Option<String>,
    /// Keys also come from a JSON Web Key Set installed with [`Verifier::replace_jwks`]
    /// (e.g. by [`crate::JwksSource`]); the static keys above may then be empty.
    pub jwks: bool,
}

impl fmt::Debug for VerifierKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierKeys")
            .field(
                "hmac_secrets",
                &format_args!("[{} redacted]", self.hmac_secrets.len()),
            )
            .field("public_keys_pem", &self.public_keys_pem)
            .field("leeway", &self.leeway)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks", &self.jwks)
            .finish()
    }
}

/// Verifies tokens against a fixed set of keys. Cheap to clone (the keys sit behind an `Arc`).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<KeyRing>,
}

/// One key set per accepted algorithm. An algorithm is accepted only when its set is non-empty,
/// and a token is only ever checked against the set its header names, so an RS/ES public key
/// is never used as an HMAC secret (the classic algorithm-confusion attack) and vice versa.
struct KeyRing {
    hs256: KeySet,
    rs256: KeySet,
    es256: KeySet,
    /// The current JWKS keys by `kid`, replaced whole on every fetch (readers clone the `Arc`
    /// and never hold the lock while verifying). `None` when no JWKS is configured.
    jwks: Option<RwLock<Arc<JwksKeys>>>,
}

struct KeySet {
    validation: Validation,
    keys: Vec<DecodingKey>,
}

impl KeySet {
    fn new(algorithm: Algorithm, keys: &VerifierKeys) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = keys.leeway.min(MAX_LEEWAY).as_secs();
        // jsonwebtoken reports a non-numeric `exp` as missing; presence is instead enforced
        // by `Claims::from_payload` (MissingClaim("exp")), while jsonwebtoken still checks the
        // value whenever it is present (`validate_exp`, the default) and rejects a malformed one.
        validation.required_spec_claims.clear();
        if let Some(issuer) = &keys.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        if let Some(audience) = &keys.audience {
            validation.set_audience(&[audience]);
            validation.required_spec_claims.insert("aud".to_owned());
        }
        // `nbf` is checked when present.
        validation.validate_nbf = true;
        KeySet {
            validation,
            keys: Vec::new(),
        }
    }
}

impl Verifier {
    /// Builds a verifier from `keys`.
    ///
    /// # Errors
    ///
    /// [`KeyError::NoKeys`] when no key is given, [`KeyError::HmacSecretTooShort`] for a weak
    /// secret, and [`KeyError::InvalidPem`], [`KeyError::PrivateKeyGiven`] or
    /// [`KeyError::UnsupportedKeyType`] for a public key that cannot be used.
    pub fn new(keys: VerifierKeys) -> Result<Self, KeyError> {
        if keys.hmac_secrets.is_empty() && keys.public_keys_pem.is_empty() && !keys.jwks {
            return Err(KeyError::NoKeys);
        }
        let mut ring = KeyRing {
            hs256: KeySet::new(Algorithm::HS256, &keys),
            rs256: KeySet::new(Algorithm::RS256, &keys),
            es256: KeySet::new(Algorithm::ES256, &keys),
            jwks: keys
                .jwks
                .then(|| RwLock::new(Arc::new(JwksKeys::default()))),
        };
        for (index, secret) in keys.hmac_secrets.iter().enumerate() {
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(KeyError::HmacSecretTooShort {
                    index,
                    len: secret.len(),
                });
            }
            ring.hs256.keys.push(DecodingKey::from_secret(secret));
        }
        for (index, pem) in keys.public_keys_pem.iter().enumerate() {
            match parse_public_key(index, pem)? {
                PublicKey::Rsa(key) => ring.rs256.keys.push(key),
                PublicKey::P256(key) => ring.es256.keys.push(key),
            }
        }
        Ok(Verifier {
            inner: Arc::new(ring),
        })
    }

    /// Verifies `token` and returns its claims.
    ///
    /// The header is read first: `alg` must be HS256, RS256 or ES256 *and* backed by a configured
    /// key of that kind. The signature is then checked against each key of that kind (rotation),
    /// then `exp` (required), `nbf` (if present), `iss` (when an issuer is configured), `aud`
    /// (the configured audience, or absent when none is), `sub` (required, non-empty) and the
    /// Switchboard claims.
    ///
    /// # Errors
    ///
    /// A [`VerifyError`] naming why the token was rejected. Never panics, whatever the input.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed);
        }
        let header = read_header(token)?;
        let alg = header.alg.as_str();
        let (algorithm, key_set) = match alg {
            "HS256" => (Algorithm::HS256, &self.inner.hs256),
            "RS256" => (Algorithm::RS256, &self.inner.rs256),
            "ES256" => (Algorithm::ES256, &self.inner.es256),
            _ => return Err(unsupported(alg)),
        };
        let jwks = self.current_jwks();
        // HS256 is only ever checked against the configured secrets (a key set holds none).
        let Some(jwks) = jwks.filter(|_| algorithm != Algorithm::HS256) else {
            if key_set.keys.is_empty() {
                return Err(unsupported(alg));
            }
            return try_keys(token, key_set.keys.iter(), &key_set.validation, alg);
        };
        // A key set never holds HMAC keys, so HS256 stays with the configured secrets.
        let jwks_keys = jwks
            .by_kid
            .values()
            .filter(|jwk| jwk.algorithm == algorithm)
            .map(|jwk| &jwk.key);
        match &header.kid {
            Some(kid) => match jwks.by_kid.get(kid) {
                Some(jwk) if jwk.algorithm == algorithm => {
                    try_keys(token, std::iter::once(&jwk.key), &key_set.validation, alg)
                }
                // The header's `alg` must be the one the key set declares for this `kid`.
                Some(_) => Err(unsupported(alg)),
                // Not in the set (yet): a configured key may have signed it; if none did, the
                // set is probably stale, which `UnknownKeyId` tells the caller.
                None => match try_keys(token, key_set.keys.iter(), &key_set.validation, alg) {
                    Err(VerifyError::BadSignature) => {
                        Err(VerifyError::UnknownKeyId(kid.chars().take(64).collect()))
                    }
                    other => other,
                },
            },
            None => {
                let candidates = key_set.keys.iter().chain(jwks_keys);
                try_keys(token, candidates, &key_set.validation, alg)
            }
        }
    }

    /// Replaces the JWKS keys with those of `document` (a JWKS JSON document) and returns how
    /// many usable keys it holds. On error the previous keys stay.
    ///
    /// # Errors
    ///
    /// [`JwksError::Malformed`] for a document that is not a key set, [`JwksError::NoUsableKey`]
    /// when it holds no RS256/ES256 signature key with a `kid`, and [`JwksError::Fetch`] when
    /// this verifier was built without [`VerifierKeys::jwks`].
    pub fn replace_jwks(&self, document: &[u8]) -> Result<usize, JwksError> {
        let Some(slot) = &self.inner.jwks else {
            return Err(JwksError::Fetch {
                url: String::new(),
                reason: "this verifier takes no key set".to_owned(),
            });
        };
        let keys = JwksKeys::parse(document)?;
        let count = keys.by_kid.len();
        *slot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    /// Returns the current JWKS keys, or `None` when no key set is configured.
    fn current_jwks(&self) -> Option<Arc<JwksKeys>> {
        self.inner.jwks.as_ref().map(|slot| {
            slot.read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()
        })
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256_keys", &self.inner.hs256.keys.len())
            .field("rs256_keys", &self.inner.rs256.keys.len())
            .field("es256_keys", &self.inner.es256.keys.len())
            .field("leeway_secs", &self.inner.hs256.validation.leeway)
            .field(
                "jwks_keys",
                &self.current_jwks().map(|keys| keys.by_kid.len()),
            )
            .finish()
    }
}

/// Checks `token` against each of `keys` in turn (rotation: any of them may have signed it).
fn try_keys<'k>(
    token: &str,
    keys: impl Iterator<Item = &'k DecodingKey>,
    validation: &Validation,
    alg: &str,
) -> Result<Claims, VerifyError> {
    for key in keys {
        match jsonwebtoken::decode::<Map<String, Value>>(token, key, validation) {
            Ok(data) => return Claims::from_payload(&data.claims),
            // Another key of the same kind may have signed it (rotation).
            Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => continue,
            Err(error) => return Err(map_decode_error(error.kind(), alg)),
        }
    }
    Err(VerifyError::BadSignature)
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Reads `alg` and `kid` from the header without trusting anything else in the token, so
/// `none` and unknown algorithms are rejected before any key is touched.
fn read_header(token: &str) -> Result<RawHeader, VerifyError> {
    let mut segments = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(VerifyError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&header_json).map_err(|_| VerifyError::Malformed)
}

/// Keeps attacker-chosen `alg` text short before it reaches logs.
fn unsupported(alg: &str) -> VerifyError {
    VerifyError::UnsupportedAlgorithm(alg.chars().take(32).collect())
}

fn map_decode_error(kind: &ErrorKind, alg: &str) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::MissingRequiredClaim(name) => VerifyError::MissingClaim(match name.as_str() {
            "iss" => "iss",
            "aud" => "aud",
            _ => "exp",
        }),
        ErrorKind::InvalidClaimFormat(name) if name == "nbf" => VerifyError::InvalidClaim("nbf"),
        ErrorKind::InvalidClaimFormat(_) => VerifyError::InvalidClaim("exp"),
        ErrorKind::ImmatureSignature => VerifyError::InvalidClaim("nbf"),
        ErrorKind::InvalidAudience => VerifyError::InvalidClaim("aud"),
        ErrorKind::InvalidIssuer => VerifyError::InvalidClaim("iss"),
        ErrorKind::InvalidSubject => VerifyError::InvalidClaim("sub"),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => unsupported(alg),
        _ => VerifyError::Malformed,
    }
}

enum PublicKey {
    Rsa(DecodingKey),
    P256(DecodingKey),
}

/// Length of an uncompressed SEC1 P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
const P256_POINT_BYTES: usize = 65;

fn parse_public_key(index: usize, pem: &str) -> Result<PublicKey, KeyError> {
    match pem_label(pem) {
        Some(label) if label.contains("PRIVATE") => {
            return Err(KeyError::PrivateKeyGiven { index });
        }
        Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
        Some(_) => return Err(KeyError::UnsupportedKeyType { index }),
        // No armour at all: let the parser produce the error to report.
        None => {}
    }
    let rsa_error = match DecodingKey::from_rsa_pem(pem.as_bytes()) {
        Ok(key) => return Ok(PublicKey::Rsa(key)),
        Err(error) => error,
    };
    if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
        let point = key.try_get_as_bytes().unwrap_or_default();
        return if point.len() == P256_POINT_BYTES && point.first() == Some(&0x04) {
            Ok(PublicKey::P256(key))
        } else {
            Err(KeyError::UnsupportedKeyType { index })
        };
    }
    if DecodingKey::from_ed_pem(pem.as_bytes()).is_ok() {
        return Err(KeyError::UnsupportedKeyType { index });
    }
    Err(KeyError::InvalidPem {
        index,
        source: rsa_error,
    })
}

/// Returns the label of the first `-----BEGIN <label>-----` line.
fn pem_label(pem: &str) -> Option<&str> {
    let after_begin = &pem[pem.find("-----BEGIN ")? + "-----BEGIN ".len()..];
    Some(&after_begin[..after_begin.find("-----")?])
}

#[cfg(test)]
#[path = "verifier_tests.rs"]
mod tests;
