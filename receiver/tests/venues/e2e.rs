//! Each real venue end to end: a signed alert into the receiver's `POST /v1/alerts`, through the
//! executor, to the emulator; the journal records the venue's order id.

use std::sync::Arc;

use alertgate_receiver::broker::config::{
    AlpacaConfig, BinanceConfig, BrokerConfig, BrokerKind, HttpBrokerConfig,
};
use alertgate_shared::{Clock, HmacSecret, MessageId, SystemClock};
use alertgate_testkit::emulators::alpaca::{AlpacaEmulator, AlpacaEmulatorConfig};
use alertgate_testkit::emulators::binance::{BinanceEmulator, BinanceEmulatorConfig};
use alertgate_testkit::emulators::oms::OmsEmulator;
use alertgate_testkit::emulators::Fault;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::{spawn_app_with, Options, TestApp};
use crate::secret_file;

const BINANCE_KEY: &str = "binance-test-api-key";
const BINANCE_SECRET: &str = "binance-test-secret-key";
const ALPACA_KEY: &str = "PKE2EKEYID";
const ALPACA_SECRET: &str = "alpaca-e2e-secret";

/// A receiver placing orders at `broker`, retrying quickly and waiting long enough inline for a
/// 1 s `Retry-After`; reconciliation runs when a test asks.
async fn app(broker: BrokerConfig) -> TestApp {
    app_with(broker, |_| {}).await
}

/// As [`app`], with `extra` settings on top.
async fn app_with(
    broker: BrokerConfig,
    extra: impl Fn(&mut alertgate_receiver::Settings) + Send + Sync + 'static,
) -> TestApp {
    spawn_app_with(Options::configured(move |s| {
        extra(s);
        s.broker = broker.clone();
        s.reconcile.interval_seconds = 0;
        s.executor.inline_deadline_ms = 8000;
        s.executor.max_attempts = 4;
        s.executor.retry_base_ms = 50;
        s.executor.retry_max_ms = 500;
    }))
    .await
}

struct Binance {
    venue: BinanceEmulator,
    app: TestApp,
    _dir: TempDir,
}

async fn binance_with_secret(secret: &str) -> Binance {
    binance_with(secret, |_| {}).await
}

async fn binance_with(
    secret: &str,
    extra: impl Fn(&mut alertgate_receiver::Settings) + Send + Sync + 'static,
) -> Binance {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let venue = BinanceEmulator::start(BinanceEmulatorConfig::hmac(
        BINANCE_KEY,
        BINANCE_SECRET,
        clock,
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The receiver's clock is a manual one started at the real now; the window covers a slow run.
    let broker = BrokerConfig {
        kind: BrokerKind::Binance,
        binance: Some(BinanceConfig {
            base_url: venue.base_url(),
            api_key: secret_file(dir.path(), "key", BINANCE_KEY),
            api_secret: Some(secret_file(dir.path(), "secret", secret)),
            private_key: None,
            recv_window_ms: 60_000,
            timeout_ms: 1000,
        }),
        ..BrokerConfig::default()
    };
    Binance {
        venue,
        app: app_with(broker, extra).await,
        _dir: dir,
    }
}

async fn binance() -> Binance {
    binance_with_secret(BINANCE_SECRET).await
}

fn btc(quantity: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": quantity, "price": "42000"})
}

fn btc_limit(quantity: &str, price: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": quantity, "price": "42000",
           "order_type": "limit", "limit_price": price, "tif": "gtc"})
}

#[tokio::test]
async fn binance_market_and_limit_alerts_are_placed_and_recorded_with_binances_order_ids() {
    let b = binance().await;

    let (_, market) = b.app.send(&btc("0.01")).await;
    let (_, limit) = b.app.send(&btc_limit("0.02", "41000")).await;

    assert_eq!(market.status, 200, "{:?}", market.body);
    assert_eq!(market.outcome(), "filled", "{:?}", market.body);
    assert_eq!(limit.outcome(), "placed", "{:?}", limit.body);
    let orders = b.venue.orders();
    assert_eq!(orders.len(), 2);
    assert_eq!(
        market.orders()[0]["venue_order_id"],
        orders[0].order_id.to_string()
    );
    assert_eq!(
        limit.orders()[0]["venue_order_id"],
        orders[1].order_id.to_string()
    );
    let posts = b.venue.order_posts();
    assert!(posts
        .iter()
        .all(|p| p.header("x-mbx-apikey") == Some(BINANCE_KEY) && p.param("signature").is_some()));
    assert_eq!(posts[1].param("price").as_deref(), Some("41000"));
    let journal = b.app.all_orders().await;
    assert!(journal.iter().all(|o| o["venue"] == "binance"));
    assert!(journal
        .iter()
        .any(|o| o["venue_order_id"].as_str() == Some(orders[1].order_id.to_string().as_str())));
}

