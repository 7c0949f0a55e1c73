//! Key material: Ed25519 signing and verifying keys (`v1a`) and `whsec_` HMAC secrets (`v1`).
//!
//! Text forms accepted:
//! - private key: `whsk_` + base64 of a 32-byte seed or a 64-byte seed‖public key, or PKCS#8 PEM;
//! - public key: `whpk_` + base64 of the 32-byte key, or SPKI PEM;
//! - HMAC secret: `whsec_` + base64 of the key bytes.
//!
//! Private types redact `Debug` and are wiped on drop. [`fingerprint`](VerifyingKey::fingerprint)
//! gives a short, safe name for a key in logs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::secret::{Secret, SecretError, SecretRef};

/// Prefix of a private signing key in text form.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// Prefix of a public key in text form.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Prefix of an HMAC secret in text form.
pub const HMAC_SECRET_PREFIX: &str = "whsec_";

/// Why key material could not be used. Messages never contain the key itself.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The reference could not be resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Not one of the accepted forms.
    #[error("not a valid {expected}: {why}")]
    Malformed {
        /// What was expected (e.g. "Ed25519 private key").
        expected: &'static str,
        /// What is wrong, without the key bytes.
        why: String,
    },
    /// A 64-byte private key whose public half does not match its seed.
    #[error("the public half of this 64-byte signing key does not match its seed")]
    MismatchedPair,
    /// Writing a key file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn malformed(expected: &'static str, why: impl Into<String>) -> KeyError {
    KeyError::Malformed {
        expected,
        why: why.into(),
    }
}

fn short_fingerprint(prefix: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}:{hex}")
}

/// An Ed25519 private key used by the relay to sign (`v1a`).
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Parses `whsk_…` (or bare base64) of 32 or 64 bytes, or a PKCS#8 PEM block.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "Ed25519 private key";
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map(Self)
                .map_err(|e| malformed(WHAT, format!("PKCS#8 PEM: {e}")));
        }
        if text.starts_with(PUBLIC_KEY_PREFIX) {
            return Err(malformed(
                WHAT,
                "this is a public key (whpk_); signing needs the .key file",
            ));
        }
        let b64 = text.strip_prefix(SIGNING_KEY_PREFIX).unwrap_or(text);
        let bytes = Zeroizing::new(
            B64.decode(b64)
                .map_err(|_| malformed(WHAT, "expected whsk_ followed by base64"))?,
        );
        match bytes.len() {
            32 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(&bytes);
                Ok(Self::from_seed(&seed))
            }
            64 => {
                let mut pair = Zeroizing::new([0u8; 64]);
                pair.copy_from_slice(&bytes);
                ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
                    .map(Self)
                    .map_err(|_| KeyError::MismatchedPair)
            }
            n => Err(malformed(
                WHAT,
                format!("decoded to {n} bytes, expected 32 or 64"),
            )),
        }
    }

    /// Resolves a reference (`file:` normally) and parses the key it points at.
    pub fn load(reference: &SecretRef) -> Result<Self, KeyError> {
        Self::parse(reference.resolve()?.expose())
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs `message`, returning the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The `whsk_` text form (seed‖public key), as a [`Secret`] so it is not printed by accident.
    pub fn to_text(&self) -> Secret {
        let pair = Zeroizing::new(self.0.to_keypair_bytes());
        Secret::new(format!(
            "{SIGNING_KEY_PREFIX}{}",
            B64.encode(pair.as_slice())
        ))
    }

    /// Writes `{base}.key` (mode 0600, refusing to overwrite) and `{base}.pub`.
    pub fn write_pair(&self, base: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let key_path = with_suffix(base, "key");
        let pub_path = with_suffix(base, "pub");
        let private = self.to_text();
        write_new_file(
            &key_path,
            format!("{}\n", private.expose()).as_bytes(),
            0o600,
        )?;
        write_new_file(
            &pub_path,
            format!("{}\n", self.verifying_key().to_text()).as_bytes(),
            0o644,
        )?;
        Ok((key_path, pub_path))
    }
}

fn with_suffix(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Creates a new file with `mode` (the mode is set at creation, so there is no window in which a
/// private key is readable by others). Refuses to overwrite an existing file.
pub fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}

/// A warning if a private file can be read by group or others, `None` if its mode is tight.
pub fn loose_permissions_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{} is readable by group or others (mode {:o}); run chmod 600",
            path.display(),
            mode & 0o777
        )
    })
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey({} [redacted])",
            self.verifying_key().fingerprint()
        )
    }
}

