//! Alpaca against its emulator.

use std::time::Duration;

use alertgate_receiver::broker::alpaca::AlpacaBroker;
use alertgate_receiver::broker::config::AlpacaConfig;
use alertgate_receiver::broker::{Broker, BrokerError, OrderStatus};
use alertgate_receiver::order::{Side, TimeInForce};
use alertgate_testkit::emulators::alpaca::{AlpacaEmulator, AlpacaEmulatorConfig};
use alertgate_testkit::emulators::Fault;
use rust_decimal::Decimal;
use serde_json::json;
use tempfile::TempDir;

use crate::{client_order_id, limit, market, secret_file};

const KEY_ID: &str = "PKTESTKEYID0123456789";
const SECRET_KEY: &str = "alpaca-secret-key-for-tests-0123456789";

struct Setup {
    venue: AlpacaEmulator,
    dir: TempDir,
}

impl Setup {
    async fn new() -> Self {
        let venue = AlpacaEmulator::start(AlpacaEmulatorConfig::new(KEY_ID, SECRET_KEY))
            .await
            .unwrap();
        Self {
            venue,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn broker_with(&self, key_id: &str, secret_key: &str) -> AlpacaBroker {
        AlpacaBroker::from_config(&AlpacaConfig {
            base_url: self.venue.base_url(),
            key_id: secret_file(self.dir.path(), "key_id", key_id),
            secret_key: secret_file(self.dir.path(), "secret_key", secret_key),
            timeout_ms: 500,
        })
        .unwrap()
    }

    fn broker(&self) -> AlpacaBroker {
        self.broker_with(KEY_ID, SECRET_KEY)
    }
}

#[tokio::test]
async fn a_market_order_is_posted_as_json_with_string_decimals_and_key_headers() {
    let s = Setup::new().await;
    let id = client_order_id();
    let mut order = market(&id, "AAPL", "3", Some("190"));
    order.tif = TimeInForce::Day;

    let placement = s.broker().place(&order).await.unwrap();

    let orders = s.venue.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        placement.venue_order_id.as_deref(),
        Some(orders[0].id.as_str())
    );
    assert_eq!(
        placement.status,
        OrderStatus::Placed,
        "Alpaca answers a new order with `accepted`"
    );
    let post = &s.venue.order_posts()[0];
    assert_eq!(post.header("apca-api-key-id"), Some(KEY_ID));
    assert_eq!(post.header("apca-api-secret-key"), Some(SECRET_KEY));
    assert_eq!(
        post.json(),
        json!({"symbol": "AAPL", "qty": "3", "side": "buy", "type": "market", "time_in_force": "day", "client_order_id": id})
    );
}

#[tokio::test]
async fn a_limit_order_carries_its_limit_price_as_a_string() {
    let s = Setup::new().await;
    let order = limit(&client_order_id(), "AAPL", Side::Sell, "1.5", "189.50");

    let placement = s.broker().place(&order).await.unwrap();

    assert_eq!(placement.status, OrderStatus::Placed);
    let body = s.venue.order_posts()[0].json();
    assert_eq!(body["type"], "limit");
    assert_eq!(body["limit_price"], "189.5");
    assert_eq!(body["qty"], "1.5");
    assert_eq!(body["time_in_force"], "gtc");
}

#[tokio::test]
async fn placing_the_same_client_order_id_twice_places_one_order() {
    let s = Setup::new().await;
    let order = market(&client_order_id(), "AAPL", "1", None);
    let broker = s.broker();

    let first = broker.place(&order).await.unwrap();
    let second = broker.place(&order).await.unwrap();

    assert_eq!(first.venue_order_id, second.venue_order_id);
    assert_eq!(
        second.status,
        OrderStatus::Filled,
        "the lookup shows the market order filled"
    );
    assert_eq!(second.average_price, Some(Decimal::new(190, 0)));
    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn a_5xx_after_alpaca_accepted_the_order_does_not_double_it() {
    let s = Setup::new().await;
    s.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 500 }, 1);

    let placement = s
        .broker()
        .place(&market(&client_order_id(), "AAPL", "1", None))
        .await
        .unwrap();

    assert_eq!(s.venue.orders().len(), 1);
    assert_eq!(
        placement.venue_order_id.as_deref(),
        Some(s.venue.orders()[0].id.as_str())
    );
}

