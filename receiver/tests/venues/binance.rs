//! Binance Spot against its emulator.

use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::broker::binance::BinanceBroker;
use alertgate_receiver::broker::config::BinanceConfig;
use alertgate_receiver::broker::{Broker, BrokerError, OrderStatus};
use alertgate_receiver::order::{OrderType, Side, TimeInForce};
use alertgate_shared::{Clock, ManualClock, SigningKey, SystemClock};
use alertgate_testkit::emulators::binance::{BinanceAuth, BinanceEmulator, BinanceEmulatorConfig};
use alertgate_testkit::emulators::{parse_params, Fault};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tempfile::TempDir;

use crate::{client_order_id, limit, market, secret_file};

const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

struct Setup {
    venue: BinanceEmulator,
    dir: TempDir,
    clock: Arc<dyn Clock>,
}

impl Setup {
    async fn new() -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let venue =
            BinanceEmulator::start(BinanceEmulatorConfig::hmac(API_KEY, SECRET, clock.clone()))
                .await
                .unwrap();
        Self {
            venue,
            dir: tempfile::tempdir().unwrap(),
            clock,
        }
    }

    fn config(&self, api_key: &str, secret: &str) -> BinanceConfig {
        BinanceConfig {
            base_url: self.venue.base_url(),
            api_key: secret_file(self.dir.path(), "key", api_key),
            api_secret: Some(secret_file(self.dir.path(), "secret", secret)),
            private_key: None,
            recv_window_ms: 5000,
            timeout_ms: 500,
        }
    }

    /// A broker as `build_venue` makes it; a second one is a receiver restarted with no memory.
    fn broker(&self) -> BinanceBroker {
        BinanceBroker::from_config(&self.config(API_KEY, SECRET), self.clock.clone()).unwrap()
    }
}

fn hmac_hex(payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_market_order_is_sent_signed_over_the_exact_query_string_and_records_the_venue_order_id()
{
    let s = Setup::new().await;
    let id = client_order_id();

    let placement = s
        .broker()
        .place(&market(&id, "BTCUSDT", "0.01", Some("42000")))
        .await
        .unwrap();

    let orders = s.venue.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        placement.venue_order_id,
        Some(orders[0].order_id.to_string())
    );
    assert_eq!(placement.status, OrderStatus::Filled);
    assert_eq!(placement.filled_quantity.to_string(), "0.01");
    assert_eq!(
        placement.average_price.map(|p| p.to_string()).as_deref(),
        Some("42000")
    );

    let post = &s.venue.order_posts()[0];
    assert_eq!(post.header("x-mbx-apikey"), Some(API_KEY));
    let (payload, signature) = post.query.rsplit_once("&signature=").unwrap();
    assert_eq!(
        signature,
        hmac_hex(payload),
        "HMAC-SHA256 hex over the exact query string"
    );
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
        "a MARKET order carries quantity and no price or timeInForce"
    );
    assert_eq!(post.param("type").as_deref(), Some("MARKET"));
    assert_eq!(post.param("newClientOrderId").as_deref(), Some(id.as_str()));
    let sent_at: i64 = post.param("timestamp").unwrap().parse().unwrap();
    assert!((s.clock.now_unix_ms() - sent_at).abs() < 5000);
}

#[tokio::test]
async fn a_limit_order_is_rounded_to_the_symbols_filters_and_rests_as_placed() {
    let s = Setup::new().await;
    let order = limit(
        &client_order_id(),
        "BTCUSDT",
        Side::Buy,
        "0.123456789",
        "41999.999",
    );

    let placement = s.broker().place(&order).await.unwrap();

    assert_eq!(placement.status, OrderStatus::Placed);
    assert_eq!(placement.filled_quantity.to_string(), "0");
    let post = &s.venue.order_posts()[0];
    assert_eq!(post.param("type").as_deref(), Some("LIMIT"));
    assert_eq!(post.param("timeInForce").as_deref(), Some("GTC"));
    assert_eq!(
        post.param("quantity").as_deref(),
        Some("0.12345"),
        "rounded down to stepSize"
    );
    assert_eq!(
        post.param("price").as_deref(),
        Some("41999.99"),
        "a buy rounds down to tickSize"
    );
    assert_eq!(s.venue.orders()[0].status, "NEW");
}

