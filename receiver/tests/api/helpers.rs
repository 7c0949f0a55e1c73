//! `spawn_app()`: a receiver on 127.0.0.1:0 with a real SQLite journal in a tempdir, a manual
//! clock, and a signer holding the keys it trusts, so tests can send properly signed deliveries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alertgate_receiver::config::{MetricsConfig, OpsConfig, StoreKind};
use alertgate_receiver::reconcile::Reconciler;
use alertgate_receiver::{Receiver, Settings};
use alertgate_shared::{
    Clock, Envelope, HmacSecret, ManualClock, MessageId, SecretRef, Signer, SigningKey,
};
use alertgate_testkit::postgres::TestSchema;
use alertgate_testkit::{config, free_addr, loopback, Ready, Service};
use serde_json::{json, Map, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const OPS_TOKEN: &str = "ops-token-for-tests-0123456789";

/// Changes a test makes to the typed settings, after the harness's defaults.
pub type Configure = Arc<dyn Fn(&mut Settings) + Send + Sync>;

/// How a test app is configured.
#[derive(Clone, Default)]
pub struct Options {
    /// Applied to the settings last (`[risk]`, `[broker]`, `[executor]`, ...).
    pub configure: Option<Configure>,
    /// Start of the manual clock (default: the real now).
    pub clock_at_unix: Option<i64>,
    /// Trusted HMAC secret (default: a fresh one).
    pub hmac_secret: Option<String>,
    /// Trusted Ed25519 key (default: a fresh one).
    pub signing_key: Option<String>,
}

impl Options {
    /// The defaults, with `configure` applied to the settings.
    pub fn configured(configure: impl Fn(&mut Settings) + Send + Sync + 'static) -> Self {
        Self {
            configure: Some(Arc::new(configure)),
            ..Self::default()
        }
    }
}

/// A decimal from its text.
pub fn dec(text: &str) -> rust_decimal::Decimal {
    text.parse().unwrap()
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

    /// The settings of a receiver on `listen`: the kit's receiver defaults, this workdir's keys,
    /// journal and ops token, then the options' changes.
    pub fn settings_on(&self, options: &Options, listen: SocketAddr) -> Settings {
        let d = self.path();
        let mut s = config::receiver(vec![SecretRef::File(d.join("relay.pub"))], &self.db_path());
        s.server.listen = listen;
        s.server.max_body_bytes = 4096;
        s.verify.hmac_secrets = vec![SecretRef::File(d.join("whsec"))];
        s.store.busy_timeout_ms = 200;
        // Tests that read the outcome from the answer get it however loaded the machine is;
        // those about the 202 set a short deadline themselves.
        s.executor.inline_deadline_ms = 30_000;
        s.ops = Some(OpsConfig {
            token: SecretRef::File(d.join("ops-token")),
        });
        s.metrics = Some(MetricsConfig {
            listen: loopback(0),
        });
        if let Some(configure) = &options.configure {
            configure(&mut s);
        }
        s.validate().unwrap();
        s
    }

    /// The settings of an in-process receiver (it binds a listener it is given).
    pub fn settings(&self, options: &Options) -> Settings {
        self.settings_on(options, loopback(0))
    }

    /// Writes the settings of a receiver on `listen` to `receiver.toml` and returns its path.
    pub fn write_config(&self, options: &Options, listen: SocketAddr) -> PathBuf {
        let path = self.path().join("receiver.toml");
        config::write(&path, &self.settings_on(options, listen)).unwrap();
        path
    }

    pub fn signer(&self) -> Signer {
        Signer::new(vec![self.key.clone()], vec![self.hmac.clone()]).unwrap()
    }
}

/// `options` plus the store: PostgreSQL at the schema's URL, read from the secret file
/// `database-url` in `work` (a test may point it elsewhere: a proxy, [`TestSchema::url_via`]).
pub fn on_postgres(work: &Workdir, schema: &TestSchema, options: &Options) -> Options {
    let url_file = work.path().join("database-url");
    std::fs::write(&url_file, &schema.url).unwrap();
    let inner = options.configure.clone();
    let mut options = options.clone();
    options.configure = Some(Arc::new(move |s: &mut Settings| {
        s.store.kind = StoreKind::Postgres;
        s.store.url = Some(SecretRef::File(url_file.clone()));
        s.store.path = PathBuf::new();
        s.store.pool_size = 4;
        if let Some(configure) = &inner {
            configure(s);
        }
    }));
    options
}

/// `alertgate_receiver_messages_total{outcome}` in a metrics page (0 when absent).
pub fn messages_counted(metrics: &str, outcome: &str) -> u64 {
    let series = format!("alertgate_receiver_messages_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
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
    /// Runs a reconciliation pass on demand.
    pub reconciler: Reconciler,
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
    let reconciler = receiver.reconciler();
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
        reconciler,
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
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
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
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        body,
        retry_after,
    }
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
        self.deliver_with(id, body, &[]).await
    }

    /// [`Self::deliver`] with more headers (`Prefer: respond-async`, as the relay sends).
    pub async fn deliver_with(&self, id: &str, body: &[u8], extra: &[(&str, String)]) -> Answer {
        let ts = self.clock.now_unix();
        let signature = self.signer.sign(id, ts, body);
        let mut headers = vec![
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", signature),
        ];
        headers.extend(extra.iter().cloned());
        self.post_raw(&headers, body.to_vec()).await
    }

    /// Sends `alert` in a fresh envelope under a fresh id as the relay does, preferring an
    /// answer once it is journaled; returns the id and the answer.
    pub async fn send_async(&self, alert: &Value) -> (String, Answer) {
        let id = MessageId::generate().to_string();
        let prefer = [("prefer", "respond-async".to_owned())];
        let answer = self.deliver_with(&id, &self.envelope(alert), &prefer).await;
        (id, answer)
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

    /// `GET /v1/positions`, as `(account, symbol) → row`.
    pub async fn positions(&self) -> Vec<Value> {
        let a = self.get("/v1/positions", Some(OPS_TOKEN)).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        a.body["positions"].as_array().unwrap().clone()
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

/// A receiver process started from the built binary.
#[derive(Debug)]
pub struct Process {
    pub service: Service,
    pub addr: SocketAddr,
}

pub const BIN: &str = env!("CARGO_BIN_EXE_alertgate-receiver");

/// Starts `alertgate-receiver run` on `work` (on a free port: the binary binds its own address)
/// and waits until `/readyz` answers.
pub async fn start_process(work: &Workdir, options: &Options) -> Process {
    let addr = free_addr().unwrap();
    let config = work.write_config(options, addr);
    let mut service = Service::new("receiver", BIN, config, Ready::Http(addr));
    service.start().await.unwrap();
    Process { service, addr }
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
