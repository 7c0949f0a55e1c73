//! The rustls server configuration both services build from their `[server.tls]` tables: one
//! certificate chain and key, HTTP/2 and HTTP/1.1 by ALPN, the ring provider, and how client
//! certificates are asked for.
//!
//! The relay asks TradingView for its certificate without requiring one
//! ([`ClientAuth::Optional`]: a handshake without a certificate still succeeds, so the relay can
//! answer an HTTP 403 instead of an opaque TLS alert); the receiver requires the relay's
//! certificate, signed by the private CA, when mTLS is on ([`ClientAuth::Required`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// How the server treats client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// Not asked for.
    None,
    /// Asked for; verified against `ca_file` (the public web roots when `None`) when presented.
    Optional {
        /// The CA bundle that signs acceptable client certificates.
        ca_file: Option<PathBuf>,
    },
    /// Required and verified against `ca_file`.
    Required {
        /// The CA bundle that signs acceptable client certificates.
        ca_file: PathBuf,
    },
}

/// What the server presents and asks for.
#[derive(Debug, Clone)]
pub struct ServerTls<'a> {
    /// PEM certificate chain, leaf first.
    pub cert_file: &'a Path,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: &'a Path,
    /// Client certificates.
    pub client_auth: ClientAuth,
}

/// Why the TLS files cannot be used; `key` is the config key under `server.tls` at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("server.tls.{key}: {message}")]
pub struct TlsError {
    /// The config key at fault (`cert_file`, `key_file`, `client_ca_file`).
    pub key: &'static str,
    /// What is wrong (never key material).
    pub message: String,
}

fn err(key: &'static str, message: impl ToString) -> TlsError {
    TlsError {
        key,
        message: message.to_string(),
    }
}

/// Builds the server configuration.
pub fn server_config(tls: &ServerTls<'_>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(tls.cert_file, "cert_file")?;
    let key = PrivateKeyDer::from_pem_file(tls.key_file)
        .map_err(|e| err("key_file", format!("{}: {e}", tls.key_file.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| err("cert_file", e))?;
    let builder = match &tls.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional { ca_file } => {
            let roots = match ca_file {
                Some(path) => roots(path)?,
                None => {
                    let mut roots = RootCertStore::empty();
                    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                    roots
                }
            };
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| err("client_ca_file", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        ClientAuth::Required { ca_file } => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_file)?), provider)
                    .build()
                    .map_err(|e| err("client_ca_file", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| err("key_file", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn roots(ca_file: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file, "client_ca_file")? {
        roots.add(cert).map_err(|e| err("client_ca_file", e))?;
    }
    Ok(roots)
}

/// Every certificate in a PEM file; an empty file is an error.
pub fn certificates(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| err(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(err(
            key,
            format!("{}: no certificate found", path.display()),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_certificate_file_names_the_key_and_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("nope.pem");
        let e = server_config(&ServerTls {
            cert_file: &cert,
            key_file: &cert,
            client_auth: ClientAuth::None,
        })
        .unwrap_err();
        assert_eq!(e.key, "cert_file");
        assert!(e.to_string().contains("nope.pem"), "{e}");
    }

    #[test]
    fn an_empty_certificate_file_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("empty.pem");
        std::fs::write(&cert, "").expect("write");
        let e = certificates(&cert, "client_ca_file").unwrap_err();
        assert_eq!(e.key, "client_ca_file");
        assert!(e.message.contains("no certificate"), "{e}");
    }
}
