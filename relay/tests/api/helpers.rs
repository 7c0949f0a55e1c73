//! Test fixtures: a relay on port 0 (in-process or as a real process), a fake receiver on port 0
//! that records every request and can change its answer mid-test, and typed request helpers.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertgate_relay::config::{AccountSettings, Settings};
use alertgate_relay::{Relay, RelayOptions, Reloader};
use alertgate_shared::config::LogFormat;
use alertgate_shared::{Clock, SecretRef, SigningKey, SystemClock, Verifier};
pub use alertgate_testkit::tradingview::Answer;
use alertgate_testkit::{config, free_addr, Ready, Service};
pub use alertgate_testkit::{until, TradingView, WAIT};
use bytes::Bytes;
use http::HeaderMap;
use nix::sys::signal::Signal;
use tempfile::TempDir;
use tokio::net::TcpListener;
use warp::Filter;

/// The TradingView secret of account `main` in every test relay.
pub const SECRET: &str = "s3cret-main";
/// The secret of account `alt`.
pub const ALT_SECRET: &str = "s3cret-alt";

/// One request the fake receiver saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A receiver on port 0 that records bodies and headers and answers with a settable status.
#[derive(Debug, Clone)]
pub struct TestReceiver {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    seen: Arc<Mutex<Vec<Recorded>>>,
    /// Idempotency keys (the alert's `id`) answered 503 whatever the status, until released.
    held: Arc<Mutex<HashSet<String>>>,
}

impl TestReceiver {
    pub async fn spawn() -> Self {
        Self::spawn_on(0).await
    }

    /// A receiver on a given loopback port (0: any).
    pub async fn spawn_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let held = Arc::new(Mutex::new(HashSet::new()));
        let (s, r, h) = (Arc::clone(&status), Arc::clone(&seen), Arc::clone(&held));
        let route = warp::path!("v1" / "alerts")
            .and(warp::post())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(move |headers: HeaderMap, body: Bytes| {
                let key = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["alert"]["id"].as_str().map(str::to_owned));
                let code = match key {
                    Some(k) if h.lock().unwrap().contains(&k) => 503,
                    _ => s.load(Ordering::SeqCst),
                };
                r.lock().unwrap().push(Recorded {
                    headers,
                    body,
                    status: code,
                });
                let mut resp = warp::reply::Response::new(r#"{"outcome":"placed"}"#.into());
                *resp.status_mut() = http::StatusCode::from_u16(code).unwrap();
                if code == 429 || code == 503 {
                    resp.headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static("0"));
                }
                resp
            });
        tokio::spawn(warp::serve(route).incoming(listener).run());
        Self {
            addr,
            status,
            seen,
            held,
        }
    }

    /// Answers 503 to the alert with idempotency key `key` until [`Self::release`].
    pub fn hold(&self, key: &str) {
        self.held.lock().unwrap().insert(key.to_owned());
    }

    /// Answers the alert with idempotency key `key` like every other again.
    pub fn release(&self, key: &str) {
        self.held.lock().unwrap().remove(key);
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/alerts", self.addr)
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn delivered(&self) -> Vec<Recorded> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until at least `n` requests were answered 2xx.
    pub async fn wait_delivered(&self, n: usize) -> Vec<Recorded> {
        until("receiver deliveries", || async {
            self.delivered().len() >= n
        })
        .await;
        self.delivered()
    }

    /// Waits until at least `n` requests arrived, whatever the answer.
    pub async fn wait_received(&self, n: usize) -> Vec<Recorded> {
        until("receiver requests", || async { self.received().len() >= n }).await;
        self.received()
    }
}

/// Files shared by a relay and its restarts: keys, secrets, spool.
#[derive(Debug)]
pub struct Files {
    pub dir: TempDir,
    pub key: SigningKey,
    pub key_path: PathBuf,
}

impl Files {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate();
        let (key_path, _) = key.write_pair(&dir.path().join("signing")).unwrap();
        std::fs::write(dir.path().join("secret-main"), format!("{SECRET}\n")).unwrap();
        std::fs::write(dir.path().join("secret-alt"), ALT_SECRET).unwrap();
        Self { dir, key, key_path }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file_ref(&self, name: &str) -> SecretRef {
        SecretRef::File(self.path().join(name))
    }

    /// Writes a new signing key pair named `name` and returns it with its `file:` reference.
    pub fn new_key(&self, name: &str) -> (SigningKey, SecretRef) {
        let key = SigningKey::generate();
        let (path, _) = key.write_pair(&self.path().join(name)).unwrap();
        (key, SecretRef::File(path))
    }
}

/// Settings for a test relay: the kit's relay defaults (generous limits) with only 127.0.0.1
/// allowed, accounts `main` and `alt`, a short body timeout and quick retries.
pub fn test_settings(files: &Files, receiver: &TestReceiver) -> Settings {
    let mut s = config::relay(
        &receiver.url(),
        files.file_ref("secret-main"),
        SecretRef::File(files.key_path.clone()),
        &files.path().join("spool"),
    );
    s.server.body_timeout_ms = 500;
    s.allowlist.cidrs = vec!["127.0.0.1/32".parse().unwrap()];
    s.accounts.push(AccountSettings {
        id: "alt".into(),
        secrets: vec![files.file_ref("secret-alt")],
    });
    s.forward.timeout_ms = 1_000;
    s.forward.concurrency = 8;
    s.forward.backoff_initial_ms = 20;
    s.forward.backoff_max_ms = 50;
    s
}

