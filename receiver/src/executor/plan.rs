//! Planning: from a message's normalized legs and the current positions to the orders to place,
//! or the reason there are none. Pure: no I/O, no clock, no shared state, so every rule about
//! what an alert means in orders is here and testable on its own.
//!
//! A plan is a list of [`Intent`]s, each with a [`IntentKind`]. Today a leg becomes at most one
//! intent (`open` for buy/sell, `close` for the close actions); target positions (place the
//! difference, a reversal as a close then an open), cancels and protective exits are further
//! kinds of the same list.

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::client_order_id;
use crate::journal::{OrderRecord, OrderState};
use crate::normalize::{Action, Leg};
use crate::order::{Positive, Side};
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
    /// The legs cannot be executed as written (outcome `invalid`); names the field.
    Invalid(String),
}

/// The signed quantity of a side (buy positive).
pub fn signed(side: Side, quantity: Decimal) -> Decimal {
    match side {
        Side::Buy => quantity,
        Side::Sell => -quantity,
    }
}

/// Plans `request.legs` against `positions` (signed, per venue symbol of `request.account`;
/// a symbol missing from the map is flat). Later legs see the positions earlier legs leave.
pub fn plan(request: &Request<'_>, positions: &HashMap<String, Decimal>) -> Plan {
    let mut after: HashMap<&str, Decimal> = HashMap::new();
    let mut intents = Vec::with_capacity(request.legs.len());
    for (i, leg) in request.legs.iter().enumerate() {
        let position = after
            .get(leg.symbol.as_str())
            .or_else(|| positions.get(&leg.symbol))
            .copied()
            .unwrap_or(Decimal::ZERO);
        let wanted = leg.quantity.map(Positive::get);
        let (kind, side, quantity) = match leg.action {
            Action::Buy | Action::Sell => {
                let side = if leg.action == Action::Buy {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let Some(q) = wanted else {
                    return Plan::Invalid(format!("legs[{i}].quantity: required for buy and sell"));
                };
                (IntentKind::Open, side, q)
            }
            Action::Close | Action::CloseLong | Action::CloseShort => {
                let applies = match leg.action {
                    Action::CloseLong => position > Decimal::ZERO,
                    Action::CloseShort => position < Decimal::ZERO,
                    _ => !position.is_zero(),
                };
                if !applies {
                    after.insert(&leg.symbol, position);
                    continue;
                }
                let side = if position > Decimal::ZERO {
                    Side::Sell
                } else {
                    Side::Buy
                };
                let held = position.abs();
                (
                    IntentKind::Close,
                    side,
                    wanted.map_or(held, |w| w.min(held)),
                )
            }
        };
        let position_after = position + signed(side, quantity);
        after.insert(&leg.symbol, position_after);
        let leg_index = u32::try_from(i).unwrap_or(u32::MAX);
        let price = leg
            .limit_price
            .or(leg.reference_price)
            .or(leg.stop_price)
            .map(Positive::get);
        intents.push(Intent {
            kind,
            tv_symbol: leg.tv_symbol.clone(),
            price,
            position_after,
            order: OrderRecord {
                client_order_id: client_order_id(request.message_id, leg_index),
                message_id: request.message_id.to_owned(),
                leg: leg_index,
                account: request.account.to_owned(),
                symbol: leg.symbol.clone(),
                side,
                quantity,
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
                created_at_ms: request.now_ms,
                updated_at_ms: request.now_ms,
            },
        });
    }
    if intents.is_empty() {
        Plan::NothingToClose
    } else {
        Plan::Orders(intents)
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
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: Some("10".parse().unwrap()),
            product: None,
        }
    }

    fn plan_for(legs: &[Leg], positions: &[(&str, i64)]) -> Plan {
        let positions = positions
            .iter()
            .map(|(s, q)| ((*s).to_owned(), Decimal::from(*q)))
            .collect();
        let request = Request {
            message_id: "msg_1",
            account: "main",
            venue: "paper",
            now_ms: 7,
            legs,
        };
        plan(&request, &positions)
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
}
