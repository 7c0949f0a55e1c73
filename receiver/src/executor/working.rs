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

use super::place::{per_exit, settlement, Placer};
use super::plan::signed;
use super::positions::{PositionCache, PositionKey};
use super::record::Finished;
use super::Inner;
use crate::broker::{Broker, BrokerError};
use crate::journal::{JournalError, OrderRecord, OrderState, Outcome, Settlement};
use crate::normalize::Leg;
use crate::order::{ExitSupport, OrderStatus, OrderType, Placement, Side};

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
    /// `orders` (indices) in the groups their venue moves together: the protective exits of
    /// one entry at a venue that holds them as one list ([`ExitSupport::Oco`]), every other
    /// order alone; in the order they first appear.
    fn pairs(&self, orders: &[OrderRecord]) -> Vec<Vec<usize>> {
        let listed = |o: &OrderRecord| {
            o.parent.is_some()
                && self
                    .broker(&o.venue)
                    .is_ok_and(|b| b.exits() == ExitSupport::Oco)
        };
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, order) in orders.iter().enumerate() {
            let sibling = groups.iter_mut().find(|g| {
                let first = &orders[g[0]];
                listed(order)
                    && listed(first)
                    && first.venue == order.venue
                    && first.parent == order.parent
            });
            match sibling {
                Some(group) => group.push(i),
                None => groups.push(vec![i]),
            }
        }
        groups
    }

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
            self.sync_with_venue(account, symbol, venue).await?;
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
        for group in self.pairs(&working) {
            let answers: Vec<Result<Placement, BrokerError>> = match self.placer_at(venue) {
                Ok(placer) if group.len() > 1 => {
                    let exits: Vec<OrderRecord> =
                        group.iter().map(|&i| working[i].clone()).collect();
                    placer.cancel_exits_with_retries(&exits).await
                }
                Ok(placer) => vec![placer.cancel_with_retries(&working[group[0]]).await],
                Err(e) => group.iter().map(|_| Err(e.clone())).collect(),
            };
            for (&i, cancelled) in group.iter().zip(answers) {
                let order = &mut working[i];
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
            self.sync_with_venue(account, &leg.symbol, venue).await?;
            let working: Vec<OrderRecord> = self
                .journal
                .working_orders(account, &leg.symbol)
                .await?
                .into_iter()
                .filter(|o| o.venue == venue && seen.insert(o.client_order_id.clone()))
                .collect();
            for group in self.pairs(&working) {
                let targets: Vec<OrderRecord> = group
                    .iter()
                    .map(|&i| {
                        let mut moved = working[i].clone();
                        (moved.limit_price, moved.stop_price) = new_prices(&moved, leg);
                        moved.exits = attached_exits(&moved, leg);
                        moved
                    })
                    .collect();
                let same = |m: &OrderRecord, o: &OrderRecord| {
                    (m.limit_price, m.stop_price, m.exits) == (o.limit_price, o.stop_price, o.exits)
                };
                if group
                    .iter()
                    .zip(&targets)
                    .all(|(&i, m)| same(m, &working[i]))
                {
                    // Already there (a trailing stop resent at the same level), or not an
                    // order this leg's prices apply to.
                    for &i in &group {
                        let order = &working[i];
                        let applies = match order.parent {
                            Some(_) => !leg.exits.is_empty(),
                            None => {
                                leg.limit_price.is_some()
                                    || leg.stop_price.is_some()
                                    || !(leg.exits.is_empty() || order.exits.is_empty())
                            }
                        };
                        unchanged += usize::from(applies);
                    }
                    continue;
                }
                let answers = match self.placer_at(venue) {
                    Ok(placer) => {
                        placer
                            .modify_group_with_retries(&group, &working, &targets)
                            .await
                    }
                    Err(e) => targets.iter().map(|_| Err(e.clone())).collect(),
                };
                for ((&i, mut moved), answer) in group.iter().zip(targets).zip(answers) {
                    let order = &working[i];
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
                                    limit_price: moved.limit_price,
                                    stop_price: moved.stop_price,
                                    exits: moved.exits,
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
        let exits: Vec<OrderRecord> = message
            .orders
            .into_iter()
            .filter(|o| {
                o.parent.as_deref() == Some(entry.client_order_id.as_str())
                    && o.status == OrderState::Skipped
            })
            .map(|mut o| {
                o.quantity = entry.filled_quantity;
                o
            })
            .collect();
        if exits.is_empty() {
            return Ok(Vec::new());
        }
        let results = match self.placer_at(&entry.venue) {
            Ok(placer) => placer.place_exits(&entry.client_order_id, &exits).await,
            Err(e) => exits.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out = Vec::new();
        for (mut exit, placed) in exits.into_iter().zip(results) {
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

    /// Before a cancel or a modify acts on what the journal lists as working: at a real venue,
    /// what changed there since (an entry that filled, whose exits now rest as orders of their
    /// own or as the venue's legs of it, [`Inner::follow`]), so they are cancelled or moved too.
    /// The paper venue's resting orders change only inside the receiver.
    async fn sync_with_venue(
        &self,
        account: &str,
        symbol: &str,
        venue: &str,
    ) -> Result<(), JournalError> {
        if self
            .broker(venue)
            .is_ok_and(|b| b.looks_up_orders() && !b.simulates_resting())
        {
            self.follow(account, symbol, venue).await?;
        }
        Ok(())
    }

    /// Journals, as orders of their own, the protective exits that `venue` holds as legs of
    /// entries of (account, symbol) that have filled (Alpaca's bracket,
    /// [`Broker::attached_legs`]): from then on the journal lists them as working orders, so
    /// they are followed, cancelled and moved like any other (the venue's leg id is their venue
    /// order id; their client id is the entry's with `-tp`/`-sl`, journal-side only). A leg that
    /// already filled moves the position now. Answers how many legs were journaled.
    pub(super) async fn adopt_legs(
        &self,
        account: &str,
        symbol: &str,
        venue: &str,
    ) -> Result<usize, JournalError> {
        let entries: Vec<OrderRecord> = self
            .journal
            .unadopted_brackets()
            .await?
            .into_iter()
            .filter(|o| o.account == account && o.symbol == symbol && o.venue == venue)
            .collect();
        if entries.is_empty() {
            return Ok(0);
        }
        let Ok(broker) = self.broker(venue) else {
            return Ok(0);
        };
        let mut legs: Vec<OrderRecord> = Vec::new();
        let mut settlements = Vec::new();
        for entry in &entries {
            let attached = match broker
                .attached_legs(
                    &entry.symbol,
                    &entry.client_order_id,
                    entry.venue_order_id.as_deref(),
                )
                .await
            {
                Ok(attached) => attached,
                Err(e) => {
                    tracing::warn!(client_order_id = entry.client_order_id, error = %e, "cannot read a filled bracket's exit legs yet");
                    continue;
                }
            };
            let now = self.clock.now_unix_ms();
            for leg in attached {
                let suffix = match leg.order_type {
                    OrderType::Limit => "tp",
                    _ => "sl",
                };
                let mut order = OrderRecord {
                    client_order_id: format!("{}-{suffix}", entry.client_order_id),
                    side: entry.side.opposite(),
                    quantity: entry.filled_quantity,
                    order_type: leg.order_type,
                    limit_price: leg.limit_price,
                    stop_price: leg.stop_price,
                    reference_price: None,
                    status: OrderState::New,
                    venue_order_id: leg.placement.venue_order_id.clone(),
                    filled_quantity: Decimal::ZERO,
                    average_price: None,
                    error: None,
                    sizing: None,
                    waits_for_fill: false,
                    exits: crate::order::Exits::default(),
                    parent: Some(entry.client_order_id.clone()),
                    created_at_ms: now,
                    updated_at_ms: now,
                    ..entry.clone()
                };
                let s = resettle(&order, &leg.placement, now);
                self.journal.plan(vec![order.clone()]).await?;
                apply(&mut order, &s);
                self.metrics.order(&order.venue, order.status);
                tracing::info!(
                    client_order_id = order.client_order_id,
                    parent = entry.client_order_id,
                    status = order.status.as_str(),
                    "a filled bracket's exit leg journaled"
                );
                settlements.push(s);
                legs.push(order);
            }
        }
        let count = legs.len();
        self.settle_owners(&legs, &settlements).await?;
        Ok(count)
    }

    /// Follows the working orders of (account, symbol) at `venue`: each is looked up at the
    /// venue, and what changed is journaled; an entry that filled gets its protective exits
    /// now, and an exit cancelled because the other filled (Binance's OCO expires it) is
    /// recorded as the venue reports it. Answers how many orders changed.
    pub(super) async fn follow(
        &self,
        account: &str,
        symbol: &str,
        venue: &str,
    ) -> Result<usize, JournalError> {
        let placer = match self.placer_at(venue) {
            Ok(placer) => placer,
            Err(e) => {
                tracing::warn!(venue, error = %e, "cannot follow working orders");
                return Ok(0);
            }
        };
        let adopted = self.adopt_legs(account, symbol, venue).await?;
        let working: Vec<OrderRecord> = self
            .journal
            .working_orders(account, symbol)
            .await?
            .into_iter()
            .filter(|o| o.venue == venue)
            .collect();
        let mut changed: Vec<OrderRecord> = Vec::new();
        let mut settlements = Vec::new();
        for mut order in working {
            if changed
                .iter()
                .any(|c| c.client_order_id == order.client_order_id)
            {
                continue;
            }
            let found = placer
                .broker
                .lookup_working(
                    &order.symbol,
                    &order.client_order_id,
                    order.venue_order_id.as_deref(),
                )
                .await;
            let placement = match found {
                Ok(Some(p)) => p,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(client_order_id = order.client_order_id, error = %e, "cannot look a working order up");
                    continue;
                }
            };
            let s = resettle(&order, &placement, self.clock.now_unix_ms());
            if s.status == order.status && s.filled_quantity == order.filled_quantity {
                continue;
            }
            apply(&mut order, &s);
            self.metrics.order(&order.venue, order.status);
            tracing::info!(
                client_order_id = order.client_order_id,
                status = order.status.as_str(),
                "a working order changed at the venue"
            );
            settlements.push(s);
            let follow_ups = if order.parent.is_none() && order.status == OrderState::Filled {
                // An entry filled: its protective exits go now.
                self.place_exits(&order).await?
            } else {
                Vec::new()
            };
            changed.push(order);
            for (o, s) in follow_ups {
                settlements.push(s);
                changed.push(o);
            }
        }
        let count = changed.len();
        self.settle_owners(&changed, &settlements).await?;
        // An entry that just filled with its exits attached at the venue: its legs now.
        let filled_brackets = changed
            .iter()
            .any(|o| o.parent.is_none() && o.status == OrderState::Filled && !o.exits.is_empty());
        let late = if filled_brackets {
            self.adopt_legs(account, symbol, venue).await?
        } else {
            0
        };
        Ok(count + adopted + late)
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

    /// Moves `targets` (the orders of `group` in `working`, with their new prices): a pair of
    /// exits the venue holds as one list together, a lone order by itself; one answer each.
    pub async fn modify_group_with_retries(
        &self,
        group: &[usize],
        working: &[OrderRecord],
        targets: &[OrderRecord],
    ) -> Vec<Result<Placement, crate::broker::BrokerError>> {
        let requests: Result<Vec<crate::order::OrderRequest>, _> =
            targets.iter().map(super::place::to_request).collect();
        let requests = match requests {
            Ok(requests) => requests,
            Err(e) => return targets.iter().map(|_| Err(e.clone())).collect(),
        };
        let [first] = group else {
            let entry = targets[0].parent.clone().unwrap_or_default();
            let exits: Vec<(crate::order::OrderRequest, Option<String>)> = requests
                .into_iter()
                .zip(group.iter().map(|&i| working[i].venue_order_id.clone()))
                .collect();
            let answer = self
                .with_retries(&entry, "moving the protective exits", || {
                    self.broker.modify_exits(&entry, &exits)
                })
                .await
                .map_err(|(e, _)| e);
            return per_exit(answer, targets.len());
        };
        vec![
            self.modify_with_retries(&requests[0], working[*first].venue_order_id.as_deref())
                .await,
        ]
    }

    /// Cancels the protective exits of one entry together (one venue order list), retrying
    /// transient errors; one answer per exit.
    pub async fn cancel_exits_with_retries(
        &self,
        exits: &[OrderRecord],
    ) -> Vec<Result<Placement, crate::broker::BrokerError>> {
        let ids: Vec<(String, Option<String>)> = exits
            .iter()
            .map(|o| (o.client_order_id.clone(), o.venue_order_id.clone()))
            .collect();
        let symbol = exits.first().map(|o| o.symbol.as_str()).unwrap_or_default();
        let answer = self
            .with_retries(symbol, "cancelling the protective exits", || {
                self.broker.cancel_exits(symbol, &ids)
            })
            .await
            .map_err(|(e, _)| e);
        per_exit(answer, exits.len())
            .into_iter()
            .map(|answer| match answer {
                Ok(p) if matches!(p.status, OrderStatus::Placed | OrderStatus::PartiallyFilled) => {
                    Err(BrokerError::Rejected {
                        message: "the venue still reports the order working after the cancel"
                            .into(),
                    })
                }
                other => other,
            })
            .collect()
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
