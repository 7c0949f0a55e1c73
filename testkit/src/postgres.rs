//! A PostgreSQL schema of its own per test, so tests (and helpers' suites) share the machine's
//! database in parallel. The server is found at `ALERTGATE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); `.ci/run` starts it when it is not running.

use std::sync::atomic::{AtomicU64, Ordering};

/// Where tests find PostgreSQL.
pub fn base_url() -> String {
    std::env::var("ALERTGATE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema created for one test and dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct TestSchema {
    /// The schema's name.
    pub name: String,
    /// A URL whose connections use only this schema (`search_path`).
    pub url: String,
}

impl TestSchema {
    /// Creates a fresh, empty schema.
    pub async fn create() -> anyhow::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "ag_test_{}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = base_url();
        let client = connect(&base).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        // The application name marks this test's connections (`terminate_connections`).
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}&application_name={name}");
        Ok(Self { name, url })
    }

    /// This schema's URL with its host and port replaced by `addr` (a [`crate::proxy::Proxy`]).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let rest = self
            .url
            .split_once('@')
            .map_or(self.url.as_str(), |(_, r)| r);
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        let user = self.url.split_once('@').map_or("postgres://", |(u, _)| u);
        format!("{user}@{addr}{path}")
    }

    /// Ends every connection opened with this schema's URL, and only those (other tests keep
    /// theirs): the receivers' pools see the database go away and reconnect.
    pub async fn terminate_connections(&self) -> anyhow::Result<u64> {
        let client = connect(&base_url()).await?;
        let rows = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await?;
        Ok(rows.len() as u64)
    }

    /// Runs one SQL query in this schema and returns the first column of each row as text.
    pub async fn query_text(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        let client = connect(&self.url).await?;
        let rows = client.simple_query(sql).await?;
        Ok(rows
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect())
    }
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside or outside a runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = connect(&base_url()).await {
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}
