//! `binance_futures`: Binance USDⓈ-M futures (perpetuals) over its REST API, the futures testnet
//! by default, in One-way position mode.
//!
//! Requests are signed exactly as on Spot ([`super::binance::sign`]: the query string, HMAC or
//! Ed25519, `X-MBX-APIKEY`, `timestamp`/`recvWindow`), and quantities and prices are rounded to
//! the symbol's filters from `GET /fapi/v1/exchangeInfo` ([`super::binance::filters`]:
//! LOT_SIZE, MARKET_LOT_SIZE, PRICE_FILTER, MIN_NOTIONAL `notional`).
//!
//! - One order is `POST /fapi/v1/order` (`MARKET` or `LIMIT`; stop orders live in Binance's
//!   separate Algo Order API and are refused as `invalid`), `newClientOrderId` = the client
//!   order id, `reduceOnly=true` when the order only reduces the position
//!   ([`OrderRequest::reduce_only`]: closes, the close part of a target). A reduce-only order is
//!   exempt from the minimum notional, as Binance exempts it.
//! - Leverage: `[broker.binance_futures] leverage = { BTCUSDT = 3 }` is set with
//!   `POST /fapi/v1/leverage` before the first opening order in the symbol, once per process
//!   (remembered in memory; after a restart it is set again, which Binance treats as a no-op
//!   when unchanged). Reduce-only orders never set it: lowering leverage with a position open
//!   can be refused, and must never block a close.
//! - Idempotency is Spot's rule: before every send the order is looked up with
//!   `GET /fapi/v1/order?origClientOrderId=`; after an unknown outcome (5xx, `-1006`/`-1007`,
//!   timeout) it is looked up again, and `-4116 ClientOrderId is duplicated` is answered by the
//!   lookup. An order is never resent blind.
//! - Positions: `GET /fapi/v2/positionRisk`, `positionAmt` (signed) of the `BOTH` side; equity
//!   (`percent_of_equity`): `GET /fapi/v2/account` `totalMarginBalance`.
//!
//! A reversal through zero (long 0.02 → target short 0.01) stays two orders, as the planner
//! makes it for every venue: a reduce-only close of 0.02, then, once it filled, an open of 0.01.
//! One-way mode would take one sell of 0.03, but it could not be `reduceOnly`, so a close that
//! met a position already changed at the venue could open one instead.

mod errors;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use alertgate_shared::Clock;
use reqwest::Method;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

use super::binance::filters::{plain, SymbolRules};
use super::binance::rest::{KeyNames, RulesCache, Section, SignedRest};
use super::config::BinanceFuturesConfig;
use super::http::venue_client_id;
use super::{
    Broker, BrokerBuildError, BrokerError, BrokerFuture, LotRule, OrderStatus, Placement, Positions,
};
use crate::normalize::Perpetuals;
use crate::order::{OrderRequest, OrderType, Side, TimeInForce};

/// Binance futures' limit on `newClientOrderId` (`^[\.A-Z\:/a-z0-9_-]{1,36}$`).
pub const CLIENT_ORDER_ID_MAX: usize = 36;
/// Binance futures' highest leverage.
const MAX_LEVERAGE: u32 = 125;

const KEYS: KeyNames = KeyNames {
    section: "binance_futures",
    base_url: "binance_futures.base_url",
    api_key: "binance_futures.api_key",
    api_secret: "binance_futures.api_secret",
    private_key: "binance_futures.private_key",
    recv_window_ms: "binance_futures.recv_window_ms",
};

/// The fields of a futures order (new-order RESULT, query or cancel answer) that matter here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FuturesOrder {
    order_id: i64,
    status: String,
    #[serde(default)]
    executed_qty: Option<String>,
    #[serde(default)]
    cum_quote: Option<String>,
    #[serde(default)]
    avg_price: Option<String>,
}

