//! The paper broker (default): orders never leave the receiver. Market orders fill at once at the
//! alert's reference price (`price`, usually `{{close}}`); limit, stop and stop-limit orders rest
//! as `placed` (they are not simulated further). A market order without a reference price is
//! refused as `invalid`: there is nothing honest to fill it at.
//!
//! Its book lives in the journal ([`PaperBook`]), so `place` is idempotent on the client order id
//! across restarts: the first answer recorded for an id is the answer forever.

use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::Clock;

use super::{Broker, BrokerError, BrokerFuture, OrderStatus, Placement};
use crate::journal::{JournalError, PaperBook};
use crate::order::{OrderRequest, OrderType};

/// The embedded paper venue.
#[derive(Debug, Clone)]
pub struct PaperBroker {
    /// Where its orders are kept.
    book: Arc<dyn PaperBook>,
    /// Time of each fill.
    clock: Arc<dyn Clock>,
    /// Test/demo knob (`[broker.paper] fill_delay_ms`): pause before answering.
    fill_delay: Duration,
}

impl PaperBroker {
    /// A paper broker keeping its book in `book`.
    pub fn new(book: Arc<dyn PaperBook>, clock: Arc<dyn Clock>, fill_delay: Duration) -> Self {
        Self {
            book,
            clock,
            fill_delay,
        }
    }

    fn venue_order_id(client_order_id: &str) -> String {
        format!("paper-{client_order_id}")
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

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(async move {
            if let Some(existing) = self
                .book
                .lookup(&order.client_order_id)
                .await
                .map_err(transient)?
            {
                return Ok(existing);
            }
            if !self.fill_delay.is_zero() {
                tokio::time::sleep(self.fill_delay).await;
            }
            let placement = match order.order_type {
                OrderType::Market => {
                    let Some(price) = order.reference_price else {
                        return Err(BrokerError::Invalid {
                            message:
                                "price: a paper market order fills at the alert's reference price; \
                                      add \"price\": \"{{close}}\" to the alert"
                                    .into(),
                        });
                    };
                    Placement {
                        venue_order_id: Some(Self::venue_order_id(&order.client_order_id)),
                        status: OrderStatus::Filled,
                        filled_quantity: order.quantity.get(),
                        average_price: Some(price.get()),
                    }
                }
                OrderType::Limit | OrderType::Stop | OrderType::StopLimit => Placement {
                    venue_order_id: Some(Self::venue_order_id(&order.client_order_id)),
                    status: OrderStatus::Placed,
                    filled_quantity: rust_decimal::Decimal::ZERO,
                    average_price: None,
                },
            };
            self.book
                .record_once(&order.client_order_id, placement, self.clock.now_unix_ms())
                .await
                .map_err(transient)
        })
    }
}
