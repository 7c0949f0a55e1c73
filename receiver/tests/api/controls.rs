//! Order controls (receiver/README.md, "Order controls"): strategy switches, trading sessions,
//! the daily loss lock and the signal age, each allowed and refused, through the HTTP API with a
//! manual clock.

use std::sync::Arc;

use alertgate_receiver::Settings;
use serde_json::{json, Value};

use crate::helpers::{dec, spawn_app_with, spawn_in, Options, TestApp, OPS_TOKEN};

/// Notification events of `kind` in the app's outbox.
fn events(app: &TestApp, kind: &str) -> i64 {
    let db = rusqlite::Connection::open(app.work.db_path()).unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM notify_outbox WHERE kind = ?1",
        [kind],
        |r| r.get(0),
    )
    .unwrap()
}

fn unix(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

fn at(rfc3339: &str, configure: impl Fn(&mut Settings) + Send + Sync + 'static) -> Options {
    Options {
        clock_at_unix: Some(unix(rfc3339)),
        ..Options::configured(configure)
    }
}

fn set_clock(app: &TestApp, rfc3339: &str) {
    let target = unix(rfc3339);
    let now = alertgate_shared::Clock::now(&app.clock).unix_timestamp();
    app.clock.advance(time::Duration::seconds(target - now));
}

fn alert(action: &str, quantity: &str, price: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": action, "quantity": quantity, "price": price,
           "strategy": "sma-cross"})
}

async fn outcome(app: &TestApp, alert: &Value) -> (String, Value) {
    let (_, a) = app.send(alert).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    (a.outcome().to_owned(), a.body["reason"].clone())
}

fn is(outcome: &str, reason: Option<&str>) -> (String, Value) {
    (outcome.to_owned(), reason.map_or(Value::Null, |r| json!(r)))
}

async fn post(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = app.client.post(app.url(path));
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_disabled_strategy_opens_nothing_but_still_closes_and_the_switch_survives_a_restart() {
    let options = Options::default();
    let app = spawn_app_with(options.clone()).await;
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("filled", None)
    );

    let (status, _) = post(&app, "/v1/strategies/sma-cross/disable", None).await;
    assert_eq!(status, 401, "the switch needs the ops token");
    let (status, body) = post(&app, "/v1/strategies/sma-cross/disable", Some(OPS_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], json!(false));

    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("rejected", Some("strategy_disabled"))
    );
    let other = json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "1",
                       "price": "100", "strategy": "breakout"});
    assert_eq!(
        outcome(&app, &other).await,
        is("filled", None),
        "other strategies run"
    );
    let close = json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "100",
                       "strategy": "sma-cross"});
    assert_eq!(
        outcome(&app, &close).await,
        is("filled", None),
        "a close reduces risk"
    );

    let list = app.get("/v1/strategies", Some(OPS_TOKEN)).await;
    assert_eq!(list.status, 200);
    let names: Vec<(String, bool)> = list.body["strategies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("breakout".to_owned(), true),
            ("sma-cross".to_owned(), false)
        ]
    );
    assert!(app
        .metrics()
        .await
        .contains("alertgate_receiver_strategy_enabled{strategy=\"sma-cross\"} 0"));
    assert_eq!(events(&app, "strategy_disabled"), 1);

    let work = app.stop().await;
    let app = spawn_in(work.clone(), &options).await;
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("rejected", Some("strategy_disabled")),
        "the switch is persisted"
    );
    let (status, body) = post(&app, "/v1/strategies/sma-cross/enable", Some(OPS_TOKEN)).await;
    assert_eq!((status, body["enabled"].clone()), (200, json!(true)));
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("filled", None)
    );

    let (status, body) = post(&app, "/v1/strategies/sma-cross/pause", Some(OPS_TOKEN)).await;
    assert_eq!((status, body["error"].clone()), (404, json!("not_found")));
}

#[tokio::test]
async fn sessions_follow_new_york_across_the_dst_change() {
    // Friday 2026-03-06 13:35 UTC is 08:35 EST (closed); Monday 2026-03-09 13:35 UTC is 09:35 EDT.
    let app = spawn_app_with(at("2026-03-06T13:35:00Z", |s| {
        s.risk.sessions = vec!["mon-fri 09:30-16:00".parse().unwrap()];
        s.risk.timezone = Some("America/New_York".to_owned().try_into().unwrap());
    }))
    .await;
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("rejected", Some("outside_session"))
    );
    set_clock(&app, "2026-03-06T14:30:00Z"); // 09:30 EST
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("filled", None)
    );
    set_clock(&app, "2026-03-07T15:00:00Z"); // Saturday
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("rejected", Some("outside_session"))
    );
    let close = json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "100"});
    assert_eq!(
        outcome(&app, &close).await,
        is("filled", None),
        "an exit runs outside the session"
    );
    set_clock(&app, "2026-03-09T13:29:00Z"); // Monday 09:29 EDT
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("rejected", Some("outside_session"))
    );
    set_clock(&app, "2026-03-09T13:35:00Z"); // Monday 09:35 EDT
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("filled", None)
    );
}

#[tokio::test]
async fn an_account_override_has_its_own_sessions() {
    let app = spawn_app_with(at("2026-03-07T12:00:00Z", |s| {
        s.risk.sessions = vec!["mon-fri 09:30-16:00".parse().unwrap()];
        s.risk.timezone = Some("America/New_York".to_owned().try_into().unwrap());
        let crypto = alertgate_receiver::config::RiskLimits {
            sessions: Some(Vec::new()),
            ..Default::default()
        };
        s.risk.accounts.insert("main".into(), crypto);
    }))
    .await;
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("filled", None),
        "main trades around the clock"
    );
}

