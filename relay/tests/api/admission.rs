//! Steps 1–3: client address, allowlist, rate limits.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn an_alert_from_an_unlisted_ip_is_refused_before_its_body_is_read() {
    let relay =
        spawn_relay_with(|s, _| s.allowlist.cidrs = vec!["127.0.0.2/32".parse().unwrap()]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(relay.addr).await.unwrap();
    // Announce a body and never send it: the answer must come anyway.
    stream
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.ends_with(r#"{"error":"forbidden"}"#), "{text}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "answered without waiting for the body"
    );
    assert!(relay.receiver.received().is_empty());
}

#[tokio::test]
async fn a_listed_address_bound_locally_is_accepted() {
    let relay =
        spawn_relay_with(|s, _| s.allowlist.cidrs = vec!["127.0.0.2/32".parse().unwrap()]).await;
    let from_2 = client(Some("127.0.0.2".parse().unwrap()));
    let resp = answer(
        from_2
            .post(relay.url("/webhook"))
            .body(alert("a"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let from_3 = client(Some("127.0.0.3".parse().unwrap()));
    let resp = answer(
        from_3
            .post(relay.url("/webhook"))
            .body(alert("b"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resp.status, 403);
}

#[tokio::test]
async fn x_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let relay =
        spawn_relay_with(|s, _| s.allowlist.cidrs = vec!["52.89.214.238/32".parse().unwrap()])
            .await;
    let resp = relay
        .client
        .post(relay.url("/webhook"))
        .header("x-forwarded-for", "52.89.214.238")
        .body(alert("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn x_forwarded_for_from_a_trusted_proxy_gives_the_right_most_untrusted_address() {
    let relay = spawn_relay_with(|s, _| {
        s.allowlist.cidrs = vec!["52.89.214.238/32".parse().unwrap()];
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let post = |xff: &'static str, id: &'static str| {
        relay
            .client
            .post(relay.url("/webhook"))
            .header("x-forwarded-for", xff)
            .body(alert(id))
            .send()
    };
    // A client that prepends a forged hop gets nowhere; the proxy-appended hop counts.
    assert_eq!(
        post("6.6.6.6, 52.89.214.238", "a").await.unwrap().status(),
        200
    );
    assert_eq!(
        post("52.89.214.238, 6.6.6.6", "b").await.unwrap().status(),
        403
    );
    let delivered = relay.receiver.wait_delivered(1).await;
    let source: IpAddr = delivered[0].json()["source_ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(source, "52.89.214.238".parse::<IpAddr>().unwrap());
}

#[tokio::test]
async fn a_burst_past_the_per_ip_limit_gets_429_with_retry_after() {
    let relay = spawn_relay_with(|s, _| {
        s.rate_limit.per_ip_per_second = 1;
        s.rate_limit.per_ip_burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..5 {
        let a = relay.post_alert(&format!("burst-{i}")).await;
        if a.status == 429 {
            retry_after = a
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(a.json()["error"], "rate_limited");
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn the_global_limit_applies_to_everyone_together() {
    let relay = spawn_relay_with(|s, _| {
        s.allowlist.cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        s.rate_limit.global_per_second = 1;
        s.rate_limit.global_burst = 2;
    })
    .await;
    let mut statuses = Vec::new();
    for (i, ip) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().enumerate() {
        let c = client(Some(ip.parse().unwrap()));
        let r = c
            .post(relay.url("/webhook"))
            .body(alert(&format!("g{i}")))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429]);
}

#[tokio::test]
async fn an_account_over_its_limit_gets_429_while_others_pass() {
    let relay = spawn_relay_with(|s, _| {
        s.rate_limit.per_account_per_second = 1;
        s.rate_limit.per_account_burst = 1;
    })
    .await;
    assert_eq!(
        relay.post_to("/webhook/main", alert("x1")).await.status,
        200
    );
    let limited = relay.post_to("/webhook/main", alert("x2")).await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    let alt = serde_json::json!({"secret": ALT_SECRET, "id": "y"}).to_string();
    assert_eq!(relay.post_to("/webhook/alt", alt).await.status, 200);
}
