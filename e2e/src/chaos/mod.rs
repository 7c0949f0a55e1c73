//! The fault campaign (DESIGN.md section 17, `deploy/chaos.sh`): for each seed, a stack of the
//! real binaries (one relay, one receiver on its SQLite journal, trading on the Binance Spot
//! emulator), with fault-injecting proxies on both links (relay → receiver, receiver → venue);
//! TradingView-like traffic and a fault schedule drawn from the seed; then, once everything is
//! quiet, the invariant checker ([`check`]).
//!
//! ```text
//!   sender ──▶ relay ──▶ [proxy] ──▶ receiver ──▶ [proxy] ──▶ Binance emulator
//!   SIGKILL/SIGSTOP ▲      latency, stalls,  ▲ SIGKILL/     latency, stalls, resets,
//!   (full spool)           resets, cuts        SIGSTOP      + venue faults, clock skew
//! ```
//!
//! Everything a seed does follows from the seed ([`rng::Rng`]), except the operating system's
//! timing: a seed that fails once is rerun with `deploy/chaos.sh --seed N`, and kept as a
//! regression test in `e2e/tests/chaos.rs`.

pub mod check;
mod disk;
pub mod rng;
pub mod schedule;
pub mod traffic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertgate_receiver::broker::config::{BinanceConfig, BrokerKind};
use alertgate_receiver::config::{MetricsConfig, OpsConfig, StoreKind};
use alertgate_relay::config::AccountSettings;
use alertgate_shared::{Clock, SecretRef};
use alertgate_testkit::emulators::binance::{
    BinanceEmulator, BinanceEmulatorConfig, EmulatedSymbol,
};
use alertgate_testkit::emulators::Fault as VenueFault;
use alertgate_testkit::netns::{Namespace, Veth as NetnsVeth};
use alertgate_testkit::postgres::{PrivateServer, TestSchema};
use alertgate_testkit::proxy::Proxy;
use alertgate_testkit::{free_addr, secret_file, Ready, Service};
use anyhow::Context as _;

use self::disk::Tmpfs;
use self::rng::Rng;
use self::schedule::{Allowed, Disk, Event, Fault, Link, Proc, Veth};
use self::traffic::{Answer, Attempt, Planned, Shared};
use crate::{config, keygen, service};

/// How a campaign runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long each seed sends alerts, in ms.
    pub traffic_ms: u64,
    /// Full disks too (root only: the harness mounts small tmpfs).
    pub disk: bool,
    /// How long the stack may take to become quiet after the last fault.
    pub quiet_within: Duration,
    /// The receiver journals to PostgreSQL (a schema of its own, reached through a fault proxy),
    /// and the database's link and restarts join the faults.
    pub postgres: bool,
    /// Keep each seed's folder (configs, logs, spool, journal), not only a failing one's.
    pub keep: bool,
    /// The receiver runs in a network namespace of its own, joined by veth pairs (root), and
    /// partitions of the relay's link to it join the faults.
    pub netns: bool,
    /// Venue orders out of acceptance order per (account, symbol) fail the seed (the default);
    /// off (`--lax-order`), they are only reported, as `out_of_order`.
    pub strict_order: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            traffic_ms: 3_000,
            disk: false,
            postgres: false,
            quiet_within: Duration::from_secs(60),
            keep: false,
            netns: false,
            strict_order: true,
        }
    }
}

/// What one seed did and found.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// The seed.
    pub seed: u64,
    /// Its faults.
    pub schedule: Vec<Event>,
    /// Alerts planned, sends made, 200s received, venue orders at the end.
    pub alerts: usize,
    /// POSTs to the relay.
    pub sends: usize,
    /// 200s.
    pub accepted: usize,
    /// Orders the venue holds.
    pub venue_orders: usize,
    /// Dead letters.
    pub dead_letters: usize,
    /// Invariants that did not hold.
    pub violations: Vec<String>,
    /// Venue orders out of acceptance order, when [`Options::strict_order`] is off.
    pub out_of_order: Vec<String>,
    /// The seed's folder, when kept.
    pub kept: Option<PathBuf>,
    /// Wall time.
    pub took: Duration,
}

