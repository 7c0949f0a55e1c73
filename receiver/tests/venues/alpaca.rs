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

/// The open exit legs of type `kind` at the emulator: (stop or limit price, status).
fn open_legs(s: &Setup, kind: &str) -> Vec<(Option<String>, String)> {
    s.venue
        .legs()
        .into_iter()
        .filter(|l| l.order_type == kind && l.is_open())
        .map(|l| {
            let price = if kind == "stop" {
                l.stop_price
            } else {
                l.limit_price
            };
            (price, l.status)
        })
        .collect()
}

fn patches(s: &Setup) -> Vec<String> {
    s.venue
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path)
        .collect()
}

#[tokio::test]
async fn modifying_a_brackets_stop_replaces_its_stop_leg_once_even_when_the_answer_is_lost() {
    for fault in [
        None,
        Some(Fault::AcceptThenServerError { status: 500 }),
        Some(Fault::AcceptThenHang),
    ] {
        let s = Setup::new().await;
        let id = client_order_id();
        let mut entry = market(&id, "AAPL", "2", Some("190"));
        entry.exits.take_profit = Some("200".parse().unwrap());
        entry.exits.stop_loss = Some("90".parse().unwrap());
        // Answered `accepted`; the market entry fills right after, and its legs go `new`.
        let placed = s.broker().place(&entry).await.unwrap();
        assert_eq!(open_legs(&s, "stop"), [(Some("90".into()), "new".into())]);

        let mut moved = entry.clone();
        moved.exits.stop_loss = Some("95".parse().unwrap());
        if let Some(fault) = fault.clone() {
            s.venue.fail_next_orders(fault.clone(), 1);
            let lost = s
                .broker()
                .modify(&moved, placed.venue_order_id.as_deref())
                .await;
            assert!(
                matches!(lost, Err(BrokerError::Transient { .. })),
                "{fault:?}: {lost:?}"
            );
        }
        // The executor's retry: same request, the order looked up first.
        let answer = s
            .broker()
            .modify(&moved, placed.venue_order_id.as_deref())
            .await
            .unwrap();
        assert_eq!(answer.status, OrderStatus::Filled, "{fault:?}");

        assert_eq!(
            open_legs(&s, "stop"),
            [(Some("95".into()), "new".into())],
            "exactly one live stop, at 95 ({fault:?})"
        );
        assert_eq!(
            open_legs(&s, "limit"),
            [(Some("200".into()), "new".into())],
            "the take-profit is untouched ({fault:?})"
        );
        let stop_leg = s
            .venue
            .legs()
            .into_iter()
            .find(|l| l.order_type == "stop" && l.stop_price.as_deref() == Some("90"))
            .unwrap();
        assert_eq!(stop_leg.status, "replaced", "{fault:?}");
        assert_eq!(
            patches(&s),
            [format!("/v2/orders/{}", stop_leg.id)],
            "one replace of the stop leg, never a second ({fault:?})"
        );
        let body = s
            .venue
            .requests()
            .into_iter()
            .find(|r| r.method == "PATCH")
            .unwrap()
            .json();
        assert_eq!(body, json!({"stop_price": "95"}), "{fault:?}");

        // The same modify again (a trailing stop resent at the same level): nothing to patch.
        s.broker()
            .modify(&moved, placed.venue_order_id.as_deref())
            .await
            .unwrap();
        assert_eq!(patches(&s).len(), 1, "{fault:?}");
    }
}

#[tokio::test]
async fn modifying_a_resting_limit_replaces_it_and_lookups_follow_the_replacement() {
    let s = Setup::new().await;
    let id = client_order_id();
    let order = limit(&id, "AAPL", Side::Buy, "1", "180");
    let placed = s.broker().place(&order).await.unwrap();
    let mut moved = order.clone();
    moved.limit_price = Some("185.5".parse().unwrap());

    let answer = s
        .broker()
        .modify(&moved, placed.venue_order_id.as_deref())
        .await
        .unwrap();

    assert_eq!(answer.status, OrderStatus::Placed);
    let orders = s.venue.orders();
    assert_eq!(orders.len(), 2, "the replacement is a new order");
    assert_eq!(orders[0].status, "replaced");
    assert_eq!(orders[1].replaces.as_deref(), Some(orders[0].id.as_str()));
    assert_eq!(orders[1].limit_price.as_deref(), Some("185.5"));
    assert_eq!(
        answer.venue_order_id.as_deref(),
        Some(orders[1].id.as_str())
    );
    // Looking the order up by alertgate's id (no venue id known) finds the live replacement.
    let found = s.broker().lookup("AAPL", &id).await.unwrap().unwrap();
    assert_eq!(found.venue_order_id, answer.venue_order_id);
    assert_eq!(found.status, OrderStatus::Placed);
    // And cancelling it by alertgate's id cancels the replacement.
    let cancelled = s.broker().cancel("AAPL", &id, None).await.unwrap();
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(s.venue.orders()[1].status, "canceled");

    // A filled order cannot be replaced: Alpaca's 422 is a rejection naming it.
    let filled = market(&client_order_id(), "AAPL", "1", Some("190"));
    let done = s.broker().place(&filled).await.unwrap();
    let late = limit(&filled.client_order_id, "AAPL", Side::Buy, "1", "170");
    let refused = s
        .broker()
        .modify(&late, done.venue_order_id.as_deref())
        .await
        .unwrap();
    assert_eq!(
        refused.status,
        OrderStatus::Filled,
        "nothing open to move: answered as it is"
    );
}
