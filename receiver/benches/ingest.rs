//! Throughput of the alert pipeline in process: signed deliveries through HTTP, verification, the
//! SQLite journal (group commit, `synchronous=FULL`) and the paper broker.
//!
//! `cargo bench -p alertgate-receiver --bench ingest`. Each iteration sends a burst of
//! concurrent alerts spread over several symbols (orders for one symbol run one at a time, so
//! the spread is what lets group commit batch them).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertgate_receiver::{Receiver, Settings};
use alertgate_shared::{Envelope, HmacSecret, MessageId, Signer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const BURST: usize = 256;
const SYMBOLS: usize = 16;

struct Bench {
    _dir: tempfile::TempDir,
    url: String,
    signer: Signer,
    client: reqwest::Client,
}

async fn start() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let secret = HmacSecret::generate();
    std::fs::write(dir.path().join("whsec"), secret.to_text().expose()).unwrap();
    std::fs::write(dir.path().join("token"), "bench-token").unwrap();
    let d = dir.path().display();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[verify]\nhmac_secrets = [\"file:{d}/whsec\"]\n\
         [store]\npath = \"{d}/receiver.db\"\n[ops]\ntoken = \"file:{d}/token\"\n"
    );
    let settings = Settings::parse(&text, Path::new("bench.toml")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = Receiver::build(settings, listener).await.unwrap();
    let url = format!("http://{}/v1/alerts", receiver.local_addr());
    tokio::spawn(receiver.run_until_stopped(std::future::pending()));
    Bench {
        _dir: dir,
        url,
        signer: Signer::new(vec![], vec![secret]).unwrap(),
        client: reqwest::Client::new(),
    }
}

async fn burst(bench: &Bench) {
    let sends = (0..BURST).map(|i| {
        let alert = json!({"symbol": format!("SYM{}", i % SYMBOLS), "action": "buy", "quantity": "1", "price": "10"});
        let body = Envelope::new(
            "main",
            time::OffsetDateTime::now_utc(),
            "52.89.214.238".parse().unwrap(),
            alert.as_object().unwrap().clone(),
        )
        .to_bytes();
        let id = MessageId::generate().to_string();
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let request = bench
            .client
            .post(&bench.url)
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", bench.signer.sign(&id, ts, &body))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success());
        }
    });
    futures_util::future::join_all(sends).await;
}

fn ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bench = Arc::new(runtime.block_on(start()));
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(BURST as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("signed_alerts_to_paper_fills", |b| {
        b.iter_custom(|iterations| {
            let started = Instant::now();
            for _ in 0..iterations {
                runtime.block_on(burst(&bench));
            }
            started.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
