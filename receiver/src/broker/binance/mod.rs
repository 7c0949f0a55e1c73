//! `binance`: Binance Spot over its REST API (the Spot testnet by default).
//!
//! One order is `POST /api/v3/order` with every parameter in the signed query string
//! ([`sign`]), `X-MBX-APIKEY`, `timestamp` from the injected clock and `recvWindow`. Parameters are
//! rounded to the symbol's exchange filters first ([`filters`], cached per symbol for an hour).
//!
//! Idempotency. Binance refuses a reused `newClientOrderId` only while the first order is still
//! open; once it has filled, the same id places a second order. So before every send the order is
//! looked up with `GET /api/v3/order?origClientOrderId=` (one extra request, weight 4): an order
//! that is already there is returned, never sent again. That single rule covers executor retries,
//! duplicate deliveries and restarts after a crash, where no memory of earlier attempts survives.
//! After a send whose outcome is unknown (5xx, `-1006`/`-1007`, timeout), the order is looked up
//! again; if Binance does not have it, the call fails as transient and the executor's retry looks
//! once more before it sends: an order is never resent blind. `modify` is a cancel-replace
//! under a derived client id, looked up the same way ([`replace`]); cancels go by Binance's
//! `orderId` when it is known.

mod account;
pub mod filters;
pub mod oco;
pub mod replace;
pub(crate) mod rest;
pub mod sign;

use std::fmt;
use std::sync::Arc;

use alertgate_shared::Clock;
use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;

use self::filters::SymbolRules;
use self::rest::{Classified, Dialect, KeyNames, RulesCache, Section, SignedRest};
use super::config::BinanceConfig;
use super::http::venue_client_id;
use super::Positions;
use super::{Broker, BrokerBuildError, BrokerError, BrokerFuture, LotRule, OrderStatus, Placement};
use crate::order::OrderRequest;

/// Binance's limit on `newClientOrderId` (`^[a-zA-Z0-9-_]{1,36}$`).
pub const CLIENT_ORDER_ID_MAX: usize = 36;

/// The fields of an order (new-order RESULT or query answer) that matter here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BinanceOrder {
    order_id: i64,
    status: String,
    #[serde(default)]
    executed_qty: Option<String>,
    #[serde(default)]
    cummulative_quote_qty: Option<String>,
    /// `clientOrderId` (OCO legs are told apart by it).
    #[serde(default)]
    client_order_id: Option<String>,
    /// `orderListId`: the OCO it is a leg of, `-1` for a lone order.
    #[serde(default)]
    order_list_id: Option<i64>,
    /// The trades of a new order's `FULL` answer, each with its commission.
    #[serde(default)]
    fills: Vec<BinanceFill>,
}

/// One trade of a `FULL` new-order answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BinanceFill {
    price: String,
    commission: String,
    commission_asset: String,
}

/// The commission of `fills` in `quote_asset` (what PnL is counted in): paid in the quote asset
/// as is, in the base asset at each trade's price. `None` when a trade paid it in another asset
/// (BNB), whose price is unknown here, or when there are no trades.
fn fee_in_quote(fills: &[BinanceFill], base_asset: &str, quote_asset: &str) -> Option<Decimal> {
    if fills.is_empty() {
        return None;
    }
    let mut fee = Decimal::ZERO;
    for fill in fills {
        let commission = fill.commission.parse::<Decimal>().ok()?;
        fee += if fill.commission_asset == quote_asset {
            commission
        } else if fill.commission_asset == base_asset {
            commission * fill.price.parse::<Decimal>().ok()?
        } else {
            return None;
        };
    }
    Some(fee.normalize())
}

impl BinanceOrder {
    fn placement(self) -> Placement {
        let parse = |s: Option<String>| {
            s.and_then(|s| s.parse::<Decimal>().ok())
                .unwrap_or(Decimal::ZERO)
        };
        let filled = parse(self.executed_qty);
        let quote = parse(self.cummulative_quote_qty);
        let status = match self.status.as_str() {
            "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
            "FILLED" => OrderStatus::Filled,
            "CANCELED" | "EXPIRED" | "EXPIRED_IN_MATCH" | "REJECTED" | "PENDING_CANCEL" => {
                OrderStatus::Cancelled
            }
            // NEW, PENDING_NEW.
            _ => OrderStatus::Placed,
        };
        // cummulativeQuoteQty can be negative for very old orders: no average then.
        let average_price =
            (filled > Decimal::ZERO && quote > Decimal::ZERO).then(|| (quote / filled).normalize());
        Placement {
            fee: None,
            venue_order_id: Some(self.order_id.to_string()),
            status,
            filled_quantity: filled.normalize(),
            average_price,
        }
    }
}

