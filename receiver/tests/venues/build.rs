//! `broker::build`: from `[broker]` to a venue, paper included, with errors that name the key and
//! never a secret.

use std::sync::Arc;

use alertgate_receiver::broker::config::{
    AlpacaConfig, BinanceConfig, BrokerConfig, BrokerKind, HttpBrokerConfig,
};
use alertgate_receiver::broker::{self, Broker, BrokerBuildError};
use alertgate_receiver::journal::MemoryPlacements;
use alertgate_shared::{Clock, SecretRef, SystemClock};

use crate::secret_file;

/// The one factory, with a book in memory (no venue here places anything).
fn build_venue(
    config: &BrokerConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Broker>, BrokerBuildError> {
    broker::build(config, Arc::new(MemoryPlacements::default()), clock)
}

fn binance(
    api_secret: Option<SecretRef>,
    private_key: Option<SecretRef>,
    dir: &std::path::Path,
) -> BrokerConfig {
    BrokerConfig {
        kind: BrokerKind::Binance,
        binance: Some(BinanceConfig {
            base_url: "https://testnet.binance.vision".into(),
            api_key: secret_file(dir, "key", "binance-api-key"),
            api_secret,
            private_key,
            recv_window_ms: 5000,
            timeout_ms: 5000,
        }),
        ..BrokerConfig::default()
    }
}

#[test]
fn each_real_venue_is_built_from_its_section_and_reports_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock);
    let b = build_venue(
        &binance(
            Some(secret_file(dir.path(), "s", "hmac-secret")),
            None,
            dir.path(),
        ),
        clock.clone(),
    )
    .unwrap();
    assert_eq!(b.name(), "binance");
    assert!(
        b.spot_only(),
        "perpetual tickers are refused for a spot venue"
    );
    let alpaca = BrokerConfig {
        kind: BrokerKind::Alpaca,
        alpaca: Some(AlpacaConfig {
            base_url: "https://paper-api.alpaca.markets".into(),
            key_id: secret_file(dir.path(), "id", "key-id"),
            secret_key: secret_file(dir.path(), "sk", "secret-key"),
            timeout_ms: 5000,
        }),
        ..BrokerConfig::default()
    };
    assert_eq!(
        build_venue(&alpaca, clock.clone()).unwrap().name(),
        "alpaca"
    );
    let http = BrokerConfig {
        kind: BrokerKind::Http,
        http: Some(HttpBrokerConfig {
            url: "https://oms.internal/orders".into(),
            hmac_secrets: vec![secret_file(
                dir.path(),
                "whsec",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )],
            positions_url: None,
            timeout_ms: 5000,
        }),
        ..BrokerConfig::default()
    };
    let http = build_venue(&http, clock).unwrap();
    assert_eq!((http.name(), http.spot_only()), ("http", false));
}

#[test]
fn paper_is_built_like_any_venue_and_a_missing_section_is_refused_by_name() {
    let clock = Arc::new(SystemClock);
    let paper = build_venue(&BrokerConfig::default(), clock.clone()).unwrap();
    assert_eq!(paper.name(), "paper");
    assert!(!paper.spot_only());
    let err = build_venue(
        &BrokerConfig {
            kind: BrokerKind::Alpaca,
            ..BrokerConfig::default()
        },
        clock,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("[broker.alpaca]"), "{err}");
}

#[test]
fn binance_needs_exactly_one_of_an_hmac_secret_and_an_ed25519_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(SystemClock);
    let both = binance(
        Some(secret_file(dir.path(), "s", "x")),
        Some(secret_file(dir.path(), "k", "y")),
        dir.path(),
    );
    let err = build_venue(&both, clock.clone()).err().unwrap().to_string();
    assert!(err.contains("exactly one of api_secret"), "{err}");
    let neither = binance(None, None, dir.path());
    assert!(build_venue(&neither, clock).is_err());
}

#[test]
fn an_unreadable_secret_is_named_by_key_and_reference_and_no_secret_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let config = binance(
        Some(SecretRef::Env("ALERTGATE_TEST_UNSET_BINANCE_SECRET".into())),
        None,
        dir.path(),
    );
    let err = build_venue(&config, Arc::new(SystemClock))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("binance.api_secret") && err.contains("ALERTGATE_TEST_UNSET_BINANCE_SECRET"),
        "{err}"
    );

    let bad_key = binance(
        None,
        Some(secret_file(
            dir.path(),
            "pem",
            "not-a-key-but-secret-material",
        )),
        dir.path(),
    );
    let err = build_venue(&bad_key, Arc::new(SystemClock))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("binance.private_key") && !err.contains("secret-material"),
        "{err}"
    );
}

#[test]
fn an_http_venue_without_a_signing_secret_is_refused() {
    let config = BrokerConfig {
        kind: BrokerKind::Http,
        http: Some(HttpBrokerConfig {
            url: "https://oms.internal/orders".into(),
            hmac_secrets: vec![],
            positions_url: None,
            timeout_ms: 5000,
        }),
        ..BrokerConfig::default()
    };
    let err = build_venue(&config, Arc::new(SystemClock))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("http.hmac_secrets"), "{err}");
}
