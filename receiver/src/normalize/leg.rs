//! One order out of one JSON object: the alert itself (single-order formats) or one of its legs.

use rust_decimal::Decimal;
use serde_json::Value;

use super::fields::{self, Obj};
use super::names;
use super::{symbol, Action, Invalid, Leg, NormalizeContext, Sizing};
use crate::order::{
    ExitSupport, Exits, OrderType, Positive, Price, Product, Quantity, Side, TimeInForce,
};

/// Which format the object is in: it decides the name of the action field and what `price` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// `action`, `limit_price`, and `price` is the reference price.
    Native,
    /// The `order_legs` format: `transactionType`, and `price` is the limit price of `LMT`/`SL`
    /// legs and the reference price of the others (`0` there meaning none).
    OrderLegs,
}

/// What a multi-leg alert's top level supplies to legs that leave it out.
#[derive(Debug, Clone, Default)]
pub(super) struct Defaults {
    /// The top-level symbol (with `exchange`), for legs without `symbol`/`exchange`.
    pub tv_symbol: Option<String>,
    /// The top-level `tif`.
    pub tif: Option<TimeInForce>,
    /// The top-level `price`, the reference price of legs on the top-level symbol only.
    pub price: Option<Price>,
    /// The top-level `productType`.
    pub product: Option<Product>,
    /// The action every leg has, whatever it says (`alertType: "cancel_order"`: cancel).
    pub action: Option<Action>,
}

/// Parses one order.
pub(super) fn parse(
    obj: &Obj<'_>,
    dialect: Dialect,
    defaults: &Defaults,
    ctx: &NormalizeContext<'_>,
) -> Result<Leg, Invalid> {
    // The field an error about the symbol names: the leg's own, or the top-level one it inherited.
    let (symbol_field, tv_symbol) = match tv_symbol(obj)? {
        Some((key, tv)) => (obj.name(key), tv),
        None => match &defaults.tv_symbol {
            Some(tv) => ("symbol".to_owned(), tv.clone()),
            None => return Err(obj.invalid("symbol", "is missing")),
        },
    };
    let venue_symbol = symbol::resolve(&tv_symbol, ctx.symbols, ctx.perpetuals)
        .and_then(|resolved| {
            if ctx.exchange_in_symbol {
                symbol::with_exchange(&tv_symbol, resolved)
            } else {
                Ok(resolved)
            }
        })
        .map_err(|message| Invalid::new(symbol_field, message))?;

    if defaults.action == Some(Action::Cancel) {
        // A cancel_order leg names what to cancel; its order fields describe the orders to
        // cancel and are not checked.
        return Ok(Leg {
            tv_symbol,
            symbol: venue_symbol,
            action: Action::Cancel,
            quantity: None,
            sizing: Sizing::Quantity,
            target_position: None,
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::default(),
            reference_price: None,
            product: None,
            exits: Exits::default(),
        });
    }
    if dialect == Dialect::Native
        && obj.value(names::ACTION, action_value).ok().flatten() == Some(Action::Modify)
    {
        return modify_leg(obj, tv_symbol, venue_symbol);
    }
    let (action_names, type_names, stop_names) = match dialect {
        Dialect::Native => (names::ACTION, names::ORDER_TYPE, names::STOP_PRICE),
        Dialect::OrderLegs => (
            names::ACTION_ORDER_LEGS,
            names::ORDER_TYPE_ORDER_LEGS,
            names::STOP_PRICE_ORDER_LEGS,
        ),
    };
    let target_position = match defaults.action {
        Some(_) => None,
        None => target(obj, ctx)?,
    };
    let (action, quantity, sizing) = match (defaults.action, target_position) {
        (Some(action), _) => (action, None, Sizing::Quantity),
        (None, target_position) => match target_position {
            // The target decides the order: `action` and `quantity` stay in the journal, unused.
            Some(_) => (Action::Target, None, Sizing::Quantity),
            None => {
                let action = obj.required(action_names, action_value)?;
                let (quantity, sizing) = size(obj, action)?;
                (action, quantity, sizing)
            }
        },
    };
    let order_type = obj
        .value(type_names, order_type_value)?
        .unwrap_or(OrderType::Market);
    let tif = obj
        .value(names::TIF, tif_value)?
        .or(defaults.tif)
        .unwrap_or_default();
    let stop = obj.one(stop_names, fields::positive)?;
    let product = obj
        .value(names::PRODUCT, product_value)?
        .or(defaults.product);
    let inherited_price = defaults
        .price
        .filter(|_| defaults.tv_symbol.as_deref() == Some(tv_symbol.as_str()));

    let (limit, reference_price) = match dialect {
        Dialect::Native => {
            let limit = obj.one(names::LIMIT_PRICE, fields::positive)?;
            let reference = obj
                .value(names::PRICE, fields::positive)?
                .or(inherited_price);
            (limit, reference)
        }
        Dialect::OrderLegs if needs_limit(order_type) => {
            // `price` is this leg's limit price; `limit_price` is accepted as the same field.
            let limit = obj.one(&["price", "limit_price"], fields::positive)?;
            (limit, inherited_price)
        }
        Dialect::OrderLegs => {
            // Market and stop legs in this format often carry `"price":"0"`: no reference price.
            let price = obj.value(names::PRICE, fields::non_negative)?;
            let reference = price
                .and_then(|p| Positive::new(p).ok())
                .or(inherited_price);
            (obj.one(names::LIMIT_PRICE, fields::positive)?, reference)
        }
    };
    let limit_name = match dialect {
        Dialect::Native => names::LIMIT_PRICE[0],
        Dialect::OrderLegs => "price",
    };
    let limit_price = check_price(
        obj,
        order_type,
        limit,
        limit_name,
        needs_limit(order_type),
        "limit",
    )?;
    let stop_price = check_price(
        obj,
        order_type,
        stop,
        stop_names[0],
        needs_stop(order_type),
        "stop",
    )?;

    let exits = exits(
        obj,
        action,
        order_type,
        limit_price.or(reference_price),
        ctx,
    )?;
    Ok(Leg {
        tv_symbol,
        symbol: venue_symbol,
        action,
        quantity,
        sizing,
        target_position,
        order_type,
        limit_price,
        stop_price,
        tif,
        reference_price,
        product,
        exits,
    })
}

