//! Standard Webhooks 1.0: the signature the relay puts on every forwarded alert and the receiver
//! checks before it parses anything.
//!
//! Signed content is `{webhook-id}.{webhook-timestamp}.{body}`, over the exact body bytes sent.
//! `webhook-signature` holds space-separated `version,base64` tokens: `v1a` (Ed25519) for every
//! signing key and `v1` (HMAC-SHA256) for every shared secret, so a key can be rotated while both
//! old and new keys sign. Unknown versions are skipped; malformed tokens never verify.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::keys::{HmacSecret, SigningKey, VerifyingKey};

/// Header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the unix timestamp of this attempt.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Only this many signature tokens are looked at: a header stuffed with tokens costs no more.
pub const MAX_SIGNATURE_TOKENS: usize = 8;
/// Longest `webhook-signature` header accepted.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 2048;
/// Most keys (Ed25519 plus HMAC) a signer or verifier may hold; two is a rotation, eight is plenty.
pub const MAX_KEYS: usize = 8;
/// Longest `webhook-id` accepted.
pub const MAX_ID_LEN: usize = 128;

/// A `webhook-id` that is empty, too long, or holds characters other than `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook-id is 1 to 128 characters of A-Z, a-z, 0-9, _ and -")]
pub struct InvalidId;

/// The bytes that are signed.
pub fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

fn hmac_sha256(secret: &HmacSecret, content: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(content);
    mac.finalize().into_bytes().into()
}

/// Signs messages with every configured key.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Ed25519 keys: one normally, two during a rotation.
    keys: Vec<SigningKey>,
    /// Optional shared secrets, for receivers that only speak `v1`.
    hmac_secrets: Vec<HmacSecret>,
}

/// A signer or verifier configured with no usable key, or too many.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    /// Nothing to sign or verify with.
    #[error("no keys configured: at least one Ed25519 key or HMAC secret is required")]
    Empty,
    /// More than [`MAX_KEYS`].
    #[error("{0} keys configured; at most {MAX_KEYS} are allowed")]
    TooMany(usize),
}

fn check_key_count(n: usize) -> Result<(), KeySetError> {
    match n {
        0 => Err(KeySetError::Empty),
        n if n > MAX_KEYS => Err(KeySetError::TooMany(n)),
        _ => Ok(()),
    }
}

impl Signer {
    /// A signer with these keys and secrets (at least one in all).
    pub fn new(keys: Vec<SigningKey>, hmac_secrets: Vec<HmacSecret>) -> Result<Self, KeySetError> {
        check_key_count(keys.len() + hmac_secrets.len())?;
        Ok(Self { keys, hmac_secrets })
    }

    /// The `webhook-signature` header value for this attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let content = signed_content(id, &timestamp.to_string(), body);
        let ed = self
            .keys
            .iter()
            .map(|k| format!("v1a,{}", B64.encode(k.sign(&content))));
        let mac = self
            .hmac_secrets
            .iter()
            .map(|s| format!("v1,{}", B64.encode(hmac_sha256(s, &content))));
        ed.chain(mac).collect::<Vec<_>>().join(" ")
    }

    /// The request headers of one signed delivery of `body`: `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature` and `content-type: application/json`. `id` must be a valid
    /// `webhook-id` (`[A-Za-z0-9_-]`, at most [`MAX_ID_LEN`]); anything else is refused rather than
    /// sent unsigned.
    pub fn request_headers(
        &self,
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<http::HeaderMap, InvalidId> {
        if !valid_id(id) {
            return Err(InvalidId);
        }
        let signature = self.sign(id, timestamp, body);
        let mut headers = http::HeaderMap::with_capacity(4);
        for (name, value) in [
            (HEADER_ID, id.to_owned()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_SIGNATURE, signature),
        ] {
            // Checked above (id) or built from base64 and digits: always a valid header value.
            let value = http::HeaderValue::from_str(&value).map_err(|_| InvalidId)?;
            headers.insert(http::HeaderName::from_static(name), value);
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(headers)
    }

    /// Fingerprints of the public keys (for logs and `check-config`).
    pub fn fingerprints(&self) -> Vec<String> {
        let ed = self.keys.iter().map(|k| k.verifying_key().fingerprint());
        ed.chain(self.hmac_secrets.iter().map(HmacSecret::fingerprint))
            .collect()
    }
}

/// Why a request failed verification. Answer every variant with the same 401 shape; only
/// [`VerifyError::StaleTimestamp`] has a code of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent (or not visible ASCII).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The id is empty, too long, or contains characters other than `[A-Za-z0-9_-]`.
    #[error("malformed webhook-id")]
    InvalidId,
    /// The timestamp is not a plain decimal number of seconds.
    #[error("malformed webhook-timestamp")]
    InvalidTimestamp,
    /// The timestamp is too far from now, in either direction.
    #[error("webhook-timestamp outside the tolerance window")]
    StaleTimestamp,
    /// No token matched any trusted key.
    #[error("no valid signature")]
    BadSignature,
}

