//! Binance USDⓈ-M futures against its emulator: the adapter driven as the executor drives it,
//! then whole alerts through the receiver (perpetual tickers, closes, reversals, reconciliation).

use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::broker::binance_futures::BinanceFuturesBroker;
use alertgate_receiver::broker::config::{BinanceFuturesConfig, BrokerConfig, BrokerKind};
use alertgate_receiver::broker::{Broker, BrokerError, OrderStatus};
use alertgate_receiver::order::{OrderRequest, Side};
use alertgate_shared::{Clock, SystemClock};
use alertgate_testkit::emulators::binance_futures::{
    BinanceFuturesEmulator, BinanceFuturesEmulatorConfig,
};
use alertgate_testkit::emulators::{parse_params, Fault, Recorded};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tempfile::TempDir;

use crate::helpers::{dec, spawn_app_with, Options, TestApp};
use crate::{client_order_id, limit, market, secret_file};

const KEY: &str = "futures-test-api-key";
const SECRET: &str = "futures-test-secret-key";

struct Setup {
    venue: BinanceFuturesEmulator,
    dir: TempDir,
    clock: Arc<dyn Clock>,
}

impl Setup {
    async fn new() -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let venue = BinanceFuturesEmulator::start(BinanceFuturesEmulatorConfig::hmac(
            KEY,
            SECRET,
            clock.clone(),
        ))
        .await
        .unwrap();
        Self {
            venue,
            dir: tempfile::tempdir().unwrap(),
            clock,
        }
    }

    fn config(&self) -> BinanceFuturesConfig {
        BinanceFuturesConfig {
            base_url: self.venue.base_url(),
            api_key: secret_file(self.dir.path(), "key", KEY),
            api_secret: Some(secret_file(self.dir.path(), "secret", SECRET)),
            private_key: None,
            recv_window_ms: 60_000,
            timeout_ms: 500,
            leverage: [("BTCUSDT".to_owned(), 3)].into_iter().collect(),
        }
    }

    /// A broker as `broker::build` makes it; a second one is a receiver restarted with no memory.
    fn broker(&self) -> BinanceFuturesBroker {
        BinanceFuturesBroker::from_config(&self.config(), self.clock.clone()).unwrap()
    }

    /// `(method, path)` of every request the venue saw, in order.
    fn calls(&self) -> Vec<(String, String)> {
        self.venue
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }

    fn leverage_calls(&self) -> Vec<Recorded> {
        self.venue
            .requests()
            .into_iter()
            .filter(|r| r.path == "/fapi/v1/leverage")
            .collect()
    }
}

fn call(method: &str, path: &str) -> (String, String) {
    (method.to_owned(), path.to_owned())
}

fn sell(order: OrderRequest) -> OrderRequest {
    OrderRequest {
        side: Side::Sell,
        ..order
    }
}

fn closing(order: OrderRequest) -> OrderRequest {
    OrderRequest {
        reduce_only: true,
        ..sell(order)
    }
}