#[tokio::test]
async fn binance_a_duplicate_delivery_places_one_order() {
    let b = binance().await;
    let id = MessageId::generate().to_string();
    let body = b.app.envelope(&btc("0.01"));

    let first = b.app.deliver(&id, &body).await;
    let second = b.app.deliver(&id, &body).await;

    assert_eq!(first.outcome(), "filled");
    assert_eq!(second.body["duplicate"], true);
    assert_eq!(b.venue.orders().len(), 1);
}

#[tokio::test]
async fn binance_a_5xx_after_acceptance_does_not_double_the_order() {
    let b = binance().await;
    b.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);

    let (_, answer) = b.app.send(&btc("0.01")).await;

    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    assert_eq!(b.venue.orders().len(), 1);
    assert_eq!(
        answer.orders()[0]["venue_order_id"],
        b.venue.orders()[0].order_id.to_string()
    );
}

#[tokio::test]
async fn binance_a_429_backs_off_and_then_succeeds() {
    let b = binance().await;
    b.venue.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let started = std::time::Instant::now();

    let (_, answer) = b.app.send(&btc("0.01")).await;

    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After was honoured"
    );
    assert_eq!(b.venue.order_posts().len(), 2);
    assert_eq!(b.venue.orders().len(), 1);
}

#[tokio::test]
async fn binance_a_filter_violation_is_invalid_with_a_clear_reason() {
    let b = binance().await;

    let (_, answer) = b.app.send(&btc("0.0001")).await;

    assert_eq!(answer.outcome(), "invalid", "{:?}", answer.body);
    assert!(
        answer.body.to_string().contains("minimum notional 5 USDT"),
        "{:?}",
        answer.body
    );
    assert!(b.venue.order_posts().is_empty());
}

#[tokio::test]
async fn binance_wrong_credentials_fail_with_binances_message() {
    let b = binance_with_secret("not-the-secret").await;

    let (_, answer) = b.app.send(&btc("0.01")).await;

    assert_eq!(answer.outcome(), "failed", "{:?}", answer.body);
    assert!(
        answer
            .body
            .to_string()
            .contains("Signature for this request is not valid."),
        "{:?}",
        answer.body
    );
    assert!(b.venue.orders().is_empty());
}

struct Alpaca {
    venue: AlpacaEmulator,
    app: TestApp,
    _dir: TempDir,
}