/// A relay running in this test's runtime.
#[derive(Debug)]
pub struct TestRelay {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub client: reqwest::Client,
    pub receiver: TestReceiver,
    pub files: Arc<Files>,
    pub settings: Settings,
    pub reloader: Reloader,
    pub clock: Arc<dyn Clock>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A relay with the default test settings.
pub async fn spawn_relay() -> TestRelay {
    spawn_relay_with(|_, _| {}).await
}

/// A relay whose settings `configure` adjusts.
pub async fn spawn_relay_with(configure: impl FnOnce(&mut Settings, &Files)) -> TestRelay {
    let files = Arc::new(Files::new());
    let receiver = TestReceiver::spawn().await;
    let mut settings = test_settings(&files, &receiver);
    configure(&mut settings, &files);
    start(settings, files, receiver, Arc::new(SystemClock)).await
}

/// Starts a relay on fresh port-0 listeners.
pub async fn start(
    settings: Settings,
    files: Arc<Files>,
    receiver: TestReceiver,
    clock: Arc<dyn Clock>,
) -> TestRelay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = RelayOptions {
        clock: Arc::clone(&clock),
        metrics_listener: Some(metrics),
    };
    let relay = Relay::build_with(settings.clone(), listener, options)
        .await
        .unwrap();
    let addr = relay.local_addr();
    let metrics_addr = relay.metrics_addr().unwrap();
    let reloader = relay.reloader();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestRelay {
        addr,
        metrics_addr,
        client: client(None),
        receiver,
        files,
        settings,
        reloader,
        clock,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A plain HTTP client, optionally bound to a local address.
pub fn client(local: Option<IpAddr>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5));
    if let Some(ip) = local {
        b = b.local_address(ip);
    }
    b.build().unwrap()
}

/// Reads a response.
pub async fn answer(resp: reqwest::Response) -> Answer {
    Answer::read(resp).await.unwrap()
}

impl TestRelay {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` to `path` as TradingView would.
    pub async fn post_to(&self, path: &str, body: impl Into<String>) -> Answer {
        TradingView::new()
            .post(&self.url(path), body)
            .await
            .unwrap()
    }

    /// POSTs to `/webhook`.
    pub async fn post(&self, body: impl Into<String>) -> Answer {
        self.post_to("/webhook", body).await
    }

    /// POSTs a valid alert for `main` with idempotency key `id`.
    pub async fn post_alert(&self, id: &str) -> Answer {
        self.post(alert(id)).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        answer(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("http://{}/metrics", self.metrics_addr))
            .send()
            .await
            .unwrap();
        resp.text().await.unwrap()
    }

    /// A verifier trusting this relay's initial key.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(vec![self.files.key.verifying_key()], vec![], 300).unwrap()
    }

    pub fn dead_letters(&self) -> Vec<serde_json::Value> {
        read_dead_letters(&self.settings.spool.dir)
    }

    /// Stops the relay and waits until it has.
    pub async fn stop(mut self) -> (Settings, Arc<Files>, TestReceiver, Arc<dyn Clock>) {
        self.shutdown().await;
        (
            self.settings.clone(),
            Arc::clone(&self.files),
            self.receiver.clone(),
            Arc::clone(&self.clock),
        )
    }

    /// Stops and starts again on the same spool.
    pub async fn restart(self) -> TestRelay {
        let (settings, files, receiver, clock) = self.stop().await;
        start(settings, files, receiver, clock).await
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// Dead letters written under a spool directory.
pub fn read_dead_letters(spool_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(spool_dir.join("dead").join("dead-letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A TradingView-style alert for account `main`.
pub fn alert(id: &str) -> String {
    serde_json::json!({
        "secret": SECRET, "account": "main", "id": id, "symbol": "BINANCE:BTCUSDT", "action": "buy",
        "quantity": "0.01", "price": "42000.5"
    })
    .to_string()
}

/// The value of a metric line `name{labels} value`, or 0.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// The relay binary `cargo test` built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_alertgate-relay");

/// A relay run from the built binary (the kit's process harness), with the settings it was
/// started with: change them, [`write_config`](Self::write_config), then SIGHUP.
#[derive(Debug)]
pub struct RelayProcess {
    pub service: Service,
    pub addr: SocketAddr,
    pub settings: Settings,
}

impl RelayProcess {
    /// Writes `settings` to `dir/relay.toml` with JSON logs at `level` and a free port (the binary
    /// binds its own address), and starts the relay on it with its open-files limit raised.
    pub async fn start(dir: &Path, settings: &Settings, level: &str) -> Self {
        let mut settings = settings.clone();
        settings.server.listen = free_addr().unwrap();
        settings.log.format = LogFormat::Json;
        settings.log.level = level.to_owned();
        let addr = settings.server.listen;
        let path = dir.join("relay.toml");
        config::write(&path, &settings).unwrap();
        let mut service =
            Service::new("relay", BIN, path, Ready::Http(addr)).raise_open_files_limit();
        service.start().await.unwrap();
        Self {
            service,
            addr,
            settings,
        }
    }

    /// Rewrites the config file from [`settings`](Self::settings).
    pub fn write_config(&self) {
        config::write(self.service.config_path(), &self.settings).unwrap();
    }

    pub fn signal(&self, signal: Signal) {
        self.service.signal(signal).unwrap();
    }

    /// Waits for a log line containing `message` that no earlier wait returned.
    pub async fn wait_line(&mut self, message: &str) -> String {
        self.service.wait_for_log(message, WAIT).await.unwrap()
    }

    /// POSTs to `/webhook` as TradingView would.
    pub async fn post(&self, body: impl Into<String>) -> Answer {
        TradingView::new()
            .post(&format!("http://{}/webhook", self.addr), body)
            .await
            .unwrap()
    }
}
