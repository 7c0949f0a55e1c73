//! Positions you can trust, against the emulated venues (DESIGN section 12): sizing by notional
//! and percent of equity rounded to the venue's lot step, target positions from the venue's own
//! position (a trade made by hand included), drift in `GET /v1/positions` and the gauge, and
//! `unknown` orders settled by reconciliation.

use std::sync::Arc;

use alertgate_receiver::broker::config::{AlpacaConfig, BinanceConfig, BrokerConfig, BrokerKind};
use alertgate_shared::{Clock, SystemClock};
use alertgate_testkit::emulators::alpaca::{AlpacaEmulator, AlpacaEmulatorConfig};
use alertgate_testkit::emulators::binance::{BinanceEmulator, BinanceEmulatorConfig};
use alertgate_testkit::emulators::Fault;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::{dec, spawn_app_with, Options, TestApp};
use crate::secret_file;

const KEY: &str = "positions-test-key";
const SECRET: &str = "positions-test-secret";

/// A receiver whose reconciliation runs only when a test asks ([`TestApp::reconciler`]).
async fn app(broker: BrokerConfig) -> TestApp {
    spawn_app_with(Options::configured(move |s| {
        s.broker = broker.clone();
        s.executor.inline_deadline_ms = 8000;
        s.executor.max_attempts = 3;
        s.executor.retry_base_ms = 20;
        s.executor.retry_max_ms = 100;
        s.reconcile.interval_seconds = 0;
    }))
    .await
}

struct Binance {
    venue: BinanceEmulator,
    app: TestApp,
    _dir: TempDir,
}

/// `[broker]` for the Binance emulator, its credentials in `dir`.
fn binance_broker(venue: &BinanceEmulator, dir: &TempDir) -> BrokerConfig {
    BrokerConfig {
        kind: BrokerKind::Binance,
        binance: Some(BinanceConfig {
            base_url: venue.base_url(),
            api_key: secret_file(dir.path(), "key", KEY),
            api_secret: Some(secret_file(dir.path(), "secret", SECRET)),
            private_key: None,
            recv_window_ms: 60_000,
            timeout_ms: 1000,
        }),
        ..BrokerConfig::default()
    }
}

async fn binance() -> Binance {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let venue = BinanceEmulator::start(BinanceEmulatorConfig::hmac(KEY, SECRET, clock))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = binance_broker(&venue, &dir);
    Binance {
        venue,
        app: app(broker).await,
        _dir: dir,
    }
}

struct Alpaca {
    venue: AlpacaEmulator,
    app: TestApp,
    _dir: TempDir,
}

async fn alpaca() -> Alpaca {
    let mut config = AlpacaEmulatorConfig::new(KEY, SECRET);
    config.symbols.insert("AAPL".into(), Decimal::from(200));
    let venue = AlpacaEmulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig {
        kind: BrokerKind::Alpaca,
        alpaca: Some(AlpacaConfig {
            base_url: venue.base_url(),
            key_id: secret_file(dir.path(), "id", KEY),
            secret_key: secret_file(dir.path(), "secret", SECRET),
            timeout_ms: 1000,
        }),
        ..BrokerConfig::default()
    };
    Alpaca {
        venue,
        app: app(broker).await,
        _dir: dir,
    }
}

fn btc(extra: Value) -> Value {
    let mut alert = json!({"symbol": "BINANCE:BTCUSDT", "price": "50000"});
    for (k, v) in extra.as_object().unwrap() {
        alert[k] = v.clone();
    }
    alert
}

fn aapl(extra: Value) -> Value {
    let mut alert = json!({"symbol": "NASDAQ:AAPL", "price": "200", "tif": "day"});
    for (k, v) in extra.as_object().unwrap() {
        alert[k] = v.clone();
    }
    alert
}

fn row<'a>(positions: &'a [Value], symbol: &str) -> &'a Value {
    positions
        .iter()
        .find(|p| p["symbol"] == symbol)
        .unwrap_or_else(|| panic!("no {symbol} in {positions:?}"))
}

#[tokio::test]
async fn a_notional_of_100_at_50000_buys_0_002_on_the_binance_lot_step_and_the_journal_says_how() {
    let b = binance().await;
    let (id, a) = b
        .app
        .send(&btc(json!({"action": "buy", "notional": "100"})))
        .await;
    assert_eq!(a.outcome(), "filled", "{:?}", a.body);
    assert_eq!(a.orders()[0]["quantity"], "0.002");
    assert_eq!(
        b.venue.order_posts()[0].param("quantity").as_deref(),
        Some("0.002")
    );
    let sizing = &b.app.message(&id).await.body["orders"][0]["sizing"];
    assert_eq!(
        (
            sizing["method"].as_str(),
            sizing["notional"].as_str(),
            sizing["price"].as_str(),
            sizing["lot_step"].as_str(),
            sizing["quantity"].as_str()
        ),
        (
            Some("notional"),
            Some("100"),
            Some("50000"),
            Some("0.00001"),
            Some("0.002")
        )
    );

    let (_, odd) = b
        .app
        .send(&btc(
            json!({"action": "buy", "amount": "100", "price": "30000"}),
        ))
        .await;
    assert_eq!(odd.orders()[0]["quantity"], "0.00333", "rounded down");
}