async fn alpaca_with_secret(secret: &str) -> Alpaca {
    let venue = AlpacaEmulator::start(AlpacaEmulatorConfig::new(ALPACA_KEY, ALPACA_SECRET))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig {
        kind: BrokerKind::Alpaca,
        alpaca: Some(AlpacaConfig {
            base_url: venue.base_url(),
            key_id: secret_file(dir.path(), "id", ALPACA_KEY),
            secret_key: secret_file(dir.path(), "secret", secret),
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

fn aapl(extra: Value) -> Value {
    let mut alert = json!({"symbol": "NASDAQ:AAPL", "action": "buy", "quantity": "2", "price": "190", "tif": "day"});
    for (k, v) in extra.as_object().unwrap() {
        alert[k] = v.clone();
    }
    alert
}

#[tokio::test]
async fn alpaca_market_and_limit_alerts_are_placed_and_recorded_with_alpacas_order_ids() {
    let a = alpaca_with_secret(ALPACA_SECRET).await;

    let (_, market) = a.app.send(&aapl(json!({}))).await;
    let (_, limit) = a
        .app
        .send(&aapl(
            json!({"order_type": "limit", "limit_price": "185.5"}),
        ))
        .await;

    assert_eq!(market.outcome(), "placed", "{:?}", market.body);
    assert_eq!(limit.outcome(), "placed", "{:?}", limit.body);
    let orders = a.venue.orders();
    assert_eq!(orders.len(), 2);
    assert_eq!(market.orders()[0]["venue_order_id"], orders[0].id);
    assert_eq!(limit.orders()[0]["venue_order_id"], orders[1].id);
    assert_eq!(orders[0].symbol, "AAPL");
    assert_eq!(orders[1].limit_price.as_deref(), Some("185.5"));
    assert!(a
        .venue
        .order_posts()
        .iter()
        .all(|p| p.header("apca-api-key-id") == Some(ALPACA_KEY)));
}

#[tokio::test]
async fn alpaca_duplicates_and_a_5xx_after_acceptance_place_one_order_each() {
    let a = alpaca_with_secret(ALPACA_SECRET).await;
    let id = MessageId::generate().to_string();
    let body = a.app.envelope(&aapl(json!({})));
    a.app.deliver(&id, &body).await;
    let again = a.app.deliver(&id, &body).await;
    assert_eq!(again.body["duplicate"], true);

    a.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 500 }, 1);
    let (_, answer) = a.app.send(&aapl(json!({}))).await;

    // The lookup after the 5xx finds the order, by then filled.
    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    assert_eq!(a.venue.orders().len(), 2);
    assert_eq!(answer.orders()[0]["venue_order_id"], a.venue.orders()[1].id);
}

#[tokio::test]
async fn alpaca_a_429_backs_off_and_then_succeeds() {
    let a = alpaca_with_secret(ALPACA_SECRET).await;
    a.venue.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );

    let (_, answer) = a.app.send(&aapl(json!({}))).await;

    assert_eq!(answer.outcome(), "placed", "{:?}", answer.body);
    assert_eq!(a.venue.order_posts().len(), 2);
    assert_eq!(a.venue.orders().len(), 1);
}

#[tokio::test]
async fn alpaca_insufficient_buying_power_and_wrong_credentials_fail_with_alpacas_messages() {
    let a = alpaca_with_secret(ALPACA_SECRET).await;
    a.venue.set_buying_power(rust_decimal::Decimal::ONE);
    let (_, poor) = a.app.send(&aapl(json!({}))).await;
    assert_eq!(poor.outcome(), "failed", "{:?}", poor.body);
    assert!(
        poor.body.to_string().contains("insufficient buying power"),
        "{:?}",
        poor.body
    );

    let wrong = alpaca_with_secret("wrong").await;
    let (_, refused) = wrong.app.send(&aapl(json!({}))).await;
    assert_eq!(refused.outcome(), "failed", "{:?}", refused.body);
    assert!(
        refused
            .body
            .to_string()
            .contains("request is not authorized"),
        "{:?}",
        refused.body
    );
}

struct Oms {
    oms: OmsEmulator,
    app: TestApp,
    _dir: TempDir,
}

async fn oms_signing_with(secret: &HmacSecret, trusted: HmacSecret) -> Oms {
    let oms = OmsEmulator::trusting(vec![trusted], Arc::new(SystemClock))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig {
        kind: BrokerKind::Http,
        http: Some(HttpBrokerConfig {
            url: oms.url(),
            hmac_secrets: vec![secret_file(dir.path(), "whsec", secret.to_text().expose())],
            positions_url: None,
            timeout_ms: 1000,
        }),
        ..BrokerConfig::default()
    };
    Oms {
        oms,
        app: app(broker).await,
        _dir: dir,
    }
}

#[tokio::test]
async fn http_oms_market_and_limit_alerts_are_placed_signed_and_recorded_with_the_oms_ids() {
    let secret = HmacSecret::generate();
    let o = oms_signing_with(&secret, secret.clone()).await;

    let (_, market) = o.app.send(&btc("1")).await;
    let (_, limit) = o.app.send(&btc_limit("1", "41000")).await;

    assert_eq!(market.outcome(), "placed", "{:?}", market.body);
    assert_eq!(market.orders()[0]["venue_order_id"], "oms-1");
    assert_eq!(limit.orders()[0]["venue_order_id"], "oms-2");
    let orders = o.oms.orders();
    assert_eq!(orders[1].body["limit_price"], "41000");
    assert_eq!(orders[0].body["symbol"], "BTCUSDT");
}

#[tokio::test]
async fn http_oms_a_5xx_after_acceptance_and_a_429_still_give_one_order_each() {
    let secret = HmacSecret::generate();
    let o = oms_signing_with(&secret, secret.clone()).await;
    o.oms
        .fail_next_orders(Fault::AcceptThenServerError { status: 502 }, 1);
    let (_, first) = o.app.send(&btc("1")).await;
    o.oms.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let (_, second) = o.app.send(&btc("1")).await;

    assert_eq!(first.outcome(), "placed", "{:?}", first.body);
    assert_eq!(second.outcome(), "placed", "{:?}", second.body);
    assert_eq!(o.oms.orders().len(), 2);
}

#[tokio::test]
async fn http_oms_a_duplicate_delivery_places_one_order_and_a_wrong_secret_fails() {
    let secret = HmacSecret::generate();
    let o = oms_signing_with(&secret, secret.clone()).await;
    let id = MessageId::generate().to_string();
    let body = o.app.envelope(&btc("1"));
    o.app.deliver(&id, &body).await;
    assert_eq!(o.app.deliver(&id, &body).await.body["duplicate"], true);
    assert_eq!(o.oms.orders().len(), 1);

    let wrong = oms_signing_with(&HmacSecret::generate(), secret).await;
    let (_, refused) = wrong.app.send(&btc("1")).await;
    assert_eq!(refused.outcome(), "failed", "{:?}", refused.body);
    assert!(
        refused.body.to_string().contains("no valid signature"),
        "{:?}",
        refused.body
    );
}

#[tokio::test]
async fn binance_a_modify_alert_moves_the_resting_limit_once_even_when_the_answer_is_lost() {
    let b = binance().await;
    let (_, rest) = b.app.send(&btc_limit("0.02", "41000")).await;
    assert_eq!(rest.outcome(), "placed", "{:?}", rest.body);
    b.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);

    let modify = json!({"symbol": "BINANCE:BTCUSDT", "action": "modify", "limit_price": "41500"});
    let (_, moved) = b.app.send(&modify).await;

    assert_eq!(moved.outcome(), "placed", "{:?}", moved.body);
    assert_eq!(moved.orders()[0]["limit_price"], "41500");
    let open: Vec<_> = b
        .venue
        .orders()
        .into_iter()
        .filter(|o| o.status == "NEW")
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].price.as_deref(), Some("41500"));
    assert_eq!(
        moved.orders()[0]["venue_order_id"],
        open[0].order_id.to_string(),
        "the journal follows the replacement"
    );
    // A cancel alert then cancels the replacement (by Binance's order id).
    let (_, cancel) = b
        .app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "cancel"}))
        .await;
    assert_eq!(cancel.outcome(), "cancelled", "{:?}", cancel.body);
    assert!(b.venue.orders().iter().all(|o| o.status != "NEW"));
}

