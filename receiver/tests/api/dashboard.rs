//! The dashboard's HTTP surface (`/ui`): sign-in, cookie flags, CSRF, sessions that expire on the
//! injected clock, alert text kept as data, no secret in any page.

use std::sync::Arc;

use alertgate_shared::MessageId;
use serde_json::{json, Value};

use crate::helpers::{buy, spawn_in, Options, TestApp, Workdir, OPS_TOKEN};

const XSS: &str = "<img src=x onerror=alert(1)>";

/// A receiver with a kill-switch file in its workdir.
async fn app() -> TestApp {
    let work = Arc::new(Workdir::new(&Options::default()));
    let kill = work.kill_switch();
    let options = Options::configured(move |s| s.risk.kill_switch_file = Some(kill.clone()));
    spawn_in(work, &options).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        let first = c.split(';').next()?;
        let (n, v) = first.split_once('=')?;
        (n == name && !v.is_empty()).then(|| v.to_owned())
    })
}

/// What the sign-in page hands out: the login cookie and the form's hidden token.
async fn login_form(app: &TestApp) -> (String, String) {
    let r = client().get(app.url("/ui")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = cookie_value(&set_cookies(&r), "alertgate_login").expect("a login cookie");
    let html = r.text().await.unwrap();
    let field = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    (cookie, field)
}

async fn post_login(
    app: &TestApp,
    cookie: &str,
    csrf: Option<&str>,
    token: &str,
) -> reqwest::Response {
    let mut form = vec![("token", token.to_owned())];
    if let Some(c) = csrf {
        form.push(("csrf", c.to_owned()));
    }
    client()
        .post(app.url("/ui/login"))
        .header("cookie", format!("alertgate_login={cookie}"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A signed-in session: its cookie value and its CSRF token (read from the page).
async fn sign_in(app: &TestApp) -> (String, String) {
    let (cookie, field) = login_form(app).await;
    let r = post_login(app, &cookie, Some(&field), OPS_TOKEN).await;
    assert_eq!(r.status(), 303);
    let session = cookie_value(&set_cookies(&r), "alertgate_session").expect("a session cookie");
    let page = client()
        .get(app.url("/ui"))
        .header("cookie", format!("alertgate_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's csrf meta")
        .to_owned();
    (session, csrf)
}

async fn api_get(app: &TestApp, session: &str, path: &str) -> (u16, Value) {
    let r = client()
        .get(app.url(path))
        .header("cookie", format!("alertgate_session={session}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn api_post(
    app: &TestApp,
    session: &str,
    csrf: Option<&str>,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let mut r = client()
        .post(app.url(path))
        .header("cookie", format!("alertgate_session={session}"))
        .json(&body);
    if let Some(c) = csrf {
        r = r.header("x-csrf-token", c);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_401_and_gives_no_session() {
    let app = app().await;
    let (cookie, field) = login_form(&app).await;
    let r = post_login(&app, &cookie, Some(&field), "not-the-ops-token").await;
    assert_eq!(r.status(), 401);
    assert_eq!(cookie_value(&set_cookies(&r), "alertgate_session"), None);
    let html = r.text().await.unwrap();
    assert!(html.contains("Wrong token."), "{html}");
    assert!(!html.contains(OPS_TOKEN));
}

#[tokio::test]
async fn the_right_token_gives_an_httponly_samesite_strict_cookie_scoped_to_ui() {
    let app = app().await;
    let (cookie, field) = login_form(&app).await;
    let r = post_login(&app, &cookie, Some(&field), OPS_TOKEN).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui");
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("alertgate_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(session.contains(flag), "{session} lacks {flag}");
    }
    assert!(
        !session.contains("Secure"),
        "plain HTTP: no Secure flag ({session})"
    );
    let value = cookie_value(&cookies, "alertgate_session").unwrap();
    assert_eq!(value.len(), 64, "32 random bytes, hex");
    let (status, _) = api_get(&app, &value, "/ui/api/messages").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_sign_in_without_the_forms_csrf_token_is_refused_with_403() {
    let app = app().await;
    let (cookie, field) = login_form(&app).await;
    let missing = post_login(&app, &cookie, None, OPS_TOKEN).await;
    assert_eq!(missing.status(), 403);
    assert_eq!(
        cookie_value(&set_cookies(&missing), "alertgate_session"),
        None
    );
    let wrong = post_login(&app, &cookie, Some(&format!("{field}0")), OPS_TOKEN).await;
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        cookie_value(&set_cookies(&wrong), "alertgate_session"),
        None
    );
}

#[tokio::test]
async fn the_api_without_a_session_is_401_json() {
    let app = app().await;
    for path in [
        "/ui/api/messages",
        "/ui/api/positions",
        "/ui/api/kill-switch",
        "/ui/api/events",
    ] {
        let (status, body) = api_get(&app, "forged-session", path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{path}"
        );
    }
    let (status, _) = api_post(
        &app,
        "forged-session",
        Some("x"),
        "/ui/api/kill-switch",
        json!({"on": true}),
    )
    .await;
    assert_eq!(status, 401);
    assert!(!app.work.kill_switch().exists());
}

#[tokio::test]
async fn a_post_with_a_missing_or_wrong_csrf_token_is_refused_with_403_and_changes_nothing() {
    let app = app().await;
    let (session, csrf) = sign_in(&app).await;
    let (status, body) = api_post(
        &app,
        &session,
        None,
        "/ui/api/kill-switch",
        json!({"on": true}),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (403, Some("csrf")));
    let (status, _) = api_post(
        &app,
        &session,
        Some("0123"),
        "/ui/api/kill-switch",
        json!({"on": true}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = api_post(
        &app,
        &session,
        None,
        "/ui/api/strategies/s1/disable",
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    assert!(!app.work.kill_switch().exists(), "nothing changed");
    let (status, body) = api_post(
        &app,
        &session,
        Some(&csrf),
        "/ui/api/kill-switch",
        json!({"on": true}),
    )
    .await;
    assert_eq!((status, body["on"].as_bool()), (200, Some(true)));
    assert!(app.work.kill_switch().exists());
}

#[tokio::test]
async fn the_kill_switch_from_the_dashboard_rejects_the_next_alert_and_turning_it_off_admits_again()
{
    let app = app().await;
    let (session, csrf) = sign_in(&app).await;
    let (_, state) = api_get(&app, &session, "/ui/api/kill-switch").await;
    assert_eq!(state, json!({"configured": true, "on": false}));
    api_post(
        &app,
        &session,
        Some(&csrf),
        "/ui/api/kill-switch",
        json!({"on": true}),
    )
    .await;
    let (_, a) = app.send(&buy("1")).await;
    assert_eq!(
        (a.outcome(), a.body["reason"].as_str()),
        ("rejected", Some("kill_switch"))
    );
    let (status, body) = api_post(
        &app,
        &session,
        Some(&csrf),
        "/ui/api/kill-switch",
        json!({"on": false}),
    )
    .await;
    assert_eq!((status, body["on"].as_bool()), (200, Some(false)));
    let (_, a) = app.send(&buy("1")).await;
    assert_eq!(a.outcome(), "filled");
}

#[tokio::test]
async fn a_session_expires_after_eight_hours_on_the_receivers_clock() {
    let app = app().await;
    let (session, _) = sign_in(&app).await;
    app.clock
        .advance(time::Duration::hours(8) - time::Duration::seconds(1));
    assert_eq!(api_get(&app, &session, "/ui/api/messages").await.0, 200);
    app.clock.advance(time::Duration::seconds(1));
    assert_eq!(api_get(&app, &session, "/ui/api/messages").await.0, 401);
}

#[tokio::test]
async fn sign_out_needs_the_csrf_token_and_ends_the_session() {
    let app = app().await;
    let (session, csrf) = sign_in(&app).await;
    let post = |csrf: Option<String>| {
        let mut form = vec![("page", "timeline".to_owned())];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        client()
            .post(app.url("/ui/logout"))
            .header("cookie", format!("alertgate_session={session}"))
            .form(&form)
            .send()
    };
    assert_eq!(post(None).await.unwrap().status(), 403);
    assert_eq!(api_get(&app, &session, "/ui/api/messages").await.0, 200);
    assert_eq!(post(Some(csrf)).await.unwrap().status(), 303);
    assert_eq!(api_get(&app, &session, "/ui/api/messages").await.0, 401);
}

#[tokio::test]
async fn alert_text_reaches_the_page_only_as_json_data_and_no_secret_is_shown() {
    let app = app().await;
    let (session, _) = sign_in(&app).await;
    // An envelope that still carries a secret (the relay strips it; the dashboard must too).
    let id = MessageId::generate().to_string();
    let body = json!({
        "type": "tradingview.alert", "account": "main",
        "received_at": alertgate_shared::envelope::format_millis(alertgate_shared::Clock::now(&app.clock)),
        "source_ip": "52.89.214.238",
        "alert": {"secret": "s3cr3t-in-the-alert", "symbol": "BINANCE:BTCUSDT", "action": "buy",
                  "quantity": "1", "price": "100", "strategy": XSS, "comment": XSS},
    });
    let a = app.deliver(&id, body.to_string().as_bytes()).await;
    assert_eq!(a.outcome(), "filled", "{:?}", a.body);

    let raw = client()
        .get(app.url("/ui/api/messages"))
        .header("cookie", format!("alertgate_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let timeline: Value = serde_json::from_str(&raw).unwrap();
    let row = &timeline["messages"][0];
    assert_eq!(
        (row["id"].as_str(), row["comment"].as_str()),
        (Some(id.as_str()), Some(XSS))
    );
    assert_eq!(row["strategy"], XSS, "the text as data, for textContent");
    let (status, detail) = api_get(&app, &session, &format!("/ui/api/messages/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["alert"]["comment"], XSS);
    assert_eq!(detail["alert"].get("secret"), None);
    assert!(
        !detail.to_string().contains("s3cr3t-in-the-alert"),
        "a secret in the detail"
    );
    assert_eq!(detail["orders"][0]["client_order_id"], format!("{id}-0"));
    assert_eq!(detail["normalized"]["legs"][0]["symbol"], "BTCUSDT");

    let page = client()
        .get(app.url("/ui"))
        .header("cookie", format!("alertgate_session={session}"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let script = client()
        .get(app.url("/ui/app.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !script.contains("innerHTML"),
        "the script never parses data as HTML"
    );
    for text in [html, script, raw] {
        assert!(!text.contains("s3cr3t-in-the-alert"), "a secret in a page");
        assert!(!text.contains(OPS_TOKEN), "the ops token in a page");
        assert!(
            !text.contains("<img"),
            "alert markup in what the server sends: {text}"
        );
    }
}

#[tokio::test]
async fn the_timeline_filters_by_account_strategy_symbol_and_outcome() {
    let app = app().await;
    let (session, _) = sign_in(&app).await;
    let mut a = buy("1");
    a["strategy"] = json!("alpha");
    let (alpha, _) = app.send(&a).await;
    let (plain, _) = app
        .send(&json!({"symbol": "NOPE", "action": "buy", "quantity": "1"}))
        .await;
    let ids = |v: &Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = api_get(&app, &session, "/ui/api/messages").await;
    assert_eq!(
        ids(&all),
        vec![plain.clone(), alpha.clone()],
        "newest first"
    );
    let (_, f) = api_get(&app, &session, "/ui/api/messages?strategy=alpha").await;
    assert_eq!(ids(&f), vec![alpha.clone()]);
    let (_, f) = api_get(
        &app,
        &session,
        "/ui/api/messages?symbol=btcusdt&account=main",
    )
    .await;
    assert_eq!(ids(&f), vec![alpha.clone()]);
    let (_, f) = api_get(&app, &session, "/ui/api/messages?outcome=invalid").await;
    assert_eq!(ids(&f), vec![plain]);
    let (_, f) = api_get(&app, &session, "/ui/api/messages?account=other").await;
    assert!(ids(&f).is_empty());
}

#[tokio::test]
async fn the_event_stream_sends_a_message_journaled_after_it_opened() {
    let app = app().await;
    let (session, _) = sign_in(&app).await;
    let mut stream = client()
        .get(app.url("/ui/api/events"))
        .header("cookie", format!("alertgate_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (id, _) = app.send(&buy("1")).await;
    let mut seen = String::new();
    while !(seen.contains(&id) && seen.contains("\"filled\"")) {
        let chunk = tokio::time::timeout(alertgate_testkit::WAIT, stream.chunk())
            .await
            .expect("an event within the wait")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event:message"), "{seen}");
}

#[tokio::test]
async fn an_open_event_stream_ends_cleanly_when_the_receiver_shuts_down() {
    let app = app().await;
    let (session, _) = sign_in(&app).await;
    let mut stream = client()
        .get(app.url("/ui/api/events"))
        .header("cookie", format!("alertgate_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    app.stop().await;
    // A stream cut off when the shutdown grace ran out would end in an error instead.
    loop {
        match stream.chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => panic!("the stream was cut, not ended: {e}"),
        }
    }
}
