//! The paper broker (default): orders never leave the receiver. Market orders fill at once at the
//! alert's reference price (`price`, usually `{{close}}`); limit, stop and stop-limit orders rest
//! as `placed` until a later alert's reference price crosses them (the executor's crossing step
//! fills them through `Broker::fill_resting`) or a cancel cancels them. A market order without a reference price is
//! refused as `invalid`: there is nothing honest to fill it at.
//!
//! Its book lives in the journal's storage ([`PlacementStore`]), so `place` is idempotent on the
//! client order id across restarts: the first answer recorded for an id is the answer forever.
//! What an order's answer is ([`answer`]) is decided here; the store only keeps it.
//!
//! Positions are the journal's (the paper venue has no other record, so it does not "report"
//! them); equity is `[broker.paper] equity`; lot rounding only when `lot_step` is configured.

use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::Clock;
use rust_decimal::Decimal;

use super::{Broker, BrokerError, BrokerFuture, LotRule};
use crate::journal::{JournalError, PlacementStore};
use crate::order::{OrderRequest, OrderStatus, OrderType, Placement};

/// The embedded paper venue.
#[derive(Debug, Clone)]
pub struct PaperBroker {
    /// Where its orders are kept.
    book: Arc<dyn PlacementStore>,
    /// Time of each fill.
    clock: Arc<dyn Clock>,
    /// Test/demo knob (`[broker.paper] fill_delay_ms`): pause before answering.
    fill_delay: Duration,
    /// `[broker.paper] equity`: what `percent_of_equity` sizes from.
    equity: Decimal,
    /// `[broker.paper] lot_step`: sized quantities round down to it; `None`: no rounding.
    lot_step: Option<Decimal>,
    /// `[broker.paper] fee_rate`: the fee on each fill, as a fraction of its notional.
    fee_rate: Decimal,
}

impl PaperBroker {
    /// A paper broker keeping its book in `book`.
    pub fn new(book: Arc<dyn PlacementStore>, clock: Arc<dyn Clock>, fill_delay: Duration) -> Self {
        Self {
            book,
            clock,
            fill_delay,
            equity: super::config::DEFAULT_PAPER_EQUITY,
            lot_step: None,
            fee_rate: Decimal::ZERO,
        }
    }

    /// Charges `rate` × notional on every fill (reported as the placement's fee).
    pub fn with_fee_rate(mut self, rate: Decimal) -> Self {
        self.fee_rate = rate.max(Decimal::ZERO);
        self
    }

    /// `placement` with the fee of what it filled (derived, so every answer for an order,
    /// first or looked up again, reports the same fee).
    fn charged(&self, mut placement: Placement) -> Placement {
        if let Some(price) = placement.average_price {
            if !self.fee_rate.is_zero() && !placement.filled_quantity.is_zero() {
                placement.fee =
                    Some((placement.filled_quantity * price * self.fee_rate).normalize());
            }
        }
        placement
    }

    /// The account equity `percent_of_equity` sizes from.
    pub fn with_equity(mut self, equity: Decimal) -> Self {
        self.equity = equity;
        self
    }

    /// Rounds sized quantities down to `step` (`None`: no rounding).
    pub fn with_lot_step(mut self, step: Option<Decimal>) -> Self {
        self.lot_step = step.filter(|s| *s > Decimal::ZERO);
        self
    }
}

/// The paper venue's answer to `order`, before its book has its say: market orders fill at the
/// reference price, the others rest.
pub fn answer(order: &OrderRequest) -> Result<Placement, BrokerError> {
    let venue_order_id = Some(format!("paper-{}", order.client_order_id));
    match order.order_type {
        OrderType::Market => {
            let Some(price) = order.reference_price else {
                return Err(BrokerError::Invalid {
                    message: "price: a paper market order fills at the alert's reference price; \
                              add \"price\": \"{{close}}\" to the alert"
                        .into(),
                });
            };
            Ok(Placement {
                venue_order_id,
                status: OrderStatus::Filled,
                filled_quantity: order.quantity.get(),
                average_price: Some(price.get()),
                fee: None,
            })
        }
        OrderType::Limit | OrderType::Stop | OrderType::StopLimit => Ok(Placement {
            venue_order_id,
            status: OrderStatus::Placed,
            filled_quantity: Decimal::ZERO,
            average_price: None,
            fee: None,
        }),
    }
}

fn transient(e: JournalError) -> BrokerError {
    BrokerError::Transient {
        message: format!("paper book unavailable: {e}"),
        retry_after: None,
    }
}