#[tokio::test]
async fn alpaca_a_modify_alert_moves_a_resting_brackets_stop_leg_once_even_when_the_answer_is_lost()
{
    let a = alpaca_with_secret(ALPACA_SECRET).await;
    let (_, entry) = a
        .app
        .send(&aapl(json!({"order_type": "limit", "limit_price": "185",
                           "take_profit": "200", "stop_loss": "170"})))
        .await;
    assert_eq!(entry.outcome(), "placed", "{:?}", entry.body);
    a.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 500 }, 1);

    let trail = json!({"symbol": "NASDAQ:AAPL", "action": "modify", "stop_loss": "175"});
    let (_, moved) = a.app.send(&trail).await;

    assert_eq!(moved.outcome(), "placed", "{:?}", moved.body);
    assert_eq!(moved.orders()[0]["stop_loss"], "175", "{:?}", moved.body);
    let stops: Vec<_> = a
        .venue
        .legs()
        .into_iter()
        .filter(|l| l.order_type == "stop" && l.is_open())
        .collect();
    assert_eq!(stops.len(), 1, "exactly one live stop: {stops:?}");
    assert_eq!(stops[0].stop_price.as_deref(), Some("175"));
    let patches = a
        .venue
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(
        patches, 1,
        "the retry looked first and did not replace twice"
    );
    // Resent at the same level: unchanged, nothing sent.
    let (_, again) = a.app.send(&trail).await;
    assert_eq!(again.body["reason"], "unchanged", "{:?}", again.body);
}

