//! `[store]`: which journal the receiver opens. SQLite (one receiver, an embedded file) is the
//! default; PostgreSQL lets several receivers share one database (DESIGN.md section 15).

use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::config::Invalid;

use super::{Journal, JournalError, PlacementStore, PostgresJournal, SqliteJournal};
use crate::config::{StoreConfig, StoreKind};

/// An opened store: the journal, and the same database as the paper broker's book.
#[derive(Debug, Clone)]
pub struct Store {
    /// The journal.
    pub journal: Arc<dyn Journal>,
    /// The paper broker's book (the same database).
    pub book: Arc<dyn PlacementStore>,
}

impl StoreConfig {
    /// Checks that the keys of the chosen kind are there (and the URL's secret resolves).
    pub fn check(&self) -> Result<(), Invalid> {
        match self.kind {
            StoreKind::Sqlite => {
                if self.path.as_os_str().is_empty() {
                    return Err(Invalid::new(
                        "store.path",
                        "kind = \"sqlite\" needs path (the journal file)",
                    ));
                }
                if self.url.is_some() {
                    return Err(Invalid::new(
                        "store.url",
                        "only for kind = \"postgres\" (set kind, or remove url)",
                    ));
                }
            }
            StoreKind::Postgres => {
                let Some(url) = &self.url else {
                    return Err(Invalid::new(
                        "store.url",
                        "kind = \"postgres\" needs url, e.g. \"env:ALERTGATE_DATABASE_URL\"",
                    ));
                };
                url.resolve()
                    .map_err(|e| Invalid::new("store.url", e.to_string()))?;
                if self.pool_size == 0 {
                    return Err(Invalid::new("store.pool_size", "must be at least 1"));
                }
            }
        }
        Ok(())
    }

    /// Opens the configured journal, creating or migrating its schema.
    pub async fn open(&self) -> Result<Store, JournalError> {
        match self.kind {
            StoreKind::Sqlite => {
                let j = Arc::new(SqliteJournal::open(
                    &self.path,
                    Duration::from_millis(self.busy_timeout_ms),
                )?);
                Ok(Store {
                    journal: j.clone(),
                    book: j,
                })
            }
            StoreKind::Postgres => {
                let url = self
                    .url
                    .as_ref()
                    .ok_or_else(|| JournalError::Storage("store.url is not set".into()))?
                    .resolve()
                    .map_err(|e| JournalError::Storage(format!("store.url: {e}")))?;
                let j = Arc::new(PostgresJournal::open(url.expose(), self.pool_size).await?);
                Ok(Store {
                    journal: j.clone(),
                    book: j,
                })
            }
        }
    }
}
