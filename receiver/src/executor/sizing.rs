//! Sizing: the quantity of a buy/sell given as a `notional` or a `percent_of_equity`, and the
//! rounding of every computed quantity (those and target-position differences) down to the
//! venue's lot step. Pure, like the planner that calls it; the record of how a quantity was
//! computed ([`Computed::record`]) is journaled with the order.

use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::broker::LotRule;
use crate::normalize::{Leg, Sizing};
use crate::order::{OrderType, Positive};

/// A computed quantity and how it came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// The quantity to order (on the lot grid, at least the venue's minimum).
    pub quantity: Decimal,
    /// The inputs and the steps, journaled as the order's `sizing`.
    pub record: Value,
}

fn plain(d: Decimal) -> String {
    d.normalize().to_string()
}

/// The price a notional converts at: the limit price of a limit or stop-limit order, else the
/// alert's reference `price`.
pub fn reference_price(leg: &Leg) -> Option<Decimal> {
    let limit = matches!(leg.order_type, OrderType::Limit | OrderType::StopLimit)
        .then_some(leg.limit_price)
        .flatten();
    limit.or(leg.reference_price).map(Positive::get)
}

/// Why a rounded quantity cannot be ordered, with the numbers.
fn too_small(
    raw: Decimal,
    quantity: Decimal,
    lot: Option<&LotRule>,
    symbol: &str,
    what: &str,
) -> String {
    let min = lot.map_or(Decimal::ZERO, |l| l.min);
    let step = lot.map_or(Decimal::ZERO, |l| l.step);
    format!(
        "{what} is {} {symbol}, {} rounded down to the lot step {}, below the venue's minimum \
         quantity {}",
        plain(raw),
        plain(quantity),
        plain(step),
        plain(min.max(step)),
    )
}

/// Rounds `raw` down to `lot` and checks the venue's minimum; `what` describes the inputs for
/// the error message (`notional 100 at price 50000`). `Ok(None)`: it rounds to nothing (a
/// target already reached but for dust below the step).
pub fn round(
    raw: Decimal,
    lot: Option<&LotRule>,
    symbol: &str,
    what: &str,
) -> Result<Option<Decimal>, String> {
    let quantity = lot.map_or(raw.normalize(), |l| l.round_down(raw));
    if quantity <= Decimal::ZERO {
        return Ok(None);
    }
    if quantity < lot.map_or(Decimal::ZERO, |l| l.min) {
        return Err(too_small(raw, quantity, lot, symbol, what));
    }
    Ok(Some(quantity))
}

/// `legs` as a copy with `scale` runs them: `quantity`, `notional` and `target_position`
/// multiplied by `scale` (a percent of equity is already the copy account's own). The plan
/// rounds the results down to the lot step ([`scaled_quantity`]).
pub fn scale_legs(legs: &[Leg], scale: Decimal) -> Vec<Leg> {
    let times = |p: Positive| Positive::new(p.get() * scale).unwrap_or(p);
    legs.iter()
        .map(|leg| {
            let mut leg = leg.clone();
            leg.quantity = leg.quantity.map(times);
            leg.target_position = leg.target_position.map(|t| t * scale);
            if let Sizing::Notional(n) = leg.sizing {
                leg.sizing = Sizing::Notional(times(n));
            }
            leg
        })
        .collect()
}

/// A copy's scaled `quantity` rounded down to `lot`, with its record; an error (for
/// `legs[index].quantity`) when it rounds to nothing or below the venue's minimum.
pub fn scaled_quantity(
    scaled: Decimal,
    scale: Decimal,
    index: usize,
    symbol: &str,
    lot: Option<&LotRule>,
) -> Result<Computed, String> {
    let what = format!("the copy's quantity (scale {})", plain(scale));
    let quantity = round(scaled, lot, symbol, &what)
        .map_err(|e| format!("legs[{index}].quantity: {e}"))?
        .ok_or_else(|| {
            format!(
                "legs[{index}].quantity: {what} is {} {symbol}, 0 rounded down to the lot step \
                 {}: nothing to place for this copy",
                plain(scaled),
                plain(lot.map_or(Decimal::ZERO, |l| l.step)),
            )
        })?;
    let mut record = json!({"method": "copy", "scale": plain(scale),
                            "raw_quantity": plain(scaled), "quantity": plain(quantity)});
    if let (Some(map), Some(l)) = (record.as_object_mut(), lot) {
        map.insert("lot_step".into(), Value::String(plain(l.step)));
    }
    Ok(Computed { quantity, record })
}

