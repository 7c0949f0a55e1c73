//! The real venues against their loopback emulators (`alertgate_testkit::emulators`): each test drives a
//! broker exactly as the executor does (same client order id on every retry) and asserts what the
//! venue saw.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alpaca;
mod betfair;
mod binance;
mod binance_futures;
mod binance_oco;
mod build;
mod e2e;
mod emulator_checks;
// The receiver's own test harness (`spawn_app`), shared with `tests/api`.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod oms;
mod positions;
mod routing;
mod zerodha;

use alertgate_receiver::order::{OrderRequest, OrderType, Side, TimeInForce};
pub use alertgate_testkit::secret_file;

/// A buy order of `quantity` `symbol` at the market, with a reference price.
pub fn market(
    client_order_id: &str,
    symbol: &str,
    quantity: &str,
    reference: Option<&str>,
) -> OrderRequest {
    OrderRequest {
        client_order_id: client_order_id.into(),
        account: "main".into(),
        symbol: symbol.into(),
        side: Side::Buy,
        quantity: quantity.parse().unwrap(),
        order_type: OrderType::Market,
        limit_price: None,
        stop_price: None,
        tif: TimeInForce::Gtc,
        reference_price: reference.map(|r| r.parse().unwrap()),
        product: None,
        exits: Default::default(),
        reduce_only: false,
    }
}

/// A limit order.
pub fn limit(
    client_order_id: &str,
    symbol: &str,
    side: Side,
    quantity: &str,
    price: &str,
) -> OrderRequest {
    OrderRequest {
        side,
        order_type: OrderType::Limit,
        limit_price: Some(price.parse().unwrap()),
        ..market(client_order_id, symbol, quantity, None)
    }
}

/// A fresh client order id shaped like the executor's (message id + leg).
pub fn client_order_id() -> String {
    format!("{}-0", alertgate_shared::MessageId::generate())
}