#[tokio::test]
async fn stop_and_stop_limit_orders_carry_exactly_the_parameters_binance_requires() {
    let s = Setup::new().await;
    let broker = s.broker();
    let mut stop = market(&client_order_id(), "BTCUSDT", "0.01", None);
    stop.side = Side::Sell;
    stop.order_type = OrderType::Stop;
    stop.stop_price = Some("40000".parse().unwrap());
    broker.place(&stop).await.unwrap();
    let mut stop_limit = limit(&client_order_id(), "BTCUSDT", Side::Sell, "0.01", "39900");
    stop_limit.order_type = OrderType::StopLimit;
    stop_limit.stop_price = Some("40000".parse().unwrap());
    stop_limit.tif = TimeInForce::Ioc;
    broker.place(&stop_limit).await.unwrap();

    let posts = s.venue.order_posts();
    assert_eq!(posts[0].param("type").as_deref(), Some("STOP_LOSS"));
    assert_eq!(posts[0].param("stopPrice").as_deref(), Some("40000"));
    assert_eq!(posts[0].param("price"), None);
    assert_eq!(posts[0].param("timeInForce"), None);
    assert_eq!(posts[1].param("type").as_deref(), Some("STOP_LOSS_LIMIT"));
    assert_eq!(posts[1].param("timeInForce").as_deref(), Some("IOC"));
    assert_eq!(posts[1].param("price").as_deref(), Some("39900"));
    assert_eq!(posts[1].param("stopPrice").as_deref(), Some("40000"));
    assert_eq!(s.venue.orders().len(), 2);
}

#[tokio::test]
async fn an_ed25519_key_in_pkcs8_pem_signs_with_a_percent_encoded_base64_signature() {
    let seed = [42u8; 32];
    let key = SigningKey::from_seed(&seed);
    // PKCS#8 v1 for Ed25519: fixed prefix + the 32-byte seed (RFC 8410).
    let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
    der.extend_from_slice(&seed);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let venue = BinanceEmulator::start(BinanceEmulatorConfig {
        auth: BinanceAuth::Ed25519(key.verifying_key()),
        ..BinanceEmulatorConfig::hmac(API_KEY, "unused", clock.clone())
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = BinanceConfig {
        base_url: venue.base_url(),
        api_key: secret_file(dir.path(), "key", API_KEY),
        api_secret: None,
        private_key: Some(secret_file(dir.path(), "ed25519.pem", &pem)),
        recv_window_ms: 5000,
        timeout_ms: 500,
    };
    let broker = BinanceBroker::from_config(&config, clock).unwrap();

    broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await
        .unwrap();

    assert_eq!(venue.orders().len(), 1);
    let query = &venue.order_posts()[0].query;
    let encoded = query.rsplit_once("&signature=").unwrap().1;
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'%'),
        "{encoded}"
    );
}

#[tokio::test]
async fn placing_the_same_client_order_id_twice_places_one_order() {
    let s = Setup::new().await;
    let order = limit(&client_order_id(), "BTCUSDT", Side::Buy, "0.01", "40000");
    let broker = s.broker();

    let first = broker.place(&order).await.unwrap();
    let second = broker.place(&order).await.unwrap();

    assert_eq!(first.venue_order_id, second.venue_order_id);
    assert_eq!(s.venue.orders().len(), 1);
    assert_eq!(
        s.venue.order_posts().len(),
        1,
        "the second call found the order and sent nothing"
    );
}

