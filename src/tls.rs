//! PEM files to rustls configurations: the listener's certificate for HTTPS
//! (`http.tls_cert`, `http.tls_key`) and the broker connection's trust
//! anchors and client certificate for `mqtts://` (`mqtt.ca_file`,
//! `mqtt.client_cert`, `mqtt.client_key`).

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

/// Why a TLS configuration could not be built; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate ({detail})")]
    NoCertificate { path: String, detail: String },
    #[error("{path} holds no PEM private key ({detail})")]
    NoKey { path: String, detail: String },
    #[error("{path}: certificate not usable as a trust anchor: {detail}")]
    BadAnchor { path: String, detail: String },
    #[error("certificate and key do not fit together: {0}")]
    Mismatch(rustls::Error),
    #[error("mqtts:// needs system root certificates, and none were found (set mqtt.ca_file)")]
    NoRoots,
}

/// Every certificate in a PEM file, in order (a chain: leaf first).
pub fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NoCertificate {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            detail: "no BEGIN CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn private_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::NoKey {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// The listener's HTTPS configuration (HTTP/1.1 only).
pub fn server_config(cert: &str, key: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(TlsError::Mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The broker connection's TLS: the certificates in `ca_file` (or, when it
/// is `None`, the system's roots) and an optional client certificate and key.
pub fn client_config(
    ca_file: Option<&str>,
    client: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| TlsError::BadAnchor {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A malformed system certificate is skipped, not fatal.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
        }
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(TlsError::Mismatch)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read(path: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_malformed_files_name_the_path() {
        let err = certificates("/nonexistent/cert.pem").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/cert.pem"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let junk = junk.to_str().unwrap();
        assert!(matches!(
            certificates(junk),
            Err(TlsError::NoCertificate { .. })
        ));
        assert!(matches!(private_key(junk), Err(TlsError::NoKey { .. })));
    }
}
