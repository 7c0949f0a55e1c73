//! Placement: sends a message's journaled orders to the venue, in leg order, and turns the
//! answers into settlements and the message's outcome.
//!
//! A transient error is retried with the same client order id (the venue's idempotency key):
//! at most `executor.max_attempts` attempts, exponential backoff from `retry_base_ms` to
//! `retry_max_ms`, never sooner than the venue's `Retry-After` and never longer than a minute.
//! Once one order fails, the later ones are not sent (`skipped`). An order still unconfirmed
//! after the last attempt is `unknown` (outcome `unknown`), never `failed`: the venue may have
//! it, and reconciliation looks it up. The open of a reversal is sent only once its close has
//! filled (looked up with the same backoff), else it is `skipped`. A protective exit is sent only
//! once its entry filled; while the entry rests it is `skipped`, and the paper venue places it
//! when the entry fills ([`super::working`]).

use std::time::{Duration, Instant};

use alertgate_shared::retry::Backoff;
use alertgate_shared::Clock;
use rust_decimal::Decimal;

use super::plan::signed;
use crate::broker::{Broker, BrokerError};
use crate::config::ExecutorConfig;
use crate::journal::{JournalError, JournalFuture, OrderRecord, OrderState, Outcome, Settlement};
use crate::metrics::Metrics;
use crate::order::{ExitSupport, OrderRequest, Placement, Positive};

/// The reason's prefix when a reversal's open waits for a close that has not filled.
pub const REVERSAL_WAITING: &str = "reversal_waiting_for_close";

/// Longest wait between two attempts, whatever a venue's `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// What placing needs.
#[derive(Debug, Clone, Copy)]
pub struct Placer<'a> {
    /// The venue.
    pub broker: &'a dyn Broker,
    /// Attempts and backoff.
    pub config: &'a ExecutorConfig,
    /// Placement time and order answers.
    pub metrics: &'a Metrics,
    /// Time of each answer.
    pub clock: &'a dyn Clock,
}

/// The venue's answers for one message.
#[derive(Debug)]
pub struct Placed {
    /// The orders as they stand after the answers.
    pub orders: Vec<OrderRecord>,
    /// One per order sent, to record.
    pub settlements: Vec<Settlement>,
    /// The message's outcome.
    pub outcome: Outcome,
    /// Why, when it is not a plain success.
    pub reason: Option<String>,
}