#[tokio::test]
async fn a_filled_order_is_not_placed_again_after_a_restart_although_binance_would_accept_its_id() {
    let s = Setup::new().await;
    let order = limit(&client_order_id(), "BTCUSDT", Side::Buy, "0.01", "40000");
    let first = s.broker().place(&order).await.unwrap();
    s.venue.fill_open_orders();

    // A new broker: the receiver restarted and resumes the order with the same id.
    let again = s.broker().place(&order).await.unwrap();

    assert_eq!(again.venue_order_id, first.venue_order_id);
    assert_eq!(again.status, OrderStatus::Filled);
    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn the_emulator_accepts_a_reused_id_once_the_first_order_filled_as_binance_does() {
    // The behaviour the lookup-first rule protects against, shown on the emulator directly.
    let s = Setup::new().await;
    let order = limit(&client_order_id(), "BTCUSDT", Side::Buy, "0.01", "40000");
    s.broker().place(&order).await.unwrap();
    let post = s.venue.order_posts()[0].clone();
    let resend = |query: String| {
        let url = format!("{}/api/v3/order?{query}", s.venue.base_url());
        reqwest::Client::new()
            .post(url)
            .header("X-MBX-APIKEY", API_KEY)
            .send()
    };
    let fresh_query = |post: &alertgate_testkit::emulators::Recorded| {
        let (payload, _) = post.query.rsplit_once("&signature=").unwrap();
        let payload = payload.rsplit_once("&timestamp=").unwrap().0.to_owned()
            + &format!("&timestamp={}", s.clock.now_unix_ms());
        format!("{payload}&signature={}", hmac_hex(&payload))
    };

    let open = resend(fresh_query(&post)).await.unwrap();
    assert_eq!(open.status(), 400);
    assert!(open.text().await.unwrap().contains("Duplicate order sent."));
    s.venue.fill_open_orders();
    let reused = resend(fresh_query(&post)).await.unwrap();
    assert_eq!(reused.status(), 200);
    assert_eq!(s.venue.orders().len(), 2);
}

#[tokio::test]
async fn an_order_placed_before_the_market_closed_is_still_reported_as_placed_on_a_retry() {
    let s = Setup::new().await;
    let order = limit(&client_order_id(), "BTCUSDT", Side::Buy, "0.01", "40000");
    s.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 502 }, 1);
    let first = s.broker().place(&order).await.unwrap();
    s.venue.set_symbol_status("BTCUSDT", "BREAK");

    let again = s.broker().place(&order).await.unwrap();

    assert_eq!(again.venue_order_id, first.venue_order_id);
    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn a_5xx_after_binance_accepted_the_order_does_not_double_it() {
    let s = Setup::new().await;
    s.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);

    let placement = s
        .broker()
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await
        .unwrap();

    assert_eq!(s.venue.orders().len(), 1);
    assert_eq!(s.venue.order_posts().len(), 1);
    assert_eq!(
        placement.venue_order_id,
        Some(s.venue.orders()[0].order_id.to_string())
    );
}

#[tokio::test]
async fn a_5xx_before_acceptance_is_transient_and_the_retry_places_exactly_one_order() {
    let s = Setup::new().await;
    s.venue
        .fail_next_orders(Fault::ServerError { status: 500 }, 1);
    let order = market(&client_order_id(), "BTCUSDT", "0.01", Some("42000"));
    let broker = s.broker();

    let first = broker.place(&order).await;
    assert!(
        matches!(first, Err(BrokerError::Transient { .. })),
        "{first:?}"
    );
    assert!(s.venue.orders().is_empty());

    broker.place(&order).await.unwrap();
    assert_eq!(s.venue.orders().len(), 1);
    assert_eq!(s.venue.order_posts().len(), 2);
}

#[tokio::test]
async fn a_timeout_is_resolved_by_looking_the_order_up_never_by_resending_blind() {
    let s = Setup::new().await;
    let broker = s.broker();

    // Accepted, then no answer: the lookup finds it.
    s.venue.fail_next_orders(Fault::AcceptThenHang, 1);
    let accepted = market(&client_order_id(), "BTCUSDT", "0.01", Some("42000"));
    let placement = broker.place(&accepted).await.unwrap();
    assert_eq!(
        placement.venue_order_id,
        Some(s.venue.orders()[0].order_id.to_string())
    );

    // No answer and not accepted: transient; the retry looks again and only then sends.
    s.venue.fail_next_orders(Fault::Hang, 1);
    let lost = market(&client_order_id(), "BTCUSDT", "0.01", Some("42000"));
    let first = broker.place(&lost).await;
    assert!(
        matches!(first, Err(BrokerError::Transient { .. })),
        "{first:?}"
    );
    broker.place(&lost).await.unwrap();

    assert_eq!(s.venue.orders().len(), 2);
    assert_eq!(s.venue.order_posts().len(), 3);
}