#[tokio::test]
async fn a_timeout_before_acceptance_is_transient_and_the_retry_places_one_order() {
    let s = Setup::new().await;
    s.venue.fail_next_orders(Fault::Hang, 1);
    let order = market(&client_order_id(), "AAPL", "1", None);
    let broker = s.broker();

    assert!(matches!(
        broker.place(&order).await,
        Err(BrokerError::Transient { .. })
    ));
    broker.place(&order).await.unwrap();

    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn a_429_is_transient_with_retry_after_and_the_retry_succeeds() {
    let s = Setup::new().await;
    s.venue.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    let order = market(&client_order_id(), "AAPL", "1", None);
    let broker = s.broker();

    let Err(BrokerError::Transient { retry_after, .. }) = broker.place(&order).await else {
        panic!()
    };
    assert_eq!(retry_after, Some(Duration::from_secs(2)));
    broker.place(&order).await.unwrap();
    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn insufficient_buying_power_is_rejected_with_alpacas_reason() {
    let s = Setup::new().await;
    s.venue.set_buying_power(Decimal::new(100, 0));

    let result = s
        .broker()
        .place(&market(&client_order_id(), "AAPL", "10", None))
        .await;

    let Err(BrokerError::Rejected { message }) = result else {
        panic!("{result:?}")
    };
    assert!(message.contains("insufficient buying power"), "{message}");
    assert!(s.venue.orders().is_empty());
}

#[tokio::test]
async fn wrong_credentials_are_rejected_with_alpacas_message() {
    let s = Setup::new().await;

    let result = s
        .broker_with(KEY_ID, "wrong-secret")
        .place(&market(&client_order_id(), "AAPL", "1", None))
        .await;

    let Err(BrokerError::Rejected { message }) = result else {
        panic!("{result:?}")
    };
    assert!(message.contains("request is not authorized"), "{message}");
}

#[tokio::test]
async fn a_client_order_id_longer_than_48_characters_is_shortened_deterministically() {
    let s = Setup::new().await;
    let id = "x".repeat(60);
    let order = market(&id, "AAPL", "1", None);

    s.broker().place(&order).await.unwrap();
    s.broker().place(&order).await.unwrap();

    let sent = s.venue.orders()[0].client_order_id.clone();
    assert!(sent.len() <= 48 && sent.starts_with("ag-"), "{sent}");
    assert_eq!(s.venue.orders().len(), 1);
}

#[tokio::test]
async fn an_unknown_symbol_is_rejected_with_alpacas_message() {
    let s = Setup::new().await;
    let result = s
        .broker()
        .place(&market(&client_order_id(), "NOPE", "1", None))
        .await;
    let Err(BrokerError::Rejected { message }) = result else {
        panic!("{result:?}")
    };
    assert!(message.contains("NOPE"), "{message}");
}

#[tokio::test]
async fn the_broker_never_prints_its_credentials() {
    let s = Setup::new().await;
    let shown = format!("{:?}", s.broker());
    assert!(
        !shown.contains(SECRET_KEY) && !shown.contains(KEY_ID),
        "{shown}"
    );
}

#[tokio::test]
async fn a_resting_order_is_cancelled_with_delete_by_alpacas_order_id_and_a_filled_one_is_reported_filled(
) {
    let s = Setup::new().await;
    let id = client_order_id();
    let broker = s.broker();
    let placed = broker
        .place(&limit(&id, "AAPL", Side::Buy, "1", "150"))
        .await
        .unwrap();
    let venue_id = placed.venue_order_id.clone().unwrap();

    let cancelled = broker.cancel("AAPL", &id, Some(&venue_id)).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    let delete = s
        .venue
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("a DELETE");
    assert_eq!(delete.path, format!("/v2/orders/{venue_id}"));
    assert_eq!(delete.header("apca-api-key-id"), Some(KEY_ID));
    assert_eq!(s.venue.orders()[0].status, "canceled");

    // Without the venue id (a receiver that never heard back) it is found by client order id;
    // Alpaca's 422 for an order no longer cancelable is answered with what the order is.
    let again = broker.cancel("AAPL", &id, None).await.unwrap();
    assert_eq!(again.status, OrderStatus::Cancelled);

    let filled_id = client_order_id();
    broker
        .place(&market(&filled_id, "AAPL", "1", Some("190")))
        .await
        .unwrap();
    let filled = broker.cancel("AAPL", &filled_id, None).await.unwrap();
    assert_eq!(
        filled.status,
        OrderStatus::Filled,
        "it filled before the cancel"
    );
    let missing = broker.cancel("AAPL", "never-placed-1", None).await;
    assert!(
        matches!(missing, Err(BrokerError::Rejected { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn an_entry_with_take_profit_and_stop_loss_is_one_bracket_order_with_string_prices() {
    let s = Setup::new().await;
    let id = client_order_id();
    let mut order = limit(&id, "AAPL", Side::Buy, "2", "180");
    order.exits.take_profit = Some("200".parse().unwrap());
    order.exits.stop_loss = Some("170.5".parse().unwrap());

    let placement = s.broker().place(&order).await.unwrap();

    assert_eq!(placement.status, OrderStatus::Placed);
    assert_eq!(
        s.venue.order_posts()[0].json(),
        json!({"symbol": "AAPL", "qty": "2", "side": "buy", "type": "limit", "time_in_force": "gtc",
               "limit_price": "180", "client_order_id": id, "order_class": "bracket",
               "take_profit": {"limit_price": "200"}, "stop_loss": {"stop_price": "170.5"}})
    );
    let held = &s.venue.orders()[0];
    assert_eq!(held.order_class, "bracket");

    // One exit: an OTO order. A stop above a buy's base price is refused as Alpaca refuses it.
    let mut one = limit(&client_order_id(), "AAPL", Side::Buy, "1", "180");
    one.exits.stop_loss = Some("170".parse().unwrap());
    s.broker().place(&one).await.unwrap();
    assert_eq!(s.venue.order_posts()[1].json()["order_class"], "oto");
    let mut wrong = limit(&client_order_id(), "AAPL", Side::Buy, "1", "180");
    wrong.exits.stop_loss = Some("185".parse().unwrap());
    let refused = s.broker().place(&wrong).await;
    assert!(
        matches!(&refused, Err(BrokerError::Rejected { message }) if message.contains("stop_loss.stop_price")),
        "{refused:?}"
    );
}