impl Placer<'_> {
    /// Places every order still `new`, in leg order. Answers are not made durable one by one:
    /// after a crash the orders are still `new` in the journal and are placed again with the
    /// same ids, which the venue answers with the first placement.
    ///
    /// `planned` is the journal write of the orders when it was not awaited before placing (the
    /// paper broker, whose own record queues behind it): it is awaited after the first answer.
    pub async fn place_all(
        &self,
        message_id: &str,
        mut orders: Vec<OrderRecord>,
        mut planned: Option<JournalFuture<()>>,
    ) -> Result<Placed, JournalError> {
        let mut settlements = Vec::new();
        let mut failure = None;
        let mut waiting = None;
        for i in 0..orders.len() {
            if orders[i].status != OrderState::New {
                continue;
            }
            if failure.is_some() {
                orders[i].status = OrderState::Skipped;
                continue;
            }
            if let Some(parent) = orders[i].parent.clone() {
                // A protective exit goes once its entry filled, for what filled; an entry
                // still resting leaves it for the fill (the paper venue places it then, a real
                // one when the receiver follows the entry).
                let filled = orders
                    .iter()
                    .find(|o| o.client_order_id == parent && o.status == OrderState::Filled)
                    .map(|o| o.filled_quantity)
                    .filter(|q| *q > Decimal::ZERO);
                let Some(quantity) = filled else {
                    orders[i].status = OrderState::Skipped;
                    continue;
                };
                orders[i].quantity = quantity;
                if self.broker.exits() == ExitSupport::Oco {
                    // The pair goes as one order list at the venue.
                    let pair: Vec<usize> = (i..orders.len())
                        .filter(|&j| {
                            orders[j].parent.as_deref() == Some(parent.as_str())
                                && orders[j].status == OrderState::New
                        })
                        .collect();
                    let mut exits: Vec<OrderRecord> =
                        pair.iter().map(|&j| orders[j].clone()).collect();
                    for exit in &mut exits {
                        exit.quantity = quantity;
                    }
                    let started = Instant::now();
                    let results = self.place_exits(&parent, &exits).await;
                    self.metrics.place_duration(started.elapsed());
                    for (&j, (exit, result)) in pair.iter().zip(exits.into_iter().zip(results)) {
                        orders[j] = exit;
                        let (settlement, failed) = self.answer(message_id, &mut orders[j], result);
                        failure = failure.or(failed);
                        settlements.push(settlement);
                    }
                    continue;
                }
            }
            if orders[i].waits_for_fill {
                if let Some(previous) = i.checked_sub(1) {
                    if !self
                        .wait_for_fill(&mut orders[previous], &mut settlements)
                        .await
                    {
                        orders[i].status = OrderState::Skipped;
                        waiting = Some(format!(
                            "{}: the close {} has not filled, so the open {} was not sent; the next \
                             target alert places the rest",
                            REVERSAL_WAITING,
                            orders[previous].client_order_id,
                            orders[i].client_order_id
                        ));
                        continue;
                    }
                }
            }
            let order = &mut orders[i];
            let started = Instant::now();
            let result = match to_request(order) {
                Ok(request) => self.place_with_retries(&request).await,
                Err(e) => Err(e),
            };
            self.metrics.place_duration(started.elapsed());
            if let Some(planned) = planned.take() {
                // The paper broker's record was queued after the plan: both are durable now.
                planned.await?;
            }
            let (settlement, failed) = self.answer(message_id, order, result);
            failure = failure.or(failed);
            settlements.push(settlement);
        }
        let (outcome, mut reason) = outcome_of(&orders, failure);
        if reason.is_none() {
            reason = waiting;
        }
        if let Some(planned) = planned {
            planned.await?;
        }
        Ok(Placed {
            orders,
            settlements,
            outcome,
            reason,
        })
    }

    /// Writes the venue's answer for `order` into it and makes its settlement; the error when
    /// it failed (an unconfirmed order is `unknown`, never `failed`).
    fn answer(
        &self,
        message_id: &str,
        order: &mut OrderRecord,
        result: Result<Placement, BrokerError>,
    ) -> (Settlement, Option<BrokerError>) {
        let now = self.clock.now_unix_ms();
        let (settlement, failure) = match result {
            Ok(placement) => (settlement(order, &placement, now), None),
            Err(error @ BrokerError::Transient { .. }) => {
                tracing::warn!(message_id, client_order_id = order.client_order_id, error = %error, "order unknown: the venue never confirmed it");
                let mut settlement = failed(order, &error, now);
                settlement.status = OrderState::Unknown;
                (settlement, Some(error))
            }
            Err(error) => {
                tracing::warn!(message_id, client_order_id = order.client_order_id, error = %error, "order failed");
                (failed(order, &error, now), Some(error))
            }
        };
        adopt(order, &settlement);
        self.metrics.order(&order.venue, order.status);
        (settlement, failure)
    }

    /// Places the protective exits of the filled entry `entry`: as one pair where the venue
    /// takes them so ([`ExitSupport::Oco`]), else one by one. One answer per exit.
    pub async fn place_exits(
        &self,
        entry: &str,
        exits: &[OrderRecord],
    ) -> Vec<Result<Placement, BrokerError>> {
        if self.broker.exits() != ExitSupport::Oco {
            let mut out = Vec::with_capacity(exits.len());
            for exit in exits {
                out.push(match to_request(exit) {
                    Ok(request) => self.place_with_retries(&request).await,
                    Err(e) => Err(e),
                });
            }
            return out;
        }
        let requests: Result<Vec<OrderRequest>, BrokerError> =
            exits.iter().map(to_request).collect();
        let placed = match requests {
            Ok(requests) => unknown_after_retries(
                self.with_retries(entry, "placing the protective exits", || {
                    self.broker.place_exits(entry, &requests)
                })
                .await,
            ),
            Err(e) => Err(e),
        };
        per_exit(placed, exits.len())
    }

    /// Waits for `previous` (the close of a reversal) to fill: at once when it has, else by
    /// looking it up with the retry backoff, at most `max_attempts` times. A fill found later
    /// replaces its settlement. `false`: it has not filled.
    async fn wait_for_fill(
        &self,
        previous: &mut OrderRecord,
        settlements: &mut [Settlement],
    ) -> bool {
        match previous.status {
            OrderState::Filled => return true,
            OrderState::Placed | OrderState::PartiallyFilled => {}
            _ => return false,
        }
        let backoff = Backoff::new(
            Duration::from_millis(self.config.retry_base_ms),
            Duration::from_millis(self.config.retry_max_ms),
            MAX_RETRY_WAIT,
        );
        for attempt in 1..=self.config.max_attempts {
            tokio::time::sleep(backoff.delay_now(attempt, None)).await;
            let found = self
                .broker
                .lookup(&previous.symbol, &previous.client_order_id)
                .await;
            let Ok(Some(placement)) = found else { continue };
            if placement.status != crate::order::OrderStatus::Filled {
                continue;
            }
            let now = self.clock.now_unix_ms();
            let fresh = settlement(previous, &placement, now);
            if let Some(s) = settlements
                .iter_mut()
                .find(|s| s.client_order_id == previous.client_order_id)
            {
                *s = fresh.clone();
            }
            previous.status = fresh.status;
            previous.filled_quantity = fresh.filled_quantity;
            previous.average_price = fresh.average_price;
            previous.updated_at_ms = now;
            return true;
        }
        false
    }

    /// Runs `call` until it answers something other than a transient error, at most
    /// `executor.max_attempts` times, waiting the backoff (or the venue's `Retry-After`) between
    /// attempts. The last transient error comes back with the attempts made.
    pub async fn with_retries<T, F, Fut>(
        &self,
        client_order_id: &str,
        what: &str,
        mut call: F,
    ) -> Result<T, (BrokerError, u32)>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, BrokerError>>,
    {
        let backoff = Backoff::new(
            Duration::from_millis(self.config.retry_base_ms),
            Duration::from_millis(self.config.retry_max_ms),
            MAX_RETRY_WAIT,
        );
        let mut attempt = 1;
        loop {
            match call().await {
                Err(BrokerError::Transient {
                    message,
                    retry_after,
                }) if attempt < self.config.max_attempts => {
                    let wait = backoff.delay_now(attempt, retry_after);
                    tracing::warn!(
                        client_order_id,
                        attempt,
                        ?wait,
                        message,
                        "transient broker error {what}; retrying with the same id"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Ok(v) => return Ok(v),
                Err(e) => return Err((e, attempt)),
            }
        }
    }

    /// Places one order, retrying transient errors with the same client order id.
    pub async fn place_with_retries(
        &self,
        request: &OrderRequest,
    ) -> Result<Placement, BrokerError> {
        unknown_after_retries(
            self.with_retries(&request.client_order_id, "placing", || {
                self.broker.place(request)
            })
            .await,
        )
    }
}

/// Writes `s` into `order`, as the journal will record it.
pub(super) fn adopt(order: &mut OrderRecord, s: &Settlement) {
    order.status = s.status;
    order.venue_order_id.clone_from(&s.venue_order_id);
    order.filled_quantity = s.filled_quantity;
    order.average_price = s.average_price;
    order.error.clone_from(&s.error);
    order.updated_at_ms = s.now_ms;
}

/// A venue's answer for a group of `n` exits as one answer per exit.
pub(super) fn per_exit(
    answer: Result<Vec<Placement>, BrokerError>,
    n: usize,
) -> Vec<Result<Placement, BrokerError>> {
    match answer {
        Ok(placements) if placements.len() == n => placements.into_iter().map(Ok).collect(),
        Ok(_) => (0..n)
            .map(|_| {
                Err(BrokerError::Rejected {
                    message: "the venue answered a different number of exits".into(),
                })
            })
            .collect(),
        Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
    }
}

/// A placement's answer after its retries: never confirmed and cannot be asked is `unknown`,
/// for reconciliation to settle by client order id (never `failed`: the venue may have it).
fn unknown_after_retries<T>(placed: Result<T, (BrokerError, u32)>) -> Result<T, BrokerError> {
    match placed {
        Ok(p) => Ok(p),
        Err((BrokerError::Transient { message, .. }, attempts)) => Err(BrokerError::Transient {
            message: format!(
                "venue unavailable after {attempts} attempts: {message}; the order is unknown \
                 until reconciliation finds it at the venue"
            ),
            retry_after: None,
        }),
        Err((e, _)) => Err(e),
    }
}

/// The message's outcome from its orders after placing, and the first failure if any.
pub(super) fn outcome_of(
    orders: &[OrderRecord],
    failure: Option<BrokerError>,
) -> (Outcome, Option<String>) {
    if let Some(error) = failure {
        let outcome = match error {
            BrokerError::Invalid { .. } => Outcome::Invalid,
            BrokerError::Transient { .. } => Outcome::Unknown,
            BrokerError::Rejected { .. } => Outcome::Failed,
        };
        (outcome, Some(error.to_string()))
    } else if let Some(c) = orders.iter().find(|o| o.status == OrderState::Cancelled) {
        let reason = format!("order {} was cancelled by the venue", c.client_order_id);
        (Outcome::Failed, Some(reason))
    } else if orders.iter().any(|o| o.status == OrderState::Failed) {
        (Outcome::Failed, orders.iter().find_map(|o| o.error.clone()))
    } else if orders.iter().all(|o| o.status == OrderState::Filled) {
        (Outcome::Filled, None)
    } else {
        (Outcome::Placed, None)
    }
}

/// The broker's view of a journaled order.
pub(super) fn to_request(o: &OrderRecord) -> Result<OrderRequest, BrokerError> {
    let positive = |d: Decimal, what: &str| {
        Positive::new(d).map_err(|_| BrokerError::Invalid {
            message: format!("{what}: must be positive"),
        })
    };
    let optional = |d: Option<Decimal>, what: &str| d.map(|d| positive(d, what)).transpose();
    Ok(OrderRequest {
        client_order_id: o.client_order_id.clone(),
        account: o.account.clone(),
        symbol: o.symbol.clone(),
        side: o.side,
        quantity: positive(o.quantity, "quantity")?,
        order_type: o.order_type,
        limit_price: optional(o.limit_price, "limit_price")?,
        stop_price: optional(o.stop_price, "stop_price")?,
        tif: o.tif,
        reference_price: optional(o.reference_price, "price")?,
        product: o.product,
        exits: o.exits,
        reduce_only: super::plan::reduces_only(o),
    })
}

/// The venue's answer as a settlement, with the position change its fill causes.
pub(super) fn settlement(order: &OrderRecord, p: &Placement, now_ms: i64) -> Settlement {
    Settlement {
        fee: p.fee,
        client_order_id: order.client_order_id.clone(),
        status: OrderState::from_status(p.status),
        venue_order_id: p.venue_order_id.clone(),
        filled_quantity: p.filled_quantity,
        average_price: p.average_price,
        error: None,
        position_delta: signed(order.side, p.filled_quantity),
        now_ms,
    }
}

/// A failed order as a settlement: nothing filled.
fn failed(order: &OrderRecord, error: &BrokerError, now_ms: i64) -> Settlement {
    Settlement {
        fee: None,
        client_order_id: order.client_order_id.clone(),
        status: OrderState::Failed,
        venue_order_id: None,
        filled_quantity: Decimal::ZERO,
        average_price: None,
        error: Some(error.to_string()),
        position_delta: Decimal::ZERO,
        now_ms,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use alertgate_shared::SystemClock;

    use super::*;
    use crate::broker::BrokerFuture;
    use crate::order::{OrderStatus, OrderType, Side, TimeInForce};

    /// Busy (with a `Retry-After`) for the first `busy` calls, then fills.
    #[derive(Debug)]
    struct Busy {
        busy: Mutex<u32>,
        retry_after: Duration,
        seen: Mutex<Vec<String>>,
    }

    impl Broker for Busy {
        fn name(&self) -> &'static str {
            "busy"
        }

        fn place<'a>(
            &'a self,
            order: &'a OrderRequest,
        ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
            Box::pin(async move {
                self.seen
                    .lock()
                    .unwrap()
                    .push(order.client_order_id.clone());
                let mut busy = self.busy.lock().unwrap();
                if *busy > 0 {
                    *busy -= 1;
                    return Err(BrokerError::Transient {
                        message: "busy".into(),
                        retry_after: Some(self.retry_after),
                    });
                }
                Ok(Placement {
                    venue_order_id: None,
                    status: OrderStatus::Filled,
                    filled_quantity: order.quantity.get(),
                    average_price: None,
                    fee: None,
                })
            })
        }
    }

    fn request() -> OrderRequest {
        OrderRequest {
            client_order_id: "msg_1-0".into(),
            account: "main".into(),
            symbol: "AAA".into(),
            side: Side::Buy,
            quantity: "1".parse().unwrap(),
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: None,
            product: None,
            exits: Default::default(),
            reduce_only: false,
        }
    }

    #[tokio::test]
    async fn a_retry_waits_at_least_the_venues_retry_after_and_keeps_the_client_order_id() {
        let broker = Busy {
            busy: Mutex::new(2),
            retry_after: Duration::from_millis(30),
            seen: Mutex::new(Vec::new()),
        };
        let config = ExecutorConfig {
            retry_base_ms: 1,
            ..ExecutorConfig::default()
        };
        let metrics = Metrics::new();
        let placer = Placer {
            broker: &broker,
            config: &config,
            metrics: &metrics,
            clock: &SystemClock,
        };
        let started = Instant::now();
        let placed = placer.place_with_retries(&request()).await.unwrap();
        assert_eq!(placed.status, OrderStatus::Filled);
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(*broker.seen.lock().unwrap(), ["msg_1-0"; 3]);
    }

    #[test]
    fn a_venue_cancellation_fails_the_message_and_a_resting_order_leaves_it_placed() {
        let order = |status| OrderRecord {
            client_order_id: "c-0".into(),
            message_id: "m".into(),
            leg: 0,
            account: "main".into(),
            symbol: "AAA".into(),
            side: Side::Buy,
            quantity: Decimal::ONE,
            order_type: OrderType::Limit,
            limit_price: Some(Decimal::ONE),
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: None,
            product: None,
            status,
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
        };
        assert_eq!(
            outcome_of(&[order(OrderState::Cancelled)], None),
            (
                Outcome::Failed,
                Some("order c-0 was cancelled by the venue".into())
            )
        );
        assert_eq!(
            outcome_of(
                &[order(OrderState::Filled), order(OrderState::Placed)],
                None
            ),
            (Outcome::Placed, None)
        );
        let invalid = BrokerError::Invalid {
            message: "price: x".into(),
        };
        assert_eq!(
            outcome_of(&[order(OrderState::Failed)], Some(invalid)),
            (Outcome::Invalid, Some("price: x".into()))
        );
    }
}
