//! Signing and verification costs: what each forwarded alert pays on both sides.

use alertgate_shared::{Envelope, HmacSecret, Signer, SigningKey, Verifier};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn body() -> Vec<u8> {
    let alert = serde_json::from_str(
        r#"{"secret":"x","symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"0.01","price":"42000.5","id":"sma-2026-11-22T09:00:00Z"}"#,
    )
    .unwrap_or_default();
    let at = time::OffsetDateTime::from_unix_timestamp(1_795_338_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Envelope::new(
        "main",
        at,
        "52.89.214.238".parse().unwrap_or([0, 0, 0, 0].into()),
        alert,
    )
    .to_bytes()
}

fn benches(c: &mut Criterion) {
    let body = body();
    let key = SigningKey::generate();
    let secret = HmacSecret::generate();
    let ed = Signer::new(vec![key.clone()], vec![]).unwrap_or_else(|e| panic!("{e}"));
    let mac = Signer::new(vec![], vec![secret.clone()]).unwrap_or_else(|e| panic!("{e}"));
    let ts = 1_795_338_000;
    c.bench_function("sign_v1a", |b| {
        b.iter(|| ed.sign(black_box("msg_01"), ts, black_box(&body)))
    });
    c.bench_function("sign_v1", |b| {
        b.iter(|| mac.sign(black_box("msg_01"), ts, black_box(&body)))
    });

    let sig = ed.sign("msg_01", ts, &body);
    let one =
        Verifier::new(vec![key.verifying_key()], vec![], 300).unwrap_or_else(|e| panic!("{e}"));
    let others = (0..2).map(|_| SigningKey::generate().verifying_key());
    let three = Verifier::new(others.chain([key.verifying_key()]).collect(), vec![], 300)
        .unwrap_or_else(|e| panic!("{e}"));
    let ts_text = ts.to_string();
    for (name, v) in [("verify_v1a_1_key", &one), ("verify_v1a_3_keys", &three)] {
        c.bench_function(name, |b| {
            b.iter(|| {
                v.verify(
                    Some("msg_01"),
                    Some(&ts_text),
                    Some(&sig),
                    black_box(&body),
                    ts,
                )
            })
        });
    }
    let alert: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&body).unwrap_or_default();
    c.bench_function("envelope_build", |b| {
        b.iter(|| {
            let at = time::OffsetDateTime::UNIX_EPOCH;
            Envelope::new("main", at, [127, 0, 0, 1].into(), black_box(alert.clone())).to_bytes()
        })
    });
}

criterion_group!(group, benches);
criterion_main!(group);
