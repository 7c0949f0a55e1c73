//! `alertgate_receiver_messages_total`: each message counted once, by the receiver whose write
//! took it out of `pending` (or journaled it final at admission).
//!
//! The counter is a Prometheus counter: it belongs to one receiver process and starts at zero
//! with it (dashboards sum `rate()` over receivers). Exactly once therefore means: every final
//! transition is counted by the process that made it, and by no other. Deriving the count from
//! the journal at start would not do: receivers sharing a database would each report the
//! shared totals, and a restart would count its predecessor's messages again.
//!
//! The journal records who made the transition, in the transition's own transaction:
//! [`MessageRecord::finished_by`] is the writer's name ([`crate::journal::Journal::writer`],
//! random per process). A write whose answer came back counts at once ([`Tally::written`]). A
//! write that failed may have committed all the same (the connection closed during `COMMIT`,
//! an fsync error after it): it is noted as unsure ([`Tally::unsure`]) and settled by the first
//! read of the message issued after the failure ([`Tally::read`]: a redelivery's admission, the
//! resume sweep): counted when the journal shows this receiver finished it with that outcome,
//! dropped otherwise (it did not commit, and whoever finishes the message later counts it;
//! another receiver that finished it counted it itself). A receiver that dies with unsure
//! writes loses them with the rest of its counter.
//!
//! Reconciliation settling an `unknown` message counts it again under the settled outcome
//! (RELIABILITY.md, "Found" 6); such a write is noted the same way.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::journal::{MessageRecord, Outcome};
use crate::metrics::Metrics;

/// Counts final outcomes exactly once; cheap to share behind the executor.
#[derive(Debug)]
pub struct Tally {
    /// Where the counter lives.
    metrics: Metrics,
    /// This receiver's name in [`MessageRecord::finished_by`].
    writer: String,
    /// Messages whose final write failed, by id: when it was noted, and the outcome written
    /// (`None`: decided by the journal, an admission that may have become `duplicate`).
    unsure: Mutex<Unsure>,
}

#[derive(Debug, Default)]
struct Unsure {
    /// Numbers notes, so a read settles only those noted before it was issued.
    next: u64,
    by_id: HashMap<String, (u64, Option<Outcome>)>,
}

/// Taken before a read of the journal ([`Tally::mark`]): the read settles what was unsure then.
#[derive(Debug, Clone, Copy)]
pub struct Mark(u64);

impl Tally {
    /// A tally into `metrics` for the receiver whose journal is named `writer`.
    pub fn new(metrics: Metrics, writer: &str) -> Self {
        Self {
            metrics,
            writer: writer.to_owned(),
            unsure: Mutex::new(Unsure::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Unsure> {
        self.unsure.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This receiver's write of final `outcome` for message `id` is durable: counted. An
    /// earlier unsure write of it is moot (had it committed, this one would not have run).
    pub fn written(&self, id: &str, outcome: Outcome) {
        self.lock().by_id.remove(id);
        self.metrics.message(outcome);
    }

    /// This receiver's write of `outcome` (`None`: an admission, whose outcome the journal
    /// decides) for message `id` failed; it may have committed all the same.
    pub fn unsure(&self, id: &str, outcome: Option<Outcome>) {
        let mut unsure = self.lock();
        let n = unsure.next;
        unsure.next += 1;
        unsure.by_id.insert(id.to_owned(), (n, outcome));
    }

    /// Taken before reading messages from the journal, for [`Tally::read`].
    pub fn mark(&self) -> Mark {
        Mark(self.lock().next)
    }

    /// The ids unsure before `mark`, to read.
    pub fn unsure_ids(&self, mark: Mark) -> Vec<String> {
        self.lock()
            .by_id
            .iter()
            .filter(|(_, (n, _))| *n < mark.0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Message `id` as a read issued after `mark` found it (`None`: not journaled): settles an
    /// unsure write noted before `mark`, counting it when it committed.
    pub fn read(&self, mark: Mark, id: &str, record: Option<&MessageRecord>) {
        let mut unsure = self.lock();
        let Some(&(n, written)) = unsure.by_id.get(id) else {
            return;
        };
        if n >= mark.0 {
            return;
        }
        unsure.by_id.remove(id);
        drop(unsure);
        let Some(record) = record else {
            return;
        };
        let committed = record.outcome != Outcome::Pending
            && record.finished_by.as_deref() == Some(self.writer.as_str())
            && written.is_none_or(|o| o == record.outcome);
        if committed {
            tracing::info!(
                message_id = id,
                outcome = record.outcome.as_str(),
                "a write whose answer was lost had committed; counted"
            );
            self.metrics.message(record.outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: Outcome, by: Option<&str>) -> MessageRecord {
        MessageRecord {
            id: "m1".into(),
            account: Some("main".into()),
            idempotency_key: None,
            received_at_ms: None,
            recorded_at_ms: 0,
            updated_at_ms: 0,
            outcome,
            reason: None,
            envelope: Vec::new(),
            finished_by: by.map(Into::into),
            orders: Vec::new(),
        }
    }

    fn counted(metrics: &Metrics, outcome: &str) -> u64 {
        let series = format!("alertgate_receiver_messages_total{{outcome=\"{outcome}\"}} ");
        metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |n| n.parse().unwrap())
    }

    #[test]
    fn an_unsure_write_counts_once_when_a_later_read_shows_this_receiver_finished_it() {
        let metrics = Metrics::new();
        let tally = Tally::new(metrics.clone(), "me");
        tally.unsure("m1", Some(Outcome::Filled));
        let mark = tally.mark();
        tally.read(mark, "m1", Some(&record(Outcome::Filled, Some("me"))));
        tally.read(mark, "m1", Some(&record(Outcome::Filled, Some("me"))));
        assert_eq!(counted(&metrics, "filled"), 1);
    }

    #[test]
    fn an_unsure_write_that_did_not_commit_or_was_finished_elsewhere_is_not_counted() {
        let metrics = Metrics::new();
        let tally = Tally::new(metrics.clone(), "me");
        for (id, found) in [
            ("pending", Some(record(Outcome::Pending, None))),
            ("absent", None),
            ("elsewhere", Some(record(Outcome::Filled, Some("other")))),
            ("changed", Some(record(Outcome::Failed, Some("me")))),
        ] {
            tally.unsure(id, Some(Outcome::Filled));
            let mark = tally.mark();
            tally.read(mark, id, found.as_ref());
        }
        assert_eq!(counted(&metrics, "filled"), 0);
        assert_eq!(counted(&metrics, "failed"), 0);
        assert!(tally.unsure_ids(tally.mark()).is_empty(), "all settled");
    }

    #[test]
    fn a_read_issued_before_the_write_failed_settles_nothing() {
        let metrics = Metrics::new();
        let tally = Tally::new(metrics.clone(), "me");
        let early = tally.mark();
        tally.unsure("m1", None);
        tally.read(early, "m1", Some(&record(Outcome::Pending, None)));
        assert_eq!(tally.unsure_ids(tally.mark()), ["m1"]);
        tally.read(
            tally.mark(),
            "m1",
            Some(&record(Outcome::Duplicate, Some("me"))),
        );
        assert_eq!(counted(&metrics, "duplicate"), 1);
    }
}
