//! `[[notify]]`: each channel against its emulator (the exact request, 429 `retry_after`),
//! default event filters, a hanging destination beside orders, and exactly-once across a SIGKILL
//! between the outcome's commit and the send.

use std::time::Duration;

use alertgate_receiver::Settings;
use alertgate_shared::notify::NotifyConfig;
use alertgate_shared::{HmacSecret, SecretRef, SystemClock};
use alertgate_testkit::emulators::discord::DiscordEmulator;
use alertgate_testkit::emulators::signed_webhook::SignedWebhookEmulator;
use alertgate_testkit::emulators::slack::SlackEmulator;
use alertgate_testkit::emulators::telegram::TelegramEmulator;
use alertgate_testkit::emulators::Fault;
use alertgate_testkit::until;
use serde_json::{json, Value};

use crate::helpers::{envelope_at, spawn_app_with, start_process, Options, ProcessClient, Workdir};

const BOT_TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
const CHAT: &str = "-1001234567890";

/// A filled alert with a strategy.
fn alert(quantity: &str) -> Value {
    json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": quantity, "price": "42000",
           "strategy": "sma-cross"})
}

/// A secret file in a directory the test keeps.
fn secret_file(dir: &tempfile::TempDir, name: &str, value: &str) -> SecretRef {
    alertgate_testkit::secret_file(dir.path(), name, value)
}

fn notify(table: Value) -> NotifyConfig {
    serde_json::from_value(table).unwrap()
}

fn telegram(api_base: String, token: SecretRef, events: &[&str]) -> NotifyConfig {
    notify(
        json!({"kind": "telegram", "bot_token": token.to_string(), "chat_id": CHAT,
                  "api_base": api_base, "events": events, "min_interval_ms": 0}),
    )
}

fn with_notify(list: Vec<NotifyConfig>) -> Options {
    Options::configured(move |s: &mut Settings| s.notify = list.clone())
}

