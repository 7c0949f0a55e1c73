//! Betfair against its emulator: bodies and headers of `placeOrders`, the price ladder, the
//! session (login, keep-alive, re-login), lookup before any resend, error codes, and secrets.

use std::sync::Arc;

use alertgate_receiver::broker::betfair::session::KEEP_ALIVE_AFTER_SECS;
use alertgate_receiver::broker::betfair::BetfairBroker;
use alertgate_receiver::broker::config::{BetfairConfig, BrokerConfig, BrokerKind};
use alertgate_receiver::broker::{self, Broker, BrokerError, OrderStatus};
use alertgate_receiver::journal::MemoryPlacements;
use alertgate_receiver::order::{OrderRequest, Side};
use alertgate_shared::{Clock, ManualClock, SecretRef};
use alertgate_testkit::emulators::betfair::{BetfairEmulator, BetfairEmulatorConfig};
use alertgate_testkit::emulators::Fault;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::{spawn_app_with, Options};
use crate::{client_order_id, limit, market, secret_file};

const APP_KEY: &str = "betfair-app-key-for-tests-0123";
const USERNAME: &str = "bf-test-user";
const PASSWORD: &str = "bf-test-password-s3cret";
/// TEAM1 (matches a BACK up to 2.5 and a LAY from 2.52) and TEAM2 (nothing matches).
const TEAM1: &str = "1.109850906:237486";
const TEAM2: &str = "1.109850906:60443";

struct Setup {
    venue: BetfairEmulator,
    clock: ManualClock,
    dir: TempDir,
}

