//! Settling an order after the fact: reconciliation found an `unknown` order at the venue (or
//! did not, past the grace). The settlement runs in the order's (account, symbol) turn, like a
//! job, so it never races one, and goes through the [`Recorder`](super::record::Recorder): the
//! journal, the message's outcome and the position cache move together.

use super::place::{adopt, outcome_of, settlement};
use super::record::Finished;
use super::{Execution, Executor};
use crate::journal::{JournalError, OrderRecord, OrderState, Settlement};
use crate::order::Placement;
use crate::reconcile::NOT_FOUND_AT_VENUE;
use rust_decimal::Decimal;

/// What the venue said about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// It has the order, in this state.
    At(Placement),
    /// It does not, and the grace has passed: `failed`, `not_found_at_venue`.
    NotFound,
}

impl Executor {
    /// Settles `order` (journaled `unknown`) to what the venue said, and recomputes its
    /// message's outcome. `None` when the order is no longer `unknown` (settled meanwhile).
    pub async fn settle(
        &self,
        order: &OrderRecord,
        found: Found,
    ) -> Result<Option<Execution>, JournalError> {
        let inner = &self.inner;
        let key = (order.account.clone(), order.symbol.clone());
        let turn = inner.queue.enqueue([key]).turn().await;
        let Some(message) = inner.journal.message(&order.message_id).await? else {
            return Ok(None);
        };
        let mut orders = message.orders;
        let Some(current) = orders
            .iter_mut()
            .find(|o| o.client_order_id == order.client_order_id)
        else {
            return Ok(None);
        };
        if current.status != OrderState::Unknown {
            return Ok(None);
        }
        let now = inner.clock.now_unix_ms();
        let settled = match found {
            Found::At(placement) => settlement(current, &placement, now),
            Found::NotFound => Settlement {
                client_order_id: current.client_order_id.clone(),
                status: OrderState::Failed,
                venue_order_id: None,
                filled_quantity: Decimal::ZERO,
                average_price: None,
                error: Some(NOT_FOUND_AT_VENUE.to_owned()),
                position_delta: Decimal::ZERO,
                now_ms: now,
                fee: None,
            },
        };
        adopt(current, &settled);
        inner.metrics.order(&current.venue, current.status);
        tracing::info!(
            client_order_id = current.client_order_id,
            status = current.status.as_str(),
            "reconciliation settled an unknown order"
        );
        // Orders skipped behind the unknown one were never sent: they do not decide the outcome.
        let sent: Vec<OrderRecord> = orders
            .iter()
            .filter(|o| o.status != OrderState::Skipped)
            .cloned()
            .collect();
        let (outcome, reason) = if sent.iter().any(|o| o.status == OrderState::Unknown) {
            (crate::journal::Outcome::Unknown, message.reason.clone())
        } else {
            outcome_of(&sent, None)
        };
        let finished = Finished {
            outcome,
            reason,
            orders,
            settlements: vec![settled],
        };
        inner
            .recorder()
            .record(&order.message_id, finished, &mut Some(turn))
            .await
            .map(Some)
    }
}

impl Executor {
    /// Follows the working orders of (account, symbol) at `venue`, in that key's turn (see
    /// [`super::working`]): answers how many changed at the venue.
    pub async fn follow(
        &self,
        account: &str,
        symbol: &str,
        venue: &str,
    ) -> Result<usize, JournalError> {
        let key = (account.to_owned(), symbol.to_owned());
        let _turn = self.inner.queue.enqueue([key]).turn().await;
        self.inner.follow(account, symbol, venue).await
    }
}
