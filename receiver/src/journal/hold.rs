//! [`KeyHold`]: one (account, symbol) at a time across every receiver sharing a store. The
//! executor's in-process queue orders one receiver's jobs; a shared store (PostgreSQL) adds a
//! hold that other receivers wait for, granted in the order they asked (PostgreSQL queues lock
//! waiters first come, first served).

use std::fmt::Debug;

/// Held while a job executes; dropping it lets the next receiver's job for the same keys go.
#[derive(Debug)]
#[must_use = "dropping the hold releases it at once"]
pub struct KeyHold {
    /// What releases the hold when dropped; `None` for a store only one receiver uses.
    guard: Option<Box<dyn Debug + Send + Sync>>,
}

impl KeyHold {
    /// No hold: one receiver per store, the in-process queue is enough.
    pub fn local() -> Self {
        Self { guard: None }
    }

    /// A hold other receivers wait for, released when `guard` is dropped.
    pub fn shared(guard: Box<dyn Debug + Send + Sync>) -> Self {
        Self { guard: Some(guard) }
    }

    /// `true` when other receivers may have changed what these keys' positions were, so caches
    /// must be read again.
    pub fn is_shared(&self) -> bool {
        self.guard.is_some()
    }
}