/// A modify: the new prices, at least one of them.
fn modify_leg(obj: &Obj<'_>, tv_symbol: String, symbol: String) -> Result<Leg, Invalid> {
    let limit_price = obj.value(names::LIMIT_PRICE, fields::positive)?;
    let stop_price = obj.value(names::STOP_PRICE, fields::positive)?;
    let take_profit = obj.value(names::TAKE_PROFIT, fields::positive)?;
    let stop_loss = obj.value(names::STOP_LOSS, fields::positive)?;
    if limit_price.is_none() && stop_price.is_none() && take_profit.is_none() && stop_loss.is_none()
    {
        return Err(obj.invalid(
            names::LIMIT_PRICE[0],
            "a modify needs the new limit_price, stop_price, take_profit or stop_loss",
        ));
    }
    Ok(Leg {
        tv_symbol,
        symbol,
        action: Action::Modify,
        quantity: None,
        sizing: Sizing::Quantity,
        target_position: None,
        order_type: OrderType::Market,
        limit_price,
        stop_price,
        tif: TimeInForce::default(),
        reference_price: obj.value(names::PRICE, fields::positive)?,
        product: None,
        exits: Exits {
            take_profit: take_profit.map(Positive::get),
            stop_loss: stop_loss.map(Positive::get),
        },
    })
}