#[tokio::test]
async fn a_daily_loss_of_501_against_500_locks_opening_orders_until_midnight_utc() {
    let app = spawn_app_with(at("2026-03-09T10:00:00Z", |s| {
        s.risk.max_daily_loss = Some(dec("500"));
    }))
    .await;
    assert_eq!(
        outcome(&app, &alert("buy", "3", "2000")).await,
        is("filled", None)
    );
    assert_eq!(
        outcome(&app, &alert("sell", "1", "1501")).await,
        is("filled", None)
    );
    assert_eq!(
        outcome(&app, &alert("buy", "1", "2000")).await,
        is("filled", None),
        "a loss of 499 is under the limit"
    );
    assert_eq!(
        outcome(&app, &alert("sell", "1", "1998")).await,
        is("filled", None)
    );
    assert_eq!(
        outcome(&app, &alert("buy", "1", "2000")).await,
        is("rejected", Some("max_daily_loss")),
        "a loss of 501 locks"
    );
    let close = json!({"symbol": "BINANCE:BTCUSDT", "action": "close", "price": "2000"});
    assert_eq!(
        outcome(&app, &close).await,
        is("filled", None),
        "an exit still runs"
    );
    assert!(app
        .metrics()
        .await
        .contains("alertgate_receiver_daily_loss_locked{account=\"main\"} 1"));
    set_clock(&app, "2026-03-09T23:59:59Z");
    assert_eq!(
        outcome(&app, &alert("buy", "1", "2000")).await,
        is("rejected", Some("max_daily_loss"))
    );
    assert_eq!(
        events(&app, "daily_loss_lock"),
        1,
        "two refusals, one announcement a day"
    );
    set_clock(&app, "2026-03-10T00:00:00Z");
    assert_eq!(
        outcome(&app, &alert("buy", "1", "2000")).await,
        is("filled", None),
        "the lock lifts at 00:00 UTC"
    );
}

#[tokio::test]
async fn fees_count_in_the_daily_loss_opening_fills_included() {
    let app = spawn_app_with(at("2026-03-09T10:00:00Z", |s| {
        s.risk.max_daily_loss = Some(dec("500"));
        s.broker.paper = Some(alertgate_receiver::broker::config::PaperConfig {
            fee_rate: dec("0.001"),
            ..Default::default()
        });
    }))
    .await;
    // Buy 3 at 2000 (fee 6), sell them at 1837: 489 lost on the price, 5.511 more in fees.
    let (_, bought) = app.send(&alert("buy", "3", "2000")).await;
    assert_eq!(bought.outcome(), "filled", "{:?}", bought.body);
    assert_eq!(
        outcome(&app, &alert("sell", "3", "1837")).await,
        is("filled", None)
    );
    assert_eq!(
        outcome(&app, &alert("buy", "1", "2000")).await,
        is("rejected", Some("max_daily_loss")),
        "489 + 6 + 5.511 = 500.511 is over the limit; the price alone was not"
    );
}

#[tokio::test]
async fn the_signal_age_is_measured_from_sent_at() {
    let app = spawn_app_with(at("2026-03-09T10:00:00Z", |s| {
        s.risk.max_signal_age_seconds = Some(30);
    }))
    .await;
    let with_sent_at = |sent_at: &str| {
        let mut a = alert("buy", "1", "100");
        a["sent_at"] = json!(sent_at);
        a
    };
    let (o, reason) = outcome(&app, &with_sent_at("2026-03-09T09:59:29Z")).await;
    assert_eq!(o, "expired");
    assert!(
        reason.as_str().unwrap().contains("max_signal_age_seconds"),
        "{reason}"
    );
    assert_eq!(
        outcome(&app, &with_sent_at("2026-03-09T09:59:30Z")).await,
        is("filled", None)
    );
    assert_eq!(
        outcome(&app, &alert("buy", "1", "100")).await,
        is("filled", None),
        "an alert without sent_at is not checked"
    );
    let (o, reason) = outcome(&app, &with_sent_at("{{timenow}}")).await;
    assert_eq!(o, "invalid");
    assert!(reason.as_str().unwrap().starts_with("sent_at:"), "{reason}");
}

#[tokio::test]
async fn bad_session_and_zone_settings_are_refused_naming_the_key() {
    let work = Arc::new(crate::helpers::Workdir::new(&Options::default()));
    let mut settings = work.settings(&Options::default());
    let toml = alertgate_testkit::config::to_toml(&settings).unwrap();
    assert!(toml.contains("sessions = []"), "{toml}");
    let text = toml.replace("sessions = []", "sessions = [\"mon-fri 9:30-16:00\"]");
    let err = Settings::parse(&text, std::path::Path::new("receiver.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("mon-fri 9:30-16:00"), "{err}");
    let text = toml.replace("[risk]\n", "[risk]\ntimezone = \"Mars/Olympus\"\n");
    let err = Settings::parse(&text, std::path::Path::new("receiver.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Mars/Olympus") && err.contains("IANA"),
        "{err}"
    );
    settings.risk.max_signal_age_seconds = Some(0);
    assert!(settings
        .validate()
        .unwrap_err()
        .to_string()
        .contains("risk.max_signal_age_seconds"));
}
