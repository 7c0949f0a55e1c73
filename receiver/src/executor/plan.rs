//! Planning: from a message's normalized legs and the current positions to the orders to place,
//! or the reason there are none. Pure: no I/O, no clock, no shared state, so every rule about
//! what an alert means in orders is here and testable on its own.
//!
//! A plan is a list of [`Intent`]s, each with a [`IntentKind`]. A buy/sell leg becomes one
//! `open` (its quantity computed by [`super::sizing`] when given as a notional or a percent of
//! equity), a close action one `close`, and a target position the difference: one `close` when
//! it reduces, one `open` when it adds, and a `close` then an `open` when it reverses through
//! zero, the open marked to wait for the close's fill ([`OrderRecord::waits_for_fill`]).
//! Cancels and protective exits are further kinds of the same list.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde_json::json;

use super::{client_order_id, client_order_id_part, sizing};
use crate::broker::LotRule;
use crate::journal::{OrderRecord, OrderState};
use crate::normalize::{Action, Leg};
use crate::order::{ExitSupport, Exits, OrderType, Positive, Side, TimeInForce};
use crate::risk::Candidate;

/// What the plan is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The message id (the root of every client order id).
    pub message_id: &'a str,
    /// The envelope's account.
    pub account: &'a str,
    /// The venue's name, recorded on each order.
    pub venue: &'a str,
    /// Now (unix ms): the orders' creation time.
    pub now_ms: i64,
    /// The normalized legs, in alert order.
    pub legs: &'a [Leg],
    /// The account's equity as the venue reports it (`percent_of_equity`); `None`: unknown.
    pub equity: Option<Decimal>,
    /// The venue's lot rule per symbol (computed quantities round down to it).
    pub lots: &'a HashMap<String, LotRule>,
    /// Where the positions come from (`venue` or `journal`), recorded with target orders.
    pub position_source: &'a str,
    /// How the venue attaches protective exits: to the entry, or as orders of their own.
    pub exits: ExitSupport,
    /// For a copy: its scale (the legs are already scaled; plain quantities round down to the
    /// lot step).
    pub scale: Option<Decimal>,
}

/// What an intent does to a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentKind {
    /// A buy or sell: opens or adds to a position (the size gates apply).
    Open,
    /// Reduces a position towards zero, never through it.
    Close,
}

/// One order the plan wants placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// What it does to the position.
    pub kind: IntentKind,
    /// The symbol as the alert wrote it (the risk gates accept either name).
    pub tv_symbol: String,
    /// The price the notional gate checks: limit, else reference, else stop price.
    pub price: Option<Decimal>,
    /// The signed position after this order and the alert's earlier legs.
    pub position_after: Decimal,
    /// The order as it is journaled (status `new`) before it is placed.
    pub order: OrderRecord,
}

impl Intent {
    /// How the risk gates see this intent.
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            symbol: &self.order.symbol,
            tv_symbol: &self.tv_symbol,
            quantity: self.order.quantity,
            price: self.price,
            opening: self.kind == IntentKind::Open,
            position_after: self.position_after,
        }
    }
}

/// What a message's legs come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Orders to gate, journal and place, in leg order.
    Orders(Vec<Intent>),
    /// Every leg was a close with nothing to close (outcome `filled`, reason
    /// [`super::NOTHING_TO_CLOSE`]).
    NothingToClose,
    /// Every target leg is already at its target and nothing else is to do (outcome `filled`,
    /// reason [`super::ALREADY_AT_TARGET`]).
    AlreadyAtTarget,
    /// The legs cannot be executed as written (outcome `invalid`); names the field.
    Invalid(String),
}

/// `true` when `order` may only reduce its position (a close, the close part of a target, a
/// protective exit), read from what the plan journaled with it, so it holds after a restart.
pub fn reduces_only(order: &OrderRecord) -> bool {
    if order.parent.is_some() {
        return true;
    }
    let Some(sizing) = order
        .sizing
        .as_deref()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    else {
        return false;
    };
    match sizing["method"].as_str() {
        Some("close") => true,
        Some("target") => sizing["part"] == "close",
        _ => false,
    }
}

/// The signed quantity of a side (buy positive).
pub fn signed(side: Side, quantity: Decimal) -> Decimal {
    match side {
        Side::Buy => quantity,
        Side::Sell => -quantity,
    }
}

