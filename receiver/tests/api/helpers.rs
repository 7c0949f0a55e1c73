//! `spawn_app()`: a receiver on 127.0.0.1:0 with a real SQLite journal in a tempdir, a manual
//! clock, and a signer holding the keys it trusts, so tests can send properly signed deliveries.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::{Receiver, Settings};
use alertgate_shared::{Clock, Envelope, HmacSecret, ManualClock, MessageId, Signer, SigningKey};
use serde_json::{json, Map, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const OPS_TOKEN: &str = "ops-token-for-tests-0123456789";

/// How a test app is configured: TOML sections appended to the base config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra TOML (whole sections: `[risk]`, `[broker.paper]`, `[executor]`, ...).
    pub extra_toml: String,
    /// `dedupe.window_seconds` (default 300).
    pub dedupe_window_seconds: Option<u64>,
    /// Start of the manual clock (default: the real now).
    pub clock_at_unix: Option<i64>,
    /// Trusted HMAC secret (default: a fresh one).
    pub hmac_secret: Option<String>,
    /// Trusted Ed25519 key (default: a fresh one).
    pub signing_key: Option<String>,
}

/// Files shared by every start of a receiver on the same journal.
#[derive(Debug)]
pub struct Workdir {
    pub dir: TempDir,
    pub hmac: HmacSecret,
    pub key: SigningKey,
}

impl Workdir {
    pub fn new(options: &Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hmac = match &options.hmac_secret {
            Some(s) => HmacSecret::parse(s).unwrap(),
            None => HmacSecret::generate(),
        };
        let key = match &options.signing_key {
            Some(k) => SigningKey::parse(k).unwrap(),
            None => SigningKey::generate(),
        };
        std::fs::write(dir.path().join("whsec"), hmac.to_text().expose()).unwrap();
        std::fs::write(dir.path().join("relay.pub"), key.verifying_key().to_text()).unwrap();
        std::fs::write(dir.path().join("ops-token"), OPS_TOKEN).unwrap();
        Self { dir, hmac, key }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db_path(&self) -> PathBuf {
        self.path().join("data/receiver.db")
    }

    pub fn kill_switch(&self) -> PathBuf {
        self.path().join("KILL")
    }

    /// The config text for a receiver on `listen`.
    pub fn config(&self, options: &Options, listen: &str) -> String {
        let d = self.path().display();
        format!(
            r#"[server]
listen = "{listen}"
max_body_bytes = 4096
[verify]
public_keys = ["file:{d}/relay.pub"]
hmac_secrets = ["file:{d}/whsec"]
tolerance_seconds = 300
[store]
path = "{d}/data/receiver.db"
busy_timeout_ms = 200
[dedupe]
window_seconds = {window}
[symbols]
"BINANCE:BTCUSDT" = "BTCUSDT"
[ops]
token = "file:{d}/ops-token"
[metrics]
listen = "127.0.0.1:0"
{extra}
"#,
            window = options.dedupe_window_seconds.unwrap_or(300),
            extra = options.extra_toml,
        )
    }

    pub fn settings(&self, options: &Options) -> Settings {
        let text = self.config(options, "127.0.0.1:0");
        Settings::parse(&text, Path::new("test.toml")).unwrap()
    }

    pub fn signer(&self) -> Signer {
        Signer::new(vec![self.key.clone()], vec![self.hmac.clone()]).unwrap()
    }
}

/// A running in-process receiver.
#[derive(Debug)]
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub metrics_addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub signer: Signer,
    pub work: Arc<Workdir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let work = Arc::new(Workdir::new(&options));
    spawn_in(work, &options).await
}

/// Starts a receiver on an existing workdir (same journal).
pub async fn spawn_in(work: Arc<Workdir>, options: &Options) -> TestApp {
    let clock = match options.clock_at_unix {
        Some(t) => ManualClock::at_unix(t),
        None => ManualClock::new(time::OffsetDateTime::now_utc()),
    };
    let settings = work.settings(options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = Receiver::build_with_clock(settings, listener, Arc::new(clock.clone()))
        .await
        .unwrap();
    let addr = receiver.local_addr();
    let metrics_addr = receiver.metrics_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        receiver
            .run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    TestApp {
        addr,
        metrics_addr,
        client: reqwest::Client::new(),
        clock,
        signer: work.signer(),
        work,
        stop: Some(stop),
        task: Some(task),
    }
}

/// An alert for BTCUSDT with a reference price.
pub fn buy(quantity: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": quantity, "price": "100"})
}

/// The answer to a request: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn outcome(&self) -> &str {
        self.body["outcome"].as_str().unwrap_or("")
    }

    pub fn orders(&self) -> &Vec<Value> {
        self.body["orders"].as_array().unwrap()
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, body }
}

