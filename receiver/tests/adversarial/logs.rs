//! Secrets in logs: a receiver process logging at debug level, driven through verified and
//! refused deliveries, a venue that cannot be reached, and the ops API with right and wrong
//! tokens, never writes its HMAC secret, the ops token (or a guess at it), or the venue's API
//! credentials.

use alertgate_receiver::broker::config::{BinanceConfig, BrokerKind};
use alertgate_shared::config::LogFormat;
use alertgate_shared::{MessageId, Signer};
use alertgate_testkit::logs::{assert_never_logged, check_config_lines};
use alertgate_testkit::{secret_file, WAIT};

use crate::helpers::*;

const BINANCE_KEY: &str = "binance-api-key-3b9d0c7e51a24f68";
const BINANCE_SECRET: &str = "binance-api-secret-8c1f2e9a7d6b5043";

#[tokio::test]
async fn no_secret_token_guess_or_venue_credential_appears_in_any_log_line_at_debug_level() {
    let work = Workdir::new(&Options::default());
    let api_key = secret_file(work.path(), "binance-key", BINANCE_KEY);
    let api_secret = secret_file(work.path(), "binance-secret", BINANCE_SECRET);
    let options = Options::configured(move |s| {
        s.log.level = "debug".into();
        s.log.format = LogFormat::Json;
        s.broker.kind = BrokerKind::Binance;
        s.broker.binance = Some(BinanceConfig {
            base_url: "http://127.0.0.1:9".into(),
            api_key: api_key.clone(),
            api_secret: Some(api_secret.clone()),
            private_key: None,
            recv_window_ms: 5000,
            timeout_ms: 5000,
        });
        s.executor.max_attempts = 2;
        s.executor.retry_base_ms = 10;
        s.executor.retry_max_ms = 20;
        s.executor.inline_deadline_ms = 3000;
    });
    let mut process = start_process(&work, &options).await;
    let addr = process.addr;
    let http = reqwest::Client::new();

    let client = ProcessClient::new(&work, addr);
    let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());
    let id = MessageId::generate().to_string();
    let placed = client.deliver(&id, &body).await;
    assert!([200, 202].contains(&placed.status), "{:?}", placed.body);
    // Signed with a key the receiver does not trust.
    let stranger = ProcessClient {
        signer: Signer::new(vec![alertgate_shared::SigningKey::generate()], vec![]).unwrap(),
        ..ProcessClient::new(&work, addr)
    };
    assert_eq!(stranger.deliver("msg_stranger", &body).await.status, 401);
    let near_miss = format!("{}X", &OPS_TOKEN[..OPS_TOKEN.len() - 1]);
    for token in [OPS_TOKEN, near_miss.as_str()] {
        let _ = http
            .get(format!("http://{addr}/v1/orders"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let _ = http
            .get(format!("http://{addr}/v1/messages/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
    }
    // The venue is unreachable: wait for the execution to give up (the order is `unknown`).
    process
        .service
        .wait_for_log("order unknown", WAIT)
        .await
        .unwrap();

    process.service.stop().await.unwrap();
    let mut lines = process.service.log_lines();
    let (_, checked) = check_config_lines(BIN.as_ref(), process.service.config_path()).unwrap();
    lines.extend(checked);

    assert!(
        lines.iter().any(|l| l.contains(r#""level":"DEBUG""#)),
        "debug logging was not on: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("delivery refused")),
        "the refused delivery is logged: {lines:#?}"
    );
    println!("{} lines checked", lines.len());
    let whsec = work.hmac.to_text().expose().to_owned();
    assert_never_logged(
        &lines,
        6,
        &[
            ("the HMAC secret", whsec.trim_start_matches("whsec_")),
            ("the ops token", OPS_TOKEN),
            ("a near-miss ops token", near_miss.as_str()),
            ("the Binance API key", BINANCE_KEY),
            ("the Binance API secret", BINANCE_SECRET),
        ],
    );
}