fn hmac_hex(payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn the_first_order_in_a_symbol_sets_its_leverage_once_before_it_and_the_next_does_not() {
    let s = Setup::new().await;
    let broker = s.broker();
    let id = client_order_id();

    let placement = broker
        .place(&market(&id, "BTCUSDT", "0.01", Some("50000")))
        .await
        .unwrap();

    assert_eq!(placement.status, OrderStatus::Filled);
    assert_eq!(placement.filled_quantity, dec("0.01"));
    assert_eq!(placement.average_price, Some(dec("50000")));
    assert_eq!(
        s.calls(),
        [
            call("GET", "/fapi/v1/order"),
            call("GET", "/fapi/v1/exchangeInfo"),
            call("POST", "/fapi/v1/leverage"),
            call("POST", "/fapi/v1/order"),
        ],
        "lookup before sending, then the leverage, then the order"
    );
    let leverage = &s.leverage_calls()[0];
    assert_eq!(leverage.param("symbol").as_deref(), Some("BTCUSDT"));
    assert_eq!(leverage.param("leverage").as_deref(), Some("3"));
    assert_eq!(s.venue.leverage("BTCUSDT"), 3);
    assert_eq!(s.venue.position("BTCUSDT"), dec("0.01"));

    let post = &s.venue.order_posts()[0];
    assert_eq!(post.header("x-mbx-apikey"), Some(KEY));
    let (payload, signature) = post.query.rsplit_once("&signature=").unwrap();
    assert_eq!(signature, hmac_hex(payload), "signed like Spot");
    let names: Vec<String> = parse_params(payload).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "symbol",
            "side",
            "type",
            "quantity",
            "newClientOrderId",
            "newOrderRespType",
            "recvWindow",
            "timestamp"
        ],
        "an opening MARKET order: no price, no timeInForce, no reduceOnly, no positionSide"
    );
    assert_eq!(post.param("newClientOrderId").as_deref(), Some(id.as_str()));

    broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("50000"),
        ))
        .await
        .unwrap();
    assert_eq!(s.leverage_calls().len(), 1, "set once per symbol");
    assert_eq!(s.venue.orders().len(), 2);
    assert_eq!(s.venue.position("BTCUSDT"), dec("0.02"));

    // A restarted receiver remembers nothing and sets it again, once: Binance keeps 3x.
    let restarted = s.broker();
    restarted
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("50000"),
        ))
        .await
        .unwrap();
    assert_eq!(s.leverage_calls().len(), 2);
    assert_eq!(s.venue.leverage("BTCUSDT"), 3);
}

#[tokio::test]
async fn a_close_is_a_reduce_only_sell_that_never_sets_leverage_and_skips_the_minimum_notional() {
    let s = Setup::new().await;
    s.venue.set_position("BTCUSDT", dec("0.001"));

    let placement = s
        .broker()
        .place(&closing(market(
            &client_order_id(),
            "BTCUSDT",
            "0.001",
            Some("50000"),
        )))
        .await
        .unwrap();

    assert_eq!(placement.status, OrderStatus::Filled);
    let post = &s.venue.order_posts()[0];
    assert_eq!(post.param("side").as_deref(), Some("SELL"));
    assert_eq!(post.param("reduceOnly").as_deref(), Some("true"));
    assert!(
        s.leverage_calls().is_empty(),
        "leverage is never changed for a close"
    );
    assert_eq!(
        s.venue.position("BTCUSDT"),
        dec("0"),
        "0.001 × 50000 = 50 USDT is below the 100 minimum, which a reduce-only order is exempt from"
    );
}

#[tokio::test]
async fn a_reduce_only_order_with_nothing_to_reduce_is_refused_by_binance_with_a_readable_reason() {
    let s = Setup::new().await;

    let err = s
        .broker()
        .place(&closing(market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("50000"),
        )))
        .await
        .unwrap_err();

    let BrokerError::Rejected { message } = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("-2022") && message.contains("reduce-only"),
        "{message}"
    );
    assert_eq!(s.venue.position("BTCUSDT"), dec("0"), "nothing opened");
}

#[tokio::test]
async fn a_timeout_after_acceptance_is_answered_by_the_lookup_and_the_venue_holds_one_order() {
    let s = Setup::new().await;
    s.venue.fail_next_orders(Fault::AcceptThenHang, 1);
    let id = client_order_id();
    let order = market(&id, "BTCUSDT", "0.01", Some("50000"));

    let placement = s.broker().place(&order).await.unwrap();

    assert_eq!(placement.status, OrderStatus::Filled);
    let lookups: Vec<Recorded> = s
        .venue
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/fapi/v1/order")
        .collect();
    assert_eq!(lookups.len(), 2, "before sending, and after the timeout");
    assert_eq!(
        lookups[1].param("origClientOrderId").as_deref(),
        Some(id.as_str())
    );
    // The executor's retry (or a restarted receiver) asks again and finds it too.
    let again = s.broker().place(&order).await.unwrap();
    assert_eq!(again.venue_order_id, placement.venue_order_id);
    assert_eq!(s.venue.orders().len(), 1);
    assert_eq!(s.venue.order_posts().len(), 1);
    assert_eq!(s.venue.position("BTCUSDT"), dec("0.01"));
}

