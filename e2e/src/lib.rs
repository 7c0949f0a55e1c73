//! End-to-end harness: writes configs into a temporary folder, starts the real `alertgate-relay` and
//! `alertgate-receiver` binaries as child processes, and talks to them over HTTP.
//!
//! # Layout
//! - [`binary`]: where `cargo test --workspace` put the two binaries.
//! - [`Service`]: one child process (start, SIGKILL, SIGHUP, restart) with its log kept on disk.
//! - [`RelayConfig`] / [`ReceiverConfig`]: the contract's TOML, rendered from typed settings.
//! - [`Stack`]: a receiver with the paper broker and a relay forwarding to it, ready to take alerts.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// The path of a workspace binary next to this test executable (`target/<profile>/NAME`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected test executable path {}", exe.display()))?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found: run the tests with `cargo test --workspace`, which builds it",
            path.display()
        );
    }
    Ok(path)
}

/// An unused loopback port. The binaries bind what their config says, so the port is chosen here
/// and released just before the service starts.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// One service process and what is needed to restart it.
#[derive(Debug)]
pub struct Service {
    /// Shown in errors.
    name: String,
    /// The binary.
    bin: PathBuf,
    /// `run --config FILE`.
    config: PathBuf,
    /// Extra environment (secrets referenced as `env:NAME`).
    env: Vec<(String, String)>,
    /// stdout and stderr of every run, appended.
    log: PathBuf,
    /// Where to look for readiness: `http://ADDR` (its `/readyz`), or a bare `ADDR` that only
    /// has to accept TCP connections (a TLS listener that wants client certificates).
    health: String,
    /// The running process, if any.
    child: Option<Child>,
}

impl Service {
    /// Describes a service; [`start`](Self::start) runs it.
    pub fn new(
        name: &str,
        bin: PathBuf,
        config: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
        health_url: String,
    ) -> Self {
        Self {
            name: name.to_owned(),
            bin,
            config,
            env,
            log,
            health: health_url,
            child: None,
        }
    }

