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
                if self.tls_ca_file.is_some() {
                    return Err(Invalid::new(
                        "store.tls_ca_file",
                        "only for kind = \"postgres\" (set kind, or remove tls_ca_file)",
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
                if let Some(ca) = &self.tls_ca_file {
                    alertgate_shared::tls::certificates(ca, "tls_ca_file")
                        .map_err(|e| Invalid::new("store.tls_ca_file", e.message))?;
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
                let j = Arc::new(
                    PostgresJournal::open_with(
                        url.expose(),
                        self.pool_size,
                        self.tls_ca_file.as_deref(),
                    )
                    .await?,
                );
                Ok(Store {
                    journal: j.clone(),
                    book: j,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Settings, StoreKind};

    fn parse(store: &str) -> Result<Settings, String> {
        std::env::set_var(
            "AG_STORE_TEST_WHSEC",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
        std::env::set_var(
            "AG_STORE_TEST_URL",
            "postgres://alertgate:s3cret-pw@db.internal/alertgate",
        );
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:9000\"\n[verify]\nhmac_secrets = [\"env:AG_STORE_TEST_WHSEC\"]\n\
             [store]\n{store}"
        );
        Settings::parse(&text, Path::new("receiver.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn postgres_needs_a_url_given_as_a_secret_reference_and_sqlite_a_path() {
        let s = parse("kind = \"postgres\"\nurl = \"env:AG_STORE_TEST_URL\"\n").unwrap();
        assert_eq!(s.store.kind, StoreKind::Postgres);
        assert_eq!(s.store.pool_size, 8);
        assert!(
            !s.to_toml().contains("s3cret-pw"),
            "the effective config shows the reference, not the URL"
        );
        let err = parse("kind = \"postgres\"\n").unwrap_err();
        assert!(err.contains("store.url"), "{err}");
        let err = parse("kind = \"postgres\"\nurl = \"postgres://u:pw@h/db\"\n").unwrap_err();
        assert!(
            !err.contains("pw@h"),
            "a literal URL is refused without echoing it: {err}"
        );
        let err = parse("kind = \"postgres\"\nurl = \"env:AG_STORE_TEST_NOT_SET\"\n").unwrap_err();
        assert!(err.contains("AG_STORE_TEST_NOT_SET"), "{err}");
        let err = parse("kind = \"sqlite\"\n").unwrap_err();
        assert!(err.contains("store.path"), "{err}");
        let err = parse("path = \"x.db\"\nurl = \"env:AG_STORE_TEST_URL\"\n").unwrap_err();
        assert!(err.contains("store.url"), "{err}");
        assert_eq!(
            parse("path = \"x.db\"\n").unwrap().store.kind,
            StoreKind::Sqlite
        );
    }

    #[test]
    fn a_database_ca_file_must_hold_certificates_and_is_for_postgres_only() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = parse(&format!(
            "kind = \"postgres\"\nurl = \"env:AG_STORE_TEST_URL\"\ntls_ca_file = {:?}\n",
            missing.display().to_string()
        ))
        .unwrap_err();
        assert!(
            err.contains("store.tls_ca_file") && err.contains("missing.pem"),
            "{err}"
        );
        let err = parse("path = \"x.db\"\ntls_ca_file = \"ca.pem\"\n").unwrap_err();
        assert!(err.contains("store.tls_ca_file"), "{err}");
        crate::certs::generate(dir.path(), "db.internal").unwrap();
        let ca = dir.path().join("ca.pem").display().to_string();
        let s = parse(&format!(
            "kind = \"postgres\"\nurl = \"env:AG_STORE_TEST_URL\"\ntls_ca_file = {ca:?}\n"
        ))
        .unwrap();
        assert_eq!(s.store.tls_ca_file.unwrap().display().to_string(), ca);
    }
}
