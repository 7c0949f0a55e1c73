//! Binance Spot protective exits: the OCO order list placed after the entry filled, exactly
//! once across lost answers and restarts, followed when a leg fills, cancelled and moved as a
//! list. First the adapter against the emulator, then the receiver end to end.

use std::sync::Arc;

use alertgate_receiver::broker::binance::BinanceBroker;
use alertgate_receiver::broker::config::{BinanceConfig, BrokerConfig, BrokerKind};
use alertgate_receiver::broker::{Broker, OrderStatus};
use alertgate_receiver::order::{OrderRequest, OrderType, Side};
use alertgate_shared::{Clock, SystemClock};
use alertgate_testkit::emulators::binance::{BinanceEmulator, BinanceEmulatorConfig};
use alertgate_testkit::emulators::{parse_params, Fault, Recorded};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tempfile::TempDir;

use alertgate_testkit::until;

use crate::helpers::{
    envelope_at, spawn_app_with, start_process, Options, ProcessClient, TestApp, Workdir,
};
use crate::{client_order_id, limit, market, secret_file};

const KEY: &str = "binance-oco-key";
const SECRET: &str = "binance-oco-secret";

async fn emulator() -> BinanceEmulator {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    BinanceEmulator::start(BinanceEmulatorConfig::hmac(KEY, SECRET, clock))
        .await
        .unwrap()
}

fn config(venue: &BinanceEmulator, dir: &TempDir, timeout_ms: u64) -> BinanceConfig {
    BinanceConfig {
        base_url: venue.base_url(),
        api_key: secret_file(dir.path(), "key", KEY),
        api_secret: Some(secret_file(dir.path(), "secret", SECRET)),
        private_key: None,
        recv_window_ms: 60_000,
        timeout_ms,
    }
}

fn broker(venue: &BinanceEmulator, dir: &TempDir) -> BinanceBroker {
    BinanceBroker::from_config(&config(venue, dir, 500), Arc::new(SystemClock)).unwrap()
}

/// The exits the planner makes for a filled buy of `quantity`: a take-profit limit sell and a
/// stop-loss stop sell, ids derived from the entry's.
fn exits(entry: &str, quantity: &str, tp: &str, sl: &str) -> Vec<OrderRequest> {
    let tp = limit(&format!("{entry}o1"), "BTCUSDT", Side::Sell, quantity, tp);
    let sl = OrderRequest {
        client_order_id: format!("{entry}o2"),
        side: Side::Sell,
        order_type: OrderType::Stop,
        stop_price: Some(sl.parse().unwrap()),
        ..market(&format!("{entry}o2"), "BTCUSDT", quantity, None)
    };
    vec![tp, sl]
}

fn oco_posts(venue: &BinanceEmulator) -> Vec<Recorded> {
    venue
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v3/orderList/oco")
        .collect()
}

