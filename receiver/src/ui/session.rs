//! Dashboard sessions: random ids in an in-memory map with an absolute expiry read from the
//! injected clock (a restart signs everyone out). Each session carries its CSRF token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alertgate_shared::{Clock, Secret};
use sha2::{Digest, Sha256};

/// How long a session lasts after sign-in.
pub const SESSION_TTL_MS: i64 = 8 * 60 * 60 * 1000;

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Sent back with every POST (header `x-csrf-token` or form field `csrf`).
    pub csrf: Secret,
    /// Unix ms after which the session no longer counts.
    pub expires_at_ms: i64,
}

/// The sessions, keyed by the SHA-256 of their cookie value (a memory dump shows no usable id).
#[derive(Debug)]
pub struct Sessions {
    /// Expiry is judged by this clock.
    clock: Arc<dyn Clock>,
    /// Lifetime of a new session.
    ttl_ms: i64,
    /// Live sessions.
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// A random token of 32 bytes, hex (cookie values, CSRF tokens).
pub fn random_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// An empty store whose sessions last `ttl_ms`.
    pub fn new(clock: Arc<dyn Clock>, ttl_ms: i64) -> Self {
        Self {
            clock,
            ttl_ms,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; returns its cookie value and the session. Expired ones are purged.
    pub fn create(&self) -> (String, Session) {
        let now = self.clock.now_unix_ms();
        let id = random_token();
        let session = Session {
            csrf: Secret::new(random_token()),
            expires_at_ms: now.saturating_add(self.ttl_ms),
        };
        let mut map = self.lock();
        map.retain(|_, s| s.expires_at_ms > now);
        map.insert(key(&id), session.clone());
        (id, session)
    }

    /// The live session of a cookie value; an expired one is removed.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = self.clock.now_unix_ms();
        let k = key(id);
        let mut map = self.lock();
        match map.get(&k) {
            Some(s) if s.expires_at_ms > now => Some(s.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends a session (sign-out).
    pub fn remove(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    /// How long a new session lasts, in seconds (the cookie's `Max-Age`).
    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_ms / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alertgate_shared::ManualClock;

    #[test]
    fn a_session_counts_until_its_expiry_and_not_after() {
        let clock = ManualClock::at_unix(1_700_000_000);
        let sessions = Sessions::new(Arc::new(clock.clone()), 60_000);
        let (id, _) = sessions.create();
        assert!(sessions.get(&id).is_some());
        clock.advance(time::Duration::seconds(59));
        assert!(sessions.get(&id).is_some(), "still live before the expiry");
        clock.advance(time::Duration::seconds(1));
        assert!(sessions.get(&id).is_none(), "gone at the expiry");
        assert!(sessions.get("not-a-session").is_none());
    }

    #[test]
    fn a_signed_out_session_is_gone_and_others_stay() {
        let sessions = Sessions::new(Arc::new(ManualClock::at_unix(1)), 60_000);
        let (a, _) = sessions.create();
        let (b, sb) = sessions.create();
        sessions.remove(&a);
        assert!(sessions.get(&a).is_none());
        assert_eq!(
            sessions.get(&b).map(|s| s.expires_at_ms),
            Some(sb.expires_at_ms)
        );
    }
}
