//! [`ClientBuilder`]: the client's settings, checked once at `build`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protocol::Codec;
use rustls::ClientConfig;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};

use crate::backoff::ReconnectPolicy;
use crate::client::Client;
use crate::error::BuildError;
use crate::tls;
use crate::token::{TokenError, TokenProvider};

/// Seed 003: a connection without any frame for 60 s is dead. The gateway sends a heartbeat
/// every 30 s by default, so this allows one lost heartbeat.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages kept while disconnected. A node agent sends a few per interval, so 256 covers
/// minutes of outage without holding stale data for long.
pub const DEFAULT_OFFLINE_QUEUE: usize = 256;
/// Events buffered for the application; enough for a burst of a busy room while the
/// application is briefly busy elsewhere.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;
/// Upper bound on the TCP connect plus WebSocket upgrade of one attempt.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`Client`]; start with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    token: Option<String>,
    token_provider: Option<TokenProvider>,
    codec: Codec,
    reconnect: ReconnectPolicy,
    heartbeat_timeout: Duration,
    offline_queue: usize,
    event_buffer: usize,
    connect_timeout: Duration,
    tls_ca_file: Option<PathBuf>,
    tls_config: Option<Arc<ClientConfig>>,
}

/// The checked settings the driver runs with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub url: String,
    pub token: Option<HeaderValue>,
    /// Called before each attempt and to refresh in-band; replaces `token` when set.
    pub token_provider: Option<TokenProvider>,
    pub codec: Codec,
    pub reconnect: ReconnectPolicy,
    pub heartbeat_timeout: Duration,
    pub offline_queue: usize,
    pub event_buffer: usize,
    pub connect_timeout: Duration,
    /// The TLS configuration of `wss://` connections; `None` for a `ws://` URL.
    pub tls: Option<Arc<ClientConfig>>,
}

impl Settings {
    /// Builds the upgrade request of one attempt with the static token (if any).
    pub(crate) fn request(&self) -> Result<Request, BuildError> {
        self.request_with(self.token.as_ref())
    }

