//! One receiver, three `[[venues]]` (the Binance and Alpaca emulators and the paper venue):
//! alerts go to the venue serving their exchange, an alert's `venue` field overrides that, no
//! match is `invalid` naming `venue`; each venue has its own symbols, risk limits, metrics label
//! and reconciliation.

use std::collections::BTreeMap;
use std::sync::Arc;

use alertgate_receiver::broker::config::{AlpacaConfig, BinanceConfig, PaperConfig, VenueBroker};
use alertgate_receiver::config::{RiskLimits, VenueConfig};
use alertgate_shared::{Clock, SystemClock};
use alertgate_testkit::emulators::alpaca::{AlpacaEmulator, AlpacaEmulatorConfig};
use alertgate_testkit::emulators::binance::{BinanceEmulator, BinanceEmulatorConfig};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::{dec, spawn_app_with, Options, TestApp};
use crate::secret_file;

const BINANCE_KEY: &str = "binance-routing-key";
const BINANCE_SECRET: &str = "binance-routing-secret";
const ALPACA_KEY: &str = "PKROUTINGKEY";
const ALPACA_SECRET: &str = "alpaca-routing-secret";

struct ThreeVenues {
    binance: BinanceEmulator,
    alpaca: AlpacaEmulator,
    app: TestApp,
    _dir: TempDir,
}

fn venue(name: &str, exchanges: &[&str], broker: VenueBroker) -> VenueConfig {
    VenueConfig {
        name: name.into(),
        exchanges: exchanges.iter().map(|e| e.to_string()).collect(),
        accounts: Vec::new(),
        symbols: BTreeMap::new(),
        risk: None,
        broker,
    }
}

async fn three_venues() -> ThreeVenues {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let binance = BinanceEmulator::start(BinanceEmulatorConfig::hmac(
        BINANCE_KEY,
        BINANCE_SECRET,
        clock,
    ))
    .await
    .unwrap();
    let alpaca = AlpacaEmulator::start(AlpacaEmulatorConfig::new(ALPACA_KEY, ALPACA_SECRET))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let crypto = venue(
        "crypto",
        &["BINANCE"],
        VenueBroker::Binance(BinanceConfig {
            base_url: binance.base_url(),
            api_key: secret_file(dir.path(), "bkey", BINANCE_KEY),
            api_secret: Some(secret_file(dir.path(), "bsecret", BINANCE_SECRET)),
            private_key: None,
            recv_window_ms: 60_000,
            timeout_ms: 1000,
        }),
    );
    let mut stocks = venue(
        "stocks",
        &["NASDAQ", "NYSE"],
        VenueBroker::Alpaca(AlpacaConfig {
            base_url: alpaca.base_url(),
            key_id: secret_file(dir.path(), "akey", ALPACA_KEY),
            secret_key: secret_file(dir.path(), "asecret", ALPACA_SECRET),
            timeout_ms: 1000,
        }),
    );
    stocks.risk = Some(RiskLimits {
        max_quantity: Some(dec("5")),
        ..RiskLimits::default()
    });
    let mut sim = venue("sim", &["SIM"], VenueBroker::Paper(PaperConfig::default()));
    sim.symbols
        .insert("BINANCE:ETHUSDT".into(), "ETH-SIM".into());
    let venues = vec![crypto, stocks, sim];
    let app = spawn_app_with(Options::configured(move |s| {
        s.venues = venues.clone();
        s.executor.inline_deadline_ms = 8000;
        s.reconcile.interval_seconds = 0;
    }))
    .await;
    ThreeVenues {
        binance,
        alpaca,
        app,
        _dir: dir,
    }
}

fn alert(symbol: &str, quantity: &str, price: &str, extra: Value) -> Value {
    let mut alert =
        json!({"symbol": symbol, "action": "buy", "quantity": quantity, "price": price});
    for (k, v) in extra.as_object().unwrap() {
        alert[k] = v.clone();
    }
    alert
}

