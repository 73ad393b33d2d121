//! Timestamps as they appear on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// Returns the current time as RFC 3339 with milliseconds (`2025-10-22T10:30:00.123Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Returns the current time in milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
