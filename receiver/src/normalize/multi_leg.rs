//! Multi-leg alerts: the native `legs` array and the `{"alertType":"multi_leg_order",
//! "order_legs":[...]}` format.
//!
//! Legs are validated in the order they were sent (errors name the first bad one by its position
//! as sent, `order_legs[2].quantity`), then put in `sort_order` when the legs carry one. The top
//! level may give `symbol`/`exchange`, `tif` and `price` as defaults for the legs; order fields
//! (action, quantity, order type, limit and stop prices) at the top level are refused next to legs,
//! because it would be unclear whether they are one more order or defaults.

use rust_decimal::Decimal;
use serde_json::Value;

use super::fields::{self, Obj};
use super::leg::{self, Defaults, Dialect};
use super::{names, Invalid, Leg, NormalizeContext, MAX_LEGS};

/// The legs array of a multi-leg alert and its format.
#[derive(Debug, Clone, Copy)]
pub(super) struct LegList<'a> {
    key: &'static str,
    dialect: Dialect,
    items: &'a [Value],
    /// `alertType: "cancel_order"`: every leg cancels its symbol's open orders.
    cancel: bool,
}

/// Finds the legs array, if the alert is multi-leg.
pub(super) fn find<'a>(top: &Obj<'a>) -> Result<Option<LegList<'a>>, Invalid> {
    let alert_type = top.value(&[names::ALERT_TYPE], fields::text)?;
    if let Some(t) = &alert_type {
        if !t.eq_ignore_ascii_case("multi_leg_order") && !t.eq_ignore_ascii_case("cancel_order") {
            return Err(top.invalid(
                names::ALERT_TYPE,
                format!(
                    "`{}` is not supported; the alert types are multi_leg_order and cancel_order",
                    short(t)
                ),
            ));
        }
    }
    let cancel = alert_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("cancel_order"));
    let legs = top.map.get(names::LEGS).filter(|v| !fields::is_absent(v));
    let order_legs = top
        .map
        .get(names::ORDER_LEGS)
        .filter(|v| !fields::is_absent(v));
    let (key, dialect, value) = match (legs, order_legs) {
        (Some(_), Some(_)) => {
            return Err(Invalid::new(
                format!("{}, {}", names::LEGS, names::ORDER_LEGS),
                "give either `legs` or `order_legs`, not both",
            ))
        }
        (Some(_), None) if alert_type.is_some() => {
            return Err(top.invalid(
                names::ORDER_LEGS,
                "is missing (alertType multi_leg_order uses `order_legs`, not `legs`)",
            ))
        }
        (None, None) if alert_type.is_some() => {
            return Err(top.invalid(
                names::ORDER_LEGS,
                "is missing (required by alertType multi_leg_order)",
            ))
        }
        (None, None) => return Ok(None),
        (Some(v), None) => (names::LEGS, Dialect::Native, v),
        (None, Some(v)) => (names::ORDER_LEGS, Dialect::OrderLegs, v),
    };
    let Value::Array(items) = value else {
        return Err(top.invalid(key, "must be an array of leg objects"));
    };
    if items.is_empty() {
        return Err(top.invalid(key, "must contain at least one leg"));
    }
    if items.len() > MAX_LEGS {
        return Err(top.invalid(
            key,
            format!(
                "has {} legs; at most {MAX_LEGS} are accepted in one alert",
                items.len()
            ),
        ));
    }
    Ok(Some(LegList {
        key,
        dialect,
        items,
        cancel,
    }))
}

/// Parses every leg and returns them in execution order.
pub(super) fn parse(
    top: &Obj<'_>,
    list: LegList<'_>,
    ctx: &NormalizeContext<'_>,
) -> Result<Vec<Leg>, Invalid> {
    let defaults = defaults(top, list)?;
    let mut parsed: Vec<(Option<Decimal>, Leg)> = Vec::with_capacity(list.items.len());
    let mut sort_missing: Option<String> = None;
    for (i, item) in list.items.iter().enumerate() {
        let prefix = format!("{}[{i}].", list.key);
        let Value::Object(map) = item else {
            return Err(Invalid::new(
                format!("{}[{i}]", list.key),
                "must be an object",
            ));
        };
        let obj = Obj {
            map,
            prefix: &prefix,
        };
        let sort_order = obj.value(names::SORT_ORDER, fields::decimal)?;
        if sort_order.is_none() && sort_missing.is_none() {
            sort_missing = Some(obj.name(names::SORT_ORDER[0]));
        }
        parsed.push((sort_order, leg::parse(&obj, list.dialect, &defaults, ctx)?));
    }
    let any_sorted = parsed.iter().any(|(s, _)| s.is_some());
    if let (true, Some(field)) = (any_sorted, sort_missing) {
        return Err(Invalid::new(
            field,
            "is missing while other legs have one; give sort_order on every leg or on none",
        ));
    }
    // Stable: legs with equal sort_order keep the order they were sent in.
    parsed.sort_by_key(|(s, _)| *s);
    Ok(parsed.into_iter().map(|(_, leg)| leg).collect())
}

/// Top-level defaults, after refusing top-level order fields.
fn defaults(top: &Obj<'_>, list: LegList<'_>) -> Result<Defaults, Invalid> {
    let per_leg = [
        names::ACTION_ORDER_LEGS,
        names::QUANTITY,
        names::ORDER_TYPE,
        names::LIMIT_PRICE,
        names::STOP_PRICE,
    ];
    for family in per_leg {
        if let Some((key, _)) = top.present(family).first() {
            return Err(top.invalid(
                key,
                format!(
                    "belongs in each leg when `{}` is given, not at the top level",
                    list.key
                ),
            ));
        }
    }
    Ok(Defaults {
        tv_symbol: leg::tv_symbol(top)?.map(|(_, tv)| tv),
        tif: top.value(names::TIF, leg::tif_value)?,
        price: top.value(names::PRICE, fields::positive)?,
        product: top.value(names::PRODUCT, leg::product_value)?,
        action: list.cancel.then_some(super::Action::Cancel),
    })
}

fn short(s: &str) -> String {
    s.chars().take(40).collect()
}
