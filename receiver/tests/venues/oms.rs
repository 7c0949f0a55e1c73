//! The generic HTTP OMS broker against its emulator.

use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::broker::config::HttpBrokerConfig;
use alertgate_receiver::broker::http::HttpBroker;
use alertgate_receiver::broker::{Broker, BrokerError, OrderStatus};
use alertgate_receiver::order::Side;
use alertgate_shared::webhooks::HEADER_TIMESTAMP;
use alertgate_shared::{Clock, HmacSecret, ManualClock, SystemClock, Verifier};
use alertgate_testkit::emulators::oms::OmsEmulator;
use alertgate_testkit::emulators::Fault;
use serde_json::json;
use tempfile::TempDir;

use crate::{client_order_id, limit, market, secret_file};

struct Setup {
    oms: OmsEmulator,
    secret: HmacSecret,
    dir: TempDir,
}

impl Setup {
    async fn new() -> Self {
        let secret = HmacSecret::generate();
        let oms = OmsEmulator::trusting(vec![secret.clone()], Arc::new(SystemClock))
            .await
            .unwrap();
        Self {
            oms,
            secret,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn broker_with(&self, secret: &HmacSecret, clock: Arc<dyn Clock>) -> HttpBroker {
        let config = HttpBrokerConfig {
            url: self.oms.url(),
            hmac_secrets: vec![secret_file(
                self.dir.path(),
                "whsec",
                secret.to_text().expose(),
            )],
            positions_url: None,
            timeout_ms: 500,
        };
        HttpBroker::from_config(&config, clock).unwrap()
    }

    fn broker(&self) -> HttpBroker {
        self.broker_with(&self.secret, Arc::new(SystemClock))
    }
}

#[tokio::test]
async fn an_order_is_posted_as_documented_json_signed_with_standard_webhooks() {
    let s = Setup::new().await;
    let id = client_order_id();
    let order = limit(&id, "BTCUSDT", Side::Buy, "0.5", "42000.10");

    let placement = s.broker().place(&order).await.unwrap();

    assert_eq!(placement.venue_order_id.as_deref(), Some("oms-1"));
    assert_eq!(placement.status, OrderStatus::Placed);
    let request = &s.oms.requests()[0];
    assert_eq!(request.header("webhook-id"), Some(id.as_str()));
    assert_eq!(request.header("content-type"), Some("application/json"));
    let verifier = Verifier::new(Vec::new(), vec![s.secret.clone()], 300).unwrap();
    verifier
        .verify(
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            &request.body,
            SystemClock.now_unix(),
        )
        .unwrap();
    assert_eq!(
        request.json(),
        json!({"client_order_id": id, "account": "main", "symbol": "BTCUSDT", "side": "buy",
               "quantity": "0.5", "order_type": "limit", "limit_price": "42000.1", "stop_price": null,
               "tif": "gtc", "reference_price": null})
    );
}

#[tokio::test]
async fn a_duplicate_delivery_is_answered_409_by_the_oms_and_counts_as_the_same_order() {
    let s = Setup::new().await;
    let order = market(&client_order_id(), "BTCUSDT", "1", Some("42000"));
    let broker = s.broker();

    let first = broker.place(&order).await.unwrap();
    let second = broker.place(&order).await.unwrap();

    assert_eq!(first.venue_order_id, second.venue_order_id);
    assert_eq!(s.oms.orders().len(), 1);
}

#[tokio::test]
async fn a_5xx_after_the_oms_took_the_order_is_retried_and_deduplicated_by_webhook_id() {
    let s = Setup::new().await;
    s.oms
        .fail_next_orders(Fault::AcceptThenServerError { status: 502 }, 1);
    let order = market(&client_order_id(), "BTCUSDT", "1", Some("42000"));
    let broker = s.broker();

    assert!(matches!(
        broker.place(&order).await,
        Err(BrokerError::Transient { .. })
    ));
    let placement = broker.place(&order).await.unwrap();

    assert_eq!(placement.venue_order_id.as_deref(), Some("oms-1"));
    assert_eq!(s.oms.orders().len(), 1);
}

#[tokio::test]
async fn every_attempt_is_signed_with_a_fresh_timestamp() {
    let s = Setup::new().await;
    let clock = ManualClock::at_unix(SystemClock.now_unix());
    let broker = s.broker_with(&s.secret, Arc::new(clock.clone()));
    s.oms
        .fail_next_orders(Fault::ServerError { status: 503 }, 1);
    let order = market(&client_order_id(), "BTCUSDT", "1", None);

    assert!(broker.place(&order).await.is_err());
    clock.advance(time::Duration::seconds(30));
    broker.place(&order).await.unwrap();

    let stamps: Vec<i64> = s
        .oms
        .requests()
        .iter()
        .map(|r| r.header(HEADER_TIMESTAMP).unwrap().parse().unwrap())
        .collect();
    assert_eq!(stamps[1] - stamps[0], 30);
}

#[tokio::test]
async fn a_429_is_transient_with_retry_after() {
    let s = Setup::new().await;
    s.oms.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 4,
        },
        1,
    );

    let result = s
        .broker()
        .place(&market(&client_order_id(), "BTCUSDT", "1", None))
        .await;

    let Err(BrokerError::Transient { retry_after, .. }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(retry_after, Some(Duration::from_secs(4)));
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_with_the_oms_message() {
    let s = Setup::new().await;
    let broker = s.broker_with(&HmacSecret::generate(), Arc::new(SystemClock));

    let result = broker
        .place(&market(&client_order_id(), "BTCUSDT", "1", None))
        .await;

    let Err(BrokerError::Rejected { message }) = result else {
        panic!("{result:?}")
    };
    assert!(
        message.contains("401") && message.contains("no valid signature"),
        "{message}"
    );
    assert!(s.oms.orders().is_empty());
}

#[tokio::test]
async fn with_a_positions_url_the_oms_reports_signed_positions_and_an_unlisted_symbol_is_flat() {
    let s = Setup::new().await;
    s.oms.set_position("BTCUSDT", "-0.5");
    let config = HttpBrokerConfig {
        url: s.oms.url(),
        hmac_secrets: vec![secret_file(
            s.dir.path(),
            "whsec",
            s.secret.to_text().expose(),
        )],
        positions_url: Some(s.oms.positions_url()),
        timeout_ms: 500,
    };
    let broker = HttpBroker::from_config(&config, Arc::new(SystemClock)).unwrap();
    assert!(broker.reports_positions());
    assert!(!s.broker().reports_positions(), "not without positions_url");
    let symbols = ["BTCUSDT".to_owned(), "ETHUSDT".to_owned()];
    let held = broker.positions("main", &symbols).await.unwrap().unwrap();
    assert_eq!(
        held,
        [
            ("BTCUSDT".to_owned(), "-0.5".parse().unwrap()),
            ("ETHUSDT".to_owned(), rust_decimal::Decimal::ZERO)
        ]
    );
    let request = s.oms.requests().pop().unwrap();
    assert_eq!(
        (request.method.as_str(), request.query.as_str()),
        ("GET", "account=main")
    );
    Verifier::new(Vec::new(), vec![s.secret.clone()], 300)
        .unwrap()
        .verify(
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            b"",
            SystemClock.now_unix(),
        )
        .unwrap();
}
