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
    /// The server's URL, for the connections that create, clean up and drop the schema.
    base: String,
}

impl TestSchema {
    /// Creates a fresh, empty schema on the machine's test server ([`base_url`]).
    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(&base_url()).await
    }

    /// Creates a fresh, empty schema on the server at `base` (a [`PrivateServer`]'s URL).
    pub async fn create_on(base: &str) -> anyhow::Result<Self> {
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
        let base = base.to_owned();
        let client = connect(&base).await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        // The application name marks this test's connections (`terminate_connections`).
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}&application_name={name}");
        Ok(Self { name, url, base })
    }

    /// The server's address (host and port of its URL), for a proxy in front of it.
    pub fn server_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        use std::net::ToSocketAddrs as _;
        let rest = self
            .base
            .split_once('@')
            .map_or(self.base.as_str(), |(_, r)| r);
        let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
        host_port
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| anyhow::anyhow!("no address for {host_port}"))
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
        let client = connect(&self.base).await?;
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
        let base = self.base.clone();
        // Drop runs inside or outside a runtime: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = connect(&base).await {
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A PostgreSQL server of the test's own (the machine's PostgreSQL binaries, a fresh cluster in a
/// temporary folder, a free port), for tests that restart or crash the database itself, which
/// the shared server must never be. Runs as the `postgres` user when the test runs as root
/// (PostgreSQL refuses root). Stopped and removed on drop.
#[derive(Debug)]
pub struct PrivateServer {
    /// The cluster's folder (data, socket, log).
    dir: tempfile::TempDir,
    /// `pg_ctl`, of the newest installed PostgreSQL.
    pg_ctl: std::path::PathBuf,
    /// Where it listens (127.0.0.1).
    pub port: u16,
    /// Server settings beyond the defaults (`-c name=value ...`).
    extra: String,
}

impl PrivateServer {
    /// Creates the cluster (`initdb`, trust authentication for `postgres`) and starts it.
    pub fn start() -> anyhow::Result<Self> {
        Self::create(None)
    }

    /// As [`PrivateServer::start`], accepting TLS (`ssl = on`) with this PEM certificate chain
    /// and key; plain connections are still accepted.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        Self::create(Some((cert_pem, key_pem)))
    }

    fn create(tls: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let bin = Self::bin_dir()?;
        let dir = tempfile::Builder::new().prefix("alertgate-pg-").tempdir()?;
        if nix::unistd::Uid::effective().is_root() {
            let user = nix::unistd::User::from_name("postgres")?
                .ok_or_else(|| anyhow::anyhow!("no `postgres` user to run PostgreSQL as"))?;
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid))?;
        }
        let mut server = Self {
            pg_ctl: bin.join("pg_ctl"),
            port: crate::free_port()?,
            dir,
            extra: String::new(),
        };
        let data = server.data();
        server.run(
            &bin.join("initdb"),
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        if let Some((cert, key)) = tls {
            // PostgreSQL wants its key readable by its own user only.
            let (cert_file, key_file) = (
                server.dir.path().join("server.crt"),
                server.dir.path().join("server.key"),
            );
            std::fs::write(&cert_file, cert)?;
            std::fs::write(&key_file, key)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
            if nix::unistd::Uid::effective().is_root() {
                let user = nix::unistd::User::from_name("postgres")?
                    .ok_or_else(|| anyhow::anyhow!("no `postgres` user to run PostgreSQL as"))?;
                for file in [&cert_file, &key_file] {
                    nix::unistd::chown(file, Some(user.uid), Some(user.gid))?;
                }
            }
            server.extra = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_file.display(),
                key_file.display()
            );
        }
        server.ctl(&["start"])?;
        Ok(server)
    }

    /// A URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Where it listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops the server the way a crash or `kill -9` of the postmaster would (`-m immediate`:
    /// no checkpoint, clients cut off; the next start recovers from the WAL), then starts it.
    pub fn crash_restart(&self) -> anyhow::Result<()> {
        self.ctl(&["stop", "-m", "immediate"])?;
        self.ctl(&["start"])
    }

    /// Stops the server (`-m fast`: clients are disconnected, work is checkpointed).
    pub fn stop(&self) -> anyhow::Result<()> {
        self.ctl(&["stop", "-m", "fast"])
    }

    /// Starts a stopped server again, waiting until it accepts connections.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.ctl(&["start"])
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let data = self.data();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200{}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        let mut all = vec!["-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options];
        all.extend_from_slice(args);
        self.run(&self.pg_ctl, &all)
    }

    /// Runs a PostgreSQL program, as `postgres` when root.
    fn run(&self, program: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
        let mut command = if nix::unistd::Uid::effective().is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{} {}: {}\n{}{}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// `/usr/lib/postgresql/<newest>/bin` (Debian's layout), or `pg_config --bindir`.
    fn bin_dir() -> anyhow::Result<std::path::PathBuf> {
        let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((v, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Ok(bin);
        }
        let out = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .map_err(|e| anyhow::anyhow!("no PostgreSQL server binaries found: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().into())
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop", "-m", "immediate"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_private_server_survives_a_crash_restart_with_its_committed_data() {
        let server = PrivateServer::start().unwrap();
        let client = connect(&server.url()).await.unwrap();
        client
            .batch_execute("CREATE TABLE t (v INT); INSERT INTO t VALUES (42)")
            .await
            .unwrap();
        server.crash_restart().unwrap();
        assert!(
            client.simple_query("SELECT 1").await.is_err(),
            "the old connection died with the server"
        );
        let client = connect(&server.url()).await.unwrap();
        let row = client.query_one("SELECT v FROM t", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
    }
}