/// The side that moves a position by `delta` (positive: buy).
fn side_of(delta: Decimal) -> Side {
    if delta > Decimal::ZERO {
        Side::Buy
    } else {
        Side::Sell
    }
}

/// One order of a leg before it becomes an [`Intent`].
struct Part {
    kind: IntentKind,
    side: Side,
    quantity: Decimal,
    sizing: Option<serde_json::Value>,
    waits_for_fill: bool,
}

/// The parts that move `position` to `target`: none, one, or a close then an open.
fn target_parts(
    request: &Request<'_>,
    leg: &Leg,
    index: usize,
    position: Decimal,
    target: Decimal,
) -> Result<Vec<Part>, String> {
    let lot = request.lots.get(&leg.symbol);
    let record = |part: &str, quantity: Decimal| {
        json!({"method": "target", "target": target.normalize().to_string(),
               "position": position.normalize().to_string(),
               "position_source": request.position_source, "part": part,
               "quantity": quantity.normalize().to_string()})
    };
    let what = |q: Decimal| {
        format!(
            "the difference to target {} from {}",
            target.normalize(),
            q.normalize()
        )
    };
    let reverses = !position.is_zero()
        && !target.is_zero()
        && (position > Decimal::ZERO) != (target > Decimal::ZERO);
    let mut parts = Vec::new();
    let moves: Vec<(IntentKind, Decimal, &str)> = if reverses {
        vec![
            (IntentKind::Close, -position, "close"),
            (IntentKind::Open, target, "open"),
        ]
    } else if target.abs() < position.abs() || target.is_zero() {
        vec![(IntentKind::Close, target - position, "close")]
    } else {
        vec![(IntentKind::Open, target - position, "open")]
    };
    for (kind, delta, name) in moves {
        let field = format!("legs[{index}].target_position");
        let rounded = sizing::round(delta.abs(), lot, &leg.symbol, &what(position))
            .map_err(|e| format!("{field}: {e}"))?;
        let Some(quantity) = rounded else { continue };
        let waits = name == "open" && !parts.is_empty();
        parts.push(Part {
            kind,
            side: side_of(delta),
            quantity,
            sizing: Some(record(name, quantity)),
            waits_for_fill: waits,
        });
    }
    Ok(parts)
}

/// The protective exits of `entry` as orders of their own: a take-profit limit and a stop-loss
/// stop on the other side, for the entry's quantity, each waiting for the entry to fill
/// ([`OrderRecord::parent`]) and cancelling the other when it fills. Client ids follow the
/// entry's (`{message}-{leg}o1`, `o2`), so a retry or a restart never makes a second pair.
fn exit_intents(request: &Request<'_>, leg: &Leg, leg_index: u32, entry: &Intent) -> Vec<Intent> {
    let side = match entry.order.side {
        Side::Buy => Side::Sell,
        Side::Sell => Side::Buy,
    };
    let Exits {
        take_profit,
        stop_loss,
    } = leg.exits;
    let kinds = [
        (take_profit, OrderType::Limit),
        (stop_loss, OrderType::Stop),
    ];
    let mut out = Vec::new();
    for (n, (price, order_type)) in kinds.into_iter().enumerate() {
        let Some(price) = price else { continue };
        let mut order = entry.order.clone();
        order.client_order_id = client_order_id_part(request.message_id, leg_index, n + 1);
        order.side = side;
        order.order_type = order_type;
        (order.limit_price, order.stop_price) = match order_type {
            OrderType::Limit => (Some(price), None),
            _ => (None, Some(price)),
        };
        order.tif = TimeInForce::Gtc;
        order.sizing = None;
        order.waits_for_fill = false;
        order.exits = Exits::default();
        order.parent = Some(entry.order.client_order_id.clone());
        out.push(Intent {
            kind: IntentKind::Close,
            tv_symbol: entry.tv_symbol.clone(),
            price: Some(price),
            position_after: entry.position_after,
            order,
        });
    }
    out
}

