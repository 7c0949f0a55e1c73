//! Orders that rest at the venue after their message finished: cancels (`action: "cancel"`,
//! `alertType: "cancel_order"`) and the paper venue's crossing fills.
//!
//! Both run inside the job's turn for the (account, symbol) keys, so they see and change the
//! positions and orders no other job is touching. An order they settle belongs to an earlier
//! message: its settlement is written with that message's new outcome (`filled` when all its
//! orders filled, `cancelled` when none is working and some were cancelled, else unchanged
//! `placed`), and the position moves by what filled since its last answer.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::place::{settlement, Placer};
use super::plan::signed;
use super::positions::{PositionCache, PositionKey};
use super::record::Finished;
use super::Inner;
use crate::broker::Broker;
use crate::journal::{JournalError, OrderRecord, OrderState, Outcome, Settlement};
use crate::normalize::Leg;
use crate::order::{OrderStatus, OrderType, Placement, Side};

/// Recorded as `reason` when a cancel found nothing working (outcome `cancelled`).
pub const NOTHING_TO_CANCEL: &str = "nothing_to_cancel";
/// Recorded as `reason` when a modify found nothing working to move (outcome `invalid`).
pub const NOTHING_TO_MODIFY: &str = "nothing_to_modify";

/// The prices a modify `leg` gives working `order`: entries take `limit_price`/`stop_price`,
/// protective exits `take_profit` (the limit exit) and `stop_loss` (the stop exit).
pub fn new_prices(order: &OrderRecord, leg: &Leg) -> (Option<Decimal>, Option<Decimal>) {
    let (limit, stop) = match order.parent {
        Some(_) => (leg.exits.take_profit, leg.exits.stop_loss),
        None => (
            leg.limit_price.map(|p| p.get()),
            leg.stop_price.map(|p| p.get()),
        ),
    };
    let limit = match order.order_type {
        OrderType::Limit | OrderType::StopLimit => limit.or(order.limit_price),
        _ => order.limit_price,
    };
    let stop = match order.order_type {
        OrderType::Stop | OrderType::StopLimit => stop.or(order.stop_price),
        _ => order.stop_price,
    };
    (limit, stop)
}

/// The exits a modify `leg` gives the exits attached to entry `order` at the venue (Alpaca's
/// bracket legs): only those it has, moved where the leg names a new price.
pub fn attached_exits(order: &OrderRecord, leg: &Leg) -> crate::order::Exits {
    let mut exits = order.exits;
    if order.parent.is_none() {
        if exits.take_profit.is_some() {
            exits.take_profit = leg.exits.take_profit.or(exits.take_profit);
        }
        if exits.stop_loss.is_some() {
            exits.stop_loss = leg.exits.stop_loss.or(exits.stop_loss);
        }
    }
    exits
}

/// The price a resting `order` fills at when the market trades at `price`, if it does.
pub fn crossing_price(order: &OrderRecord, price: Decimal) -> Option<Decimal> {
    let buy = order.side == Side::Buy;
    let limit_ok = |limit: Decimal| if buy { price <= limit } else { price >= limit };
    let stop_hit = |stop: Decimal| if buy { price >= stop } else { price <= stop };
    match order.order_type {
        OrderType::Market => None,
        OrderType::Limit => order.limit_price.filter(|l| limit_ok(*l)),
        // A stop becomes a market order once touched: it fills at the price that touched it.
        OrderType::Stop => order.stop_price.filter(|s| stop_hit(*s)).map(|_| price),
        OrderType::StopLimit => match (order.stop_price, order.limit_price) {
            (Some(stop), Some(limit)) if stop_hit(stop) && limit_ok(limit) => Some(limit),
            _ => None,
        },
    }
}

/// A working order's settlement from the venue's new answer: the position moves by what filled
/// since the last answer.
fn resettle(order: &OrderRecord, p: &Placement, now_ms: i64) -> Settlement {
    let mut s = settlement(order, p, now_ms);
    s.position_delta = signed(order.side, p.filled_quantity - order.filled_quantity);
    s
}

