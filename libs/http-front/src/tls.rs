//! TLS termination for a listener without an ingress in front: rustls with the `ring`
//! provider (the one async-nats already brings), a certificate chain and key from PEM files,
//! reloaded on SIGHUP.
//!
//! - **Reload.** [`ServerTls::reload`] reads both files again and swaps the configuration
//!   new handshakes use; established connections keep the session they negotiated. A
//!   certificate or key that does not load leaves the old pair in place (logged, counted).
//! - **Slow handshakes.** The front door bounds each handshake by the listener's
//!   `header_read_timeout`, and the connection holds its permit throughout, so a client that
//!   stalls in the TLS handshake costs what one that stalls in its request head costs.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{error, info};

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read, or a PEM block in it is malformed.
    #[error("cannot read {what} file {path}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The configured path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("certificate file {0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    /// rustls refused the pair (the key does not match the certificate, an unsupported key
    /// type).
    #[error("certificate {cert} and key {key} are not usable together")]
    Refused {
        /// The certificate path.
        cert: PathBuf,
        /// The key path.
        key: PathBuf,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The runtime shut down while the files were read.
    #[error("tls reload interrupted by shutdown")]
    Interrupted,
}

/// Counters of a listener's TLS, registered by the service on its own registry.
#[derive(Clone)]
pub struct TlsMetrics {
    /// Reloads of the certificate and key, by `result` (`ok`, `error`).
    pub reloads: prometheus::IntCounterVec,
    /// TLS handshakes that did not complete, by `reason` (`timeout`, `error`).
    pub handshake_failures: prometheus::IntCounterVec,
}

impl TlsMetrics {
    /// Creates `switchboard_<service>_tls_reloads_total` and
    /// `switchboard_<service>_tls_handshake_failures_total` on `registry`.
    ///
    /// # Errors
    /// [`prometheus::Error`] when the names are taken on `registry` or `service` makes them
    /// invalid.
    pub fn register(
        registry: &prometheus::Registry,
        service: &str,
    ) -> Result<Self, prometheus::Error> {
        let reloads = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                format!("switchboard_{service}_tls_reloads_total"),
                "Reloads of the TLS certificate and key (SIGHUP), by result",
            ),
            &["result"],
        )?;
        let handshake_failures = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                format!("switchboard_{service}_tls_handshake_failures_total"),
                "TLS handshakes that did not complete, by reason (timeout, error)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(handshake_failures.clone()))?;
        Ok(Self {
            reloads,
            handshake_failures,
        })
    }
}

/// A listener's TLS configuration: the files it came from and the configuration in use.
/// Clones share the configuration, so a reload through one is seen by all.
#[derive(Clone)]
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    metrics: Option<TlsMetrics>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8,
    /// PKCS#1 or SEC1). Reads files: call it at start-up.
    ///
    /// # Errors
    /// [`TlsError`] for an unreadable file, no certificate, or a pair rustls refuses.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let config = load_config(cert_path, key_path)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: Arc::new(RwLock::new(Arc::new(config))),
            metrics: None,
        })
    }

    /// Counts reloads and failed handshakes on `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: TlsMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Reads the files again and, if they load, makes new handshakes use them. Existing
    /// connections are not touched. On failure the configuration in use stays.
    ///
    /// The files are read on the blocking pool.
    ///
    /// # Errors
    /// [`TlsError`] when the new pair does not load (already logged and counted).
    pub async fn reload(&self) -> Result<(), TlsError> {
        let (cert_path, key_path) = (self.cert_path.clone(), self.key_path.clone());
        let loaded =
            match tokio::task::spawn_blocking(move || load_config(&cert_path, &key_path)).await {
                Ok(loaded) => loaded,
                Err(join_error) if join_error.is_panic() => {
                    std::panic::resume_unwind(join_error.into_panic())
                }
                Err(_) => Err(TlsError::Interrupted),
            };
        let result = match loaded {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
                info!(cert = %self.cert_path.display(), "tls certificate reloaded");
                Ok(())
            }
            Err(reload_error) => {
                error!(error = %reload_error, source = ?std::error::Error::source(&reload_error), "tls reload failed; keeping the previous certificate");
                Err(reload_error)
            }
        };
        if let Some(metrics) = &self.metrics {
            let label = if result.is_ok() { "ok" } else { "error" };
            metrics.reloads.with_label_values(&[label]).inc();
        }
        result
    }

    /// The acceptor for the next handshake (the configuration in use right now).
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        TlsAcceptor::from(config)
    }

    pub(crate) fn count_handshake_failure(&self, reason: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics
                .handshake_failures
                .with_label_values(&[reason])
                .inc();
        }
    }
}

fn load_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            what: "certificate",
            path: cert_path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| TlsError::Read {
        what: "key",
        path: key_path.to_owned(),
        source,
    })?;
    let refused = |source| TlsError::Refused {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(refused)?;
    // The front door speaks HTTP/1.1 only (WebSocket upgrades need it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// SIGHUP as a stream, or `None` (logged) where it cannot be had: reloading is then off, and
/// serving goes on.
pub(crate) fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            tracing::warn!(error = %error, "SIGHUP handler not installed; tls certificate reload is off");
            None
        }
    }
}

/// The next SIGHUP; never resolves without a signal stream.
pub(crate) async fn next_hangup(hangups: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangups {
        Some(hangups) => hangups.recv().await,
        None => std::future::pending().await,
    }
}

/// An accepted connection, in the clear or after the TLS handshake. One type for both, so
/// the HTTP connection (and its upgrade) is the same code either way.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