#[tokio::test]
async fn a_429_is_transient_with_binances_retry_after_and_the_retry_succeeds() {
    let s = Setup::new().await;
    s.venue.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 7,
        },
        1,
    );
    let order = market(&client_order_id(), "BTCUSDT", "0.01", Some("42000"));
    let broker = s.broker();

    let Err(BrokerError::Transient { retry_after, .. }) = broker.place(&order).await else {
        panic!("expected transient")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    broker.place(&order).await.unwrap();

    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn an_order_below_the_filters_is_invalid_with_a_clear_reason_and_never_sent() {
    let s = Setup::new().await;
    let broker = s.broker();

    let tiny = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.000001",
            Some("42000"),
        ))
        .await;
    let Err(BrokerError::Invalid { message }) = tiny else {
        panic!("{tiny:?}")
    };
    assert!(
        message.contains("below Binance's minimum") && message.contains("LOT_SIZE"),
        "{message}"
    );

    let small = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.0001",
            Some("42000"),
        ))
        .await;
    let Err(BrokerError::Invalid { message }) = small else {
        panic!("{small:?}")
    };
    assert!(
        message.contains("4.2 USDT") && message.contains("minimum notional 5 USDT"),
        "{message}"
    );

    let mut day = limit(&client_order_id(), "BTCUSDT", Side::Buy, "0.01", "40000");
    day.tif = TimeInForce::Day;
    let Err(BrokerError::Invalid { message }) = broker.place(&day).await else {
        panic!()
    };
    assert!(message.contains("DAY"), "{message}");

    assert!(s.venue.order_posts().is_empty());
}

#[tokio::test]
async fn a_filter_failure_from_binance_is_invalid_and_refreshes_the_cached_filters() {
    let s = Setup::new().await;
    let broker = s.broker();
    broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await
        .unwrap();
    s.venue
        .update_symbol("BTCUSDT", |sym| sym.min_notional = "1000".parse().unwrap());

    let stale = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await;
    let Err(BrokerError::Invalid { message }) = stale else {
        panic!("{stale:?}")
    };
    assert!(message.contains("Filter failure: NOTIONAL"), "{message}");
    let fresh = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await;
    let Err(BrokerError::Invalid { message }) = fresh else {
        panic!("{fresh:?}")
    };
    assert!(message.contains("minimum notional 1000 USDT"), "{message}");

    assert_eq!(
        s.venue.order_posts().len(),
        2,
        "the third order was refused before sending"
    );
}

#[tokio::test]
async fn wrong_credentials_are_rejected_with_binances_message() {
    let s = Setup::new().await;
    let order = market(&client_order_id(), "BTCUSDT", "0.01", Some("42000"));

    let wrong_key =
        BinanceBroker::from_config(&s.config("not-my-key", SECRET), s.clock.clone()).unwrap();
    let Err(BrokerError::Rejected { message }) = wrong_key.place(&order).await else {
        panic!()
    };
    assert!(
        message.contains("Invalid API-key, IP, or permissions for action."),
        "{message}"
    );

    let wrong_secret =
        BinanceBroker::from_config(&s.config(API_KEY, "not-my-secret"), s.clock.clone()).unwrap();
    let Err(BrokerError::Rejected { message }) = wrong_secret.place(&order).await else {
        panic!()
    };
    assert!(
        message.contains("Signature for this request is not valid."),
        "{message}"
    );

    assert!(s.venue.orders().is_empty());
}

