//! Claiming a job across receivers that share a store: the (account, symbol) holds (one job per
//! key at a time on every receiver, [`crate::journal::KeyHold`]) and the message's lease, renewed
//! while the job runs. A receiver that dies stops renewing; once the lease has expired
//! (`executor.lease_seconds`) another receiver's resume takes the message over with the same
//! client order ids. On the embedded store both are granted at once.

use std::time::Duration;

use rand::Rng;

use super::{Execution, Inner, Job, Work};
use crate::journal::{JournalError, KeyHold, Outcome};

/// A random name for this receiver in leases.
pub(super) fn holder_id() -> String {
    format!("receiver-{:016x}", rand::thread_rng().gen::<u64>())
}

/// What claiming found.
pub(super) enum Claimed {
    /// Run the job; dropping the claim releases the keys and stops renewing the lease.
    Run(Claim),
    /// Another receiver holds the message's lease.
    Elsewhere,
    /// Another receiver finished the message while this one waited.
    Done(Execution),
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
    pub(super) async fn claim(&self, job: &mut Job) -> Result<Claimed, JournalError> {
        let keys: Vec<(String, String)> = job.keys().into_iter().collect();
        let hold = self.journal.hold_keys(keys.clone()).await?;
        let lease_ms =
            i64::try_from(self.config.lease_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let now = self.clock.now_unix_ms();
        if !self
            .journal
            .lease(
                &job.message_id,
                &self.holder,
                now,
                now.saturating_add(lease_ms),
            )
            .await?
        {
            return Ok(Claimed::Elsewhere);
        }
        if !hold.is_shared() {
            return Ok(Claimed::Run(Claim {
                _hold: hold,
                renewal: None,
            }));
        }
        // Other receivers may have filled orders of these keys: positions are read again.
        self.positions.forget_symbols(keys);
        if let Some(record) = self.journal.message(&job.message_id).await? {
            if record.outcome != Outcome::Pending {
                return Ok(Claimed::Done(Execution {
                    outcome: record.outcome,
                    reason: record.reason,
                    orders: record.orders,
                }));
            }
            if !record.orders.is_empty() {
                job.work = Work::Resume(record.orders);
            }
        }
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
}
