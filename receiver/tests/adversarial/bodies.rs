//! Hostile bodies with valid signatures (what a compromised relay could send): deep nesting,
//! invalid UTF-8, a wrong envelope type. Each is journaled as `invalid` with a reason, nothing is
//! placed, and the receiver keeps serving.

use std::time::Duration;

use alertgate_shared::envelope::format_millis;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use alertgate_shared::Clock;

use crate::helpers::*;

fn envelope_text(app: &TestApp, alert_json: &str) -> String {
    format!(
        r#"{{"type":"tradingview.alert","account":"main","received_at":"{}","source_ip":"52.89.214.238","alert":{alert_json}}}"#,
        format_millis(app.clock.now())
    )
}

#[tokio::test]
async fn a_signed_body_nested_two_thousand_deep_is_recorded_invalid_without_overflowing_the_stack()
{
    // 4,000 bytes of brackets: as deep as the test receiver's 4,096-byte body cap allows.
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(2_000), "]".repeat(2_000));
    let a = app.deliver("msg_deep_raw", deep.as_bytes()).await;
    assert_eq!((a.status, a.outcome()), (200, "invalid"), "{:?}", a.body);

    let nested_alert = format!(
        r#"{{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"1","x":{}1{}}}"#,
        r#"{"a":"#.repeat(500),
        "}".repeat(500)
    );
    let body = envelope_text(&app, &nested_alert);
    assert!(body.len() < 4_096);
    let a = app.deliver("msg_deep_alert", body.as_bytes()).await;
    assert_eq!((a.status, a.outcome()), (200, "invalid"), "{:?}", a.body);
    assert!(
        a.body["reason"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{:?}",
        a.body
    );
    let (_, ok) = app.send(&buy("1")).await;
    assert_eq!(ok.outcome(), "filled", "still serving");
    assert_eq!(app.all_orders().await.len(), 1);
}

#[tokio::test]
async fn a_signed_body_with_invalid_utf8_is_recorded_invalid_and_nothing_is_placed() {
    let app = spawn_app().await;
    let mut body = envelope_text(
        &app,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"1","price":"100","comment":"XX"}"#,
    )
    .into_bytes();
    let at = body.windows(2).position(|w| w == b"XX").unwrap();
    body[at] = 0xff;
    body[at + 1] = 0xfe;
    let a = app.deliver("msg_not_utf8", &body).await;
    assert_eq!((a.status, a.outcome()), (200, "invalid"), "{:?}", a.body);
    assert!(app.all_orders().await.is_empty());
    // The journal keeps the raw bytes; the ops API shows them without failing.
    let record = app.message("msg_not_utf8").await;
    assert_eq!(record.status, 200);
    assert_eq!(record.body["outcome"], "invalid");
}

#[tokio::test]
async fn a_signed_envelope_of_another_type_or_account_shape_is_invalid() {
    let app = spawn_app().await;
    let wrong_type = envelope_text(
        &app,
        r#"{"symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"1","price":"100"}"#,
    )
    .replace("tradingview.alert", "something.else");
    let a = app.deliver("msg_wrong_type", wrong_type.as_bytes()).await;
    assert_eq!(a.outcome(), "invalid", "{:?}", a.body);
    let no_alert = envelope_text(&app, r#""buy everything""#);
    let a = app.deliver("msg_string_alert", no_alert.as_bytes()).await;
    assert_eq!(a.outcome(), "invalid", "{:?}", a.body);
    assert!(app.all_orders().await.is_empty());
}

#[tokio::test]
async fn a_body_without_content_length_is_refused_before_it_is_read() {
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/alerts HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 411"), "{text}");
}
