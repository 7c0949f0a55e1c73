//! End-to-end harness: the real `alertgate-relay` and `alertgate-receiver` binaries as child
//! processes (the kit's [`Service`]), configured from their own typed settings written into a
//! temporary folder, and driven over HTTP as TradingView and an operator would.
//!
//! # Layout
//! - [`Stack`]: a receiver with the paper broker and a relay forwarding to it, ready to take
//!   alerts; its settings can be changed, rewritten and reloaded.
//! - [`keygen`]: a relay signing key pair, from the binary.
//! - [`chaos`]: the fault campaign behind `deploy/chaos.sh` (seeded traffic and faults, the
//!   invariant checker).
//!
//! Processes, configs, ports and waiting come from `alertgate-testkit`, re-exported here.

pub mod chaos;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use alertgate_receiver::config::{MetricsConfig, OpsConfig};
use alertgate_shared::SecretRef;
pub use alertgate_testkit::config::{self, ReceiverSettings, RelaySettings};
pub use alertgate_testkit::tradingview::Answer;
pub use alertgate_testkit::{
    binary, eventually, free_addr, free_port, Ready, Service, TradingView,
};
use anyhow::{anyhow, bail};
use serde_json::{json, Value};

/// The ops token every e2e receiver uses.
pub const OPS_TOKEN: &str = "e2e-ops-token-0123456789";
/// The first account secret every e2e relay accepts.
pub const SECRET: &str = "e2e-secret-main-0123456789";

