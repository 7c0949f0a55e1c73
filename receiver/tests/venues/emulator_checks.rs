//! The emulators refuse what the venues refuse: without this, a broker test passing against an
//! emulator would prove little.

use std::sync::Arc;

use alertgate_shared::{Clock, HmacSecret, SystemClock};
use alertgate_testkit::emulators::alpaca::{AlpacaEmulator, AlpacaEmulatorConfig};
use alertgate_testkit::emulators::binance::{BinanceEmulator, BinanceEmulatorConfig};
use alertgate_testkit::emulators::oms::OmsEmulator;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const KEY: &str = "emulator-key";
const SECRET: &str = "emulator-secret";

fn sign(payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    format!(
        "{payload}&signature={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// POSTs `params` (plus recvWindow/timestamp at `ts_ms`) signed, and returns Binance's code.
async fn binance_code(venue: &BinanceEmulator, params: &str, ts_ms: i64) -> (u16, i64, String) {
    binance_post(venue, "/api/v3/order", params, ts_ms).await
}

/// POSTs `params` to `path` as [`binance_code`] does.
async fn binance_post(
    venue: &BinanceEmulator,
    path: &str,
    params: &str,
    ts_ms: i64,
) -> (u16, i64, String) {
    let query = sign(&format!("{params}&recvWindow=5000&timestamp={ts_ms}"));
    let response = reqwest::Client::new()
        .post(format!("{}{path}?{query}", venue.base_url()))
        .header("X-MBX-APIKEY", KEY)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["code"].as_i64().unwrap_or(0),
        body["msg"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn the_binance_emulator_refuses_requests_binance_refuses() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let venue = BinanceEmulator::start(BinanceEmulatorConfig::hmac(KEY, SECRET, clock.clone()))
        .await
        .unwrap();
    let now = clock.now_unix_ms();
    let base = "symbol=BTCUSDT&side=BUY";

    let cases = [
        (
            "type=LIMIT&quantity=0.01&price=40000",
            now,
            -1102,
            "Mandatory parameter 'timeInForce'",
        ),
        (
            "type=MARKET&timeInForce=GTC&quantity=0.01",
            now,
            -1106,
            "Parameter 'timeInForce' sent when not required.",
        ),
        ("type=MARKET&quantity=1E-2", now, -1100, "quantity"),
        (
            "type=MARKET&quantity=0.01&newClientOrderId=has.dot",
            now,
            -1100,
            "newClientOrderId",
        ),
        (
            "type=MARKET&quantity=0.01&color=blue",
            now,
            -1104,
            "Not all sent parameters were read",
        ),
        (
            "type=MARKET&quantity=0.01",
            now - 6000,
            -1021,
            "outside of the recvWindow",
        ),
        (
            "type=MARKET&quantity=0.01",
            now + 2000,
            -1021,
            "outside of the recvWindow",
        ),
        (
            "type=LIMIT&timeInForce=GTC&quantity=0.01&price=40000.001",
            now,
            -1013,
            "Filter failure: PRICE_FILTER",
        ),
        (
            "type=LIMIT&timeInForce=GTC&quantity=0.011111&price=40000",
            now,
            -1013,
            "Filter failure: LOT_SIZE",
        ),
        (
            "type=LIMIT&timeInForce=GTC&quantity=0.0001&price=40000",
            now,
            -1013,
            "Filter failure: NOTIONAL",
        ),
        (
            "type=TAKE_PROFIT_MARKET&quantity=0.01",
            now,
            -1116,
            "Invalid orderType.",
        ),
    ];
    for (params, ts, code, text) in cases {
        let (status, got, msg) = binance_code(&venue, &format!("{base}&{params}"), ts).await;
        assert_eq!((status, got), (400, code), "{params}: {msg}");
        assert!(msg.contains(text), "{params}: {msg}");
    }

    let tampered = sign(&format!("{base}&type=MARKET&quantity=0.01&timestamp={now}"))
        .replace("quantity=0.01", "quantity=0.02");
    let response = reqwest::Client::new()
        .post(format!("{}/api/v3/order?{tampered}", venue.base_url()))
        .header("X-MBX-APIKEY", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["code"], -1022);
    assert!(venue.orders().is_empty());
}

#[tokio::test]
async fn the_alpaca_emulator_refuses_requests_alpaca_refuses() {
    let venue = AlpacaEmulator::start(AlpacaEmulatorConfig::new(KEY, SECRET))
        .await
        .unwrap();
    let post = |body: Value, secret: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/v2/orders", venue.base_url()))
            .header("APCA-API-KEY-ID", KEY)
            .header("APCA-API-SECRET-KEY", secret)
            .json(&body)
            .send()
    };
    let ok = json!({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"});

    let unauthorized = post(ok.clone(), "nope").await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(
        unauthorized.json::<Value>().await.unwrap(),
        json!({"code": 40110000, "message": "request is not authorized"})
    );

    let cases = [
        (json!({"qty": 1}), "qty must be a string decimal"),
        (json!({"type": "limit"}), "limit_price is required"),
        (
            json!({"type": "stop_limit", "limit_price": "1"}),
            "stop_price is required",
        ),
        (json!({"time_in_force": "week"}), "invalid time_in_force"),
        (
            json!({"client_order_id": "x".repeat(49)}),
            "no more than 48 characters",
        ),
    ];
    for (change, text) in cases {
        let mut body = ok.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = post(body, SECRET).await.unwrap();
        assert_eq!(response.status(), 422, "{change}");
        let message = response.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(text), "{change}: {message}");
    }
    assert!(venue.orders().is_empty());
}

#[tokio::test]
async fn the_oms_emulator_refuses_unsigned_and_stale_orders() {
    let secret = HmacSecret::generate();
    let oms = OmsEmulator::trusting(vec![secret.clone()], Arc::new(SystemClock))
        .await
        .unwrap();
    let signer = alertgate_shared::Signer::new(Vec::new(), vec![secret]).unwrap();
    let body = br#"{"client_order_id":"c","account":"main","symbol":"X","side":"buy","quantity":"1","order_type":"market","tif":"gtc"}"#;
    let send = |ts: i64, signature: String| {
        reqwest::Client::new()
            .post(oms.url())
            .header("webhook-id", "c")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
    };
    let now = SystemClock.now_unix();

    let unsigned = send(now, "v1,AAAA".into()).await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(
        unsigned.json::<Value>().await.unwrap()["error"],
        "bad_signature"
    );
    let stale = send(now - 600, signer.sign("c", now - 600, body))
        .await
        .unwrap();
    assert_eq!(
        stale.json::<Value>().await.unwrap()["error"],
        "stale_timestamp"
    );
    let good = send(now, signer.sign("c", now, body)).await.unwrap();
    assert_eq!(good.status(), 201);
}

#[tokio::test]
async fn the_emulator_refuses_ocos_binance_refuses() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let venue = BinanceEmulator::start(BinanceEmulatorConfig::hmac(KEY, SECRET, clock.clone()))
        .await
        .unwrap();
    let oco = |params: String| {
        let venue = &venue;
        let now = clock.now_unix_ms();
        async move { binance_post(venue, "/api/v3/orderList/oco", &params, now).await }
    };
    venue.set_balance("BTC", "1".parse().unwrap());
    let sell = "symbol=BTCUSDT&side=SELL&quantity=0.01";
    let good = "aboveType=LIMIT_MAKER&abovePrice=46000&belowType=STOP_LOSS&belowStopPrice=40000";
    let cases = [
        (format!("symbol=BTCUSDT&side=SELL&{good}"), -1102, "'quantity'"),
        (format!("{sell}&aboveType=LIMIT_MAKER&abovePrice=46000"), -1102, "'belowType'"),
        (
            format!("{sell}&aboveType=STOP_LOSS&aboveStopPrice=46000&belowType=LIMIT_MAKER&belowPrice=40000"),
            -1197,
            "must be below",
        ),
        (
            format!("{sell}&aboveType=LIMIT_MAKER&abovePrice=46000&belowType=STOP_LOSS"),
            -1102,
            "'belowStopPrice'",
        ),
        (
            format!("{sell}&aboveType=LIMIT_MAKER&abovePrice=46000&aboveTimeInForce=GTC&belowType=STOP_LOSS&belowStopPrice=40000"),
            -1106,
            "'aboveTimeInForce'",
        ),
        // The take-profit below the last price (42000) would take: the prices are related wrongly.
        (
            format!("{sell}&aboveType=LIMIT_MAKER&abovePrice=41000&belowType=STOP_LOSS&belowStopPrice=40000"),
            -2010,
            "relationship of the prices",
        ),
        (
            format!("{sell}&aboveType=LIMIT_MAKER&abovePrice=46000&belowType=STOP_LOSS&belowStopPrice=43000"),
            -2010,
            "relationship of the prices",
        ),
        (
            format!("{sell}&aboveType=LIMIT_MAKER&abovePrice=46000.001&belowType=STOP_LOSS&belowStopPrice=40000"),
            -1013,
            "PRICE_FILTER",
        ),
        (
            format!("symbol=BTCUSDT&side=SELL&quantity=5&{good}"),
            -2010,
            "insufficient balance",
        ),
    ];
    for (params, code, msg) in cases {
        let (status, got, text) = oco(params.clone()).await;
        assert_eq!((status, got), (400, code), "{params}: {text}");
        assert!(text.contains(msg), "{params}: {text}");
    }
    assert!(venue.order_lists().is_empty());

    let listed = format!("{sell}&listClientOrderId=list-1&{good}");
    assert_eq!(oco(listed.clone()).await.0, 200);
    let (status, code, msg) = oco(listed).await;
    assert_eq!(
        (status, code, msg.as_str()),
        (400, -2010, "Duplicate order sent.")
    );
    assert_eq!(venue.order_lists().len(), 1);
}