#[tokio::test]
async fn a_fill_reaches_telegram_as_one_line_a_person_reads_at_a_glance() {
    let bot = TelegramEmulator::bot(BOT_TOKEN, CHAT).await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let token = secret_file(&secrets, "bot", BOT_TOKEN);
    let app = spawn_app_with(with_notify(vec![telegram(
        bot.api_base(),
        token,
        &["filled"],
    )]))
    .await;

    let (id, answer) = app.send(&alert("0.01")).await;
    assert_eq!(answer.outcome(), "filled");
    until("the fill to reach the chat", || async {
        bot.messages().len() == 1
    })
    .await;

    let posts = bot.order_posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].method, "POST");
    assert_eq!(posts[0].path, format!("/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(posts[0].header("content-type"), Some("application/json"));
    let body = posts[0].json();
    assert_eq!(
        body["chat_id"],
        json!(-1001234567890_i64),
        "a numeric chat id is sent as a number"
    );
    assert_eq!(
        body["text"],
        format!("BUY 0.01 BTCUSDT filled at 42000 · paper · main · sma-cross · {id}")
    );
    until("the metric to count it", || async {
        app.metrics().await.contains(
            r#"alertgate_receiver_notifications_total{destination="telegram",outcome="sent"} 1"#,
        )
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_telegram_flood_wait_is_honoured_and_the_message_sent_once_after_it() {
    let bot = TelegramEmulator::bot(BOT_TOKEN, CHAT).await.unwrap();
    bot.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    let secrets = tempfile::tempdir().unwrap();
    let token = secret_file(&secrets, "bot", BOT_TOKEN);
    let app = spawn_app_with(with_notify(vec![telegram(
        bot.api_base(),
        token,
        &["filled"],
    )]))
    .await;

    let (_, answer) = app.send(&alert("1")).await;
    assert_eq!(answer.outcome(), "filled");
    until("the first attempt", || async {
        !bot.order_posts().is_empty()
    })
    .await;
    let refused_at = tokio::time::Instant::now();
    until("the retry to be accepted", || async {
        bot.messages().len() == 1
    })
    .await;
    assert!(
        refused_at.elapsed() >= Duration::from_millis(1900),
        "retried after {:?}, before the 2 s Telegram asked for",
        refused_at.elapsed()
    );
    assert_eq!(
        bot.order_posts().len(),
        2,
        "one refused attempt, one accepted"
    );
    assert_eq!(bot.messages().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn by_default_a_destination_gets_refusals_but_not_fills() {
    let bot = TelegramEmulator::bot(BOT_TOKEN, CHAT).await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let token = secret_file(&secrets, "bot", BOT_TOKEN);
    let work_kill = tempfile::tempdir().unwrap();
    let kill = work_kill.path().join("KILL");
    let table = notify(
        json!({"kind": "telegram", "bot_token": token.to_string(), "chat_id": CHAT,
                              "api_base": bot.api_base(), "min_interval_ms": 0}),
    );
    let switch = kill.clone();
    let app = spawn_app_with(Options::configured(move |s: &mut Settings| {
        s.notify = vec![table.clone()];
        s.risk.kill_switch_file = Some(switch.clone());
    }))
    .await;

    let (_, filled) = app.send(&alert("1")).await;
    assert_eq!(filled.outcome(), "filled");
    std::fs::write(&kill, "").unwrap();
    let (id, rejected) = app.send(&alert("2")).await;
    assert_eq!(rejected.outcome(), "rejected");
    until("the rejection to reach the chat", || async {
        !bot.messages().is_empty()
    })
    .await;
    let texts: Vec<String> = bot.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        vec![format!(
            "BUY 2 BINANCE:BTCUSDT rejected: kill_switch · main · sma-cross · {id}"
        )],
        "the fill before it was not sent"
    );
    app.stop().await;
}

#[tokio::test]
async fn discord_gets_content_and_its_rate_limit_body_is_honoured() {
    let hook = DiscordEmulator::webhook("1187", "tok-abc").await.unwrap();
    hook.fail_next_orders(
        Fault::RateLimited {
            retry_after_secs: 1,
        },
        1,
    );
    let secrets = tempfile::tempdir().unwrap();
    let url = secret_file(&secrets, "discord", &hook.webhook_url());
    let table = notify(json!({"kind": "discord", "webhook_url": url.to_string(),
                              "events": ["filled"], "min_interval_ms": 0}));
    let app = spawn_app_with(with_notify(vec![table])).await;

    let (id, _) = app.send(&alert("0.5")).await;
    until("the message to be posted", || async {
        hook.messages().len() == 1
    })
    .await;
    let posts = hook.order_posts();
    assert_eq!(posts.len(), 2, "the 429, then the accepted post");
    assert_eq!(posts[1].path, "/api/webhooks/1187/tok-abc");
    assert_eq!(posts[1].header("content-type"), Some("application/json"));
    assert_eq!(
        posts[1].json()["content"],
        format!("BUY 0.5 BTCUSDT filled at 42000 · paper · main · sma-cross · {id}")
    );
    app.stop().await;
}

#[tokio::test]
async fn slack_gets_text_and_a_refused_webhook_is_given_up_without_retrying() {
    let hook = SlackEmulator::webhook("XXXXXXXXXXXXXXXXXXXXXXXX")
        .await
        .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let good = secret_file(&secrets, "slack", &hook.webhook_url());
    let revoked = secret_file(
        &secrets,
        "revoked",
        &format!("{}/services/T0/B0/revoked", hook.base_url()),
    );
    let app = spawn_app_with(with_notify(vec![
        notify(
            json!({"kind": "slack", "webhook_url": good.to_string(), "events": ["filled"],
                      "min_interval_ms": 0}),
        ),
        notify(
            json!({"kind": "slack", "name": "old-slack", "webhook_url": revoked.to_string(),
                      "events": ["filled"], "min_interval_ms": 0}),
        ),
    ]))
    .await;

    let (id, _) = app.send(&alert("3")).await;
    until("the message and the refusal", || async {
        hook.messages().len() == 1
            && app.metrics().await.contains(
                r#"alertgate_receiver_notifications_total{destination="old-slack",outcome="failed"} 1"#,
            )
    })
    .await;
    let posts = hook.requests();
    let to_revoked = posts
        .iter()
        .filter(|r| r.path.ends_with("/revoked"))
        .count();
    assert_eq!(to_revoked, 1, "a 404 no_service is not retried");
    let message = &hook.messages()[0];
    assert_eq!(
        message.body,
        json!({"text": format!("BUY 3 BTCUSDT filled at 42000 · paper · main · sma-cross · {id}")})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_signed_webhook_gets_the_event_as_json_verified_with_standard_webhooks() {
    let secret = HmacSecret::generate();
    let hook =
        SignedWebhookEmulator::trusting(vec![secret.clone()], std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let whsec = secret_file(&secrets, "whsec", secret.to_text().expose());
    let table = notify(json!({"kind": "webhook", "url": hook.url(),
                              "hmac_secrets": [whsec.to_string()], "events": ["filled", "invalid"]}));
    let app = spawn_app_with(with_notify(vec![table])).await;

    let (id, _) = app.send(&alert("1")).await;
    let (bad, invalid) = app
        .send(&json!({"symbol": "BINANCE:BTCUSDT", "action": "hold"}))
        .await;
    assert_eq!(invalid.outcome(), "invalid");
    until("both events", || async { hook.messages().len() == 2 }).await;
    let events: Vec<Value> = hook.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(events[0]["type"], "filled");
    assert_eq!(events[0]["message_id"], id.as_str());
    assert_eq!(events[0]["orders"][0]["average_price"], "42000");
    assert_eq!(events[0]["orders"][0]["quantity"], "1");
    assert_eq!(events[1]["type"], "invalid");
    assert_eq!(events[1]["message_id"], bad.as_str());
    assert!(
        events[1]["reason"].as_str().unwrap().contains("action"),
        "{}",
        events[1]
    );
    let webhook_id = &hook.messages()[0].to;
    assert_eq!(
        webhook_id,
        events[0]["id"].as_str().unwrap(),
        "webhook-id is the event id"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_destination_that_never_answers_does_not_hold_up_orders() {
    let bot = TelegramEmulator::bot(BOT_TOKEN, CHAT).await.unwrap();
    bot.fail_next_orders(Fault::Hang, 100);
    let secrets = tempfile::tempdir().unwrap();
    let token = secret_file(&secrets, "bot", BOT_TOKEN);
    let mut table = telegram(bot.api_base(), token, &["filled"]);
    table.timeout_ms = 600_000;
    let app = spawn_app_with(with_notify(vec![table])).await;

    let (_, first) = app.send(&alert("1")).await;
    assert_eq!((first.status, first.outcome()), (200, "filled"));
    until(
        "the notification to be stuck at the destination",
        || async { bot.order_posts().len() == 1 },
    )
    .await;
    for q in ["2", "3", "4", "5"] {
        let (_, a) = app.send(&alert(q)).await;
        assert_eq!(
            (a.status, a.outcome()),
            (200, "filled"),
            "answered while the chat hangs"
        );
    }
    assert!(
        bot.messages().is_empty(),
        "the destination still has not answered"
    );
    assert_eq!(
        bot.order_posts().len(),
        1,
        "its queue waits on the one request"
    );
}

#[tokio::test]
async fn an_event_committed_but_not_sent_when_the_receiver_is_killed_is_sent_once_after_the_restart(
) {
    let bot = TelegramEmulator::bot(BOT_TOKEN, CHAT).await.unwrap();
    bot.fail_next_orders(Fault::Hang, 1);
    let secrets = tempfile::tempdir().unwrap();
    let token = secret_file(&secrets, "bot", BOT_TOKEN);
    let mut table = telegram(bot.api_base(), token, &["filled"]);
    table.timeout_ms = 600_000;
    let options = with_notify(vec![table]);
    let work = Workdir::new(&options);

    let mut first = start_process(&work, &options).await;
    let client = ProcessClient::new(&work, first.addr);
    let body = envelope_at(&alert("1"), time::OffsetDateTime::now_utc());
    let a = client.deliver("msg_notify_killed", &body).await;
    assert_eq!(a.outcome(), "filled");
    until("the send to be in flight", || async {
        bot.order_posts().len() == 1
    })
    .await;
    first.service.kill9().unwrap();
    assert!(bot.messages().is_empty());

    let mut second = start_process(&work, &options).await;
    until("the event to be sent after the restart", || async {
        bot.messages().len() == 1
    })
    .await;
    let client = ProcessClient::new(&work, second.addr);
    let body = envelope_at(&alert("2"), time::OffsetDateTime::now_utc());
    client.deliver("msg_notify_after", &body).await;
    until("the next event", || async { bot.messages().len() == 2 }).await;
    second.service.stop().await.unwrap();
    let texts: Vec<String> = bot.messages().into_iter().map(|m| m.text).collect();
    assert!(texts[0].contains("msg_notify_killed"), "{texts:?}");
    assert!(texts[1].contains("msg_notify_after"), "{texts:?}");
    assert_eq!(
        bot.messages().len(),
        2,
        "the killed event was sent exactly once"
    );
}

#[tokio::test]
async fn the_kill_switch_going_on_and_off_is_notified() {
    let hook = SlackEmulator::webhook("KILL").await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let url = secret_file(&secrets, "slack", &hook.webhook_url());
    let kill = secrets.path().join("KILL");
    let table =
        notify(json!({"kind": "slack", "webhook_url": url.to_string(), "min_interval_ms": 0}));
    let switch = kill.clone();
    let app = spawn_app_with(Options::configured(move |s: &mut Settings| {
        s.notify = vec![table.clone()];
        s.risk.kill_switch_file = Some(switch.clone());
    }))
    .await;
    std::fs::write(&kill, "").unwrap();
    until("the switch on", || async { hook.messages().len() == 1 }).await;
    std::fs::remove_file(&kill).unwrap();
    until("the switch off", || async { hook.messages().len() == 2 }).await;
    let texts: Vec<String> = hook.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(
        texts,
        vec![
            "kill switch on: every order is rejected".to_owned(),
            "kill switch off: orders are placed again".to_owned()
        ]
    );
    app.stop().await;
}