/// `take_profit` and `stop_loss`: only on an opening buy/sell, on a venue that can attach them,
/// and on the right side of the entry's price (the limit price, else the reference `price`).
fn exits(
    obj: &Obj<'_>,
    action: Action,
    order_type: OrderType,
    entry: Option<Price>,
    ctx: &NormalizeContext<'_>,
) -> Result<Exits, Invalid> {
    let take_profit = obj.one(names::TAKE_PROFIT, fields::positive)?;
    let stop_loss = obj.one(names::STOP_LOSS, fields::positive)?;
    let Some((first, _)) = take_profit.or(stop_loss) else {
        return Ok(Exits::default());
    };
    let Some(side) = action.side() else {
        return Err(obj.invalid(
            first,
            format!(
                "protects an opening buy or sell; a {} cannot carry it",
                action.as_str()
            ),
        ));
    };
    if ctx.exits == ExitSupport::Unsupported {
        return Err(obj.invalid(
            first,
            "this venue cannot attach protective exits (paper, alpaca and binance can); leave it out",
        ));
    }
    if matches!(order_type, OrderType::Stop | OrderType::StopLimit) {
        return Err(obj.invalid(
            first,
            "protects a market or limit entry; a stop entry cannot carry it",
        ));
    }
    let Some(entry) = entry.map(Positive::get) else {
        return Err(obj.invalid(
            names::PRICE[0],
            format!("is needed to check that `{first}` is on the right side of the entry; add \"price\": \"{{{{close}}}}\""),
        ));
    };
    let buy = side == Side::Buy;
    if let Some((key, tp)) = take_profit {
        let tp = tp.get();
        if (buy && tp <= entry) || (!buy && tp >= entry) {
            return Err(obj.invalid(
                key,
                format!(
                    "{} is not {} the entry price {}: a {}'s take-profit is {} it",
                    tp.normalize(),
                    if buy { "above" } else { "below" },
                    entry.normalize(),
                    side.as_str(),
                    if buy { "above" } else { "below" },
                ),
            ));
        }
    }
    if let Some((key, sl)) = stop_loss {
        let sl = sl.get();
        if (buy && sl >= entry) || (!buy && sl <= entry) {
            return Err(obj.invalid(
                key,
                format!(
                    "{} is not {} the entry price {}: a {}'s stop-loss is {} it",
                    sl.normalize(),
                    if buy { "below" } else { "above" },
                    entry.normalize(),
                    side.as_str(),
                    if buy { "below" } else { "above" },
                ),
            ));
        }
    }
    Ok(Exits {
        take_profit: take_profit.map(|(_, p)| p.get()),
        stop_loss: stop_loss.map(|(_, p)| p.get()),
    })
}

/// `target_position` [`position_size`], or `0` for `"sentiment":"flat"` (other sentiments say
/// nothing about the size and are ignored). Both present must agree.
fn target(obj: &Obj<'_>, ctx: &NormalizeContext<'_>) -> Result<Option<Decimal>, Invalid> {
    let given = obj.one(names::TARGET_POSITION, fields::decimal)?;
    let flat = obj
        .value(names::SENTIMENT, lower)?
        .is_some_and(|s| s == "flat");
    let target = match (given, flat) {
        (Some((key, t)), true) if !t.is_zero() => {
            return Err(Invalid::new(
                format!("{}, {}", obj.name(key), obj.name("sentiment")),
                format!(
                    "`sentiment` is flat but `{key}` is {}; give one of them",
                    t.normalize()
                ),
            ))
        }
        (Some((key, t)), _) => Some((key, t)),
        (None, true) => Some(("sentiment", Decimal::ZERO)),
        (None, false) => None,
    };
    let Some((key, target)) = target else {
        return Ok(None);
    };
    if target.is_sign_negative() && !target.is_zero() && !ctx.allow_short {
        return Err(obj.invalid(
            key,
            format!(
                "is {} but this venue cannot hold a short position (spot); use 0 to go flat",
                target.normalize()
            ),
        ));
    }
    for family in [names::NOTIONAL, names::PERCENT_OF_EQUITY] {
        if let Some((other, _)) = obj.present(family).first() {
            return Err(obj.invalid(
                other,
                format!("cannot size a target position (`{key}` is already in base units); leave it out"),
            ));
        }
    }
    Ok(Some(target.normalize()))
}

