//! Outcome recording: the venue's answers and the message's outcome go to the journal in one
//! write, the position cache moves with the fills, and the (account, symbol) turn is released
//! (by dropping it) between queuing that write and waiting for it to be durable, when every
//! order is known to the venue. An order the venue does not have (never confirmed, refused, or
//! not sent) is still `new` in the journal until that write commits: were the write lost, a
//! resume would send it, so the turn is kept until the write is durable, and kept on an error
//! for the job to retry ahead of the key's later messages.

use alertgate_shared::Clock;
use rust_decimal::Decimal;

use super::positions::{PositionCache, PositionKey};
use super::queue::Turn;
use super::tally::Tally;
use super::{Execution, Key};
use crate::journal::{Journal, JournalError, OrderRecord, OrderState, Outcome, Settlement};

/// What recording needs.
#[derive(Debug, Clone, Copy)]
pub struct Recorder<'a> {
    /// Where outcomes go.
    pub journal: &'a dyn Journal,
    /// Moved by each fill.
    pub positions: &'a PositionCache,
    /// Counts outcomes.
    pub tally: &'a Tally,
    /// Time of the record.
    pub clock: &'a dyn Clock,
}

/// A message's final result, ready to record.
#[derive(Debug)]
pub struct Finished {
    /// The outcome.
    pub outcome: Outcome,
    /// Why.
    pub reason: Option<String>,
    /// The orders as they stand.
    pub orders: Vec<OrderRecord>,
    /// The venue's answers not yet recorded.
    pub settlements: Vec<Settlement>,
}

impl Finished {
    /// An outcome reached without placing anything.
    pub fn without_orders(outcome: Outcome, reason: Option<String>) -> Self {
        Self {
            outcome,
            reason,
            orders: Vec::new(),
            settlements: Vec::new(),
        }
    }
}

impl Recorder<'_> {
    /// Queues the completion write, moves the cached positions, releases `turn` (the journal's
    /// single writer keeps the next job's writes behind this one), then waits for the write.
    /// `turn` is released only once the write is durable when an order is not at the venue,
    /// and is still there after an error then (see the module's documentation).
    pub async fn record(
        &self,
        message_id: &str,
        finished: Finished,
        turn: &mut Option<Turn<Key>>,
    ) -> Result<Execution, JournalError> {
        let Finished {
            outcome,
            reason,
            orders,
            settlements,
        } = finished;
        let deltas: Vec<(PositionKey, Decimal)> = settlements
            .iter()
            .filter(|s| !s.position_delta.is_zero())
            .filter_map(|s| {
                let o = orders
                    .iter()
                    .find(|o| o.client_order_id == s.client_order_id)?;
                Some((super::positions::key_of(o), s.position_delta))
            })
            .collect();
        let now = self.clock.now_unix_ms();
        let written = self
            .journal
            .complete(settlements, message_id, outcome, reason.clone(), now);
        // The fills happened at the venue: the next job must see them, even before the journal
        // has them on disk.
        self.positions.apply(&deltas);
        if orders.iter().all(|o| at_venue(o.status)) {
            turn.take();
        }
        if let Err(e) = written.await {
            // The journal may be behind the cache now: reload these keys from it next time. The
            // write may have committed all the same (its answer lost): the tally learns which
            // at the next read; if not, the message stays `pending` and is resumed.
            self.positions
                .forget(deltas.into_iter().map(|(key, _)| key));
            self.tally.unsure(message_id, Some(outcome));
            return Err(e);
        }
        turn.take();
        self.tally.written(message_id, outcome);
        tracing::info!(
            message_id,
            outcome = outcome.as_str(),
            reason,
            "message executed"
        );
        Ok(Execution {
            outcome,
            reason,
            orders,
        })
    }
}

/// Whether the venue has an order in this state, so that a resume finds it there (by its
/// client order id) instead of sending it.
fn at_venue(status: OrderState) -> bool {
    match status {
        OrderState::Placed
        | OrderState::PartiallyFilled
        | OrderState::Filled
        | OrderState::Cancelled => true,
        OrderState::New | OrderState::Failed | OrderState::Skipped | OrderState::Unknown => false,
    }
}