#[tokio::test]
async fn a_limit_order_sizes_from_its_limit_price_and_below_min_qty_is_invalid_with_the_numbers() {
    let b = binance().await;
    let (_, limit) = b
        .app
        .send(&btc(
            json!({"action": "buy", "notional": "100", "order_type": "limit",
                          "limit_price": "40000"}),
        ))
        .await;
    assert_eq!(limit.orders()[0]["quantity"], "0.0025", "{:?}", limit.body);

    let (_, tiny) = b
        .app
        .send(&btc(json!({"action": "buy", "notional": "0.1"})))
        .await;
    assert_eq!(tiny.outcome(), "invalid", "{:?}", tiny.body);
    let reason = tiny.body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("legs[0].notional:")
            && reason.contains("0.000002")
            && reason.contains("0.00001"),
        "{reason}"
    );
    assert_eq!(
        b.venue.order_posts().len(),
        1,
        "nothing sent for the tiny one"
    );
}

#[tokio::test]
async fn percent_of_equity_10_of_10000_at_200_buys_5_on_alpaca() {
    let a = alpaca().await;
    a.venue.set_equity(Decimal::from(10_000));
    let (id, answer) = a
        .app
        .send(&aapl(json!({"action": "buy", "percent_of_equity": "10"})))
        .await;
    assert_eq!(answer.orders()[0]["quantity"], "5", "{:?}", answer.body);
    assert_eq!(a.venue.orders()[0].qty, "5");
    let sizing = &a.app.message(&id).await.body["orders"][0]["sizing"];
    assert_eq!(
        (sizing["equity"].as_str(), sizing["notional"].as_str()),
        (Some("10000"), Some("1000"))
    );
}

#[tokio::test]
async fn after_a_trade_by_hand_the_drift_shows_and_the_next_target_orders_from_the_venues_position()
{
    let b = binance().await;
    let (_, first) = b.app.send(&btc(json!({"target_position": "0.01"}))).await;
    assert_eq!(first.orders()[0]["quantity"], "0.01", "{:?}", first.body);
    b.app.reconciler.run_once().await.unwrap();
    let before = b.app.positions().await;
    assert_eq!(row(&before, "BTCUSDT")["drift"], "0");

    // Someone sells 0.006 BTC on the venue's own site; an alert is lost meanwhile.
    b.venue.set_balance("BTC", dec("0.004"));
    let pass = b.app.reconciler.run_once().await.unwrap();
    assert_eq!(pass.drifts.len(), 1);
    let drifted = b.app.positions().await;
    let btc_row = row(&drifted, "BTCUSDT");
    assert_eq!(
        (
            btc_row["position"].as_str(),
            btc_row["venue_position"].as_str(),
            btc_row["drift"].as_str(),
            btc_row["venue"].as_str()
        ),
        (Some("0.01"), Some("0.004"), Some("-0.006"), Some("binance"))
    );
    assert!(!btc_row["reconciled_at"].is_null());
    let metrics = b.app.metrics().await;
    assert!(
        metrics.contains(
            r#"alertgate_receiver_position_drift{account="main",venue="binance",symbol="BTCUSDT"} -0.006"#
        ),
        "{metrics}"
    );

    let (id, next) = b.app.send(&btc(json!({"target_position": "0.02"}))).await;
    assert_eq!(
        next.orders()[0]["quantity"],
        "0.016",
        "the difference from the venue's 0.004, not the journal's 0.01: {:?}",
        next.body
    );
    assert_eq!(
        b.app.message(&id).await.body["orders"][0]["sizing"]["position_source"],
        "venue"
    );
    assert_eq!(b.venue.balance("BTC"), dec("0.02"));
}

#[tokio::test]
async fn a_negative_target_is_invalid_on_binance_spot() {
    let b = binance().await;
    let (_, a) = b.app.send(&btc(json!({"target_position": "-1"}))).await;
    assert_eq!(a.outcome(), "invalid");
    assert!(a.body["reason"]
        .as_str()
        .unwrap()
        .starts_with("target_position:"));
}

