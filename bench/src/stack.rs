//! A receiver (paper broker) and a relay forwarding to it, started from generated configs in a
//! temporary folder. Rate limits are set far above what the harness sends, so the numbers measure
//! the pipeline, not the limiter.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use alertgate_receiver::config::{MetricsConfig, OpsConfig};
use alertgate_shared::SecretRef;
use alertgate_testkit::config::{self, ReceiverSettings, RelaySettings};
use alertgate_testkit::{free_addr, Ready, Service};
use anyhow::{bail, Context as _};
use ipnet::IpNet;
use serde_json::Value;

use crate::http::{self, Connection};
use crate::procs::{Binaries, Memory, Profiler};

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
    /// The receiver's metrics listener.
    receiver_metrics: SocketAddr,
    /// `perf record` of each service, when profiling.
    profilers: Vec<Profiler>,
}

/// The relay's spool cap in the harness: 10 s at 12,000 accepted/s is more than the default
/// 100,000 pending, and past the cap the relay answers 503 at the forwarder's pace, which would
/// measure the drain instead of the accept path.
const BENCH_MAX_PENDING: usize = 1_000_000;

/// The relay's settings: only [`LEGIT_SOURCE`] admitted, limits far above what the harness sends.
fn relay_settings(
    listen: SocketAddr,
    metrics: SocketAddr,
    receiver: SocketAddr,
    dir: &Path,
) -> anyhow::Result<RelaySettings> {
    let mut s = config::relay(
        &format!("http://{receiver}/v1/alerts"),
        SecretRef::Env("BENCH_SECRET_MAIN".into()),
        SecretRef::File(dir.join("relay-signing.key")),
        &dir.join("spool"),
    );
    s.server.listen = listen;
    s.allowlist.cidrs = vec![IpNet::from(LEGIT_SOURCE)];
    s.metrics.listen = metrics;
    s.spool.max_pending = BENCH_MAX_PENDING;
    Ok(s)
}

/// The receiver's settings: paper broker, no limits beyond the defaults.
fn receiver_settings(listen: SocketAddr, metrics: SocketAddr, dir: &Path) -> ReceiverSettings {
    let key = SecretRef::File(dir.join("relay-signing.pub"));
    let mut s = config::receiver(vec![key], &dir.join("receiver.db"));
    s.server.listen = listen;
    s.metrics = Some(MetricsConfig { listen: metrics });
    s.risk.kill_switch_file = Some(dir.join("KILL"));
    s.ops = Some(OpsConfig {
        token: SecretRef::Env("BENCH_OPS_TOKEN".into()),
    });
    s
}

impl Stack {
    /// Generates a signing key, writes both configs and starts the receiver, then the relay.
    /// `label` names the profiles (see [`Binaries::perf_dir`]).
    pub async fn start(bins: &Binaries, label: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("alertgate-bench-")
            .tempdir()?;
        let root = dir.path();
        alertgate_testkit::process::keygen(&bins.relay, &root.join("relay-signing"))?;
        let receiver_addr = free_addr()?;
        let relay_addr = free_addr()?;
        let relay_metrics = free_addr()?;
        let receiver_metrics = free_addr()?;
        let receiver_config = root.join("receiver.toml");
        config::write(
            &receiver_config,
            &receiver_settings(receiver_addr, receiver_metrics, root),
        )?;
        let relay_config = root.join("relay.toml");
        config::write(
            &relay_config,
            &relay_settings(relay_addr, relay_metrics, receiver_addr, root)?,
        )?;
        let service = |name: &str, bin: &Path, config: &Path, addr: SocketAddr| {
            Service::new(name, bin, config, Ready::Http(addr))
                .env("BENCH_SECRET_MAIN", SECRET)
                .env("BENCH_OPS_TOKEN", OPS_TOKEN)
        };
        let mut receiver = service("receiver", &bins.receiver, &receiver_config, receiver_addr);
        receiver.start().await?;
        let mut relay = service("relay", &bins.relay, &relay_config, relay_addr);
        relay.start().await?;
        let mut profilers = Vec::new();
        profilers.extend(Profiler::maybe(
            bins,
            relay.id()?,
            &format!("{label}-relay"),
        )?);
        profilers.extend(Profiler::maybe(
            bins,
            receiver.id()?,
            &format!("{label}-receiver"),
        )?);
        Ok(Self {
            _dir: dir,
            relay,
            receiver,
            relay_addr,
            relay_metrics,
            receiver_addr,
            receiver_metrics,
            profilers,
        })
    }