#[tokio::test]
async fn a_5xx_after_acceptance_is_looked_up_and_a_rate_limit_carries_retry_after() {
    let s = Setup::new().await;
    let broker = s.broker();
    s.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);
    let placed = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("50000"),
        ))
        .await
        .unwrap();
    assert_eq!(placed.status, OrderStatus::Filled);
    assert_eq!(s.venue.orders().len(), 1);

    s.venue.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 3,
        },
        1,
    );
    let err = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("50000"),
        ))
        .await
        .unwrap_err();
    let BrokerError::Transient { retry_after, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(3)));
    assert_eq!(s.venue.orders().len(), 1, "a 429 placed nothing");
}

#[tokio::test]
async fn insufficient_margin_is_a_rejection_that_says_so() {
    let s = Setup::new().await;
    // 0.1 BTC × 50000 / 3x leverage needs 1666.67 USDT of margin.
    s.venue.set_wallet_balance(dec("1000"));

    let err = s
        .broker()
        .place(&market(&client_order_id(), "BTCUSDT", "0.1", Some("50000")))
        .await
        .unwrap_err();

    let BrokerError::Rejected { message } = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("margin insufficient") && message.contains("-2019"),
        "{message}"
    );
    assert!(s.venue.orders().is_empty());
}

#[tokio::test]
async fn below_the_minimum_notional_is_invalid_before_sending_and_binances_4164_is_invalid_too() {
    let s = Setup::new().await;
    let broker = s.broker();

    let err = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.001",
            Some("50000"),
        ))
        .await
        .unwrap_err();
    let BrokerError::Invalid { message } = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("50 USDT") && message.contains("minimum notional 100 USDT"),
        "{message}"
    );
    assert!(
        s.venue.order_posts().is_empty(),
        "refused from the cached filters"
    );

    // Binance raises the minimum after this receiver cached its filters.
    s.venue
        .update_symbol("BTCUSDT", |f| f.min_notional = dec("1000"));
    let err = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("50000"),
        ))
        .await
        .unwrap_err();
    let BrokerError::Invalid { message } = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("-4164"), "{message}");
    assert!(s.venue.orders().is_empty());
}

