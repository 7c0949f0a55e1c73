//! A receiver (paper broker) and a relay forwarding to it, started from generated configs in a
//! temporary folder. Rate limits are set far above what the harness sends, so the numbers measure
//! the pipeline, not the limiter.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::http::{self, Connection};
use crate::procs::{free_port, Binaries, Memory, Profiler, Service};

/// The only address the relay's allowlist admits: legitimate traffic binds it.
pub const LEGIT_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// An address outside the allowlist: reject-path and flood traffic binds it.
pub const UNLISTED_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// The account secret the relay accepts (passed as `env:BENCH_SECRET_MAIN`).
pub const SECRET: &str = "bench-secret-main-0123456789abcdef";
/// The receiver's ops token (passed as `env:BENCH_OPS_TOKEN`).
pub const OPS_TOKEN: &str = "bench-ops-token-0123456789abcdef";

/// The two services, running.
#[derive(Debug)]
pub struct Stack {
    /// Configs, spool, journal and logs; removed when dropped (after the services).
    _dir: tempfile::TempDir,
    /// The relay process.
    pub relay: Service,
    /// The receiver process.
    pub receiver: Service,
    /// The relay's public listener.
    pub relay_addr: SocketAddr,
    /// The relay's metrics listener.
    pub relay_metrics: SocketAddr,
    /// The receiver's listener.
    pub receiver_addr: SocketAddr,
    /// `perf record` of each service, when profiling.
    profilers: Vec<Profiler>,
}

fn relay_config(
    listen: SocketAddr,
    metrics: SocketAddr,
    receiver: SocketAddr,
    dir: &Path,
) -> String {
    format!(
        r#"[server]
listen = "{listen}"
trusted_proxies = []
max_body_bytes = 16384

[allowlist]
cidrs = ["{LEGIT_SOURCE}/32"]

[rate_limit]
per_ip_per_second = 1000000
per_ip_burst = 1000000
global_per_second = 1000000
global_burst = 1000000
per_account_per_second = 1000000
per_account_burst = 1000000

[[accounts]]
id = "main"
secrets = ["env:BENCH_SECRET_MAIN"]

[signing]
keys = ["file:{key}.key"]
hmac_secrets = []

[forward]
url = "http://{receiver}/v1/alerts"
timeout_ms = 2000
max_age_seconds = 120

[spool]
dir = "{spool}"

[dedupe]
window_seconds = 300

[metrics]
listen = "{metrics}"
"#,
        key = dir.join("relay-signing").display(),
        spool = dir.join("spool").display(),
    )
}

fn receiver_config(listen: SocketAddr, dir: &Path) -> String {
    format!(
        r#"[server]
listen = "{listen}"

[verify]
public_keys = ["file:{key}.pub"]
hmac_secrets = []
tolerance_seconds = 300

[store]
path = "{store}"

[dedupe]
window_seconds = 300

[broker]
kind = "paper"

[risk]
max_alert_age_seconds = 120
allowed_symbols = []
kill_switch_file = "{kill}"

[symbols]
"BINANCE:BTCUSDT" = "BTCUSDT"

[ops]
token = "env:BENCH_OPS_TOKEN"
"#,
        key = dir.join("relay-signing").display(),
        store = dir.join("receiver.db").display(),
        kill = dir.join("KILL").display(),
    )
}

impl Stack {
    /// Generates a signing key, writes both configs and starts the receiver, then the relay.
    /// `label` names the profiles (see [`Binaries::perf_dir`]).
    pub async fn start(bins: &Binaries, label: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("alertgate-bench-")
            .tempdir()?;
        let root = dir.path();
        let keygen = tokio::process::Command::new(&bins.relay)
            .args(["keygen", "--out"])
            .arg(root.join("relay-signing"))
            .output()
            .await?;
        if !keygen.status.success() {
            bail!(
                "alertgate-relay keygen failed: {}",
                String::from_utf8_lossy(&keygen.stderr)
            );
        }
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let receiver_addr = loopback(free_port()?);
        let relay_addr = loopback(free_port()?);
        let relay_metrics = loopback(free_port()?);
        std::fs::write(
            root.join("receiver.toml"),
            receiver_config(receiver_addr, root),
        )?;
        std::fs::write(
            root.join("relay.toml"),
            relay_config(relay_addr, relay_metrics, receiver_addr, root),
        )?;
        let env = [
            ("BENCH_SECRET_MAIN", SECRET),
            ("BENCH_OPS_TOKEN", OPS_TOKEN),
        ];
        let mut receiver = Service::spawn(
            "receiver",
            &bins.receiver,
            &root.join("receiver.toml"),
            &env,
            root.join("receiver.log"),
        )?;
        receiver.wait_ready(receiver_addr).await?;
        let mut relay = Service::spawn(
            "relay",
            &bins.relay,
            &root.join("relay.toml"),
            &env,
            root.join("relay.log"),
        )?;
        relay.wait_ready(relay_addr).await?;
        let mut profilers = Vec::new();
        profilers.extend(Profiler::maybe(
            bins,
            relay.pid()?,
            &format!("{label}-relay"),
        )?);
        profilers.extend(Profiler::maybe(
            bins,
            receiver.pid()?,
            &format!("{label}-receiver"),
        )?);
        Ok(Self {
            _dir: dir,
            relay,
            receiver,
            relay_addr,
            relay_metrics,
            receiver_addr,
            profilers,
        })
    }