impl FuturesOrder {
    fn placement(self) -> Placement {
        let parse = |s: Option<String>| {
            s.and_then(|s| s.parse::<Decimal>().ok())
                .unwrap_or(Decimal::ZERO)
        };
        let filled = parse(self.executed_qty);
        let average = parse(self.avg_price);
        let quote = parse(self.cum_quote);
        let status = match self.status.as_str() {
            "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
            "FILLED" => OrderStatus::Filled,
            "CANCELED" | "EXPIRED" | "EXPIRED_IN_MATCH" | "REJECTED" => OrderStatus::Cancelled,
            // NEW.
            _ => OrderStatus::Placed,
        };
        let average_price = if filled <= Decimal::ZERO {
            None
        } else if average > Decimal::ZERO {
            Some(average.normalize())
        } else {
            (quote > Decimal::ZERO).then(|| (quote / filled).normalize())
        };
        Placement {
            fee: None,
            venue_order_id: Some(self.order_id.to_string()),
            status,
            filled_quantity: filled.normalize(),
            average_price,
        }
    }
}

/// One entry of `GET /fapi/v2/positionRisk`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PositionRisk {
    symbol: String,
    position_amt: String,
    #[serde(default)]
    position_side: Option<String>,
}

/// The part of `GET /fapi/v2/account` that matters here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Account {
    /// Wallet balance plus unrealised PnL, in USDT: the account's equity.
    total_margin_balance: String,
}

/// Binance USDⓈ-M futures.
pub struct BinanceFuturesBroker {
    /// Signed requests to the futures API.
    rest: SignedRest,
    /// `[broker.binance_futures] leverage`: symbol → leverage to set before its first order.
    leverage: BTreeMap<String, u32>,
    /// Symbols whose leverage this process has set. Held across the call, so two first orders
    /// in one symbol set it once.
    leverage_set: tokio::sync::Mutex<HashSet<String>>,
    /// Exchange filters per symbol.
    rules: RulesCache,
}

impl fmt::Debug for BinanceFuturesBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceFuturesBroker")
            .field("rest", &self.rest)
            .field("leverage", &self.leverage)
            .finish_non_exhaustive()
    }
}

impl BinanceFuturesBroker {
    /// Resolves the credentials (exactly one of `api_secret` and `private_key`), checks the
    /// leverage table and builds the client.
    pub fn from_config(
        config: &BinanceFuturesConfig,
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
        let rest = SignedRest::from_section(&KEYS, &section, clock, &errors::FUTURES)?;
        if let Some((symbol, leverage)) = config
            .leverage
            .iter()
            .find(|(_, l)| !(1..=MAX_LEVERAGE).contains(*l))
        {
            return Err(BrokerBuildError::Invalid {
                key: "binance_futures.leverage",
                message: format!(
                    "{symbol} = {leverage}: leverage is a whole number from 1 to {MAX_LEVERAGE}"
                ),
            });
        }
        Ok(Self {
            rest,
            leverage: config.leverage.clone(),
            leverage_set: tokio::sync::Mutex::new(HashSet::new()),
            rules: RulesCache::default(),
        })
    }

    async fn place_inner(&self, order: &OrderRequest) -> Result<Placement, BrokerError> {
        let client_order_id = venue_client_id(&order.client_order_id, CLIENT_ORDER_ID_MAX);
        // Lookup first, as on Spot: an order already at Binance is answered, never sent again.
        if let Some(existing) = self.query(&order.symbol, &client_order_id).await? {
            return Ok(existing);
        }
        let rules = self.rules(&order.symbol).await?;
        let params = order_params(&rules, order, &client_order_id)?;
        if !order.reduce_only {
            self.ensure_leverage(&order.symbol).await?;
        }
        let request = self.rest.request(Method::POST, "/fapi/v1/order", params);
        self.rest
            .place(
                request,
                &self.rules,
                &order.symbol,
                &client_order_id,
                |answer| self.order_of(&answer.body),
                || self.query(&order.symbol, &client_order_id),
            )
            .await
    }

    /// An order answer read as a placement.
    fn order_of(&self, body: &[u8]) -> Result<Placement, BrokerError> {
        self.rest
            .parse::<FuturesOrder>(body, "an order")
            .map(FuturesOrder::placement)
    }

