//! `[accounts.NAME] copies`: one alert also runs for each copy account, scaled and rounded down
//! to the copy venue's lot step, as a message of its own (own client order ids, own routing and
//! risk gates), exactly once across redeliveries and restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use alertgate_receiver::broker::config::{PaperConfig, VenueBroker};
use alertgate_receiver::config::{AccountConfig, CopyConfig, RiskLimits, VenueConfig};
use alertgate_receiver::Settings;
use alertgate_shared::MessageId;
use serde_json::json;

use crate::helpers::{dec, spawn_app_with, spawn_in, Options};

fn paper(name: &str, account: &str, lot_step: Option<&str>) -> VenueConfig {
    VenueConfig {
        name: name.into(),
        exchanges: Vec::new(),
        accounts: vec![account.into()],
        symbols: BTreeMap::new(),
        risk: None,
        broker: VenueBroker::Paper(PaperConfig {
            lot_step: lot_step.map(dec),
            ..PaperConfig::default()
        }),
    }
}

/// `main` on venue `paper-main`, copied at half size to `b` on `paper-b` (lot step 0.001,
/// `max_quantity` 1 there).
fn copied(s: &mut Settings) {
    let mut b = paper("paper-b", "b", Some("0.001"));
    b.risk = Some(RiskLimits {
        max_quantity: Some(dec("1")),
        ..RiskLimits::default()
    });
    s.venues = vec![paper("paper-main", "main", None), b];
    s.accounts = BTreeMap::from([
        (
            "main".to_owned(),
            AccountConfig {
                copies: vec![CopyConfig {
                    account: "b".into(),
                    scale: dec("0.5"),
                }],
            },
        ),
        ("b".to_owned(), AccountConfig::default()),
    ]);
}

fn btc(quantity: &str) -> serde_json::Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": quantity, "price": "40000"})
}

