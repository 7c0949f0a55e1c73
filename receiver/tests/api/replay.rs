//! `alertgate-receiver replay`: journaled alerts judged again under a tightened config.

use std::process::Command;

use alertgate_testkit::loopback;

use crate::helpers::{buy, spawn_in, Options, Workdir, BIN};

#[tokio::test]
async fn a_tightened_max_quantity_is_replayed_over_the_journal_and_places_nothing() {
    let options = Options::default();
    let work = std::sync::Arc::new(Workdir::new(&options));
    let app = spawn_in(work.clone(), &options).await;
    let mut ids = Vec::new();
    for q in ["1", "2", "5"] {
        let (id, a) = app.send(&buy(q)).await;
        assert_eq!(a.outcome(), "filled");
        ids.push(id);
    }
    let (bad, invalid) = app
        .send(&serde_json::json!({"symbol": "BINANCE:BTCUSDT"}))
        .await;
    assert_eq!(invalid.outcome(), "invalid");
    let orders_before = app.all_orders().await.len();
    app.stop().await;

    let tightened = Options::configured(|s| s.risk.max_quantity = Some("3".parse().unwrap()));
    let config = work.write_config(&tightened, loopback(0));
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = Command::new(BIN)
        .args(["replay", "--config"])
        .arg(&config)
        .args(["--since", &since])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("{}  was accepted  would be rejected (max_quantity)", ids[2]),
        "{text}"
    );
    assert!(
        !text.contains(&bad),
        "an alert invalid before is invalid still: {text}"
    );
    assert_eq!(
        lines[1],
        format!("1 of 4 alerts since {since} would be decided differently (nothing was placed)")
    );

    let app = spawn_in(work.clone(), &options).await;
    assert_eq!(
        app.all_orders().await.len(),
        orders_before,
        "replay placed nothing"
    );
    app.stop().await;
}