#[tokio::test]
async fn each_alert_goes_to_the_venue_of_its_exchange_or_the_one_it_names() {
    let t = three_venues().await;

    let (_, btc) = t
        .app
        .send(&alert("BINANCE:BTCUSDT", "0.01", "42000", json!({})))
        .await;
    let (_, aapl) = t
        .app
        .send(&alert("NASDAQ:AAPL", "2", "190", json!({"tif": "day"})))
        .await;
    let (_, named) = t
        .app
        .send(&alert(
            "BINANCE:ETHUSDT",
            "1",
            "2500",
            json!({"venue": "sim"}),
        ))
        .await;

    assert_eq!(btc.outcome(), "filled", "{:?}", btc.body);
    assert_eq!(btc.orders()[0]["venue"], "crypto");
    let at_binance = t.binance.orders();
    assert_eq!(
        at_binance.len(),
        1,
        "only the BINANCE alert reached Binance"
    );
    assert_eq!(at_binance[0].symbol, "BTCUSDT");
    assert_eq!(
        btc.orders()[0]["venue_order_id"],
        at_binance[0].order_id.to_string()
    );

    assert_eq!(aapl.outcome(), "placed", "{:?}", aapl.body);
    assert_eq!(aapl.orders()[0]["venue"], "stocks");
    let at_alpaca = t.alpaca.orders();
    assert_eq!(at_alpaca.len(), 1, "only the NASDAQ alert reached Alpaca");
    assert_eq!(at_alpaca[0].symbol, "AAPL");
    assert_eq!(aapl.orders()[0]["venue_order_id"], at_alpaca[0].id);

    // The venue field wins over the exchange; the venue's own symbols table maps it.
    assert_eq!(named.outcome(), "filled", "{:?}", named.body);
    assert_eq!(named.orders()[0]["venue"], "sim");
    assert_eq!(named.orders()[0]["symbol"], "ETH-SIM");
    assert_eq!(t.binance.orders().len(), 1);

    let journal = t.app.all_orders().await;
    let mut venues: Vec<&str> = journal
        .iter()
        .map(|o| o["venue"].as_str().unwrap())
        .collect();
    venues.sort_unstable();
    assert_eq!(venues, ["crypto", "sim", "stocks"]);
    let metrics = t.app.metrics().await;
    for line in [
        r#"alertgate_receiver_orders_total{venue="crypto",status="filled"} 1"#,
        r#"alertgate_receiver_orders_total{venue="stocks",status="placed"} 1"#,
        r#"alertgate_receiver_orders_total{venue="sim",status="filled"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn no_matching_venue_or_an_unknown_venue_name_is_invalid_naming_venue() {
    let t = three_venues().await;

    let (_, unserved) = t
        .app
        .send(&alert("NSE:RELIANCE", "1", "2800", json!({})))
        .await;
    let (_, unknown) = t
        .app
        .send(&alert(
            "BINANCE:BTCUSDT",
            "0.01",
            "42000",
            json!({"venue": "kraken"}),
        ))
        .await;

    assert_eq!(unserved.outcome(), "invalid", "{:?}", unserved.body);
    let reason = unserved.body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("venue: no venue serves account \"main\" on exchange \"NSE\""),
        "{reason}"
    );
    assert_eq!(unknown.outcome(), "invalid", "{:?}", unknown.body);
    let reason = unknown.body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("venue: no venue named \"kraken\" (venues: crypto, stocks, sim)"),
        "{reason}"
    );
    assert!(t.binance.order_posts().is_empty());
    assert!(t.alpaca.order_posts().is_empty());
}

#[tokio::test]
async fn risk_limits_are_per_venue_and_reconciliation_asks_each_venue_about_its_own_orders() {
    let t = three_venues().await;

    // stocks has max_quantity 5; the global limits (none) apply at crypto.
    let (_, big_aapl) = t
        .app
        .send(&alert("NASDAQ:AAPL", "10", "190", json!({"tif": "day"})))
        .await;
    let (_, aapl) = t
        .app
        .send(&alert("NYSE:AAPL", "3", "190", json!({"tif": "day"})))
        .await;
    let (_, btc) = t
        .app
        .send(&alert("BINANCE:BTCUSDT", "0.01", "42000", json!({})))
        .await;

    assert_eq!(big_aapl.outcome(), "rejected", "{:?}", big_aapl.body);
    assert_eq!(big_aapl.body["reason"], "max_quantity");
    assert_eq!(aapl.outcome(), "placed", "{:?}", aapl.body);
    assert_eq!(btc.outcome(), "filled", "{:?}", btc.body);

    let (_, eth) = t
        .app
        .send(&alert("SIM:ETHUSD", "1", "2500", json!({})))
        .await;
    assert_eq!(eth.outcome(), "filled", "{:?}", eth.body);

    t.binance.set_balance("BTC", dec("0.004"));
    let pass = t.app.reconciler.run_once().await.unwrap();
    assert_eq!(pass.drifts.len(), 1, "{pass:?}");
    let rows = t.app.positions().await;
    let row = |venue: &str, symbol: &str| {
        rows.iter()
            .find(|r| r["venue"] == venue && r["symbol"] == symbol)
            .unwrap_or_else(|| panic!("{venue} {symbol} in {rows:?}"))
            .clone()
    };
    let btc = row("crypto", "BTCUSDT");
    assert_eq!(btc["position"], "0.01", "{btc:?}");
    assert_eq!(btc["venue_position"], "0.004", "{btc:?}");
    let eth = row("sim", "ETHUSD");
    assert_eq!(eth["position"], "1", "{eth:?}");
    assert!(
        eth["venue_position"].is_null(),
        "paper reports none: {eth:?}"
    );
    // Alpaca answered the market order `accepted` (placed); it filled there, and the pass
    // followed it: the fill is journaled and the position agrees with Alpaca's.
    let aapl = row("stocks", "AAPL");
    assert_eq!(
        (&aapl["position"], &aapl["venue_position"]),
        (&json!("3"), &json!("3")),
        "{aapl:?}"
    );
    assert_eq!(
        rows.len(),
        3,
        "each position at the venue its orders went to: {rows:?}"
    );
    let metrics = t.app.metrics().await;
    let gauge = r#"alertgate_receiver_position_drift{account="main",venue="crypto",symbol="BTCUSDT"} -0.006"#;
    assert!(metrics.contains(gauge), "{gauge} in\n{metrics}");
}