    /// Current and peak memory of (relay, receiver).
    pub fn memory(&self) -> anyhow::Result<(Memory, Memory)> {
        Ok((self.relay.memory()?, self.receiver.memory()?))
    }

    /// The relay's Prometheus text.
    async fn relay_metrics_text(&self) -> anyhow::Result<String> {
        let mut conn = Connection::new(self.relay_metrics, None);
        let r = conn
            .send(&http::get(self.relay_metrics, "/metrics", None))
            .await?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }

    /// The relay's `alertgate_relay_forward_duration_seconds` histogram: (upper bound in
    /// seconds, cumulative count) per bucket.
    pub async fn forward_buckets(&self) -> anyhow::Result<Vec<(f64, u64)>> {
        let text = self.relay_metrics_text().await?;
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("alertgate_relay_forward_duration_seconds_bucket{")
            else {
                continue;
            };
            let le = rest
                .split("le=\"")
                .nth(1)
                .and_then(|v| v.split('"').next())
                .map(|v| {
                    if v == "+Inf" {
                        f64::INFINITY
                    } else {
                        v.parse().unwrap_or(f64::NAN)
                    }
                });
            let count = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
            if let (Some(le), Some(count)) = (le, count) {
                out.push((le, count as u64));
            }
        }
        Ok(out)
    }

    /// The relay's `alertgate_relay_spool_pending` gauge.
    pub async fn spool_pending(&self) -> anyhow::Result<u64> {
        let text = self.relay_metrics_text().await?;
        text.lines()
            .filter(|l| l.starts_with("alertgate_relay_spool_pending"))
            .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .context("the relay's metrics have no alertgate_relay_spool_pending")
    }

    /// Waits until the relay has nothing left to forward (at most `within`); returns how long it
    /// took.
    pub async fn drain(&self, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if self.spool_pending().await? == 0 {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                bail!(
                    "the relay still had alerts to forward after {within:?}; relay log:\n{}\nreceiver log:\n{}",
                    self.relay.log_tail(),
                    self.receiver.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The receiver's newest orders (at most 1000), as JSON objects.
    pub async fn orders(&self) -> anyhow::Result<Vec<Value>> {
        let mut conn = Connection::new(self.receiver_addr, None);
        let r = conn
            .send(&http::get(
                self.receiver_addr,
                "/v1/orders?limit=1000",
                Some(OPS_TOKEN),
            ))
            .await?;
        if r.status != 200 {
            bail!("GET /v1/orders answered {}", r.status);
        }
        let body: Value = serde_json::from_slice(&r.body)?;
        Ok(body["orders"].as_array().cloned().unwrap_or_default())
    }

    /// Stops both services with SIGTERM.
    pub async fn stop(self) -> anyhow::Result<()> {
        for profiler in self.profilers {
            profiler.finish().await?;
        }
        self.relay.stop().await?;
        self.receiver.stop().await
    }
}

/// A native-format alert for the relay, with a unique idempotency key. With `symbols` > 1 the
/// alerts rotate over that many symbols (`BINANCE:BTCUSDT`, `BINANCE:S1USDT`, ...): the receiver
/// executes the orders of one (account, symbol) one at a time, so a single symbol measures that
/// queue, several measure the pipeline.
pub fn alert(run: &str, n: u64, symbols: u64) -> Vec<u8> {
    let k = n % symbols.max(1);
    let symbol = if k == 0 {
        "BINANCE:BTCUSDT".to_owned()
    } else {
        format!("BINANCE:S{k}USDT")
    };
    format!(
        r#"{{"secret":"{SECRET}","id":"bench-{run}-{n}","symbol":"{symbol}","action":"buy","quantity":"0.001","price":"42000.5"}}"#
    )
    .into_bytes()
}