/// The journal's orders of message `id`, by client id: (status, type, price, filled quantity).
async fn journaled(app: &TestApp, id: &str) -> Vec<(String, String, String, String, String)> {
    app.message(id)
        .await
        .orders()
        .iter()
        .map(|o| {
            let text = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
            let price = if o["order_type"] == "stop" {
                text("stop_price")
            } else {
                text("limit_price")
            };
            (
                text("client_order_id"),
                text("status"),
                text("order_type"),
                price,
                text("filled_quantity"),
            )
        })
        .collect()
}

fn position(positions: &[Value], symbol: &str) -> String {
    positions
        .iter()
        .find(|p| p["symbol"] == symbol)
        .map(|p| p["position"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|| "0".to_owned())
}

#[tokio::test]
async fn alpaca_a_filled_brackets_legs_are_journaled_trailed_and_followed_to_the_take_profit() {
    let a = alpaca_with_secret(ALPACA_SECRET).await;
    let (id, entry) = a
        .app
        .send(&aapl(json!({"order_type": "limit", "limit_price": "185",
                           "take_profit": "200", "stop_loss": "170"})))
        .await;
    assert_eq!(entry.outcome(), "placed", "{:?}", entry.body);
    let cid = entry.orders()[0]["client_order_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The market trades through the limit: Alpaca fills the entry and its legs go live. The
    // next reconciliation pass journals the fill (the position moves) and the two legs.
    assert_eq!(a.venue.trade("AAPL", "184".parse().unwrap()).len(), 1);
    let pass = a.app.reconciler.run_once().await.unwrap();
    assert_eq!(pass.followed, 3, "the entry filled, two legs adopted");
    let tp = format!("{cid}-tp");
    let sl = format!("{cid}-sl");
    let row = |c: &str, status: &str, kind: &str, price: &str, filled: &str| {
        (
            c.to_owned(),
            status.to_owned(),
            kind.to_owned(),
            price.to_owned(),
            filled.to_owned(),
        )
    };
    let mut orders = journaled(&a.app, &id).await;
    orders.sort();
    let mut expected = vec![
        row(&cid, "filled", "limit", "185", "2"),
        row(&tp, "placed", "limit", "200", "0"),
        row(&sl, "placed", "stop", "170", "0"),
    ];
    expected.sort();
    assert_eq!(orders, expected);
    assert_eq!(position(&a.app.positions().await, "AAPL"), "2");
    assert_eq!(
        a.app.reconciler.run_once().await.unwrap().followed,
        0,
        "adopted once"
    );

    // The trader trails the stop from TradingView: Alpaca's stop leg is replaced, once.
    let trail = json!({"symbol": "NASDAQ:AAPL", "action": "modify", "stop_loss": "178"});
    let (_, moved) = a.app.send(&trail).await;
    assert_eq!(moved.outcome(), "placed", "{:?}", moved.body);
    assert_eq!(
        moved.body["reason"],
        format!("modified {sl}"),
        "{:?}",
        moved.body
    );
    let live_stops: Vec<_> = a
        .venue
        .legs()
        .into_iter()
        .filter(|l| l.order_type == "stop" && l.is_open())
        .collect();
    assert_eq!(live_stops.len(), 1, "exactly one live stop: {live_stops:?}");
    assert_eq!(live_stops[0].stop_price.as_deref(), Some("178"));
    let (_, again) = a.app.send(&trail).await;
    assert_eq!(again.body["reason"], "unchanged", "{:?}", again.body);

    // The take-profit fills; Alpaca cancels the stop, and the journal follows both.
    assert_eq!(a.venue.trade("AAPL", "201".parse().unwrap()).len(), 1);
    a.app.reconciler.run_once().await.unwrap();
    let by_id: std::collections::BTreeMap<String, String> = journaled(&a.app, &id)
        .await
        .into_iter()
        .map(|(c, status, ..)| (c, status))
        .collect();
    assert_eq!(by_id[&tp], "filled");
    assert_eq!(by_id[&sl], "cancelled");
    assert_eq!(a.app.message(&id).await.outcome(), "filled");
    assert_eq!(position(&a.app.positions().await, "AAPL"), "0");
    assert_eq!(a.venue.position("AAPL"), rust_decimal::Decimal::ZERO);
}

#[tokio::test]
async fn alpaca_a_cancel_alert_after_a_brackets_entry_filled_cancels_its_live_legs() {
    let a = alpaca_with_secret(ALPACA_SECRET).await;
    // A market entry: Alpaca answers `accepted` and fills it right after.
    let (id, entry) = a
        .app
        .send(&aapl(json!({"take_profit": "200", "stop_loss": "170"})))
        .await;
    assert_eq!(entry.outcome(), "placed", "{:?}", entry.body);
    assert!(a.venue.legs().iter().all(|l| l.is_open()));

    let (_, cancel) = a
        .app
        .send(&json!({"symbol": "NASDAQ:AAPL", "action": "cancel"}))
        .await;
    assert_eq!(cancel.outcome(), "cancelled", "{:?}", cancel.body);
    let legs = a.venue.legs();
    assert_eq!(legs.len(), 2);
    assert!(
        legs.iter().all(|l| l.status == "canceled"),
        "both legs cancelled at Alpaca: {legs:?}"
    );
    let statuses: Vec<(String, String)> = journaled(&a.app, &id)
        .await
        .into_iter()
        .map(|(c, status, ..)| (c, status))
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(
        statuses.iter().any(|(_, s)| s == "filled"),
        "the entry filled: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|(_, s)| s == "cancelled").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        position(&a.app.positions().await, "AAPL"),
        "2",
        "the entry's fill stays"
    );
    let (_, nothing) = a
        .app
        .send(&json!({"symbol": "NASDAQ:AAPL", "action": "cancel"}))
        .await;
    assert_eq!(
        nothing.body["reason"], "nothing_to_cancel",
        "{:?}",
        nothing.body
    );
}

#[tokio::test]
async fn binance_commissions_count_in_the_daily_loss() {
    let b = binance_with(BINANCE_SECRET, |s| {
        s.risk.max_daily_loss = Some("0.5".parse().unwrap());
    })
    .await;
    // Bought and sold at the same price: nothing lost on the price, 0.1 % paid twice (the buy
    // in BTC, 0.00001 at 42000; the sell in USDT): 0.84 USDT.
    let (_, bought) = b.app.send(&btc("0.01")).await;
    assert_eq!(bought.outcome(), "filled", "{:?}", bought.body);
    let post = b.venue.order_posts().last().unwrap().clone();
    assert_eq!(post.param("newOrderRespType").as_deref(), Some("FULL"));
    let sell = json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "0.01", "price": "42000"});
    let (_, sold) = b.app.send(&sell).await;
    assert_eq!(sold.outcome(), "filled", "{:?}", sold.body);
    let (_, refused) = b.app.send(&btc("0.01")).await;
    assert_eq!(
        (refused.outcome(), &refused.body["reason"]),
        ("rejected", &json!("max_daily_loss")),
        "{:?}",
        refused.body
    );
}

#[tokio::test]
async fn binance_commission_paid_in_bnb_is_not_counted() {
    let b = binance_with(BINANCE_SECRET, |s| {
        s.risk.max_daily_loss = Some("0.5".parse().unwrap());
    })
    .await;
    b.venue.set_commission_asset(Some("BNB"));
    let (_, bought) = b.app.send(&btc("0.01")).await;
    assert_eq!(bought.outcome(), "filled", "{:?}", bought.body);
    let sell = json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "0.01", "price": "42000"});
    assert_eq!(b.app.send(&sell).await.1.outcome(), "filled");
    let (_, again) = b.app.send(&btc("0.01")).await;
    assert_eq!(
        again.outcome(),
        "filled",
        "BNB's price is unknown here: no fee is claimed: {:?}",
        again.body
    );
}