    /// Sets the configured leverage of `symbol` once per process, before its first order.
    async fn ensure_leverage(&self, symbol: &str) -> Result<(), BrokerError> {
        let Some(leverage) = self.leverage.get(symbol) else {
            return Ok(());
        };
        let mut set = self.leverage_set.lock().await;
        if set.contains(symbol) {
            return Ok(());
        }
        let params = vec![
            ("symbol", symbol.to_owned()),
            ("leverage", leverage.to_string()),
        ];
        let request = self.rest.request(Method::POST, "/fapi/v1/leverage", params);
        let _: serde_json::Value = self.rest.read(request, "leverage").await?;
        tracing::info!(symbol, leverage, "Binance futures leverage set");
        set.insert(symbol.to_owned());
        Ok(())
    }

    /// The symbol's filters, from the cache or `GET /fapi/v1/exchangeInfo`.
    async fn rules(&self, symbol: &str) -> Result<Arc<SymbolRules>, BrokerError> {
        let now = self.rest.clock.now_unix();
        if let Some(rules) = self.rules.fresh(symbol, now) {
            return Ok(rules);
        }
        let request = self.rest.public("/fapi/v1/exchangeInfo", &[]);
        let info: serde_json::Value = self.rest.read(request, "exchangeInfo").await?;
        let rules = Arc::new(
            SymbolRules::from_exchange_info(&info, symbol).ok_or_else(|| {
                BrokerError::Rejected {
                    message: format!("Binance USDⓈ-M futures does not list the symbol {symbol}"),
                }
            })?,
        );
        self.rules.insert(symbol, now, rules.clone());
        Ok(rules)
    }

    /// `GET /fapi/v1/order?symbol=&origClientOrderId=`: `None` when Binance has no such order.
    async fn query(
        &self,
        symbol: &str,
        client_order_id: &str,
    ) -> Result<Option<Placement>, BrokerError> {
        let params = vec![
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", client_order_id.to_owned()),
        ];
        match self
            .rest
            .lookup("/fapi/v1/order", params, -2013, "order lookup")
            .await?
        {
            Some(body) => self.order_of(&body).map(Some),
            None => Ok(None),
        }
    }

    /// `DELETE /fapi/v1/order?symbol=&origClientOrderId=`. `-2011` (already cancelled or
    /// filled) is answered by looking the order up.
    async fn cancel_inner(
        &self,
        symbol: &str,
        client_order_id: &str,
    ) -> Result<Placement, BrokerError> {
        let venue_id = venue_client_id(client_order_id, CLIENT_ORDER_ID_MAX);
        let params = vec![
            ("symbol", symbol.to_owned()),
            ("origClientOrderId", venue_id.clone()),
        ];
        match self.rest.delete("/fapi/v1/order", params).await? {
            Some(body) => self.order_of(&body),
            None => match self.query(symbol, &venue_id).await? {
                Some(placement) => Ok(placement),
                None => Err(BrokerError::Rejected {
                    message: format!("Binance futures has no order {venue_id} to cancel"),
                }),
            },
        }
    }

    /// `GET /fapi/v2/positionRisk`: the signed One-way position of each of `symbols`.
    async fn position_amounts(&self, symbols: &[String]) -> Result<Positions, BrokerError> {
        let request = self
            .rest
            .request(Method::GET, "/fapi/v2/positionRisk", Vec::new());
        let risks: Vec<PositionRisk> = self.rest.read(request, "positionRisk").await?;
        let mut held: HashMap<String, Decimal> = HashMap::new();
        for risk in risks {
            let amount =
                risk.position_amt
                    .parse::<Decimal>()
                    .map_err(|_| BrokerError::Transient {
                        message: format!(
                            "Binance futures positionAmt of {} is not a decimal",
                            risk.symbol
                        ),
                        retry_after: None,
                    })?;
            match risk.position_side.as_deref() {
                None | Some("BOTH") => *held.entry(risk.symbol).or_default() += amount,
                Some(_) if amount.is_zero() => {}
                Some(side) => {
                    return Err(BrokerError::Rejected {
                        message: format!(
                            "Binance futures reports a {side} position in {}: the account is in \
                             Hedge Mode; alertgate trades in One-way Mode",
                            risk.symbol
                        ),
                    })
                }
            }
        }
        Ok(symbols
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    held.get(s).copied().unwrap_or_default().normalize(),
                )
            })
            .collect())
    }
}