/// How much a buy/sell (or a partial close) is for: exactly one of `quantity`, `notional` and
/// `percent_of_equity` for buy/sell; only `quantity` (optional) for the close actions.
fn size(obj: &Obj<'_>, action: Action) -> Result<(Option<Quantity>, Sizing), Invalid> {
    let quantity = obj.one(names::QUANTITY, fields::positive)?;
    let notional = obj.one(names::NOTIONAL, fields::positive)?;
    let percent = obj.one(names::PERCENT_OF_EQUITY, fields::positive)?;
    if let Some((key, p)) = percent {
        if p.get() > Decimal::ONE_HUNDRED {
            return Err(obj.invalid(key, format!("is {p}, more than 100 percent of the equity")));
        }
    }
    let given: Vec<&'static str> = [
        quantity.map(|(k, _)| k),
        notional.map(|(k, _)| k),
        percent.map(|(k, _)| k),
    ]
    .into_iter()
    .flatten()
    .collect();
    if action == Action::Cancel {
        return Ok((None, Sizing::Quantity));
    }
    if action.is_close() {
        if let Some(key) = given.iter().find(|k| !names::QUANTITY.contains(k)) {
            return Err(obj.invalid(
                key,
                format!(
                    "sizes buy and sell only; a {} takes `quantity` or nothing",
                    action.as_str()
                ),
            ));
        }
        return Ok((quantity.map(|(_, q)| q), Sizing::Quantity));
    }
    match given.as_slice() {
        [] => Err(obj.invalid(
            names::QUANTITY[0],
            format!(
                "is missing (required to {}, or `notional` / `percent_of_equity` instead; only \
                 close actions may leave it out)",
                action.as_str()
            ),
        )),
        [first, second, ..] => Err(obj.invalid(
            second,
            format!(
                "give one of quantity, notional and percent_of_equity (`{first}` is given too)"
            ),
        )),
        [_] => Ok(match (quantity, notional, percent) {
            (Some((_, q)), _, _) => (Some(q), Sizing::Quantity),
            (None, Some((_, n)), _) => (None, Sizing::Notional(n)),
            (None, None, Some((_, p))) => (None, Sizing::PercentOfEquity(p)),
            (None, None, None) => (None, Sizing::Quantity),
        }),
    }
}

/// The symbol as sent: `symbol` (or `ticker`), prefixed with `exchange` when that is given and the
/// symbol is bare. Returns the key that held the symbol, for error messages.
pub(super) fn tv_symbol(obj: &Obj<'_>) -> Result<Option<(&'static str, String)>, Invalid> {
    let found = obj.one(names::SYMBOL, fields::text)?;
    let exchange = obj.value(names::EXCHANGE, fields::text)?;
    match (found, exchange) {
        (None, None) => Ok(None),
        (None, Some(_)) => {
            Err(obj.invalid("symbol", "is missing (`exchange` is given without it)"))
        }
        (Some((key, sym)), None) => Ok(Some((key, sym))),
        (Some((key, sym)), Some(exchange)) => match sym.split_once(':') {
            None => Ok(Some((key, format!("{exchange}:{sym}")))),
            Some((own, _)) if own == exchange => Ok(Some((key, sym))),
            Some(_) => Err(Invalid::new(
                format!("{}, {}", obj.name("exchange"), obj.name(key)),
                format!("`exchange` is `{exchange}` but `{key}` names another exchange (`{sym}`)"),
            )),
        },
    }
}

fn needs_limit(t: OrderType) -> bool {
    matches!(t, OrderType::Limit | OrderType::StopLimit)
}

fn needs_stop(t: OrderType) -> bool {
    matches!(t, OrderType::Stop | OrderType::StopLimit)
}

