//! Error types: one per operation family (key loading, verifying, issuing).

use protocol::ErrorCode;

/// Why a token was rejected. The text is for server logs only; clients get [`VerifyError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not three base64url segments with a JSON header and payload, or is
    /// longer than [`crate::MAX_TOKEN_BYTES`].
    #[error("token is malformed")]
    Malformed,
    /// The header names `none`, an unknown algorithm, or one no configured key backs.
    /// Holds the header's `alg`, cut to 32 characters.
    #[error("token algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// No configured key of the token's algorithm verifies the signature.
    #[error("token signature does not verify")]
    BadSignature,
    /// The token's `exp` (plus leeway) has passed.
    #[error("token has expired")]
    Expired,
    /// A required claim is absent.
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// The header's `kid` names no key of the JWKS, and no configured key verifies the token;
    /// the key set may be stale (a caller may fetch it again and retry). Holds the `kid`, cut
    /// to 64 characters.
    #[error("token key id {0:?} is not known")]
    UnknownKeyId(String),
    /// A claim has the wrong type or an invalid value (also `aud` present, `nbf` in the future).
    #[error("token claim {0} is invalid")]
    InvalidClaim(&'static str),
}

impl VerifyError {
    /// Returns the client-facing code: [`ErrorCode::TokenExpired`] for an expired token,
    /// [`ErrorCode::TokenInvalid`] for everything else.
    pub fn code(&self) -> ErrorCode {
        match self {
            VerifyError::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::TokenInvalid,
        }
    }

    /// Returns a low-cardinality label for rejection metrics: `malformed`, `algorithm`,
    /// `signature`, `key`, `expired` or `claims`.
    pub fn reason_label(&self) -> &'static str {
        match self {
            VerifyError::Malformed => "malformed",
            VerifyError::UnsupportedAlgorithm(_) => "algorithm",
            VerifyError::BadSignature => "signature",
            VerifyError::UnknownKeyId(_) => "key",
            VerifyError::Expired => "expired",
            VerifyError::MissingClaim(_) | VerifyError::InvalidClaim(_) => "claims",
        }
    }
}

/// A key given to [`crate::Verifier::new`] or [`crate::Issuer::from_pem`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither an HMAC secret nor a public key was configured.
    #[error("no verification key configured")]
    NoKeys,
    /// An HMAC secret is shorter than RFC 7518 §3.2 requires for HS256.
    #[error("hmac secret #{index} has {len} bytes; at least {min} are required", min = crate::MIN_HMAC_SECRET_BYTES)]
    HmacSecretTooShort {
        /// Position in `hmac_secrets`.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// A PEM text could not be parsed as a key of a supported kind.
    #[error("key #{index} is not a usable PEM key")]
    InvalidPem {
        /// Position in `public_keys_pem` (0 for [`crate::Issuer::from_pem`]).
        index: usize,
        /// The parser's complaint.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A private key was given where a public key belongs; it must not be deployed to verifiers.
    #[error("key #{index} is a private key; verifiers take public keys only")]
    PrivateKeyGiven {
        /// Position in `public_keys_pem`.
        index: usize,
    },
    /// The key is of a kind this crate does not accept (e.g. an EC key on a curve other than P-256).
    #[error("key #{index} is neither an RSA nor a P-256 public key")]
    UnsupportedKeyType {
        /// Position in `public_keys_pem`.
        index: usize,
    },
    /// [`crate::Issuer::from_pem`] was asked for an algorithm other than RS256 or ES256.
    #[error("signing algorithm {0:?} is not supported; use RS256 or ES256")]
    UnsupportedAlgorithm(String),
}

/// A token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Signing or serialising failed.
    #[error("token signing failed")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expiry_maps_to_token_expired() {
        assert_eq!(VerifyError::Expired.code(), ErrorCode::TokenExpired);
        for error in [
            VerifyError::Malformed,
            VerifyError::UnsupportedAlgorithm("none".into()),
            VerifyError::BadSignature,
            VerifyError::MissingClaim("sub"),
            VerifyError::InvalidClaim("exp"),
        ] {
            assert_eq!(error.code(), ErrorCode::TokenInvalid, "{error}");
        }
    }

    #[test]
    fn reason_labels_are_the_documented_set() {
        assert_eq!(VerifyError::Malformed.reason_label(), "malformed");
        assert_eq!(
            VerifyError::UnsupportedAlgorithm("x".into()).reason_label(),
            "algorithm"
        );
        assert_eq!(VerifyError::BadSignature.reason_label(), "signature");
        assert_eq!(VerifyError::Expired.reason_label(), "expired");
        assert_eq!(VerifyError::InvalidClaim("sub").reason_label(), "claims");
    }
}
