//! Zerodha (Kite Connect v3) end to end: signed alerts into the receiver, through the executor, to
//! the Kite emulator, which checks the form, the headers and the token the way Kite documents.

use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::broker::config::{BrokerConfig, BrokerKind, ZerodhaConfig};
use alertgate_receiver::broker::zerodha::wire::tag_for;
use alertgate_receiver::broker::{self, Broker};
use alertgate_receiver::journal::MemoryPlacements;
use alertgate_shared::{MessageId, SecretRef, SystemClock};
use alertgate_testkit::emulators::zerodha::{ZerodhaEmulator, ZerodhaEmulatorConfig};
use alertgate_testkit::emulators::Fault;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::{
    envelope_at, spawn_app_with, start_process, Options, ProcessClient, TestApp, Workdir,
};
use crate::secret_file;

const API_KEY: &str = "kitefrontapikey1";
const TOKEN: &str = "day1AccessTokenQ2p9xZ";
const NEXT_TOKEN: &str = "day2AccessTokenW7m3vK";

fn zerodha_config(venue: &ZerodhaEmulator, dir: &std::path::Path, timeout_ms: u64) -> BrokerConfig {
    BrokerConfig {
        kind: BrokerKind::Zerodha,
        zerodha: Some(ZerodhaConfig {
            base_url: venue.base_url(),
            api_key: secret_file(dir, "kite-api-key", API_KEY),
            access_token: secret_file(dir, "kite-access-token", TOKEN),
            timeout_ms,
        }),
        ..BrokerConfig::default()
    }
}

fn options(broker: BrokerConfig) -> Options {
    Options::configured(move |s| {
        s.broker = broker.clone();
        s.executor.inline_deadline_ms = 8000;
        s.executor.max_attempts = 4;
        s.executor.retry_base_ms = 50;
        s.executor.retry_max_ms = 500;
    })
}

struct Kite {
    venue: ZerodhaEmulator,
    app: TestApp,
    dir: TempDir,
}

async fn kite_with(config: ZerodhaEmulatorConfig, timeout_ms: u64) -> Kite {
    let venue = ZerodhaEmulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(options(zerodha_config(&venue, dir.path(), timeout_ms))).await;
    Kite { venue, app, dir }
}

async fn kite() -> Kite {
    kite_with(ZerodhaEmulatorConfig::new(API_KEY, TOKEN), 2000).await
}

/// DESIGN.md section 6's NSE multi-leg example.
fn reliance() -> Value {
    json!({"alertType": "multi_leg_order", "order_legs": [
        {"transactionType": "B", "orderType": "MKT", "quantity": "10", "exchange": "NSE",
         "symbol": "RELIANCE", "instrument": "EQ", "productType": "C", "sort_order": "1",
         "price": "2820.25"}]})
}

fn leg(fields: Value) -> Value {
    let mut leg = json!({"transactionType": "S", "exchange": "NSE", "symbol": "INFY",
                         "quantity": "5", "productType": "I"});
    for (k, v) in fields.as_object().unwrap() {
        leg[k] = v.clone();
    }
    leg
}

fn body(request: &alertgate_testkit::emulators::Recorded) -> String {
    String::from_utf8(request.body.to_vec()).unwrap()
}