fn hmac_hex(payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Places a filled market buy of 0.01 BTCUSDT at 42000; answers its id and its exits at
/// 46000 / 40000, not placed yet.
async fn filled_entry(b: &BinanceBroker) -> (String, Vec<OrderRequest>) {
    let entry = client_order_id();
    let filled = b
        .place(&market(&entry, "BTCUSDT", "0.01", Some("42000")))
        .await
        .unwrap();
    assert_eq!(filled.status, OrderStatus::Filled);
    let pair = exits(&entry, "0.01", "46000", "40000");
    (entry, pair)
}

/// [`filled_entry`], and its exits placed.
async fn filled_entry_with_exits(
    venue: &BinanceEmulator,
    b: &BinanceBroker,
) -> (String, Vec<OrderRequest>) {
    let (entry, pair) = filled_entry(b).await;
    let placed = b.place_exits(&entry, &pair).await.unwrap();
    assert_eq!(placed.len(), 2);
    assert!(placed.iter().all(|p| p.status == OrderStatus::Placed));
    assert_eq!(venue.live_order_lists().len(), 1);
    (entry, pair)
}

#[tokio::test]
async fn the_exits_of_a_filled_buy_are_one_signed_sell_oco_with_the_documented_parameters() {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&venue, &dir);

    let (entry, pair) = filled_entry_with_exits(&venue, &b).await;

    let posts = oco_posts(&venue);
    assert_eq!(posts.len(), 1);
    let post = &posts[0];
    assert_eq!(post.header("x-mbx-apikey"), Some(KEY));
    let (payload, signature) = post.query.rsplit_once("&signature=").unwrap();
    assert_eq!(signature, hmac_hex(payload));
    let params: Vec<(String, String)> = parse_params(payload)
        .into_iter()
        .filter(|(k, _)| k != "timestamp")
        .collect();
    let expected: Vec<(String, String)> = [
        ("symbol", "BTCUSDT".to_owned()),
        ("listClientOrderId", format!("{entry}-oco")),
        ("side", "SELL".to_owned()),
        ("quantity", "0.01".to_owned()),
        ("aboveType", "LIMIT_MAKER".to_owned()),
        ("aboveClientOrderId", pair[0].client_order_id.clone()),
        ("abovePrice", "46000".to_owned()),
        ("belowType", "STOP_LOSS".to_owned()),
        ("belowClientOrderId", pair[1].client_order_id.clone()),
        ("belowStopPrice", "40000".to_owned()),
        ("newOrderRespType", "RESULT".to_owned()),
        ("recvWindow", "60000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(params, expected);
    let list = &venue.order_lists()[0];
    let legs: Vec<(String, String, String)> = venue
        .orders()
        .into_iter()
        .filter(|o| list.order_ids.contains(&o.order_id))
        .map(|o| (o.client_order_id, o.order_type, o.status))
        .collect();
    assert_eq!(
        legs,
        [
            (
                pair[1].client_order_id.clone(),
                "STOP_LOSS".into(),
                "NEW".into()
            ),
            (
                pair[0].client_order_id.clone(),
                "LIMIT_MAKER".into(),
                "NEW".into()
            ),
        ]
    );
}

#[tokio::test]
async fn a_lost_answer_to_the_oco_is_looked_up_and_a_retry_or_restart_never_places_a_second_list() {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&venue, &dir);
    let (entry, pair) = filled_entry(&b).await;

    venue.fault_order_lists(Fault::AcceptThenServerError { status: 503 }, 1);
    let first = b.place_exits(&entry, &pair).await.unwrap();
    venue.fault_order_lists(Fault::AcceptThenHang, 1);
    let again = broker(&venue, &dir)
        .place_exits(&entry, &pair)
        .await
        .unwrap();

    assert_eq!(venue.order_lists().len(), 1, "one list at the venue");
    assert_eq!(
        oco_posts(&venue).len(),
        1,
        "the retry found it and sent nothing"
    );
    assert_eq!(first, again);
    let ids: Vec<String> = venue.order_lists()[0]
        .order_ids
        .iter()
        .map(i64::to_string)
        .collect();
    for p in &first {
        assert!(ids.contains(p.venue_order_id.as_ref().unwrap()), "{p:?}");
    }
}

#[tokio::test]
async fn an_oco_never_accepted_is_transient_and_its_retry_places_exactly_one_list() {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&venue, &dir);
    let (entry, pair) = filled_entry(&b).await;

    venue.fault_order_lists(Fault::Hang, 1);
    let lost = b.place_exits(&entry, &pair).await;
    assert!(
        matches!(
            lost,
            Err(alertgate_receiver::broker::BrokerError::Transient { .. })
        ),
        "{lost:?}"
    );
    assert!(venue.order_lists().is_empty());
    b.place_exits(&entry, &pair).await.unwrap();

    assert_eq!(venue.order_lists().len(), 1);
}

#[tokio::test]
async fn when_the_take_profit_fills_binance_expires_the_stop_and_a_lookup_reports_both() {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&venue, &dir);
    let (_, pair) = filled_entry_with_exits(&venue, &b).await;

    assert!(venue.fill_order(&pair[0].client_order_id));

    let tp = b
        .lookup_working("BTCUSDT", &pair[0].client_order_id, None)
        .await
        .unwrap()
        .unwrap();
    let sl = b
        .lookup_working("BTCUSDT", &pair[1].client_order_id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tp.status, OrderStatus::Filled);
    assert_eq!(tp.average_price, Some("46000".parse().unwrap()));
    assert_eq!(sl.status, OrderStatus::Cancelled, "EXPIRED by the venue");
    assert!(venue.live_order_lists().is_empty());
}

