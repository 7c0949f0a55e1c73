//! The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven
//! over WebDriver by `alertgate_testkit::browser`) against the real receiver binary: sign in
//! through the form, watch an alert arrive over SSE without a reload, open its detail, stop
//! trading with the kill-switch button. Screenshots go to `target/tmp/dashboard/` (and to
//! `docs/` with `UPDATE_SCREENSHOTS=1`).

use std::path::PathBuf;

use alertgate_testkit::browser::{self, Browser};
use serde_json::json;

use crate::helpers::{envelope_at, start_process, Options, ProcessClient, Workdir, OPS_TOKEN};

const XSS: &str = "<img src=x onerror=\"window.__xss=1\">";

async fn screenshot(browser: &Browser, name: &str) {
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    browser.screenshot(&artifacts.join(name)).await.unwrap();
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
        browser.screenshot(&docs.join(name)).await.unwrap();
    }
}

#[tokio::test]
async fn an_operator_signs_in_watches_an_alert_arrive_live_and_stops_trading_from_the_page() {
    assert!(
        browser::available(),
        "this test needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
    );
    let work = Workdir::new(&Options::default());
    let kill = work.kill_switch();
    let options = Options::configured(move |s| s.risk.kill_switch_file = Some(kill.clone()));
    let mut receiver = start_process(&work, &options).await;
    let client = ProcessClient::new(&work, receiver.addr);
    let ui = format!("http://{}/ui", receiver.addr);
    // A message from before the page opened, so the timeline starts with history.
    let earlier = json!({"symbol": "BINANCE:BTCUSDT", "action": "sell", "quantity": "0.5",
                         "price": "42010", "strategy": "mean-revert", "comment": "take profit"});
    client
        .deliver(
            "msg_earlier",
            &envelope_at(&earlier, time::OffsetDateTime::now_utc()),
        )
        .await;

    let b = Browser::start().await.unwrap();
    b.resize(1280, 900).await.unwrap();

    // A wrong token: the form again, an error, no session.
    b.goto(&ui).await.unwrap();
    let token = b.find("#token").await.unwrap();
    b.type_into(&token, "wrong-token").await.unwrap();
    b.click(&b.find("#sign-in").await.unwrap()).await.unwrap();
    b.wait_for_text("#login-message", "Wrong token.")
        .await
        .unwrap();
    assert!(b.find_all("#timeline").await.unwrap().is_empty());

    // The right one: the timeline.
    let token = b.find("#token").await.unwrap();
    b.type_into(&token, OPS_TOKEN).await.unwrap();
    b.click(&b.find("#sign-in").await.unwrap()).await.unwrap();
    b.find("#timeline").await.unwrap();
    let cookies = b.cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "alertgate_session")
        .expect("a session cookie");
    assert_eq!(
        (session["httpOnly"].as_bool(), session["sameSite"].as_str()),
        (Some(true), Some("Strict"))
    );
    b.wait_for_text("#timeline tbody", "take profit")
        .await
        .unwrap();
    b.wait_for_text("#live", "live").await.unwrap();
    b.execute("window.__sameDocument = 'yes';", vec![])
        .await
        .unwrap();

    // An alert sent now appears without a reload; its markup stays text.
    let alert = json!({"symbol": "BINANCE:BTCUSDT", "action": "buy", "quantity": "0.01",
                       "price": "42000", "strategy": "sma-cross", "comment": XSS});
    let a = client
        .deliver(
            "msg_live",
            &envelope_at(&alert, time::OffsetDateTime::now_utc()),
        )
        .await;
    assert_eq!(a.outcome(), "filled");
    let row = b
        .find("#timeline tbody tr[data-id=\"msg_live\"]")
        .await
        .unwrap();
    b.wait_for_text("#timeline tbody tr[data-id=\"msg_live\"]", "filled")
        .await
        .unwrap();
    assert!(
        b.text(&row).await.unwrap().contains(XSS),
        "the comment shows as text"
    );
    let page = b
        .execute(
            "return {same: window.__sameDocument || null, xss: window.__xss || null, \
             imgs: document.querySelectorAll('img').length};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        page,
        json!({"same": "yes", "xss": null, "imgs": 0}),
        "no reload, no injected markup"
    );
    screenshot(&b, "dashboard-timeline.png").await;

    // Detail: the order and the venue's answer.
    b.click(&row).await.unwrap();
    b.wait_for_text("#detail-orders", "msg_live-0")
        .await
        .unwrap();
    b.wait_for_text("#detail-risk", "passed the gates")
        .await
        .unwrap();
    let alert_text = b.wait_for_text("#detail-alert", "sma-cross").await.unwrap();
    assert!(!alert_text.contains("secret"));
    screenshot(&b, "dashboard-detail.png").await;

    // A POST without the CSRF token, from the page itself, is refused.
    let status = b
        .execute(
            "return fetch('/ui/api/kill-switch', {method: 'POST', credentials: 'same-origin', \
             headers: {'content-type': 'application/json'}, body: '{\"on\": true}'}).then(r => r.status);",
            vec![],
        )
        .await;
    // execute/sync returns a promise's settled value in Chromium.
    assert_eq!(status.unwrap(), json!(403));
    assert!(!work.kill_switch().exists());

    // The kill switch, by a click: the next alert is rejected.
    b.click(&b.find("nav button[data-tab=\"controls\"]").await.unwrap())
        .await
        .unwrap();
    b.wait_for_text("#kill-state", "off").await.unwrap();
    b.click(&b.find("#kill-toggle").await.unwrap())
        .await
        .unwrap();
    b.wait_for_text("#kill-state", "ON").await.unwrap();
    assert!(work.kill_switch().exists());
    let a = client
        .deliver(
            "msg_after_kill",
            &envelope_at(&alert, time::OffsetDateTime::now_utc()),
        )
        .await;
    assert_eq!(
        (a.outcome(), a.body["reason"].as_str()),
        ("rejected", Some("kill_switch"))
    );
    b.wait_for_text("#strategies", "sma-cross").await.unwrap();

    // A phone-size screen.
    b.resize(390, 844).await.unwrap();
    b.click(&b.find("nav button[data-tab=\"timeline\"]").await.unwrap())
        .await
        .unwrap();
    b.wait_for_text("#timeline tbody", "kill_switch")
        .await
        .unwrap();
    let width = b
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(width, json!(true), "no sideways scrolling on a phone");
    screenshot(&b, "dashboard-phone.png").await;

    drop(b);
    receiver.service.stop().await.unwrap();
}