impl SeedReport {
    /// One line for the progress log.
    pub fn line(&self) -> String {
        let kinds: Vec<String> = self.schedule.iter().map(|e| e.fault.kind()).collect();
        format!(
            "seed {}: {}{} {} alerts, {} sends, {} accepted, {} venue orders, {} dead letters, {:.1} s; faults: {}",
            self.seed,
            if self.violations.is_empty() { "ok" } else { "VIOLATED" },
            match self.out_of_order.len() {
                0 => String::new(),
                n => format!(" ({n} out of order)"),
            },
            self.alerts,
            self.sends,
            self.accepted,
            self.venue_orders,
            self.dead_letters,
            self.took.as_secs_f64(),
            kinds.join(", ")
        )
    }

    /// The seed, its schedule, the violations and the offending alerts, for a failing seed.
    pub fn details(&self, plans: &[Planned]) -> String {
        let mut s = format!(
            "seed {}: {} violation(s), {} venue order(s) out of acceptance order\nfault schedule:\n",
            self.seed,
            self.violations.len(),
            self.out_of_order.len()
        );
        for e in &self.schedule {
            s.push_str(&format!("  {e}\n"));
        }
        s.push_str("violations:\n");
        for v in &self.violations {
            s.push_str(&format!("  {v}\n"));
        }
        if !self.out_of_order.is_empty() {
            s.push_str("out of acceptance order (not failing: Options::strict_order is off):\n");
            for v in &self.out_of_order {
                s.push_str(&format!("  {v}\n"));
            }
        }
        let offending: Vec<&Planned> = plans
            .iter()
            .filter(|p| {
                let all = self.violations.iter().chain(&self.out_of_order);
                all.into_iter().any(|v| mentions(v, &p.key))
            })
            .collect();
        if !offending.is_empty() {
            s.push_str("offending alerts:\n");
            for p in offending {
                s.push_str(&format!(
                    "  {} #{} {:?}: {}\n",
                    p.account,
                    p.seq,
                    p.shape,
                    redact(&p.body)
                ));
            }
        }
        if let Some(dir) = &self.kept {
            s.push_str(&format!(
                "logs, spool and journal kept in {}\n",
                dir.display()
            ));
        }
        s.push_str(&format!("rerun: deploy/chaos.sh --seed {}\n", self.seed));
        s
    }
}