impl BinanceFuturesBroker {
    /// `GET /fapi/v2/account` `totalMarginBalance`: wallet balance plus unrealised PnL.
    async fn account_equity(&self) -> Result<Decimal, BrokerError> {
        let request = self
            .rest
            .request(Method::GET, "/fapi/v2/account", Vec::new());
        let account: Account = self.rest.read(request, "account").await?;
        account
            .total_margin_balance
            .parse::<Decimal>()
            .map(|d| d.normalize())
            .map_err(|_| BrokerError::Transient {
                message: "Binance futures totalMarginBalance is not a decimal".into(),
                retry_after: None,
            })
    }
}

/// The `POST /fapi/v1/order` parameters for `order` (without `recvWindow`, `timestamp` and
/// `signature`), rounded to `rules`, or why Binance would refuse it.
fn order_params(
    rules: &SymbolRules,
    order: &OrderRequest,
    client_order_id: &str,
) -> Result<Vec<(&'static str, String)>, BrokerError> {
    let invalid = |message: String| BrokerError::Invalid { message };
    if rules.status != "TRADING" {
        return Err(BrokerError::Rejected {
            message: format!(
                "market closed: {} is not trading on Binance futures right now (status {})",
                rules.symbol, rules.status
            ),
        });
    }
    let market = match order.order_type {
        OrderType::Market => true,
        OrderType::Limit => false,
        OrderType::Stop | OrderType::StopLimit => {
            return Err(invalid(format!(
                "Binance USDⓈ-M futures takes {} orders only through its Algo Order API, which \
                 alertgate does not use: send market or limit orders",
                order.order_type.as_str()
            )))
        }
    };
    let quantity = rules.quantity(order.quantity.get(), market)?;
    let price = if market {
        None
    } else {
        let Some(limit) = order.limit_price else {
            return Err(invalid("a limit order needs limit_price".into()));
        };
        let passive = match order.side {
            Side::Buy => RoundingStrategy::ToNegativeInfinity,
            Side::Sell => RoundingStrategy::ToPositiveInfinity,
        };
        Some(rules.price(limit.get(), passive, "limit price")?)
    };
    // Binance exempts reduce-only orders from the minimum notional ("unless you choose reduce
    // only"), so only orders that open or add are checked.
    if !order.reduce_only {
        let reference = price.or(order.reference_price.map(|p| p.get()));
        rules.check_notional(quantity, reference, market)?;
    }
    let mut params = vec![
        ("symbol", rules.symbol.clone()),
        (
            "side",
            match order.side {
                Side::Buy => "BUY",
                Side::Sell => "SELL",
            }
            .to_owned(),
        ),
        ("type", if market { "MARKET" } else { "LIMIT" }.to_owned()),
    ];
    if !market {
        let tif = match order.tif {
            TimeInForce::Gtc => "GTC",
            TimeInForce::Ioc => "IOC",
            TimeInForce::Fok => "FOK",
            TimeInForce::Day => {
                return Err(invalid(
                    "Binance futures has no DAY time in force: use gtc, ioc or fok".into(),
                ))
            }
        };
        params.push(("timeInForce", tif.to_owned()));
    }
    params.push(("quantity", plain(quantity)));
    if let Some(price) = price {
        params.push(("price", plain(price)));
    }
    if order.reduce_only {
        params.push(("reduceOnly", "true".to_owned()));
    }
    params.push(("newClientOrderId", client_order_id.to_owned()));
    params.push(("newOrderRespType", "RESULT".to_owned()));
    Ok(params)
}