#[tokio::test]
async fn cancelling_the_exits_deletes_the_list_and_a_second_cancel_answers_the_same() {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&venue, &dir);
    let (_, pair) = filled_entry_with_exits(&venue, &b).await;
    let legs: Vec<(String, Option<String>)> = venue
        .orders()
        .into_iter()
        .filter(|o| o.order_list_id >= 0)
        .map(|o| (o.client_order_id, Some(o.order_id.to_string())))
        .collect();
    assert_eq!(legs.len(), 2);

    let cancelled = b.cancel_exits("BTCUSDT", &legs).await.unwrap();
    let again = b.cancel_exits("BTCUSDT", &legs).await.unwrap();

    assert!(cancelled.iter().all(|p| p.status == OrderStatus::Cancelled));
    assert_eq!(cancelled, again);
    assert!(venue.live_order_lists().is_empty());
    let deletes: Vec<Recorded> = venue
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path == "/api/v3/orderList")
        .collect();
    assert_eq!(deletes.len(), 1, "the second cancel found it done");
    assert_eq!(
        deletes[0].param("orderListId"),
        Some(venue.order_lists()[0].order_list_id.to_string())
    );
    let _ = pair;
}

#[tokio::test]
async fn moving_the_stop_leaves_exactly_one_live_list_also_when_the_answer_is_lost_and_retried() {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let b = broker(&venue, &dir);
    let (entry, pair) = filled_entry_with_exits(&venue, &b).await;
    let venue_ids: Vec<Option<String>> = pair
        .iter()
        .map(|e| {
            venue
                .orders()
                .into_iter()
                .find(|o| o.client_order_id == e.client_order_id)
                .map(|o| o.order_id.to_string())
        })
        .collect();
    let mut moved = pair.clone();
    moved[1].stop_price = Some("40500".parse().unwrap());
    let request: Vec<(OrderRequest, Option<String>)> =
        moved.iter().cloned().zip(venue_ids).collect();

    venue.fault_order_lists(Fault::AcceptThenServerError { status: 503 }, 1);
    let first = b.modify_exits(&entry, &request).await.unwrap();
    let retried = broker(&venue, &dir)
        .modify_exits(&entry, &request)
        .await
        .unwrap();

    assert_eq!(first, retried);
    let live = venue.live_order_lists();
    assert_eq!(live.len(), 1, "exactly one live list");
    assert_eq!(
        venue.order_lists().len(),
        2,
        "the old one cancelled, one new"
    );
    let stop = venue
        .orders()
        .into_iter()
        .find(|o| live[0].order_ids.contains(&o.order_id) && o.order_type == "STOP_LOSS")
        .unwrap();
    assert_eq!(stop.stop_price.as_deref(), Some("40500"));
    assert_eq!(first[1].venue_order_id, Some(stop.order_id.to_string()));
    assert!(first.iter().all(|p| p.status == OrderStatus::Placed));
}

// The receiver end to end.

struct Receiver {
    venue: BinanceEmulator,
    app: TestApp,
    _dir: TempDir,
}

fn options(broker: BrokerConfig) -> Options {
    Options::configured(move |s| {
        s.broker = broker.clone();
        s.executor.inline_deadline_ms = 8000;
        s.executor.max_attempts = 3;
        s.executor.retry_base_ms = 20;
        s.executor.retry_max_ms = 100;
        s.reconcile.interval_seconds = 0;
    })
}

async fn receiver() -> Receiver {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerConfig {
        kind: BrokerKind::Binance,
        binance: Some(config(&venue, &dir, 1000)),
        ..BrokerConfig::default()
    };
    let app = spawn_app_with(options(broker)).await;
    Receiver {
        venue,
        app,
        _dir: dir,
    }
}

fn protected_buy(extra: Value) -> Value {
    let mut alert = json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "0.01",
                           "price": "42000", "take_profit": "46000", "stop_loss": "40000"});
    if let (Some(a), Some(e)) = (alert.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    alert
}

