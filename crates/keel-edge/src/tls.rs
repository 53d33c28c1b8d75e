//! TLS termination with rustls: HTTP/2 and HTTP/1.1 offered by ALPN, and a certificate
//! that can be swapped while the edge runs (SIGHUP), without dropping a connection.
//!
//! nginx re-reads certificates by starting new worker processes on reload; here the
//! certificate lives behind a lock in a rustls resolver, so a reload replaces it for new
//! handshakes and leaves established connections alone. A reload that fails (missing
//! file, key that does not match) keeps serving the previous certificate.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("could not read {what} from {path}: {detail}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's reason.
        detail: String,
    },
    /// The certificate file holds no certificate.
    #[error("{0} contains no certificate")]
    NoCertificate(PathBuf),
    /// The key is of a type rustls cannot sign with, or does not match the certificate.
    #[error("the private key in {path} cannot be used: {detail}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// rustls's reason.
        detail: String,
    },
}

/// The certificate and key files, and the certificate currently served from them.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the PEM certificate chain and private key.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        let key = read(cert_path, key_path)?;
        Ok(Arc::new(CertStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Re-reads both files; new handshakes use the new certificate, and on error the old
    /// one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    pub(crate) fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions();
        let mut config = match builder {
            Ok(builder) => builder
                .with_no_client_auth()
                .with_cert_resolver(self.clone() as Arc<dyn ResolvesServerCert>),
            // The ring provider always supports the default versions.
            Err(error) => unreachable!("ring supports TLS 1.2 and 1.3: {error}"),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

fn read(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            path: cert_path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key_path.to_owned(),
        detail: e.to_string(),
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Key {
            path: key_path.to_owned(),
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: key_path.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(certified)
}
