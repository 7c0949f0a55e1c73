//! `[broker]` configuration: which venue, and each venue's settings. Credentials are always
//! `env:`/`file:` references ([`SecretRef`]), resolved when the broker is built.

use alertgate_shared::SecretRef;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Which venue orders go to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// The embedded paper broker (default).
    #[default]
    Paper,
    /// Binance Spot.
    Binance,
    /// Alpaca.
    Alpaca,
    /// The user's own OMS over HTTP.
    Http,
    /// Zerodha (Kite Connect v3): NSE, BSE, NFO, MCX, CDS, BFO.
    Zerodha,
    /// Betfair Exchange (API-NG).
    Betfair,
    /// Binance USDⓈ-M futures (perpetuals), one-way position mode.
    #[serde(rename = "binance_futures")]
    BinanceFutures,
}

impl BrokerKind {
    /// `paper`, `binance`, `alpaca`, `http`, `zerodha`, `betfair`, `binance_futures`: the
    /// broker's name in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paper => "paper",
            Self::Binance => "binance",
            Self::Alpaca => "alpaca",
            Self::Http => "http",
            Self::Zerodha => "zerodha",
            Self::Betfair => "betfair",
            Self::BinanceFutures => "binance_futures",
        }
    }
}

/// One venue's kind with its settings: the `kind` key and that kind's keys, as one value. It is
/// what [`super::build`] builds, from `[broker]` ([`BrokerConfig::venue_broker`]) or from a
/// `[[venues]]` table (flattened there, so a venue's keys sit beside its `name`). A new kind is
/// a variant here, its config struct, and its arm in [`super::build`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VenueBroker {
    /// The embedded paper broker.
    Paper(PaperConfig),
    /// Binance Spot.
    Binance(BinanceConfig),
    /// Alpaca.
    Alpaca(AlpacaConfig),
    /// The user's own OMS over HTTP.
    Http(HttpBrokerConfig),
    /// Zerodha (Kite Connect v3).
    Zerodha(ZerodhaConfig),
    /// Betfair Exchange (API-NG).
    Betfair(BetfairConfig),
    /// Binance USDⓈ-M futures.
    BinanceFutures(BinanceFuturesConfig),
}

impl VenueBroker {
    /// The kind.
    pub fn kind(&self) -> BrokerKind {
        match self {
            Self::Paper(_) => BrokerKind::Paper,
            Self::Binance(_) => BrokerKind::Binance,
            Self::Alpaca(_) => BrokerKind::Alpaca,
            Self::Http(_) => BrokerKind::Http,
            Self::Zerodha(_) => BrokerKind::Zerodha,
            Self::Betfair(_) => BrokerKind::Betfair,
            Self::BinanceFutures(_) => BrokerKind::BinanceFutures,
        }
    }
}

impl BrokerConfig {
    /// The venue `[broker]` describes: its `kind` with that kind's section (`[broker.paper]` is
    /// optional; every other kind needs its own).
    pub fn venue_broker(&self) -> Result<VenueBroker, super::BrokerBuildError> {
        fn section<T: Clone>(
            s: &Option<T>,
            kind: &'static str,
        ) -> Result<T, super::BrokerBuildError> {
            s.clone()
                .ok_or(super::BrokerBuildError::MissingSection { kind })
        }
        Ok(match self.kind {
            BrokerKind::Paper => VenueBroker::Paper(self.paper.clone().unwrap_or_default()),
            BrokerKind::Binance => VenueBroker::Binance(section(&self.binance, "binance")?),
            BrokerKind::Alpaca => VenueBroker::Alpaca(section(&self.alpaca, "alpaca")?),
            BrokerKind::Http => VenueBroker::Http(section(&self.http, "http")?),
            BrokerKind::Zerodha => VenueBroker::Zerodha(section(&self.zerodha, "zerodha")?),
            BrokerKind::Betfair => VenueBroker::Betfair(section(&self.betfair, "betfair")?),
            BrokerKind::BinanceFutures => {
                VenueBroker::BinanceFutures(section(&self.binance_futures, "binance_futures")?)
            }
        })
    }
}

/// `[broker]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `paper | binance | binance_futures | alpaca | zerodha | betfair | http`.
    #[serde(default)]
    pub kind: BrokerKind,
    /// `[broker.binance]`, required when `kind = "binance"`.
    pub binance: Option<BinanceConfig>,
    /// `[broker.alpaca]`, required when `kind = "alpaca"`.
    pub alpaca: Option<AlpacaConfig>,
    /// `[broker.http]`, required when `kind = "http"`.
    pub http: Option<HttpBrokerConfig>,
    /// `[broker.zerodha]`, required when `kind = "zerodha"`.
    pub zerodha: Option<ZerodhaConfig>,
    /// `[broker.paper]`: knobs of the embedded paper broker (optional).
    pub paper: Option<PaperConfig>,
    /// `[broker.betfair]`, required when `kind = "betfair"`.
    pub betfair: Option<BetfairConfig>,
    /// `[broker.binance_futures]`, required when `kind = "binance_futures"`.
    pub binance_futures: Option<BinanceFuturesConfig>,
}

