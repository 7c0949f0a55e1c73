//! A symbol's trading rules from `GET /api/v3/exchangeInfo?symbol=`, and the order parameters
//! they allow: quantities rounded down to `LOT_SIZE.stepSize` (and `MARKET_LOT_SIZE` for market
//! orders), prices to `PRICE_FILTER.tickSize` (never to a worse price for the user), and orders
//! below `minQty` or the minimum notional (`NOTIONAL` / legacy `MIN_NOTIONAL`) refused before
//! anything is sent.

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

use crate::broker::BrokerError;
use crate::order::{OrderRequest, OrderType, Side, TimeInForce};

/// `minQty` / `maxQty` / `stepSize` (LOT_SIZE, MARKET_LOT_SIZE). Zero disables a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotSize {
    /// Smallest quantity.
    pub min: Decimal,
    /// Largest quantity (zero: none).
    pub max: Decimal,
    /// Quantity increment (zero: any).
    pub step: Decimal,
}

/// `minPrice` / `maxPrice` / `tickSize` (PRICE_FILTER). Zero disables a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceFilter {
    /// Lowest price (zero: none).
    pub min: Decimal,
    /// Highest price (zero: none).
    pub max: Decimal,
    /// Price increment (zero: any).
    pub tick: Decimal,
}

/// Minimum and maximum order value in the quote asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notional {
    /// Smallest price × quantity.
    pub min: Decimal,
    /// Whether the minimum applies to market orders too.
    pub min_applies_to_market: bool,
    /// Largest price × quantity (`None`: no maximum).
    pub max: Option<Decimal>,
    /// Whether the maximum applies to market orders too.
    pub max_applies_to_market: bool,
}

/// What Binance allows for one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolRules {
    /// The symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// `TRADING`, `BREAK`, `HALT`, ...
    pub status: String,
    /// The quote asset (for messages), e.g. `USDT`.
    pub quote_asset: String,
    /// The base asset, e.g. `BTC`: its balance is the spot position in the symbol.
    pub base_asset: String,
    /// LOT_SIZE.
    pub lot: Option<LotSize>,
    /// MARKET_LOT_SIZE (market orders only).
    pub market_lot: Option<LotSize>,
    /// PRICE_FILTER.
    pub price: Option<PriceFilter>,
    /// NOTIONAL or MIN_NOTIONAL.
    pub notional: Option<Notional>,
}

fn dec(v: &Value, key: &str) -> Option<Decimal> {
    v.get(key)?.as_str()?.parse().ok()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(true)
}

