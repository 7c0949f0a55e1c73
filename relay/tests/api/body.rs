//! Steps 4–5: body size, body deadline, JSON object.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn a_declared_oversized_body_gets_413() {
    let relay = spawn_relay_with(|s, _| s.server.max_body_bytes = 100).await;
    let big = format!(r#"{{"secret":"{SECRET}","pad":"{}"}}"#, "x".repeat(200));
    let a = relay.post(big).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json()["error"], "payload_too_large");
}

#[tokio::test]
async fn a_streamed_body_that_grows_past_the_cap_gets_413() {
    let relay = spawn_relay_with(|s, _| s.server.max_body_bytes = 100).await;
    let mut stream = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    // No Content-Length: the size is only known while reading.
    stream
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        stream
            .write_all(format!("32\r\n{}\r\n", "x".repeat(50)).as_bytes())
            .await
            .unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test]
async fn a_slow_body_gets_408() {
    let relay = spawn_relay_with(|s, _| s.server.body_timeout_ms = 300).await;
    let mut stream = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    stream
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"secret\":")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""error":"request_timeout""#), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn bodies_that_are_not_a_utf8_json_object_get_400_invalid_json() {
    let relay = spawn_relay().await;
    for body in [&b"buy BTCUSDT"[..], b"[1,2]", b"\"x\"", b"\xff\xfe{}", b""] {
        let resp = relay
            .client
            .post(relay.url("/webhook"))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let a = answer(resp).await;
        assert_eq!(a.status, 400, "{body:?}");
        assert_eq!(a.json()["error"], "invalid_json");
        assert!(a.json()["message"].is_string());
    }
}
