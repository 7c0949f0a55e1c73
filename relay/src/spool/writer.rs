//! The writer thread, sole owner of the spool's files. It folds concurrent commands into one
//! batch: one write and one `fdatasync` for all the batch's records (group commit), every caller
//! answered once the sync that covers its record is done. It also records each batch in the
//! ledger (in file order, so the ledger's queue is in acceptance order), rotates segments, deletes
//! the ones whose entries are all resolved, and drives the key journal and the dead-letter file.
//!
//! A full disk: a failed write is cut from the segment again and the next one retries the same
//! segment (never a new file per failure). Resolutions count in memory even when their records
//! cannot be written, and a segment whose entries are all resolved is deleted without writing
//! anything: the deletion (with a directory sync) is itself the durable record. When the spool is
//! stuck (a write failed, or `max_bytes` is reached) even the segment being written goes once all
//! it holds is resolved. A crash before that deletion only means those alerts are sent again
//! after the restart, under the same `webhook-id`, which the receiver dedupes. While writes fail,
//! a probe (asked for once a second, and after each deletion) tells when the disk takes records
//! again, for `/readyz`.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
#[cfg(test)]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::dead_letter::DeadLetterFile;
use super::file::AppendFile;
use super::format::{encode_line, segment_path, Record};
use super::ledger::Location;
use super::{SpooledAlert, State};
use crate::dedupe::journal::{self, KeyJournal};

/// Most commands folded into one write + sync.
const MAX_BATCH: usize = 4096;

/// Padding of a probe record: a usual alert record must fit, not just a few bytes.
const PROBE_PAD: usize = 4096;

/// What the spool handle asks of the writer thread.
pub(super) enum Command {
    /// A spool record (synced before the reply), with the accept's key line and receipt time,
    /// and what it means for the ledger.
    Append {
        line: Vec<u8>,
        key: Option<(Vec<u8>, i64)>,
        effect: Effect,
        reply: oneshot::Sender<io::Result<()>>,
    },
    /// A dead letter (synced before the reply).
    Dead {
        line: Vec<u8>,
        reply: oneshot::Sender<io::Result<()>>,
    },
    /// Delete key journal files whose newest key is older than `before_ms`.
    Expire { before_ms: i64 },
    /// If the last write failed: reclaim what can be, then try whether the disk takes a record.
    Probe,
    /// Answered once every earlier command is done (and the key journal synced).
    Barrier { reply: oneshot::Sender<()> },
}

/// What a spool record does to the ledger.
pub(super) enum Effect {
    /// Once written: this alert is pending.
    Accept(SpooledAlert),
    /// Written or not: this id is no longer pending.
    Resolve(String),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// The thread that owns the files.
pub(super) struct Writer {
    /// `spool.dir`.
    dir: PathBuf,
    /// The segment being appended to.
    segment: AppendFile,
    /// Set when a failed write could not be cut off the segment's end.
    torn: bool,
    /// Set by a failed write, cleared once the segment being written has been started afresh:
    /// until then it goes as soon as all it holds is resolved, even if some later, smaller
    /// writes (resolve records) squeezed into what space was left.
    pressed: bool,
    /// Rotation size for segments (and the key journal).
    segment_bytes: u64,
    /// `spool.max_bytes`: past it, the spool is stuck until segments go.
    max_bytes: u64,
    /// The ledger, health flag and forwarder wake-up, shared with the handle.
    state: Arc<State>,
    /// The dedupe keys of durable accepts.
    keys: KeyJournal,
    /// Where dead letters go.
    dead: DeadLetterFile,
    /// Test hook: this many spool writes fail as if the disk did.
    #[cfg(test)]
    pub(super) fail_writes: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts segment `segment` and the key journal file after the ones `keys` found.
    pub(super) fn open(
        dir: PathBuf,
        segment: u64,
        keys: journal::JournalFiles,
        settings: &crate::config::SpoolSettings,
        state: Arc<State>,
    ) -> io::Result<Self> {
        let segment = AppendFile::create(&segment_path(&dir, segment), &dir, segment)?;
        let keys = KeyJournal::open(dir.clone(), keys, settings.segment_bytes)?;
        state.ledger().start_segment(segment.number);
        Ok(Self {
            dead: DeadLetterFile::new(&dir),
            dir,
            segment,
            torn: false,
            pressed: false,
            segment_bytes: settings.segment_bytes,
            max_bytes: settings.max_bytes,
            state,
            keys,
            #[cfg(test)]
            fail_writes: Arc::default(),
        })
    }