#[tokio::test]
async fn a_resting_limit_order_is_cancelled_and_positions_come_from_position_risk() {
    let s = Setup::new().await;
    let broker = s.broker();
    let id = client_order_id();
    let placed = broker
        .place(&limit(&id, "BTCUSDT", Side::Buy, "0.0109", "49000.06"))
        .await
        .unwrap();
    assert_eq!(placed.status, OrderStatus::Placed);
    let post = &s.venue.order_posts()[0];
    assert_eq!(
        (
            post.param("quantity").as_deref(),
            post.param("price").as_deref(),
            post.param("timeInForce").as_deref()
        ),
        (Some("0.01"), Some("49000"), Some("GTC")),
        "rounded down to the step and to the buyer's side of the tick"
    );

    let cancelled = broker.cancel("BTCUSDT", &id, None).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(s.venue.orders()[0].status, "CANCELED");

    s.venue.set_position("BTCUSDT", dec("-0.25"));
    let positions = broker
        .positions("main", &["BTCUSDT".to_owned()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(positions, vec![("BTCUSDT".to_owned(), dec("-0.25"))]);
}

#[tokio::test]
async fn stop_orders_are_invalid_and_wrong_credentials_are_refused_readably() {
    let s = Setup::new().await;
    let stop = OrderRequest {
        order_type: alertgate_receiver::order::OrderType::Stop,
        stop_price: Some("40000".parse().unwrap()),
        ..sell(market(&client_order_id(), "BTCUSDT", "0.01", Some("50000")))
    };
    let err = s.broker().place(&stop).await.unwrap_err();
    assert!(
        matches!(&err, BrokerError::Invalid { message } if message.contains("Algo Order API")),
        "{err:?}"
    );

    let mut config = s.config();
    config.api_secret = Some(secret_file(s.dir.path(), "wrong", "not-the-secret"));
    let wrong = BinanceFuturesBroker::from_config(&config, s.clock.clone()).unwrap();
    let err = wrong
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("50000"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BrokerError::Rejected { message } if message.contains("credentials")),
        "{err:?}"
    );
    assert!(s.venue.orders().is_empty());
}

#[tokio::test]
async fn two_first_orders_at_once_set_the_leverage_once() {
    let s = Setup::new().await;
    let broker = s.broker();
    let (a, b) = (
        market(&client_order_id(), "BTCUSDT", "0.01", Some("50000")),
        market(&client_order_id(), "BTCUSDT", "0.01", Some("50000")),
    );
    let (first, second) = tokio::join!(broker.place(&a), broker.place(&b));
    first.unwrap();
    second.unwrap();
    assert_eq!(s.leverage_calls().len(), 1);
    assert_eq!(s.venue.orders().len(), 2);
}

#[test]
fn leverage_outside_1_to_125_and_a_missing_secret_are_refused_at_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = BinanceFuturesConfig {
        base_url: "https://testnet.binancefuture.com".into(),
        api_key: secret_file(dir.path(), "key", KEY),
        api_secret: Some(secret_file(dir.path(), "secret", SECRET)),
        private_key: None,
        recv_window_ms: 5000,
        timeout_ms: 500,
        leverage: [("BTCUSDT".to_owned(), 200)].into_iter().collect(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let err = BinanceFuturesBroker::from_config(&config, clock.clone()).unwrap_err();
    assert!(
        err.to_string().contains("binance_futures.leverage")
            && err.to_string().contains("BTCUSDT = 200"),
        "{err}"
    );
    let missing = BinanceFuturesConfig {
        api_secret: Some(
            alertgate_shared::SecretRef::parse("env:ALERTGATE_TEST_NO_SUCH_FUTURES_SECRET")
                .unwrap(),
        ),
        leverage: Default::default(),
        ..config
    };
    let err = BinanceFuturesBroker::from_config(&missing, clock).unwrap_err();
    assert!(
        err.to_string().contains("binance_futures.api_secret")
            && err
                .to_string()
                .contains("ALERTGATE_TEST_NO_SUCH_FUTURES_SECRET"),
        "{err}"
    );
}

// ---- Whole alerts through the receiver ----

struct App {
    /// The emulator and the credentials the receiver uses.
    s: Setup,
    app: TestApp,
}

/// A receiver on `binance_futures` (leverage BTCUSDT = 3) whose reconciliation runs only when a
/// test asks.
async fn app() -> App {
    let s = Setup::new().await;
    let broker = BrokerConfig {
        kind: BrokerKind::BinanceFutures,
        binance_futures: Some(s.config()),
        ..BrokerConfig::default()
    };
    let app = spawn_app_with(Options::configured(move |settings| {
        settings.broker = broker.clone();
        settings.executor.inline_deadline_ms = 8000;
        settings.executor.max_attempts = 3;
        settings.executor.retry_base_ms = 20;
        settings.executor.retry_max_ms = 100;
        settings.reconcile.interval_seconds = 0;
    }))
    .await;
    App { s, app }
}

fn perp(extra: Value) -> Value {
    let mut alert = json!({"symbol": "BINANCE:BTCUSDT.P", "price": "50000"});
    for (k, v) in extra.as_object().unwrap() {
        alert[k] = v.clone();
    }
    alert
}

/// `(side, quantity, reduceOnly)` of every order post.
fn posted(venue: &BinanceFuturesEmulator) -> Vec<(String, String, Option<String>)> {
    venue
        .order_posts()
        .iter()
        .map(|p| {
            (
                p.param("side").unwrap(),
                p.param("quantity").unwrap(),
                p.param("reduceOnly"),
            )
        })
        .collect()
}

fn order(side: &str, quantity: &str, reduce_only: bool) -> (String, String, Option<String>) {
    (
        side.to_owned(),
        quantity.to_owned(),
        reduce_only.then(|| "true".to_owned()),
    )
}

#[tokio::test]
async fn a_perpetual_alert_opens_a_long_on_btcusdt_with_its_leverage_and_close_reduces_it_to_zero()
{
    let a = app().await;

    let (_, open) = a
        .app
        .send(&perp(json!({"action": "buy", "quantity": "0.01"})))
        .await;
    assert_eq!(open.outcome(), "filled", "{:?}", open.body);
    assert_eq!(
        open.orders()[0]["symbol"],
        "BTCUSDT",
        "`.P` is the contract"
    );
    assert_eq!(open.orders()[0]["venue"], "binance_futures");
    assert_eq!(a.s.venue.leverage("BTCUSDT"), 3);

    let (_, close) = a.app.send(&perp(json!({"action": "close"}))).await;
    assert_eq!(close.outcome(), "filled", "{:?}", close.body);
    assert_eq!(
        posted(&a.s.venue),
        [order("BUY", "0.01", false), order("SELL", "0.01", true)],
        "the close is a reduce-only sell of the position's size"
    );
    assert_eq!(a.s.leverage_calls().len(), 1);
    let calls = a.s.calls();
    let leverage_at = calls.iter().position(|c| c.1 == "/fapi/v1/leverage");
    let first_post = calls
        .iter()
        .position(|c| c.0 == "POST" && c.1 == "/fapi/v1/order");
    assert!(leverage_at < first_post, "{calls:?}");
    assert_eq!(a.s.venue.position("BTCUSDT"), dec("0"));
}

#[tokio::test]
async fn a_target_through_zero_is_a_reduce_only_close_then_an_open_after_the_close_filled() {
    let a = app().await;
    let (_, long) = a.app.send(&perp(json!({"target_position": "0.02"}))).await;
    assert_eq!(long.outcome(), "filled", "{:?}", long.body);

    let (_, flip) = a.app.send(&perp(json!({"target_position": "-0.01"}))).await;

    assert_eq!(flip.outcome(), "filled", "{:?}", flip.body);
    assert_eq!(
        posted(&a.s.venue),
        [
            order("BUY", "0.02", false),
            order("SELL", "0.02", true),
            order("SELL", "0.01", false)
        ],
        "two orders: the close may only reduce, the open is plain"
    );
    assert_eq!(a.s.venue.position("BTCUSDT"), dec("-0.01"));
    assert_eq!(a.s.leverage_calls().len(), 1, "the close did not set it");
}

#[tokio::test]
async fn the_spot_ticker_trades_the_same_contract_and_a_negative_target_is_allowed() {
    let a = app().await;
    let (_, short) = a
        .app
        .send(&json!({"symbol": "BINANCE:BTCUSDTPERP", "price": "50000", "target_position": "-0.005"}))
        .await;
    assert_eq!(short.outcome(), "filled", "{:?}", short.body);
    let (_, plain) = a
        .app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "price": "50000", "sentiment": "flat"}))
        .await;
    assert_eq!(plain.outcome(), "filled", "{:?}", plain.body);
    assert_eq!(
        posted(&a.s.venue),
        [order("SELL", "0.005", false), order("BUY", "0.005", true)]
    );
}