#[tokio::test]
async fn a_cancel_acts_at_the_venue_it_routes_to() {
    let t = three_venues().await;
    let (_, resting) = t
        .app
        .send(&alert(
            "BINANCE:BTCUSDT",
            "0.01",
            "42000",
            json!({"order_type": "limit", "limit_price": "41000"}),
        ))
        .await;
    assert_eq!(resting.outcome(), "placed", "{:?}", resting.body);

    let cancel = |venue: Option<&str>| {
        let mut a = json!({"symbol": "BINANCE:BTCUSDT", "action": "cancel"});
        if let Some(v) = venue {
            a["venue"] = json!(v);
        }
        a
    };
    let (_, elsewhere) = t.app.send(&cancel(Some("sim"))).await;
    let (_, here) = t.app.send(&cancel(None)).await;

    assert_eq!(elsewhere.outcome(), "cancelled", "{:?}", elsewhere.body);
    assert_eq!(elsewhere.body["reason"], "nothing_to_cancel");
    assert_eq!(here.outcome(), "cancelled", "{:?}", here.body);
    assert_eq!(
        here.orders()[0]["client_order_id"],
        resting.orders()[0]["client_order_id"]
    );
    assert_eq!(here.orders()[0]["status"], "cancelled");
    assert_eq!(t.binance.orders()[0].status, "CANCELED");
}

#[tokio::test]
async fn a_perpetual_ticker_skips_the_spot_venue_and_reaches_the_futures_venue_listed_after_it() {
    use alertgate_receiver::broker::config::BinanceFuturesConfig;
    use alertgate_testkit::emulators::binance_futures::{
        BinanceFuturesEmulator, BinanceFuturesEmulatorConfig,
    };
    const FUTURES_KEY: &str = "futures-routing-key";
    const FUTURES_SECRET: &str = "futures-routing-secret";
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let spot = BinanceEmulator::start(BinanceEmulatorConfig::hmac(
        BINANCE_KEY,
        BINANCE_SECRET,
        clock.clone(),
    ))
    .await
    .unwrap();
    let futures = BinanceFuturesEmulator::start(BinanceFuturesEmulatorConfig::hmac(
        FUTURES_KEY,
        FUTURES_SECRET,
        clock,
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let venues = vec![
        venue(
            "spot",
            &["BINANCE"],
            VenueBroker::Binance(BinanceConfig {
                base_url: spot.base_url(),
                api_key: secret_file(dir.path(), "skey", BINANCE_KEY),
                api_secret: Some(secret_file(dir.path(), "ssecret", BINANCE_SECRET)),
                private_key: None,
                recv_window_ms: 60_000,
                timeout_ms: 1000,
            }),
        ),
        venue(
            "perps",
            &["BINANCE"],
            VenueBroker::BinanceFutures(BinanceFuturesConfig {
                base_url: futures.base_url(),
                api_key: secret_file(dir.path(), "fkey", FUTURES_KEY),
                api_secret: Some(secret_file(dir.path(), "fsecret", FUTURES_SECRET)),
                private_key: None,
                recv_window_ms: 60_000,
                timeout_ms: 1000,
                leverage: [("BTCUSDT".to_owned(), 3)].into_iter().collect(),
            }),
        ),
    ];
    let app = spawn_app_with(Options::configured(move |s| {
        s.venues = venues.clone();
        s.executor.inline_deadline_ms = 8000;
        s.reconcile.interval_seconds = 0;
    }))
    .await;

    let (_, spot_buy) = app
        .send(&alert("BINANCE:BTCUSDT", "0.01", "42000", json!({})))
        .await;
    let (_, perp_buy) = app
        .send(&alert("BINANCE:BTCUSDT.P", "0.01", "42000", json!({})))
        .await;

    assert_eq!(spot_buy.outcome(), "filled", "{:?}", spot_buy.body);
    assert_eq!(spot_buy.orders()[0]["venue"], "spot");
    assert_eq!(perp_buy.outcome(), "filled", "{:?}", perp_buy.body);
    assert_eq!(perp_buy.orders()[0]["venue"], "perps");
    assert_eq!(spot.orders().len(), 1, "only the spot ticker reached spot");
    let at_futures = futures.orders();
    assert_eq!(at_futures.len(), 1, "the perpetual went to futures");
    assert_eq!(at_futures[0].symbol, "BTCUSDT");
    assert_eq!(at_futures[0].quantity, dec("0.01"));
    assert_eq!(
        futures.leverage("BTCUSDT"),
        3,
        "leverage set before the first order"
    );
}