#[tokio::test]
async fn the_nse_multi_leg_alert_becomes_the_exact_kite_form_and_is_recorded_with_kites_order_id() {
    let k = kite().await;

    let (_, answer) = k.app.send(&reliance()).await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    let posts = k.venue.order_posts();
    assert_eq!(posts.len(), 1);
    let cid = answer.orders()[0]["client_order_id"].as_str().unwrap();
    assert_eq!(
        body(&posts[0]),
        format!(
            "tradingsymbol=RELIANCE&exchange=NSE&transaction_type=BUY&order_type=MARKET\
             &quantity=10&product=CNC&validity=DAY&tag={}",
            tag_for(cid)
        )
    );
    assert_eq!(posts[0].header("x-kite-version"), Some("3"));
    assert_eq!(
        posts[0].header("authorization"),
        Some(format!("token {API_KEY}:{TOKEN}").as_str())
    );
    assert_eq!(
        posts[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let orders = k.venue.orders();
    assert_eq!(
        answer.orders()[0]["venue_order_id"],
        orders[0].order_id.as_str()
    );
    assert_eq!(answer.orders()[0]["symbol"], "NSE:RELIANCE");
    // Kite does not dedupe: the day's orders were read for the tag before the order was sent.
    let paths: Vec<String> = k
        .venue
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(paths[..2], ["GET /orders", "POST /orders/regular"]);
}

#[tokio::test]
async fn lmt_sl_and_sl_m_legs_carry_price_and_trigger_price_as_kite_requires() {
    let k = kite().await;
    let alert = json!({"alertType": "multi_leg_order", "order_legs": [
        leg(json!({"orderType": "LMT", "price": "1500.5", "sort_order": 1})),
        leg(json!({"orderType": "SL", "price": "1490", "triggerPrice": "1495", "sort_order": 2})),
        leg(json!({"orderType": "SL-M", "triggerPrice": "1480", "price": "0", "productType": "M",
                   "exchange": "NFO", "symbol": "INFY26JANFUT", "quantity": "400", "sort_order": 3})),
    ]});

    let (_, answer) = k.app.send(&alert).await;

    assert_eq!(answer.outcome(), "placed", "{:?}", answer.body);
    let orders = k.venue.orders();
    assert_eq!(orders.len(), 3);
    let fields = |i: usize, names: &[&str]| -> Vec<Option<String>> {
        names
            .iter()
            .map(|n| orders[i].field(n).map(str::to_owned))
            .collect()
    };
    let names = [
        "order_type",
        "price",
        "trigger_price",
        "product",
        "exchange",
        "transaction_type",
    ];
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        fields(0, &names),
        [s("LIMIT"), s("1500.5"), None, s("MIS"), s("NSE"), s("SELL")]
    );
    assert_eq!(
        fields(1, &names),
        [s("SL"), s("1490"), s("1495"), s("MIS"), s("NSE"), s("SELL")]
    );
    assert_eq!(
        fields(2, &names),
        [s("SL-M"), None, s("1480"), s("NRML"), s("NFO"), s("SELL")]
    );
    assert_eq!(orders[2].status, "TRIGGER PENDING");
}

#[tokio::test]
async fn a_fractional_quantity_or_an_unknown_product_type_is_invalid_and_nothing_is_sent() {
    let k = kite().await;
    let mut fractional = reliance();
    fractional["order_legs"][0]["quantity"] = json!("10.5");
    let mut product = reliance();
    product["order_legs"][0]["productType"] = json!("X");
    let mut exchange = reliance();
    exchange["order_legs"][0]["exchange"] = json!("NASDAQ");

    let (_, fractional) = k.app.send(&fractional).await;
    let (_, product) = k.app.send(&product).await;
    let (_, exchange) = k.app.send(&exchange).await;

    assert_eq!(fractional.outcome(), "invalid", "{:?}", fractional.body);
    assert!(
        fractional.body["reason"]
            .as_str()
            .unwrap()
            .contains("quantity 10.5"),
        "{:?}",
        fractional.body
    );
    assert_eq!(product.outcome(), "invalid");
    assert!(product.body["reason"]
        .as_str()
        .unwrap()
        .contains("order_legs[0].productType"));
    assert_eq!(exchange.outcome(), "invalid");
    assert!(exchange.body["reason"].as_str().unwrap().contains("NASDAQ"));
    assert!(k.venue.order_posts().is_empty());
}

#[tokio::test]
async fn an_order_accepted_then_answered_503_is_found_by_tag_and_never_sent_twice() {
    let k = kite().await;
    k.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);

    let (_, answer) = k.app.send(&reliance()).await;

    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    assert_eq!(k.venue.order_posts().len(), 1);
    let orders = k.venue.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        answer.orders()[0]["venue_order_id"],
        orders[0].order_id.as_str()
    );
}

#[tokio::test]
async fn an_order_accepted_then_never_answered_is_found_by_tag_after_the_timeout() {
    let k = kite_with(ZerodhaEmulatorConfig::new(API_KEY, TOKEN), 400).await;
    k.venue.fail_next_orders(Fault::AcceptThenHang, 1);

    let (_, answer) = k.app.send(&reliance()).await;

    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    assert_eq!(k.venue.order_posts().len(), 1);
    assert_eq!(k.venue.orders().len(), 1);
}

#[tokio::test]
async fn a_5xx_before_acceptance_and_a_429_are_retried_and_place_exactly_one_order_each() {
    let k = kite().await;
    k.venue
        .fail_next_orders(Fault::ServerError { status: 502 }, 1);
    let (_, first) = k.app.send(&reliance()).await;
    k.venue.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let (_, second) = k.app.send(&reliance()).await;

    assert_eq!(first.outcome(), "filled", "{:?}", first.body);
    assert_eq!(second.outcome(), "filled", "{:?}", second.body);
    assert_eq!(k.venue.order_posts().len(), 4);
    assert_eq!(k.venue.orders().len(), 2);
}

#[tokio::test]
async fn kites_input_order_and_margin_exceptions_and_rms_rejections_fail_with_kites_message() {
    let mut config = ZerodhaEmulatorConfig::new(API_KEY, TOKEN);
    config.rms_rejects.insert(
        "TCS".into(),
        "RMS:Margin Exceeds, Required:41005, Available:100".into(),
    );
    let k = kite_with(config, 2000).await;
    let cases = [
        (400, "InputException", "Invalid `tradingsymbol`."),
        (
            400,
            "OrderException",
            "Order cannot be placed: market closed.",
        ),
        (
            400,
            "MarginException",
            "Insufficient funds. Required margin is 28202.50.",
        ),
    ];
    for (status, error_type, message) in cases {
        k.venue.answer_next_order_with(status, error_type, message);
        let (_, answer) = k.app.send(&reliance()).await;
        assert_eq!(
            answer.outcome(),
            "failed",
            "{error_type}: {:?}",
            answer.body
        );
        let reason = answer.body["reason"].as_str().unwrap();
        assert!(
            reason.contains(message) && reason.contains(error_type),
            "{reason}"
        );
    }
    let mut tcs = reliance();
    tcs["order_legs"][0]["symbol"] = json!("TCS");
    let (_, rejected) = k.app.send(&tcs).await;

    assert_eq!(rejected.outcome(), "failed", "{:?}", rejected.body);
    let reason = rejected.body["reason"].as_str().unwrap();
    assert!(
        reason.contains("RMS:Margin Exceeds") && reason.contains("rejected"),
        "{reason}"
    );
    assert_eq!(
        k.venue.orders().len(),
        1,
        "only the RMS-rejected order was accepted"
    );
}