/// Binance Spot.
pub struct BinanceBroker {
    /// Signed requests to the Spot API.
    rest: SignedRest,
    /// Exchange filters per symbol.
    rules: RulesCache,
}

impl fmt::Debug for BinanceBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceBroker")
            .field("rest", &self.rest)
            .finish_non_exhaustive()
    }
}

const SPOT_KEYS: KeyNames = KeyNames {
    section: "binance",
    base_url: "binance.base_url",
    api_key: "binance.api_key",
    api_secret: "binance.api_secret",
    private_key: "binance.private_key",
    recv_window_ms: "binance.recv_window_ms",
};

/// Spot's words and its own codes.
static SPOT: Dialect = Dialect {
    venue: "Binance",
    credentials_hint: "check api_key and api_secret/private_key, the key's IP restrictions and \
                       that it may trade; testnet keys only work on testnet.binance.vision",
    codes: spot_codes,
};

/// The Spot codes an order can meet beyond those both APIs share.
fn spot_codes(code: i64, msg: &str, _seen: &str) -> Option<Classified> {
    let rejected = |message: String| Some(Classified::Final(BrokerError::Rejected { message }));
    let lower = msg.to_ascii_lowercase();
    match code {
        -2010 if msg.contains("Duplicate order") => Some(Classified::Duplicate(msg.to_owned())),
        -2010 if lower.contains("insufficient balance") => rejected(format!(
            "insufficient balance at Binance for this order ({msg})"
        )),
        -2010 if lower.contains("market is closed") => {
            rejected(format!("market closed at Binance ({msg})"))
        }
        -1013 => Some(Classified::Final(BrokerError::Invalid {
            message: format!("Binance refused the order's size or price ({msg})"),
        })),
        _ => None,
    }
}