#[tokio::test]
async fn venue_refusals_become_messages_a_user_can_act_on() {
    let s = Setup::new().await;

    s.venue.set_insufficient_balance(true);
    let Err(BrokerError::Rejected { message }) = s
        .broker()
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await
    else {
        panic!()
    };
    assert!(message.contains("insufficient balance"), "{message}");
    s.venue.set_insufficient_balance(false);

    let Err(BrokerError::Rejected { message }) = s
        .broker()
        .place(&market(&client_order_id(), "ETHBTC", "1", None))
        .await
    else {
        panic!()
    };
    assert!(
        message.contains("does not know this symbol") && message.contains("Invalid symbol."),
        "{message}"
    );

    s.venue.set_symbol_status("BTCUSDT", "BREAK");
    let Err(BrokerError::Rejected { message }) = s
        .broker()
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await
    else {
        panic!()
    };
    assert!(message.contains("market closed"), "{message}");
    assert!(s.venue.orders().is_empty());
}

#[tokio::test]
async fn a_clock_outside_recv_window_is_rejected_with_advice_to_check_the_clock() {
    let s = Setup::new().await;
    let behind = ManualClock::at_unix(s.clock.now_unix() - 60);
    let broker = BinanceBroker::from_config(&s.config(API_KEY, SECRET), Arc::new(behind)).unwrap();

    let Err(BrokerError::Rejected { message }) = broker
        .place(&market(
            &client_order_id(),
            "BTCUSDT",
            "0.01",
            Some("42000"),
        ))
        .await
    else {
        panic!()
    };
    assert!(
        message.contains("recvWindow") && message.contains("clock"),
        "{message}"
    );
}

#[tokio::test]
async fn a_long_client_order_id_is_shortened_deterministically_to_binances_36_characters() {
    let s = Setup::new().await;
    let id = "a-client-order-id-from-somewhere-else-that-is-long.0";
    let order = market(id, "BTCUSDT", "0.01", Some("42000"));

    s.broker().place(&order).await.unwrap();
    s.broker().place(&order).await.unwrap();

    let sent = s.venue.order_posts()[0].param("newClientOrderId").unwrap();
    assert!(sent.len() <= 36 && sent.starts_with("ag-"), "{sent}");
    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn the_broker_never_prints_its_credentials() {
    let s = Setup::new().await;
    let shown = format!("{:?}", s.broker());
    assert!(
        !shown.contains(SECRET) && !shown.contains(API_KEY),
        "{shown}"
    );
    assert!(shown.contains("redacted"));
}

#[tokio::test]
async fn a_resting_order_is_cancelled_with_a_signed_delete_by_client_order_id_and_a_second_cancel_answers_the_same(
) {
    let s = Setup::new().await;
    let id = client_order_id();
    let broker = s.broker();
    broker
        .place(&limit(&id, "BTCUSDT", Side::Buy, "0.01", "40000"))
        .await
        .unwrap();

    let cancelled = broker.cancel("BTCUSDT", &id, None).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.filled_quantity.to_string(), "0");
    assert_eq!(s.venue.orders()[0].status, "CANCELED");
    let delete = s
        .venue
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("a DELETE /api/v3/order");
    assert_eq!(delete.path, "/api/v3/order");
    let params = parse_params(&delete.query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("symbol").as_deref(), Some("BTCUSDT"));
    assert_eq!(get("origClientOrderId").as_deref(), Some(id.as_str()));
    let (payload, signature) = delete.query.rsplit_once("&signature=").unwrap();
    assert_eq!(signature, hmac_hex(payload));

    // Binance answers -2011 to a second cancel: the adapter looks the order up instead.
    let again = broker.cancel("BTCUSDT", &id, None).await.unwrap();
    assert_eq!(again.status, OrderStatus::Cancelled);
    let missing = broker.cancel("BTCUSDT", "never-placed-1", None).await;
    assert!(
        matches!(&missing, Err(BrokerError::Rejected { message }) if message.contains("no order")),
        "{missing:?}"
    );
}

/// The open orders at the emulator: (client id, price).
fn open_orders(s: &Setup) -> Vec<(String, Option<String>)> {
    s.venue
        .orders()
        .into_iter()
        .filter(|o| o.status == "NEW" || o.status == "PARTIALLY_FILLED")
        .map(|o| (o.client_order_id, o.price))
        .collect()
}

fn cancel_replaces(s: &Setup) -> Vec<alertgate_testkit::emulators::Recorded> {
    s.venue
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v3/order/cancelReplace")
        .collect()
}

