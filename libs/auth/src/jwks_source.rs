//! Fetching a JSON Web Key Set into a [`Verifier`] (feature `jwks`): at start, on an interval,
//! and when a token names a `kid` the set does not hold (rate-limited).
//!
//! `auth.jwks_url` may be `https://` (rustls with the ring provider and the platform's root
//! store), `http://` (a sidecar or in-cluster identity provider) or `file://` (a key set
//! mounted from a Secret). A failed fetch keeps the keys already loaded.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{ACCEPT, HOST};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::claims::Claims;
use crate::error::VerifyError;
use crate::jwks::{JwksError, MAX_JWKS_BYTES};
use crate::verifier::Verifier;

/// The shortest time between two fetches triggered by unknown `kid`s: tokens with made-up
/// key ids must not turn the gateway into a load generator against the identity provider.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// How long one fetch may take (connect, TLS, request, body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A key set's location and the verifier its keys go into.
pub struct JwksSource {
    url: String,
    verifier: Verifier,
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    /// When the last fetch started; also serialises fetches, so concurrent unknown `kid`s
    /// cause one fetch.
    last_fetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksSource")
            .field("url", &self.url)
            .field("refresh_interval", &self.refresh_interval)
            .finish_non_exhaustive()
    }
}

impl JwksSource {
    /// Fetches the key set at `url` into `verifier` (built with `VerifierKeys::jwks`), so the
    /// verifier has keys before the first token arrives.
    ///
    /// # Errors
    ///
    /// [`JwksError`] when the first fetch fails or the set holds no usable key.
    pub async fn start(
        url: impl Into<String>,
        verifier: Verifier,
        refresh_interval: Duration,
    ) -> Result<Self, JwksError> {
        let source = Self {
            url: url.into(),
            verifier,
            refresh_interval,
            min_refetch_interval: MIN_REFETCH_INTERVAL,
            last_fetch: Mutex::new(None),
        };
        let keys = source.fetch_now().await?;
        info!(url = %source.url, keys, "jwks loaded");
        Ok(source)
    }

    /// Sets the shortest time between fetches triggered by unknown `kid`s (tests use less than
    /// [`MIN_REFETCH_INTERVAL`]).
    #[must_use]
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// Returns the verifier the keys go into.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Verifies `token`; when its `kid` is unknown, fetches the set again (at most once per
    /// minimum refetch interval) and verifies once more.
    ///
    /// # Errors
    ///
    /// The [`VerifyError`] of the last verification.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        match self.verifier.verify(token) {
            Err(VerifyError::UnknownKeyId(kid)) => {
                if self.refetch_for_unknown_kid(&kid).await {
                    self.verifier.verify(token)
                } else {
                    Err(VerifyError::UnknownKeyId(kid))
                }
            }
            other => other,
        }
    }

    /// Fetches again every refresh interval until `shutdown` completes; a failed fetch is
    /// logged and the keys already loaded stay.
    pub async fn refresh_periodically(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.refresh_interval) => {}
            }
            match self.fetch_now().await {
                Ok(keys) => debug!(url = %self.url, keys, "jwks refreshed"),
                Err(error) => {
                    warn!(url = %self.url, error = %error, "jwks refresh failed; keeping the loaded keys")
                }
            }
        }
    }

    async fn refetch_for_unknown_kid(&self, kid: &str) -> bool {
        let recently = {
            let last = self.last_fetch.lock().await;
            last.is_some_and(|at| at.elapsed() < self.min_refetch_interval)
        };
        if recently {
            debug!(kid, "unknown kid; jwks fetched too recently to fetch again");
            return false;
        }
        match self.fetch_now().await {
            Ok(keys) => {
                info!(url = %self.url, kid, keys, "jwks fetched again for an unknown kid");
                true
            }
            Err(error) => {
                warn!(url = %self.url, error = %error, "jwks fetch for an unknown kid failed");
                false
            }
        }
    }

    /// Fetches the set and installs it; returns the number of usable keys.
    async fn fetch_now(&self) -> Result<usize, JwksError> {
        let mut last = self.last_fetch.lock().await;
        *last = Some(Instant::now());
        let document = tokio::time::timeout(FETCH_TIMEOUT, fetch_document(&self.url))
            .await
            .map_err(|_| self.fetch_error(format!("no answer within {FETCH_TIMEOUT:?}")))?
            .map_err(|reason| self.fetch_error(reason))?;
        self.verifier.replace_jwks(&document)
    }

    fn fetch_error(&self, reason: String) -> JwksError {
        JwksError::Fetch {
            url: self.url.clone(),
            reason,
        }
    }
}

/// Reads the document at `url` (`file://`, `http://` or `https://`).
async fn fetch_document(url: &str) -> Result<Bytes, String> {
    if let Some(path) = url.strip_prefix("file://") {
        let path = path.to_owned();
        // File reads block; keep them off the async workers.
        let read = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|error| format!("file read task failed: {error}"))?;
        let bytes = read.map_err(|error| error.to_string())?;
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        return Ok(Bytes::from(bytes));
    }
    let uri: hyper::Uri = url.parse().map_err(|error| format!("bad url: {error}"))?;
    let authority = uri.authority().ok_or("no host in the url")?.clone();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    match uri.scheme_str() {
        Some("http") => {
            let address = format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            );
            let stream = TcpStream::connect(&address)
                .await
                .map_err(|error| format!("connect {address}: {error}"))?;
            get(stream, authority.as_str(), &path).await
        }
        Some("https") => {
            let host = authority.host().to_owned();
            let address = format!("{host}:{}", authority.port_u16().unwrap_or(443));
            let stream = TcpStream::connect(&address)
                .await
                .map_err(|error| format!("connect {address}: {error}"))?;
            let server_name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|error| format!("bad tls server name: {error}"))?;
            let connector = tokio_rustls::TlsConnector::from(tls_config()?);
            let tls = connector
                .connect(server_name, stream)
                .await
                .map_err(|error| format!("tls: {error}"))?;
            get(tls, authority.as_str(), &path).await
        }
        _ => Err("only file://, http:// and https:// key set urls are supported".to_owned()),
    }
}

/// A client configuration trusting the platform's root certificates (ring provider).
fn tls_config() -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the store cannot parse is skipped; the others still count.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("no trusted root certificates on this system".to_owned());
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("tls: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// Sends `GET path` over `io` and returns the body of a 200 answer, at most [`MAX_JWKS_BYTES`].
async fn get<IO>(io: IO, authority: &str, path: &str) -> Result<Bytes, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let request = Request::get(path)
        .header(HOST, authority)
        .header(ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|error| format!("request: {error}"))?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("send: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("http {}", status.as_u16()));
        }
        Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|error| format!("body: {error}"))
    };
    // The connection future drives the socket; it ends when the exchange does or fails.
    tokio::select! {
        result = exchange => result,
        ended = connection => match ended {
            Ok(()) => Err("connection closed before the response".to_owned()),
            Err(error) => Err(format!("connection: {error}")),
        },
    }
}
