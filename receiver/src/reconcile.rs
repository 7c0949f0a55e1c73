//! Reconciliation (DESIGN section 12, "Positions and reconciliation"): at start and every
//! `[reconcile] interval_seconds`, the receiver
//!
//! 0. follows the working orders at every real venue: a resting order that filled there is
//!    journaled and moves the position; an entry that filled gets its protective exits (Binance
//!    Spot's OCO, placed now; Alpaca's bracket legs, journaled as orders of their own); an exit
//!    the venue cancelled when the other filled is journaled;
//! 1. looks up every `unknown` order by its client order id and settles it to the venue's
//!    status (through the executor, in the (account, symbol) queue, so it never races a job);
//!    an order the venue still does not know after `unknown_grace_seconds` becomes `failed`,
//!    reason [`NOT_FOUND_AT_VENUE`];
//! 2. reads the venue's positions for every (account, symbol) the journal holds, records them,
//!    and reports drift (venue − journal) over `tolerance`: the gauge
//!    `alertgate_receiver_position_drift{account,venue,symbol}` and a warning log naming both
//!    positions.
//!
//! [`position_rows`] is the view `GET /v1/positions` and `alertgate-receiver positions` show.
//! Time comes from the injected clock; only the wait between passes is a timer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::Clock;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::executor::{Executor, Found};
use crate::journal::{EventKind, Journal, JournalError, NotifyEvent, OrderState, VenuePosition};
use crate::metrics::Metrics;
use crate::routing::Venues;

/// The reason an `unknown` order the venue never heard of ends with (outcome `failed`).
pub const NOT_FOUND_AT_VENUE: &str = "not_found_at_venue";

fn default_interval_seconds() -> u64 {
    60
}
fn default_unknown_grace_seconds() -> u64 {
    300
}

/// `[reconcile]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Seconds between passes (one runs at start); 0 turns reconciliation off.
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u64,
    /// Drift (venue − journal, absolute) tolerated before the gauge and the warning.
    #[serde(default)]
    pub tolerance: Decimal,
    /// An `unknown` order the venue does not know this long after it was sent is `failed`
    /// (`not_found_at_venue`); before that it may still be on its way.
    #[serde(default = "default_unknown_grace_seconds")]
    pub unknown_grace_seconds: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        Self {
            interval_seconds: default_interval_seconds(),
            tolerance: Decimal::ZERO,
            unknown_grace_seconds: default_unknown_grace_seconds(),
        }
    }
}

/// One row of the positions view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PositionRow {
    /// Account.
    pub account: String,
    /// The venue.
    pub venue: String,
    /// Venue symbol.
    pub symbol: String,
    /// From the journal's fills.
    pub position: Decimal,
    /// As last read from the venue; `None` for venues that cannot report (paper).
    pub venue_position: Option<Decimal>,
    /// `venue_position − position`, when the venue reported.
    pub drift: Option<Decimal>,
    /// When the venue was last read (unix ms); `None` before the first pass.
    pub reconciled_at_ms: Option<i64>,
}

/// The journal's positions beside the venues' last readings, by (account, venue, symbol); only
/// positions and readings of `venues` (the configured ones) are shown.
pub async fn position_rows(
    journal: &dyn Journal,
    venues: &[String],
) -> Result<Vec<PositionRow>, JournalError> {
    let mut rows: BTreeMap<(String, String, String), PositionRow> = BTreeMap::new();
    for p in journal.positions().await? {
        if !venues.contains(&p.venue) {
            continue;
        }
        rows.insert(
            (p.account.clone(), p.symbol.clone(), p.venue.clone()),
            PositionRow {
                account: p.account,
                venue: p.venue,
                symbol: p.symbol,
                position: p.position.normalize(),
                venue_position: None,
                drift: None,
                reconciled_at_ms: None,
            },
        );
    }
    for r in journal.venue_positions().await? {
        if !venues.contains(&r.venue) {
            continue;
        }
        let row = rows
            .entry((r.account.clone(), r.symbol.clone(), r.venue.clone()))
            .or_insert_with(|| PositionRow {
                account: r.account.clone(),
                venue: r.venue.clone(),
                symbol: r.symbol.clone(),
                position: Decimal::ZERO,
                venue_position: None,
                drift: None,
                reconciled_at_ms: None,
            });
        row.venue_position = r.position.map(|d| d.normalize());
        row.drift = r.position.map(|v| (v - row.position).normalize());
        row.reconciled_at_ms = Some(r.reconciled_at_ms);
    }
    Ok(rows.into_values().collect())
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// `unknown` orders settled (to the venue's status, or `failed`).
    pub settled: usize,
    /// `unknown` orders left as they are (not found yet, or the venue could not be asked).
    pub still_unknown: usize,
    /// Working orders whose state changed at the venue (fills, exits the venue expired).
    pub followed: usize,
    /// (account, symbol, journal, venue) of every drift over the tolerance.
    pub drifts: Vec<(String, String, Decimal, Decimal)>,
}