impl Setup {
    async fn new() -> Self {
        let clock = ManualClock::at_unix(1_790_000_000);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let venue = BetfairEmulator::start(BetfairEmulatorConfig::new(
            APP_KEY, USERNAME, PASSWORD, shared,
        ))
        .await
        .unwrap();
        Self {
            venue,
            clock,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self, password: &str) -> BetfairConfig {
        BetfairConfig {
            base_url: self.venue.betting_url(),
            identity_url: Some(self.venue.base_url()),
            app_key: secret_file(self.dir.path(), "app_key", APP_KEY),
            username: secret_file(self.dir.path(), "username", USERNAME),
            password: secret_file(self.dir.path(), "password", password),
            cert_file: None,
            key_file: None,
            timeout_ms: 400,
        }
    }

    fn broker(&self) -> BetfairBroker {
        BetfairBroker::from_config(&self.config(PASSWORD), Arc::new(self.clock.clone())).unwrap()
    }

    fn paths(&self) -> Vec<String> {
        self.venue.requests().into_iter().map(|r| r.path).collect()
    }

    fn count(&self, path_end: &str) -> usize {
        self.paths()
            .iter()
            .filter(|p| p.ends_with(path_end))
            .count()
    }

    /// A raw `placeOrders` with this `customerRef` (and no `customerOrderRef`), logged in.
    async fn raw_place(&self, customer_ref: &str) -> Value {
        let client = reqwest::Client::new();
        let login: Value = client
            .post(format!("{}/api/login", self.venue.base_url()))
            .header("X-Application", APP_KEY)
            .header("Accept", "application/json")
            .form(&[("username", USERNAME), ("password", PASSWORD)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let body = json!({"marketId": "1.109850906", "customerRef": customer_ref, "instructions": [
            {"selectionId": 60443, "side": "BACK", "orderType": "LIMIT",
             "limitOrder": {"size": 2, "price": 3.05, "persistenceType": "LAPSE"}}]});
        client
            .post(format!("{}/placeOrders/", self.venue.betting_url()))
            .header("X-Application", APP_KEY)
            .header("X-Authentication", login["token"].as_str().unwrap())
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// What the issue's alert normalizes to: BACK, stake 1.0, reference price 2.5, at the market.
fn back_team1(id: &str) -> OrderRequest {
    market(id, TEAM1, "1.0", Some("2.5"))
}

fn rejected(result: Result<alertgate_receiver::broker::Placement, BrokerError>) -> String {
    match result {
        Err(BrokerError::Rejected { message }) => message,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_back_bet_is_the_documented_place_orders_body_with_session_and_app_key_headers() {
    let s = Setup::new().await;
    let id = client_order_id();

    let placement = s.broker().place(&back_team1(&id)).await.unwrap();

    let bets = s.venue.bets();
    assert_eq!(bets.len(), 1);
    assert_eq!(
        placement.venue_order_id.as_deref(),
        Some(bets[0].bet_id.as_str())
    );
    assert_eq!(
        placement.status,
        OrderStatus::Filled,
        "2.5 is available to back"
    );
    assert_eq!(placement.average_price, Some(dec("2.5")));
    assert_eq!(placement.filled_quantity, dec("1"));
    let post = &s.venue.order_posts()[0];
    assert_eq!(post.path, "/exchange/betting/rest/v1.0/placeOrders/");
    let expected = format!(
        r#"{{"marketId":"1.109850906","instructions":[{{"selectionId":237486,"side":"BACK","orderType":"LIMIT","limitOrder":{{"size":1,"price":2.5,"persistenceType":"LAPSE"}},"customerOrderRef":"{id}"}}],"customerRef":"{id}"}}"#
    );
    assert_eq!(String::from_utf8_lossy(&post.body), expected);
    assert_eq!(post.header("x-application"), Some(APP_KEY));
    assert_eq!(post.header("content-type"), Some("application/json"));
    let token = post.header("x-authentication").unwrap();
    assert!(token.starts_with("emulated-session-"), "{token}");
    let login = &s.venue.requests()[0];
    assert_eq!(login.path, "/api/login");
    assert_eq!(login.header("x-application"), Some(APP_KEY));
    assert_eq!(login.header("accept"), Some("application/json"));
    assert_eq!(
        String::from_utf8_lossy(&login.body),
        format!("username={USERNAME}&password={PASSWORD}")
    );
}

#[tokio::test]
async fn a_lay_bet_that_nothing_matches_rests_as_placed_at_its_limit_odds() {
    let s = Setup::new().await;

    let placement = s
        .broker()
        .place(&limit(
            &client_order_id(),
            TEAM2,
            Side::Sell,
            "2.50",
            "3.05",
        ))
        .await
        .unwrap();

    assert_eq!(placement.status, OrderStatus::Placed);
    assert_eq!(placement.filled_quantity, Decimal::ZERO);
    let bet = &s.venue.bets()[0];
    assert_eq!((bet.side.as_str(), bet.selection_id), ("LAY", 60443));
    assert_eq!((bet.price, bet.size), (dec("3.05"), dec("2.5")));
    let body = s.venue.order_posts()[0].json();
    assert_eq!(body["instructions"][0]["limitOrder"]["price"], json!(3.05));
    assert_eq!(
        body["instructions"][0]["limitOrder"]["persistenceType"],
        "LAPSE"
    );
}

#[tokio::test]
async fn odds_off_the_ladder_are_invalid_naming_the_nearest_prices_and_nothing_is_sent() {
    let s = Setup::new().await;

    let result = s
        .broker()
        .place(&market(&client_order_id(), TEAM1, "1", Some("2.51")))
        .await;

    let Err(BrokerError::Invalid { message }) = result else {
        panic!("{result:?}")
    };
    assert!(
        message.contains("2.51") && message.contains("2.5 and 2.52"),
        "{message}"
    );
    assert!(s.venue.requests().is_empty(), "not even a login");
}

#[tokio::test]
async fn a_symbol_that_is_not_market_id_colon_selection_id_is_invalid() {
    let s = Setup::new().await;
    for symbol in [
        "TEAM1/TEAM2",
        "1.109850906",
        "1.109850906:abc",
        "x.1:2",
        ":5",
    ] {
        let result = s.broker().place(&back_team1_on(symbol)).await;
        let Err(BrokerError::Invalid { message }) = result else {
            panic!("{symbol}: {result:?}")
        };
        assert!(message.contains("MARKET_ID:SELECTION_ID"), "{message}");
    }
    assert!(s.venue.requests().is_empty());
}

fn back_team1_on(symbol: &str) -> OrderRequest {
    market(&client_order_id(), symbol, "1", Some("2.5"))
}

#[tokio::test]
async fn an_expired_session_is_replaced_by_one_fresh_login_and_the_bet_is_placed() {
    let s = Setup::new().await;
    let broker = s.broker();
    broker.place(&back_team1(&client_order_id())).await.unwrap();
    s.venue.expire_sessions();

    broker.place(&back_team1(&client_order_id())).await.unwrap();

    assert_eq!(s.venue.logins(), 2);
    assert_eq!(s.venue.bets().len(), 2);
    // The refused call carried the old token; everything after the login the new one.
    let refused = s
        .venue
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/listCurrentOrders/"))
        .map(|r| r.header("x-authentication").unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(refused.len(), 3, "lookup, refused lookup, lookup again");
    assert_eq!(refused[0], refused[1]);
    assert_ne!(refused[1], refused[2]);
}

#[tokio::test]
async fn the_session_is_kept_alive_once_it_is_an_hour_old_and_replaced_once_betfair_forgot_it() {
    let s = Setup::new().await;
    let broker = s.broker();
    broker.place(&back_team1(&client_order_id())).await.unwrap();
    s.clock
        .advance(time::Duration::seconds(KEEP_ALIVE_AFTER_SECS - 1));
    broker.place(&back_team1(&client_order_id())).await.unwrap();
    assert_eq!(s.count("/api/keepAlive"), 0, "a young token is used as is");

    s.clock.advance(time::Duration::seconds(2));
    broker.place(&back_team1(&client_order_id())).await.unwrap();
    let keep_alive = s
        .venue
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/keepAlive")
        .unwrap();
    assert_eq!(keep_alive.header("x-application"), Some(APP_KEY));
    assert!(keep_alive.header("x-authentication").is_some());
    assert_eq!((s.count("/api/keepAlive"), s.venue.logins()), (1, 1));

    // Idle past the emulator's 4-hour session: the keep-alive fails, one login replaces it.
    s.clock.advance(time::Duration::hours(5));
    broker.place(&back_team1(&client_order_id())).await.unwrap();
    assert_eq!((s.count("/api/keepAlive"), s.venue.logins()), (2, 2));
    assert_eq!(s.venue.bets().len(), 4);
}

#[tokio::test]
async fn a_5xx_after_betfair_accepted_the_bet_is_resolved_by_lookup_and_places_one_bet() {
    let s = Setup::new().await;
    s.venue
        .fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);

    let placement = s
        .broker()
        .place(&back_team1(&client_order_id()))
        .await
        .unwrap();

    assert_eq!(s.venue.bets().len(), 1);
    assert_eq!(s.venue.order_posts().len(), 1);
    assert_eq!(
        placement.venue_order_id.as_deref(),
        Some(s.venue.bets()[0].bet_id.as_str())
    );
    assert_eq!(placement.status, OrderStatus::Filled);
}

#[tokio::test]
async fn a_resend_70_seconds_after_a_timeout_finds_the_bet_instead_of_placing_it_again() {
    let s = Setup::new().await;
    let broker = s.broker();
    let order = back_team1(&client_order_id());
    s.venue.fail_next_orders(Fault::AcceptThenHang, 1);

    let first = broker.place(&order).await.unwrap();
    // The executor's retry (or a restart) 70 s later: past Betfair's 60-second customerRef
    // window, where Betfair itself would take the same customerRef as a new bet.
    s.clock.advance(time::Duration::seconds(70));
    let second = broker.place(&order).await.unwrap();

    assert_eq!(first.venue_order_id, second.venue_order_id);
    assert_eq!(s.venue.order_posts().len(), 1);
    assert_eq!(s.venue.bets().len(), 1);
}

#[tokio::test]
async fn a_timeout_before_acceptance_is_transient_and_the_retry_places_one_bet() {
    let s = Setup::new().await;
    let broker = s.broker();
    let order = back_team1(&client_order_id());
    s.venue.fail_next_orders(Fault::Hang, 1);

    let result = broker.place(&order).await;
    let Err(BrokerError::Transient { message, .. }) = result else {
        panic!("{result:?}")
    };
    assert!(message.contains("not there"), "{message}");
    broker.place(&order).await.unwrap();

    assert_eq!(s.venue.bets().len(), 1);
}

#[tokio::test]
async fn betfair_dedupes_a_customer_ref_for_60_seconds_only() {
    let s = Setup::new().await;

    let first = s.raw_place("ref-1").await;
    s.clock.advance(time::Duration::seconds(30));
    let again = s.raw_place("ref-1").await;
    s.clock.advance(time::Duration::seconds(40));
    let later = s.raw_place("ref-1").await;

    assert_eq!(first["status"], "SUCCESS");
    assert_eq!(
        (again["status"].as_str(), again["errorCode"].as_str()),
        (Some("FAILURE"), Some("DUPLICATE_TRANSACTION"))
    );
    assert_eq!(
        later["status"], "SUCCESS",
        "70 s later the same customerRef is a new bet"
    );
    assert_eq!(s.venue.bets().len(), 2);
}

#[tokio::test]
async fn a_duplicate_transaction_that_cannot_be_listed_is_transient_not_a_second_bet() {
    let s = Setup::new().await;
    let id = client_order_id();
    // A bet with this customerRef but no customerOrderRef (placed by something else).
    s.raw_place(&id).await;

    let result = s
        .broker()
        .place(&market(&id, TEAM2, "2", Some("3.05")))
        .await;

    let Err(BrokerError::Transient { message, .. }) = result else {
        panic!("{result:?}")
    };
    assert!(message.contains("duplicate"), "{message}");
    assert_eq!(s.venue.bets().len(), 1);
}

#[tokio::test]
async fn betfairs_error_codes_become_reasons_a_user_can_act_on() {
    let s = Setup::new().await;
    let broker = s.broker();

    s.venue.set_available_to_bet(dec("0.5"));
    let message = rejected(broker.place(&back_team1(&client_order_id())).await);
    assert!(
        message.contains("insufficient funds") && message.contains("INSUFFICIENT_FUNDS"),
        "{message}"
    );
    s.venue.set_available_to_bet(dec("1000"));

    let message = rejected(
        broker
            .place(&market(&client_order_id(), TEAM1, "0.5", Some("2.5")))
            .await,
    );
    assert!(
        message.contains("INVALID_BET_SIZE") && message.contains("minimum"),
        "{message}"
    );

    let message = rejected(
        broker
            .place(&market(
                &client_order_id(),
                "1.109850906:999",
                "1",
                Some("2.5"),
            ))
            .await,
    );
    assert!(
        message.contains("INVALID_RUNNER") && message.contains("[symbols]"),
        "{message}"
    );

    let message = rejected(
        broker
            .place(&market(&client_order_id(), "1.2:3", "1", Some("2.5")))
            .await,
    );
    assert!(message.contains("INVALID_MARKET_ID"), "{message}");

    s.venue.set_market_status("1.109850906", "SUSPENDED");
    let message = rejected(broker.place(&back_team1(&client_order_id())).await);
    assert!(
        message.contains("suspended") && message.contains("MARKET_SUSPENDED"),
        "{message}"
    );

    s.venue.set_market_status("1.109850906", "CLOSED");
    let message = rejected(broker.place(&back_team1(&client_order_id())).await);
    assert!(message.contains("MARKET_NOT_OPEN_FOR_BETTING"), "{message}");

    assert!(s.venue.bets().is_empty());
}

#[tokio::test]
async fn wrong_credentials_are_refused_by_name_without_any_secret_in_the_message() {
    let s = Setup::new().await;
    let broker =
        BetfairBroker::from_config(&s.config("wrong-password-xyz"), Arc::new(s.clock.clone()))
            .unwrap();

    let message = rejected(broker.place(&back_team1(&client_order_id())).await);

    assert!(
        message.contains("INVALID_USERNAME_OR_PASSWORD") && message.contains("betfair.password"),
        "{message}"
    );
    for secret in [PASSWORD, "wrong-password-xyz", APP_KEY, USERNAME] {
        assert!(!message.contains(secret), "{message}");
    }
    assert!(s.venue.bets().is_empty());
}

#[tokio::test]
async fn no_password_app_key_or_session_token_appears_in_errors_or_debug_output() {
    let s = Setup::new().await;
    let broker = s.broker();
    broker.place(&back_team1(&client_order_id())).await.unwrap();
    let token = s.venue.order_posts()[0]
        .header("x-authentication")
        .unwrap()
        .to_owned();
    s.venue.set_available_to_bet(Decimal::ZERO);
    s.venue
        .fail_next_orders(Fault::ServerError { status: 500 }, 1);
    let mut shown = vec![format!("{broker:?}")];
    for order in [
        back_team1(&client_order_id()),
        market(&client_order_id(), TEAM1, "1", Some("2.51")),
        market(&client_order_id(), "TEAM1/TEAM2", "1", Some("2.5")),
    ] {
        shown.push(format!("{:?}", broker.place(&order).await));
    }
    s.venue.expire_sessions();
    shown.push(format!(
        "{:?}",
        broker.place(&back_team1(&client_order_id())).await
    ));

    for text in &shown {
        for secret in [PASSWORD, APP_KEY, token.as_str()] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[tokio::test]
async fn a_certificate_login_posts_the_form_to_certlogin_with_the_app_key() {
    let s = Setup::new().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["alertgate-bot".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_file = s.dir.path().join("client.crt");
    let key_file = s.dir.path().join("client.key");
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let mut config = s.config(PASSWORD);
    config.cert_file = Some(cert_file);
    config.key_file = Some(key_file.clone());

    let broker = BetfairBroker::from_config(&config, Arc::new(s.clock.clone())).unwrap();
    broker.place(&back_team1(&client_order_id())).await.unwrap();

    let login = &s.venue.requests()[0];
    assert_eq!(login.path, "/api/certlogin");
    assert_eq!(login.header("x-application"), Some(APP_KEY));
    assert_eq!(
        String::from_utf8_lossy(&login.body),
        format!("username={USERNAME}&password={PASSWORD}")
    );
    assert_eq!(s.venue.bets().len(), 1);

    // A key that is not PEM is refused by file name, without its content.
    std::fs::write(&key_file, "not-a-pem-private-key-material").unwrap();
    let err = BetfairBroker::from_config(&config, Arc::new(s.clock.clone()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("client.key") && !err.contains("key-material"),
        "{err}"
    );
    config.key_file = None;
    let err = BetfairBroker::from_config(&config, Arc::new(s.clock.clone()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cert_file and key_file"), "{err}");
}

#[test]
fn the_identity_host_follows_the_login_kind_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BetfairConfig {
        base_url: "https://api.betfair.com/exchange/betting/rest/v1.0".into(),
        identity_url: None,
        app_key: secret_file(dir.path(), "a", "x"),
        username: secret_file(dir.path(), "u", "x"),
        password: secret_file(dir.path(), "p", "x"),
        cert_file: None,
        key_file: None,
        timeout_ms: 5000,
    };
    assert_eq!(config.identity_url(), "https://identitysso.betfair.com");
    config.cert_file = Some("client.crt".into());
    assert_eq!(
        config.identity_url(),
        "https://identitysso-cert.betfair.com"
    );
    config.identity_url = Some("http://127.0.0.1:1".into());
    assert_eq!(config.identity_url(), "http://127.0.0.1:1");
}

#[test]
fn the_factory_builds_betfair_and_names_an_unreadable_secret_by_key_and_reference() {
    let dir = tempfile::tempdir().unwrap();
    let section = |password: SecretRef| BrokerConfig {
        kind: BrokerKind::Betfair,
        betfair: Some(BetfairConfig {
            base_url: "https://api.betfair.com/exchange/betting/rest/v1.0".into(),
            identity_url: None,
            app_key: secret_file(dir.path(), "a", APP_KEY),
            username: secret_file(dir.path(), "u", USERNAME),
            password,
            cert_file: None,
            key_file: None,
            timeout_ms: 5000,
        }),
        ..BrokerConfig::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix(0));
    let book = || Arc::new(MemoryPlacements::default());
    let built = broker::build(
        &section(secret_file(dir.path(), "p", PASSWORD)),
        book(),
        clock.clone(),
    )
    .unwrap();
    assert_eq!((built.name(), built.max_client_id_len()), ("betfair", 32));

    let err = broker::build(
        &section(SecretRef::Env(
            "ALERTGATE_TEST_UNSET_BETFAIR_PASSWORD".into(),
        )),
        book(),
        clock.clone(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("betfair.password") && err.contains("ALERTGATE_TEST_UNSET_BETFAIR_PASSWORD"),
        "{err}"
    );

    let missing = BrokerConfig {
        kind: BrokerKind::Betfair,
        ..BrokerConfig::default()
    };
    let err = broker::build(&missing, book(), clock)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("[broker.betfair]"), "{err}");
}

#[test]
fn a_broker_betfair_table_parses_with_secret_references() {
    let config: BrokerConfig = toml::from_str(
        r#"
        kind = "betfair"
        [betfair]
        app_key = "env:BETFAIR_APP_KEY"
        username = "env:BETFAIR_USERNAME"
        password = "file:/etc/alertgate/betfair-password"
        cert_file = "/etc/alertgate/client-2048.crt"
        key_file = "/etc/alertgate/client-2048.key"
        "#,
    )
    .unwrap();
    let section = config.betfair.unwrap();
    assert_eq!(config.kind, BrokerKind::Betfair);
    assert_eq!(
        section.base_url,
        "https://api.betfair.com/exchange/betting/rest/v1.0"
    );
    assert_eq!(
        section.identity_url(),
        "https://identitysso-cert.betfair.com"
    );
    assert_eq!(
        section.password,
        SecretRef::File("/etc/alertgate/betfair-password".into())
    );
    assert_eq!(section.timeout_ms, 5000);
    let literal = toml::from_str::<BrokerConfig>("kind = \"betfair\"\n[betfair]\napp_key = \"abc\"\nusername = \"env:U\"\npassword = \"env:P\"\n");
    assert!(literal.is_err(), "a literal secret is refused");
}

#[tokio::test]
async fn the_betfair_style_alert_becomes_exactly_one_back_bet_through_the_receiver() {
    let s = Setup::new().await;
    let mut config = s.config(PASSWORD);
    config.timeout_ms = 2000;
    let app = spawn_app_with(Options::configured(move |settings| {
        settings.broker = BrokerConfig {
            kind: BrokerKind::Betfair,
            betfair: Some(config.clone()),
            ..BrokerConfig::default()
        };
        settings.symbols.insert("TEAM1/TEAM2".into(), TEAM1.into());
        settings.executor.inline_deadline_ms = 8000;
    }))
    .await;
    let alert = json!({"symbol": "TEAM1/TEAM2", "strategy": "sma-cross", "signal": "BUY", "side": "BACK",
                       "price": 2.5, "stake": 1.0, "client_ref": "bf-e2e-1"});

    let (_, answer) = app.send(&alert).await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.outcome(), "filled", "{:?}", answer.body);
    let bets = s.venue.bets();
    assert_eq!(bets.len(), 1);
    assert_eq!(answer.orders()[0]["venue_order_id"], bets[0].bet_id);
    let body = s.venue.order_posts()[0].json();
    let instruction = &body["instructions"][0];
    assert_eq!(body["marketId"], "1.109850906");
    assert_eq!(instruction["selectionId"], 237486);
    assert_eq!(instruction["side"], "BACK");
    assert_eq!(
        instruction["limitOrder"],
        json!({"size": 1, "price": 2.5, "persistenceType": "LAPSE"})
    );
    let reference = body["customerRef"].as_str().unwrap();
    assert!(reference.len() <= 32, "{reference}");
    assert_eq!(instruction["customerOrderRef"], reference);
}

#[tokio::test]
async fn a_symbol_check_names_the_market_and_runner_or_lists_the_runners() {
    let s = Setup::new().await;
    let broker = s.broker();

    assert_eq!(
        broker.describe_symbol(TEAM1).await.unwrap(),
        "TEAM1 v TEAM2 / TEAM1"
    );
    let Err(BrokerError::Rejected { message }) = broker.describe_symbol("1.109850906:1").await
    else {
        panic!()
    };
    assert!(
        message.contains("237486 = TEAM1") && message.contains("60443 = TEAM2"),
        "{message}"
    );
    let Err(BrokerError::Rejected { message }) = broker.describe_symbol("1.5:1").await else {
        panic!()
    };
    assert!(message.contains("no market 1.5"), "{message}");
    assert!(s.venue.order_posts().is_empty());
}
