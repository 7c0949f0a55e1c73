//! Signature verification of incoming deliveries, with the trusted key set swappable at runtime
//! (`SIGHUP` during a key rotation) without dropping a request.

use std::sync::Arc;

use alertgate_shared::config::Invalid;
use alertgate_shared::reload::Reloadable;
use alertgate_shared::webhooks::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use alertgate_shared::{Verifier, VerifyError};
use http::HeaderMap;

use crate::config::Settings;

/// The verifier in use; cloned handles share it.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    /// Replaced whole on reload, so a request sees either the old set or the new one.
    current: Reloadable<Verifier>,
}

impl TrustedKeys {
    /// Loads the keys named by `[verify]`.
    pub fn from_settings(settings: &Settings) -> Result<Self, Invalid> {
        let verifier = build_verifier(settings)?;
        Ok(Self {
            current: Reloadable::new(verifier),
        })
    }

    /// Replaces the trusted keys with those `settings` name; on any error the old set stays.
    /// Returns the fingerprints now trusted.
    pub fn reload(&self, settings: &Settings) -> Result<Vec<String>, Invalid> {
        let verifier = build_verifier(settings)?;
        let fingerprints = verifier.fingerprints();
        self.current.store(verifier);
        Ok(fingerprints)
    }

    /// Fingerprints of the keys trusted now.
    pub fn fingerprints(&self) -> Vec<String> {
        self.verifier().fingerprints()
    }

    fn verifier(&self) -> Arc<Verifier> {
        self.current.load()
    }

    /// Verifies a delivery's headers against its raw body at `now_unix`; returns the message id.
    pub fn verify<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<&'h str, VerifyError> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let id = get(HEADER_ID);
        self.verifier().verify(
            id,
            get(HEADER_TIMESTAMP),
            get(HEADER_SIGNATURE),
            body,
            now_unix,
        )?;
        id.ok_or(VerifyError::MissingHeader(HEADER_ID))
    }
}

fn build_verifier(settings: &Settings) -> Result<Verifier, Invalid> {
    let (keys, secrets) = settings.trusted_keys()?;
    Verifier::new(keys, secrets, settings.verify.tolerance_seconds)
        .map_err(|e| Invalid::new("verify", e.to_string()))
}