impl VerifyError {
    /// A stable label for metrics (`reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::InvalidId => "invalid_id",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::StaleTimestamp => "stale_timestamp",
            Self::BadSignature => "bad_signature",
        }
    }

    /// The `error` field of the 401 body: `stale_timestamp` or `bad_signature`.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::StaleTimestamp => "stale_timestamp",
            _ => "bad_signature",
        }
    }
}

/// One token of a `webhook-signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureToken {
    /// `v1,` with a 32-byte HMAC.
    V1([u8; 32]),
    /// `v1a,` with a 64-byte Ed25519 signature.
    V1a([u8; 64]),
    /// A version this implementation does not know; skipped.
    Unknown,
    /// A known version whose value is empty, not base64, or the wrong length; never verifies.
    Malformed,
}

/// Parses at most [`MAX_SIGNATURE_TOKENS`] tokens of a header. Never panics.
pub fn parse_signature_header(header: &str) -> Vec<SignatureToken> {
    header
        .split_ascii_whitespace()
        .take(MAX_SIGNATURE_TOKENS)
        .map(|token| {
            let Some((version, value)) = token.split_once(',') else {
                return SignatureToken::Malformed;
            };
            let decoded = || B64.decode(value).ok();
            match version {
                "v1" => decoded()
                    .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                    .map_or(SignatureToken::Malformed, SignatureToken::V1),
                "v1a" => decoded()
                    .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
                    .map_or(SignatureToken::Malformed, SignatureToken::V1a),
                _ => SignatureToken::Unknown,
            }
        })
        .collect()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_timestamp(ts: &str) -> Option<i64> {
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    ts.parse().ok()
}

/// Checks signatures against every trusted key.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Trusted Ed25519 public keys.
    keys: Vec<VerifyingKey>,
    /// Trusted shared secrets.
    hmac_secrets: Vec<HmacSecret>,
    /// Largest accepted distance between the timestamp and now, in seconds.
    tolerance_seconds: i64,
}

impl Verifier {
    /// A verifier trusting these keys, with a timestamp tolerance in seconds.
    pub fn new(
        keys: Vec<VerifyingKey>,
        hmac_secrets: Vec<HmacSecret>,
        tolerance_seconds: u32,
    ) -> Result<Self, KeySetError> {
        check_key_count(keys.len() + hmac_secrets.len())?;
        Ok(Self {
            keys,
            hmac_secrets,
            tolerance_seconds: i64::from(tolerance_seconds),
        })
    }

    /// Fingerprints of the trusted keys.
    pub fn fingerprints(&self) -> Vec<String> {
        let ed = self.keys.iter().map(VerifyingKey::fingerprint);
        ed.chain(self.hmac_secrets.iter().map(HmacSecret::fingerprint))
            .collect()
    }