/// `[broker.paper]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperConfig {
    /// Test/demo knob: wait this long before answering each order, to watch `pending` outcomes
    /// and restarts in the middle of an execution. 0 (the default) in real use.
    #[serde(default)]
    pub fill_delay_ms: u64,
    /// The paper account's equity, what `percent_of_equity` sizes from (default `"100000"`).
    #[serde(default = "default_paper_equity")]
    pub equity: Decimal,
    /// Round sized quantities down to this step (default: no rounding).
    #[serde(default)]
    pub lot_step: Option<Decimal>,
    /// The fee charged on each fill, as a fraction of its notional (`"0.001"`: 0.1 %, what
    /// many exchanges charge a taker); counted in the daily PnL. Default 0.
    #[serde(default)]
    pub fee_rate: Decimal,
}

impl Default for PaperConfig {
    fn default() -> Self {
        Self {
            fill_delay_ms: 0,
            equity: default_paper_equity(),
            lot_step: None,
            fee_rate: Decimal::ZERO,
        }
    }
}

/// The paper account's equity when `[broker.paper] equity` is not set.
pub const DEFAULT_PAPER_EQUITY: Decimal = Decimal::from_parts(100_000, 0, 0, false, 0);

fn default_paper_equity() -> Decimal {
    DEFAULT_PAPER_EQUITY
}

/// The Binance Spot testnet; trading live needs `base_url = "https://api.binance.com"` on purpose.
pub const BINANCE_TESTNET_URL: &str = "https://testnet.binance.vision";
/// The Binance USDⓈ-M futures testnet; trading live needs `base_url = "https://fapi.binance.com"`.
pub const BINANCE_FUTURES_TESTNET_URL: &str = "https://testnet.binancefuture.com";
/// Alpaca's paper-trading API; trading live needs `base_url = "https://api.alpaca.markets"`.
pub const ALPACA_PAPER_URL: &str = "https://paper-api.alpaca.markets";

/// Kite Connect's only API host (Kite has no sandbox: orders there are real).
pub const KITE_URL: &str = "https://api.kite.trade";

fn kite_default_url() -> String {
    KITE_URL.to_owned()
}

fn binance_default_url() -> String {
    BINANCE_TESTNET_URL.to_owned()
}

fn binance_futures_default_url() -> String {
    BINANCE_FUTURES_TESTNET_URL.to_owned()
}

fn alpaca_default_url() -> String {
    ALPACA_PAPER_URL.to_owned()
}

fn default_recv_window_ms() -> u32 {
    5000
}

/// Default per-request timeout for venue calls, in milliseconds.
pub const DEFAULT_VENUE_TIMEOUT_MS: u64 = 5000;

fn default_timeout_ms() -> u64 {
    DEFAULT_VENUE_TIMEOUT_MS
}

/// `[broker.binance]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinanceConfig {
    /// REST base URL; the testnet by default.
    #[serde(default = "binance_default_url")]
    pub base_url: String,
    /// `X-MBX-APIKEY`.
    pub api_key: SecretRef,
    /// HMAC-SHA256 secret key (either this or `private_key`).
    pub api_secret: Option<SecretRef>,
    /// Ed25519 private key (PKCS#8 PEM), the kind Binance recommends.
    pub private_key: Option<SecretRef>,
    /// `recvWindow` in milliseconds (Binance allows at most 60000).
    #[serde(default = "default_recv_window_ms")]
    pub recv_window_ms: u32,
    /// Per-request timeout in milliseconds; a timed-out order is looked up before any resend.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[broker.binance_futures]`: Binance Spot's keys, plus the leverage to set per symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinanceFuturesConfig {
    /// REST base URL; the futures testnet by default.
    #[serde(default = "binance_futures_default_url")]
    pub base_url: String,
    /// `X-MBX-APIKEY`.
    pub api_key: SecretRef,
    /// HMAC-SHA256 secret key (either this or `private_key`).
    pub api_secret: Option<SecretRef>,
    /// Ed25519 private key (PKCS#8 PEM).
    pub private_key: Option<SecretRef>,
    /// `recvWindow` in milliseconds (Binance allows at most 60000).
    #[serde(default = "default_recv_window_ms")]
    pub recv_window_ms: u32,
    /// Per-request timeout in milliseconds; a timed-out order is looked up before any resend.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Initial leverage per symbol (`{ BTCUSDT = 3 }`, 1 to 125), set with
    /// `POST /fapi/v1/leverage` before the first order in that symbol; a symbol not listed
    /// trades at whatever leverage the account already has.
    #[serde(default)]
    pub leverage: std::collections::BTreeMap<String, u32>,
}

