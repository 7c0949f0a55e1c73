//! Claiming a job across receivers that share a store: the (account, symbol) holds (one job per
//! key at a time on every receiver, [`crate::journal::KeyHold`]) and the message's lease, renewed
//! while the job runs. A receiver that dies stops renewing; once the lease has expired
//! (`executor.lease_seconds`) another receiver's resume takes the message over with the same
//! client order ids. A job that ends without recording its outcome (a journal error) lets its
//! lease go at once, so a redelivery to another receiver resumes it without waiting out the
//! lease. On the embedded store both are granted at once.

use std::time::Duration;

use super::{Execution, Inner, Job, Work};
use crate::journal::{EarlierPending, JournalError, KeyHold, Outcome};

/// What claiming found.
pub(super) enum Claimed {
    /// Run the job; dropping the claim releases the keys and stops renewing the lease.
    Run(Claim),
    /// Another receiver holds the message's lease.
    Elsewhere,
    /// Another receiver finished the message while this one waited.
    Done(Execution),
    /// A message of these keys journaled before this one is still `pending` (on a shared
    /// store): it goes first. The keys are let go again.
    Behind(EarlierPending),
}

/// The keys and the lease renewal of a running job.
#[derive(Debug)]
pub(super) struct Claim {
    /// Released on drop.
    _hold: KeyHold,
    /// Renews the lease until aborted.
    renewal: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

impl Inner {
    /// Takes the job's keys and its message's lease; for a shared store, refreshes the job from
    /// the journal (another receiver may have moved it on while this one waited).
    /// The job's keys are held, so no job of this receiver (nor, on a shared store, of another)
    /// for them is between its outcome's write and its commit: a resumed job (which may have
    /// been read before another job finished the message) reads the message again too.
    pub(super) async fn claim(&self, job: &mut Job) -> Result<Claimed, JournalError> {
        let keys: Vec<(String, String)> = job.keys().into_iter().collect();
        let hold = self.journal.hold_keys(keys.clone()).await?;
        if !self.take_lease(&job.message_id).await? {
            return Ok(Claimed::Elsewhere);
        }
        let shared = hold.is_shared();
        if shared {
            // Other receivers may have filled orders of these keys: positions are read again.
            self.positions.forget_symbols(keys.clone());
        }
        if shared || job.resumed {
            if let Some(done) = self.refresh(job).await? {
                return Ok(done);
            }
        }
        if shared {
            // Keys are held in arrival order per receiver, but a receiver that died after its
            // answer (or whose job waits in its own queue) leaves an earlier message of these
            // keys `pending`: a later one running first would reach the venue out of order.
            if let Some(earlier) = self.journal.earliest_pending(&job.message_id, keys).await? {
                return Ok(Claimed::Behind(earlier));
            }
        }
        if !shared {
            return Ok(Claimed::Run(Claim {
                _hold: hold,
                renewal: None,
            }));
        }
        let lease_ms = self.lease_ms();
        let (journal, clock, holder, id) = (
            self.journal.clone(),
            self.clock.clone(),
            self.holder.clone(),
            job.message_id.clone(),
        );
        let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1).max(1));
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let now = clock.now_unix_ms();
                match journal
                    .lease(&id, &holder, now, now.saturating_add(lease_ms))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(message_id = id, "lease taken over by another receiver");
                    }
                    Err(e) => tracing::warn!(message_id = id, error = %e, "cannot renew lease"),
                }
            }
        });
        Ok(Claimed::Run(Claim {
            _hold: hold,
            renewal: Some(renewal),
        }))
    }

    /// `executor.lease_seconds` in ms.
    pub(super) fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Takes (or renews) this receiver's lease on message `id`; `false` while another receiver
    /// holds a running one.
    pub(super) async fn take_lease(&self, id: &str) -> Result<bool, JournalError> {
        let now = self.clock.now_unix_ms();
        self.journal
            .lease(id, &self.holder, now, now.saturating_add(self.lease_ms()))
            .await
    }

    /// Lets this receiver's lease on message `id` expire now (best effort: when the journal is
    /// unreachable the lease runs out by itself).
    pub(super) async fn release_lease(&self, id: &str) {
        let now = self.clock.now_unix_ms();
        if let Err(e) = self.journal.lease(id, &self.holder, now, now).await {
            tracing::debug!(message_id = id, error = %e, "cannot release the lease; it expires");
        }
    }

    /// Reads the job's message again: `Some` when it is final already (another job finished
    /// it); its journaled orders become the work when there are any.
    async fn refresh(&self, job: &mut Job) -> Result<Option<Claimed>, JournalError> {
        if let Some(record) = self.journal.message(&job.message_id).await? {
            if record.outcome != Outcome::Pending {
                return Ok(Some(Claimed::Done(Execution {
                    outcome: record.outcome,
                    reason: record.reason,
                    orders: record.orders,
                })));
            }
            if !record.orders.is_empty() {
                job.work = Work::Resume(record.orders);
            }
        }
        Ok(None)
    }
}
