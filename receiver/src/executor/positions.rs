//! The executor's position cache: positions per (account, venue, symbol), loaded from the journal on
//! first use and moved by each fill as soon as the venue reports it. Only the job holding a
//! key's turn reads or changes its entry, so between jobs it matches the journal (or is
//! forgotten, when a journal write failed, and read again).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rust_decimal::Decimal;

use super::Key;
use crate::journal::{Journal, JournalError, OrderRecord};

/// What a position is kept by: (account, venue, venue symbol).
pub type PositionKey = (String, String, String);

/// The position key of `order`.
pub fn key_of(order: &OrderRecord) -> PositionKey {
    (
        order.account.clone(),
        order.venue.clone(),
        order.symbol.clone(),
    )
}

/// Signed positions by (account, venue, symbol).
#[derive(Debug, Default)]
pub struct PositionCache {
    /// The known positions; a missing key is read from the journal.
    positions: Mutex<HashMap<PositionKey, Decimal>>,
}

impl PositionCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<PositionKey, Decimal>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The position of (account, venue, symbol), from the cache or the journal.
    pub async fn get(
        &self,
        journal: &dyn Journal,
        account: &str,
        venue: &str,
        symbol: &str,
    ) -> Result<Decimal, JournalError> {
        let key = (account.to_owned(), venue.to_owned(), symbol.to_owned());
        if let Some(p) = self.lock().get(&key) {
            return Ok(*p);
        }
        let p = journal.position(account, venue, symbol).await?;
        self.lock().insert(key, p);
        Ok(p)
    }

    /// Moves cached positions by `deltas` (keys not cached are read from the journal later,
    /// which has the change by then).
    pub fn apply(&self, deltas: &[(PositionKey, Decimal)]) {
        let mut positions = self.lock();
        for (key, delta) in deltas {
            if let Some(p) = positions.get_mut(key) {
                *p += *delta;
            }
        }
    }

    /// Forgets these keys: the journal is the truth for them again.
    pub fn forget(&self, keys: impl IntoIterator<Item = PositionKey>) {
        let mut positions = self.lock();
        for key in keys {
            positions.remove(&key);
        }
    }

    /// Forgets these (account, symbol)s at every venue.
    pub fn forget_symbols(&self, keys: impl IntoIterator<Item = Key>) {
        let keys: std::collections::HashSet<Key> = keys.into_iter().collect();
        self.lock()
            .retain(|(account, _, symbol), _| !keys.contains(&(account.clone(), symbol.clone())));
    }
}