/// `[broker.alpaca]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlpacaConfig {
    /// REST base URL; paper trading by default.
    #[serde(default = "alpaca_default_url")]
    pub base_url: String,
    /// `APCA-API-KEY-ID`.
    pub key_id: SecretRef,
    /// `APCA-API-SECRET-KEY`.
    pub secret_key: SecretRef,
    /// Per-request timeout in milliseconds; a timed-out order is looked up before any resend.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[broker.http]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpBrokerConfig {
    /// The OMS endpoint that receives each order as JSON.
    pub url: String,
    /// `whsec_` secrets; each signs the forwarded order (Standard Webhooks `v1`).
    #[serde(default)]
    pub hmac_secrets: Vec<SecretRef>,
    /// Optional: where the OMS reports positions (`GET {positions_url}?account=A`, signed like
    /// orders, answering `{"positions":[{"symbol","position"}]}`). Without it positions are the
    /// journal's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions_url: Option<String>,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// `[broker.zerodha]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZerodhaConfig {
    /// REST base URL; `https://api.kite.trade` by default.
    #[serde(default = "kite_default_url")]
    pub base_url: String,
    /// The Kite Connect app's `api_key`.
    pub api_key: SecretRef,
    /// The day's `access_token` (it expires every morning): a `file:` reference is reread on
    /// `SIGHUP`, and once when Kite answers `TokenException`.
    pub access_token: SecretRef,
    /// Per-request timeout in milliseconds; a timed-out order is looked up by tag before any
    /// resend.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// Betfair's Exchange betting API (REST); there is no sandbox, so this is the live exchange.
pub const BETFAIR_API_URL: &str = "https://api.betfair.com/exchange/betting/rest/v1.0";
/// Betfair's login host for certificate (non-interactive) logins.
pub const BETFAIR_CERT_IDENTITY_URL: &str = "https://identitysso-cert.betfair.com";
/// Betfair's login host for interactive (username and password) logins.
pub const BETFAIR_IDENTITY_URL: &str = "https://identitysso.betfair.com";

fn betfair_default_url() -> String {
    BETFAIR_API_URL.to_owned()
}

/// `[broker.betfair]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BetfairConfig {
    /// Betting API base URL (`{base_url}/placeOrders/`, ...).
    #[serde(default = "betfair_default_url")]
    pub base_url: String,
    /// Login host (`/api/certlogin`, `/api/login`, `/api/keepAlive`); unset: Betfair's cert host
    /// when `cert_file` is set, else its interactive host.
    pub identity_url: Option<String>,
    /// The application key (`X-Application`).
    pub app_key: SecretRef,
    /// The Betfair account's username.
    pub username: SecretRef,
    /// The Betfair account's password.
    pub password: SecretRef,
    /// Client certificate (PEM) registered with Betfair, for the non-interactive `certlogin`.
    pub cert_file: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM); required with `cert_file`.
    pub key_file: Option<std::path::PathBuf>,
    /// Per-request timeout in milliseconds; a timed-out order is looked up before any resend.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl BetfairConfig {
    /// The login host in effect: `identity_url`, else the default for the login kind.
    pub fn identity_url(&self) -> &str {
        match (&self.identity_url, &self.cert_file) {
            (Some(url), _) => url,
            (None, Some(_)) => BETFAIR_CERT_IDENTITY_URL,
            (None, None) => BETFAIR_IDENTITY_URL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_futures_is_configured_with_spots_keys_and_a_leverage_table() {
        let config: BrokerConfig = toml::from_str(
            r#"
            kind = "binance_futures"
            [binance_futures]
            api_key = "env:BINANCE_FUTURES_API_KEY"
            api_secret = "file:/etc/alertgate/futures-secret"
            leverage = { BTCUSDT = 3, ETHUSDT = 5 }
            "#,
        )
        .unwrap();
        assert_eq!(config.kind, BrokerKind::BinanceFutures);
        assert_eq!(config.kind.as_str(), "binance_futures");
        let futures = config.binance_futures.unwrap();
        assert_eq!(futures.base_url, BINANCE_FUTURES_TESTNET_URL);
        assert_eq!(futures.recv_window_ms, 5000);
        assert_eq!(futures.leverage.get("ETHUSDT"), Some(&5));
        let typo = toml::from_str::<BrokerConfig>(
            "kind = \"binance_futures\"\n[binance_futures]\napi_key = \"env:K\"\nleverge = { BTCUSDT = 3 }\n",
        );
        assert!(typo.unwrap_err().to_string().contains("leverge"));
    }
}