/// An envelope as the relay makes it.
pub fn envelope_at(alert: &Value, received_at: time::OffsetDateTime) -> Vec<u8> {
    let map: Map<String, Value> = alert.as_object().unwrap().clone();
    Envelope::new("main", received_at, "52.89.214.238".parse().unwrap(), map).to_bytes()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn envelope(&self, alert: &Value) -> Vec<u8> {
        envelope_at(alert, self.clock.now())
    }

    /// Posts `body` under `id` with the given headers.
    pub async fn post_raw(&self, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let mut request = self
            .client
            .post(self.url("/v1/alerts"))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        answer(request.body(body).send().await.unwrap()).await
    }

    /// Posts `body` as message `id`, signed now with every trusted key.
    pub async fn deliver(&self, id: &str, body: &[u8]) -> Answer {
        let ts = self.clock.now_unix();
        let signature = self.signer.sign(id, ts, body);
        self.post_raw(
            &[
                ("webhook-id", id.to_owned()),
                ("webhook-timestamp", ts.to_string()),
                ("webhook-signature", signature),
            ],
            body.to_vec(),
        )
        .await
    }

    /// Sends `alert` in a fresh envelope under a fresh id; returns the id and the answer.
    pub async fn send(&self, alert: &Value) -> (String, Answer) {
        let id = MessageId::generate().to_string();
        let answer = self.deliver(&id, &self.envelope(alert)).await;
        (id, answer)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.get(self.url(path));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        answer(request.send().await.unwrap()).await
    }

    /// Every order, newest first, through the ops API.
    pub async fn all_orders(&self) -> Vec<Value> {
        let a = self.get("/v1/orders?limit=1000", Some(OPS_TOKEN)).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        a.body["orders"].as_array().unwrap().clone()
    }

    pub async fn message(&self, id: &str) -> Answer {
        self.get(&format!("/v1/messages/{id}"), Some(OPS_TOKEN))
            .await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.metrics_addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the receiver gracefully and waits for it.
    pub async fn stop(mut self) -> Arc<Workdir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.work.clone()
    }
}

/// Polls `check` until it is true (bounded), for work finishing in the background.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A receiver process started from the built binary.
#[derive(Debug)]
pub struct Process {
    pub child: Child,
    pub addr: std::net::SocketAddr,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_alertgate-receiver");

/// Starts `alertgate-receiver run` on `work` and waits until `/healthz` answers.
pub async fn start_process(work: &Workdir, options: &Options) -> Process {
    // The binary binds its own address: take a free port from the OS first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config = work.path().join("receiver.toml");
    std::fs::write(&config, work.config(options, &listen)).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let client = reqwest::Client::new();
    eventually("the receiver process to answer /healthz", || {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    Process { child, addr }
}

/// A client for a process-run receiver, signing with the workdir's keys at real time.
#[derive(Debug)]
pub struct ProcessClient {
    pub addr: std::net::SocketAddr,
    pub signer: Signer,
    pub client: reqwest::Client,
}

impl ProcessClient {
    pub fn new(work: &Workdir, addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            signer: work.signer(),
            client: reqwest::Client::new(),
        }
    }

    pub async fn deliver(&self, id: &str, body: &[u8]) -> Answer {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let response = self
            .client
            .post(format!("http://{}/v1/alerts", self.addr))
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", self.signer.sign(id, ts, body))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        answer(response).await
    }

    pub async fn orders(&self) -> Vec<Value> {
        let response = self
            .client
            .get(format!("http://{}/v1/orders", self.addr))
            .header("authorization", format!("Bearer {OPS_TOKEN}"))
            .send()
            .await
            .unwrap();
        let a = answer(response).await;
        assert_eq!(a.status, 200);
        a.body["orders"].as_array().unwrap().clone()
    }
}
