//! The part of the configuration that `SIGHUP` can replace: accounts and their secrets, signing
//! keys, allowlist, trusted proxies and rate limits, resolved (secrets read, keys parsed) into one
//! immutable [`Live`] value. Requests take a snapshot; a reload swaps in a complete new value or
//! nothing at all, so a bad config never leaves the relay half-updated.

use std::sync::Arc;

use alertgate_shared::keys::{loose_permissions_warning, KeyError};
use alertgate_shared::reload::Reloadable;
use alertgate_shared::secret::SecretError;
use alertgate_shared::webhooks::KeySetError;
use alertgate_shared::{HmacSecret, Signer, SigningKey};
use ipnet::IpNet;

use crate::allowlist::Allowlist;
use crate::auth::{Account, Accounts};
use crate::config::Settings;
use crate::rate_limit::RateLimits;

/// Everything a request or a forward attempt needs from the reloadable configuration.
#[derive(Debug)]
pub struct Live {
    /// Who may post.
    pub allowlist: Allowlist,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Accounts and their secrets.
    pub accounts: Accounts,
    /// Signs every forward attempt with every configured key.
    pub signer: Signer,
    /// Limiters; kept across a reload when the limits did not change.
    pub limits: Arc<RateLimits>,
}

/// A secret or key that could not be used. Names the config key, never the value.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// An account secret reference could not be read.
    #[error("{key}: {source}")]
    Secret {
        /// Which entry, e.g. `accounts[main].secrets[0]`.
        key: String,
        /// Why.
        source: SecretError,
    },
    /// A signing key or HMAC secret could not be read or parsed.
    #[error("{key}: {source}")]
    Key {
        /// Which entry, e.g. `signing.keys[1]`.
        key: String,
        /// Why.
        source: KeyError,
    },
    /// Too many keys.
    #[error("signing: {0}")]
    KeySet(#[from] KeySetError),
}

impl Live {
    /// Resolves every secret and key of `settings`. Rate-limit buckets of `previous` are kept
    /// when the limits are unchanged.
    pub fn resolve(settings: &Settings, previous: Option<&Live>) -> Result<Self, ResolveError> {
        let mut accounts = Vec::with_capacity(settings.accounts.len());
        for a in &settings.accounts {
            let mut secrets = Vec::with_capacity(a.secrets.len());
            for (i, r) in a.secrets.iter().enumerate() {
                let key = format!("accounts[{}].secrets[{i}]", a.id);
                warn_if_loose(r.path());
                secrets.push(
                    r.resolve()
                        .map_err(|source| ResolveError::Secret { key, source })?,
                );
            }
            accounts.push(Account::new(a.id.clone(), secrets));
        }
        let mut keys = Vec::new();
        for (i, r) in settings.signing.keys.iter().enumerate() {
            warn_if_loose(r.path());
            let key = format!("signing.keys[{i}]");
            keys.push(SigningKey::load(r).map_err(|source| ResolveError::Key { key, source })?);
        }
        let mut hmacs = Vec::new();
        for (i, r) in settings.signing.hmac_secrets.iter().enumerate() {
            warn_if_loose(r.path());
            let key = format!("signing.hmac_secrets[{i}]");
            hmacs.push(HmacSecret::load(r).map_err(|source| ResolveError::Key { key, source })?);
        }
        let signer = Signer::new(keys, hmacs)?;
        let limits = match previous {
            Some(p) if p.limits.settings() == settings.rate_limit => Arc::clone(&p.limits),
            _ => Arc::new(RateLimits::new(settings.rate_limit)),
        };
        Ok(Self {
            allowlist: Allowlist::new(settings.allowlist.cidrs.clone()),
            trusted_proxies: settings.server.trusted_proxies.clone(),
            accounts: Accounts::new(accounts),
            signer,
            limits,
        })
    }
}

fn warn_if_loose(path: Option<&std::path::Path>) {
    if let Some(warning) = path.and_then(loose_permissions_warning) {
        tracing::warn!("{warning}");
    }
}

/// The current [`Live`] value, replaced whole on `SIGHUP`.
pub type LiveHandle = Reloadable<Live>;