    /// Runs on the writer thread until every sender is gone.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(64);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            self.process(&mut batch);
        }
        let _ = self.keys.sync();
    }

    fn process(&mut self, batch: &mut Vec<Command>) {
        let mut spool_buf = Vec::new();
        let mut keys_buf = Vec::new();
        let mut dead_buf = Vec::new();
        let mut effects = Vec::new();
        let mut spool_replies = Vec::new();
        let mut dead_replies = Vec::new();
        let mut expire_before = None;
        let mut probe = false;
        let mut barriers = Vec::new();
        for cmd in batch.drain(..) {
            match cmd {
                Command::Append {
                    line,
                    key,
                    effect,
                    reply,
                } => {
                    effects.push((spool_buf.len(), line.len(), effect));
                    spool_buf.extend_from_slice(&line);
                    if let Some((line, ms)) = key {
                        keys_buf.extend_from_slice(&line);
                        self.keys.note(ms);
                    }
                    spool_replies.push(reply);
                }
                Command::Dead { line, reply } => {
                    dead_buf.extend_from_slice(&line);
                    dead_replies.push(reply);
                }
                Command::Expire { before_ms } => expire_before = Some(before_ms),
                Command::Probe => probe = true,
                Command::Barrier { reply } => barriers.push(reply),
            }
        }
        if !dead_buf.is_empty() {
            let result = self.dead.write(&dead_buf);
            for reply in dead_replies {
                let _ = reply.send(result.as_ref().map(|_| ()).map_err(clone_err));
            }
        }
        let mut spool_result = None;
        let mut resolved = false;
        if !spool_buf.is_empty() {
            let segment = self.segment.number;
            let result = self.write_spool(&spool_buf);
            if let Err(e) = &result {
                tracing::error!(error = %e, "spool write failed; the next write retries the same segment");
            }
            // Keys only of accepts that are now durable (the journal syncs lazily: see its docs).
            if result.is_ok() && !keys_buf.is_empty() {
                self.keys.append(&keys_buf);
            }
            resolved = self.record(segment, result.as_ref().ok().copied(), effects);
            if result.is_ok() && self.segment.written >= self.segment_bytes {
                self.rotate_segment();
            }
            spool_result = Some(result.map(|_| ()));
        }
        self.keys.rotate_if_full();
        let freed = (resolved || probe) && self.reclaim();
        if !self.healthy() && (probe || freed) {
            self.probe();
        }
        if let Some(before_ms) = expire_before {
            self.keys.expire(before_ms);
        }
        // Replies last, so a caller that saw its reply also sees every earlier command done.
        if let Some(result) = spool_result {
            for reply in spool_replies {
                let _ = reply.send(result.as_ref().copied().map_err(clone_err));
            }
        }
        if !barriers.is_empty() {
            let _ = self.keys.sync();
            for reply in barriers {
                let _ = reply.send(());
            }
        }
    }

    /// Applies a batch's effects to the ledger: accepts once written at `written` (offset and
    /// growth of the segment), resolutions in any case. Returns whether anything was resolved.
    fn record(
        &mut self,
        segment: u64,
        written: Option<(u64, u64)>,
        effects: Vec<(usize, usize, Effect)>,
    ) -> bool {
        let mut accepted = false;
        let mut resolved = false;
        {
            let mut ledger = self.state.ledger();
            if let Some((_, grown)) = written {
                ledger.note_write(segment, grown);
            }
            for (at, len, effect) in effects {
                match effect {
                    Effect::Accept(alert) => {
                        if let Some((base, _)) = written {
                            let at = Location {
                                segment,
                                offset: base + at as u64,
                                len: u32::try_from(len).unwrap_or(u32::MAX),
                            };
                            ledger.accepted(alert.id.to_string(), at, Some(alert));
                            accepted = true;
                        }
                    }
                    Effect::Resolve(id) => {
                        ledger.resolved(&id);
                        resolved = true;
                    }
                }
            }
        }
        if accepted {
            self.state.wake.notify_one();
        }
        resolved
    }

    /// Appends `buf` to the segment and syncs it: the offset it starts at and how much the file
    /// grew. On failure, what reached the file is cut again, so a torn line is never glued to
    /// the next record and no record whose caller was told "failed" comes back at replay.
    fn write_spool(&mut self, buf: &[u8]) -> io::Result<(u64, u64)> {
        let before = self.segment.written;
        let mut lead: &[u8] = b"";
        if self.torn {
            self.cut_tail();
        }
        if self.torn {
            // Still not cut: end the leftover line so it is skipped at replay as unreadable.
            self.segment.written = self.segment.file.metadata()?.len();
            lead = b"\n";
        }
        let base = self.segment.written + lead.len() as u64;
        match self.append_synced(lead, buf) {
            Ok(()) => {
                self.segment.written = base + buf.len() as u64;
                self.torn = false;
                self.set_healthy(true);
                Ok((base, self.segment.written.saturating_sub(before)))
            }
            Err(e) => {
                self.cut_tail();
                self.pressed = true;
                self.set_healthy(false);
                Err(e)
            }
        }
    }

    fn append_synced(&mut self, lead: &[u8], buf: &[u8]) -> io::Result<()> {
        #[cfg(test)]
        if self
            .fail_writes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            // Half a record reaches the file, as when a disk fills up mid-write.
            self.segment.file.write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::other("injected write failure"));
        }
        self.segment.file.write_all(lead)?;
        self.segment.file.write_all(buf)?;
        self.segment.file.sync_data()
    }

    fn cut_tail(&mut self) {
        match self.segment.cut_to_written() {
            Ok(()) => self.torn = false,
            Err(e) => {
                tracing::error!(error = %e, "cannot cut a failed write off the spool segment");
                self.torn = true;
            }
        }
    }

    /// Deletes the oldest-first run of segments whose entries are all resolved (the segment
    /// being written too, when the spool is stuck). Returns whether any space was given back.
    fn reclaim(&mut self) -> bool {
        let current = self.segment.number;
        let candidates = {
            let ledger = self.state.ledger();
            let stuck = self.pressed || ledger.over(self.max_bytes);
            ledger.reclaimable(current, stuck)
        };
        if candidates.is_empty() {
            return false;
        }
        // A segment's dedupe keys must be durable in the key journal before the segment goes.
        if let Err(e) = self.keys.sync() {
            tracing::warn!(error = %e, "cannot sync the key journal; resolved segments stay for now");
            return false;
        }
        let mut freed = false;
        for n in candidates {
            if n == current {
                freed |= self.restart_current();
                continue;
            }
            match std::fs::remove_file(segment_path(&self.dir, n)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Later ones must wait: they may hold resolutions of this one's entries.
                    tracing::error!(segment = n, error = %e, "cannot delete a resolved spool segment");
                    break;
                }
            }
            self.state.ledger().removed(n);
            freed = true;
        }
        // The deletions are the durable record of those resolutions.
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            tracing::warn!(error = %e, "cannot sync the spool directory after deleting segments");
        }
        freed
    }

    /// The segment being written holds only resolved entries and everything older is gone:
    /// continue in a fresh segment and delete it, or, if no file can be created, empty it in
    /// place. Returns whether it went.
    fn restart_current(&mut self) -> bool {
        let old = self.segment.number;
        let n = old + 1;
        match AppendFile::create(&segment_path(&self.dir, n), &self.dir, n) {
            Ok(file) => {
                self.segment = file;
                self.torn = false;
                self.pressed = false;
                self.state.ledger().start_segment(n);
                match std::fs::remove_file(segment_path(&self.dir, old)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    // No longer the current one: a later pass deletes it.
                    Err(_) => return false,
                }
                self.state.ledger().removed(old);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a new spool segment; emptying the current one");
                let emptied = self
                    .segment
                    .file
                    .set_len(0)
                    .and_then(|()| self.segment.file.sync_all());
                if emptied.is_err() {
                    return false;
                }
                self.segment.written = 0;
                self.torn = false;
                self.pressed = false;
                let mut ledger = self.state.ledger();
                ledger.removed(old);
                ledger.start_segment(old);
                true
            }
        }
    }

    /// Writes (and cuts again) a padded probe record: its success marks the spool healthy.
    fn probe(&mut self) {
        let Ok(line) = encode_line(&Record::Probe {
            pad: "0".repeat(PROBE_PAD),
        }) else {
            return;
        };
        let segment = self.segment.number;
        if let Ok((_, grown)) = self.write_spool(&line) {
            let len = line.len() as u64;
            let cut = self.segment.written - len;
            let kept = if self.segment.file.set_len(cut).is_ok() {
                self.segment.written = cut;
                grown - len
            } else {
                grown // replay ignores a probe record
            };
            self.state.ledger().note_write(segment, kept);
            tracing::info!("the spool can write again");
        }
    }

    fn rotate_segment(&mut self) {
        let n = self.segment.number + 1;
        match AppendFile::create(&segment_path(&self.dir, n), &self.dir, n) {
            Ok(file) => {
                self.segment = file;
                self.torn = false;
                self.state.ledger().start_segment(n);
            }
            Err(e) => tracing::error!(error = %e, "cannot start a new spool segment"),
        }
    }

    fn healthy(&self) -> bool {
        self.state.healthy.load(Ordering::Relaxed)
    }

    fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::Relaxed);
    }
}

/// One result for many callers: `io::Error` is not `Clone`.
fn clone_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}
