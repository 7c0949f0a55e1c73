//! Header floods: more headers, or bigger ones, than the relay accepts. The relay answers 431 (or
//! closes the connection), reads no body, forwards nothing, and serves the next alert normally.

use std::time::Duration;

use crate::helpers::*;
use crate::raw;

async fn assert_refused_then_still_serving(relay: &TestRelay, request: &[u8]) {
    let answer = raw::exchange(relay.addr, request, Duration::from_secs(10)).await;
    let code = raw::status(&answer);
    assert!(
        code == Some(431) || answer.is_empty(),
        "expected 431 or a closed connection, got {:?}",
        answer.get(..answer.len().min(200))
    );
    let after = relay.post_alert("after-the-flood").await;
    assert_eq!(after.status, 200, "{}", after.text);
    relay.receiver.wait_delivered(1).await;
    assert_eq!(
        relay.receiver.received().len(),
        1,
        "only the legitimate alert was forwarded"
    );
}

#[tokio::test]
async fn a_request_with_ten_thousand_headers_is_refused_and_the_relay_keeps_serving() {
    let relay = spawn_relay().await;
    let mut extra = String::new();
    for i in 0..10_000 {
        extra.push_str(&format!("x-flood-{i}: v\r\n"));
    }
    let request = raw::post(&extra, alert("flooded").as_bytes());
    assert_refused_then_still_serving(&relay, &request).await;
}

#[tokio::test]
async fn a_request_with_a_one_megabyte_header_is_refused_and_the_relay_keeps_serving() {
    let relay = spawn_relay().await;
    let extra = format!("x-huge: {}\r\n", "a".repeat(1 << 20));
    let request = raw::post(&extra, alert("huge-header").as_bytes());
    assert_refused_then_still_serving(&relay, &request).await;
}

#[tokio::test]
async fn a_one_megabyte_request_line_is_refused_and_the_relay_keeps_serving() {
    let relay = spawn_relay().await;
    let mut request = format!("POST /webhook/{} HTTP/1.1\r\n", "m".repeat(1 << 20)).into_bytes();
    request.extend_from_slice(b"Host: relay\r\nContent-Length: 2\r\n\r\n{}");
    let answer = raw::exchange(relay.addr, &request, Duration::from_secs(10)).await;
    let code = raw::status(&answer);
    assert!(
        matches!(code, Some(414 | 431 | 400)) || answer.is_empty(),
        "{:?}",
        answer.get(..answer.len().min(200))
    );
    assert_eq!(relay.post_alert("after-long-uri").await.status, 200);
}