#[tokio::test]
async fn modifying_a_resting_limit_is_one_cancel_replace_and_a_lost_answer_never_leaves_two() {
    for fault in [
        None,
        Some(Fault::AcceptThenServerError { status: 503 }),
        Some(Fault::AcceptThenHang),
    ] {
        let s = Setup::new().await;
        let id = client_order_id();
        let order = limit(&id, "BTCUSDT", Side::Buy, "0.01", "40000");
        let placed = s.broker().place(&order).await.unwrap();
        let mut moved = order.clone();
        moved.limit_price = Some("40500".parse().unwrap());

        if let Some(fault) = fault.clone() {
            s.venue.fail_next_orders(fault.clone(), 1);
            // The answer is lost: the adapter looks the replacement up and finds it.
            let lost = s
                .broker()
                .modify(&moved, placed.venue_order_id.as_deref())
                .await;
            assert!(
                matches!(&lost, Ok(p) if p.status == OrderStatus::Placed),
                "{fault:?}: {lost:?}"
            );
        }
        // The executor's retry (a fresh broker: a restart remembers nothing either).
        let answer = s
            .broker()
            .modify(&moved, placed.venue_order_id.as_deref())
            .await
            .unwrap();

        assert_eq!(answer.status, OrderStatus::Placed, "{fault:?}");
        let open = open_orders(&s);
        assert_eq!(
            open.len(),
            1,
            "exactly one live order ({fault:?}): {open:?}"
        );
        assert_eq!(open[0].1.as_deref(), Some("40500"), "{fault:?}");
        assert_ne!(open[0].0, id, "the replacement has its own client id");
        let live = s
            .venue
            .orders()
            .into_iter()
            .find(|o| o.status == "NEW")
            .unwrap();
        assert_eq!(answer.venue_order_id, Some(live.order_id.to_string()));
        let sent = cancel_replaces(&s);
        let first = &sent[0];
        assert_eq!(
            first.param("cancelReplaceMode").as_deref(),
            Some("STOP_ON_FAILURE")
        );
        assert_eq!(first.param("cancelOrderId"), placed.venue_order_id);
        assert_eq!(
            first.param("newClientOrderId").as_deref(),
            Some(open[0].0.as_str())
        );
        assert_eq!(first.param("price").as_deref(), Some("40500"));
        assert_eq!(first.param("type").as_deref(), Some("LIMIT"));
        assert_eq!(
            sent.len(),
            1,
            "the retry looked the replacement up, never resent ({fault:?})"
        );

        // Moved again, to a third price: the live replacement is the one cancelled.
        let mut again = moved.clone();
        again.limit_price = Some("40600".parse().unwrap());
        let third = s
            .broker()
            .modify(&again, answer.venue_order_id.as_deref())
            .await
            .unwrap();
        let open = open_orders(&s);
        assert_eq!(open.len(), 1, "{fault:?}: {open:?}");
        assert_eq!(open[0].1.as_deref(), Some("40600"), "{fault:?}");
        // And the cancel by the recorded venue id cancels the live one.
        let cancelled = s
            .broker()
            .cancel("BTCUSDT", &id, third.venue_order_id.as_deref())
            .await
            .unwrap();
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert!(open_orders(&s).is_empty(), "{fault:?}");
    }
}

#[tokio::test]
async fn modifying_an_order_that_filled_meanwhile_answers_it_filled_and_places_nothing() {
    let s = Setup::new().await;
    let id = client_order_id();
    let order = limit(&id, "BTCUSDT", Side::Buy, "0.01", "40000");
    let placed = s.broker().place(&order).await.unwrap();
    s.venue.fill_open_orders();
    let mut moved = order.clone();
    moved.limit_price = Some("40500".parse().unwrap());

    let answer = s
        .broker()
        .modify(&moved, placed.venue_order_id.as_deref())
        .await
        .unwrap();

    assert_eq!(answer.status, OrderStatus::Filled);
    assert!(cancel_replaces(&s).is_empty());
    assert_eq!(s.venue.orders().len(), 1);
}
