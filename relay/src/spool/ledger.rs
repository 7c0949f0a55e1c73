//! The spool's bookkeeping, in memory: which entries are pending and where their accept records
//! lie, which of them the forwarder has not taken yet (in acceptance order), how full the spool
//! is, and which segments may go.
//!
//! Only the writer thread adds and resolves entries, in the order their records reach the disk,
//! so the queue is in acceptance order and a segment's counts are exact when the writer decides
//! to delete it. A pending entry costs a few dozen bytes here; its body stays on disk, except for
//! a small bounded cache of the newest ones so an alert accepted while the forwarder is idle goes
//! out without a disk read.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{SpoolError, SpooledAlert};
use crate::config::SpoolSettings;

/// Bodies kept in memory for entries not yet taken, at most (the rest are read back from disk).
const CACHE_BYTES: usize = 1 << 20;

/// Where an accept record lies on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// The segment number.
    pub(super) segment: u64,
    /// Byte offset of the record's line in the segment.
    pub(super) offset: u64,
    /// Length of the line, newline included.
    pub(super) len: u32,
}

/// An entry waiting for the forwarder.
#[derive(Debug)]
pub(super) struct Queued {
    /// Its accept record.
    pub(super) at: Location,
    /// The alert itself while it is in the cache (boxed: most entries have none).
    pub(super) cached: Option<Box<SpooledAlert>>,
}

/// What is pending, in which segment (kept under the spool's mutex).
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Pending id → segment holding its accept record.
    pending: HashMap<String, u64>,
    /// Pending entries the forwarder has not taken yet, oldest first.
    queue: VecDeque<Queued>,
    /// Bytes of the bodies cached in `queue`.
    cached_bytes: usize,
    /// Segment number → what it holds.
    segments: BTreeMap<u64, SegmentMeta>,
    /// Bytes in all segment files.
    total_bytes: u64,
    /// Appends admitted but not yet acknowledged by the writer.
    in_flight: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct SegmentMeta {
    /// Accept records here not yet delivered or dead-lettered.
    unresolved: usize,
    /// File size, counted against `max_bytes`.
    bytes: u64,
}

impl Ledger {
    /// A segment found on disk at replay, `bytes` long.
    pub(super) fn found_segment(&mut self, n: u64, bytes: u64) {
        self.segments.entry(n).or_default().bytes = bytes;
        self.total_bytes += bytes;
    }

    /// The writer started segment `n`.
    pub(super) fn start_segment(&mut self, n: u64) {
        self.segments.entry(n).or_default();
    }

    /// Admits one append, unless `max_pending` or `max_bytes` is reached.
    pub(super) fn admit(&mut self, limits: &SpoolSettings) -> Result<(), SpoolError> {
        if self.pending.len() + self.in_flight >= limits.max_pending || self.over(limits.max_bytes)
        {
            return Err(SpoolError::Full);
        }
        self.in_flight += 1;
        Ok(())
    }