impl BinanceBroker {
    /// Resolves the credentials (exactly one of `api_secret` and `private_key`) and builds the client.
    pub fn from_config(
        config: &BinanceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BrokerBuildError> {
        let section = Section {
            base_url: &config.base_url,
            api_key: &config.api_key,
            api_secret: config.api_secret.as_ref(),
            private_key: config.private_key.as_ref(),
            recv_window_ms: config.recv_window_ms,
            timeout_ms: config.timeout_ms,
        };
        Ok(Self {
            rest: SignedRest::from_section(&SPOT_KEYS, &section, clock, &SPOT)?,
            rules: RulesCache::default(),
        })
    }

    async fn place_inner(&self, order: &OrderRequest) -> Result<Placement, BrokerError> {
        let client_order_id = venue_client_id(&order.client_order_id, self.max_client_id_len());
        // Lookup first: see the module docs for why this is the idempotency guarantee. It comes
        // before the filter checks too, so an order placed before the market closed or the
        // filters changed is still reported as placed, not as failed.
        if let Some(existing) = self.query(&order.symbol, &client_order_id).await? {
            return Ok(existing);
        }
        let rules = self.rules(&order.symbol).await?;
        let params = rules.order_params(order, &client_order_id)?;
        let request = self.rest.request(Method::POST, "/api/v3/order", params);
        self.rest
            .place(
                request,
                &self.rules,
                &order.symbol,
                &client_order_id,
                |answer| self.new_order_of(&answer.body, &rules),
                || self.query(&order.symbol, &client_order_id),
            )
            .await
    }

    /// The symbol's filters, from the cache or `GET /api/v3/exchangeInfo?symbol=`.
    async fn rules(&self, symbol: &str) -> Result<Arc<SymbolRules>, BrokerError> {
        let now = self.rest.clock.now_unix();
        if let Some(rules) = self.rules.fresh(symbol, now) {
            return Ok(rules);
        }
        let request = self
            .rest
            .public("/api/v3/exchangeInfo", &[("symbol", symbol.to_owned())]);
        let info: serde_json::Value = self.rest.read(request, "exchangeInfo").await?;
        let rules = Arc::new(
            SymbolRules::from_exchange_info(&info, symbol).ok_or_else(|| {
                BrokerError::Rejected {
                    message: format!("Binance does not list the symbol {symbol}"),
                }
            })?,
        );
        self.rules.insert(symbol, now, rules.clone());
        Ok(rules)
    }

    /// An order answer read as a placement.
    /// A new order's `FULL` answer, with the commission of its trades as the fee.
    fn new_order_of(&self, body: &[u8], rules: &SymbolRules) -> Result<Placement, BrokerError> {
        let order = self.rest.parse::<BinanceOrder>(body, "an order")?;
        let fee = fee_in_quote(&order.fills, &rules.base_asset, &rules.quote_asset);
        Ok(Placement {
            fee,
            ..order.placement()
        })
    }

    fn order_of(&self, body: &[u8]) -> Result<Placement, BrokerError> {
        self.rest
            .parse::<BinanceOrder>(body, "an order")
            .map(BinanceOrder::placement)
    }

    /// `GET /api/v3/order?symbol=&origClientOrderId=`: `None` when Binance has no such order.
    async fn query(
        &self,
        symbol: &str,
        client_order_id: &str,
    ) -> Result<Option<Placement>, BrokerError> {
        self.query_by(symbol, ("origClientOrderId", client_order_id.to_owned()))
            .await
    }

    /// `GET /api/v3/order?symbol=&{key}=`: `None` when Binance has no such order.
    async fn query_by(
        &self,
        symbol: &str,
        key: (&'static str, String),
    ) -> Result<Option<Placement>, BrokerError> {
        Ok(self
            .order_by(symbol, key)
            .await?
            .map(BinanceOrder::placement))
    }

    /// The order `GET /api/v3/order?symbol=&{key}=` answers, as Binance has it.
    async fn order_by(
        &self,
        symbol: &str,
        key: (&'static str, String),
    ) -> Result<Option<BinanceOrder>, BrokerError> {
        let params = vec![("symbol", symbol.to_owned()), key];
        match self
            .rest
            .lookup("/api/v3/order", params, -2013, "order lookup")
            .await?
        {
            Some(body) => self.rest.parse(&body, "an order").map(Some),
            None => Ok(None),
        }
    }

    /// `DELETE /api/v3/order?symbol=&origClientOrderId=`. `-2011 Unknown order sent.` (already
    /// cancelled or filled) is answered by looking the order up.
    async fn cancel_inner(
        &self,
        symbol: &str,
        client_order_id: &str,
        venue_order_id: Option<&str>,
    ) -> Result<Placement, BrokerError> {
        let venue_id = venue_client_id(client_order_id, self.max_client_id_len());
        // By Binance's order id when known: a modified order rests under its replacement's
        // client id, not alertgate's.
        let key = match venue_order_id {
            Some(id) => ("orderId", id.to_owned()),
            None => ("origClientOrderId", venue_id.clone()),
        };
        let params = vec![("symbol", symbol.to_owned()), key.clone()];
        match self.rest.delete("/api/v3/order", params).await? {
            Some(body) => self.order_of(&body),
            None => match self.query_by(symbol, key).await? {
                Some(placement) => Ok(placement),
                None => Err(BrokerError::Rejected {
                    message: format!("Binance has no order {venue_id} to cancel"),
                }),
            },
        }
    }
}

impl Broker for BinanceBroker {
    fn name(&self) -> &'static str {
        "binance"
    }

    fn spot_only(&self) -> bool {
        true
    }

    fn max_client_id_len(&self) -> usize {
        CLIENT_ORDER_ID_MAX
    }

    fn allows_short(&self) -> bool {
        false
    }

    fn exits(&self) -> crate::order::ExitSupport {
        crate::order::ExitSupport::Oco
    }

    fn place_exits<'a>(
        &'a self,
        entry_client_order_id: &'a str,
        exits: &'a [OrderRequest],
    ) -> BrokerFuture<'a, Result<Vec<Placement>, BrokerError>> {
        Box::pin(self.place_exits_inner(entry_client_order_id, exits))
    }