/// `key` appears in `line` as a whole key (`acct0-s1-1` is not in `acct0-s1-12`).
fn mentions(line: &str, key: &str) -> bool {
    line.match_indices(key).any(|(i, _)| {
        !line[i + key.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// The body without its secret.
fn redact(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("secret".into(), "***".into());
            }
            v.to_string()
        }
        Err(_) => "(not JSON)".into(),
    }
}

/// The venue's clock: the system's, moved by a skew the campaign sets.
#[derive(Debug, Default)]
pub struct SkewedClock(AtomicI64);

impl SkewedClock {
    /// Moves the clock `ms` ahead (negative: behind).
    pub fn set_skew_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for SkewedClock {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
            + time::Duration::milliseconds(self.0.load(Ordering::SeqCst))
    }
}

const VENUE_KEY: &str = "chaos-binance-api-key";
const VENUE_SECRET: &str = "chaos-binance-secret-key";

/// ETHUSDT, with filters like BTCUSDT's, at 2500.
fn ethusdt() -> EmulatedSymbol {
    EmulatedSymbol {
        symbol: "ETHUSDT".into(),
        base_asset: "ETH".into(),
        last_price: "2500".parse().unwrap_or_default(),
        step_size: "0.0001".parse().unwrap_or_default(),
        min_qty: "0.0001".parse().unwrap_or_default(),
        ..EmulatedSymbol::btcusdt()
    }
}

/// One seed's stack: venue, proxies, receiver, relay.
struct Stack {
    venue: BinanceEmulator,
    clock: Arc<SkewedClock>,
    venue_link: Proxy,
    receiver_link: Proxy,
    relay: Service,
    receiver: Service,
    relay_url: String,
    relay_metrics: SocketAddr,
    receiver_metrics: SocketAddr,
    spool_dir: PathBuf,
    journal_path: PathBuf,
    disks: Vec<(Disk, Tmpfs)>,
    /// With `--postgres`: the receiver's schema, the proxy in front of the server, and the
    /// server itself (the seed's own, so that `postgres_restart` can crash it for real).
    database: Option<(TestSchema, Proxy, Arc<PrivateServer>)>,
    /// With `--netns`: the receiver's namespace and its link to the relay's side.
    netns: Option<(Namespace, NetnsVeth)>,
}

impl Stack {
    async fn start(
        root: &Path,
        accounts: &[String],
        disk: bool,
        postgres: bool,
        netns: bool,
    ) -> anyhow::Result<Self> {
        keygen(&root.join("relay-signing"))?;
        // With `--netns` the receiver is reached from here over a veth pair (`to_receiver`: the
        // relay's deliveries) and reaches the venue and the database over another (`outward`,
        // also the harness's way to its readiness and metrics), whose addresses on this side
        // the proxies listen on. Without, everything is on loopback.
        let netns = if netns {
            let mut ns = Namespace::create()?;
            let to_receiver = ns.add_link()?;
            let outward = ns.add_link()?;
            Some((ns, to_receiver, outward))
        } else {
            None
        };
        let here = |port: u16| match &netns {
            Some((_, _, outward)) => SocketAddr::from((outward.outside_ip, port)),
            None => SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Where the receiver listens, and where the harness reaches it.
        let receiver_port = |addr: SocketAddr| match &netns {
            Some((_, _, outward)) => (
                SocketAddr::from(([0, 0, 0, 0], addr.port())),
                SocketAddr::from((outward.inside_ip, addr.port())),
            ),
            None => (addr, addr),
        };
        let mut disks = Vec::new();
        let (spool_parent, journal_parent) = if disk {
            let spool = Tmpfs::mount(&root.join("spool-disk"), "512k")?;
            let journal = Tmpfs::mount(&root.join("journal-disk"), "8m")?;
            let paths = (spool.path().to_owned(), journal.path().to_owned());
            disks.push((Disk::Spool, spool));
            disks.push((Disk::Journal, journal));
            paths
        } else {
            (root.to_owned(), root.to_owned())
        };
        let spool_dir = spool_parent.join("spool");
        let journal_path = journal_parent.join("receiver.db");

        let clock = Arc::new(SkewedClock::default());
        let venue = BinanceEmulator::start(BinanceEmulatorConfig {
            symbols: vec![EmulatedSymbol::btcusdt(), ethusdt()],
            ..BinanceEmulatorConfig::hmac(VENUE_KEY, VENUE_SECRET, clock.clone())
        })
        .await?;
        let venue_addr: SocketAddr = venue
            .base_url()
            .trim_start_matches("http://")
            .parse()
            .context("the venue's address")?;
        let venue_link = Proxy::start_on(here(0), venue_addr).await?;

        let key = SecretRef::File(root.join("relay-signing.pub"));
        let mut r = config::receiver(vec![key], &journal_path);
        let (listen, receiver_addr) = receiver_port(free_addr()?);
        r.server.listen = listen;
        r.broker.kind = BrokerKind::Binance;
        r.broker.binance = Some(BinanceConfig {
            base_url: format!("http://{}", venue_link.addr),
            api_key: secret_file(root, "binance-key", VENUE_KEY),
            api_secret: Some(secret_file(root, "binance-secret", VENUE_SECRET)),
            private_key: None,
            recv_window_ms: 5_000,
            timeout_ms: 1_000,
        });
        r.symbols = traffic::SYMBOLS
            .iter()
            .map(|(tv, venue)| ((*tv).to_owned(), (*venue).to_owned()))
            .collect();
        r.risk.max_quantity = Some("1000".parse()?);
        r.risk.max_notional = Some("100000000".parse()?);
        r.risk.max_orders_per_minute = Some(100_000);
        r.executor.resume_interval_ms = 1_000;
        r.executor.resume_after_seconds = 3;
        r.reconcile.interval_seconds = 1;
        r.reconcile.unknown_grace_seconds = 5;
        r.ops = Some(OpsConfig {
            token: SecretRef::Env("E2E_OPS_TOKEN".into()),
        });
        let (metrics_listen, receiver_metrics) = receiver_port(free_addr()?);
        r.metrics = Some(MetricsConfig {
            listen: metrics_listen,
        });
        let database = if postgres {
            let server = Arc::new(tokio::task::spawn_blocking(PrivateServer::start).await??);
            let schema = TestSchema::create_on(&server.url()).await?;
            let link = Proxy::start_on(here(0), server.addr()).await?;
            let url_file = root.join("database-url");
            std::fs::write(&url_file, schema.url_via(link.addr))?;
            r.store.kind = StoreKind::Postgres;
            r.store.url = Some(SecretRef::File(url_file));
            r.store.path = PathBuf::new();
            r.store.pool_size = 4;
            Some((schema, link, server))
        } else {
            None
        };
        let receiver_link = Proxy::start(match &netns {
            Some((_, to_receiver, _)) => SocketAddr::from((to_receiver.inside_ip, listen.port())),
            None => receiver_addr,
        })
        .await?;

        let mut s = config::relay(
            &format!("http://{}/v1/alerts", receiver_link.addr),
            SecretRef::Env("E2E_SECRET_MAIN".into()),
            SecretRef::File(root.join("relay-signing.key")),
            &spool_dir,
        );
        s.accounts = accounts
            .iter()
            .map(|a| AccountSettings {
                id: a.clone(),
                secrets: vec![secret_file(
                    root,
                    &format!("secret-{a}"),
                    &traffic::secret(a),
                )],
            })
            .collect();
        s.server.listen = free_addr()?;
        s.metrics.listen = free_addr()?;
        s.forward.backoff_initial_ms = 100;
        s.forward.backoff_max_ms = 1_000;

        let receiver_path = root.join("receiver.toml");
        config::write(&receiver_path, &r)?;
        let relay_path = root.join("relay.toml");
        config::write(&relay_path, &s)?;
        let mut receiver = service(
            "receiver",
            "alertgate-receiver",
            &receiver_path,
            Ready::Http(receiver_addr),
        )?;
        if let Some((ns, _, _)) = &netns {
            receiver = receiver.in_netns(ns.name());
        }
        let mut relay = service(
            "relay",
            "alertgate-relay",
            &relay_path,
            Ready::Http(s.server.listen),
        )?;
        receiver.start().await?;
        relay.start().await?;
        // A port chosen free can be taken before the service binds it, and then another
        // process answers its readiness probe: a harness error, not a finding.
        for s in [&mut receiver, &mut relay] {
            if s.try_wait()?.is_some() || s.log_text().contains("Address already in use") {
                anyhow::bail!(
                    "a port was taken between choosing and binding it; rerun the seed:\n{}",
                    s.log_tail()
                );
            }
        }
        Ok(Self {
            venue,
            clock,
            venue_link,
            receiver_link,
            relay,
            receiver,
            relay_url: format!("http://{}/webhook", s.server.listen),
            relay_metrics: s.metrics.listen,
            receiver_metrics,
            spool_dir,
            journal_path,
            disks,
            database,
            netns: netns.map(|(ns, to_receiver, _)| (ns, to_receiver)),
        })
    }

    /// Takes the receiver's end of a veth link down or up.
    fn set_veth(&self, veth: Veth, up: bool) -> anyhow::Result<()> {
        match (veth, &self.netns) {
            (Veth::RelayReceiver, Some((ns, link))) => ns.set_link(link, up),
            // Never drawn without `--netns`.
            (_, None) => Ok(()),
        }
    }

    /// The journal as it is now.
    async fn journal(&self) -> anyhow::Result<check::Journal> {
        match &self.database {
            Some((schema, _, _)) => check::Journal::read_postgres(&schema.url).await,
            None => check::Journal::read(&self.journal_path),
        }
    }

    fn link(&self, link: Link) -> &Proxy {
        match (link, &self.database) {
            (Link::RelayReceiver, _) => &self.receiver_link,
            (Link::ReceiverDatabase, Some((_, db, _))) => db,
            // Never drawn without `--postgres`.
            (Link::ReceiverVenue | Link::ReceiverDatabase, _) => &self.venue_link,
        }
    }

    fn service(&mut self, p: Proc) -> &mut Service {
        match p {
            Proc::Relay => &mut self.relay,
            Proc::Receiver => &mut self.receiver,
        }
    }

    /// Every toxic off, every fault undone, both processes running.
    async fn heal(&mut self) -> anyhow::Result<()> {
        self.receiver_link.heal();
        self.venue_link.heal();
        if let Some((_, db, _)) = &self.database {
            db.heal();
        }
        // A fault still queued would strike during quiescence, with nobody left to undo it.
        self.venue.clear_faults();
        self.venue.set_unreachable(false);
        self.clock.set_skew_ms(0);
        self.set_veth(Veth::RelayReceiver, true)?;
        for (_, d) in &self.disks {
            d.free()?;
        }
        for p in [Proc::Receiver, Proc::Relay] {
            let s = self.service(p);
            if s.is_running() {
                s.resume()?;
            } else {
                restart(s).await?;
            }
        }
        Ok(())
    }
}

/// Starts a killed service again, as systemd's `Restart=always` would: a receiver whose
/// database is still down exits at start, and is started again until it stays up.
async fn restart(service: &mut Service) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        match service.start().await {
            Ok(()) => return Ok(()),
            Err(e) if tries >= 40 => return Err(e),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// What the fault executor did to whom, beyond the schedule itself.
#[derive(Debug, Default)]
struct Applied {
    receiver_restarted: bool,
}

/// Runs the schedule against the stack, in order (one fault at a time on the processes; link
/// and venue faults are set, and undone after their duration).
async fn inflict(
    stack: &mut Stack,
    schedule: &[Event],
    shared: &Shared,
    started: Instant,
) -> anyhow::Result<Applied> {
    let mut applied = Applied::default();
    let mut undo: Vec<(Instant, Event)> = Vec::new();
    for event in schedule {
        let at = started + Duration::from_millis(event.at_ms);
        undo_due(stack, &mut undo, at, shared).await?;
        tokio::time::sleep_until(at.into()).await;
        let lasting = Duration::from_millis(event.for_ms);
        match &event.fault {
            Fault::Kill(p) => {
                stack.service(*p).kill9()?;
                if *p == Proc::Relay {
                    shared.relay_epoch.fetch_add(1, Ordering::SeqCst);
                } else {
                    applied.receiver_restarted = true;
                }
                tokio::time::sleep(lasting.min(Duration::from_millis(1_000))).await;
                // Started again and again while it exits at start (its database still down),
                // as `Restart=always` would, undoing the faults that come due meanwhile.
                let mut tries = 0;
                loop {
                    undo_due(stack, &mut undo, Instant::now(), shared).await?;
                    match stack.service(*p).start().await {
                        Ok(()) => break,
                        Err(e) if tries >= 40 => return Err(e),
                        Err(_) => tries += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            Fault::Stop(p) => {
                stack.service(*p).pause()?;
                tokio::time::sleep(lasting).await;
                stack.service(*p).resume()?;
            }
            Fault::VenueAcceptThen5xx(n) => stack
                .venue
                .fail_next_orders(VenueFault::AcceptThenServerError { status: 503 }, *n),
            Fault::VenueAcceptThenHang(n) => {
                stack.venue.fail_next_orders(VenueFault::AcceptThenHang, *n)
            }
            Fault::Venue429Storm(n) => stack.venue.fail_next_orders(
                VenueFault::RateLimited {
                    retry_after_secs: 1,
                },
                *n,
            ),
            Fault::Venue5xx(n) => stack
                .venue
                .fail_next_orders(VenueFault::ServerError { status: 502 }, *n),
            Fault::VenueAcceptThenUnreachable => {
                stack
                    .venue
                    .fail_next_orders(VenueFault::AcceptThenUnreachable, 1);
                undo.push((Instant::now() + lasting, event.clone()));
            }
            Fault::Latency(l, ms) => {
                stack.link(*l).set_latency(Duration::from_millis(*ms));
                undo.push((Instant::now() + lasting, event.clone()));
            }
            Fault::Stall(l) => {
                stack.link(*l).stall();
                undo.push((Instant::now() + lasting, event.clone()));
            }
            Fault::Reset(l, n) => stack.link(*l).reset_next(*n),
            Fault::DropAnswer(l, n) => stack.link(*l).drop_answer_next(*n),
            Fault::Cut(l) => {
                stack.link(*l).down();
                undo.push((Instant::now() + lasting, event.clone()));
            }
            Fault::ClockSkew(ms) => {
                stack.clock.set_skew_ms(*ms);
                undo.push((Instant::now() + lasting, event.clone()));
            }
            Fault::DatabaseRestart => {
                if let Some((_, db, server)) = &stack.database {
                    // Unreachable while it is down and recovering; then it crashes for real
                    // (no checkpoint, every connection cut) and recovers from its WAL.
                    db.down();
                    let server = Arc::clone(server);
                    tokio::task::spawn_blocking(move || server.crash_restart()).await??;
                    undo.push((Instant::now() + lasting, event.clone()));
                }
            }
            Fault::DiskFull(d) => {
                if let Some((_, disk)) = stack.disks.iter().find(|(k, _)| k == d) {
                    shared.disk_full.store(true, Ordering::SeqCst);
                    disk.fill()?;
                    undo.push((Instant::now() + lasting, event.clone()));
                }
            }
            Fault::Partition(v) => {
                stack.set_veth(*v, false)?;
                undo.push((Instant::now() + lasting, event.clone()));
            }
        }
    }
    undo_due(
        stack,
        &mut undo,
        Instant::now() + Duration::from_secs(3_600),
        shared,
    )
    .await?;
    Ok(applied)
}

/// Undoes, at their time, the faults due before `until`.
async fn undo_due(
    stack: &mut Stack,
    undo: &mut Vec<(Instant, Event)>,
    until: Instant,
    shared: &Shared,
) -> anyhow::Result<()> {
    undo.sort_by_key(|(at, _)| *at);
    while let Some((at, _)) = undo.first() {
        if *at > until {
            break;
        }
        let (at, event) = undo.remove(0);
        tokio::time::sleep_until(at.into()).await;
        match event.fault {
            Fault::VenueAcceptThenUnreachable => stack.venue.set_unreachable(false),
            Fault::Latency(l, _) => stack.link(l).set_latency(Duration::ZERO),
            Fault::Stall(l) => stack.link(l).unstall(),
            Fault::Cut(l) => stack.link(l).up(),
            Fault::ClockSkew(_) => stack.clock.set_skew_ms(0),
            Fault::DatabaseRestart => stack.link(Link::ReceiverDatabase).up(),
            Fault::Partition(v) => stack.set_veth(v, true)?,
            Fault::DiskFull(d) => {
                if let Some((_, disk)) = stack.disks.iter().find(|(k, _)| *k == d) {
                    disk.free()?;
                }
                if !undo
                    .iter()
                    .any(|(_, e)| matches!(e.fault, Fault::DiskFull(_)))
                {
                    // The spool's writer may report the full disk a moment after space is back.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    shared.disk_full.store(false, Ordering::SeqCst);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every Prometheus sample at `addr`'s `/metrics`: (series with labels, value).
async fn scrape(http: &reqwest::Client, addr: SocketAddr) -> anyhow::Result<Vec<(String, f64)>> {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect())
}

/// The sum of the samples named `name` whose labels contain `labels`.
fn sample(samples: &[(String, f64)], name: &str, labels: &str) -> f64 {
    samples
        .iter()
        .filter(|(s, _)| {
            s.starts_with(name) && s[name.len()..].starts_with(['{', ' ']) || s == name
        })
        .filter(|(s, _)| s.contains(labels))
        .map(|(_, v)| v)
        .sum()
}

/// `alertgate_receiver_messages_total` by outcome.
async fn receiver_messages(http: &reqwest::Client, addr: SocketAddr) -> BTreeMap<String, u64> {
    let samples = scrape(http, addr).await.unwrap_or_default();
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for (series, v) in &samples {
        if let Some(rest) = series.strip_prefix("alertgate_receiver_messages_total{outcome=\"") {
            if let Some(outcome) = rest.split('"').next() {
                *by.entry(outcome.to_owned()).or_default() += *v as u64;
            }
        }
    }
    by
}

/// The fault schedule seed `seed` draws under `options` (what [`run_seed`] injects).
pub fn schedule_of(seed: u64, options: &Options) -> Vec<Event> {
    let allowed = Allowed {
        disk: options.disk,
        postgres: options.postgres,
        netns: options.netns,
    };
    schedule::draw(&mut Rng::new(seed).fork(2), options.traffic_ms, allowed)
}

/// Runs one seed: stack, traffic and faults, quiescence, the check.
pub async fn run_seed(seed: u64, options: &Options) -> anyhow::Result<(SeedReport, Vec<Planned>)> {
    let began = Instant::now();
    let mut traffic_rng = Rng::new(seed).fork(1);
    let accounts = traffic::accounts(&mut traffic_rng);
    let plans: Vec<Planned> = accounts
        .iter()
        .flat_map(|a| traffic::plan(&mut traffic_rng, seed, a, options.traffic_ms))
        .collect();
    let schedule = schedule_of(seed, options);

    let dir = tempfile::Builder::new()
        .prefix(&format!("alertgate-chaos-{seed}-"))
        .tempdir()?;
    let mut stack = Stack::start(
        dir.path(),
        &accounts,
        options.disk,
        options.postgres,
        options.netns,
    )
    .await?;
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let senders: Vec<_> = accounts
        .iter()
        .map(|a| {
            let mine: Vec<Planned> = plans.iter().filter(|p| &p.account == a).cloned().collect();
            tokio::spawn(traffic::send_all(
                stack.relay_url.clone(),
                mine,
                Arc::clone(&shared),
                started,
            ))
        })
        .collect();
    let applied = inflict(&mut stack, &schedule, &shared, started).await?;
    let mut attempts: Vec<Attempt> = Vec::new();
    for s in senders {
        attempts.extend(s.await?);
    }
    stack.heal().await?;
    shared.disk_full.store(false, Ordering::SeqCst);

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut violations = Vec::new();
    let accepted_ids: Vec<&str> = attempts
        .iter()
        .filter_map(|a| match &a.answer {
            Answer::Status(200, Some(id)) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let deadline = Instant::now() + options.quiet_within;
    let (journal, letters) = loop {
        let pending = scrape(&http, stack.relay_metrics)
            .await
            .map(|s| sample(&s, "alertgate_relay_spool_pending", ""))
            .unwrap_or(f64::NAN);
        let journal = stack.journal().await.unwrap_or_default();
        let letters: Vec<check::Letter> = alertgate_relay::dead_letters::read_all(&stack.spool_dir)
            .unwrap_or_default()
            .into_iter()
            .map(|l| check::Letter {
                id: l.id,
                reason: l.reason,
            })
            .collect();
        let unsettled = journal.unsettled();
        let missing = accepted_ids
            .iter()
            .filter(|id| {
                !journal.messages.contains_key(**id) && !letters.iter().any(|l| l.id == **id)
            })
            .count();
        if pending == 0.0 && unsettled.is_empty() && missing == 0 {
            break (journal, letters);
        }
        if Instant::now() > deadline {
            violations.push(format!(
                "not quiet within {:?} of the last fault: spool pending {pending}, {missing} accepted alert(s) neither journaled nor dead-lettered, unsettled: {unsettled:?}",
                options.quiet_within
            ));
            break (journal, letters);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let relay_samples = scrape(&http, stack.relay_metrics).await.unwrap_or_default();
    // A metric is bumped just after the journal write it counts: give the last ones a moment.
    let mut journal = journal;
    let receiver_messages = if applied.receiver_restarted {
        None
    } else {
        let settle_by = Instant::now() + Duration::from_secs(3);
        loop {
            let counted = receiver_messages(&http, stack.receiver_metrics).await;
            if check::metrics_agree(&counted, &journal) || Instant::now() > settle_by {
                break Some(counted);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(again) = stack.journal().await {
                journal = again;
            }
        }
    };
    let metrics = check::Metrics {
        relay_accepted: sample(
            &relay_samples,
            "alertgate_relay_requests_total",
            "outcome=\"accepted\"",
        ) as u64,
        relay_epoch: shared.relay_epoch.load(Ordering::SeqCst),
        receiver_messages,
    };
    let venue = stack.venue.orders();
    let (disorder, broken) = check::violations(&check::Observed {
        plans: &plans,
        attempts: &attempts,
        letters: &letters,
        journal: &journal,
        venue: &venue,
        metrics: &metrics,
    });
    violations.extend(broken);
    let out_of_order = if options.strict_order {
        violations.extend(disorder);
        Vec::new()
    } else {
        disorder
    };
    let _ = stack.relay.stop().await;
    let _ = stack.receiver.stop().await;
    drop(stack);
    let kept = if options.keep || !violations.is_empty() {
        Some(dir.keep())
    } else {
        drop(dir);
        None
    };
    let report = SeedReport {
        seed,
        schedule,
        alerts: plans.len(),
        sends: attempts.len(),
        accepted: accepted_ids.len(),
        venue_orders: venue.len(),
        dead_letters: letters.len(),
        violations,
        out_of_order,
        kept,
        took: began.elapsed(),
    };
    Ok((report, plans))
}

/// Whether full-disk faults can run here (the harness is root and may mount a tmpfs).
pub fn disk_faults_possible() -> bool {
    disk::can_mount()
}

/// Whether partitions can run here (the harness is root, with `ip netns`).
pub fn partitions_possible() -> bool {
    Namespace::available()
}

/// Faults injected over many seeds, by kind.
pub fn faults_by_kind<'a>(
    reports: impl IntoIterator<Item = &'a SeedReport>,
) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for r in reports {
        for e in &r.schedule {
            *by.entry(e.fault.kind()).or_insert(0) += 1;
        }
    }
    by
}