/// A limit or stop price must be given exactly when the order type uses it. A price the order type
/// would ignore is refused rather than dropped: it usually means the order type is not the one the
/// user meant (a limit order sent as market would fill at any price).
fn check_price(
    obj: &Obj<'_>,
    order_type: OrderType,
    found: Option<(&'static str, Price)>,
    canonical: &str,
    needed: bool,
    kind: &str,
) -> Result<Option<Price>, Invalid> {
    match (found, needed) {
        (Some((_, p)), true) => Ok(Some(p)),
        (None, false) => Ok(None),
        (None, true) => Err(obj.invalid(
            canonical,
            format!("is missing (a {} order needs a {kind} price)", order_type.as_str()),
        )),
        (Some((key, _)), false) => Err(obj.invalid(
            key,
            format!(
                "is not used by a {} order; set the order type that uses a {kind} price, or leave it out",
                order_type.as_str()
            ),
        )),
    }
}

fn lower(v: &Value) -> Result<String, String> {
    Ok(fields::text(v)?.to_ascii_lowercase())
}

/// Action values, any case. `long`/`short` are refused: they are what
/// `{{strategy.market_position}}` gives, the position *after* the order, which does not say whether
/// this order bought or sold (reducing a long is a sell while the position is still `long`).
pub(super) fn action_value(v: &Value) -> Result<Action, String> {
    let s = lower(v)?;
    Ok(match s.as_str() {
        "buy" | "b" | "back" | "open_long" => Action::Buy,
        "sell" | "s" | "lay" | "open_short" => Action::Sell,
        "close" | "exit" | "flat" | "flatten" => Action::Close,
        "close_long" => Action::CloseLong,
        "close_short" => Action::CloseShort,
        "cancel" | "cancel_order" | "cancel_all" => Action::Cancel,
        "modify" | "replace" | "amend" => Action::Modify,
        "long" | "short" => {
            return Err(format!(
                "`{s}` describes a position, not an order; use {{{{strategy.order.action}}}} \
                 (buy/sell), open_long/open_short or close_long/close_short"
            ))
        }
        _ => {
            return Err(format!(
            "`{}` is not an action; use buy, sell, close, close_long, close_short, cancel, modify \
                 (or an alias: B/S, BACK/LAY, open_long/open_short, exit/flat/flatten)",
            shorten(&s)
        ))
        }
    })
}

/// Order type values, any case; `-` and spaces count as `_`.
pub(super) fn order_type_value(v: &Value) -> Result<OrderType, String> {
    let s = lower(v)?.replace(['-', ' '], "_");
    Ok(match s.as_str() {
        "market" | "mkt" => OrderType::Market,
        "limit" | "lmt" => OrderType::Limit,
        "stop" | "stop_market" | "sl_m" => OrderType::Stop,
        "stop_limit" | "stoplimit" | "sl" => OrderType::StopLimit,
        _ => {
            return Err(format!(
                "`{}` is not an order type; use market, limit, stop or stop_limit (or MKT, LMT, SL-M, SL)",
                shorten(&s)
            ))
        }
    })
}

/// Time in force values, any case.
pub(super) fn tif_value(v: &Value) -> Result<TimeInForce, String> {
    let s = lower(v)?;
    Ok(match s.as_str() {
        "gtc" => TimeInForce::Gtc,
        "day" => TimeInForce::Day,
        "ioc" => TimeInForce::Ioc,
        "fok" => TimeInForce::Fok,
        _ => {
            return Err(format!(
                "`{}` is not a time in force; use gtc, day, ioc or fok",
                shorten(&s)
            ))
        }
    })
}

/// Product values, any case: the `order_legs` format's letters and Kite's names.
pub(super) fn product_value(v: &Value) -> Result<Product, String> {
    let s = lower(v)?;
    Ok(match s.as_str() {
        "c" | "cnc" => Product::Cnc,
        "i" | "mis" => Product::Mis,
        "m" | "nrml" => Product::Nrml,
        _ => {
            return Err(format!(
                "`{}` is not a product type; use C (CNC, delivery), I (MIS, intraday) or M (NRML, \
                 futures and options carried overnight)",
                shorten(&s)
            ))
        }
    })
}

/// At most 40 characters of a user value, for messages.
fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}