#[tokio::test]
async fn an_expired_token_fails_telling_ops_to_renew_it_and_a_rewritten_token_file_is_reread() {
    let k = kite().await;
    k.venue.rotate_token(NEXT_TOKEN);

    let (_, expired) = k.app.send(&reliance()).await;

    assert_eq!(expired.outcome(), "failed", "{:?}", expired.body);
    let reason = expired.body["reason"].as_str().unwrap();
    assert!(
        reason.contains("TokenException")
            && reason.contains("renew it (it changes daily)")
            && reason.contains("SIGHUP")
            && reason.contains("kite-access-token"),
        "{reason}"
    );
    assert!(
        !reason.contains(TOKEN) && !reason.contains(NEXT_TOKEN),
        "{reason}"
    );
    assert!(k.venue.order_posts().is_empty() && k.venue.orders().is_empty());

    // Ops writes the day's token: the next TokenException rereads the file once and retries.
    secret_file(k.dir.path(), "kite-access-token", NEXT_TOKEN);
    let (_, renewed) = k.app.send(&reliance()).await;

    assert_eq!(renewed.outcome(), "filled", "{:?}", renewed.body);
    assert_eq!(k.venue.orders().len(), 1);
    let last = k.venue.requests().last().cloned().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(format!("token {API_KEY}:{NEXT_TOKEN}").as_str())
    );
}

#[tokio::test]
async fn sighup_rereads_the_access_token_file_and_no_token_reaches_the_log() {
    let venue = ZerodhaEmulator::start(ZerodhaEmulatorConfig::new(API_KEY, TOKEN))
        .await
        .unwrap();
    let options = Options::default();
    let work = Workdir::new(&options);
    let broker = zerodha_config(&venue, work.path(), 2000);
    let options = self::options(broker);
    let mut process = start_process(&work, &options).await;
    let client = ProcessClient::new(&work, process.addr);

    venue.rotate_token(NEXT_TOKEN);
    secret_file(work.path(), "kite-access-token", NEXT_TOKEN);
    process.service.reload().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !process
        .service
        .log_text()
        .contains("venue credentials reloaded")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            process.service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = MessageId::generate().to_string();
    let answer = client
        .deliver(
            &id,
            &envelope_at(&reliance(), time::OffsetDateTime::now_utc()),
        )
        .await;

    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    // Every request after the SIGHUP used the new token: none met a TokenException first.
    let requests = venue.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(
        |r| r.header("authorization") == Some(format!("token {API_KEY}:{NEXT_TOKEN}").as_str())
    ));
    let log = process.service.log_text();
    assert!(!log.contains(TOKEN) && !log.contains(NEXT_TOKEN) && !log.contains(API_KEY));
    process.service.stop().await.unwrap();
}

#[test]
fn zerodha_is_built_from_its_section_and_an_unreadable_token_is_named_by_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig {
        kind: BrokerKind::Zerodha,
        zerodha: Some(ZerodhaConfig {
            base_url: "https://api.kite.trade".into(),
            api_key: secret_file(dir.path(), "key", API_KEY),
            access_token: secret_file(dir.path(), "token", TOKEN),
            timeout_ms: 5000,
        }),
        ..BrokerConfig::default()
    };
    let build = |c: &BrokerConfig| {
        broker::build(
            c,
            Arc::new(MemoryPlacements::default()),
            Arc::new(SystemClock),
        )
    };
    let venue: Arc<dyn Broker> = build(&config).unwrap();
    assert_eq!(venue.name(), "zerodha");
    assert!(venue.exchange_in_symbol() && venue.spot_only());
    assert!(!format!("{venue:?}").contains(TOKEN));

    if let Some(z) = config.zerodha.as_mut() {
        z.access_token = SecretRef::Env("ALERTGATE_TEST_UNSET_KITE_TOKEN".into());
    }
    let err = build(&config).err().unwrap().to_string();
    assert!(
        err.contains("zerodha.access_token") && err.contains("ALERTGATE_TEST_UNSET_KITE_TOKEN"),
        "{err}"
    );
    let missing = BrokerConfig {
        kind: BrokerKind::Zerodha,
        ..BrokerConfig::default()
    };
    assert!(build(&missing)
        .err()
        .unwrap()
        .to_string()
        .contains("[broker.zerodha]"));
}