impl SymbolRules {
    /// Reads the rules of `symbol` out of an exchangeInfo answer.
    pub fn from_exchange_info(info: &Value, symbol: &str) -> Option<Self> {
        let entry = info
            .get("symbols")?
            .as_array()?
            .iter()
            .find(|s| s.get("symbol").and_then(Value::as_str) == Some(symbol))?;
        let mut rules = SymbolRules {
            symbol: symbol.to_owned(),
            status: entry
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("TRADING")
                .to_owned(),
            quote_asset: entry
                .get("quoteAsset")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            base_asset: entry
                .get("baseAsset")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            lot: None,
            market_lot: None,
            price: None,
            notional: None,
        };
        for filter in entry
            .get("filters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let lot = || {
                Some(LotSize {
                    min: dec(filter, "minQty")?,
                    max: dec(filter, "maxQty").unwrap_or_default(),
                    step: dec(filter, "stepSize").unwrap_or_default(),
                })
            };
            match filter.get("filterType").and_then(Value::as_str) {
                Some("LOT_SIZE") => rules.lot = lot(),
                Some("MARKET_LOT_SIZE") => rules.market_lot = lot(),
                Some("PRICE_FILTER") => {
                    rules.price = Some(PriceFilter {
                        min: dec(filter, "minPrice").unwrap_or_default(),
                        max: dec(filter, "maxPrice").unwrap_or_default(),
                        tick: dec(filter, "tickSize").unwrap_or_default(),
                    })
                }
                Some("NOTIONAL") => {
                    rules.notional = Some(Notional {
                        min: dec(filter, "minNotional").unwrap_or_default(),
                        min_applies_to_market: flag(filter, "applyMinToMarket"),
                        max: dec(filter, "maxNotional"),
                        max_applies_to_market: flag(filter, "applyMaxToMarket"),
                    })
                }
                // The older filter; NOTIONAL supersedes it when both are present. USDⓈ-M
                // futures name its minimum `notional`, Spot `minNotional`.
                Some("MIN_NOTIONAL") if rules.notional.is_none() => {
                    rules.notional = Some(Notional {
                        min: dec(filter, "minNotional")
                            .or_else(|| dec(filter, "notional"))
                            .unwrap_or_default(),
                        min_applies_to_market: flag(filter, "applyToMarket"),
                        max: None,
                        max_applies_to_market: false,
                    })
                }
                _ => {}
            }
        }
        Some(rules)
    }

    /// The quantity Binance will accept: rounded down to the step, checked against the bounds.
    pub fn quantity(&self, requested: Decimal, market: bool) -> Result<Decimal, BrokerError> {
        let mut quantity = requested;
        let filters = [
            ("LOT_SIZE", self.lot),
            (
                "MARKET_LOT_SIZE",
                if market { self.market_lot } else { None },
            ),
        ];
        for (name, lot) in filters {
            let Some(lot) = lot else { continue };
            // Binance: `quantity % stepSize == 0`.
            if lot.step > Decimal::ZERO {
                quantity = (quantity / lot.step).floor() * lot.step;
            }
            if quantity < lot.min || quantity <= Decimal::ZERO {
                return Err(invalid(format!(
                    "quantity {} is below Binance's minimum {} for {} ({name} minQty {}, stepSize {})",
                    plain(requested),
                    plain(lot.min.max(lot.step)),
                    self.symbol,
                    plain(lot.min),
                    plain(lot.step),
                )));
            }
            if lot.max > Decimal::ZERO && quantity > lot.max {
                return Err(invalid(format!(
                    "quantity {} is above Binance's maximum {} for {} ({name})",
                    plain(requested),
                    plain(lot.max),
                    self.symbol
                )));
            }
        }
        Ok(quantity.normalize())
    }

    /// A price on the tick grid. Limit prices round towards the passive side (a buy down, a sell
    /// up), so rounding never makes the user pay more or receive less than they asked.
    pub fn price(
        &self,
        requested: Decimal,
        strategy: RoundingStrategy,
        what: &str,
    ) -> Result<Decimal, BrokerError> {
        let Some(filter) = self.price else {
            return Ok(requested.normalize());
        };
        let mut price = requested;
        // Binance: `price % tickSize == 0`.
        if filter.tick > Decimal::ZERO {
            price = (price / filter.tick).round_dp_with_strategy(0, strategy) * filter.tick;
        }
        if price <= Decimal::ZERO || (filter.min > Decimal::ZERO && price < filter.min) {
            return Err(invalid(format!(
                "{what} {} is below Binance's minimum price {} for {} (PRICE_FILTER)",
                plain(requested),
                plain(filter.min.max(filter.tick)),
                self.symbol
            )));
        }
        if filter.max > Decimal::ZERO && price > filter.max {
            return Err(invalid(format!(
                "{what} {} is above Binance's maximum price {} for {} (PRICE_FILTER)",
                plain(requested),
                plain(filter.max),
                self.symbol
            )));
        }
        Ok(price.normalize())
    }

    /// Refuses an order whose value (`price` × `quantity`) is outside the notional bounds.
    pub fn check_notional(
        &self,
        quantity: Decimal,
        price: Option<Decimal>,
        market: bool,
    ) -> Result<(), BrokerError> {
        let (Some(notional), Some(price)) = (self.notional, price) else {
            return Ok(());
        };
        let value = (quantity * price).normalize();
        if (!market || notional.min_applies_to_market) && value < notional.min {
            return Err(invalid(format!(
                "order value {} {quote} ({} × {}) is below Binance's minimum notional {} {quote} for {} \
                 (NOTIONAL); raise the quantity",
                plain(value),
                plain(quantity),
                plain(price),
                plain(notional.min),
                self.symbol,
                quote = self.quote_asset,
            )));
        }
        if let Some(max) = notional.max.filter(|m| *m > Decimal::ZERO) {
            if (!market || notional.max_applies_to_market) && value > max {
                return Err(invalid(format!(
                    "order value {} {quote} is above Binance's maximum notional {} {quote} for {} (NOTIONAL)",
                    plain(value),
                    plain(max),
                    self.symbol,
                    quote = self.quote_asset,
                )));
            }
        }
        Ok(())
    }

    /// The LOT_SIZE grid that sized quantities are rounded down to.
    pub fn lot_rule(&self) -> Option<crate::broker::LotRule> {
        self.lot.map(|lot| crate::broker::LotRule {
            step: lot.step,
            min: lot.min,
        })
    }

    /// The `POST /api/v3/order` parameters for `order` (without `recvWindow`, `timestamp` and
    /// `signature`), rounded to these rules, or why Binance would refuse it.
    pub fn order_params(
        &self,
        order: &OrderRequest,
        client_order_id: &str,
    ) -> Result<Vec<(&'static str, String)>, BrokerError> {
        if self.status != "TRADING" {
            return Err(BrokerError::Rejected {
                message: format!(
                    "market closed: {} is not trading on Binance right now (status {})",
                    self.symbol, self.status
                ),
            });
        }
        let market = order.order_type == OrderType::Market;
        let (venue_type, needs_tif, needs_price, needs_stop) = match order.order_type {
            OrderType::Market => ("MARKET", false, false, false),
            OrderType::Limit => ("LIMIT", true, true, false),
            OrderType::Stop => ("STOP_LOSS", false, false, true),
            OrderType::StopLimit => ("STOP_LOSS_LIMIT", true, true, true),
        };
        let quantity = self.quantity(order.quantity.get(), market)?;
        let passive = match order.side {
            Side::Buy => RoundingStrategy::ToNegativeInfinity,
            Side::Sell => RoundingStrategy::ToPositiveInfinity,
        };
        let price = match (needs_price, order.limit_price) {
            (true, Some(p)) => Some(self.price(p.get(), passive, "limit price")?),
            (true, None) => {
                return Err(invalid(format!(
                    "a {} order needs limit_price",
                    order.order_type.as_str()
                )))
            }
            (false, _) => None,
        };
        let stop = match (needs_stop, order.stop_price) {
            (true, Some(p)) => Some(self.price(
                p.get(),
                RoundingStrategy::MidpointAwayFromZero,
                "stop price",
            )?),
            (true, None) => {
                return Err(invalid(format!(
                    "a {} order needs stop_price",
                    order.order_type.as_str()
                )))
            }
            (false, _) => None,
        };
        let notional_price = price.or(stop).or(order.reference_price.map(|p| p.get()));
        self.check_notional(quantity, notional_price, market)?;

        let mut params = vec![
            ("symbol", self.symbol.clone()),
            (
                "side",
                if order.side == Side::Buy {
                    "BUY"
                } else {
                    "SELL"
                }
                .to_owned(),
            ),
            ("type", venue_type.to_owned()),
        ];
        if needs_tif {
            let tif = match order.tif {
                TimeInForce::Gtc => "GTC",
                TimeInForce::Ioc => "IOC",
                TimeInForce::Fok => "FOK",
                TimeInForce::Day => {
                    return Err(invalid(
                        "Binance Spot has no DAY time in force: use gtc, ioc or fok".into(),
                    ))
                }
            };
            params.push(("timeInForce", tif.to_owned()));
        }
        params.push(("quantity", plain(quantity)));
        if let Some(price) = price {
            params.push(("price", plain(price)));
        }
        if let Some(stop) = stop {
            params.push(("stopPrice", plain(stop)));
        }
        params.push(("newClientOrderId", client_order_id.to_owned()));
        // FULL: the answer lists the trades with their commission (the fee in the daily PnL).
        params.push(("newOrderRespType", "FULL".to_owned()));
        Ok(params)
    }
}

