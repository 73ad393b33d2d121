//! Reading requests safely: the bearer credentials of a request, and a body read under a size
//! limit and a deadline.

use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

/// The credentials of `Authorization: Bearer <credentials>`; the scheme is matched without
/// regard to case (RFC 9110 §11.1), surrounding blanks are dropped.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit (by its `Content-Length`, or once that much had arrived).
    #[error("request body too large")]
    TooLarge,
    /// Not complete within the body timeout.
    #[error("request body not received in time")]
    Timeout,
    /// The connection failed while the body was read.
    #[error("request body not read")]
    Read(#[source] axum::Error),
}

/// Reads a request body of at most `limit` bytes within `timeout`. A `Content-Length` above
/// the limit is refused before a byte of the body is read.
///
/// # Errors
/// [`BodyError`].
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| BodyError::Timeout)?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => match error.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => Err(BodyError::TooLarge),
            Err(error) => Err(BodyError::Read(axum::Error::new(error))),
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", "bEaReR abc"] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer(&headers), Some("abc"), "{value}");
        }
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearerabc"));
        assert_eq!(bearer(&headers), None);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("10485760"));
        let result = read_body(&headers, Body::empty(), 1024, Duration::from_secs(1)).await;
        assert!(matches!(result, Err(BodyError::TooLarge)));
        let result = read_body(
            &HeaderMap::new(),
            Body::from(vec![0u8; 2048]),
            1024,
            Duration::from_secs(1),
        )
        .await;
        assert!(matches!(result, Err(BodyError::TooLarge)));
        let result = read_body(
            &HeaderMap::new(),
            Body::from("ok"),
            1024,
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(result.ok().as_deref(), Some(&b"ok"[..]));
    }
}