impl Inner {
    /// Cancels every working order of (account, symbol) at `venue` (where the cancel was
    /// routed) for each cancel leg's symbol.
    pub(super) async fn cancel(
        &self,
        message_id: &str,
        account: &str,
        venue: &str,
        legs: &[Leg],
    ) -> Result<Finished, JournalError> {
        let symbols: BTreeSet<&str> = legs.iter().map(|l| l.symbol.as_str()).collect();
        let mut working = Vec::new();
        for symbol in symbols {
            working.extend(
                self.journal
                    .working_orders(account, symbol)
                    .await?
                    .into_iter()
                    .filter(|o| o.venue == venue),
            );
        }
        if working.is_empty() {
            return Ok(Finished::without_orders(
                Outcome::Cancelled,
                Some(NOTHING_TO_CANCEL.to_owned()),
            ));
        }
        let mut settlements = Vec::new();
        let mut failures = Vec::new();
        for order in &mut working {
            let cancelled = match self.placer_at(&order.venue) {
                Ok(placer) => placer.cancel_with_retries(order).await,
                Err(e) => Err(e),
            };
            match cancelled {
                Ok(placement) => {
                    let s = resettle(order, &placement, self.clock.now_unix_ms());
                    apply(order, &s);
                    self.metrics.order(&order.venue, order.status);
                    settlements.push(s);
                }
                Err(e) => {
                    tracing::warn!(message_id, client_order_id = order.client_order_id, error = %e, "cancel failed");
                    failures.push(format!("{}: {e}", order.client_order_id));
                }
            }
        }
        self.settle_owners(&working, &settlements).await?;
        let (outcome, reason) = if failures.is_empty() {
            let ids: Vec<&str> = working.iter().map(|o| o.client_order_id.as_str()).collect();
            (
                Outcome::Cancelled,
                Some(format!("cancelled {}", ids.join(", "))),
            )
        } else {
            (
                Outcome::Failed,
                Some(format!("cannot cancel {}", failures.join("; "))),
            )
        };
        Ok(Finished {
            outcome,
            reason,
            orders: working,
            settlements: Vec::new(),
        })
    }

