//! Several receivers and several relays on one PostgreSQL database (issue 15, DESIGN.md section
//! 15), as real processes: two relays, each with `forward.urls` listing three receivers in a
//! different order, the receivers sharing one schema on a PostgreSQL server of the test's own,
//! reached through a proxy the test can cut. Alerts flow while receivers are SIGKILLed (twice)
//! and restarted, while PostgreSQL itself crashes and restarts, and while it is unreachable;
//! TradingView's resends land on the other relay. Afterwards the journal itself (queried in
//! PostgreSQL) must hold exactly one filled order per accepted alert, and the orders of each
//! (account, symbol) in the order the relays accepted their alerts.
//!
//! `several_receivers_throughput` (ignored) measures alerts per second through one relay into
//! one, two and three receivers on PostgreSQL, next to one on SQLite, for BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertgate_e2e::config::{self, ReceiverSettings, RelaySettings};
use alertgate_e2e::{eventually, free_addr, keygen, service, Ready, Service, TradingView};
use alertgate_receiver::config::StoreKind;
use alertgate_relay::config::AccountSettings;
use alertgate_shared::SecretRef;
use alertgate_testkit::postgres::{PrivateServer, TestSchema};
use alertgate_testkit::proxy::Proxy;
use serde_json::json;
use tokio::sync::Semaphore;

/// Relay accounts and the secrets their alerts carry (from the e2e environment).
const ACCOUNTS: [(&str, &str, &str); 2] = [
    ("main", "E2E_SECRET_MAIN", alertgate_e2e::SECRET),
    ("desk", "E2E_SECRET_NEXT", "e2e-secret-main-0123456789-next"),
];
/// TradingView tickers and the venue symbols the receivers map them to.
const SYMBOLS: [(&str, &str); 6] = [
    ("BINANCE:BTCUSDT", "BTCUSDT"),
    ("BINANCE:ETHUSDT", "ETHUSDT"),
    ("BINANCE:SOLUSDT", "SOLUSDT"),
    ("BINANCE:BNBUSDT", "BNBUSDT"),
    ("BINANCE:XRPUSDT", "XRPUSDT"),
    ("BINANCE:ADAUSDT", "ADAUSDT"),
];
/// Alerts sent at once (TradingView fires alerts of many charts concurrently).
const SENDERS: usize = 8;