    /// Builds the upgrade request of one attempt: subprotocol for the codec, `token` as bearer.
    pub(crate) fn request_with(&self, token: Option<&HeaderValue>) -> Result<Request, BuildError> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|error| BuildError::Url(error.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(self.codec.subprotocol()),
        );
        if let Some(token) = token {
            headers.insert(AUTHORIZATION, token.clone());
        }
        Ok(request)
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            token_provider: None,
            codec: Codec::Json,
            reconnect: ReconnectPolicy::default(),
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            offline_queue: DEFAULT_OFFLINE_QUEUE,
            event_buffer: DEFAULT_EVENT_BUFFER,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            tls_ca_file: None,
            tls_config: None,
        }
    }

    /// Sets the token, sent as `Authorization: Bearer` (kept out of URLs and access logs).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Gets tokens from `provider` instead of a fixed [`ClientBuilder::token`]: it is called
    /// before every connection attempt, and again at 80 % of each token's lifetime to
    /// renew the token on the open connection (`refresh`), so short-lived tokens cost no
    /// reconnects. See [`crate::token`] for the whole flow.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), client::BuildError> {
    /// let client = client::Client::builder("ws://127.0.0.1:8000/api/ws/connect")
    ///     .token_provider(|| async {
    ///         // e.g. ask your identity provider; any error is retried with backoff
    ///         Ok::<_, client::token::TokenError>("eyJ…".to_owned())
    ///     })
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn token_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<String, TokenError>> + Send + 'static,
    {
        self.token_provider = Some(TokenProvider::new(provider));
        self
    }

    /// Chooses the wire encoding (JSON by default); selects the matching subprotocol.
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets how the client reconnects (default: 1 s doubling to 30 s, forever).
    #[must_use]
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Sets how long the connection may go without any frame before it counts as dead
    /// (default 60 s). Keep it above twice the server's heartbeat interval.
    #[must_use]
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Sets how many messages wait while disconnected (default 256; 0 drops them all).
    #[must_use]
    pub fn offline_queue(mut self, capacity: usize) -> Self {
        self.offline_queue = capacity;
        self
    }

    /// Sets how many events wait for the application before new ones are dropped (default 1024).
    #[must_use]
    pub fn event_buffer(mut self, capacity: usize) -> Self {
        self.event_buffer = capacity;
        self
    }

    /// Sets the upper bound of one attempt's TCP connect and WebSocket upgrade (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Trusts the CA certificates of this PEM file for `wss://`, besides the platform's root
    /// store (for a gateway whose certificate a private CA signed). Read once, at `build`.
    #[must_use]
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca_file = Some(path.into());
        self
    }

    /// Uses this rustls configuration for `wss://` instead of the platform roots and
    /// [`ClientBuilder::tls_ca_file`] (client certificates, pinned roots, another provider).
    #[must_use]
    pub fn tls_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls_config = Some(config);
        self
    }

    /// Checks the settings and returns an unstarted client; [`Client::connect`] starts it.
    ///
    /// # Errors
    /// [`BuildError`] for a URL that is not `ws://`/`wss://` or not valid, a token that cannot
    /// be a header, or a zero timeout or event buffer; [`BuildError::Tls`] for a CA file that
    /// cannot be read, or a `wss://` URL with no trusted root at all.
    pub fn build(self) -> Result<Client, BuildError> {
        let lower = self.url.to_ascii_lowercase();
        if !(lower.starts_with("ws://") || lower.starts_with("wss://")) {
            return Err(BuildError::Scheme(self.url));
        }
        if self.heartbeat_timeout.is_zero() {
            return Err(BuildError::NotPositive("heartbeat_timeout"));
        }
        if self.connect_timeout.is_zero() {
            return Err(BuildError::NotPositive("connect_timeout"));
        }
        if self.event_buffer == 0 {
            return Err(BuildError::NotPositive("event_buffer"));
        }
        let token = match self.token {
            Some(token) => Some(bearer(&token)?),
            None => None,
        };
        let is_tls = lower.starts_with("wss://");
        // A CA file is checked even for ws:// so a wrong path shows at start, not at the
        // day the URL becomes wss://.
        let tls = match (self.tls_config, &self.tls_ca_file) {
            (Some(config), _) => Some(config),
            (None, Some(path)) => Some(tls::client_config(Some(path))?),
            (None, None) if is_tls => Some(tls::client_config(None)?),
            (None, None) => None,
        };
        let settings = Settings {
            url: self.url,
            token,
            token_provider: self.token_provider,
            codec: self.codec,
            reconnect: self.reconnect,
            heartbeat_timeout: self.heartbeat_timeout,
            offline_queue: self.offline_queue,
            event_buffer: self.event_buffer,
            connect_timeout: self.connect_timeout,
            tls,
        };
        settings.request()?;
        Ok(Client::new(settings))
    }
}

/// Returns `Bearer <token>` as a header value marked sensitive (kept out of debug output).
pub(crate) fn bearer(token: &str) -> Result<HeaderValue, BuildError> {
    HeaderValue::try_from(format!("Bearer {token}"))
        .map(|mut value| {
            value.set_sensitive(true);
            value
        })
        .map_err(|_| BuildError::Token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_websocket_urls_are_accepted() {
        assert!(matches!(
            ClientBuilder::new("http://x/").build(),
            Err(BuildError::Scheme(_))
        ));
        assert!(matches!(
            ClientBuilder::new("ws://").build(),
            Err(BuildError::Url(_))
        ));
        assert!(
            ClientBuilder::new("ws://127.0.0.1:1/api/ws/connect")
                .build()
                .is_ok()
        );
    }

    #[test]
    fn an_unreadable_ca_file_is_refused_at_build() {
        let built = ClientBuilder::new("wss://127.0.0.1:1/api/ws/connect")
            .tls_ca_file("/nonexistent/ca.pem")
            .build();
        assert!(matches!(
            built,
            Err(BuildError::Tls(tls::TlsError::CaFile { .. }))
        ));
    }

    #[test]
    fn the_request_carries_subprotocol_and_bearer_token() {
        let client = ClientBuilder::new("ws://127.0.0.1:1/api/ws/connect")
            .token("abc")
            .codec(Codec::MsgPack)
            .build()
            .unwrap();
        let request = client.settings().request().unwrap();
        assert_eq!(
            request.headers()[SEC_WEBSOCKET_PROTOCOL],
            "switchboard.v1.msgpack"
        );
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer abc");
        assert!(matches!(
            ClientBuilder::new("ws://h/").token("a\nb").build(),
            Err(BuildError::Token)
        ));
    }
}
