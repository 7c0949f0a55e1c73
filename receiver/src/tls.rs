//! `[server.tls]`: the rustls server configuration (ring), requiring client certificates signed by
//! `client_ca_file` when it is set (mTLS between relay and receiver).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsConfig;

/// The TLS files could not be used.
#[derive(Debug, thiserror::Error)]
#[error("server.tls.{key}: {message}")]
pub struct TlsError {
    /// The config key at fault.
    pub key: &'static str,
    /// What is wrong (never key material).
    pub message: String,
}

fn tls_err(key: &'static str, message: impl ToString) -> TlsError {
    TlsError {
        key,
        message: message.to_string(),
    }
}

fn certificates(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(key, format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(
            key,
            format!("{}: no certificate found", path.display()),
        ));
    }
    Ok(certs)
}

/// Builds the server configuration (HTTP/2 and HTTP/1.1 by ALPN).
pub fn server_config(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&config.cert_file, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| tls_err("key_file", format!("{}: {e}", config.key_file.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("cert_file", e))?;
    let builder = match &config.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "client_ca_file")? {
                roots.add(cert).map_err(|e| tls_err("client_ca_file", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_err("client_ca_file", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_err("key_file", e))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