#[tokio::test]
async fn one_alert_places_in_both_accounts_scaled_and_a_redelivery_after_a_restart_doubles_neither()
{
    let options = Options::configured(copied);
    let app = spawn_app_with(options.clone()).await;
    let id = MessageId::generate().to_string();
    let body = app.envelope(&btc("0.0123"));

    let first = app.deliver(&id, &body).await;

    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.outcome(), "filled", "{:?}", first.body);
    assert_eq!(first.orders()[0]["quantity"], "0.0123");
    assert_eq!(first.orders()[0]["venue"], "paper-main");
    let copy = &first.body["copies"][0];
    assert_eq!(copy["id"], format!("{id}-copy-b"));
    assert_eq!(copy["account"], "b");
    assert_eq!(copy["outcome"], "filled", "{copy:?}");
    let copy_order = &copy["orders"][0];
    assert_eq!(
        copy_order["quantity"], "0.006",
        "0.00615 rounded down to 0.001"
    );
    assert_eq!(copy_order["venue"], "paper-b");
    assert_eq!(copy_order["account"], "b");
    assert_ne!(
        copy_order["client_order_id"],
        first.orders()[0]["client_order_id"]
    );
    let copy_record = app.message(&format!("{id}-copy-b")).await;
    assert_eq!(copy_record.status, 200, "{:?}", copy_record.body);
    assert_eq!(copy_record.body["account"], "b");

    // A restart on the same journal, then the relay delivers the same message again.
    let work = app.stop().await;
    let app = spawn_in(Arc::clone(&work), &options).await;
    let again = app.deliver(&id, &body).await;

    assert_eq!(again.body["duplicate"], true, "{:?}", again.body);
    assert_eq!(again.body["copies"][0]["outcome"], "filled");
    let orders = app.all_orders().await;
    assert_eq!(orders.len(), 2, "one order per account: {orders:?}");
    let mut by_account: Vec<(String, String)> = orders
        .iter()
        .map(|o| {
            (
                o["account"].as_str().unwrap().to_owned(),
                o["quantity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    by_account.sort();
    assert_eq!(
        by_account,
        [
            ("b".into(), "0.006".into()),
            ("main".into(), "0.0123".into())
        ]
    );
    let positions = app.positions().await;
    let b = positions.iter().find(|p| p["account"] == "b").unwrap();
    assert_eq!(b["position"], "0.006");
    assert_eq!(b["venue"], "paper-b");
}

#[tokio::test]
async fn a_copy_that_rounds_to_nothing_or_breaks_its_own_gates_fails_alone() {
    let app = spawn_app_with(Options::configured(copied)).await;

    // 0.0015 × 0.5 = 0.00075: below the copy venue's lot step 0.001.
    let (_, small) = app.send(&btc("0.0015")).await;
    // 4 × 0.5 = 2: over paper-b's max_quantity 1, fine for main.
    let (_, big) = app.send(&btc("4")).await;

    assert_eq!(small.outcome(), "filled", "{:?}", small.body);
    let copy = &small.body["copies"][0];
    assert_eq!(copy["outcome"], "invalid", "{copy:?}");
    let reason = copy["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("legs[0].quantity: the copy's quantity (scale 0.5) is 0.00075 BTCUSDT")
            && reason.contains("nothing to place for this copy"),
        "{reason}"
    );
    assert_eq!(big.outcome(), "filled", "{:?}", big.body);
    assert_eq!(big.body["copies"][0]["outcome"], "rejected");
    assert_eq!(big.body["copies"][0]["reason"], "max_quantity");
    let orders = app.all_orders().await;
    assert!(orders.iter().all(|o| o["account"] == "main"), "{orders:?}");
    assert_eq!(orders.len(), 2);
}

#[tokio::test]
async fn copies_a_crash_left_unjournaled_or_unexecuted_run_once_at_the_next_start() {
    use alertgate_receiver::journal::{Journal, NewMessage, Outcome, SqliteJournal};

    let options = Options::configured(copied);
    let work = Arc::new(crate::helpers::Workdir::new(&options));
    let clock_now = time::OffsetDateTime::now_utc();
    let envelope = crate::helpers::envelope_at(&btc("0.01"), clock_now);
    let now_ms = i64::try_from(clock_now.unix_timestamp_nanos() / 1_000_000).unwrap();
    // Two crashes, as the journal keeps them: message `one` journaled but none of its copies;
    // message `two` and its copy journaled, nothing executed.
    {
        std::fs::create_dir_all(work.db_path().parent().unwrap()).unwrap();
        let journal =
            SqliteJournal::open(&work.db_path(), std::time::Duration::from_secs(1)).unwrap();
        for (id, account) in [("one", "main"), ("two", "main"), ("two-copy-b", "b")] {
            journal
                .admit(NewMessage {
                    id: id.into(),
                    account: Some(account.into()),
                    idempotency_key: None,
                    received_at_ms: Some(now_ms),
                    envelope: envelope.clone().into(),
                    outcome: Outcome::Pending,
                    reason: None,
                    now_ms,
                    dedupe_since_ms: 0,
                    keys: Vec::new(),
                    lease_until_ms: now_ms,
                })
                .await
                .unwrap();
        }
    }

    let app = spawn_in(Arc::clone(&work), &options).await;
    alertgate_testkit::until("every resumed message finished", || async {
        let mut done = true;
        for id in ["one", "one-copy-b", "two", "two-copy-b"] {
            done &= app.message(id).await.body["outcome"] == "filled";
        }
        done
    })
    .await;
    let again = app.deliver("one", &envelope).await;

    assert_eq!(again.body["duplicate"], true, "{:?}", again.body);
    let orders = app.all_orders().await;
    let mut seen: Vec<(String, String, String)> = orders
        .iter()
        .map(|o| {
            (
                o["message_id"].as_str().unwrap().to_owned(),
                o["account"].as_str().unwrap().to_owned(),
                o["quantity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let row = |m: &str, a: &str, q: &str| (m.to_owned(), a.to_owned(), q.to_owned());
    assert_eq!(
        seen,
        [
            row("one", "main", "0.01"),
            row("one-copy-b", "b", "0.005"),
            row("two", "main", "0.01"),
            row("two-copy-b", "b", "0.005"),
        ]
    );
}
