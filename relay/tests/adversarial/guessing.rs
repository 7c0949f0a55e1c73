//! Secret guessing: every miss looks the same to the guesser (status, headers, body), whatever the
//! reason, and a guessing burst is cut off by the per-address limit before it gets far.

use serde_json::json;

use crate::helpers::*;

/// Status, body and every header except `date` of an answer.
async fn shape(
    relay: &TestRelay,
    path: &str,
    body: serde_json::Value,
) -> (u16, String, Vec<(String, String)>) {
    let resp = relay
        .client
        .post(relay.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (status, resp.text().await.unwrap(), headers)
}

#[tokio::test]
async fn every_failed_guess_gets_byte_identical_answers_whatever_was_wrong() {
    let relay = spawn_relay().await;
    let reference = shape(
        &relay,
        "/webhook/main",
        json!({"secret": "nope", "id": "g"}),
    )
    .await;
    assert_eq!(reference.0, 401);
    assert_eq!(reference.1, r#"{"error":"unauthorized"}"#);
    let near_miss = format!("{}X", &SECRET[..SECRET.len() - 1]);
    let attempts = [
        ("/webhook/main", json!({"secret": near_miss, "id": "g"})),
        (
            "/webhook/main",
            json!({"secret": format!("{SECRET}{SECRET}"), "id": "g"}),
        ),
        ("/webhook/main", json!({"secret": &SECRET[..3], "id": "g"})),
        ("/webhook/main", json!({"secret": "", "id": "g"})),
        ("/webhook/main", json!({"secret": 12345, "id": "g"})),
        ("/webhook/main", json!({"secret": [SECRET], "id": "g"})),
        ("/webhook/main", json!({"id": "g"})),
        ("/webhook/ghost", json!({"secret": SECRET, "id": "g"})),
        ("/webhook/alt", json!({"secret": SECRET, "id": "g"})),
        (
            "/webhook",
            json!({"secret": SECRET, "account": "ghost", "id": "g"}),
        ),
        ("/webhook", json!({"secret": SECRET, "id": "g"})),
    ];
    for (path, body) in attempts {
        let got = shape(&relay, path, body.clone()).await;
        assert_eq!(got, reference, "{path} {body}");
    }
    assert!(relay.receiver.received().is_empty());
}

#[tokio::test]
async fn a_guessing_burst_from_one_address_is_cut_off_by_the_per_ip_limit() {
    let relay = spawn_relay_with(|s, _| {
        s.rate_limit.per_ip_per_second = 1;
        s.rate_limit.per_ip_burst = 5;
    })
    .await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    for guess in 0..20 {
        let a = relay
            .post_to(
                "/webhook/main",
                json!({"secret": format!("guess-{guess}")}).to_string(),
            )
            .await;
        statuses.push(a.status);
    }
    let unauthorized = statuses.iter().filter(|&&s| s == 401).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    // The burst, plus one token per second that passed while guessing.
    let refilled = usize::try_from(started.elapsed().as_secs()).unwrap() + 1;
    assert!(unauthorized <= 5 + refilled, "{statuses:?}");
    assert_eq!(unauthorized + limited, 20, "{statuses:?}");
    // The right secret from that address is refused too until the bucket refills: the limit sits
    // before authentication, so a guesser learns nothing from it.
    let a = relay.post_alert("right-secret-while-limited").await;
    if started.elapsed() < std::time::Duration::from_secs(1) {
        assert_eq!(a.status, 429, "{}", a.text);
        assert!(a.headers.contains_key("retry-after"));
    }
}