#[tokio::test]
async fn percent_of_equity_sizes_from_the_futures_margin_balance() {
    let a = app().await;
    // 10% of the 10,000 USDT wallet at 50000 is 0.02 BTC.
    let (id, answer) = a
        .app
        .send(&perp(json!({"action": "buy", "percent_of_equity": "10"})))
        .await;
    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    assert_eq!(answer.orders()[0]["quantity"], "0.02");
    let sizing = &a.app.message(&id).await.body["orders"][0]["sizing"];
    assert_eq!(sizing["equity"], "10000", "{sizing}");
}

#[tokio::test]
async fn margin_insufficient_fails_the_alert_with_binances_reason() {
    let a = app().await;
    a.s.venue.set_wallet_balance(dec("10"));
    let (_, answer) = a
        .app
        .send(&perp(json!({"action": "buy", "quantity": "0.01"})))
        .await;
    assert_eq!(answer.outcome(), "failed", "{:?}", answer.body);
    let reason = answer.body["reason"].as_str().unwrap();
    assert!(reason.contains("margin insufficient"), "{reason}");
    assert_eq!(
        a.s.venue.order_posts().len(),
        1,
        "a final refusal is not retried"
    );
}

#[tokio::test]
async fn a_position_changed_at_the_venue_shows_as_drift_and_the_next_target_starts_from_it() {
    let a = app().await;
    let (_, first) = a.app.send(&perp(json!({"target_position": "0.01"}))).await;
    assert_eq!(first.outcome(), "filled", "{:?}", first.body);
    a.app.reconciler.run_once().await.unwrap();

    // Someone flips the position by hand on Binance's site.
    a.s.venue.set_position("BTCUSDT", dec("-0.004"));
    let pass = a.app.reconciler.run_once().await.unwrap();
    assert_eq!(pass.drifts.len(), 1);
    let positions = a.app.positions().await;
    let row = positions.iter().find(|p| p["symbol"] == "BTCUSDT").unwrap();
    assert_eq!(
        (
            row["position"].as_str(),
            row["venue_position"].as_str(),
            row["drift"].as_str(),
            row["venue"].as_str()
        ),
        (
            Some("0.01"),
            Some("-0.004"),
            Some("-0.014"),
            Some("binance_futures")
        )
    );
    let metrics = a.app.metrics().await;
    assert!(
        metrics.contains(
            r#"alertgate_receiver_position_drift{account="main",venue="binance_futures",symbol="BTCUSDT"} -0.014"#
        ),
        "{metrics}"
    );

    let (_, flat) = a.app.send(&perp(json!({"sentiment": "flat"}))).await;
    assert_eq!(flat.outcome(), "filled", "{:?}", flat.body);
    assert_eq!(
        posted(&a.s.venue).last().unwrap(),
        &order("BUY", "0.004", true),
        "from the venue's -0.004, not the journal's 0.01"
    );
    assert_eq!(a.s.venue.position("BTCUSDT"), dec("0"));
}

