//! Certificates for TLS tests (feature `test-util`): a private CA made at test time that
//! issues server certificates for `127.0.0.1`, written as PEM files to a temporary directory
//! (`ca.pem`, `cert.pem`, `key.pem`), the way `gateway.tls_cert`/`tls_key` and the clients'
//! `tls_ca_file` settings take them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A private CA and the directory its files go to.
pub struct TestPki {
    ca_key: rcgen::KeyPair,
    ca: rcgen::Certificate,
    dir: tempfile::TempDir,
}

/// One certificate the CA issued, with its key.
pub struct IssuedCert {
    /// The certificate chain (the leaf only), DER.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key, DER.
    pub key: PrivateKeyDer<'static>,
}

impl TestPki {
    /// Makes a CA named `name`, writes `ca.pem`, and issues a first server certificate
    /// (`cert.pem`, `key.pem`).
    ///
    /// # Panics
    /// When a key cannot be generated or a file cannot be written (tests want that loudly).
    pub fn new(name: &str) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let pki = Self {
            ca_key,
            ca,
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        std::fs::write(pki.ca_path(), pki.ca_pem()).expect("ca.pem written");
        pki.issue();
        pki
    }

    /// Issues a fresh certificate for `127.0.0.1` and writes it over `cert.pem`/`key.pem`
    /// (a renewal, for reload tests).
    ///
    /// # Panics
    /// When a key cannot be generated or a file cannot be written.
    pub fn issue(&self) -> IssuedCert {
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("server certificate parameters")
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("server certificate");
        std::fs::write(self.cert_path(), cert.pem()).expect("cert.pem written");
        std::fs::write(self.key_path(), key.serialize_pem()).expect("key.pem written");
        IssuedCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(key.serialize_der()).expect("PKCS#8 key"),
        }
    }

    /// A TLS acceptor serving a freshly issued certificate (ring provider, safe defaults):
    /// for test servers that clients reach with [`TestPki::ca_path`] as their CA file.
    ///
    /// # Panics
    /// When the issued pair does not make a server configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let issued = self.issue();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(issued.chain, issued.key)
            .expect("the issued pair makes a server configuration");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate, DER (for a root store).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// `ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `cert.pem`: the latest certificate issued.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// `key.pem`: its key.
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}
