//! Binance request signing: the query string is built once, percent-encoded (RFC 3986), and the
//! signature is computed over exactly those bytes, which are then sent unchanged.
//!
//! - HMAC-SHA256 keys: `signature` = lowercase hex of HMAC(secret, query).
//! - Ed25519 keys (what Binance recommends): `signature` = base64 of the Ed25519 signature,
//!   percent-encoded because base64 may contain `+`, `/` and `=`.

use std::fmt;

use alertgate_shared::{Secret, SigningKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Percent-encodes `value` per RFC 3986: everything but `A-Z a-z 0-9 - _ . ~`.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `k1=v1&k2=v2`, values percent-encoded, in the given order.
pub fn query_string(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The key that signs requests.
#[derive(Clone)]
pub enum RequestSigner {
    /// An HMAC-SHA256 secret key.
    Hmac(Secret),
    /// An Ed25519 private key.
    Ed25519(SigningKey),
}

impl fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hmac(_) => f.write_str("Hmac([redacted])"),
            Self::Ed25519(key) => write!(f, "Ed25519({})", key.verifying_key().fingerprint()),
        }
    }
}

impl RequestSigner {
    /// The `signature` value for `payload`, not yet percent-encoded.
    pub fn signature(&self, payload: &str) -> String {
        match self {
            Self::Hmac(secret) => {
                // HMAC takes keys of any length.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
                    .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
                mac.update(payload.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Self::Ed25519(key) => B64.encode(key.sign(payload.as_bytes())),
        }
    }

    /// `payload&signature=...`: the full signed query string.
    pub fn sign_query(&self, payload: &str) -> String {
        format!(
            "{payload}&signature={}",
            percent_encode(&self.signature(payload))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_published_hmac_example_signs_to_the_published_signature() {
        let signer = RequestSigner::Hmac(Secret::new(
            "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
        ));
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1\
                       &recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            signer.signature(payload),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn the_published_example_parameters_encode_to_the_published_query_string() {
        let params = [
            ("symbol", "LTCBTC".to_owned()),
            ("side", "BUY".to_owned()),
            ("type", "LIMIT".to_owned()),
            ("timeInForce", "GTC".to_owned()),
            ("quantity", "1".to_owned()),
            ("price", "0.1".to_owned()),
            ("recvWindow", "5000".to_owned()),
            ("timestamp", "1499827319559".to_owned()),
        ];
        assert_eq!(
            query_string(&params),
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1\
             &recvWindow=5000&timestamp=1499827319559"
        );
    }

    #[test]
    fn an_ed25519_signature_is_base64_and_percent_encoded_in_the_query() {
        let key = SigningKey::from_seed(&[7u8; 32]);
        let signer = RequestSigner::Ed25519(key.clone());
        let payload = "symbol=BTCUSDT&timestamp=1";
        let signature = signer.signature(payload);
        let raw: [u8; 64] = B64.decode(&signature).unwrap().try_into().unwrap();
        assert!(key.verifying_key().verify_strict(payload.as_bytes(), &raw));
        let query = signer.sign_query(payload);
        let encoded = query
            .strip_prefix("symbol=BTCUSDT&timestamp=1&signature=")
            .unwrap();
        assert!(!encoded.contains(['+', '/', '=']), "{encoded}");
        assert_eq!(encoded, percent_encode(&signature));
    }

    #[test]
    fn reserved_characters_are_percent_encoded_and_unreserved_ones_are_not() {
        assert_eq!(percent_encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(percent_encode("a+b/c="), "a%2Bb%2Fc%3D");
        assert_eq!(percent_encode("币"), "%E5%B8%81");
    }
}