    /// Current and peak memory of (relay, receiver).
    pub fn memory(&self) -> anyhow::Result<(Memory, Memory)> {
        Ok((self.relay.memory()?, self.receiver.memory()?))
    }

    /// Signs like the relay: a Standard Webhooks delivery of `alert` (an alert object without its
    /// secret) for account `main`, as the relay's forwarder would send it to the receiver.
    pub fn delivery_signer(&self) -> anyhow::Result<Delivery> {
        let key = alertgate_shared::keys::SigningKey::load(&SecretRef::File(
            self._dir.path().join("relay-signing.key"),
        ))?;
        Ok(Delivery {
            signer: alertgate_shared::webhooks::Signer::new(vec![key], Vec::new())?,
            target: self.receiver_addr,
        })
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

    /// Sum of a metric's series in a Prometheus text: every label set, or only those containing
    /// `label` (e.g. `outcome="delivered"`).
    fn metric_sum(text: &str, name: &str, label: Option<&str>) -> f64 {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                    && label.is_none_or(|label| l.contains(label))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Messages the receiver has finished (`alertgate_receiver_messages_total` counts final
    /// outcomes only, once per message) and deliveries the relay has had answered with a 2xx:
    /// the receiver has executed everything once the first reaches the second (a receiver
    /// answering 202 before executing, as the relay asks, still has work until then).
    async fn finished_and_delivered(&self) -> anyhow::Result<(f64, f64)> {
        let mut conn = Connection::new(self.receiver_metrics, None);
        let r = conn
            .send(&http::get(self.receiver_metrics, "/metrics", None))
            .await?;
        let receiver = String::from_utf8_lossy(&r.body);
        let finished = Self::metric_sum(&receiver, "alertgate_receiver_messages_total", None);
        let relay = self.relay_metrics_text().await?;
        let delivered = Self::metric_sum(
            &relay,
            "alertgate_relay_forward_total",
            Some(r#"outcome="delivered""#),
        );
        Ok((finished, delivered))
    }

    /// Waits until the relay has nothing left to forward and the receiver has executed all it
    /// was delivered (at most `within`); returns how long it took.
    pub async fn drain(&self, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let executed = || async {
                let (finished, delivered) = self.finished_and_delivered().await?;
                anyhow::Ok(finished >= delivered)
            };
            if self.spool_pending().await? == 0 && executed().await? {
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
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for profiler in std::mem::take(&mut self.profilers) {
            profiler.finish().await?;
        }
        self.relay.stop().await?;
        self.receiver.stop().await?;
        Ok(())
    }
}

/// Builds signed relay → receiver deliveries (the bench plays the relay's forwarder).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The relay's signing key.
    signer: alertgate_shared::webhooks::Signer,
    /// The receiver.
    target: SocketAddr,
}

impl Delivery {
    /// The complete `POST /v1/alerts` request carrying alert `n` of `run` (see [`alert`]),
    /// wrapped in the relay's envelope and signed now.
    pub fn request(&self, run: &str, n: u64, symbols: u64) -> anyhow::Result<Vec<u8>> {
        let raw = alert(run, n, symbols);
        let object: serde_json::Map<String, Value> = serde_json::from_slice(&raw)?;
        let now = time::OffsetDateTime::now_utc();
        let envelope = alertgate_shared::envelope::Envelope::new("main", now, LEGIT_SOURCE, object);
        let body = envelope.to_bytes();
        let id = alertgate_shared::MessageId::generate();
        let headers = self
            .signer
            .request_headers(id.as_str(), now.unix_timestamp(), &body)
            .map_err(|_| anyhow::anyhow!("a generated message id was refused"))?;
        let mut req = format!(
            "POST /v1/alerts HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
            self.target,
            body.len()
        );
        for (name, value) in &headers {
            req.push_str(name.as_str());
            req.push_str(": ");
            req.push_str(value.to_str()?);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let mut req = req.into_bytes();
        req.extend_from_slice(&body);
        Ok(req)
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