/// The journal's orders of message `id`, as (client id, status, venue order id).
async fn journaled(app: &TestApp, id: &str) -> Vec<(String, String, Value)> {
    app.message(id)
        .await
        .orders()
        .iter()
        .map(|o| {
            (
                o["client_order_id"].as_str().unwrap().to_owned(),
                o["status"].as_str().unwrap().to_owned(),
                o["venue_order_id"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_protected_market_buy_gets_one_oco_after_its_fill_and_the_journal_follows_the_take_profit(
) {
    let r = receiver().await;

    let (id, answer) = r.app.send(&protected_buy(json!({}))).await;

    assert_eq!(answer.outcome(), "placed", "{:?}", answer.body);
    let lists = r.venue.order_lists();
    assert_eq!(lists.len(), 1);
    let orders = journaled(&r.app, &id).await;
    assert_eq!(orders.len(), 3, "{orders:?}");
    assert_eq!(orders[0].1, "filled");
    let post = &oco_posts(&r.venue)[0];
    assert_eq!(
        post.param("listClientOrderId"),
        Some(format!("{}-oco", orders[0].0))
    );
    assert_eq!(
        post.param("aboveClientOrderId").as_deref(),
        Some(orders[1].0.as_str())
    );
    assert_eq!(
        post.param("belowClientOrderId").as_deref(),
        Some(orders[2].0.as_str())
    );
    assert_eq!(post.param("quantity").as_deref(), Some("0.01"));
    for (_, status, venue_id) in &orders[1..] {
        assert_eq!(status, "placed");
        let venue_id: i64 = venue_id.as_str().unwrap().parse().unwrap();
        assert!(lists[0].order_ids.contains(&venue_id));
    }

    assert!(r.venue.fill_order(&orders[1].0));
    let pass = r.app.reconciler.run_once().await.unwrap();

    assert_eq!(pass.followed, 2, "the take-profit filled, the stop expired");
    let after = journaled(&r.app, &id).await;
    assert_eq!(after[1].1, "filled");
    assert_eq!(after[2].1, "cancelled");
    assert_eq!(r.app.message(&id).await.outcome(), "filled");
    let positions = r.app.positions().await;
    assert_eq!(
        positions[0]["position"], "0",
        "bought 0.01, sold 0.01 at the take-profit"
    );
    assert_eq!(
        r.app.reconciler.run_once().await.unwrap().followed,
        0,
        "nothing works any more"
    );
}

#[tokio::test]
async fn a_resting_protected_limit_gets_its_oco_when_the_receiver_sees_it_filled() {
    let r = receiver().await;
    let (id, answer) = r
        .app
        .send(&protected_buy(
            json!({"order_type": "limit", "limit_price": "41000", "tif": "gtc"}),
        ))
        .await;
    assert_eq!(answer.outcome(), "placed", "{:?}", answer.body);
    assert!(r.venue.order_lists().is_empty(), "nothing to protect yet");

    r.venue.fill_open_orders();
    r.app.reconciler.run_once().await.unwrap();

    let orders = journaled(&r.app, &id).await;
    assert_eq!(orders[0].1, "filled");
    assert_eq!(
        (orders[1].1.as_str(), orders[2].1.as_str()),
        ("placed", "placed")
    );
    assert_eq!(r.venue.live_order_lists().len(), 1);
    r.app.reconciler.run_once().await.unwrap();
    assert_eq!(r.venue.order_lists().len(), 1, "placed once");
}

#[tokio::test]
async fn a_receiver_killed_while_the_oco_answer_is_lost_places_the_list_once_after_the_restart() {
    let venue = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let binance = |timeout_ms: u64| BrokerConfig {
        kind: BrokerKind::Binance,
        binance: Some(config(&venue, &dir, timeout_ms)),
        ..BrokerConfig::default()
    };
    let slow = options(binance(60_000));
    let work = Workdir::new(&slow);
    let mut first = start_process(&work, &slow).await;
    let client = ProcessClient::new(&work, first.addr);
    // Binance takes the OCO after the entry filled, and its answer never comes back.
    venue.fault_order_lists(Fault::AcceptThenHang, 1);
    let alert = protected_buy(json!({}));
    let envelope = envelope_at(&alert, time::OffsetDateTime::now_utc());
    let delivery = tokio::spawn({
        let client = ProcessClient::new(&work, first.addr);
        let envelope = envelope.clone();
        async move { client.deliver("msg_oco_restart", &envelope).await }
    });
    until("the OCO to reach Binance", || async {
        !venue.order_lists().is_empty()
    })
    .await;
    first.service.kill9().unwrap();
    drop(delivery);
    drop(client);

    let mut second = start_process(&work, &options(binance(1000))).await;
    let client = ProcessClient::new(&work, second.addr);
    until("the restarted receiver to journal the exits", || async {
        let orders = client.orders().await;
        let exits = orders
            .iter()
            .filter(|o| o["client_order_id"] != "msg_oco_restart-0")
            .filter(|o| o["status"] == "placed")
            .count();
        orders.len() == 3 && exits == 2
    })
    .await;
    let again = client.deliver("msg_oco_restart", &envelope).await;
    second.service.stop().await.unwrap();

    assert_eq!(again.outcome(), "placed", "{:?}", again.body);
    assert_eq!(venue.order_lists().len(), 1, "the list is placed once");
    assert_eq!(oco_posts(&venue).len(), 1, "found by its id, never resent");
    let list = &venue.order_lists()[0];
    for exit in &again.orders()[1..] {
        let venue_id: i64 = exit["venue_order_id"].as_str().unwrap().parse().unwrap();
        assert!(list.order_ids.contains(&venue_id), "{exit}");
    }
}

#[tokio::test]
async fn a_cancel_alert_cancels_the_oco_as_a_list_and_reports_both_legs() {
    let r = receiver().await;
    let (id, _) = r.app.send(&protected_buy(json!({}))).await;
    let legs: Vec<String> = journaled(&r.app, &id).await[1..]
        .iter()
        .map(|(cid, _, _)| cid.clone())
        .collect();

    let (_, answer) = r
        .app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "cancel"}))
        .await;

    assert_eq!(answer.outcome(), "cancelled", "{:?}", answer.body);
    let reason = answer.body["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for leg in &legs {
        assert!(reason.contains(leg.as_str()), "{reason}");
    }
    assert!(r.venue.live_order_lists().is_empty());
    assert!(r
        .venue
        .requests()
        .iter()
        .any(|q| q.method == "DELETE" && q.path == "/api/v3/orderList"));
    let after = journaled(&r.app, &id).await;
    assert_eq!(
        (after[1].1.as_str(), after[2].1.as_str()),
        ("cancelled", "cancelled")
    );
}

#[tokio::test]
async fn a_modify_alert_moves_the_stop_to_one_new_list_even_when_the_answer_is_lost() {
    let r = receiver().await;
    let (id, _) = r.app.send(&protected_buy(json!({}))).await;

    r.venue
        .fault_order_lists(Fault::AcceptThenServerError { status: 503 }, 1);
    let (_, answer) = r
        .app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "modify", "stop_loss": "40500"}))
        .await;

    assert_eq!(answer.outcome(), "placed", "{:?}", answer.body);
    let live = r.venue.live_order_lists();
    assert_eq!(live.len(), 1, "exactly one live list");
    assert_eq!(r.venue.order_lists().len(), 2);
    let legs: Vec<_> = r
        .venue
        .orders()
        .into_iter()
        .filter(|o| live[0].order_ids.contains(&o.order_id))
        .collect();
    let stop = legs.iter().find(|o| o.order_type == "STOP_LOSS").unwrap();
    let take = legs.iter().find(|o| o.order_type == "LIMIT_MAKER").unwrap();
    assert_eq!(stop.stop_price.as_deref(), Some("40500"));
    assert_eq!(
        take.price.as_deref(),
        Some("46000"),
        "the take-profit stays"
    );
    let orders = r.app.message(&id).await;
    let exits = &orders.orders()[1..];
    assert_eq!(exits[1]["stop_price"], "40500");
    assert_eq!(exits[1]["venue_order_id"], stop.order_id.to_string());
    assert_eq!(exits[0]["venue_order_id"], take.order_id.to_string());

    // The journal follows the new list: its take-profit fills, its stop expires.
    assert!(r.venue.fill_order(&take.client_order_id));
    r.app.reconciler.run_once().await.unwrap();
    assert_eq!(r.app.message(&id).await.outcome(), "filled");
}

#[tokio::test]
async fn a_stop_on_the_wrong_side_of_the_price_is_invalid_and_nothing_reaches_binance() {
    let r = receiver().await;

    let (_, answer) = r
        .app
        .send(&protected_buy(json!({"stop_loss": "43000"})))
        .await;

    assert_eq!(answer.outcome(), "invalid", "{:?}", answer.body);
    assert!(
        answer.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("stop_loss"),
        "{:?}",
        answer.body
    );
    assert!(r.venue.order_posts().is_empty());
}
