//! Numbers a relay could sign that no order should be made of: `1e400`, `NaN`, `-0`, negative
//! quantities and prices; and the tiny one that must be kept exactly, `0.0000000001`. Bodies are
//! written as text, since a JSON library would refuse to produce most of them.

use alertgate_shared::envelope::format_millis;

use alertgate_shared::Clock;

use crate::helpers::*;

/// A signed delivery of an envelope whose alert has `quantity` (and `limit_price`) written verbatim.
async fn deliver_quantity(app: &TestApp, id: &str, quantity: &str, limit_price: &str) -> Answer {
    let body = format!(
        r#"{{"type":"tradingview.alert","account":"main","received_at":"{}","source_ip":"52.89.214.238","alert":{{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":{quantity},"order_type":"limit","limit_price":{limit_price},"price":"100"}}}}"#,
        format_millis(app.clock.now())
    );
    app.deliver(id, body.as_bytes()).await
}

fn reason(a: &Answer) -> String {
    a.body["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn quantities_that_are_not_positive_finite_decimals_are_invalid_and_name_the_field() {
    let app = spawn_app().await;
    for (n, quantity) in [
        r#""1e400""#,
        r#""-1e400""#,
        r#""NaN""#,
        r#""nan""#,
        r#""Infinity""#,
        r#""-0""#,
        "-0",
        "0",
        "-0.0",
        r#""-1""#,
        "-1",
        "-0.5",
        r#""0x10""#,
        r#""1,5""#,
        r#""""#,
        "null",
        "true",
        "[1]",
    ]
    .iter()
    .enumerate()
    {
        let a = deliver_quantity(&app, &format!("msg_q{n}"), quantity, r#""100""#).await;
        assert_eq!(a.status, 200, "{quantity}: {:?}", a.body);
        assert_eq!(a.outcome(), "invalid", "{quantity}: {:?}", a.body);
        assert!(
            reason(&a).starts_with("quantity"),
            "{quantity}: {}",
            reason(&a)
        );
        assert!(a.orders().is_empty());
    }
    assert!(app.all_orders().await.is_empty());
}

#[tokio::test]
async fn negative_zero_and_nan_prices_are_invalid_and_name_the_field() {
    let app = spawn_app().await;
    for (n, price) in [r#""-100""#, "-100", "0", "-0", r#""NaN""#, r#""1e400""#]
        .iter()
        .enumerate()
    {
        let a = deliver_quantity(&app, &format!("msg_p{n}"), r#""1""#, price).await;
        assert_eq!(a.outcome(), "invalid", "{price}: {:?}", a.body);
        assert!(
            reason(&a).starts_with("limit_price"),
            "{price}: {}",
            reason(&a)
        );
    }
    assert!(app.all_orders().await.is_empty());
}

#[tokio::test]
async fn numbers_json_cannot_hold_make_the_whole_envelope_invalid_and_nothing_is_placed() {
    // The relay refuses these with 400 (relay/tests/adversarial.rs); a relay that signs them
    // anyway gets an `invalid` record, because the envelope itself does not parse.
    let app = spawn_app().await;
    for (n, quantity) in ["1e400", "-1e400", "NaN", "Infinity", "01", "1."]
        .iter()
        .enumerate()
    {
        let a = deliver_quantity(&app, &format!("msg_raw{n}"), quantity, r#""100""#).await;
        assert_eq!(a.status, 200, "{quantity}: {:?}", a.body);
        assert_eq!(a.outcome(), "invalid", "{quantity}: {:?}", a.body);
        assert!(
            reason(&a).starts_with("envelope"),
            "{quantity}: {}",
            reason(&a)
        );
    }
    assert!(app.all_orders().await.is_empty());
}

#[tokio::test]
async fn a_quantity_of_one_ten_billionth_is_kept_exactly_as_a_string_or_a_number() {
    let app = spawn_app().await;
    for (n, quantity) in [r#""0.0000000001""#, "0.0000000001", "1e-10", r#""1E-10""#]
        .iter()
        .enumerate()
    {
        let a = deliver_quantity(&app, &format!("msg_tiny{n}"), quantity, r#""100""#).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.outcome(), "placed", "{quantity}: {:?}", a.body);
        assert_eq!(a.orders()[0]["quantity"], "0.0000000001", "{quantity}");
        assert_eq!(a.orders()[0]["limit_price"], "100");
    }
}
