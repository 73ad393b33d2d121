//! TLS for `wss://` URLs: rustls with the `ring` provider (the one async-nats already brings,
//! so a service never carries two crypto stacks for its TLS), trusting the platform's root
//! store plus, optionally, the CAs of one PEM file.
//!
//! Why the platform store and not a compiled-in list (webpki-roots): it follows the host's
//! `update-ca-certificates` and an enterprise's own CAs without rebuilding, `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` point it elsewhere, and `rustls-native-certs` was already in the tree.
//! Where the platform has no store (a `scratch` image), [`client_config`] with a CA file still
//! works; with neither it fails with [`TlsError::NoRoots`] instead of refusing every server.
//!
//! The same config serves the SDK, the node agent and batch-ingest's ML-node client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::Connector;
use tracing::{debug, warn};

/// Why a TLS client configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The CA file cannot be read or holds a block that is not a valid PEM certificate.
    #[error("cannot read CA file {path}: {reason}")]
    CaFile {
        /// The configured path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The CA file holds no `CERTIFICATE` block.
    #[error("CA file {0} holds no PEM certificate")]
    CaFileEmpty(PathBuf),
    /// A certificate of the CA file cannot be a trust anchor.
    #[error("CA file {path}: certificate not usable as a trust anchor: {reason}")]
    CaCertificate {
        /// The configured path.
        path: PathBuf,
        /// Why rustls refused it.
        reason: String,
    },
    /// The platform store is empty (or unreadable) and no CA file was given, so no server
    /// could ever be trusted.
    #[error(
        "no trusted root certificates: the platform store is empty and no CA file is set (set a CA file, or SSL_CERT_FILE)"
    )]
    NoRoots,
    /// rustls refused the configuration (no protocol version the provider supports).
    #[error("tls configuration refused: {0}")]
    Config(String),
}

/// Returns a rustls client configuration trusting the platform roots plus `ca_file`'s
/// certificates (PEM; every `CERTIFICATE` block is added).
///
/// Reads files: call it once at start-up, not per connection.
///
/// # Errors
/// [`TlsError`] for an unreadable or empty CA file, a CA certificate rustls refuses, or no
/// trusted root at all.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    add_platform_roots(&mut roots);
    if let Some(path) = ca_file {
        add_ca_file(&mut roots, path)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Wraps a configuration from [`client_config`] for `tokio-tungstenite`'s connect functions.
pub fn connector(config: Arc<ClientConfig>) -> Connector {
    Connector::Rustls(config)
}

/// Adds what the platform store holds; problems are logged, not fatal, since a CA file may
/// still provide the roots.
fn add_platform_roots(roots: &mut RootCertStore) {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        warn!(error = %error, "platform root certificates partly unreadable");
    }
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    debug!(added, ignored, "platform root certificates loaded");
}

fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|error| TlsError::CaFile {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::CaFileEmpty(path.to_owned()));
    }
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| TlsError::CaCertificate {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
    }
    Ok(())
}

/// Describes a failed connect attempt if TLS refused the server's certificate: the server is
/// not the one this client trusts (unknown CA, wrong name, expired), which retrying with the
/// same trust settings cannot change.
pub(crate) fn untrusted_server(error: &tokio_tungstenite::tungstenite::Error) -> Option<String> {
    let tokio_tungstenite::tungstenite::Error::Io(io) = error else {
        return None;
    };
    let rustls_error = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    match rustls_error {
        rustls::Error::InvalidCertificate(reason) => Some(format!(
            "server certificate not trusted ({reason:?}); check the CA file or the server's certificate"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
