//! `GET /`: the dashboard page.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The dashboard: one static page; it connects back to `/api/ws/connect` with the token from
/// its URL (`/?token=…`).
pub(crate) async fn dashboard() -> Response {
    const PAGE: &str = include_str!("../../assets/dashboard.html");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}
