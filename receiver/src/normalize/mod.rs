//! Alert normalization: every alert format the receiver understands (receiver/NORMALIZE.md) becomes one
//! [`NormalizedAlert`] with one [`Leg`] per order, or an [`Invalid`] naming the field at fault.
//!
//! # Layout
//! - `mod.rs`: the public types and [`normalize`], which picks the format.
//! - [`fields`]: alias families, text values and exact decimals from strings or JSON numbers.
//! - `leg`: one order out of one JSON object (the alert itself, or one leg).
//! - `multi_leg`: native `legs` and the `alertType`/`order_legs` format, with `sort_order`.
//! - [`symbol`]: TradingView symbols to venue symbols (`[symbols]` table, `_DL`, perpetuals).
//!
//! Normalization is pure: no clock, no I/O, no position lookups. Unknown fields are ignored (the
//! caller journals the whole alert); `secret` and `comment` are known but unused here; `sent_at`
//! (`{{timenow}}`) is read for the signal-age check (`[risk] max_signal_age_seconds`).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::order::{
    ExitSupport, Exits, OrderType, Positive, Price, Product, Quantity, Side, TimeInForce,
};

pub mod fields;
mod leg;
mod multi_leg;
pub mod symbol;

pub use fields::{parse_decimal, DecimalError};
pub use symbol::Perpetuals;

/// The most legs one alert may carry; more is invalid (shared: the relay's ordering keys are
/// bounded by it).
pub use alertgate_shared::ordering::MAX_LEGS;

/// The longest `account` or `strategy` accepted, in characters (the idempotency key's limit is
/// [`alertgate_shared::idempotency::MAX_KEY_CHARS`], shared with the relay).
pub const MAX_ID_LEN: usize = 128;

/// What normalization needs to know about the receiver's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalizeContext<'a> {
    /// The `[symbols]` table: TradingView symbol (`BINANCE:BTCUSDT`) → venue symbol.
    pub symbols: &'a BTreeMap<String, String>,
    /// What the venue does with perpetual tickers (`.P`, `PERP`): refuses them (spot), takes
    /// them as sent, or trades the contract under its own symbol (`BTCUSDT.P` → `BTCUSDT`).
    pub perpetuals: Perpetuals,
    /// `true` when the venue needs the exchange with the ticker (Zerodha: `NSE:RELIANCE` →
    /// exchange NSE, tradingsymbol RELIANCE): venue symbols are then `EXCHANGE:TICKER`
    /// ([`symbol::with_exchange`]).
    pub exchange_in_symbol: bool,
    /// `false` when the venue cannot hold a short position (spot crypto): a negative
    /// `target_position` is then invalid.
    pub allow_short: bool,
    /// How the venue attaches protective exits (`take_profit`, `stop_loss`).
    pub exits: ExitSupport,
}

/// What one leg asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Buy `quantity`.
    Buy,
    /// Sell `quantity`.
    Sell,
    /// Flatten the position in the symbol, whichever way it points (or reduce it by `quantity`).
    Close,
    /// Sell the long position; nothing when not long.
    CloseLong,
    /// Buy back the short position; nothing when not short.
    CloseShort,
    /// Move the position to [`Leg::target_position`], whatever it is now (`target_position`,
    /// `position_size`, `"sentiment":"flat"`).
    Target,
    /// Cancel every open order alertgate placed for (account, symbol): `action: "cancel"`, or
    /// the `order_legs` format's `alertType: "cancel_order"`.
    Cancel,
    /// Move what rests for (account, symbol): a new `limit_price`/`stop_price` for resting
    /// entries, new `take_profit`/`stop_loss` for protective exits.
    Modify,
}