// ---- The emulator refuses what Binance futures refuses ----

/// Sends `params` (plus recvWindow/timestamp at `ts_ms`) signed with `secret` to `path`, and
/// returns the status and Binance's code.
async fn futures_code(
    venue: &BinanceFuturesEmulator,
    method: reqwest::Method,
    path: &str,
    params: &str,
    ts_ms: i64,
) -> (u16, i64) {
    let payload = format!("{params}&recvWindow=5000&timestamp={ts_ms}");
    let query = format!("{payload}&signature={}", hmac_hex(&payload));
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}?{query}", venue.base_url()))
        .header("X-MBX-APIKEY", KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_i64().unwrap_or(0))
}

#[tokio::test]
async fn the_futures_emulator_refuses_requests_binance_futures_refuses() {
    let s = Setup::new().await;
    let now = s.clock.now_unix_ms();
    let order = |params: &'static str, ts: i64| {
        let venue = &s.venue;
        async move {
            futures_code(
                venue,
                reqwest::Method::POST,
                "/fapi/v1/order",
                &format!("symbol=BTCUSDT&side=BUY&{params}"),
                ts,
            )
            .await
            .1
        }
    };
    assert_eq!(
        order("type=LIMIT&quantity=0.01&price=49000", now).await,
        -1102
    );
    assert_eq!(
        order("type=MARKET&quantity=0.01&price=49000", now).await,
        -1106
    );
    assert_eq!(
        order("type=STOP_MARKET&quantity=0.01&stopPrice=40000", now).await,
        -4120
    );
    assert_eq!(
        order("type=MARKET&quantity=0.01&positionSide=LONG", now).await,
        -4061
    );
    assert_eq!(order("type=MARKET&quantity=0.0101", now).await, -1111);
    assert_eq!(order("type=MARKET&quantity=0", now).await, -4003);
    assert_eq!(order("type=MARKET&quantity=1E-2", now).await, -1100);
    assert_eq!(
        order(
            "type=LIMIT&timeInForce=GTC&quantity=0.01&price=49000.05",
            now
        )
        .await,
        -4014
    );
    assert_eq!(
        order("type=MARKET&quantity=0.01&newClientOrderId=bad!id", now).await,
        -4015
    );
    assert_eq!(order("type=MARKET&quantity=0.001", now).await, -4164);
    assert_eq!(
        order("type=MARKET&quantity=0.01&reduceOnly=true", now).await,
        -2022,
        "a reduce-only buy with no short open would open a long"
    );
    assert_eq!(
        order("type=MARKET&quantity=0.01&reduceOnly=yes", now).await,
        -4062
    );
    assert_eq!(
        order("type=MARKET&quantity=0.01", now - 60_000).await,
        -1021
    );
    assert!(s.venue.orders().is_empty(), "nothing above was accepted");

    let resting = "type=LIMIT&timeInForce=GTC&quantity=0.01&price=40000&newClientOrderId=same-id";
    assert_eq!(order(resting, now).await, 0, "accepted");
    assert_eq!(
        order(resting, now).await,
        -4116,
        "an open order's id is refused"
    );
    s.venue.fill_open_orders();
    assert_eq!(
        order(resting, now).await,
        0,
        "a filled order's id is accepted again, as Binance documents ('unique among open orders')"
    );

    let (status, code) = futures_code(
        &s.venue,
        reqwest::Method::POST,
        "/fapi/v1/leverage",
        "symbol=BTCUSDT&leverage=0",
        now,
    )
    .await;
    assert_eq!((status, code), (400, -4028));

    let bad_signature = reqwest::Client::new()
        .get(format!(
            "{}/fapi/v2/positionRisk?timestamp={now}&signature=00",
            s.venue.base_url()
        ))
        .header("X-MBX-APIKEY", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_signature.status().as_u16(), 400);
    let no_key = reqwest::Client::new()
        .get(format!(
            "{}/fapi/v1/order?timestamp={now}",
            s.venue.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status().as_u16(), 401);
}