/// Plans `request.legs` against `positions` (signed, per venue symbol of `request.account`;
/// a symbol missing from the map is flat). Later legs see the positions earlier legs leave.
pub fn plan(request: &Request<'_>, positions: &HashMap<String, Decimal>) -> Plan {
    let mut after: HashMap<&str, Decimal> = HashMap::new();
    let mut intents = Vec::with_capacity(request.legs.len());
    let mut targets = 0usize;
    for (i, leg) in request.legs.iter().enumerate() {
        let position = after
            .get(leg.symbol.as_str())
            .or_else(|| positions.get(&leg.symbol))
            .copied()
            .unwrap_or(Decimal::ZERO);
        let mut wanted = leg.quantity.map(Positive::get);
        let mut copy_record = None;
        if let (Some(scale), Some(q), false) = (request.scale, wanted, leg.action == Action::Target)
        {
            let lot = request.lots.get(&leg.symbol);
            match sizing::scaled_quantity(q, scale, i, &leg.symbol, lot) {
                Ok(c) => {
                    wanted = Some(c.quantity);
                    copy_record = Some(c.record);
                }
                Err(reason) => return Plan::Invalid(reason),
            }
        }
        let parts = match leg.action {
            Action::Cancel | Action::Modify => {
                return Plan::Invalid(format!(
                    "legs[{i}].action: a {} cannot share an alert with orders",
                    leg.action.as_str()
                ))
            }
            Action::Buy | Action::Sell => {
                let side = if leg.action == Action::Buy {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let (quantity, record) =
                    match sizing::size(leg, i, request.equity, request.lots.get(&leg.symbol)) {
                        Err(reason) => return Plan::Invalid(reason),
                        Ok(Some(c)) => (c.quantity, Some(c.record)),
                        Ok(None) => match wanted {
                            Some(q) => (q, copy_record.clone()),
                            None => {
                                return Plan::Invalid(format!(
                                    "legs[{i}].quantity: required for buy and sell"
                                ))
                            }
                        },
                    };
                vec![Part {
                    kind: IntentKind::Open,
                    side,
                    quantity,
                    sizing: record,
                    waits_for_fill: false,
                }]
            }
            Action::Close | Action::CloseLong | Action::CloseShort => {
                let applies = match leg.action {
                    Action::CloseLong => position > Decimal::ZERO,
                    Action::CloseShort => position < Decimal::ZERO,
                    _ => !position.is_zero(),
                };
                if !applies {
                    Vec::new()
                } else {
                    let held = position.abs();
                    let quantity = wanted.map_or(held, |w| w.min(held));
                    vec![Part {
                        kind: IntentKind::Close,
                        side: side_of(-position),
                        quantity,
                        sizing: Some(json!({"method": "close",
                            "position": position.normalize().to_string(),
                            "position_source": request.position_source,
                            "quantity": quantity.normalize().to_string()})),
                        waits_for_fill: false,
                    }]
                }
            }
            Action::Target => {
                targets += 1;
                let target = leg.target_position.unwrap_or(Decimal::ZERO);
                match target_parts(request, leg, i, position, target) {
                    Ok(parts) => parts,
                    Err(reason) => return Plan::Invalid(reason),
                }
            }
        };
        let leg_index = u32::try_from(i).unwrap_or(u32::MAX);
        let mut position_after = position;
        for (n, part) in parts.into_iter().enumerate() {
            position_after += signed(part.side, part.quantity);
            let price = leg
                .limit_price
                .or(leg.reference_price)
                .or(leg.stop_price)
                .map(Positive::get);
            let client_order_id = if n == 0 {
                client_order_id(request.message_id, leg_index)
            } else {
                client_order_id_part(request.message_id, leg_index, n)
            };
            intents.push(Intent {
                kind: part.kind,
                tv_symbol: leg.tv_symbol.clone(),
                price,
                position_after,
                order: OrderRecord {
                    client_order_id,
                    message_id: request.message_id.to_owned(),
                    leg: leg_index,
                    account: request.account.to_owned(),
                    symbol: leg.symbol.clone(),
                    side: part.side,
                    quantity: part.quantity,
                    order_type: leg.order_type,
                    limit_price: leg.limit_price.map(Positive::get),
                    stop_price: leg.stop_price.map(Positive::get),
                    tif: leg.tif,
                    reference_price: leg.reference_price.map(Positive::get),
                    product: leg.product,
                    status: OrderState::New,
                    venue: request.venue.to_owned(),
                    venue_order_id: None,
                    filled_quantity: Decimal::ZERO,
                    average_price: None,
                    error: None,
                    sizing: part.sizing.map(|v| v.to_string()),
                    waits_for_fill: part.waits_for_fill,
                    exits: Default::default(),
                    parent: None,
                    created_at_ms: request.now_ms,
                    updated_at_ms: request.now_ms,
                },
            });
        }
        if !leg.exits.is_empty() {
            if let Some(entry) = intents.last_mut() {
                match request.exits {
                    ExitSupport::Attached => entry.order.exits = leg.exits,
                    ExitSupport::Orders | ExitSupport::Oco => {
                        let exits = exit_intents(request, leg, leg_index, entry);
                        intents.extend(exits);
                    }
                    // Normalization refuses exits for such a venue.
                    ExitSupport::Unsupported => {}
                }
            }
        }
        after.insert(&leg.symbol, position_after);
    }
    if !intents.is_empty() {
        Plan::Orders(intents)
    } else if targets > 0 {
        Plan::AlreadyAtTarget
    } else {
        Plan::NothingToClose
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{OrderType, TimeInForce};

    fn leg(symbol: &str, action: Action, quantity: Option<u32>) -> Leg {
        Leg {
            tv_symbol: format!("X:{symbol}"),
            symbol: symbol.into(),
            action,
            quantity: quantity.map(|q| Positive::new(Decimal::from(q)).unwrap()),
            sizing: crate::normalize::Sizing::Quantity,
            target_position: None,
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: Some("10".parse().unwrap()),
            product: None,
            exits: Default::default(),
        }
    }

    fn plan_for(legs: &[Leg], positions: &[(&str, i64)]) -> Plan {
        let positions = positions
            .iter()
            .map(|(s, q)| ((*s).to_owned(), Decimal::from(*q)))
            .collect();
        let lots = HashMap::new();
        let request = Request {
            message_id: "msg_1",
            account: "main",
            venue: "paper",
            now_ms: 7,
            legs,
            equity: None,
            lots: &lots,
            position_source: "journal",
            exits: ExitSupport::Orders,
            scale: None,
        };
        plan(&request, &positions)
    }

    fn target(symbol: &str, t: i64) -> Leg {
        Leg {
            action: Action::Target,
            target_position: Some(Decimal::from(t)),
            ..leg(symbol, Action::Target, None)
        }
    }

    #[test]
    fn a_target_places_the_difference_and_a_reversal_is_a_close_then_an_open_that_waits() {
        let up = intents(plan_for(&[target("AAA", 3)], &[("AAA", 1)]));
        assert_eq!(up.len(), 1);
        assert_eq!(
            (up[0].kind, up[0].order.side, up[0].order.quantity),
            (IntentKind::Open, Side::Buy, Decimal::from(2))
        );
        let down = intents(plan_for(&[target("AAA", 1)], &[("AAA", 3)]));
        assert_eq!(
            (down[0].kind, down[0].order.side, down[0].order.quantity),
            (IntentKind::Close, Side::Sell, Decimal::from(2))
        );
        let flip = intents(plan_for(&[target("AAA", -1)], &[("AAA", 2)]));
        let parts: Vec<_> = flip
            .iter()
            .map(|i| {
                (
                    i.kind,
                    i.order.side,
                    i.order.quantity,
                    i.order.waits_for_fill,
                    i.order.client_order_id.as_str(),
                )
            })
            .collect();
        assert_eq!(
            parts,
            [
                (
                    IntentKind::Close,
                    Side::Sell,
                    Decimal::from(2),
                    false,
                    "msg_1-0"
                ),
                (
                    IntentKind::Open,
                    Side::Sell,
                    Decimal::from(1),
                    true,
                    "msg_1-0o1"
                ),
            ]
        );
        assert_eq!(flip[1].position_after, Decimal::from(-1));
        let sizing: serde_json::Value =
            serde_json::from_str(flip[0].order.sizing.as_deref().unwrap()).unwrap();
        assert_eq!(
            (
                sizing["method"].as_str(),
                sizing["position"].as_str(),
                sizing["part"].as_str()
            ),
            (Some("target"), Some("2"), Some("close"))
        );
    }

    #[test]
    fn a_target_already_reached_plans_nothing() {
        assert_eq!(
            plan_for(&[target("AAA", 2)], &[("AAA", 2)]),
            Plan::AlreadyAtTarget
        );
        assert_eq!(plan_for(&[target("AAA", 0)], &[]), Plan::AlreadyAtTarget);
    }

    fn intents(plan: Plan) -> Vec<Intent> {
        match plan {
            Plan::Orders(intents) => intents,
            other => panic!("expected orders, got {other:?}"),
        }
    }

    #[test]
    fn a_buy_opens_with_its_quantity_and_a_deterministic_client_order_id() {
        let planned = intents(plan_for(&[leg("AAA", Action::Buy, Some(2))], &[]));
        assert_eq!(planned.len(), 1);
        let intent = &planned[0];
        assert_eq!(intent.kind, IntentKind::Open);
        assert_eq!(intent.position_after, Decimal::from(2));
        assert_eq!(intent.price, Some(Decimal::from(10)));
        let o = &intent.order;
        assert_eq!(
            (o.client_order_id.as_str(), o.side, o.quantity, o.status),
            ("msg_1-0", Side::Buy, Decimal::from(2), OrderState::New)
        );
        assert_eq!((o.venue.as_str(), o.created_at_ms), ("paper", 7));
    }

    #[test]
    fn a_buy_or_sell_without_a_quantity_is_invalid_and_names_the_leg() {
        let legs = [
            leg("AAA", Action::Buy, Some(1)),
            leg("BBB", Action::Sell, None),
        ];
        assert_eq!(
            plan_for(&legs, &[]),
            Plan::Invalid("legs[1].quantity: required for buy and sell".into())
        );
    }

    #[test]
    fn a_close_while_flat_is_nothing_to_close() {
        let legs = [
            leg("AAA", Action::Close, None),
            leg("BBB", Action::CloseLong, None),
        ];
        assert_eq!(plan_for(&legs, &[("BBB", -3)]), Plan::NothingToClose);
    }

    #[test]
    fn a_close_takes_the_held_quantity_at_most_and_never_flips_the_position() {
        let whole = intents(plan_for(&[leg("AAA", Action::Close, None)], &[("AAA", -3)]));
        assert_eq!(
            (whole[0].kind, whole[0].order.side, whole[0].order.quantity),
            (IntentKind::Close, Side::Buy, Decimal::from(3))
        );
        assert!(whole[0].position_after.is_zero());
        let capped = intents(plan_for(
            &[leg("AAA", Action::Close, Some(9))],
            &[("AAA", 4)],
        ));
        assert_eq!(
            (capped[0].order.side, capped[0].order.quantity),
            (Side::Sell, Decimal::from(4))
        );
        let part = intents(plan_for(
            &[leg("AAA", Action::Close, Some(1))],
            &[("AAA", 4)],
        ));
        assert_eq!(part[0].position_after, Decimal::from(3));
    }

    #[test]
    fn later_legs_see_the_position_earlier_legs_leave_and_skipped_legs_keep_their_index() {
        let legs = [
            leg("AAA", Action::CloseShort, None),
            leg("AAA", Action::Buy, Some(2)),
            leg("AAA", Action::CloseLong, None),
        ];
        let planned = intents(plan_for(&legs, &[("AAA", 1)]));
        let ids: Vec<&str> = planned
            .iter()
            .map(|i| i.order.client_order_id.as_str())
            .collect();
        assert_eq!(ids, ["msg_1-1", "msg_1-2"]);
        assert_eq!(planned[1].order.quantity, Decimal::from(3));
        assert!(planned[1].position_after.is_zero());
        assert!(!planned[1].candidate().opening);
        assert!(planned[0].candidate().opening);
    }

    #[test]
    fn exactly_the_closing_orders_are_reduce_only_as_read_back_from_the_journal() {
        let close = intents(plan_for(&[leg("AAA", Action::Close, None)], &[("AAA", 2)]));
        let flip = intents(plan_for(&[target("AAA", -1)], &[("AAA", 2)]));
        let add = intents(plan_for(&[target("AAA", 3)], &[("AAA", 2)]));
        let buy = intents(plan_for(
            &[leg("AAA", Action::Buy, Some(1))],
            &[("AAA", -2)],
        ));
        let reduce = |i: &[Intent]| i.iter().map(|i| reduces_only(&i.order)).collect::<Vec<_>>();
        assert_eq!(reduce(&close), [true]);
        assert_eq!(
            reduce(&flip),
            [true, false],
            "the close, then the plain open"
        );
        assert_eq!(reduce(&add), [false]);
        assert_eq!(
            reduce(&buy),
            [false],
            "a buy is an order of its own, never reduce-only"
        );
        for planned in [&close, &flip] {
            assert_eq!(
                planned
                    .iter()
                    .map(|i| i.kind == IntentKind::Close)
                    .collect::<Vec<_>>(),
                reduce(planned),
                "reduce-only is the plan's close kind"
            );
        }
    }
}