/// Where PostgreSQL listens for the proxy (the host and port of the kit's test database).
fn postgres_addr() -> SocketAddr {
    let base = alertgate_testkit::postgres::base_url();
    let host = base
        .split_once('@')
        .map_or(base.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:5432");
    host.parse()
        .unwrap_or_else(|_| "127.0.0.1:5432".parse().unwrap())
}

/// Receivers on one schema and relays forwarding to them, all running.
struct Cluster {
    dir: tempfile::TempDir,
    schema: TestSchema,
    /// A PostgreSQL server of this test's own, when it restarts the database (dropped after the
    /// schema).
    server: Option<PrivateServer>,
    /// Between the receivers and PostgreSQL; `None` when they connect directly (or use SQLite).
    proxy: Option<Proxy>,
    receivers: Vec<Service>,
    relays: Vec<Service>,
    relay_configs: Vec<RelaySettings>,
    http: reqwest::Client,
}

/// A receiver on the paper broker with limits nothing here reaches, on the shared store.
fn receiver_settings(root: &Path, store: &StoreChoice) -> anyhow::Result<ReceiverSettings> {
    let key = SecretRef::File(root.join("relay-signing.pub"));
    let mut s = config::receiver(vec![key], &root.join("receiver.db"));
    s.server.listen = free_addr()?;
    s.risk.max_quantity = Some("1000".parse()?);
    s.risk.max_notional = Some("100000000".parse()?);
    s.risk.max_orders_per_minute = Some(1_000_000);
    for (ticker, symbol) in SYMBOLS {
        s.symbols.insert(ticker.to_owned(), symbol.to_owned());
    }
    // A dead receiver's execution is taken over within a few seconds.
    s.executor.lease_seconds = 3;
    s.executor.resume_interval_ms = 250;
    s.executor.resume_after_seconds = 1;
    if let StoreChoice::Postgres { url_file } = store {
        s.store.kind = StoreKind::Postgres;
        s.store.url = Some(SecretRef::File(url_file.clone()));
        s.store.path = PathBuf::new();
        s.store.pool_size = 4;
    }
    Ok(s)
}

/// A relay with both accounts, forwarding to `urls` in that order.
fn relay_settings(root: &Path, name: &str, urls: Vec<String>) -> anyhow::Result<RelaySettings> {
    let mut s = config::relay(
        "",
        SecretRef::Env(ACCOUNTS[0].1.into()),
        SecretRef::File(root.join("relay-signing.key")),
        &root.join(format!("{name}-spool")),
    );
    s.accounts = ACCOUNTS
        .iter()
        .map(|(id, env, _)| AccountSettings {
            id: (*id).into(),
            secrets: vec![SecretRef::Env((*env).into())],
        })
        .collect();
    s.forward.url = String::new();
    s.forward.urls = urls;
    // Retries come back quickly once a receiver or the database does.
    s.forward.backoff_initial_ms = 100;
    s.forward.backoff_max_ms = 500;
    s.server.listen = free_addr()?;
    s.metrics.listen = free_addr()?;
    Ok(s)
}

enum StoreChoice {
    Sqlite,
    Postgres { url_file: PathBuf },
}

impl Cluster {
    /// `receivers` receivers (on PostgreSQL through a proxy when `postgres`, else one SQLite
    /// receiver) and one relay per entry of `orders`, listing the receivers in that order.
    /// With `private`, the database is a server of the test's own, which it may restart.
    async fn start(
        receivers: usize,
        postgres: bool,
        proxied: bool,
        private: bool,
        orders: &[Vec<usize>],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("alertgate-several-")
            .tempdir()?;
        let root = dir.path().to_path_buf();
        keygen(&root.join("relay-signing"))?;
        let server = match private {
            true => Some(PrivateServer::start()?),
            false => None,
        };
        let schema = match &server {
            Some(server) => TestSchema::create_on(&server.url()).await?,
            None => TestSchema::create().await?,
        };
        let database = server
            .as_ref()
            .map_or_else(postgres_addr, PrivateServer::addr);
        let proxy = match proxied {
            true => Some(Proxy::start(database).await?),
            false => None,
        };
        let store = match postgres {
            true => {
                let url_file = root.join("database-url");
                let url = match &proxy {
                    Some(p) => schema.url_via(p.addr),
                    None => schema.url.clone(),
                };
                std::fs::write(&url_file, url)?;
                StoreChoice::Postgres { url_file }
            }
            false => StoreChoice::Sqlite,
        };
        let mut services = Vec::new();
        let mut receiver_addrs = Vec::new();
        for i in 0..receivers {
            let settings = receiver_settings(&root, &store)?;
            let path = root.join(format!("receiver-{i}.toml"));
            config::write(&path, &settings)?;
            receiver_addrs.push(settings.server.listen);
            services.push(service(
                &format!("receiver-{i}"),
                "alertgate-receiver",
                &path,
                Ready::Http(settings.server.listen),
            )?);
        }
        // The first migrates the schema; the others find it current.
        for receiver in &mut services {
            receiver.start().await?;
        }
        let mut relays = Vec::new();
        let mut relay_configs = Vec::new();
        for (r, order) in orders.iter().enumerate() {
            let urls = order
                .iter()
                .map(|&i| format!("http://{}/v1/alerts", receiver_addrs[i]))
                .collect();
            let settings = relay_settings(&root, &format!("relay-{r}"), urls)?;
            let path = root.join(format!("relay-{r}.toml"));
            config::write(&path, &settings)?;
            let mut relay = service(
                &format!("relay-{r}"),
                "alertgate-relay",
                &path,
                Ready::Http(settings.server.listen),
            )?;
            relay.start().await?;
            relays.push(relay);
            relay_configs.push(settings);
        }
        Ok(Self {
            dir,
            schema,
            server,
            proxy,
            receivers: services,
            relays,
            relay_configs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// The relay's webhook URL for `account` (with several accounts the path names it).
    fn webhook(&self, relay: usize, account: usize) -> String {
        format!(
            "http://{}/webhook/{}",
            self.relay_configs[relay].server.listen, ACCOUNTS[account].0
        )
    }

    /// `alertgate_relay_spool_pending` of every relay, summed.
    async fn spool_pending(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for relay in &self.relay_configs {
            let text = self
                .http
                .get(format!("http://{}/metrics", relay.metrics.listen))
                .send()
                .await?
                .text()
                .await?;
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix("alertgate_relay_spool_pending "))
                .ok_or_else(|| anyhow::anyhow!("no alertgate_relay_spool_pending"))?;
            total += value.trim().parse::<u64>()?;
        }
        Ok(total)
    }

    /// Waits until every relay's spool is empty and no message is still executing.
    async fn quiesce(&self, within: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        eventually("quiescence", within, || async {
            let spooled = self.spool_pending().await.ok()?;
            let busy = self
                .count("SELECT COUNT(*) FROM messages WHERE outcome = 'pending'")
                .await
                .ok()?;
            (spooled == 0 && busy == 0).then_some(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", self.logs()))?;
        Ok(started.elapsed())
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(self.schema.query_text(sql).await?[0].parse()?)
    }

    fn logs(&self) -> String {
        self.relays
            .iter()
            .chain(&self.receivers)
            .map(|s| format!("--- {}\n{}", s.log_path().display(), s.log_tail()))
            .collect()
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        for s in self.relays.iter_mut().chain(&mut self.receivers) {
            if s.is_running() {
                s.stop().await?;
            }
        }
        drop(self.dir);
        Ok(())
    }
}

/// Alert `n`: an account, a symbol and a quantity of `n % 5 + 1` thousandths, all from `n`.
fn alert(run: &str, n: usize) -> (usize, usize, u64, serde_json::Value) {
    let account = (n / 2) % ACCOUNTS.len();
    let symbol = n % SYMBOLS.len();
    let thousandths = (n % 5 + 1) as u64;
    let body = json!({
        "secret": ACCOUNTS[account].2,
        "id": format!("{run}-{n}"),
        "symbol": SYMBOLS[symbol].0,
        "action": "buy",
        "quantity": format!("0.{thousandths:03}"),
        "price": "100",
    });
    (account, symbol, thousandths, body)
}

/// What the test sent: per alert, the relays' answers (first the relay it went to, then the
/// other relay's for a resend).
#[derive(Debug, Default)]
struct Sent {
    answers: BTreeMap<usize, Vec<u16>>,
    /// Per alert, when its first request went out and when its answer came back.
    times: BTreeMap<usize, (Instant, Instant)>,
}

/// Sends alerts `range` (alert `n` to relay `n % relays`, `SENDERS` at a time); alerts for which
/// `resend(n)` also go to the next relay once the first answer is in. Counts progress in `done`.
async fn send(
    cluster: &Cluster,
    run: &str,
    range: std::ops::Range<usize>,
    resend: impl Fn(usize) -> bool,
    done: &AtomicUsize,
) -> Sent {
    let slots = Arc::new(Semaphore::new(SENDERS));
    let tv = TradingView::new();
    let relays = cluster.relays.len();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = Sent::default();
    for n in range {
        let permit = slots.clone().acquire_owned().await.expect("open semaphore");
        let (account, _, _, body) = alert(run, n);
        let first = cluster.webhook(n % relays, account);
        let again = resend(n).then(|| cluster.webhook((n + 1) % relays, account));
        let tv = tv.clone();
        tasks.spawn(async move {
            let mut answers = Vec::new();
            let started = Instant::now();
            let mut answered = started;
            for url in std::iter::once(first).chain(again) {
                let status = tv
                    .post(&url, body.to_string())
                    .await
                    .map_or(0, |a| a.status);
                if answers.is_empty() {
                    answered = Instant::now();
                }
                answers.push(status);
            }
            drop(permit);
            (n, answers, (started, answered))
        });
        done.fetch_add(1, Ordering::SeqCst);
        while let Some(joined) = tasks.try_join_next() {
            let (n, answers, times) = joined.expect("a sender task");
            sent.answers.insert(n, answers);
            sent.times.insert(n, times);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let (n, answers, times) = joined.expect("a sender task");
        sent.answers.insert(n, answers);
        sent.times.insert(n, times);
    }
    sent
}

/// Waits until `done` reaches `n`.
async fn reached(done: &AtomicUsize, n: usize) {
    while done.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Message ids `pending` right now: executions a fault may interrupt.
async fn pending_now(schema: &TestSchema) -> BTreeSet<String> {
    schema
        .query_text("SELECT id FROM messages WHERE outcome = 'pending'")
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Alerts sent by the CI test (500 fit in well under a minute with debug binaries on 2 cores).
const ALERTS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_through_two_relays_into_three_receivers_survive_killed_receivers_a_database_restart_and_outage(
) {
    // Receiver 0 is relay 0's first choice and relay 1's last.
    let orders = [vec![0, 1, 2], vec![1, 2, 0]];
    let mut cluster = Cluster::start(3, true, true, true, &orders).await.unwrap();
    let done = &AtomicUsize::new(0);
    // Every tenth alert is resent to the other relay, as TradingView's retry would land there.
    let resend = |n: usize| n % 10 == 3;

    let mut receivers = std::mem::take(&mut cluster.receivers);
    let proxy = cluster.proxy.take().expect("the database proxy");
    let server = cluster.server.take().expect("the test's own PostgreSQL");
    let schema = &cluster.schema;
    let traffic = send(&cluster, "several", 0..ALERTS, resend, done);
    let faults = async move {
        let mut disturbed = BTreeSet::new();
        reached(done, ALERTS / 5).await;
        receivers[0].kill9().unwrap();
        disturbed.extend(pending_now(schema).await);
        reached(done, ALERTS * 3 / 10).await;
        receivers[0].start().await.unwrap();
        // PostgreSQL itself crashes and comes back (recovering from its WAL); every receiver's
        // connections die with it.
        reached(done, ALERTS * 2 / 5).await;
        disturbed.extend(pending_now(schema).await);
        server.crash_restart().unwrap();
        reached(done, ALERTS * 11 / 20).await;
        proxy.down();
        // The outage lasts a while of wall time: the receivers' pools time out, the relays back off.
        tokio::time::sleep(Duration::from_secs(2)).await;
        disturbed.extend(pending_now(schema).await);
        proxy.up();
        reached(done, ALERTS * 7 / 10).await;
        receivers[1].kill9().unwrap();
        disturbed.extend(pending_now(schema).await);
        reached(done, ALERTS * 4 / 5).await;
        receivers[1].start().await.unwrap();
        (receivers, proxy, server, disturbed)
    };
    let (sent, (receivers, proxy, server, disturbed)) = tokio::join!(traffic, faults);
    cluster.receivers = receivers;
    cluster.proxy = Some(proxy);
    cluster.server = Some(server);

    // About 45 s with debug binaries on 2 shared cores; the deadline leaves room for a busier machine.
    let drain = cluster.quiesce(Duration::from_secs(150)).await.unwrap();
    println!(
        "{ALERTS} alerts, {} resends; drained {drain:?} after the last answer; {} executions \
         pending at a fault",
        sent.answers.values().filter(|a| a.len() == 2).count(),
        disturbed.len()
    );
    check(&cluster, &sent, &disturbed).await;
    cluster.stop().await.unwrap();
}

/// The journal after the run, against what the relays accepted.
async fn check(cluster: &Cluster, sent: &Sent, disturbed: &BTreeSet<String>) {
    let schema = &cluster.schema;
    let accepted: BTreeSet<usize> = sent
        .answers
        .iter()
        .filter(|(_, a)| a[0] == 200)
        .map(|(n, _)| *n)
        .collect();
    let refused: Vec<_> = sent.answers.iter().filter(|(_, a)| a[0] != 200).collect();
    assert!(
        refused.is_empty(),
        "the relays accept while receivers or the database are down: {refused:?}"
    );
    let deliveries: usize = sent
        .answers
        .values()
        .map(|a| a.iter().filter(|&&s| s == 200).count())
        .sum();

    // Every delivery a relay accepted was journaled once: one message per accept.
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM messages")
            .await
            .unwrap(),
        deliveries as i64,
        "one message per accepted delivery\n{}",
        cluster.logs()
    );
    // Per idempotency key: one filled message, the resend recorded as `duplicate`.
    let outcomes = schema
        .query_text(
            "SELECT account || '|' || idempotency_key || '|' || \
             string_agg(outcome, ',' ORDER BY outcome) FROM messages GROUP BY account, idempotency_key",
        )
        .await
        .unwrap();
    let mut by_key = BTreeMap::new();
    for row in &outcomes {
        let mut parts = row.splitn(3, '|');
        let (account, key, list) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        by_key.insert((account.to_owned(), key.to_owned()), list.to_owned());
    }
    for &n in &accepted {
        let (account, _, _, body) = alert("several", n);
        let key = (
            ACCOUNTS[account].0.to_owned(),
            body["id"].as_str().unwrap().to_owned(),
        );
        let expected = match sent.answers[&n].get(1) {
            Some(200) => "duplicate,filled",
            _ => "filled",
        };
        assert_eq!(
            by_key.get(&key).map(String::as_str),
            Some(expected),
            "alert {n}: its messages"
        );
    }
    assert_eq!(
        by_key.len(),
        accepted.len(),
        "no message for an alert not sent"
    );

    // One filled order per accepted alert, placed at the venue once.
    let orders = schema
        .query_text(
            "SELECT m.account || '|' || m.idempotency_key || '|' || o.status || '|' || \
             o.client_order_id || '|' || COALESCE(p.status, 'missing') \
             FROM orders o JOIN messages m ON m.id = o.message_id \
             LEFT JOIN paper_orders p ON p.client_order_id = o.client_order_id",
        )
        .await
        .unwrap();
    let mut per_alert: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in &orders {
        let (key, rest) = row.split_once('|').unwrap();
        let (id, rest) = rest.split_once('|').unwrap();
        per_alert
            .entry(format!("{key}|{id}"))
            .or_default()
            .push(rest.to_owned());
    }
    assert_eq!(per_alert.len(), accepted.len(), "an order for every alert");
    for (alert, rows) in &per_alert {
        assert_eq!(rows.len(), 1, "{alert}: one order, not {rows:?}");
        let fields: Vec<&str> = rows[0].split('|').collect();
        assert_eq!(fields[0], "filled", "{alert}: {rows:?}");
        assert_eq!(
            fields[2], "filled",
            "{alert}: the venue filled it: {rows:?}"
        );
    }
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM paper_orders")
            .await
            .unwrap(),
        accepted.len() as i64,
        "the venue saw one order per alert (no doubled client order id)"
    );

    // One at a time per (account, symbol) across receivers: every fill moved the position once,
    // none lost to another receiver's concurrent update.
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    for &n in &accepted {
        let (account, symbol, thousandths, _) = alert("several", n);
        *expected
            .entry((ACCOUNTS[account].0.to_owned(), SYMBOLS[symbol].1.to_owned()))
            .or_default() += thousandths;
    }
    let positions = schema
        .query_text(
            "SELECT account || '|' || symbol || '|' || (quantity::numeric * 1000)::bigint \
             FROM positions",
        )
        .await
        .unwrap();
    let actual: BTreeMap<(String, String), u64> = positions
        .iter()
        .map(|row| {
            let f: Vec<&str> = row.split('|').collect();
            ((f[0].to_owned(), f[1].to_owned()), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(actual, expected, "positions: the sum of each key's fills");

    // Order per (account, symbol): an alert answered 200 before another of its key was sent was
    // accepted first (by the same relay: alerts of one key alternate accounts, never relays), so
    // its order reaches the venue first: the relay delivers them one after the other and the
    // receivers execute them in arrival order, whichever receiver takes them. Also when a fault
    // interrupted the earlier one (pending when a receiver or the database died): a later
    // message of its key waits for it (RELIABILITY.md, "Found", item 8). Venue order is the
    // paper book's placement time (then the journal's order).
    let sequence = schema
        .query_text(
            "SELECT m.idempotency_key || ' message ' || m.seq || ' order ' || o.seq || ' ' || \
             o.account || ' ' || o.symbol || ' ' || m.id FROM orders o \
             JOIN messages m ON m.id = o.message_id \
             JOIN paper_orders p ON p.client_order_id = o.client_order_id \
             ORDER BY p.created_at, o.seq",
        )
        .await
        .unwrap();
    let n_of = |row: &str| -> usize {
        let key = row.split(' ').next().unwrap();
        key.rsplit('-').next().unwrap().parse().unwrap()
    };
    let place: BTreeMap<usize, usize> = sequence
        .iter()
        .enumerate()
        .map(|(i, row)| (n_of(row), i))
        .collect();
    let id_of = |n: &usize| sequence[place[n]].rsplit(' ').next().unwrap().to_owned();
    let mut pairs = 0;
    let mut inverted = Vec::new();
    for &a in &accepted {
        for &b in &accepted {
            let (key_a, key_b) = (alert("several", a), alert("several", b));
            // A resend also went to the other relay, which may deliver its copy first: relays
            // keep the order of what each accepted, not of each other's.
            let resent = |n: usize| sent.answers[&n].len() > 1;
            if (key_a.0, key_a.1) != (key_b.0, key_b.1)
                || sent.times[&a].1 >= sent.times[&b].0
                || resent(a)
                || resent(b)
            {
                continue;
            }
            pairs += 1;
            if place[&a] < place[&b] {
                continue;
            }
            inverted.push((a, b));
        }
    }
    let interrupted = inverted
        .iter()
        .filter(|(a, b)| disturbed.contains(&id_of(a)) || disturbed.contains(&id_of(b)))
        .count();
    println!(
        "per (account, symbol): {pairs} pairs of alerts accepted one after the other; \
         {} out of order ({interrupted} of them where a fault interrupted one)",
        inverted.len()
    );
    assert!(
        pairs > ALERTS,
        "the traffic orders enough alerts to check: {pairs}"
    );
    let shown: Vec<String> = inverted
        .iter()
        .take(5)
        .map(|(a, b)| {
            let t0 = sent.times[a].0;
            let ms = |t: Instant| t.duration_since(t0).as_millis();
            format!(
                "{a} (sent +0 ms, answered +{} ms; {}) before {b} (sent +{} ms; {})",
                ms(sent.times[a].1),
                sequence[place[a]],
                ms(sent.times[b].0),
                sequence[place[b]]
            )
        })
        .collect();
    if let Some((a, b)) = inverted.first() {
        for n in [a, b] {
            let id = sequence[place[n]].rsplit(' ').next().unwrap().to_owned();
            for entry in std::fs::read_dir(cluster.dir.path()).unwrap().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    for line in text.lines().filter(|l| l.contains(&id)) {
                        println!("{}: {line}", path.display());
                    }
                }
            }
        }
    }
    assert!(
        inverted.is_empty(),
        "{} pairs of orders out of acceptance order (earlier, later): {inverted:?}\n{}\n{}",
        inverted.len(),
        shown.join("\n"),
        cluster.logs()
    );
}

/// Alerts per second through one relay into 1, 2 and 3 receivers on PostgreSQL (directly, no
/// proxy) and into one receiver on SQLite, with the binaries this test was built with.
/// `cargo test -p alertgate-e2e --test several -- --ignored --nocapture` (add `--release` for
/// release binaries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for BENCHMARKS.md, not a check"]
async fn several_receivers_throughput() {
    let alerts: usize = std::env::var("SEVERAL_BENCH_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    println!("| store | receivers | alerts | accepted in | alerts/s accepted | drained after | alerts/s end to end |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (postgres, receivers) in [(false, 1), (true, 1), (true, 2), (true, 3)] {
        let order: Vec<usize> = (0..receivers).collect();
        let cluster = Cluster::start(receivers, postgres, false, false, &[order])
            .await
            .unwrap();
        let done = AtomicUsize::new(0);
        let started = Instant::now();
        let sent = send(&cluster, "bench", 0..alerts, |_| false, &done).await;
        let accepted = started.elapsed();
        assert!(sent.answers.values().all(|a| a[0] == 200));
        // Filled orders land in the journal: wait for all of them.
        let drained = match postgres {
            true => {
                cluster.quiesce(Duration::from_secs(300)).await.unwrap();
                eventually("every order", Duration::from_secs(300), || async {
                    let n = cluster
                        .count("SELECT COUNT(*) FROM orders WHERE status = 'filled'")
                        .await
                        .ok()?;
                    (n as usize == alerts).then_some(())
                })
                .await
                .unwrap();
                started.elapsed()
            }
            false => {
                eventually("an empty spool", Duration::from_secs(300), || async {
                    (cluster.spool_pending().await.ok()? == 0).then_some(())
                })
                .await
                .unwrap();
                started.elapsed()
            }
        };
        let rate = |d: Duration| alerts as f64 / d.as_secs_f64();
        println!(
            "| {} | {receivers} | {alerts} | {:.2} s | {:.0} | {:.2} s | {:.0} |",
            if postgres { "postgres" } else { "sqlite" },
            accepted.as_secs_f64(),
            rate(accepted),
            drained.as_secs_f64(),
            rate(drained),
        );
        cluster.stop().await.unwrap();
    }
}