    /// The config file this service runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let args: Vec<OsString> = vec!["run".into(), "--config".into(), self.config.clone().into()];
        let child = Command::new(&self.bin)
            .args(&args)
            .envs(self.env.iter().cloned())
            .env(
                "RUST_LOG",
                std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/readyz", self.health);
        let http = self.health.starts_with("http");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "{} exited with {status} while starting; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if http {
                if let Ok(r) = client
                    .get(&url)
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        return Ok(());
                    }
                }
            } else if tokio::net::TcpStream::connect(&self.health).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready within 30 s; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        kill(pid, sig).with_context(|| format!("signalling {}", self.name))
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.is_none() {
            return Ok(());
        }
        self.signal(Signal::SIGTERM)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Some(child) = self.child.as_mut() {
            if child.try_wait()?.is_some() {
                self.child = None;
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill9()?;
                bail!("{} did not stop within 15 s of SIGTERM", self.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Everything the process wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGHUP, then waits until the log shows one more reload line (`reload` in it) than before.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let count = |s: &str| {
            s.lines()
                .filter(|l| l.to_lowercase().contains("reload"))
                .count()
        };
        let before = count(&self.log_text());
        self.signal(Signal::SIGHUP)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&self.log_text()) <= before {
            if Instant::now() > deadline {
                bail!(
                    "{} logged no reload within 10 s of SIGHUP; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// TLS client settings for the relay's forwarder.
#[derive(Debug, Clone)]
pub struct ForwardTls {
    /// CA that signed the receiver's certificate.
    pub ca_file: PathBuf,
    /// The relay's client certificate and key (omit both to test refusal).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The relay's config, rendered as the contract's TOML.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// `server.listen`.
    pub listen: SocketAddr,
    /// `server.trusted_proxies`.
    pub trusted_proxies: Vec<String>,
    /// `allowlist.cidrs`.
    pub allowlist: Vec<String>,
    /// `accounts[0].secrets` (references).
    pub secrets: Vec<String>,
    /// `signing.keys` (references).
    pub keys: Vec<String>,
    /// `forward.url`.
    pub forward_url: String,
    /// `forward.max_age_seconds`.
    pub max_age_seconds: u64,
    /// mTLS to the receiver.
    pub forward_tls: Option<ForwardTls>,
    /// `spool.dir`.
    pub spool_dir: PathBuf,
    /// `metrics.listen`.
    pub metrics: SocketAddr,
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

impl RelayConfig {
    /// The TOML text.
    pub fn render(&self) -> String {
        let mut s = format!(
            r#"[server]
listen = "{listen}"
trusted_proxies = {proxies}
max_body_bytes = 16384

[allowlist]
cidrs = {allow}

[rate_limit]
per_ip_per_second = 10000
per_ip_burst = 10000
global_per_second = 10000
global_burst = 10000
per_account_per_second = 10000
per_account_burst = 10000

[[accounts]]
id = "main"
secrets = {secrets}

[signing]
keys = {keys}
hmac_secrets = []

[forward]
url = "{url}"
timeout_ms = 2000
max_age_seconds = {max_age}
"#,
            listen = self.listen,
            proxies = toml_list(&self.trusted_proxies),
            allow = toml_list(&self.allowlist),
            secrets = toml_list(&self.secrets),
            keys = toml_list(&self.keys),
            url = self.forward_url,
            max_age = self.max_age_seconds,
        );
        if let Some(tls) = &self.forward_tls {
            let _ = writeln!(s, "ca_file = {:?}", tls.ca_file.display().to_string());
            if let Some((cert, key)) = &tls.client {
                let _ = writeln!(s, "client_cert_file = {:?}", cert.display().to_string());
                let _ = writeln!(s, "client_key_file = {:?}", key.display().to_string());
            }
        }
        let _ = write!(
            s,
            r#"
[spool]
dir = {spool:?}

[dedupe]
window_seconds = 300

[metrics]
listen = "{metrics}"
"#,
            spool = self.spool_dir.display().to_string(),
            metrics = self.metrics,
        );
        s
    }
}

/// TLS server settings for the receiver.
#[derive(Debug, Clone)]
pub struct ReceiverTls {
    /// Server certificate.
    pub cert_file: PathBuf,
    /// Server key.
    pub key_file: PathBuf,
    /// CA whose client certificates are required.
    pub client_ca_file: PathBuf,
}

/// The receiver's config, rendered as the contract's TOML.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// `server.listen`.
    pub listen: SocketAddr,
    /// `server.tls`.
    pub tls: Option<ReceiverTls>,
    /// `verify.public_keys` (references).
    pub public_keys: Vec<String>,
    /// `store.path`.
    pub store_path: PathBuf,
    /// `risk.kill_switch_file`.
    pub kill_switch_file: PathBuf,
    /// `metrics.listen`.
    pub metrics: SocketAddr,
}

impl ReceiverConfig {
    /// The TOML text.
    pub fn render(&self) -> String {
        let mut s = format!("[server]\nlisten = \"{}\"\n", self.listen);
        if let Some(tls) = &self.tls {
            let _ = write!(
                s,
                "\n[server.tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n",
                tls.cert_file.display().to_string(),
                tls.key_file.display().to_string(),
                tls.client_ca_file.display().to_string()
            );
        }
        let _ = write!(
            s,
            r#"
[verify]
public_keys = {keys}
hmac_secrets = []
tolerance_seconds = 300

[store]
path = {store:?}

[dedupe]
window_seconds = 300

[broker]
kind = "paper"

[risk]
max_alert_age_seconds = 120
max_quantity = "1000"
max_notional = "100000000"
max_orders_per_minute = 100000
allowed_symbols = []
kill_switch_file = {kill:?}

[symbols]
"BINANCE:BTCUSDT" = "BTCUSDT"

[ops]
token = "env:E2E_OPS_TOKEN"

[metrics]
listen = "{metrics}"
"#,
            keys = toml_list(&self.public_keys),
            store = self.store_path.display().to_string(),
            kill = self.kill_switch_file.display().to_string(),
            metrics = self.metrics,
        );
        s
    }
}

/// The ops token every e2e receiver uses.
pub const OPS_TOKEN: &str = "e2e-ops-token-0123456789";
/// The first account secret every e2e relay accepts.
pub const SECRET: &str = "e2e-secret-main-0123456789";

/// A receiver (paper broker) and a relay forwarding to it, both running.
#[derive(Debug)]
pub struct Stack {
    /// Holds every file; removed when the stack is dropped.
    pub dir: tempfile::TempDir,
    /// The relay's settings (edit, [`Stack::write_relay_config`], then reload).
    pub relay_config: RelayConfig,
    /// The receiver's settings.
    pub receiver_config: ReceiverConfig,
    /// The relay process.
    pub relay: Service,
    /// The receiver process.
    pub receiver: Service,
    /// Client for the tests' own requests.
    pub http: reqwest::Client,
}

/// What a sender got back from the relay.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// JSON body (Null if none).
    pub body: Value,
}

impl Stack {
    /// Generates a signing key, writes both configs and starts receiver then relay.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_, _| {}).await
    }

    /// Like [`start`](Self::start), letting the caller adjust the configs first.
    pub async fn start_with(
        adjust: impl FnOnce(&mut RelayConfig, &mut ReceiverConfig),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_path_buf();
        let key_base = root.join("relay-signing");
        keygen(&key_base)?;
        let receiver_port = free_port()?;
        let mut receiver_config = ReceiverConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], receiver_port)),
            tls: None,
            public_keys: vec![format!("file:{}.pub", key_base.display())],
            store_path: root.join("receiver.db"),
            kill_switch_file: root.join("KILL"),
            metrics: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        };
        let mut relay_config = RelayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            trusted_proxies: vec![],
            allowlist: vec!["127.0.0.0/8".into()],
            secrets: vec!["env:E2E_SECRET_MAIN".into()],
            keys: vec![format!("file:{}.key", key_base.display())],
            forward_url: format!("http://127.0.0.1:{receiver_port}/v1/alerts"),
            max_age_seconds: 120,
            forward_tls: None,
            spool_dir: root.join("spool"),
            metrics: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
        };
        adjust(&mut relay_config, &mut receiver_config);

        let receiver_path = root.join("receiver.toml");
        std::fs::write(&receiver_path, receiver_config.render())?;
        let relay_path = root.join("relay.toml");
        std::fs::write(&relay_path, relay_config.render())?;
        let env = vec![
            ("E2E_OPS_TOKEN".to_owned(), OPS_TOKEN.to_owned()),
            ("E2E_SECRET_MAIN".to_owned(), SECRET.to_owned()),
            ("E2E_SECRET_NEXT".to_owned(), format!("{SECRET}-next")),
        ];
        let receiver_health = match receiver_config.tls {
            Some(_) => receiver_config.listen.to_string(),
            None => format!("http://{}", receiver_config.listen),
        };
        let mut receiver = Service::new(
            "receiver",
            binary("alertgate-receiver")?,
            receiver_path,
            env.clone(),
            root.join("receiver.log"),
            receiver_health,
        );
        let mut relay = Service::new(
            "relay",
            binary("alertgate-relay")?,
            relay_path,
            env,
            root.join("relay.log"),
            format!("http://{}", relay_config.listen),
        );
        receiver.start().await?;
        relay.start().await?;
        Ok(Self {
            dir,
            relay_config,
            receiver_config,
            relay,
            receiver,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// Rewrites the relay's config file from [`Stack::relay_config`].
    pub fn write_relay_config(&self) -> anyhow::Result<()> {
        Ok(std::fs::write(
            self.relay.config_path(),
            self.relay_config.render(),
        )?)
    }

    /// Rewrites the receiver's config file from [`Stack::receiver_config`].
    pub fn write_receiver_config(&self) -> anyhow::Result<()> {
        Ok(std::fs::write(
            self.receiver.config_path(),
            self.receiver_config.render(),
        )?)
    }

    /// A native-format alert with a unique idempotency key.
    pub fn alert(n: usize, secret: &str) -> Value {
        json!({
            "secret": secret,
            "id": format!("e2e-{n}"),
            "symbol": "BINANCE:BTCUSDT",
            "action": "buy",
            "quantity": "0.001",
            "price": "42000.5",
        })
    }

    /// POSTs an alert to the relay's `/webhook`.
    pub async fn send(&self, alert: &Value) -> anyhow::Result<Answer> {
        let url = format!("http://{}/webhook", self.relay_config.listen);
        let r = self
            .http
            .post(url)
            .body(alert.to_string())
            .header("content-type", "text/plain")
            .send()
            .await?;
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// Every order the receiver's journal holds (newest first).
    pub async fn orders(&self) -> anyhow::Result<Vec<Value>> {
        let url = format!(
            "http://{}/v1/orders?limit=1000",
            self.receiver_config.listen
        );
        let r = self.http.get(url).bearer_auth(OPS_TOKEN).send().await?;
        if !r.status().is_success() {
            bail!("GET /v1/orders: {}", r.status());
        }
        let body: Value = r.json().await?;
        Ok(body["orders"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until the receiver holds at least `n` orders, returning them.
    pub async fn wait_for_orders(&self, n: usize, within: Duration) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + within;
        loop {
            let orders = self.orders().await.unwrap_or_default();
            if orders.len() >= n {
                return Ok(orders);
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {n} orders after {within:?}\nrelay log:\n{}\nreceiver log:\n{}",
                    orders.len(),
                    self.relay.log_tail(),
                    self.receiver.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads one Prometheus sample (sum of all series of that name whose labels contain `labels`).
    pub async fn metric(
        &self,
        metrics: SocketAddr,
        name: &str,
        labels: &str,
    ) -> anyhow::Result<f64> {
        let text = self
            .http
            .get(format!("http://{metrics}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

/// Runs `alertgate-relay keygen --out BASE`.
pub fn keygen(base: &Path) -> anyhow::Result<()> {
    let out = Command::new(binary("alertgate-relay")?)
        .args(["keygen", "--out"])
        .arg(base)
        .output()?;
    if !out.status.success() {
        bail!("keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