    fn modify_exits<'a>(
        &'a self,
        entry_client_order_id: &'a str,
        exits: &'a [(OrderRequest, Option<String>)],
    ) -> BrokerFuture<'a, Result<Vec<Placement>, BrokerError>> {
        Box::pin(self.modify_exits_inner(entry_client_order_id, exits))
    }

    fn cancel_exits<'a>(
        &'a self,
        symbol: &'a str,
        exits: &'a [(String, Option<String>)],
    ) -> BrokerFuture<'a, Result<Vec<Placement>, BrokerError>> {
        Box::pin(self.cancel_exits_inner(symbol, exits))
    }

    fn lookup_working<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        Box::pin(async move {
            match venue_order_id {
                // A modified order rests under its replacement's client id, not alertgate's.
                Some(id) => self.query_by(symbol, ("orderId", id.to_owned())).await,
                None => {
                    let venue_id = venue_client_id(client_order_id, self.max_client_id_len());
                    self.query(symbol, &venue_id).await
                }
            }
        })
    }

    fn reports_positions(&self) -> bool {
        true
    }

    fn positions<'a>(
        &'a self,
        _account: &'a str,
        symbols: &'a [String],
    ) -> BrokerFuture<'a, Result<Option<Positions>, BrokerError>> {
        Box::pin(async move { self.base_balances(symbols).await.map(Some) })
    }

    fn looks_up_orders(&self) -> bool {
        true
    }

    fn lookup<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        Box::pin(async move {
            let venue_id = venue_client_id(client_order_id, self.max_client_id_len());
            self.query(symbol, &venue_id).await
        })
    }

    fn lot_rule<'a>(
        &'a self,
        symbol: &'a str,
    ) -> BrokerFuture<'a, Result<Option<LotRule>, BrokerError>> {
        Box::pin(async move { Ok(self.rules(symbol).await?.lot_rule()) })
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.place_inner(order))
    }

    fn cancel<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.cancel_inner(symbol, client_order_id, venue_order_id))
    }

    fn modify<'a>(
        &'a self,
        order: &'a OrderRequest,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.modify_inner(order, venue_order_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_is_counted_in_the_quote_asset_and_unknown_when_paid_in_another() {
        let fill = |price: &str, commission: &str, asset: &str| BinanceFill {
            price: price.into(),
            commission: commission.into(),
            commission_asset: asset.into(),
        };
        // A buy pays in the base asset it receives: 0.00001 BTC at 42000 is 0.42 USDT.
        let buy = [
            fill("42000.00000000", "0.00000600", "BTC"),
            fill("42000.00000000", "0.00000400", "BTC"),
        ];
        assert_eq!(
            fee_in_quote(&buy, "BTC", "USDT")
                .map(|d| d.to_string())
                .as_deref(),
            Some("0.42")
        );
        // A sell pays in the quote asset.
        let sell = [fill("42000.00000000", "0.42000000", "USDT")];
        assert_eq!(
            fee_in_quote(&sell, "BTC", "USDT")
                .map(|d| d.to_string())
                .as_deref(),
            Some("0.42")
        );
        // Paid in BNB (its price is unknown here), or no trades at all: no fee is claimed.
        let bnb = [fill("42000.00000000", "0.00100000", "BNB")];
        assert_eq!(fee_in_quote(&bnb, "BTC", "USDT"), None);
        assert_eq!(fee_in_quote(&[], "BTC", "USDT"), None);
    }

    #[test]
    fn binance_statuses_and_fills_map_onto_placements() {
        let order = |status: &str, qty: &str, quote: &str| BinanceOrder {
            order_id: 7,
            status: status.into(),
            executed_qty: Some(qty.into()),
            cummulative_quote_qty: Some(quote.into()),
            client_order_id: None,
            order_list_id: None,
            fills: Vec::new(),
        };
        let filled = order("FILLED", "0.50000000", "21000.00000000").placement();
        assert_eq!(filled.status, OrderStatus::Filled);
        assert_eq!(filled.venue_order_id.as_deref(), Some("7"));
        assert_eq!(filled.filled_quantity.to_string(), "0.5");
        assert_eq!(
            filled.average_price.map(|p| p.to_string()).as_deref(),
            Some("42000")
        );
        assert_eq!(
            order("NEW", "0", "0").placement().status,
            OrderStatus::Placed
        );
        assert_eq!(order("NEW", "0", "0").placement().average_price, None);
        assert_eq!(
            order("PARTIALLY_FILLED", "1", "2").placement().status,
            OrderStatus::PartiallyFilled
        );
        for gone in ["CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"] {
            assert_eq!(
                order(gone, "0", "0").placement().status,
                OrderStatus::Cancelled
            );
        }
    }
}