impl Action {
    /// `buy`, `sell`, `close`, `close_long`, `close_short`, `target`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
            Self::Close => "close",
            Self::CloseLong => "close_long",
            Self::CloseShort => "close_short",
            Self::Target => "target",
            Self::Cancel => "cancel",
            Self::Modify => "modify",
        }
    }

    /// The side of an opening action; `None` for the close and target actions, whose side
    /// depends on the position at execution time.
    pub fn side(self) -> Option<Side> {
        match self {
            Self::Buy => Some(Side::Buy),
            Self::Sell => Some(Side::Sell),
            Self::Close
            | Self::CloseLong
            | Self::CloseShort
            | Self::Target
            | Self::Cancel
            | Self::Modify => None,
        }
    }

    /// `true` for `close`, `close_long` and `close_short`.
    pub fn is_close(self) -> bool {
        matches!(self, Self::Close | Self::CloseLong | Self::CloseShort)
    }
}

/// How a buy or sell says how much (DESIGN section 12: exactly one of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sizing {
    /// `quantity` in base units (or none: closes and targets).
    #[default]
    Quantity,
    /// `notional` [`amount`]: an amount of the quote currency; the quantity is this divided by
    /// the reference price (the limit price of a limit order), rounded down to the lot step.
    Notional(Positive),
    /// `percent_of_equity` [`equity_percent`]: that percent of the account's equity as the
    /// venue reports it, converted like a notional.
    PercentOfEquity(Positive),
}

/// One order of an alert, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    /// The symbol as the alert gave it (`BINANCE_DL:BTCUSDT`, or `EXCHANGE:SYMBOL` built from
    /// `exchange` + `symbol`): what risk rules and logs can show the user.
    pub tv_symbol: String,
    /// The venue's symbol, after the `[symbols]` table and the built-in rules.
    pub symbol: String,
    /// Buy, sell or one of the closes.
    pub action: Action,
    /// How much. Present for buy/sell sized by quantity; `None` on a close means the whole
    /// position; `None` for a target and for notional / percent sizing (computed at execution).
    pub quantity: Option<Quantity>,
    /// How a buy/sell is sized: `quantity`, `notional` or `percent_of_equity`.
    pub sizing: Sizing,
    /// The signed position wanted after this leg; present exactly for [`Action::Target`].
    pub target_position: Option<Decimal>,
    /// Market (default), limit, stop, stop-limit.
    pub order_type: OrderType,
    /// Present exactly for limit and stop-limit orders.
    pub limit_price: Option<Price>,
    /// Present exactly for stop and stop-limit orders.
    pub stop_price: Option<Price>,
    /// Time in force (default GTC).
    pub tif: TimeInForce,
    /// The alert's reference price (`{{close}}`): notional checks and paper fills.
    pub reference_price: Option<Price>,
    /// `productType` (`C`/`I`/`M`, or `CNC`/`MIS`/`NRML`): what Zerodha calls the product; `None`
    /// when the alert gives none (the venue's default applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// Protective exits of an opening buy/sell (`take_profit`, `stop_loss`), checked to be on
    /// the right side of the entry's price.
    #[serde(default, skip_serializing_if = "Exits::is_empty")]
    pub exits: Exits,
}

/// An alert in the one shape the rest of the receiver works with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NormalizedAlert {
    /// The account the alert names (`account`/`fund_id`). Informational: the envelope's account,
    /// set by the relay, is the one that counts.
    pub account: Option<String>,
    /// The alert's idempotency key ([`alertgate_shared::idempotency`]: `id`, `idempotency_key`,
    /// `client_ref`, `client_order_id`).
    pub idempotency_key: Option<String>,
    /// The strategy name (`strategy`/`strategy_id`): strategy switches, logs, the orders API.
    pub strategy: Option<String>,
    /// When TradingView fired the alert (`sent_at`/`timenow`, RFC 3339 as `{{timenow}}` writes
    /// it), unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_ms: Option<i64>,
    /// The orders, in execution order; never empty.
    pub legs: Vec<Leg>,
}

/// Why an alert cannot become orders: the field at fault (`quantity`, `legs[1].action`,
/// `order_legs[0].transactionType`, or two aliases that disagree, `action, side`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field, with its path inside the alert.
    pub field: String,
    /// What is wrong with it, for the user who wrote the alert template.
    pub message: String,
}

