//! The window itself, in memory: which (account, idempotency key) pairs were accepted recently
//! or are being accepted right now. A mutex-guarded map with an expiry queue, purged by the
//! relay's maintenance task.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// An (account, idempotency key) pair as one shared allocation: the map, the expiry queue and a
/// reservation hold the same key, and a window of 100,000 keys should cost a few MB, not tens.
/// The account's length prefixes it, so no two pairs are ever the same text.
type Key = Arc<str>;

fn key_text(account: &str, key: &str) -> String {
    format!("{}:{account}{key}", account.len())
}

/// The set of recently accepted keys. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct DedupeWindow {
    /// Shared with every request handler and the purge task.
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Keys and their expiry (unix ms), plus keys being spooled right now.
    state: Mutex<State>,
    /// Window length in milliseconds.
    window_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    /// Key → expiry (unix ms).
    committed: HashMap<Key, i64>,
    /// (expiry, key) in insertion order, which is nearly expiry order: purging pops the front
    /// instead of scanning the whole map while requests wait for the lock.
    expiries: VecDeque<(i64, Key)>,
    /// Keys whose alerts are being spooled right now.
    reserved: HashSet<Key>,
}

impl State {
    fn commit(&mut self, key: Key, expires: i64) {
        let slot = self.committed.entry(Arc::clone(&key)).or_insert(expires);
        *slot = (*slot).max(expires);
        self.expiries.push_back((expires, key));
    }
}

/// Seen within the window (or being accepted right now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duplicate;

/// A key held while its alert is spooled; released on drop unless committed.
#[derive(Debug)]
pub struct Reservation {
    /// The window it belongs to.
    window: DedupeWindow,
    /// `None` once committed.
    key: Option<Key>,
}

impl DedupeWindow {
    /// An empty window of `window_seconds`.
    pub fn new(window_seconds: u64) -> Self {
        let window_ms = i64::try_from(window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            shared: Arc::new(Shared {
                state: Mutex::default(),
                window_ms,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Window length in milliseconds.
    pub fn window_ms(&self) -> i64 {
        self.shared.window_ms
    }

    /// Reserves `key` for `account` at `now_ms`, unless it is already in the window.
    pub fn reserve(&self, account: &str, key: &str, now_ms: i64) -> Result<Reservation, Duplicate> {
        let text = key_text(account, key);
        let mut state = self.lock();
        if state
            .committed
            .get(text.as_str())
            .is_some_and(|&expires| expires > now_ms)
            || state.reserved.contains(text.as_str())
        {
            return Err(Duplicate);
        }
        let k: Key = Arc::from(text);
        state.reserved.insert(Arc::clone(&k));
        Ok(Reservation {
            window: self.clone(),
            key: Some(k),
        })
    }

    /// Refills the window with the keys a spool replay found, skipping those already expired at
    /// `now_ms`.
    pub fn restore(&self, keys: &[(String, String, i64)], now_ms: i64) {
        for (account, key, received_ms) in keys {
            if received_ms.saturating_add(self.shared.window_ms) > now_ms {
                self.remember(account, key, *received_ms);
            }
        }
    }

    /// Records a key accepted at `received_ms` (also used when replaying the spool).
    pub fn remember(&self, account: &str, key: &str, received_ms: i64) {
        let expires = received_ms.saturating_add(self.shared.window_ms);
        self.lock()
            .commit(Arc::from(key_text(account, key)), expires);
    }

    /// Drops expired keys.
    pub fn purge(&self, now_ms: i64) {
        let mut state = self.lock();
        while state
            .expiries
            .front()
            .is_some_and(|(expires, _)| *expires <= now_ms)
        {
            let Some((expires, key)) = state.expiries.pop_front() else {
                break;
            };
            // Only if not renewed since (a later entry in the queue covers the renewal).
            if state.committed.get(&*key).is_some_and(|&e| e <= expires) {
                state.committed.remove(&*key);
            }
        }
    }

    /// Keys currently remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().committed.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Reservation {
    /// The alert is durably spooled: the key enters the window.
    pub fn commit(mut self, received_ms: i64) {
        if let Some(k) = self.key.take() {
            let expires = received_ms.saturating_add(self.window.shared.window_ms);
            let mut state = self.window.lock();
            state.reserved.remove(&*k);
            state.commit(k, expires);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.window.lock().reserved.remove(&*k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_key_is_a_duplicate_until_the_window_ends() {
        let w = DedupeWindow::new(10);
        w.reserve("main", "k", 1_000).unwrap().commit(1_000);
        assert_eq!(w.reserve("main", "k", 10_999).unwrap_err(), Duplicate);
        assert!(
            w.reserve("other", "k", 2_000).is_ok(),
            "accounts do not share keys"
        );
        assert!(w.reserve("main", "k", 11_000).is_ok());
    }

    #[test]
    fn a_released_reservation_lets_the_resend_through() {
        let w = DedupeWindow::new(10);
        let r = w.reserve("main", "k", 0).unwrap();
        assert_eq!(
            w.reserve("main", "k", 0).unwrap_err(),
            Duplicate,
            "a concurrent twin is refused"
        );
        drop(r);
        assert!(w.reserve("main", "k", 0).is_ok());
    }

    #[test]
    fn a_key_remembered_again_later_is_kept_until_its_later_expiry() {
        let w = DedupeWindow::new(1);
        w.remember("main", "k", 0);
        w.remember("main", "k", 500);
        w.purge(1_000);
        assert_eq!(w.len(), 1);
        assert!(w.reserve("main", "k", 1_200).is_err());
        w.purge(1_500);
        assert!(w.is_empty());
    }

    #[test]
    fn an_account_and_a_key_never_run_together_into_another_pair() {
        let w = DedupeWindow::new(10);
        w.reserve("ma", "ink", 0).unwrap().commit(0);
        assert!(w.reserve("main", "k", 0).is_ok());
        assert!(w.reserve("mai", "nk", 0).is_ok());
    }

    #[test]
    fn purge_forgets_expired_keys() {
        let w = DedupeWindow::new(1);
        w.remember("main", "k", 0);
        w.purge(999);
        assert_eq!(w.len(), 1);
        w.purge(1_000);
        assert!(w.is_empty());
    }
}
