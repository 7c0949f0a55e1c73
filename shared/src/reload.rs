//! A value replaced whole at runtime (`SIGHUP`): the relay's resolved secrets, keys and
//! allowlist, the receiver's trusted keys. Readers take a snapshot (`Arc`) and release the lock at
//! once, so a request sees either the old value or the new one, never a mix.

use std::sync::{Arc, RwLock};

/// The current `T`, replaceable atomically. Cheap to clone; clones share the value.
#[derive(Debug)]
pub struct Reloadable<T> {
    /// Readers clone the inner `Arc`; a reload swaps it.
    current: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Self {
            current: Arc::clone(&self.current),
        }
    }
}

impl<T> Reloadable<T> {
    /// A handle holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(value))),
        }
    }

    /// A snapshot of the current value.
    pub fn load(&self) -> Arc<T> {
        // A poisoned lock still holds a complete value: a store is one assignment.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Replaces the current value.
    pub fn store(&self, value: T) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_taken_before_a_reload_keeps_the_old_value_and_clones_see_the_new_one() {
        let handle = Reloadable::new(1);
        let clone = handle.clone();
        let before = handle.load();
        clone.store(2);
        assert_eq!(*before, 1);
        assert_eq!(*handle.load(), 2);
    }
}
