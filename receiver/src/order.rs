//! The normalized order: what every alert format becomes, what every broker receives, and what a
//! venue answers about it ([`Placement`]). Quantities and prices are decimals with their validity
//! carried by the type. A leaf of the crate: it imports no other receiver module.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Buy.
    Buy,
    /// Sell.
    Sell,
}

impl Side {
    /// Both sides, for parsing stored names.
    pub const ALL: [Side; 2] = [Self::Buy, Self::Sell];

    /// `buy` / `sell`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }

    /// The other side.
    pub fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }
}

/// How the order is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// At the market.
    Market,
    /// At `limit_price` or better.
    Limit,
    /// A market order triggered at `stop_price`.
    Stop,
    /// A limit order at `limit_price` triggered at `stop_price`.
    StopLimit,
}

impl OrderType {
    /// Every type, for parsing stored names.
    pub const ALL: [OrderType; 4] = [Self::Market, Self::Limit, Self::Stop, Self::StopLimit];

    /// `market`, `limit`, `stop`, `stop_limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Limit => "limit",
            Self::Stop => "stop",
            Self::StopLimit => "stop_limit",
        }
    }
}

/// How long the order stays working.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    /// Good till cancelled.
    #[default]
    Gtc,
    /// Until the end of the trading day.
    Day,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
}

impl TimeInForce {
    /// Every time in force, for parsing stored names.
    pub const ALL: [TimeInForce; 4] = [Self::Gtc, Self::Day, Self::Ioc, Self::Fok];

    /// `gtc`, `day`, `ioc`, `fok`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gtc => "gtc",
            Self::Day => "day",
            Self::Ioc => "ioc",
            Self::Fok => "fok",
        }
    }
}

/// What an Indian broker calls the product: how the position is margined and how long it may be
/// held. The `order_legs` format's `productType` (`C`/`I`/`M`); Kite's `product`. Venues without
/// the notion ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Cash and carry: equity delivery (`C`, Kite `CNC`).
    Cnc,
    /// Margin intraday, squared off the same day (`I`, Kite `MIS`).
    Mis,
    /// Normal: futures and options carried overnight (`M`, Kite `NRML`).
    Nrml,
}

impl Product {
    /// Every product, for parsing stored names.
    pub const ALL: [Product; 3] = [Self::Cnc, Self::Mis, Self::Nrml];

    /// `cnc`, `mis`, `nrml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cnc => "cnc",
            Self::Mis => "mis",
            Self::Nrml => "nrml",
        }
    }
}

/// A strictly positive decimal: an order quantity or a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Decimal", into = "Decimal")]
pub struct Positive(Decimal);

/// An order quantity (base units, shares or contracts).
pub type Quantity = Positive;
/// A price in the quote currency.
pub type Price = Positive;

/// A value that is zero, negative or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a positive decimal number")]
pub struct NotPositive;

impl Positive {
    /// Accepts `d > 0`.
    pub fn new(d: Decimal) -> Result<Self, NotPositive> {
        (d > Decimal::ZERO)
            .then_some(Self(d.normalize()))
            .ok_or(NotPositive)
    }

    /// The value.
    pub fn get(self) -> Decimal {
        self.0
    }
}

impl TryFrom<Decimal> for Positive {
    type Error = NotPositive;
    fn try_from(d: Decimal) -> Result<Self, NotPositive> {
        Self::new(d)
    }
}

impl From<Positive> for Decimal {
    fn from(p: Positive) -> Decimal {
        p.0
    }
}

impl FromStr for Positive {
    type Err = NotPositive;
    fn from_str(s: &str) -> Result<Self, NotPositive> {
        Decimal::from_str_exact(s.trim())
            .map_err(|_| NotPositive)
            .and_then(Self::new)
    }
}