/// The environment both services get: the secrets their configs reference as `env:NAME`.
fn secrets_env() -> [(&'static str, String); 3] {
    [
        ("E2E_OPS_TOKEN", OPS_TOKEN.to_owned()),
        ("E2E_SECRET_MAIN", SECRET.to_owned()),
        ("E2E_SECRET_NEXT", format!("{SECRET}-next")),
    ]
}

/// A receiver (paper broker) and a relay forwarding to it, both running.
#[derive(Debug)]
pub struct Stack {
    /// Holds every file; removed when the stack is dropped.
    pub dir: tempfile::TempDir,
    /// The relay's settings (edit, [`Stack::write_relay_config`], then reload).
    pub relay_config: RelaySettings,
    /// The receiver's settings.
    pub receiver_config: ReceiverSettings,
    /// The relay process.
    pub relay: Service,
    /// The receiver process.
    pub receiver: Service,
    /// Client for the tests' own requests.
    pub http: reqwest::Client,
}

/// The receiver's settings for a stack in `root`: paper broker, limits no e2e test reaches.
fn receiver_settings(root: &Path) -> anyhow::Result<ReceiverSettings> {
    let key = SecretRef::File(root.join("relay-signing.pub"));
    let mut s = config::receiver(vec![key], &root.join("receiver.db"));
    s.server.listen = free_addr()?;
    s.risk.kill_switch_file = Some(root.join("KILL"));
    s.risk.max_quantity = Some("1000".parse()?);
    s.risk.max_notional = Some("100000000".parse()?);
    s.risk.max_orders_per_minute = Some(100_000);
    s.ops = Some(OpsConfig {
        token: SecretRef::Env("E2E_OPS_TOKEN".into()),
    });
    s.metrics = Some(MetricsConfig {
        listen: free_addr()?,
    });
    Ok(s)
}

/// The relay's settings for a stack in `root`, forwarding to `receiver`.
fn relay_settings(root: &Path, receiver: SocketAddr) -> anyhow::Result<RelaySettings> {
    let mut s = config::relay(
        &format!("http://{receiver}/v1/alerts"),
        SecretRef::Env("E2E_SECRET_MAIN".into()),
        SecretRef::File(root.join("relay-signing.key")),
        &root.join("spool"),
    );
    s.server.listen = free_addr()?;
    s.metrics.listen = free_addr()?;
    Ok(s)
}

/// A service of the stack, with the e2e secrets in its environment and `E2E_RUST_LOG` (if set)
/// as its `RUST_LOG`.
pub fn service(name: &str, bin: &str, config: &Path, ready: Ready) -> anyhow::Result<Service> {
    let mut service = Service::new(name, binary(bin)?, config, ready);
    for (k, v) in secrets_env() {
        service = service.env(k, &v);
    }
    if let Ok(level) = std::env::var("E2E_RUST_LOG") {
        service = service.env("RUST_LOG", &level);
    }
    Ok(service)
}

impl Stack {
    /// Generates a signing key, writes both configs and starts receiver then relay.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_, _| {}).await
    }

    /// Like [`start`](Self::start), letting the caller adjust the settings first.
    pub async fn start_with(
        adjust: impl FnOnce(&mut RelaySettings, &mut ReceiverSettings),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("alertgate-e2e-")
            .tempdir()?;
        let root = dir.path().to_path_buf();
        keygen(&root.join("relay-signing"))?;
        let mut receiver_config = receiver_settings(&root)?;
        let mut relay_config = relay_settings(&root, receiver_config.server.listen)?;
        adjust(&mut relay_config, &mut receiver_config);

        let receiver_path = root.join("receiver.toml");
        config::write(&receiver_path, &receiver_config)?;
        let relay_path = root.join("relay.toml");
        config::write(&relay_path, &relay_config)?;
        // A receiver that wants client certificates cannot be asked for /readyz without one.
        let receiver_ready = match receiver_config.server.tls {
            Some(_) => Ready::Tcp(receiver_config.server.listen),
            None => Ready::Http(receiver_config.server.listen),
        };
        let mut receiver = service(
            "receiver",
            "alertgate-receiver",
            &receiver_path,
            receiver_ready,
        )?;
        let mut relay = service(
            "relay",
            "alertgate-relay",
            &relay_path,
            Ready::Http(relay_config.server.listen),
        )?;
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
        config::write(self.relay.config_path(), &self.relay_config)
    }

    /// Rewrites the receiver's config file from [`Stack::receiver_config`].
    pub fn write_receiver_config(&self) -> anyhow::Result<()> {
        config::write(self.receiver.config_path(), &self.receiver_config)
    }

    /// The relay's `POST /webhook` URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhook", self.relay_config.server.listen)
    }

    /// The receiver's metrics listener.
    pub fn receiver_metrics(&self) -> anyhow::Result<SocketAddr> {
        self.receiver_config
            .metrics
            .as_ref()
            .map(|m| m.listen)
            .ok_or_else(|| anyhow!("the receiver has no [metrics]"))
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

    /// POSTs an alert to the relay's `/webhook`, as TradingView does.
    pub async fn send(&self, alert: &Value) -> anyhow::Result<Answer> {
        Ok(TradingView::new()
            .post(&self.webhook_url(), alert.to_string())
            .await?)
    }

    /// Every order the receiver's journal holds (newest first).
    pub async fn orders(&self) -> anyhow::Result<Vec<Value>> {
        let url = format!(
            "http://{}/v1/orders?limit=1000",
            self.receiver_config.server.listen
        );
        let r = self.http.get(url).bearer_auth(OPS_TOKEN).send().await?;
        if !r.status().is_success() {
            bail!("GET /v1/orders: {}", r.status());
        }
        let body: Value = r.json().await?;
        Ok(body["orders"].as_array().cloned().unwrap_or_default())
    }

    /// Waits until the receiver holds at least `n` orders, none still in flight, returning them.
    pub async fn wait_for_orders(&self, n: usize, within: Duration) -> anyhow::Result<Vec<Value>> {
        let waited = eventually(&format!("{n} orders"), within, || async {
            let orders = self.orders().await.unwrap_or_default();
            // An order row exists from before it is sent ("new"); wait until each is settled.
            let settled = orders.iter().all(|o| o["status"] != "new");
            (orders.len() >= n && settled).then_some(orders)
        })
        .await;
        waited.map_err(|e| {
            anyhow!(
                "{e}\nrelay log:\n{}\nreceiver log:\n{}",
                self.relay.log_tail(),
                self.receiver.log_tail()
            )
        })
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
    alertgate_testkit::process::keygen(&binary("alertgate-relay")?, base)
}
