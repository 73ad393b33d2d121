//! Token providers: where a client gets a fresh token before each connection attempt and
//! before its current token expires.
//!
//! The flow, with [`crate::ClientBuilder::token_provider`]:
//!
//! 1. Before every connection attempt the provider is called; the token goes out as
//!    `Authorization: Bearer`. A provider error counts as a failed attempt (reported as
//!    [`crate::LostReason::ConnectFailed`]) and is retried with the usual backoff.
//! 2. Once connected, the client reads the token's `exp` (without verifying it: only the
//!    gateway can) and, at [`REFRESH_AT_FRACTION`] of the token's remaining lifetime, calls
//!    the provider again and sends `refresh {token}` on the open connection. The gateway
//!    answers `refreshed {exp}` ([`crate::ClientEvent::TokenRefreshed`]) and the next refresh
//!    is planned from that `exp`; rooms the new token no longer allows arrive as
//!    [`crate::ClientEvent::Unsubscribed`] with a `reason` and are not joined again.
//! 3. A provider error or a refused token (an [`crate::ClientEvent::Error`] with a token code)
//!    is retried after [`RETRY_FRACTION`] of the time left (at least [`MIN_RETRY_DELAY`]);
//!    if no refresh succeeds before `exp` the gateway closes with 4402 and the client
//!    reconnects, calling the provider again, instead of stopping as it does with a static
//!    token.
//!
//! A token without a readable `exp` is used as it is and never refreshed in-band.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// What a token provider may fail with; shown in [`crate::LostReason::ConnectFailed`] and
/// the client's log.
pub type TokenError = Box<dyn std::error::Error + Send + Sync>;

/// The future a token provider returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, TokenError>> + Send>>;

/// When, as a fraction of the time from receiving a token to its `exp`, the client refreshes.
pub const REFRESH_AT_FRACTION: f64 = 0.8;

/// After a failed refresh, the next try comes after this fraction of the time left to `exp`.
pub const RETRY_FRACTION: f64 = 0.25;

/// The shortest wait before retrying a failed refresh, so a failing provider is not hammered.
pub const MIN_RETRY_DELAY: Duration = Duration::from_millis(250);

/// A shared token provider: called before each connection attempt and to refresh in-band.
#[derive(Clone)]
pub(crate) struct TokenProvider(Arc<dyn Fn() -> TokenFuture + Send + Sync>);

impl TokenProvider {
    pub(crate) fn new<F, Fut>(provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, TokenError>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(provider())))
    }

    /// Starts one call of the provider.
    pub(crate) fn fetch(&self) -> TokenFuture {
        (self.0)()
    }
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenProvider")
    }
}

/// Reads `exp` (seconds since the Unix epoch) from a JWT's payload without verifying it.
pub(crate) fn token_exp(token: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Expiry {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Expiry>(&json)
        .ok()
        .map(|expiry| expiry.exp)
}

/// Returns how long `exp` is away from `now` (zero when past).
fn time_left(exp: u64, now: SystemTime) -> Duration {
    (UNIX_EPOCH + Duration::from_secs(exp))
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
}

/// How long to wait, from `now`, before refreshing a token that expires at `exp`.
pub(crate) fn refresh_delay(exp: u64, now: SystemTime) -> Duration {
    time_left(exp, now).mul_f64(REFRESH_AT_FRACTION)
}

/// How long to wait, from `now`, before retrying a refresh that failed.
pub(crate) fn retry_delay(exp: u64, now: SystemTime) -> Duration {
    time_left(exp, now)
        .mul_f64(RETRY_FRACTION)
        .max(MIN_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with_payload(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn exp_is_read_from_the_payload_and_anything_else_is_none() {
        assert_eq!(
            token_exp(&jwt_with_payload(r#"{"sub":"u","exp":1761131000}"#)),
            Some(1_761_131_000)
        );
        assert_eq!(token_exp(&jwt_with_payload(r#"{"sub":"u"}"#)), None);
        assert_eq!(token_exp(&jwt_with_payload(r#"{"exp":"soon"}"#)), None);
        assert_eq!(token_exp("opaque-token"), None);
        assert_eq!(token_exp("a.!!!.c"), None);
    }

    #[test]
    fn refresh_comes_at_eighty_percent_and_retries_at_a_quarter_of_what_is_left() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(refresh_delay(1_100, now), Duration::from_secs(80));
        assert_eq!(refresh_delay(900, now), Duration::ZERO);
        assert_eq!(retry_delay(1_100, now), Duration::from_secs(25));
        assert_eq!(retry_delay(1_000, now), MIN_RETRY_DELAY);
    }
}
