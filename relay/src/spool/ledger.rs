//! The spool's bookkeeping, in memory: which entries are pending and in which segment, how full
//! the spool is, and which segments may be deleted.

use std::collections::{BTreeMap, HashMap};

use super::SpoolError;
use crate::config::SpoolSettings;

/// What is pending, in which segment (kept under the spool's mutex).
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Pending id → segment holding its accept record.
    pending: HashMap<String, u64>,
    /// Segment number → what it holds.
    segments: BTreeMap<u64, SegmentMeta>,
    /// Bytes in all segment files.
    total_bytes: u64,
    /// Appends admitted but not yet acknowledged by the writer.
    in_flight: usize,
    /// Highest segment number the writer has reported.
    newest_segment: u64,
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

    /// The segment the writer starts with.
    pub(super) fn start_segment(&mut self, n: u64) {
        self.newest_segment = n;
        self.segments.entry(n).or_default();
    }

    /// Admits one append, unless `max_pending` or `max_bytes` is reached.
    pub(super) fn admit(&mut self, limits: &SpoolSettings) -> Result<(), SpoolError> {
        if self.pending.len() + self.in_flight >= limits.max_pending
            || self.total_bytes >= limits.max_bytes
        {
            return Err(SpoolError::Full);
        }
        self.in_flight += 1;
        Ok(())
    }

    /// The writer answered an admitted append (either way).
    pub(super) fn settle(&mut self) {
        self.in_flight -= 1;
    }

    /// `len` bytes were written to `segment`.
    pub(super) fn note_write(&mut self, segment: u64, len: u64) {
        self.newest_segment = self.newest_segment.max(segment);
        self.total_bytes += len;
        self.segments.entry(segment).or_default().bytes += len;
    }

    /// Entry `id`, accepted in `segment`, is pending.
    pub(super) fn accepted(&mut self, id: String, segment: u64) {
        self.pending.insert(id, segment);
        if let Some(meta) = self.segments.get_mut(&segment) {
            meta.unresolved += 1;
        }
    }

    /// Entry `id` left the spool.
    pub(super) fn resolved(&mut self, id: &str) {
        if let Some(n) = self.pending.remove(id) {
            if let Some(meta) = self.segments.get_mut(&n) {
                meta.unresolved = meta.unresolved.saturating_sub(1);
            }
        }
    }

    /// Oldest-first run of fully resolved segments, short of the one being written. Only the
    /// oldest may go: a later segment may hold the resolution of an earlier one's entry.
    pub(super) fn removable(&mut self) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some((&n, meta)) = self.segments.first_key_value() {
            if n >= self.newest_segment || meta.unresolved > 0 {
                break;
            }
            self.total_bytes = self.total_bytes.saturating_sub(meta.bytes);
            self.segments.remove(&n);
            out.push(n);
        }
        out
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
