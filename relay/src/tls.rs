//! TLS terminated by the relay itself (the alternative to running behind Caddy): the rustls server
//! configuration from `[server.tls]`, and the check of TradingView's client certificate
//! (`CN=TradingView Webhooks, O=TradingView, Inc.`).
//!
//! With `tradingview_client_cert = "optional"` or `"required"` the handshake asks for a client
//! certificate and, when one is presented, verifies its chain against `client_ca_file` (the public
//! web roots when unset). A handshake without a certificate still succeeds, so that `required` can
//! answer an HTTP 403 instead of an opaque TLS alert.

use std::sync::Arc;

use alertgate_shared::tls::{self, ClientAuth, ServerTls};
use rustls::pki_types::CertificateDer;

use crate::config::{ClientCertMode, TlsSettings};

/// Subject common name of TradingView's webhook client certificate.
pub const TRADINGVIEW_CN: &str = "TradingView Webhooks";
/// Subject organisation of TradingView's webhook client certificate.
pub const TRADINGVIEW_O: &str = "TradingView, Inc.";

pub use alertgate_shared::server::PeerCerts;

pub use alertgate_shared::tls::TlsError;

/// Builds the rustls configuration: a client certificate is asked for (never required at the
/// handshake) unless the check is off.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let client_auth = match settings.tradingview_client_cert {
        ClientCertMode::Off => ClientAuth::None,
        ClientCertMode::Optional | ClientCertMode::Required => ClientAuth::Optional {
            ca_file: settings.client_ca_file.clone(),
        },
    };
    tls::server_config(&ServerTls {
        cert_file: &settings.cert_file,
        key_file: &settings.key_file,
        client_auth,
    })
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
