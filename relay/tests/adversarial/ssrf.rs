//! SSRF: nothing in a request changes where the relay posts. URL-looking alert fields, a `Host`
//! header, an absolute request target and odd account paths all leave the destination at
//! `forward.url`; a decoy receiver listening elsewhere never hears a thing.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;
use crate::raw;

#[tokio::test]
async fn alert_fields_and_request_headers_never_change_where_the_relay_posts() {
    let decoy = TestReceiver::spawn().await;
    let relay = spawn_relay().await;
    let target = decoy.url();
    let hostile = json!({
        "secret": SECRET, "account": "main", "id": "ssrf-fields",
        "url": target, "forward_url": target, "callback": target, "callback_url": target,
        "webhook_url": target, "redirect": target, "host": decoy.addr.to_string(),
        "forward": {"url": target}, "headers": {"host": decoy.addr.to_string()},
    });
    let a = relay.post(hostile.to_string()).await;
    assert_eq!(a.status, 200, "{}", a.text);

    let resp = relay
        .client
        .post(relay.url("/webhook"))
        .header("host", decoy.addr.to_string())
        .header("x-forwarded-host", decoy.addr.to_string())
        .header("forwarded", format!("host={}", decoy.addr))
        .body(alert("ssrf-headers"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // An absolute-form request target naming the decoy.
    let body = alert("ssrf-absolute");
    let request = format!(
        "POST http://{}/v1/alerts HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        decoy.addr,
        decoy.addr,
        body.len()
    );
    let answer = raw::exchange(relay.addr, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(matches!(raw::status(&answer), Some(200 | 404)), "{answer}");

    // Path tricks on the account segment are just unknown accounts.
    for path in [
        "/webhook/..%2F..%2Fv1%2Falerts",
        "/webhook/http:%2F%2Fevil",
        "/webhook/%00",
    ] {
        let a = relay.post_to(path, alert("ssrf-path")).await;
        assert!(
            matches!(a.status, 401 | 404),
            "{path}: {} {}",
            a.status,
            a.text
        );
    }

    let accepted = if raw::status(&answer) == Some(200) {
        3
    } else {
        2
    };
    let delivered = relay.receiver.wait_delivered(accepted).await;
    assert_eq!(delivered.len(), accepted);
    // The alert is forwarded as data, untouched, to the configured receiver only.
    let fields = delivered
        .iter()
        .find(|r| r.json()["alert"]["id"] == "ssrf-fields")
        .unwrap();
    assert_eq!(fields.json()["alert"]["forward_url"], target);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(decoy.received().is_empty(), "the decoy was contacted");
}