#[tokio::test]
async fn binance_spot_still_refuses_a_perpetual_ticker_while_the_futures_venue_takes_it() {
    use alertgate_receiver::broker::config::BinanceConfig;
    use alertgate_testkit::emulators::binance::{BinanceEmulator, BinanceEmulatorConfig};

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let spot = BinanceEmulator::start(BinanceEmulatorConfig::hmac(KEY, SECRET, clock))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig {
        kind: BrokerKind::Binance,
        binance: Some(BinanceConfig {
            base_url: spot.base_url(),
            api_key: secret_file(dir.path(), "key", KEY),
            api_secret: Some(secret_file(dir.path(), "secret", SECRET)),
            private_key: None,
            recv_window_ms: 60_000,
            timeout_ms: 1000,
        }),
        ..BrokerConfig::default()
    };
    let app = spawn_app_with(Options::configured(move |s| s.broker = broker.clone())).await;

    let (_, refused) = app
        .send(&perp(json!({"action": "buy", "quantity": "0.01"})))
        .await;

    assert_eq!(refused.outcome(), "invalid", "{:?}", refused.body);
    let reason = refused.body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("symbol:") && reason.contains("perpetual"),
        "{reason}"
    );
    assert!(spot.order_posts().is_empty());

    let futures = self::app().await;
    let (_, taken) = futures
        .app
        .send(&perp(json!({"action": "buy", "quantity": "0.01"})))
        .await;
    assert_eq!(taken.outcome(), "filled", "{:?}", taken.body);
}

#[tokio::test]
async fn a_resting_limit_that_fills_at_binance_later_is_journaled_by_the_next_reconciliation() {
    let a = app().await;
    let (id, rest) = a
        .app
        .send(&perp(
            json!({"action": "buy", "quantity": "0.01", "order_type": "limit", "limit_price": "49000"}),
        ))
        .await;
    assert_eq!(rest.outcome(), "placed", "{:?}", rest.body);
    let pass = a.app.reconciler.run_once().await.unwrap();
    assert_eq!(pass.followed, 0, "still resting");

    // The market comes down to the limit: Binance fills it.
    a.s.venue.fill_open_orders();
    let pass = a.app.reconciler.run_once().await.unwrap();
    assert_eq!(pass.followed, 1);
    let message = a.app.message(&id).await;
    assert_eq!(message.outcome(), "filled", "{:?}", message.body);
    assert_eq!(message.orders()[0]["filled_quantity"], "0.01");
    let positions = a.app.positions().await;
    let row = positions.iter().find(|p| p["symbol"] == "BTCUSDT").unwrap();
    assert_eq!(row["position"], "0.01", "{row:?}");
    assert_eq!(
        row["drift"], "0",
        "the journal agrees with Binance: {row:?}"
    );
    assert_eq!(
        a.app.reconciler.run_once().await.unwrap().followed,
        0,
        "journaled once"
    );
}