/// Runs reconciliation passes.
#[derive(Debug, Clone)]
pub struct Reconciler {
    /// Unknown orders, positions, readings.
    pub journal: Arc<dyn Journal>,
    /// The venues asked, each about its own orders.
    pub venues: Venues,
    /// Settles unknown orders in the (account, symbol) queue.
    pub executor: Executor,
    /// Grace and reading times.
    pub clock: Arc<dyn Clock>,
    /// `[reconcile]`.
    pub config: ReconcileConfig,
    /// The drift gauge.
    pub metrics: Metrics,
}

impl Reconciler {
    /// One pass: unknown orders first (their fills move the journal's positions), then drift.
    pub async fn run_once(&self) -> Result<Pass, JournalError> {
        let mut pass = Pass::default();
        self.follow_working(&mut pass).await?;
        self.settle_unknown(&mut pass).await?;
        self.read_positions(&mut pass).await?;
        Ok(pass)
    }

    /// Passes at start and every `interval_seconds` until `stop` turns true; nothing when the
    /// interval is 0.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.config.interval_seconds == 0 {
            return;
        }
        let mut ticks = tokio::time::interval(Duration::from_secs(self.config.interval_seconds));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "reconciliation pass interrupted by the journal");
            }
        }
    }

    /// Looks up the working orders at every real venue that can be asked about an order
    /// ([`crate::broker::Broker::looks_up_orders`]; the paper venue fills its own when a later
    /// alert's price crosses them): a resting order that filled there is journaled with
    /// its fill and moves the position, an entry that filled gets its protective exits (placed
    /// now where the receiver places them, journaled as orders of their own where the venue
    /// holds them as legs), and an exit the venue cancelled because the other filled is
    /// journaled.
    async fn follow_working(&self, pass: &mut Pass) -> Result<(), JournalError> {
        let mut keys: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut candidates = self.journal.unadopted_brackets().await?;
        for status in [OrderState::Placed, OrderState::PartiallyFilled] {
            candidates.extend(self.journal.orders_with_status(status).await?);
        }
        for order in candidates {
            let follows = self
                .venues
                .get(&order.venue)
                .is_some_and(|v| v.broker.looks_up_orders() && !v.broker.simulates_resting());
            if follows {
                keys.insert((order.account, order.symbol, order.venue));
            }
        }
        for (account, symbol, venue) in keys {
            pass.followed += self.executor.follow(&account, &symbol, &venue).await?;
        }
        Ok(())
    }

    async fn settle_unknown(&self, pass: &mut Pass) -> Result<(), JournalError> {
        let now = self.clock.now_unix_ms();
        let grace_ms = i64::try_from(self.config.unknown_grace_seconds.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        for order in self.journal.orders_with_status(OrderState::Unknown).await? {
            let Some(venue) = self.venues.get(&order.venue) else {
                tracing::warn!(
                    client_order_id = order.client_order_id,
                    venue = order.venue,
                    "an unknown order's venue is not configured; it stays unknown"
                );
                pass.still_unknown += 1;
                continue;
            };
            let found = match venue
                .broker
                .lookup(&order.symbol, &order.client_order_id)
                .await
            {
                Ok(Some(placement)) => Found::At(placement),
                Ok(None) if now - order.updated_at_ms >= grace_ms => Found::NotFound,
                Ok(None) => {
                    pass.still_unknown += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(client_order_id = order.client_order_id, error = %e, "cannot look up an unknown order yet");
                    pass.still_unknown += 1;
                    continue;
                }
            };
            if self.executor.settle(&order, found).await?.is_some() {
                pass.settled += 1;
            }
        }
        Ok(())
    }

    async fn read_positions(&self, pass: &mut Pass) -> Result<(), JournalError> {
        let now = self.clock.now_unix_ms();
        // A drift is notified when first seen, not at every pass: when the venue's reading
        // changed since the last pass.
        let previous: Vec<VenuePosition> = self.journal.venue_positions().await?;
        // Each venue is asked about the (account, symbol)s its own fills made.
        let mut journal: BTreeMap<(String, String, String), Decimal> = BTreeMap::new();
        let mut by_venue: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for p in self.journal.positions().await? {
            by_venue
                .entry(p.venue.clone())
                .or_default()
                .entry(p.account.clone())
                .or_default()
                .insert(p.symbol.clone());
            journal.insert((p.account, p.venue, p.symbol), p.position);
        }
        let mut readings = Vec::new();
        for venue in self.venues.iter() {
            let Some(by_account) = by_venue.remove(&venue.route.name) else {
                continue;
            };
            self.read_venue(
                venue,
                by_account,
                &journal,
                &previous,
                now,
                pass,
                &mut readings,
            )
            .await;
        }
        self.journal.record_venue_positions(readings).await
    }

    /// Reads one venue's positions for `by_account` and compares them with the journal's.
    #[allow(clippy::too_many_arguments)]
    async fn read_venue(
        &self,
        at: &crate::routing::Venue,
        by_account: BTreeMap<String, BTreeSet<String>>,
        journal: &BTreeMap<(String, String, String), Decimal>,
        previous: &[VenuePosition],
        now: i64,
        pass: &mut Pass,
        readings: &mut Vec<VenuePosition>,
    ) {
        let venue = at.route.name.as_str();
        let broker = at.broker.as_ref();
        for (account, symbols) in by_account {
            let symbols: Vec<String> = symbols.into_iter().collect();
            let held = if broker.reports_positions() {
                match broker.positions(&account, &symbols).await {
                    Ok(held) => held,
                    Err(e) => {
                        tracing::warn!(account = %account, venue, error = %e, "cannot read the venue's positions");
                        continue;
                    }
                }
            } else {
                None
            };
            for symbol in symbols {
                let ours = journal
                    .get(&(account.clone(), venue.to_owned(), symbol.clone()))
                    .copied()
                    .unwrap_or(Decimal::ZERO);
                let theirs = held.as_ref().map(|h| {
                    h.iter()
                        .find(|(s, _)| *s == symbol)
                        .map_or(Decimal::ZERO, |(_, q)| *q)
                });
                if let Some(theirs) = theirs {
                    let drift = theirs - ours;
                    let over = drift.abs() > self.config.tolerance;
                    self.metrics.position_drift(
                        &account,
                        venue,
                        &symbol,
                        if over { drift } else { Decimal::ZERO },
                    );
                    if over {
                        tracing::warn!(
                            account = %account,
                            venue,
                            symbol = %symbol,
                            journal_position = %ours.normalize(),
                            venue_position = %theirs.normalize(),
                            drift = %drift.normalize(),
                            "position drift: the venue holds a different position than the journal's fills"
                        );
                        let seen = previous.iter().any(|p| {
                            p.account == account
                                && p.venue == venue
                                && p.symbol == symbol
                                && p.position == Some(theirs)
                        });
                        if !seen {
                            let mut event = NotifyEvent::standalone(
                                EventKind::Drift,
                                now,
                                format!(
                                    "{symbol}: journal {}, venue {}",
                                    ours.normalize(),
                                    theirs.normalize()
                                ),
                            );
                            event.account = Some(account.clone());
                            event.venue = Some(venue.to_owned());
                            if let Err(e) = self.journal.enqueue_event(event).await {
                                tracing::warn!(error = %e, "cannot queue the drift notification");
                            }
                        }
                        pass.drifts
                            .push((account.clone(), symbol.clone(), ours, theirs));
                    }
                }
                readings.push(VenuePosition {
                    account: account.clone(),
                    venue: venue.to_owned(),
                    symbol,
                    position: theirs,
                    reconciled_at_ms: now,
                });
            }
        }
    }
}