impl fmt::Display for Positive {
    /// Plain notation, never exponent form (venues refuse `4.2E+4`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

/// One order, ready for a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Deterministic id derived from the message id (and leg index); the broker's idempotency key.
    pub client_order_id: String,
    /// The relay account the alert came from.
    pub account: String,
    /// The venue's symbol (after the `[symbols]` table and built-in rules).
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// How much.
    pub quantity: Quantity,
    /// Market, limit, stop, stop-limit.
    pub order_type: OrderType,
    /// Required for limit and stop-limit.
    pub limit_price: Option<Price>,
    /// Required for stop and stop-limit.
    pub stop_price: Option<Price>,
    /// Time in force.
    pub tif: TimeInForce,
    /// The alert's reference price (`{{close}}`): notional checks and paper fills.
    pub reference_price: Option<Price>,
    /// The alert's product (`productType`), for venues that need one (Zerodha); `None` lets the
    /// venue pick its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<Product>,
    /// Protective exits to attach to this order, for venues that attach them to the entry
    /// (Alpaca's bracket orders); empty otherwise.
    #[serde(default, skip_serializing_if = "Exits::is_empty")]
    pub exits: Exits,
    /// `true` when the order may only reduce the position, never open or grow one: a close
    /// (`close`, `close_long`, `close_short`), the close part of a `target_position`, a
    /// protective exit. Venues that can enforce it (Binance futures `reduceOnly`) send it;
    /// others need not, the plan already sized it to the position.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reduce_only: bool,
}

/// Protective exits of an opening order (`take_profit`, `stop_loss`: absolute prices), for the
/// quantity it fills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exits {
    /// Where the position is closed at a profit (a limit order on the other side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Decimal>,
    /// Where it is closed at a loss (a stop order on the other side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<Decimal>,
}

impl Exits {
    /// `true` when neither is set.
    pub fn is_empty(&self) -> bool {
        self.take_profit.is_none() && self.stop_loss.is_none()
    }
}

/// How a venue protects an entry with `take_profit`/`stop_loss`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ExitSupport {
    /// It cannot: an alert with either is `invalid` naming the field.
    #[default]
    Unsupported,
    /// Attached to the entry in one request (Alpaca's bracket and OTO orders).
    Attached,
    /// Orders of their own, placed once the entry filled, one cancelling the other (paper).
    Orders,
    /// Orders of their own, placed together once the entry filled as one venue order list
    /// that cancels one when the other fills (Binance Spot's OCO): placed, moved and cancelled
    /// as a pair ([`crate::broker::Broker::place_exits`]).
    Oco,
}

/// Where an order stands at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted and working (a resting limit order, say).
    Placed,
    /// Partly filled and still working.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled, expired or rejected by the venue after acceptance.
    Cancelled,
}

impl OrderStatus {
    /// Every status, for parsing stored names.
    pub const ALL: [OrderStatus; 4] = [
        Self::Placed,
        Self::PartiallyFilled,
        Self::Filled,
        Self::Cancelled,
    ];

    /// `placed`, `partially_filled`, `filled`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::PartiallyFilled => "partially_filled",
            Self::Filled => "filled",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What the venue says about an order it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The venue's own id for the order.
    pub venue_order_id: Option<String>,
    /// Status at the time of the answer.
    pub status: OrderStatus,
    /// Quantity filled so far (zero for a resting order).
    pub filled_quantity: Decimal,
    /// Average fill price, when anything filled.
    pub average_price: Option<Decimal>,
    /// What the venue charged for the fills so far, in the symbol's quote currency (the one PnL
    /// is counted in); `None` when its answer does not say.
    pub fee: Option<Decimal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_decimals_refuse_zero_negative_and_exponents_print_plainly() {
        assert!("0".parse::<Positive>().is_err());
        assert!("-1".parse::<Positive>().is_err());
        assert!("abc".parse::<Positive>().is_err());
        let p: Positive = "42000.500".parse().unwrap();
        assert_eq!(p.to_string(), "42000.5");
        let big = Positive::new(Decimal::new(42, 0) * Decimal::new(1000, 0)).unwrap();
        assert_eq!(big.to_string(), "42000");
    }
}
