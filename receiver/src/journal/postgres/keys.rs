//! Cross-receiver holds on (account, symbol) keys: session advisory locks on a connection of a
//! pool of their own (so jobs waiting for a key never starve journal writes of connections),
//! taken in sorted order (no deadlock between multi-key jobs) and released when the hold drops.
//! A receiver that dies loses its connection, and PostgreSQL releases its locks with it.

use deadpool_postgres::{Object, Pool};

use super::{pg, pool_error};
use crate::journal::{JournalError, KeyHold};

/// The lock of one key: a 64-bit hash of account and symbol (collisions only serialize two
/// unrelated keys).
const LOCK: &str = "SELECT pg_advisory_lock(hashtextextended('alertgate-order:' || $1::text || chr(31) || $2::text, 0))";

/// Waits for and takes every key.
pub(super) async fn hold(
    pool: &Pool,
    mut keys: Vec<(String, String)>,
) -> Result<KeyHold, JournalError> {
    keys.sort();
    keys.dedup();
    let client = pool.get().await.map_err(pool_error)?;
    let guard = Guard {
        client: Some(client),
    };
    if let Some(client) = &guard.client {
        for (account, symbol) in &keys {
            client.execute(LOCK, &[account, symbol]).await.map_err(pg)?;
        }
    }
    Ok(KeyHold::shared(Box::new(guard)))
}

/// Releases the locks when dropped.
struct Guard {
    client: Option<Object>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLocks")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let release = async move {
            // Back to the pool only once unlocked; otherwise the connection is closed, which
            // releases the locks too.
            if client
                .batch_execute("SELECT pg_advisory_unlock_all()")
                .await
                .is_err()
            {
                drop(Object::take(client));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(release);
            }
            Err(_) => {
                // No runtime (shutdown): the connection closes with the client.
            }
        }
    }
}