/// The quantity of a buy/sell leg sized by notional or percent of equity; `Ok(None)` for a leg
/// sized by `quantity` (nothing to compute). Errors name the field and give the numbers.
pub fn size(
    leg: &Leg,
    index: usize,
    equity: Option<Decimal>,
    lot: Option<&LotRule>,
) -> Result<Option<Computed>, String> {
    let (field, amount, mut record) = match leg.sizing {
        Sizing::Quantity => return Ok(None),
        Sizing::Notional(n) => (
            "notional",
            n.get(),
            json!({"method": "notional", "notional": plain(n.get())}),
        ),
        Sizing::PercentOfEquity(p) => {
            let Some(equity) = equity else {
                return Err(format!(
                    "legs[{index}].percent_of_equity: this venue cannot report the account's \
                     equity; size the order with quantity or notional"
                ));
            };
            let amount = equity * p.get() / Decimal::ONE_HUNDRED;
            (
                "percent_of_equity",
                amount,
                json!({"method": "percent_of_equity", "percent_of_equity": plain(p.get()),
                       "equity": plain(equity), "notional": plain(amount)}),
            )
        }
    };
    let Some(price) = reference_price(leg) else {
        return Err(format!(
            "legs[{index}].price: {field} sizing needs a reference price (\"price\": \"{{{{close}}}}\") \
             or a limit price to convert at"
        ));
    };
    let raw = amount / price;
    let what = format!("{field} {} at price {}", plain(amount), plain(price));
    let quantity = round(raw, lot, &leg.symbol, &what)
        .map_err(|e| format!("legs[{index}].{field}: {e}"))?
        .ok_or_else(|| {
            let nothing = too_small(raw, Decimal::ZERO, lot, &leg.symbol, &what);
            format!("legs[{index}].{field}: {nothing}")
        })?;
    if let Some(map) = record.as_object_mut() {
        map.insert("price".into(), Value::String(plain(price)));
        map.insert("raw_quantity".into(), Value::String(plain(raw)));
        if let Some(l) = lot {
            map.insert("lot_step".into(), Value::String(plain(l.step)));
            map.insert("min_quantity".into(), Value::String(plain(l.min)));
        }
        map.insert("quantity".into(), Value::String(plain(quantity)));
    }
    Ok(Some(Computed { quantity, record }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::Action;
    use crate::order::TimeInForce;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn leg(sizing: Sizing, price: &str) -> Leg {
        Leg {
            tv_symbol: "BINANCE:BTCUSDT".into(),
            symbol: "BTCUSDT".into(),
            action: Action::Buy,
            quantity: None,
            sizing,
            target_position: None,
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: Some(price.parse().unwrap()),
            product: None,
            exits: Default::default(),
        }
    }

    const BINANCE_BTC: LotRule = LotRule {
        step: Decimal::from_parts(1, 0, 0, false, 5),
        min: Decimal::from_parts(1, 0, 0, false, 5),
    };

    #[test]
    fn a_notional_divides_by_the_price_and_rounds_down_to_the_step() {
        let n = Sizing::Notional(d("100").try_into().unwrap());
        let c = size(&leg(n, "50000"), 0, None, Some(&BINANCE_BTC))
            .unwrap()
            .unwrap();
        assert_eq!(c.quantity, d("0.002"));
        let c = size(&leg(n, "30000"), 0, None, Some(&BINANCE_BTC))
            .unwrap()
            .unwrap();
        assert_eq!(c.quantity, d("0.00333"), "0.003333… rounds down");
        assert_eq!(c.record["raw_quantity"], "0.0033333333333333333333333333");
    }

    #[test]
    fn a_percent_of_equity_needs_the_equity_and_a_quantity_below_the_minimum_gives_the_numbers() {
        let p = Sizing::PercentOfEquity(d("10").try_into().unwrap());
        let c = size(&leg(p, "200"), 0, Some(d("10000")), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.quantity, d("5"));
        assert!(size(&leg(p, "200"), 0, None, None)
            .unwrap_err()
            .starts_with("legs[0].percent_of_equity:"));
        let tiny = Sizing::Notional(d("0.1").try_into().unwrap());
        let err = size(&leg(tiny, "50000"), 0, None, Some(&BINANCE_BTC)).unwrap_err();
        assert!(err.contains("0.000002") && err.contains("0.00001"), "{err}");
    }
}
