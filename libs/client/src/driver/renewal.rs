//! In-band token renewal of one connection: when to ask the token provider again (see
//! [`crate::token`] for the whole flow).

use std::time::SystemTime;

use protocol::ErrorCode;
use tokio::time::Instant;

use crate::token::{MIN_RETRY_DELAY, refresh_delay, retry_delay};

/// In-band token renewal of the current connection (only with a token provider).
#[derive(Default)]
pub(super) struct Renewal {
    /// The `exp` of the token the connection runs on, when known.
    pub exp: Option<u64>,
    /// When to ask the provider for the next token.
    pub due: Option<Instant>,
    /// A `refresh` was sent and its answer (`refreshed` or `error`) is awaited.
    pub awaiting_answer: bool,
}

impl Renewal {
    /// Plans the next refresh of a token expiring at `exp`.
    pub fn plan(&mut self, exp: u64) {
        self.exp = Some(exp);
        self.awaiting_answer = false;
        // Never sooner than a retry would be: a provider handing out the same token again
        // must not make the client refresh in a tight loop as `exp` comes near.
        let delay = refresh_delay(exp, SystemTime::now()).max(MIN_RETRY_DELAY);
        self.due = Some(Instant::now() + delay);
    }

    /// Plans a retry after a failed refresh.
    pub fn retry(&mut self) {
        self.awaiting_answer = false;
        if let Some(exp) = self.exp {
            self.due = Some(Instant::now() + retry_delay(exp, SystemTime::now()));
        }
    }
}

/// Token codes the gateway answers a refused `refresh` with.
pub(super) const TOKEN_CODES: [ErrorCode; 4] = [
    ErrorCode::TokenMissing,
    ErrorCode::TokenInvalid,
    ErrorCode::TokenExpired,
    ErrorCode::TokenSubjectMismatch,
];