impl Broker for BinanceFuturesBroker {
    fn name(&self) -> &'static str {
        "binance_futures"
    }

    fn perpetuals(&self) -> Perpetuals {
        Perpetuals::Contract
    }

    fn max_client_id_len(&self) -> usize {
        CLIENT_ORDER_ID_MAX
    }

    fn reports_positions(&self) -> bool {
        true
    }

    fn positions<'a>(
        &'a self,
        _account: &'a str,
        symbols: &'a [String],
    ) -> BrokerFuture<'a, Result<Option<Positions>, BrokerError>> {
        Box::pin(async move { self.position_amounts(symbols).await.map(Some) })
    }

    fn equity<'a>(
        &'a self,
        _account: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Decimal>, BrokerError>> {
        Box::pin(async move { self.account_equity().await.map(Some) })
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
            let venue_id = venue_client_id(client_order_id, CLIENT_ORDER_ID_MAX);
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
        _venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.cancel_inner(symbol, client_order_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SymbolRules {
        let info = serde_json::json!({"symbols": [{
        "symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
        "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
            {"filterType": "MIN_NOTIONAL", "notional": "100"}
        ]}]});
        SymbolRules::from_exchange_info(&info, "BTCUSDT").unwrap()
    }

    fn order(side: Side, quantity: &str, reduce_only: bool) -> OrderRequest {
        OrderRequest {
            client_order_id: "c1".into(),
            account: "main".into(),
            symbol: "BTCUSDT".into(),
            side,
            quantity: quantity.parse().unwrap(),
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: Some("50000".parse().unwrap()),
            product: None,
            exits: Default::default(),
            reduce_only,
        }
    }

    #[test]
    fn futures_min_notional_is_read_from_its_notional_key_and_waived_for_reduce_only_orders() {
        let r = rules();
        assert_eq!(r.notional.unwrap().min, Decimal::from(100));
        let small = order(Side::Buy, "0.001", false);
        let Err(BrokerError::Invalid { message }) = order_params(&r, &small, "c1") else {
            panic!("50 USDT is below the 100 USDT minimum")
        };
        assert!(message.contains("minimum notional 100 USDT"), "{message}");
        let close = order(Side::Sell, "0.001", true);
        let params = order_params(&r, &close, "c1").unwrap();
        assert!(params.contains(&("reduceOnly", "true".to_owned())));
    }

    #[test]
    fn an_opening_order_has_no_reduce_only_and_stops_are_refused_before_sending() {
        let params = order_params(&rules(), &order(Side::Buy, "0.0109", false), "c1").unwrap();
        let names: Vec<&str> = params.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "symbol",
                "side",
                "type",
                "quantity",
                "newClientOrderId",
                "newOrderRespType"
            ]
        );
        assert_eq!(params[3].1, "0.01", "rounded down to the 0.001 step");
        let stop = OrderRequest {
            order_type: OrderType::Stop,
            stop_price: Some("40000".parse().unwrap()),
            ..order(Side::Sell, "0.01", false)
        };
        assert!(matches!(
            order_params(&rules(), &stop, "c1"),
            Err(BrokerError::Invalid { .. })
        ));
    }

    #[test]
    fn futures_order_answers_map_onto_placements_with_binances_average_price() {
        let filled = FuturesOrder {
            order_id: 9,
            status: "FILLED".into(),
            executed_qty: Some("0.010".into()),
            cum_quote: Some("500.00".into()),
            avg_price: Some("50000.0".into()),
        }
        .placement();
        assert_eq!(filled.status, OrderStatus::Filled);
        assert_eq!(filled.filled_quantity.to_string(), "0.01");
        assert_eq!(filled.average_price, Some(Decimal::from(50000)));
        let resting = FuturesOrder {
            order_id: 9,
            status: "NEW".into(),
            executed_qty: Some("0".into()),
            cum_quote: Some("0".into()),
            avg_price: Some("0.00".into()),
        }
        .placement();
        assert_eq!(
            (resting.status, resting.average_price),
            (OrderStatus::Placed, None)
        );
    }
}