impl Broker for PaperBroker {
    fn name(&self) -> &'static str {
        "paper"
    }

    fn shares_journal(&self) -> bool {
        true
    }

    fn simulates_resting(&self) -> bool {
        true
    }

    fn exits(&self) -> crate::order::ExitSupport {
        crate::order::ExitSupport::Orders
    }

    fn modify<'a>(
        &'a self,
        order: &'a OrderRequest,
        _venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        // In place: the book keeps no prices (the journal's order row does); only a working
        // order can move.
        Box::pin(async move {
            match self
                .book
                .lookup(&order.client_order_id)
                .await
                .map_err(transient)?
            {
                Some(p)
                    if matches!(p.status, OrderStatus::Placed | OrderStatus::PartiallyFilled) =>
                {
                    Ok(self.charged(p))
                }
                Some(p) => Ok(self.charged(p)),
                None => Err(BrokerError::Rejected {
                    message: format!("paper: no order {}", order.client_order_id),
                }),
            }
        })
    }

    fn fill_resting<'a>(
        &'a self,
        client_order_id: &'a str,
        quantity: Decimal,
        price: Decimal,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        Box::pin(async move {
            let Some(mut placement) = self.book.lookup(client_order_id).await.map_err(transient)?
            else {
                return Ok(None);
            };
            if matches!(
                placement.status,
                OrderStatus::Placed | OrderStatus::PartiallyFilled
            ) {
                placement.status = OrderStatus::Filled;
                placement.filled_quantity = quantity;
                placement.average_price = Some(price);
                self.book
                    .update(client_order_id, placement.clone())
                    .await
                    .map_err(transient)?;
            }
            Ok(Some(self.charged(placement)))
        })
    }

    fn cancel<'a>(
        &'a self,
        _symbol: &'a str,
        client_order_id: &'a str,
        _venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(async move {
            let Some(mut placement) = self.book.lookup(client_order_id).await.map_err(transient)?
            else {
                return Err(BrokerError::Rejected {
                    message: format!("paper: no order {client_order_id}"),
                });
            };
            if matches!(
                placement.status,
                OrderStatus::Placed | OrderStatus::PartiallyFilled
            ) {
                placement.status = OrderStatus::Cancelled;
                self.book
                    .update(client_order_id, placement.clone())
                    .await
                    .map_err(transient)?;
            }
            Ok(self.charged(placement))
        })
    }

    fn equity<'a>(
        &'a self,
        _account: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Decimal>, BrokerError>> {
        let equity = self.equity;
        Box::pin(async move { Ok(Some(equity)) })
    }

    fn lookup<'a>(
        &'a self,
        _symbol: &'a str,
        client_order_id: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        Box::pin(async move {
            let found = self.book.lookup(client_order_id).await.map_err(transient)?;
            Ok(found.map(|p| self.charged(p)))
        })
    }

    fn lot_rule<'a>(
        &'a self,
        _symbol: &'a str,
    ) -> BrokerFuture<'a, Result<Option<LotRule>, BrokerError>> {
        let rule = self.lot_step.map(|step| LotRule {
            step,
            min: Decimal::ZERO,
        });
        Box::pin(async move { Ok(rule) })
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(async move {
            // No lookup first: `record_once` keeps the first answer recorded for an id and
            // returns it, so a repeated call answers exactly like the first.
            if !self.fill_delay.is_zero() {
                tokio::time::sleep(self.fill_delay).await;
            }
            let placement = answer(order)?;
            let kept = self
                .book
                .record_once(&order.client_order_id, placement, self.clock.now_unix_ms())
                .await
                .map_err(transient)?;
            Ok(self.charged(kept))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::SqliteJournal;
    use crate::order::{Side, TimeInForce};

    fn order(cid: &str, order_type: OrderType, reference: Option<&str>) -> OrderRequest {
        OrderRequest {
            client_order_id: cid.into(),
            account: "main".into(),
            symbol: "BTCUSDT".into(),
            side: Side::Buy,
            quantity: "2".parse().unwrap(),
            order_type,
            limit_price: (order_type == OrderType::Limit).then(|| "90".parse().unwrap()),
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: reference.map(|r| r.parse().unwrap()),
            product: None,
            exits: Default::default(),
            reduce_only: false,
        }
    }

    #[tokio::test]
    async fn placing_the_same_client_order_id_again_returns_the_first_answer_even_after_reopening()
    {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        let clock = Arc::new(alertgate_shared::ManualClock::at_unix(1_000));
        let first = {
            let book = Arc::new(SqliteJournal::open(&path, Duration::from_secs(1)).unwrap());
            let paper = PaperBroker::new(book, clock.clone(), Duration::ZERO);
            paper
                .place(&order("c-0", OrderType::Market, Some("100")))
                .await
                .unwrap()
        };
        assert_eq!(first.status, OrderStatus::Filled);
        assert_eq!(first.average_price, Some(rust_decimal::Decimal::from(100)));
        let book = Arc::new(SqliteJournal::open(&path, Duration::from_secs(1)).unwrap());
        let paper = PaperBroker::new(book, clock, Duration::ZERO);
        let again = paper
            .place(&order("c-0", OrderType::Market, Some("105")))
            .await
            .unwrap();
        assert_eq!(again, first, "the first fill stands");
    }

    #[tokio::test]
    async fn limit_orders_rest_and_market_orders_need_a_reference_price() {
        let dir = tempfile::tempdir().unwrap();
        let book = Arc::new(
            SqliteJournal::open(&dir.path().join("j.db"), Duration::from_secs(1)).unwrap(),
        );
        let paper = PaperBroker::new(
            book,
            Arc::new(alertgate_shared::SystemClock),
            Duration::ZERO,
        );
        let resting = paper
            .place(&order("c-1", OrderType::Limit, None))
            .await
            .unwrap();
        assert_eq!(
            (resting.status, resting.filled_quantity),
            (OrderStatus::Placed, rust_decimal::Decimal::ZERO)
        );
        let err = paper
            .place(&order("c-2", OrderType::Market, None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BrokerError::Invalid { ref message } if message.starts_with("price:")),
            "{err:?}"
        );
    }
}
