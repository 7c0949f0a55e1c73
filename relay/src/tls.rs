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
    use x509_cert::der::Decode as _;
    let Ok(parsed) = x509_cert::Certificate::from_der(cert.as_ref()) else {
        return false;
    };
    let subject = &parsed.tbs_certificate.subject;
    first_attribute(subject, OID_COMMON_NAME) == Some(TRADINGVIEW_CN)
        && first_attribute(subject, OID_ORGANIZATION) == Some(TRADINGVIEW_O)
}

/// X.520 `commonName` (2.5.4.3).
const OID_COMMON_NAME: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.4.3");
/// X.520 `organizationName` (2.5.4.10).
const OID_ORGANIZATION: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("2.5.4.10");

/// The first value of attribute `oid` in `name`, if it is one of the string types a subject uses
/// (UTF8String, PrintableString, IA5String) and valid UTF-8.
fn first_attribute(
    name: &x509_cert::name::Name,
    oid: x509_cert::der::oid::ObjectIdentifier,
) -> Option<&str> {
    use x509_cert::der::{Tag, Tagged as _};
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid)
        .filter(|atv| {
            matches!(
                atv.value.tag(),
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String
            )
        })
        .and_then(|atv| std::str::from_utf8(atv.value.value()).ok())
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
    fn the_subject_is_read_whichever_string_type_the_certificate_uses() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::PrintableString(TRADINGVIEW_CN.try_into().unwrap()),
        );
        params.distinguished_name.push(
            rcgen::DnType::OrganizationName,
            rcgen::DnValue::PrintableString(TRADINGVIEW_O.try_into().unwrap()),
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().clone();
        assert!(is_tradingview(&der));
        assert!(!is_tradingview(&CertificateDer::from(vec![
            0x30, 0x03, 0x02, 0x01, 0x00
        ])));
    }

    #[test]
    fn required_mode_refuses_a_missing_certificate() {
        let tv = PeerCerts(Arc::new(vec![cert(TRADINGVIEW_CN, TRADINGVIEW_O)]));
        assert!(client_cert_ok(ClientCertMode::Required, Some(&tv)));
        assert!(!client_cert_ok(ClientCertMode::Required, None));
        assert!(client_cert_ok(ClientCertMode::Optional, None));
    }
}
