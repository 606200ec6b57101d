//! A daemon's TLS: the certificate chain and private key from the PEM files its config names
//! (`tls_cert`, `tls_key`), turned into a rustls server config. The key file must be readable by
//! its owner only, like a token file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::pin::Fingerprint;

/// rustls' server config, named here so the daemons need not depend on rustls themselves.
pub use rustls::ServerConfig as RustlsServerConfig;

/// Why the TLS files cannot be used; each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    #[error("tls_cert {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("tls_key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("tls_cert {cert} and tls_key {key} do not go together: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// The PEM files a daemon's config names with `tls_cert` and `tls_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both keys or neither: one alone is a mistake, and the message says how to fix it.
    pub fn from_config(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<Self>, String> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(
                "`tls_cert` is set but `tls_key` is not: add tls_key = \"/etc/fleetdeck/tls.key\" \
                 (the certificate's private key, PEM, mode 0600), or remove tls_cert to serve plain HTTP"
                    .into(),
            ),
            (None, Some(_)) => Err(
                "`tls_key` is set but `tls_cert` is not: add tls_cert = \"/etc/fleetdeck/tls.crt\" \
                 (the certificate, PEM), or remove tls_key to serve plain HTTP"
                    .into(),
            ),
        }
    }

    /// Both paths, relative ones taken from `dir` (the config file's directory).
    pub fn relative_to(self, dir: &Path) -> Self {
        let resolve = |p: PathBuf| if p.is_relative() { dir.join(p) } else { p };
        Self {
            cert: resolve(self.cert),
            key: resolve(self.key),
        }
    }

    /// Reads and checks both files (see [`load`]).
    pub fn load(&self) -> Result<ServerTls, TlsFilesError> {
        load(&self.cert, &self.key)
    }
}

/// A server config and the fingerprint of its certificate (what clients pin).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: Fingerprint,
}

/// Reads `cert` (PEM: the certificate, then any intermediates) and `key` (PEM: PKCS#8, PKCS#1
/// or SEC1; mode 0600 or stricter).
pub fn load(cert: &Path, key: &Path) -> Result<ServerTls, TlsFilesError> {
    let cert_err = |message: String| TlsFilesError::Cert {
        path: cert.to_owned(),
        message,
    };
    let key_err = |message: String| TlsFilesError::Key {
        path: key.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(format!("cannot read it ({e}); give a PEM certificate file")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("is not valid PEM ({e})")))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_err(
            "holds no certificate (no \"BEGIN CERTIFICATE\" block)".into(),
        ));
    };
    let fingerprint = Fingerprint::of_der(leaf);
    refuse_if_others_can_read(key).map_err(key_err)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        key_err(format!(
            "cannot read a private key from it ({e}); give a PEM key (PKCS#8, RSA or EC)"
        ))
    })?;
    let config = rustls::ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        // ring's default provider supports the safe default versions (TLS 1.2 and 1.3).
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| TlsFilesError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
            message: format!("{e}; give the key of the first certificate in tls_cert"),
        })?;
    Ok(ServerTls {
        config: Arc::new(config),
        fingerprint,
    })
}

#[cfg(unix)]
fn refuse_if_others_can_read(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read it ({e}); give an existing PEM key file"))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "is readable by group or others (mode {mode:04o}); a private key is a secret: run \
             chmod 600 {}",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_others_can_read(_path: &Path) -> Result<(), String> {
    Ok(())
}