/// Plain decimal notation, trailing zeros removed (rust_decimal never prints exponents).
pub fn plain(d: Decimal) -> String {
    d.normalize().to_string()
}

fn invalid(message: String) -> BrokerError {
    BrokerError::Invalid { message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn rules() -> SymbolRules {
        let info = serde_json::json!({"symbols": [{
        "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "100.00000000", "stepSize": "0.00000000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": true,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}
        ]}]});
        SymbolRules::from_exchange_info(&info, "BTCUSDT").unwrap()
    }

    #[test]
    fn quantities_round_down_to_the_step_and_print_plainly() {
        let r = rules();
        assert_eq!(
            plain(r.quantity(d("0.123456789"), false).unwrap()),
            "0.12345"
        );
        assert_eq!(plain(r.quantity(d("4200"), false).unwrap()), "4200");
        assert!(matches!(
            r.quantity(d("0.000009"), false),
            Err(BrokerError::Invalid { .. })
        ));
        assert!(matches!(
            r.quantity(d("101"), true),
            Err(BrokerError::Invalid { .. })
        ));
    }

    #[test]
    fn limit_prices_round_to_the_passive_side_of_the_tick() {
        let r = rules();
        assert_eq!(
            plain(
                r.price(d("42000.019"), RoundingStrategy::ToNegativeInfinity, "p")
                    .unwrap()
            ),
            "42000.01"
        );
        assert_eq!(
            plain(
                r.price(d("42000.011"), RoundingStrategy::ToPositiveInfinity, "p")
                    .unwrap()
            ),
            "42000.02"
        );
        assert_eq!(
            plain(
                r.price(d("0.1"), RoundingStrategy::ToNegativeInfinity, "p")
                    .unwrap()
            ),
            "0.1"
        );
        assert!(r
            .price(d("0.001"), RoundingStrategy::ToNegativeInfinity, "p")
            .is_err());
    }

    #[test]
    fn an_order_below_the_minimum_notional_is_invalid_with_the_numbers_in_the_message() {
        let r = rules();
        let err = r
            .check_notional(d("0.0001"), Some(d("42000")), true)
            .unwrap_err();
        let BrokerError::Invalid { message } = err else {
            panic!()
        };
        assert!(
            message.contains("4.2 USDT") && message.contains("minimum notional 5 USDT"),
            "{message}"
        );
        assert!(r.check_notional(d("0.001"), Some(d("42000")), true).is_ok());
        assert!(
            r.check_notional(d("1000"), Some(d("42000")), true).is_ok(),
            "max does not apply to market"
        );
        assert!(r
            .check_notional(d("1000"), Some(d("42000")), false)
            .is_err());
    }

    #[test]
    fn a_symbol_that_is_not_trading_is_refused_as_market_closed() {
        let mut r = rules();
        r.status = "BREAK".into();
        let order = OrderRequest {
            client_order_id: "c".into(),
            account: "main".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            quantity: "0.01".parse().unwrap(),
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: None,
            product: None,
            exits: Default::default(),
            reduce_only: false,
        };
        let Err(BrokerError::Rejected { message }) = r.order_params(&order, "c") else {
            panic!()
        };
        assert!(message.contains("market closed"));
    }

    proptest::proptest! {
        #[test]
        fn rounded_quantities_are_on_the_step_never_above_the_request_and_plain(units in 1u64..10_000_000_000u64) {
            let r = rules();
            let requested = Decimal::new(i64::try_from(units).unwrap(), 8);
            let step = r.lot.unwrap().step;
            match r.quantity(requested, false) {
                Ok(q) => {
                    proptest::prop_assert!(q <= requested && q > requested - step);
                    proptest::prop_assert!((q % step).is_zero());
                    proptest::prop_assert!(!plain(q).contains(['e', 'E']));
                }
                Err(_) => proptest::prop_assert!(requested < r.lot.unwrap().min || requested > r.lot.unwrap().max),
            }
        }

        #[test]
        fn limit_prices_never_move_against_the_user(units in 1_000u64..100_000_000_000u64) {
            let r = rules();
            let requested = Decimal::new(i64::try_from(units).unwrap(), 6);
            let tick = r.price.unwrap().tick;
            let buy = r.price(requested, RoundingStrategy::ToNegativeInfinity, "p").unwrap();
            let sell = r.price(requested, RoundingStrategy::ToPositiveInfinity, "p").unwrap();
            proptest::prop_assert!(buy <= requested && requested - buy < tick && (buy % tick).is_zero());
            proptest::prop_assert!(sell >= requested && sell - requested < tick && (sell % tick).is_zero());
        }
    }
}