    /// Verifies a request from its three headers (`None` when absent) and raw body, at `now`.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), VerifyError> {
        let id = id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
        let timestamp = timestamp.ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
        let signature = signature.ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
        if !valid_id(id) {
            return Err(VerifyError::InvalidId);
        }
        let ts = parse_timestamp(timestamp).ok_or(VerifyError::InvalidTimestamp)?;
        if (now_unix - ts).abs() > self.tolerance_seconds {
            return Err(VerifyError::StaleTimestamp);
        }
        if signature.len() > MAX_SIGNATURE_HEADER_LEN {
            return Err(VerifyError::BadSignature);
        }
        let content = signed_content(id, timestamp, body);
        let mut expected_macs: Option<Vec<[u8; 32]>> = None;
        for token in parse_signature_header(signature) {
            let ok = match token {
                SignatureToken::V1a(sig) => {
                    self.keys.iter().any(|k| k.verify_strict(&content, &sig))
                }
                SignatureToken::V1(mac) => {
                    let expected = expected_macs.get_or_insert_with(|| {
                        self.hmac_secrets
                            .iter()
                            .map(|s| hmac_sha256(s, &content))
                            .collect()
                    });
                    expected.iter().any(|e| bool::from(e.ct_eq(&mac)))
                }
                SignatureToken::Unknown | SignatureToken::Malformed => false,
            };
            if ok {
                return Ok(());
            }
        }
        Err(VerifyError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const V1_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const V1_TS: i64 = 1614265330;
    const V1_BODY: &str = r#"{"test": 2432232314}"#;
    const V1_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const V1_SECRET_2: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const V1_ID_2: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const V1_TS_2: i64 = 1649367553;
    const V1_BODY_2: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const V1_SIG_2: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    const V1A_KEY: &str =
        "6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    const V1A_SIG: &str = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";

    #[test]
    fn request_headers_carry_a_signature_the_verifier_accepts() {
        let signer = hmac_signer(V1_SECRET);
        let headers = signer
            .request_headers(V1_ID, V1_TS, V1_BODY.as_bytes())
            .unwrap();
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get(HEADER_ID), Some(V1_ID));
        assert_eq!(get(HEADER_TIMESTAMP), Some("1614265330"));
        assert_eq!(get(HEADER_SIGNATURE), Some(V1_SIG));
        assert_eq!(get("content-type"), Some("application/json"));
        for bad in ["", "msg.1", "msg 1", &"x".repeat(MAX_ID_LEN + 1)] {
            assert_eq!(
                signer.request_headers(bad, V1_TS, b"{}"),
                Err(InvalidId),
                "{bad:?}"
            );
        }
    }

    fn hmac_signer(secret: &str) -> Signer {
        Signer::new(vec![], vec![HmacSecret::parse(secret).unwrap()]).unwrap()
    }

    fn hmac_verifier(secret: &str) -> Verifier {
        Verifier::new(vec![], vec![HmacSecret::parse(secret).unwrap()], 300).unwrap()
    }

    fn ed_key() -> SigningKey {
        SigningKey::parse(V1A_KEY).unwrap()
    }

    fn ed_verifier() -> Verifier {
        Verifier::new(vec![ed_key().verifying_key()], vec![], 300).unwrap()
    }

    fn check(
        v: &Verifier,
        id: &str,
        ts: i64,
        body: &str,
        sig: &str,
        now: i64,
    ) -> Result<(), VerifyError> {
        v.verify(
            Some(id),
            Some(&ts.to_string()),
            Some(sig),
            body.as_bytes(),
            now,
        )
    }

    #[test]
    fn the_published_v1_vectors_sign_and_verify() {
        assert_eq!(
            hmac_signer(V1_SECRET).sign(V1_ID, V1_TS, V1_BODY.as_bytes()),
            V1_SIG
        );
        assert_eq!(
            hmac_signer(V1_SECRET_2).sign(V1_ID_2, V1_TS_2, V1_BODY_2.as_bytes()),
            V1_SIG_2
        );
        check(
            &hmac_verifier(V1_SECRET),
            V1_ID,
            V1_TS,
            V1_BODY,
            V1_SIG,
            V1_TS,
        )
        .unwrap();
        check(
            &hmac_verifier(V1_SECRET_2),
            V1_ID_2,
            V1_TS_2,
            V1_BODY_2,
            V1_SIG_2,
            V1_TS_2,
        )
        .unwrap();
    }

    #[test]
    fn the_published_v1a_vector_signs_and_verifies() {
        let signer = Signer::new(vec![ed_key()], vec![]).unwrap();
        assert_eq!(signer.sign(V1_ID, V1_TS, V1_BODY.as_bytes()), V1A_SIG);
        check(&ed_verifier(), V1_ID, V1_TS, V1_BODY, V1A_SIG, V1_TS).unwrap();
    }

