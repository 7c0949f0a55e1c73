//! Placement: sends a message's journaled orders to the venue, in leg order, and turns the
//! answers into settlements and the message's outcome.
//!
//! A transient error is retried with the same client order id (the venue's idempotency key):
//! at most `executor.max_attempts` attempts, exponential backoff from `retry_base_ms` to
//! `retry_max_ms`, never sooner than the venue's `Retry-After` and never longer than a minute.
//! Once one order fails, the later ones are not sent (`skipped`).

use std::time::{Duration, Instant};

use alertgate_shared::retry::Backoff;
use alertgate_shared::Clock;
use rust_decimal::Decimal;

use super::plan::signed;
use crate::broker::{Broker, BrokerError};
use crate::config::ExecutorConfig;
use crate::journal::{JournalError, JournalFuture, OrderRecord, OrderState, Outcome, Settlement};
use crate::metrics::Metrics;
use crate::order::{OrderRequest, Placement, Positive};

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
        for order in orders.iter_mut() {
            if order.status != OrderState::New {
                continue;
            }
            if failure.is_some() {
                order.status = OrderState::Skipped;
                continue;
            }
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
            let now = self.clock.now_unix_ms();
            let settlement = match result {
                Ok(placement) => settlement(order, &placement, now),
                Err(error) => {
                    tracing::warn!(message_id, client_order_id = order.client_order_id, error = %error, "order failed");
                    let settlement = failed(order, &error, now);
                    failure = Some(error);
                    settlement
                }
            };
            order.status = settlement.status;
            order.venue_order_id.clone_from(&settlement.venue_order_id);
            order.filled_quantity = settlement.filled_quantity;
            order.average_price = settlement.average_price;
            order.error.clone_from(&settlement.error);
            order.updated_at_ms = now;
            self.metrics.order(&order.venue, order.status);
            settlements.push(settlement);
        }
        let (outcome, reason) = outcome_of(&orders, failure);
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

    /// Places one order, retrying transient errors with the same client order id.
    pub async fn place_with_retries(
        &self,
        request: &OrderRequest,
    ) -> Result<Placement, BrokerError> {
        let backoff = Backoff::new(
            Duration::from_millis(self.config.retry_base_ms),
            Duration::from_millis(self.config.retry_max_ms),
            MAX_RETRY_WAIT,
        );
        let mut attempt = 1;
        loop {
            match self.broker.place(request).await {
                Ok(p) => return Ok(p),
                Err(BrokerError::Transient {
                    message,
                    retry_after,
                }) => {
                    if attempt >= self.config.max_attempts {
                        return Err(BrokerError::Rejected {
                            message: format!(
                                "venue unavailable after {attempt} attempts: {message} (if the \
                                 venue may have received the order, check it there before \
                                 sending the alert again)"
                            ),
                        });
                    }
                    let wait = backoff.delay_now(attempt, retry_after);
                    tracing::warn!(
                        client_order_id = request.client_order_id,
                        attempt,
                        ?wait,
                        message,
                        "transient broker error; retrying with the same id"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The message's outcome from its orders after placing, and the first failure if any.
fn outcome_of(orders: &[OrderRecord], failure: Option<BrokerError>) -> (Outcome, Option<String>) {
    if let Some(error) = failure {
        let outcome = match error {
            BrokerError::Invalid { .. } => Outcome::Invalid,
            _ => Outcome::Failed,
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
fn to_request(o: &OrderRecord) -> Result<OrderRequest, BrokerError> {
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
    })
}

/// The venue's answer as a settlement, with the position change its fill causes.
fn settlement(order: &OrderRecord, p: &Placement, now_ms: i64) -> Settlement {
    Settlement {
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
