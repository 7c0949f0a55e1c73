//! Journal cost per alert on a real on-disk SQLite file (WAL, `synchronous=FULL`): admitting a new
//! message, catching a repeated `webhook-id`, catching a repeated idempotency key within the
//! dedupe window, and a burst of concurrent admissions that group commit turns into few fsyncs.
//!
//! `cargo bench -p alertgate-receiver --bench journal`. The database lives under the target
//! folder (a real disk, not a tmpfs, so every commit pays a real fsync).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::journal::{Admission, Journal, NewMessage, Outcome, SqliteJournal};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const WINDOW_MS: i64 = 300_000;
const ENVELOPE: &[u8] = br#"{"type":"tradingview.alert","account":"main","received_at":"2026-11-23T07:00:00.000Z","source_ip":"52.89.214.238","alert":{"id":"sma-2026-11-23T07:00:00Z","symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"0.01","price":"42000.5"}}"#;

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

fn message(id: String, key: String) -> NewMessage {
    let now = now_ms();
    NewMessage {
        id,
        account: Some("main".into()),
        idempotency_key: Some(key),
        received_at_ms: Some(now),
        envelope: bytes::Bytes::from_static(ENVELOPE),
        outcome: Outcome::Pending,
        reason: None,
        now_ms: now,
        dedupe_since_ms: now - WINDOW_MS,
        keys: vec![("main".into(), "BTCUSDT".into())],
        lease_until_ms: now,
    }
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let journal = Arc::new(
        SqliteJournal::open(&dir.path().join("journal.db"), Duration::from_secs(2)).unwrap(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seq = AtomicU64::new(0);
    let next = || seq.fetch_add(1, Ordering::Relaxed);

    let mut group = c.benchmark_group("journal");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(5));

    // One alert at a time: every admission is its own transaction and fsync.
    group.throughput(Throughput::Elements(1));
    group.bench_function("admit_new", |b| {
        b.iter(|| {
            let n = next();
            let admitted = rt
                .block_on(journal.admit(message(format!("msg_new_{n}"), format!("key-{n}"))))
                .unwrap();
            assert!(matches!(admitted, Admission::New(ref r) if r.outcome == Outcome::Pending));
        })
    });

    // A relay retry: the same webhook-id again; nothing is written.
    rt.block_on(journal.admit(message("msg_seen".into(), "key-seen".into())))
        .unwrap();
    group.bench_function("admit_seen_id", |b| {
        b.iter(|| {
            let admitted = rt
                .block_on(journal.admit(message("msg_seen".into(), "key-seen".into())))
                .unwrap();
            assert!(matches!(admitted, Admission::Seen(_)));
        })
    });

    // A new id whose idempotency key was journaled within the window: recorded as `duplicate`.
    rt.block_on(journal.admit(message("msg_key_first".into(), "key-repeated".into())))
        .unwrap();
    group.bench_function("admit_duplicate_key", |b| {
        b.iter(|| {
            let n = next();
            let admitted = rt
                .block_on(journal.admit(message(format!("msg_dup_{n}"), "key-repeated".into())))
                .unwrap();
            assert!(matches!(admitted, Admission::New(ref r) if r.outcome == Outcome::Duplicate));
        })
    });

    // 64 concurrent admissions, as under load: group commit shares fsyncs between them.
    const BURST: u64 = 64;
    group.throughput(Throughput::Elements(BURST));
    group.bench_function("admit_new_burst_64", |b| {
        b.iter_batched(
            || {
                (0..BURST)
                    .map(|_| {
                        let n = next();
                        message(format!("msg_burst_{n}"), format!("key-{n}"))
                    })
                    .collect::<Vec<_>>()
            },
            |messages| {
                rt.block_on(async {
                    let calls: Vec<_> = messages.into_iter().map(|m| journal.admit(m)).collect();
                    for call in calls {
                        assert!(matches!(call.await.unwrap(), Admission::New(_)));
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(journal, benches);
criterion_main!(journal);
