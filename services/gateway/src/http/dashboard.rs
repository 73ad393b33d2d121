//! `GET /` and `GET /assets/{*path}`: the web dashboard.
//!
//! The dashboard is a built npm project (`clients/dashboard`, `npm run build` writes `dist/`):
//! `index.html` plus its bundles under `assets/`. The gateway serves the directory named by
//! `gateway.dashboard_dir`, read once at start into memory, so a request never touches the
//! file system (no path to traverse, no half-written file during a deploy) and every answer
//! carries an `ETag`. Without the directory, `/` answers a short page that says how to build
//! it: the gateway binary stays buildable with the Rust toolchain alone.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

/// Most files a dashboard directory may hold, and most bytes in all: a built dashboard has a
/// handful of files and well under a megabyte; a directory far past that is a wrong path.
const MAX_FILES: usize = 256;
const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;
/// How deep `assets/` may nest.
const MAX_DEPTH: usize = 4;

/// The page served when no dashboard directory is configured.
const NOT_BUILT_PAGE: &str = include_str!("../../assets/dashboard-not-built.html");

/// Why a dashboard directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The directory or a file in it could not be read.
    #[error("cannot read {path}")]
    Read {
        /// What was read.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The directory has no `index.html` (not built, or the wrong directory).
    #[error(
        "{0} has no index.html: build the dashboard (clients/dashboard: npm ci && npm run build) and point gateway.dashboard_dir at its dist/ directory"
    )]
    NoIndex(PathBuf),
    /// The directory is larger than a dashboard can be.
    #[error(
        "{path} holds more than {MAX_FILES} files or {MAX_TOTAL_BYTES} bytes; is it the dashboard's dist/ directory?"
    )]
    TooLarge {
        /// The directory.
        path: PathBuf,
    },
}

/// One file of the dashboard, ready to send.
struct Asset {
    body: Bytes,
    content_type: &'static str,
    etag: HeaderValue,
}

/// A built dashboard, held in memory: `index.html` and everything under `assets/`.
pub(crate) struct DashboardAssets {
    index: Asset,
    /// Keyed by the path below `assets/`, with `/` separators.
    assets: HashMap<String, Asset>,
}

impl DashboardAssets {
    /// Reads `dir/index.html` and every file below `dir/assets/`.
    pub(crate) fn load(dir: &Path) -> Result<Self, DashboardError> {
        let index_path = dir.join("index.html");
        if !index_path.is_file() {
            return Err(DashboardError::NoIndex(dir.to_owned()));
        }
        let mut budget = Budget {
            files: 0,
            bytes: 0,
            root: dir.to_owned(),
        };
        let index = read_asset(&index_path, &mut budget)?;
        let mut assets = HashMap::new();
        let assets_dir = dir.join("assets");
        if assets_dir.is_dir() {
            collect(&assets_dir, "", 0, &mut assets, &mut budget)?;
        }
        Ok(Self { index, assets })
    }

    /// How many files below `assets/` were loaded.
    pub(crate) fn asset_count(&self) -> usize {
        self.assets.len()
    }
}

struct Budget {
    files: usize,
    bytes: u64,
    root: PathBuf,
}

fn collect(
    dir: &Path,
    prefix: &str,
    depth: usize,
    into: &mut HashMap<String, Asset>,
    budget: &mut Budget,
) -> Result<(), DashboardError> {
    let read_error = |source| DashboardError::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name();
        // A name that is not UTF-8 cannot be requested by a URL path; skip it.
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        let key = format!("{prefix}{name}");
        let file_type = entry.file_type().map_err(read_error)?;
        if file_type.is_dir() {
            if depth < MAX_DEPTH {
                collect(&path, &format!("{key}/"), depth + 1, into, budget)?;
            }
        } else if path.is_file() {
            into.insert(key, read_asset(&path, budget)?);
        }
    }
    Ok(())
}

