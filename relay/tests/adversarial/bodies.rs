//! Hostile bodies and slow clients: deep nesting, invalid UTF-8, numbers JSON cannot hold, a body
//! or a request head trickling one byte a second.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;
use crate::raw;

/// `{"secret":..., "x": [[[...]]]}` nested `depth` deep.
fn nested_arrays(depth: usize) -> String {
    format!(
        r#"{{"secret":"{SECRET}","account":"main","id":"deep","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// `{"a":{"a":...1...}}` nested `depth` deep.
fn nested_objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

#[tokio::test]
async fn json_nested_ten_thousand_deep_gets_400_without_overflowing_the_stack() {
    // A body cap large enough that the parser, not the cap, has to refuse it.
    let relay = spawn_relay_with(|s, _| s.server.max_body_bytes = 256 * 1024).await;
    for body in [nested_arrays(10_000), nested_objects(10_000)] {
        let a = relay.post(body).await;
        assert_eq!(a.status, 400, "{}", a.text);
        assert_eq!(a.json()["error"], "invalid_json");
        assert!(
            a.json()["message"]
                .as_str()
                .unwrap()
                .contains("recursion limit"),
            "{}",
            a.text
        );
    }
    // Still alive (a stack overflow would have aborted this whole test process) and serving.
    assert_eq!(relay.post_alert("after-deep-json").await.status, 200);
    relay.receiver.wait_delivered(1).await;
    assert_eq!(relay.receiver.received().len(), 1);
}

#[tokio::test]
async fn json_nested_just_under_the_parser_limit_is_accepted_and_forwarded_intact() {
    let relay = spawn_relay_with(|s, _| s.server.max_body_bytes = 256 * 1024).await;
    let a = relay.post(nested_arrays(100)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = relay.receiver.wait_delivered(1).await;
    let x = &got[0].json()["alert"]["x"];
    let mut depth = 0;
    let mut v = x;
    while let Some(inner) = v.as_array().and_then(|a| a.first()) {
        depth += 1;
        v = inner;
    }
    assert_eq!(depth + 1, 100);
}

#[tokio::test]
async fn invalid_utf8_inside_an_otherwise_valid_alert_gets_400_invalid_json() {
    let relay = spawn_relay().await;
    let mut body = format!(r#"{{"secret":"{SECRET}","id":"utf8","symbol":""#).into_bytes();
    body.extend_from_slice(b"\xc3\x28\xff");
    body.extend_from_slice(br#"","action":"buy","quantity":"1"}"#);
    let answer = raw::exchange(relay.addr, &raw::post("", &body), Duration::from_secs(5)).await;
    assert_eq!(raw::status(&answer), Some(400), "{answer}");
    assert!(answer.contains(r#""error":"invalid_json""#), "{answer}");
    // An overlong encoding and a lone surrogate are not UTF-8 either.
    for bad in [&b"{\"a\":\"\xc0\xaf\"}"[..], b"{\"a\":\"\xed\xa0\x80\"}"] {
        let answer = raw::exchange(relay.addr, &raw::post("", bad), Duration::from_secs(5)).await;
        assert_eq!(raw::status(&answer), Some(400), "{answer}");
    }
    assert!(relay.receiver.received().is_empty());
}

#[tokio::test]
async fn numbers_json_cannot_hold_are_refused_by_the_relay_before_authentication() {
    let relay = spawn_relay().await;
    for quantity in [
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "0x10",
        "01",
    ] {
        let body = format!(
            r#"{{"secret":"{SECRET}","id":"n-{quantity}","symbol":"BINANCE:BTCUSDT","action":"buy","quantity":{quantity}}}"#
        );
        let a = relay.post(body).await;
        assert_eq!(a.status, 400, "{quantity}: {}", a.text);
        assert_eq!(a.json()["error"], "invalid_json", "{quantity}");
    }
    assert!(relay.receiver.received().is_empty());
}

#[tokio::test]
async fn numbers_json_can_hold_are_forwarded_with_their_exact_text() {
    // The relay does not interpret alert values: the receiver decides what a quantity is.
    let relay = spawn_relay().await;
    let body = format!(
        r#"{{"secret":"{SECRET}","account":"main","id":"exact","quantity":0.0000000001,"neg":-0,"big":123456789012345678901234567890}}"#
    );
    let a = relay.post(body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let got = relay.receiver.wait_delivered(1).await;
    let alert = &got[0].json()["alert"];
    assert_eq!(alert["quantity"].as_f64(), Some(0.0000000001));
    assert!(alert["neg"].is_number());
    assert!(alert["big"].is_number());
}

#[tokio::test]
async fn a_body_trickling_one_byte_a_second_gets_408_at_the_configured_deadline() {
    let relay = spawn_relay_with(|s, _| s.server.body_timeout_ms = 1_500).await;
    let body = alert("trickle");
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = async {
        let mut sent = 0;
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sent
    };
    let mut answer = vec![0u8; 4096];
    let (n, sent) = tokio::select! {
        n = reader.read(&mut answer) => (n.unwrap(), None),
        sent = trickle => (0, Some(sent)),
    };
    let text = String::from_utf8_lossy(&answer[..n]);
    assert_eq!(sent, None, "the whole body trickled in without a 408");
    assert_eq!(raw::status(&text), Some(408), "{text}");
    assert!(text.contains(r#""error":"request_timeout""#), "{text}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1_400), "{elapsed:?}");
    assert!(relay.receiver.received().is_empty());
    assert_eq!(relay.post_alert("after-trickle").await.status, 200);
}

#[tokio::test]
async fn a_request_head_trickling_one_byte_a_second_is_cut_off_by_the_header_deadline() {
    let relay = spawn_relay_with(|s, _| s.server.header_read_timeout_ms = 1_500).await;
    let head = b"POST /webhook HTTP/1.1\r\nHost: relay\r\nX-Slow: ".to_vec();
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        let mut sent = 0;
        for byte in head.iter().chain(b"a".repeat(60).iter()) {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sent
    };
    let mut out = vec![0u8; 4096];
    let result = tokio::select! {
        r = reader.read(&mut out) => Some(r),
        _ = trickle => None,
    };
    // Closed (EOF or reset), or a 408 before closing: anything but waiting forever.
    match result {
        None => panic!("the relay waited for a head trickling for a minute"),
        Some(Ok(0)) | Some(Err(_)) => {}
        Some(Ok(n)) => {
            let text = String::from_utf8_lossy(&out[..n]);
            assert_eq!(raw::status(&text), Some(408), "{text}");
        }
    }
    assert_eq!(relay.post_alert("after-slow-head").await.status, 200);
}