    /// An admitted append is over (written, failed, or abandoned by its caller).
    pub(super) fn settle(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Whether the segment files hold `max_bytes` or more.
    pub(super) fn over(&self, max_bytes: u64) -> bool {
        self.total_bytes >= max_bytes
    }

    /// `len` bytes were written to `segment`.
    pub(super) fn note_write(&mut self, segment: u64, len: u64) {
        self.total_bytes += len;
        self.segments.entry(segment).or_default().bytes += len;
    }

    /// Entry `id` is pending, its accept record at `at`. `alert` is kept in memory if the cache
    /// has room.
    pub(super) fn accepted(&mut self, id: String, at: Location, alert: Option<SpooledAlert>) {
        if self.pending.insert(id, at.segment).is_some() {
            return; // the same id twice (a hand-edited spool): forwarded once
        }
        if let Some(meta) = self.segments.get_mut(&at.segment) {
            meta.unresolved += 1;
        }
        let cached = alert.filter(|a| {
            let cost = cost(a);
            let fits = self.cached_bytes + cost <= CACHE_BYTES;
            if fits {
                self.cached_bytes += cost;
            }
            fits
        });
        self.queue.push_back(Queued {
            at,
            cached: cached.map(Box::new),
        });
    }

    /// Entry `id` left the spool (its resolve record written or not).
    pub(super) fn resolved(&mut self, id: &str) {
        if let Some(n) = self.pending.remove(id) {
            if let Some(meta) = self.segments.get_mut(&n) {
                meta.unresolved = meta.unresolved.saturating_sub(1);
            }
        }
    }

    /// Whether `id` is still pending.
    pub(super) fn is_pending(&self, id: &str) -> bool {
        self.pending.contains_key(id)
    }

    /// Up to `n` entries for the forwarder, oldest first. They stay pending until resolved.
    pub(super) fn take(&mut self, n: usize) -> Vec<Queued> {
        let n = n.min(self.queue.len());
        let taken: Vec<Queued> = self.queue.drain(..n).collect();
        for q in &taken {
            if let Some(a) = &q.cached {
                self.cached_bytes = self.cached_bytes.saturating_sub(cost(a));
            }
        }
        taken
    }

    /// Puts entries taken but not handed on (their records could not be read) back in front.
    pub(super) fn untake(&mut self, entries: Vec<Queued>) {
        for q in entries.into_iter().rev() {
            if let Some(a) = &q.cached {
                self.cached_bytes += cost(a);
            }
            self.queue.push_front(q);
        }
    }

    /// The oldest-first run of fully resolved segments: each may be deleted, in that order. Only
    /// the oldest may go first, since a later segment may hold the resolution of an earlier one's
    /// entry. The segment being written (`current`) is included only with `include_current`
    /// (the disk or `max_bytes` is full: it must go even though it is still being written), and
    /// only when it holds bytes.
    pub(super) fn reclaimable(&self, current: u64, include_current: bool) -> Vec<u64> {
        let mut out = Vec::new();
        for (&n, meta) in &self.segments {
            if meta.unresolved > 0 || n > current {
                break;
            }
            if n == current {
                if include_current && meta.bytes > 0 {
                    out.push(n);
                }
                break;
            }
            out.push(n);
        }
        out
    }

    /// Segment `n` was deleted.
    pub(super) fn removed(&mut self, n: u64) {
        if let Some(meta) = self.segments.remove(&n) {
            self.total_bytes = self.total_bytes.saturating_sub(meta.bytes);
        }
    }

    /// Entries pending.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Segment files kept.
    pub(super) fn segments(&self) -> usize {
        self.segments.len()
    }
}

/// What a cached alert costs the cache: its body, its account, and the bookkeeping around them.
fn cost(a: &SpooledAlert) -> usize {
    a.body.len() + a.account.len() + a.id.as_str().len() + 128
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testing::entry;

    fn at(segment: u64, offset: u64) -> Location {
        Location {
            segment,
            offset,
            len: 10,
        }
    }

    #[test]
    fn a_segment_with_an_unresolved_entry_is_never_reclaimable_nor_any_after_it() {
        let mut l = Ledger::default();
        for n in 1..=3 {
            l.start_segment(n);
            l.note_write(n, 10);
        }
        l.accepted("a".into(), at(1, 0), None);
        l.accepted("b".into(), at(2, 0), None);
        l.resolved("b");
        assert!(l.reclaimable(3, true).is_empty(), "1 holds a, so 2 stays");
        l.resolved("a");
        assert_eq!(l.reclaimable(3, false), [1, 2]);
        assert_eq!(l.reclaimable(3, true), [1, 2, 3]);
        l.accepted("c".into(), at(3, 10), None);
        assert_eq!(l.reclaimable(3, true), [1, 2], "never the one holding c");
    }

    #[test]
    fn entries_are_taken_in_acceptance_order_and_the_cache_stays_bounded() {
        let mut l = Ledger::default();
        l.start_segment(1);
        let big = CACHE_BYTES / 3;
        for i in 0..5u64 {
            let mut e = entry(&format!("k{i}"), 1).alert;
            e.body = bytes::Bytes::from(vec![b'x'; big]);
            l.accepted(e.id.to_string(), at(1, i * 100), Some(e));
        }
        assert!(l.cached_bytes <= CACHE_BYTES);
        let first = l.take(2);
        assert!(first.iter().all(|q| q.cached.is_some()));
        let rest = l.take(10);
        assert_eq!(rest.len(), 3);
        assert!(rest.iter().any(|q| q.cached.is_none()), "not all fit");
        let offsets: Vec<u64> = first.iter().chain(&rest).map(|q| q.at.offset).collect();
        assert_eq!(offsets, [0, 100, 200, 300, 400]);
        assert_eq!(l.cached_bytes, 0);
        assert_eq!(l.pending(), 5, "taken entries stay pending until resolved");
    }
}