fn read_asset(path: &Path, budget: &mut Budget) -> Result<Asset, DashboardError> {
    let body = std::fs::read(path).map_err(|source| DashboardError::Read {
        path: path.to_owned(),
        source,
    })?;
    budget.files += 1;
    budget.bytes += body.len() as u64;
    if budget.files > MAX_FILES || budget.bytes > MAX_TOTAL_BYTES {
        return Err(DashboardError::TooLarge {
            path: budget.root.clone(),
        });
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    let etag = HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    Ok(Asset {
        body: Bytes::from(body),
        content_type: content_type(path),
        etag,
    })
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|ext| ext.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "map" | "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// What the page may load: only this origin's scripts and styles (React and uPlot set styles
/// through the DOM, which CSP allows; `'unsafe-inline'` covers uPlot's injected style sheet),
/// sockets back to this gateway, no framing. `no-referrer` keeps a `?token=` URL out of
/// every request the page makes.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 5] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ]
}

/// Sends `asset`, or 304 when the browser's copy is current.
fn send(asset: &Asset, request: &HeaderMap) -> Response {
    let current = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag == asset.etag);
    let mut response = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (page_headers(asset.content_type), asset.body.clone()).into_response()
    };
    response
        .headers_mut()
        .insert(header::ETAG, asset.etag.clone());
    if current {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

/// `GET /`: the dashboard's `index.html`; it connects back to `/api/ws/connect` with the
/// token from its URL (`/?token=…`) or from its sign-in form.
pub(crate) async fn dashboard(
    State(shared): State<std::sync::Arc<Shared>>,
    request: HeaderMap,
) -> Response {
    match &shared.dashboard {
        Some(built) => send(&built.index, &request),
        None => (page_headers("text/html; charset=utf-8"), NOT_BUILT_PAGE).into_response(),
    }
}

/// `GET /assets/{*path}`: the dashboard's bundles, styles and images.
pub(crate) async fn asset(
    State(shared): State<std::sync::Arc<Shared>>,
    UrlPath(path): UrlPath<String>,
    request: HeaderMap,
) -> Response {
    match shared
        .dashboard
        .as_ref()
        .and_then(|built| built.assets.get(&path))
    {
        Some(asset) => send(asset, &request),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sb-dashboard-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn loads_the_index_and_nested_assets_with_their_types() {
        let dir = temp_dir("ok");
        std::fs::write(dir.join("index.html"), "<!doctype html>").expect("write");
        std::fs::create_dir_all(dir.join("assets/fonts")).expect("mkdir");
        std::fs::write(dir.join("assets/app.js"), "console.log(1)").expect("write");
        std::fs::write(dir.join("assets/fonts/a.woff2"), [0u8; 4]).expect("write");
        // Files beside index.html other than assets/ are not served.
        std::fs::write(dir.join("secret.txt"), "no").expect("write");
        let built = DashboardAssets::load(&dir).expect("loads");
        assert_eq!(built.asset_count(), 2);
        assert_eq!(
            built.assets["app.js"].content_type,
            "text/javascript; charset=utf-8"
        );
        assert_eq!(built.assets["fonts/a.woff2"].content_type, "font/woff2");
        assert_eq!(built.index.content_type, "text/html; charset=utf-8");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_directory_without_index_html_is_refused_with_what_to_do() {
        let dir = temp_dir("empty");
        let error = DashboardAssets::load(&dir).err().expect("refused");
        assert!(matches!(error, DashboardError::NoIndex(_)));
        assert!(error.to_string().contains("npm run build"), "{error}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn an_etag_match_answers_304_and_a_changed_file_a_new_tag() {
        let dir = temp_dir("etag");
        std::fs::write(dir.join("index.html"), "one").expect("write");
        let first = DashboardAssets::load(&dir).expect("loads");
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, first.index.etag.clone());
        assert_eq!(
            send(&first.index, &request).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            send(&first.index, &HeaderMap::new()).status(),
            StatusCode::OK
        );
        std::fs::write(dir.join("index.html"), "two").expect("write");
        let second = DashboardAssets::load(&dir).expect("loads");
        assert_ne!(first.index.etag, second.index.etag);
        assert_eq!(send(&second.index, &request).status(), StatusCode::OK);
        std::fs::remove_dir_all(dir).ok();
    }
}