    /// Moves the working orders of each modify leg's (account, symbol) at `venue` to the leg's
    /// prices.
    pub(super) async fn modify(
        &self,
        message_id: &str,
        account: &str,
        venue: &str,
        legs: &[Leg],
    ) -> Result<Finished, JournalError> {
        let mut changed = Vec::new();
        let mut failures = Vec::new();
        let mut seen = BTreeSet::new();
        let mut unchanged = 0usize;
        for leg in legs {
            for order in self.journal.working_orders(account, &leg.symbol).await? {
                if order.venue != venue || !seen.insert(order.client_order_id.clone()) {
                    continue;
                }
                let (limit, stop) = new_prices(&order, leg);
                let exits = attached_exits(&order, leg);
                if (limit, stop, exits) == (order.limit_price, order.stop_price, order.exits) {
                    // Already there (a trailing stop resent at the same level), or not an
                    // order this leg's prices apply to.
                    let applies = match order.parent {
                        Some(_) => !leg.exits.is_empty(),
                        None => {
                            leg.limit_price.is_some()
                                || leg.stop_price.is_some()
                                || !(leg.exits.is_empty() || order.exits.is_empty())
                        }
                    };
                    unchanged += usize::from(applies);
                    continue;
                }
                let mut moved = order.clone();
                moved.limit_price = limit;
                moved.stop_price = stop;
                moved.exits = exits;
                let answer = match super::place::to_request(&moved) {
                    Ok(request) => match self.placer_at(&order.venue) {
                        Ok(placer) => {
                            placer
                                .modify_with_retries(&request, order.venue_order_id.as_deref())
                                .await
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                };
                match answer {
                    Ok(p)
                        if matches!(
                            p.status,
                            OrderStatus::Placed | OrderStatus::PartiallyFilled
                        ) =>
                    {
                        let now = self.clock.now_unix_ms();
                        self.journal
                            .reprice(crate::journal::Reprice {
                                client_order_id: moved.client_order_id.clone(),
                                limit_price: limit,
                                stop_price: stop,
                                exits,
                                venue_order_id: p.venue_order_id.clone(),
                                now_ms: now,
                            })
                            .await?;
                        moved.venue_order_id = p.venue_order_id.or(moved.venue_order_id);
                        moved.updated_at_ms = now;
                        tracing::info!(
                            message_id,
                            client_order_id = moved.client_order_id,
                            "working order modified"
                        );
                        changed.push(moved);
                    }
                    Ok(p) => failures.push(format!(
                        "{} is no longer working ({})",
                        order.client_order_id,
                        p.status.as_str()
                    )),
                    Err(e) => failures.push(format!("{}: {e}", order.client_order_id)),
                }
            }
        }
        let ids: Vec<&str> = changed.iter().map(|o| o.client_order_id.as_str()).collect();
        let (outcome, reason) = match (changed.is_empty(), failures.is_empty()) {
            (true, true) if unchanged > 0 => (Outcome::Placed, Some("unchanged".to_owned())),
            (true, true) => (Outcome::Invalid, Some(NOTHING_TO_MODIFY.to_owned())),
            (_, true) => (
                Outcome::Placed,
                Some(format!("modified {}", ids.join(", "))),
            ),
            (_, false) => (
                Outcome::Failed,
                Some(format!("cannot modify {}", failures.join("; "))),
            ),
        };
        Ok(Finished {
            outcome,
            reason,
            orders: changed,
            settlements: Vec::new(),
        })
    }

    /// The paper venue's resting orders of (account, symbol) that the legs' reference prices
    /// cross, filled oldest first, before the legs' own orders.
    pub(super) async fn cross(
        &self,
        venue: &str,
        broker: &dyn Broker,
        account: &str,
        legs: &[Leg],
    ) -> Result<(), JournalError> {
        if !broker.simulates_resting() {
            return Ok(());
        }
        let mut prices: BTreeMap<&str, Decimal> = BTreeMap::new();
        for leg in legs {
            if let Some(p) = leg.reference_price {
                prices.entry(leg.symbol.as_str()).or_insert(p.get());
            }
        }
        for (symbol, price) in prices {
            let working = self.journal.working_orders(account, symbol).await?;
            let mut crossed: Vec<OrderRecord> = Vec::new();
            let mut settlements = Vec::new();
            let mut settled: BTreeSet<String> = BTreeSet::new();
            for mut order in working.clone() {
                if settled.contains(&order.client_order_id) {
                    continue;
                }
                let Some(fill_price) = crossing_price(&order, price) else {
                    continue;
                };
                if order.venue != venue {
                    // Another venue's order on the same symbol: not this paper venue's to fill.
                    continue;
                }
                let filled = broker
                    .fill_resting(&order.client_order_id, order.quantity, fill_price)
                    .await;
                let Ok(Some(placement)) = filled else {
                    tracing::warn!(
                        client_order_id = order.client_order_id,
                        "a crossed paper order could not be filled"
                    );
                    continue;
                };
                let s = resettle(&order, &placement, self.clock.now_unix_ms());
                apply(&mut order, &s);
                self.metrics.order(&order.venue, order.status);
                tracing::info!(
                    client_order_id = order.client_order_id,
                    price = %fill_price,
                    "a resting paper order filled: the market crossed it"
                );
                settled.insert(order.client_order_id.clone());
                settlements.push(s);
                let follow_ups = match &order.parent {
                    // One exit filled: the other is cancelled (one-cancels-other).
                    Some(parent) => {
                        let siblings: Vec<OrderRecord> = working
                            .iter()
                            .filter(|o| {
                                o.parent.as_deref() == Some(parent.as_str())
                                    && o.client_order_id != order.client_order_id
                                    && !settled.contains(&o.client_order_id)
                            })
                            .cloned()
                            .collect();
                        self.cancel_siblings(siblings).await
                    }
                    // An entry filled: its protective exits go now.
                    None => self.place_exits(&order).await?,
                };
                crossed.push(order);
                for (o, s) in follow_ups {
                    settled.insert(o.client_order_id.clone());
                    settlements.push(s);
                    crossed.push(o);
                }
            }
            self.settle_owners(&crossed, &settlements).await?;
        }
        Ok(())
    }

    /// Cancels the other exits of a pair whose one exit filled.
    async fn cancel_siblings(&self, siblings: Vec<OrderRecord>) -> Vec<(OrderRecord, Settlement)> {
        let mut out = Vec::new();
        for mut sibling in siblings {
            let cancelled = match self.placer_at(&sibling.venue) {
                Ok(placer) => placer.cancel_with_retries(&sibling).await,
                Err(e) => Err(e),
            };
            match cancelled {
                Ok(placement) => {
                    let s = resettle(&sibling, &placement, self.clock.now_unix_ms());
                    apply(&mut sibling, &s);
                    self.metrics.order(&sibling.venue, sibling.status);
                    tracing::info!(
                        client_order_id = sibling.client_order_id,
                        "the other protective exit filled: cancelled"
                    );
                    out.push((sibling, s));
                }
                Err(e) => {
                    tracing::warn!(client_order_id = sibling.client_order_id, error = %e, "cannot cancel the other protective exit");
                }
            }
        }
        out
    }

    /// Places the protective exits of `entry` (skipped while it rested), for what it filled.
    async fn place_exits(
        &self,
        entry: &OrderRecord,
    ) -> Result<Vec<(OrderRecord, Settlement)>, JournalError> {
        let Some(message) = self.journal.message(&entry.message_id).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for mut exit in message.orders.into_iter().filter(|o| {
            o.parent.as_deref() == Some(entry.client_order_id.as_str())
                && o.status == OrderState::Skipped
        }) {
            exit.quantity = entry.filled_quantity;
            let placed = match super::place::to_request(&exit) {
                Ok(request) => match self.placer_at(&exit.venue) {
                    Ok(placer) => placer.place_with_retries(&request).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            let now = self.clock.now_unix_ms();
            match placed {
                Ok(placement) => {
                    let s = settlement(&exit, &placement, now);
                    apply(&mut exit, &s);
                    self.metrics.order(&exit.venue, exit.status);
                    out.push((exit, s));
                }
                Err(e) => {
                    tracing::warn!(client_order_id = exit.client_order_id, error = %e, "cannot place a protective exit");
                }
            }
        }
        Ok(out)
    }

    /// Writes `settlements` of earlier messages' `orders`, each message with its new outcome,
    /// and moves the cached positions.
    async fn settle_owners(
        &self,
        orders: &[OrderRecord],
        settlements: &[Settlement],
    ) -> Result<(), JournalError> {
        let owners: BTreeSet<&str> = orders.iter().map(|o| o.message_id.as_str()).collect();
        for owner in owners {
            let Some(message) = self.journal.message(owner).await? else {
                continue;
            };
            let mine: Vec<Settlement> = settlements
                .iter()
                .filter(|s| {
                    orders
                        .iter()
                        .any(|o| o.client_order_id == s.client_order_id && o.message_id == owner)
                })
                .cloned()
                .collect();
            let mut current = message.orders.clone();
            for s in &mine {
                if let Some(o) = current
                    .iter_mut()
                    .find(|o| o.client_order_id == s.client_order_id)
                {
                    apply(o, s);
                }
            }
            let outcome = owner_outcome(&current).unwrap_or(message.outcome);
            let deltas: Vec<(PositionKey, Decimal)> = mine
                .iter()
                .filter(|s| !s.position_delta.is_zero())
                .filter_map(|s| {
                    let o = current
                        .iter()
                        .find(|o| o.client_order_id == s.client_order_id)?;
                    Some((super::positions::key_of(o), s.position_delta))
                })
                .collect();
            let written = self.journal.complete(
                mine,
                owner,
                outcome,
                message.reason.clone(),
                self.clock.now_unix_ms(),
            );
            apply_positions(&self.positions, &deltas, written).await?;
        }
        Ok(())
    }
}

/// Moves the cache by `deltas` once `written` is durable (forgets the keys if it fails).
async fn apply_positions(
    positions: &PositionCache,
    deltas: &[(PositionKey, Decimal)],
    written: crate::journal::JournalFuture<()>,
) -> Result<(), JournalError> {
    match written.await {
        Ok(()) => {
            positions.apply(deltas);
            Ok(())
        }
        Err(e) => {
            positions.forget(deltas.iter().map(|(k, _)| k.clone()));
            Err(e)
        }
    }
}

/// A message's outcome once its working orders changed: `None` while some still work. A
/// protective exit cancelled because the other one filled does not count.
fn owner_outcome(orders: &[OrderRecord]) -> Option<Outcome> {
    let exit_filled = |parent: &str| {
        orders
            .iter()
            .any(|o| o.parent.as_deref() == Some(parent) && o.status == OrderState::Filled)
    };
    let sent: Vec<&OrderRecord> = orders
        .iter()
        .filter(|o| o.status != OrderState::Skipped)
        .filter(|o| {
            !(o.status == OrderState::Cancelled && o.parent.as_deref().is_some_and(exit_filled))
        })
        .collect();
    if sent.iter().any(|o| {
        matches!(
            o.status,
            OrderState::Placed
                | OrderState::PartiallyFilled
                | OrderState::New
                | OrderState::Unknown
        )
    }) {
        return None;
    }
    if sent.iter().all(|o| o.status == OrderState::Filled) {
        Some(Outcome::Filled)
    } else if sent.iter().any(|o| o.status == OrderState::Cancelled) {
        Some(Outcome::Cancelled)
    } else {
        None
    }
}

fn apply(order: &mut OrderRecord, s: &Settlement) {
    order.status = s.status;
    order.venue_order_id = s.venue_order_id.clone().or(order.venue_order_id.take());
    order.filled_quantity = s.filled_quantity;
    order.average_price = s.average_price;
    order.updated_at_ms = s.now_ms;
}

impl Placer<'_> {
    /// Moves one working order, retrying transient errors (each venue's `modify` reads the
    /// order first, so a retry after a lost answer does not move it twice).
    pub async fn modify_with_retries(
        &self,
        order: &crate::order::OrderRequest,
        venue_order_id: Option<&str>,
    ) -> Result<Placement, crate::broker::BrokerError> {
        self.with_retries(&order.client_order_id, "modifying", || {
            self.broker.modify(order, venue_order_id)
        })
        .await
        .map_err(|(e, _)| e)
    }

    /// Cancels one working order, retrying transient errors.
    pub async fn cancel_with_retries(
        &self,
        order: &OrderRecord,
    ) -> Result<Placement, crate::broker::BrokerError> {
        let answer = self
            .with_retries(&order.client_order_id, "cancelling", || {
                self.broker.cancel(
                    &order.symbol,
                    &order.client_order_id,
                    order.venue_order_id.as_deref(),
                )
            })
            .await
            .map_err(|(e, _)| e)?;
        if matches!(
            answer.status,
            OrderStatus::Placed | OrderStatus::PartiallyFilled
        ) {
            return Err(crate::broker::BrokerError::Rejected {
                message: "the venue still reports the order working after the cancel".into(),
            });
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::TimeInForce;

    fn resting(
        side: Side,
        order_type: OrderType,
        limit: Option<i64>,
        stop: Option<i64>,
    ) -> OrderRecord {
        OrderRecord {
            client_order_id: "c".into(),
            message_id: "m".into(),
            leg: 0,
            account: "main".into(),
            symbol: "AAA".into(),
            side,
            quantity: Decimal::ONE,
            order_type,
            limit_price: limit.map(Decimal::from),
            stop_price: stop.map(Decimal::from),
            tif: TimeInForce::Gtc,
            reference_price: None,
            product: None,
            status: OrderState::Placed,
            venue: "paper".into(),
            venue_order_id: None,
            filled_quantity: Decimal::ZERO,
            average_price: None,
            error: None,
            sizing: None,
            waits_for_fill: false,
            exits: Default::default(),
            parent: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn limits_fill_at_their_price_when_crossed_and_stops_at_the_touching_price() {
        let d = Decimal::from;
        let buy_limit = resting(Side::Buy, OrderType::Limit, Some(100), None);
        assert_eq!(crossing_price(&buy_limit, d(99)), Some(d(100)));
        assert_eq!(crossing_price(&buy_limit, d(100)), Some(d(100)));
        assert_eq!(crossing_price(&buy_limit, d(101)), None);
        let sell_limit = resting(Side::Sell, OrderType::Limit, Some(100), None);
        assert_eq!(crossing_price(&sell_limit, d(101)), Some(d(100)));
        assert_eq!(crossing_price(&sell_limit, d(99)), None);
        let sell_stop = resting(Side::Sell, OrderType::Stop, None, Some(90));
        assert_eq!(crossing_price(&sell_stop, d(89)), Some(d(89)));
        assert_eq!(crossing_price(&sell_stop, d(91)), None);
        let buy_stop_limit = resting(Side::Buy, OrderType::StopLimit, Some(112), Some(110));
        assert_eq!(crossing_price(&buy_stop_limit, d(111)), Some(d(112)));
        assert_eq!(
            crossing_price(&buy_stop_limit, d(113)),
            None,
            "over the limit"
        );
        assert_eq!(
            crossing_price(&buy_stop_limit, d(109)),
            None,
            "not triggered"
        );
    }
}