#[tokio::test]
async fn an_alpaca_reversal_sends_the_open_only_after_the_close_has_filled() {
    let a = alpaca().await;
    a.app.send(&aapl(json!({"target_position": "2"}))).await;
    let (_, flip) = a.app.send(&aapl(json!({"target_position": "-1"}))).await;
    let sides: Vec<(String, String, String)> = flip
        .orders()
        .iter()
        .map(|o| {
            (
                o["side"].as_str().unwrap().to_owned(),
                o["quantity"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sides,
        [
            ("sell".to_owned(), "2".to_owned(), "filled".to_owned()),
            ("sell".to_owned(), "1".to_owned(), "placed".to_owned())
        ],
        "Alpaca answers `accepted`; the close is looked up until filled: {:?}",
        flip.body
    );
    let requests = a.venue.requests();
    let close_lookup = requests
        .iter()
        .position(|r| r.path == "/v2/orders:by_client_order_id")
        .unwrap();
    let posts: Vec<usize> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.method == "POST")
        .map(|(i, _)| i)
        .collect();
    assert!(
        posts[2] > close_lookup,
        "the open was posted after the close was seen filled"
    );
    assert_eq!(a.venue.position("AAPL"), Decimal::from(-1));
}

#[tokio::test]
async fn an_order_the_venue_took_and_then_never_confirmed_is_unknown_until_reconciliation_settles_it(
) {
    let b = binance().await;
    b.venue.fail_next_orders(Fault::AcceptThenUnreachable, 1);
    let (id, a) = b
        .app
        .send(&btc(json!({"action": "buy", "quantity": "0.01"})))
        .await;
    assert_eq!(a.outcome(), "unknown", "{:?}", a.body);
    assert_eq!(a.orders()[0]["status"], "unknown");

    let still = b.app.reconciler.run_once().await.unwrap();
    assert_eq!((still.settled, still.still_unknown), (0, 1));
    b.venue.set_unreachable(false);
    let pass = b.app.reconciler.run_once().await.unwrap();
    assert_eq!(pass.settled, 1);
    let settled = b.app.message(&id).await.body;
    assert_eq!(
        (
            settled["outcome"].as_str(),
            settled["orders"][0]["status"].as_str()
        ),
        (Some("filled"), Some("filled"))
    );
    assert_eq!(b.venue.order_posts().len(), 1, "never placed again");
    assert_eq!(b.venue.orders().len(), 1);
    assert_eq!(row(&b.app.positions().await, "BTCUSDT")["position"], "0.01");
}

#[tokio::test]
async fn an_unknown_order_the_venue_never_got_fails_as_not_found_after_the_grace() {
    let a = alpaca().await;
    a.venue.set_unreachable(true);
    let (id, answer) = a
        .app
        .send(&aapl(json!({"action": "buy", "quantity": "1"})))
        .await;
    assert_eq!(answer.outcome(), "unknown", "{:?}", answer.body);
    a.venue.set_unreachable(false);

    let early = a.app.reconciler.run_once().await.unwrap();
    assert_eq!(
        early.still_unknown, 1,
        "inside the grace it may still arrive"
    );
    a.app.clock.advance(time::Duration::seconds(301));
    let late = a.app.reconciler.run_once().await.unwrap();
    assert_eq!(late.settled, 1);
    let m = a.app.message(&id).await.body;
    assert_eq!(
        (
            m["outcome"].as_str(),
            m["reason"].as_str(),
            m["orders"][0]["status"].as_str()
        ),
        (Some("failed"), Some("not_found_at_venue"), Some("failed"))
    );
    assert!(a.venue.orders().is_empty());
}

#[tokio::test]
async fn a_drift_is_notified_once_when_it_is_first_seen_not_at_every_pass() {
    use alertgate_testkit::emulators::slack::SlackEmulator;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let venue = BinanceEmulator::start(BinanceEmulatorConfig::hmac(KEY, SECRET, clock))
        .await
        .unwrap();
    let hook = SlackEmulator::webhook("DRIFT").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = binance_broker(&venue, &dir);
    let table: alertgate_shared::notify::NotifyConfig = serde_json::from_value(json!({
        "kind": "slack",
        "webhook_url": secret_file(dir.path(), "slack", &hook.webhook_url()).to_string(),
        "events": ["drift"],
        "min_interval_ms": 0,
    }))
    .unwrap();
    let app = spawn_app_with(Options::configured(move |s| {
        s.broker = broker.clone();
        s.notify = vec![table.clone()];
    }))
    .await;
    app.send(&btc(json!({"target_position": "0.01"}))).await;
    app.reconciler.run_once().await.unwrap();
    venue.set_balance("BTC", dec("0.004"));
    app.reconciler.run_once().await.unwrap();
    app.reconciler.run_once().await.unwrap();
    alertgate_testkit::until("the drift notice", || async { !hook.messages().is_empty() }).await;
    // A further pass with the same reading adds nothing; a marker event proves the queue moved on.
    venue.set_balance("BTC", dec("0.003"));
    app.reconciler.run_once().await.unwrap();
    alertgate_testkit::until("the changed drift", || async { hook.messages().len() == 2 }).await;
    let texts: Vec<String> = hook.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        vec![
            "drift BTCUSDT: journal 0.01, venue 0.004 · binance · main".to_owned(),
            "drift BTCUSDT: journal 0.01, venue 0.003 · binance · main".to_owned(),
        ]
    );
}
