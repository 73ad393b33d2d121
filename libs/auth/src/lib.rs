//! Token verification and issuing for Switchboard: JWTs signed with HS256, RS256 or ES256.
//!
//! [`Verifier`] checks a token against configured keys and returns its [`Claims`]; the claims
//! say which rooms the holder may subscribe to ([`Claims::can_subscribe`]) and publish to
//! ([`Claims::can_publish`]). Verification pins each algorithm to its own keys, so `alg: none`
//! and algorithm-confusion tokens are rejected, and `exp` is required and enforced. Several
//! keys of one kind mean rotation: any of them verifies. [`Issuer`] signs tokens for tools and
//! tests. With the `test-util` feature, [`test_keys`] holds static key pairs and token helpers.
//!
//! A rejected token maps to a client-facing code with [`VerifyError::code`] and to a metric
//! label with [`VerifyError::reason_label`].

#![warn(missing_docs)]

mod claims;
mod error;
mod issuer;
mod jwks;
#[cfg(feature = "jwks")]
mod jwks_source;
#[cfg(any(test, feature = "test-util"))]
pub mod test_keys;
mod verifier;

pub use claims::{Claims, Role};
pub use error::{IssueError, KeyError, VerifyError};
pub use issuer::Issuer;
pub use jwks::{JwksError, MAX_JWKS_BYTES};
#[cfg(feature = "jwks")]
pub use jwks_source::{JwksSource, MIN_REFETCH_INTERVAL};
pub use verifier::{MAX_LEEWAY, MAX_TOKEN_BYTES, MIN_HMAC_SECRET_BYTES, Verifier, VerifierKeys};