    #[test]
    fn a_signature_with_its_last_character_changed_fails() {
        for (sig, v) in [(V1_SIG, hmac_verifier(V1_SECRET)), (V1A_SIG, ed_verifier())] {
            let mut bad = sig.to_owned();
            let last = bad.pop().unwrap();
            // Keep the padding valid: change the last data character instead.
            if last == '=' {
                let prev = bad.pop().unwrap();
                bad.push(if prev == 'A' { 'B' } else { 'A' });
                bad.push('=');
            } else {
                bad.push(if last == 'A' { 'B' } else { 'A' });
            }
            assert_eq!(
                check(&v, V1_ID, V1_TS, V1_BODY, &bad, V1_TS),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn empty_and_truncated_tokens_fail() {
        let v = Verifier::new(
            vec![ed_key().verifying_key()],
            vec![HmacSecret::parse(V1_SECRET).unwrap()],
            300,
        )
        .unwrap();
        let truncated_v1 = &V1_SIG[..V1_SIG.len() - 4];
        let truncated_v1a = &V1A_SIG[..V1A_SIG.len() - 8];
        for sig in [
            "v1,",
            "v1a,",
            "v1, v1a,",
            truncated_v1,
            truncated_v1a,
            "",
            "v1",
            ",",
        ] {
            assert_eq!(
                check(&v, V1_ID, V1_TS, V1_BODY, sig, V1_TS),
                Err(VerifyError::BadSignature),
                "{sig:?}"
            );
        }
    }

    #[test]
    fn unknown_versions_are_skipped_not_errors() {
        let sig = format!("v2,abcd v9,{} {V1_SIG}", "A".repeat(44));
        check(
            &hmac_verifier(V1_SECRET),
            V1_ID,
            V1_TS,
            V1_BODY,
            &sig,
            V1_TS,
        )
        .unwrap();
    }

    #[test]
    fn timestamps_more_than_the_tolerance_away_fail_in_both_directions() {
        let v = hmac_verifier(V1_SECRET);
        for now in [V1_TS + 301, V1_TS - 301] {
            assert_eq!(
                check(&v, V1_ID, V1_TS, V1_BODY, V1_SIG, now),
                Err(VerifyError::StaleTimestamp)
            );
        }
        for now in [V1_TS + 300, V1_TS - 300] {
            check(&v, V1_ID, V1_TS, V1_BODY, V1_SIG, now).unwrap();
        }
    }

    #[test]
    fn malformed_timestamps_and_ids_fail() {
        let v = hmac_verifier(V1_SECRET);
        for ts in [
            "",
            "-1614265330",
            "1614265330.0",
            " 1614265330",
            "9999999999999999999",
        ] {
            assert_eq!(
                v.verify(
                    Some(V1_ID),
                    Some(ts),
                    Some(V1_SIG),
                    V1_BODY.as_bytes(),
                    V1_TS
                ),
                Err(VerifyError::InvalidTimestamp),
                "{ts:?}"
            );
        }
        assert_eq!(
            v.verify(
                Some("msg.1"),
                Some("1614265330"),
                Some(V1_SIG),
                V1_BODY.as_bytes(),
                V1_TS
            ),
            Err(VerifyError::InvalidId)
        );
        assert_eq!(
            v.verify(
                None,
                Some("1614265330"),
                Some(V1_SIG),
                V1_BODY.as_bytes(),
                V1_TS
            ),
            Err(VerifyError::MissingHeader(HEADER_ID))
        );
    }

    #[test]
    fn during_a_rotation_either_key_verifies() {
        let old = SigningKey::generate();
        let new = SigningKey::generate();
        let both = Signer::new(vec![old.clone(), new.clone()], vec![]).unwrap();
        let sig = both.sign("msg_x", 100, b"{}");
        for trusted in [&old, &new] {
            let v = Verifier::new(vec![trusted.verifying_key()], vec![], 300).unwrap();
            v.verify(Some("msg_x"), Some("100"), Some(&sig), b"{}", 100)
                .unwrap();
        }
        let stranger =
            Verifier::new(vec![SigningKey::generate().verifying_key()], vec![], 300).unwrap();
        assert_eq!(
            stranger.verify(Some("msg_x"), Some("100"), Some(&sig), b"{}", 100),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn tokens_past_the_bound_are_not_looked_at() {
        let signer = hmac_signer(V1_SECRET);
        let good = signer.sign(V1_ID, V1_TS, V1_BODY.as_bytes());
        let padded = format!("{} {good}", ["v9,x"; MAX_SIGNATURE_TOKENS].join(" "));
        assert_eq!(
            check(
                &hmac_verifier(V1_SECRET),
                V1_ID,
                V1_TS,
                V1_BODY,
                &padded,
                V1_TS
            ),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn key_sets_are_bounded() {
        assert!(Signer::new(vec![], vec![]).is_err());
        let many = (0..=MAX_KEYS)
            .map(|_| SigningKey::generate().verifying_key())
            .collect();
        assert!(Verifier::new(many, vec![], 300).is_err());
    }
}