/// An Ed25519 public key used by the receiver to verify `v1a` signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Parses `whpk_…` (or bare base64 of 32 bytes) or an SPKI PEM block.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "Ed25519 public key";
        let text = text.trim();
        if text.starts_with("-----BEGIN PUBLIC KEY") {
            return ed25519_dalek::VerifyingKey::from_public_key_pem(text)
                .map(Self)
                .map_err(|e| malformed(WHAT, format!("SPKI PEM: {e}")));
        }
        if text.starts_with("-----BEGIN") || text.starts_with(SIGNING_KEY_PREFIX) {
            return Err(malformed(
                WHAT,
                "this is a private key; give the receiver the .pub file",
            ));
        }
        let b64 = text.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(text);
        let bytes = B64
            .decode(b64)
            .map_err(|_| malformed(WHAT, "expected whpk_ followed by base64"))?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            malformed(
                WHAT,
                format!("decoded to {} bytes, expected 32", bytes.len()),
            )
        })?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map(Self)
            .map_err(|_| malformed(WHAT, "not a point on the curve"))
    }

    /// Resolves a reference and parses the key.
    pub fn load(reference: &SecretRef) -> Result<Self, KeyError> {
        Self::parse(reference.resolve()?.expose())
    }

    /// `whpk_` + base64.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }

    /// A short name for logs: `ed25519:` + 16 hex digits of the key's SHA-256.
    pub fn fingerprint(&self) -> String {
        short_fingerprint("ed25519", self.0.as_bytes())
    }

    /// Strict verification (rejects small-order keys and malleable signatures).
    pub fn verify_strict(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.fingerprint())
    }
}

/// A symmetric Standard Webhooks secret (`whsec_`), used for `v1` HMAC-SHA256 signatures.
#[derive(Clone)]
pub struct HmacSecret(Zeroizing<Vec<u8>>);

impl HmacSecret {
    /// Parses `whsec_` + base64 (the prefix may be omitted, as other libraries allow).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "HMAC secret";
        let text = text.trim();
        let b64 = text.strip_prefix(HMAC_SECRET_PREFIX).unwrap_or(text);
        let bytes = Zeroizing::new(
            B64.decode(b64)
                .map_err(|_| malformed(WHAT, "expected whsec_ followed by base64"))?,
        );
        if bytes.len() < 16 {
            return Err(malformed(
                WHAT,
                format!("{} bytes is too short; use at least 16", bytes.len()),
            ));
        }
        Ok(Self(bytes))
    }

    /// A fresh random 32-byte secret.
    pub fn generate() -> Self {
        use rand::RngCore as _;
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Resolves a reference and parses the secret.
    pub fn load(reference: &SecretRef) -> Result<Self, KeyError> {
        Self::parse(reference.resolve()?.expose())
    }

    /// The raw key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// `whsec_` + base64, as a [`Secret`].
    pub fn to_text(&self) -> Secret {
        Secret::new(format!(
            "{HMAC_SECRET_PREFIX}{}",
            B64.encode(self.0.as_slice())
        ))
    }

    /// A short, non-reversible name for logs.
    pub fn fingerprint(&self) -> String {
        short_fingerprint("hmac", &self.0)
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacSecret({} [redacted])", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_PAIR: &str =
        "6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";

    #[test]
    fn a_64_byte_key_and_its_32_byte_seed_are_the_same_key() {
        let pair = SigningKey::parse(&format!("whsk_{VECTOR_PAIR}")).unwrap();
        let bytes = B64.decode(VECTOR_PAIR).unwrap();
        let seed = SigningKey::parse(&format!("whsk_{}", B64.encode(&bytes[..32]))).unwrap();
        assert_eq!(pair.verifying_key(), seed.verifying_key());
        assert_eq!(pair.verifying_key().0.as_bytes(), &bytes[32..]);
    }

    #[test]
    fn a_64_byte_key_with_a_foreign_public_half_is_refused() {
        let mut bytes = B64.decode(VECTOR_PAIR).unwrap();
        bytes[40] ^= 1;
        let err = SigningKey::parse(&format!("whsk_{}", B64.encode(&bytes))).unwrap_err();
        assert!(matches!(err, KeyError::MismatchedPair));
    }

    #[test]
    fn text_forms_round_trip() {
        let key = SigningKey::generate();
        let again = SigningKey::parse(key.to_text().expose()).unwrap();
        assert_eq!(key.verifying_key(), again.verifying_key());
        let public = VerifyingKey::parse(&key.verifying_key().to_text()).unwrap();
        assert_eq!(public, key.verifying_key());
    }

    #[test]
    fn pem_forms_are_accepted() {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let key = SigningKey::generate();
        let pem = key.0.to_pkcs8_pem(Default::default()).unwrap();
        let spki = key
            .0
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        assert_eq!(
            SigningKey::parse(&pem).unwrap().verifying_key(),
            key.verifying_key()
        );
        assert_eq!(VerifyingKey::parse(&spki).unwrap(), key.verifying_key());
    }

    #[test]
    fn a_private_key_is_refused_where_a_public_key_belongs() {
        let key = SigningKey::generate();
        assert!(VerifyingKey::parse(key.to_text().expose()).is_err());
    }

    #[test]
    fn key_files_are_written_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("relay-signing");
        let key = SigningKey::generate();
        let (k, p) = key.write_pair(&base).unwrap();
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(loose_permissions_warning(&k).is_none());
        assert!(loose_permissions_warning(&p).is_some());
        let loaded = SigningKey::load(&SecretRef::File(k.clone())).unwrap();
        assert_eq!(loaded.verifying_key(), key.verifying_key());
        assert!(SigningKey::generate().write_pair(&base).is_err());
    }

    #[test]
    fn debug_output_never_contains_key_bytes() {
        let key = SigningKey::parse(&format!("whsk_{VECTOR_PAIR}")).unwrap();
        let secret = HmacSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let shown = format!("{key:?} {secret:?}");
        assert!(!shown.contains("6Xb/"), "{shown}");
        assert!(!shown.contains("MfKQ"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