impl Invalid {
    /// An invalid `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Field names and their aliases. The first name of each family is the one a "missing" error uses.
pub(crate) mod names {
    pub const ACCOUNT: &[&str] = &["account", "fund_id"];
    pub const STRATEGY: &[&str] = &["strategy", "strategy_id"];
    pub const SENT_AT: &[&str] = &["sent_at", "timenow"];
    /// Shared: the relay orders deliveries by the tickers in these fields.
    pub const SYMBOL: &[&str] = alertgate_shared::ordering::SYMBOL_FIELDS;
    pub const EXCHANGE: &[&str] = &["exchange"];
    pub const ACTION: &[&str] = &["action", "side", "signal"];
    /// In the `order_legs` format the action is called `transactionType`.
    pub const ACTION_ORDER_LEGS: &[&str] = &["transactionType", "action", "side", "signal"];
    pub const QUANTITY: &[&str] = &["quantity", "size", "qty", "stake", "contracts"];
    pub const NOTIONAL: &[&str] = &["notional", "amount"];
    pub const PERCENT_OF_EQUITY: &[&str] = &["percent_of_equity", "equity_percent"];
    pub const TARGET_POSITION: &[&str] = &["target_position", "position_size"];
    pub const SENTIMENT: &[&str] = &["sentiment"];
    pub const ORDER_TYPE: &[&str] = &["order_type", "type", "orderType"];
    pub const ORDER_TYPE_ORDER_LEGS: &[&str] = &["orderType", "order_type", "type"];
    pub const LIMIT_PRICE: &[&str] = &["limit_price"];
    pub const STOP_PRICE: &[&str] = &["stop_price", "trigger_price", "triggerPrice"];
    pub const STOP_PRICE_ORDER_LEGS: &[&str] = &["triggerPrice", "trigger_price", "stop_price"];
    pub const TIF: &[&str] = &["tif", "time_in_force", "timeInForce", "validity"];
    pub const PRICE: &[&str] = &["price"];
    pub const TAKE_PROFIT: &[&str] = &["take_profit"];
    pub const STOP_LOSS: &[&str] = &["stop_loss"];
    pub const SORT_ORDER: &[&str] = &["sort_order"];
    /// Not `product`: that name is common in alerts for other things, and unknown fields are
    /// never an error.
    pub const PRODUCT: &[&str] = &["productType", "product_type"];
    pub const LEGS: &str = alertgate_shared::ordering::LEGS_FIELD;
    pub const ORDER_LEGS: &str = alertgate_shared::ordering::ORDER_LEGS_FIELD;
    pub const ALERT_TYPE: &str = "alertType";
}

/// Turns one alert (the JSON object TradingView sent, `secret` included or not) into orders.
pub fn normalize(
    alert: &Map<String, Value>,
    ctx: &NormalizeContext<'_>,
) -> Result<NormalizedAlert, Invalid> {
    let top = fields::Obj {
        map: alert,
        prefix: "",
    };
    let account = top.value(names::ACCOUNT, |v| fields::short_text(v, MAX_ID_LEN))?;
    // The relay applies the same rule before it answers 200 (shared/src/idempotency.rs).
    let idempotency_key = alertgate_shared::idempotency::idempotency_key(alert)
        .map_err(|e| Invalid::new(e.field, e.message))?;
    let strategy = top.value(names::STRATEGY, |v| fields::short_text(v, MAX_ID_LEN))?;
    let sent_at_ms = top.value(names::SENT_AT, fields::instant_ms)?;
    let legs = match multi_leg::find(&top)? {
        Some(list) => multi_leg::parse(&top, list, ctx)?,
        None => vec![leg::parse(
            &top,
            leg::Dialect::Native,
            &leg::Defaults::default(),
            ctx,
        )?],
    };
    Ok(NormalizedAlert {
        account,
        idempotency_key,
        strategy,
        sent_at_ms,
        legs,
    })
}
