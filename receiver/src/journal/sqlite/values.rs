//! How values are stored: decimals as exact TEXT, enums by their `as_str` names, times as unix
//! milliseconds. A stored value nothing writes means a corrupt row.

use rust_decimal::Decimal;

use crate::journal::JournalError;
use crate::order::{OrderStatus, OrderType, Product, Side, TimeInForce};

/// A decimal stored as TEXT.
pub(crate) fn dec(s: &str) -> Result<Decimal, JournalError> {
    Decimal::from_str_exact(s).map_err(|_| JournalError::Corrupt(format!("bad decimal {s:?}")))
}

/// An optional decimal stored as TEXT or NULL.
pub(crate) fn opt_dec(s: Option<String>) -> Result<Option<Decimal>, JournalError> {
    s.as_deref().map(dec).transpose()
}

/// The variant of `all` whose stored name is `s`.
fn parse_stored<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    s: &str,
    what: &str,
) -> Result<T, JournalError> {
    all.iter()
        .copied()
        .find(|t| name(*t) == s)
        .ok_or_else(|| JournalError::Corrupt(format!("bad {what} {s:?}")))
}

/// `buy` / `sell`.
pub(crate) fn parse_side(s: &str) -> Result<Side, JournalError> {
    parse_stored(&Side::ALL, Side::as_str, s, "side")
}

/// `market`, `limit`, ...
pub(crate) fn parse_order_type(s: &str) -> Result<OrderType, JournalError> {
    parse_stored(&OrderType::ALL, OrderType::as_str, s, "order type")
}

/// `gtc`, `day`, ...
pub(crate) fn parse_tif(s: &str) -> Result<TimeInForce, JournalError> {
    parse_stored(&TimeInForce::ALL, TimeInForce::as_str, s, "time in force")
}

/// `cnc`, `mis`, `nrml`, or NULL.
pub(crate) fn parse_product(s: Option<String>) -> Result<Option<Product>, JournalError> {
    s.as_deref()
        .map(|s| parse_stored(&Product::ALL, Product::as_str, s, "product"))
        .transpose()
}

/// A venue status of the paper book.
pub(crate) fn parse_status(s: &str) -> Result<OrderStatus, JournalError> {
    parse_stored(&OrderStatus::ALL, OrderStatus::as_str, s, "venue status")
}
