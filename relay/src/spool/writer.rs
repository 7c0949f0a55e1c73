//! The writer thread, sole owner of the spool's files. It folds concurrent commands into one
//! batch: one write and one `fdatasync` for all the batch's records (group commit), every caller
//! answered once the sync that covers its record is done. It also rotates segments, deletes the
//! ones the ledger says are resolved, and drives the key journal and the dead-letter file.

use std::io::{self, Write};
use std::path::PathBuf;
#[cfg(test)]
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(test)]
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::dead_letter::DeadLetterFile;
use super::file::AppendFile;
use super::format::segment_path;
use crate::dedupe::journal::{self, KeyJournal};

/// Most commands folded into one write + sync.
const MAX_BATCH: usize = 4096;

/// What the spool handle asks of the writer thread.
pub(super) enum Command {
    /// A spool record (synced before the reply), with the accept's key line and receipt time.
    /// The reply carries the segment the record went to.
    Append {
        line: Vec<u8>,
        key: Option<(Vec<u8>, i64)>,
        reply: oneshot::Sender<io::Result<u64>>,
    },
    /// A dead letter (synced before the reply).
    Dead {
        line: Vec<u8>,
        reply: oneshot::Sender<io::Result<()>>,
    },
    /// Delete a fully resolved segment (after syncing the key journal).
    Remove { segment: u64 },
    /// Delete key journal files whose newest key is older than `before_ms`.
    Expire { before_ms: i64 },
    /// Answered once every earlier command is done (and the key journal synced).
    Barrier { reply: oneshot::Sender<()> },
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
    /// Rotation size for segments (and the key journal).
    segment_bytes: u64,
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
        segment_bytes: u64,
    ) -> io::Result<Self> {
        let segment = AppendFile::create(&segment_path(&dir, segment), &dir, segment)?;
        let keys = KeyJournal::open(dir.clone(), keys, segment_bytes)?;
        Ok(Self {
            dead: DeadLetterFile::new(&dir),
            dir,
            segment,
            segment_bytes,
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
        let mut spool_replies = Vec::new();
        let mut dead_replies = Vec::new();
        let mut removals = Vec::new();
        let mut expire_before = None;
        let mut barriers = Vec::new();
        for cmd in batch.drain(..) {
            match cmd {
                Command::Append { line, key, reply } => {
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
                Command::Remove { segment } => removals.push(segment),
                Command::Expire { before_ms } => expire_before = Some(before_ms),
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
        if !spool_buf.is_empty() {
            let segment = self.segment.number;
            let result = self.write_spool(&spool_buf).map(|()| segment);
            if let Err(e) = &result {
                tracing::error!(error = %e, "spool write failed; starting a new segment");
                // A partial line must not be glued to the next record: continue in a new file.
                self.rotate_segment();
            } else if self.segment.written >= self.segment_bytes {
                self.rotate_segment();
            }
            spool_result = Some(result);
        }
        // Keys only of accepts that are now durable (the journal syncs lazily: see its docs).
        if !keys_buf.is_empty() && matches!(spool_result, Some(Ok(_))) {
            self.keys.append(&keys_buf);
        }
        self.keys.rotate_if_full();
        // A segment's keys must be durable in the key journal before the segment goes.
        if !removals.is_empty() && self.keys.sync().is_ok() {
            for segment in removals {
                if segment != self.segment.number {
                    let _ = std::fs::remove_file(segment_path(&self.dir, segment));
                }
            }
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

    fn write_spool(&mut self, buf: &[u8]) -> io::Result<()> {
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
        self.segment.file.write_all(buf)?;
        self.segment.file.sync_data()?;
        self.segment.written += buf.len() as u64;
        Ok(())
    }

    fn rotate_segment(&mut self) {
        let n = self.segment.number + 1;
        match AppendFile::create(&segment_path(&self.dir, n), &self.dir, n) {
            Ok(file) => self.segment = file,
            Err(e) => tracing::error!(error = %e, "cannot start a new spool segment"),
        }
    }
}

/// One result for many callers: `io::Error` is not `Clone`.
fn clone_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::spool::testing::{entry, settings};
    use crate::spool::{Spool, SpoolError};

    #[tokio::test]
    async fn a_failed_write_is_reported_and_the_next_one_lands_in_a_clean_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(settings(dir.path())).unwrap();
        spool.shared.fail_writes.store(1, Ordering::SeqCst);
        let lost = entry("lost", 1);
        assert!(matches!(spool.append(&lost).await, Err(SpoolError::Io(_))));
        assert!(!spool.is_healthy());
        assert_eq!(spool.pending(), 0, "a failed append is not pending");
        let kept = entry("kept", 2);
        spool.append(&kept).await.unwrap();
        assert!(spool.is_healthy());
        drop(spool);
        let (_, replay) = Spool::open(settings(dir.path())).unwrap();
        let ids: Vec<_> = replay.pending.iter().map(|a| a.id.clone()).collect();
        assert_eq!(
            ids,
            [kept.alert.id],
            "the torn half-record is skipped, the next record is intact"
        );
        assert!(
            replay.keys.iter().all(|(_, k, _)| k != "lost"),
            "a key enters the window only once spooled"
        );
    }
}
