//! TLS terminated by the relay itself (the alternative to running behind Caddy): the rustls server
//! configuration from `[server.tls]`, and the check of TradingView's client certificate
//! (`CN=TradingView Webhooks, O=TradingView, Inc.`).
//!
//! With `tradingview_client_cert = "optional"` or `"required"` the handshake asks for a client
//! certificate and, when one is presented, verifies its chain against `client_ca_file` (the public
//! web roots when unset). A handshake without a certificate still succeeds, so that `required` can
//! answer an HTTP 403 instead of an opaque TLS alert.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::config::{ClientCertMode, TlsSettings};

/// Subject common name of TradingView's webhook client certificate.
pub const TRADINGVIEW_CN: &str = "TradingView Webhooks";
/// Subject organisation of TradingView's webhook client certificate.
pub const TRADINGVIEW_O: &str = "TradingView, Inc.";

pub use alertgate_shared::server::PeerCerts;

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("server.tls.{key}: {message}")]
pub struct TlsError {
    /// The offending key.
    key: &'static str,
    /// What is wrong.
    message: String,
}

fn err(key: &'static str, message: impl ToString) -> TlsError {
    TlsError {
        key,
        message: message.to_string(),
    }
}

/// Builds the rustls configuration.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&settings.cert_file).map_err(|e| err("cert_file", e))?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .map_err(|e| err("key_file", format!("{}: {e}", settings.key_file.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| err("cert_file", e))?;
    let builder = match settings.tradingview_client_cert {
        ClientCertMode::Off => builder.with_no_client_auth(),
        ClientCertMode::Optional | ClientCertMode::Required => {
            let mut roots = RootCertStore::empty();
            match &settings.client_ca_file {
                Some(path) => {
                    for cert in read_certs(path).map_err(|e| err("client_ca_file", e))? {
                        roots.add(cert).map_err(|e| err("client_ca_file", e))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
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

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// Whether a (chain-verified) end-entity certificate is TradingView's webhook certificate.
pub fn is_tradingview(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok());
    let o = subject
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok());
    cn == Some(TRADINGVIEW_CN) && o == Some(TRADINGVIEW_O)
}

/// Whether the request's client certificate satisfies `mode`.
pub fn client_cert_ok(mode: ClientCertMode, certs: Option<&PeerCerts>) -> bool {
    match mode {
        ClientCertMode::Off | ClientCertMode::Optional => true,
        ClientCertMode::Required => certs.and_then(|c| c.0.first()).is_some_and(is_tradingview),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, o: &str) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, o);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn only_tradingviews_subject_is_recognised() {
        assert!(is_tradingview(&cert(TRADINGVIEW_CN, TRADINGVIEW_O)));
        assert!(!is_tradingview(&cert(TRADINGVIEW_CN, "Evil, Inc.")));
        assert!(!is_tradingview(&cert("someone", TRADINGVIEW_O)));
    }

    #[test]
    fn required_mode_refuses_a_missing_certificate() {
        let tv = PeerCerts(Arc::new(vec![cert(TRADINGVIEW_CN, TRADINGVIEW_O)]));
        assert!(client_cert_ok(ClientCertMode::Required, Some(&tv)));
        assert!(!client_cert_ok(ClientCertMode::Required, None));
        assert!(client_cert_ok(ClientCertMode::Optional, None));
    }
}
