//! Step 9 of the pipeline: the durable spool. An alert is answered 200 only once it is here.
//!
//! On disk (`spool.dir`):
//! - `segment-NNNNNNNNNNNNNNNNNNNN.jsonl`: append-only JSON lines. An `accept` record holds the
//!   message id, account, idempotency key, receipt time and the exact envelope bytes to send; a
//!   `resolve` record marks an id delivered or dead-lettered. Each start opens a fresh segment, and
//!   a segment is rotated past `segment_bytes`. The oldest segment is deleted once all its entries
//!   are resolved (later segments may hold the resolutions of earlier ones, never the reverse).
//! - `keys-NNNNNNNNNNNNNNNNNNNN.jsonl`: the dedupe key journal, owned by `crate::dedupe::journal`
//!   (the writer thread writes it); it outlives the segments so the dedupe window survives a
//!   restart.
//! - `dead/dead-letters.jsonl`: every dead letter with its reason and envelope.
//! - `LOCK`: the pid of the relay using the directory.
//!
//! Writes go through one writer thread that batches concurrent appends into a single write and
//! a single `fdatasync` (group commit): every caller waits for the sync that covers its record.
//! On start the segments and the key journal are replayed: accepted-but-unresolved entries are
//! pending again, and the dedupe keys are handed back to rebuild the window.
//!
//! # Layout
//! - this file: the [`Spool`] handle, its public API and types.
//! - `format`: segment file names and the `accept` / `resolve` line encoding.
//! - `file`: creating private, durable append-only files; reading them without a torn line.
//! - `replay`: reading the segments (and the key journal) back at open.
//! - `ledger`: in-memory bookkeeping: what is pending in which segment, limits, what may go.
//! - `writer`: the group-commit writer thread, fsync, segment rotation and deletion.
//! - `dead_letter`: [`DeadLetter`] and its file.
//! - `lock`: the process lock (`LOCK`, stale lock takeover).

mod dead_letter;
pub(crate) mod file;
pub(crate) mod format;
mod ledger;
mod lock;
mod replay;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::MessageId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use self::dead_letter::dead_letter_path;
pub use self::dead_letter::DeadLetter;
use self::format::{encode_line, Record};
use self::ledger::Ledger;
use self::writer::{Command, Writer};
use crate::config::SpoolSettings;
use crate::dedupe::journal;

/// An accepted alert waiting to be forwarded.
#[derive(Debug, Clone)]
pub struct SpooledAlert {
    /// Its `webhook-id`.
    pub id: MessageId,
    /// The account it was authenticated for.
    pub account: String,
    /// When the relay accepted it (unix ms, from the injected clock).
    pub received_ms: i64,
    /// The envelope bytes: what is signed and sent, unchanged on every attempt.
    pub body: Bytes,
}

/// An alert to append, with its idempotency key.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The alert itself.
    pub alert: SpooledAlert,
    /// The dedupe key, remembered with the record so the window survives a restart.
    pub key: Option<String>,
}

/// How a pending entry left the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The receiver answered 2xx.
    Delivered,
    /// Written to the dead-letter file.
    DeadLettered,
}

/// Why an append failed (the caller answers 503 either way).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// `max_pending` or `max_bytes` reached.
    #[error("the spool is full")]
    Full,
    /// The write or sync failed.
    #[error("spool write failed: {0}")]
    Io(#[from] io::Error),
    /// The writer thread has stopped.
    #[error("the spool writer has stopped")]
    Closed,
}

/// What replaying the spool found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Entries to forward, oldest first.
    pub pending: Vec<SpooledAlert>,
    /// (account, key, received_ms) of every key still on disk (the caller drops expired ones).
    pub keys: Vec<(String, String, i64)>,
}

/// Handle to the spool; cheap to clone.
#[derive(Debug, Clone)]
pub struct Spool {
    /// Shared by request handlers and forwarder tasks.
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Commands for the writer thread.
    tx: mpsc::Sender<Command>,
    /// Bookkeeping: what is pending, in which segment.
    ledger: Mutex<Ledger>,
    /// Limits and layout.
    settings: SpoolSettings,
    /// Cleared by a failed write, set by a successful one (`/readyz`).
    healthy: AtomicBool,
    /// Test hook shared with the writer.
    #[cfg(test)]
    fail_writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl Spool {
    /// Opens (creating if needed) the spool directory, replays it and starts the writer thread.
    pub fn open(settings: SpoolSettings) -> io::Result<(Self, Replay)> {
        let dir = settings.dir.clone();
        // Alerts hold trading intent: only the relay's user may read them.
        for d in [dir.clone(), dir.join("dead")] {
            std::fs::create_dir_all(&d)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        }
        let listing = replay::list(&dir)?;
        lock::claim(&dir)?;
        let replay::Recovered {
            mut ledger,
            replay,
            next_segment,
            journal,
        } = replay::read(&dir, &listing)?;

        let writer = Writer::open(dir, next_segment, journal, settings.segment_bytes)?;
        #[cfg(test)]
        let fail_writes = Arc::clone(&writer.fail_writes);
        ledger.start_segment(next_segment);
        let (tx, rx) = mpsc::channel(65_536);
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))?;
        let shared = Shared {
            tx,
            ledger: Mutex::new(ledger),
            settings,
            healthy: AtomicBool::new(true),
            #[cfg(test)]
            fail_writes,
        };
        Ok((
            Self {
                shared: Arc::new(shared),
            },
            replay,
        ))
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.shared.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Durably appends an accepted alert; returns once it is synced to disk.
    pub async fn append(&self, entry: &NewEntry) -> Result<(), SpoolError> {
        self.ledger().admit(&self.shared.settings)?;
        let a = &entry.alert;
        let record = Record::Accept {
            id: a.id.to_string(),
            account: a.account.clone(),
            key: entry.key.clone(),
            received_ms: a.received_ms,
            body: String::from_utf8_lossy(&a.body).into_owned(),
        };
        let key = entry
            .key
            .as_ref()
            .map(|k| (a.account.as_str(), k.as_str(), a.received_ms));
        let result = self.write(&record, key).await;
        let mut ledger = self.ledger();
        ledger.settle();
        let (segment, len) = result?;
        ledger.note_write(segment, len);
        ledger.accepted(a.id.to_string(), segment);
        Ok(())
    }

    /// Marks an entry delivered or dead-lettered (durably), then deletes segments no longer needed.
    pub async fn resolve(&self, id: &MessageId, outcome: Resolution) -> Result<(), SpoolError> {
        let record = Record::Resolve {
            id: id.to_string(),
            outcome,
        };
        let (segment, len) = self.write(&record, None).await?;
        let removable = {
            let mut ledger = self.ledger();
            ledger.note_write(segment, len);
            ledger.resolved(id.as_str());
            ledger.removable()
        };
        for segment in removable {
            let _ = self.shared.tx.send(Command::Remove { segment }).await;
        }
        Ok(())
    }

    /// Deletes key journal files whose keys have all left the window ending at `now_ms`.
    pub async fn expire_keys(&self, now_ms: i64, window_ms: i64) {
        let before_ms = now_ms.saturating_sub(window_ms);
        let _ = self.shared.tx.send(Command::Expire { before_ms }).await;
    }

    /// Writes a dead letter (synced), then resolves the entry.
    pub async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), SpoolError> {
        let line = encode_line(letter)?;
        let (reply, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Dead { line, reply })
            .await
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)??;
        let id = MessageId::parse(&letter.id).map_err(io::Error::other)?;
        self.resolve(&id, Resolution::DeadLettered).await
    }

    /// Sends one record (and the accept's dedupe key, for the key journal) to the writer and
    /// waits for its sync: the segment it went to and its length.
    async fn write(
        &self,
        record: &Record,
        key: Option<(&str, &str, i64)>,
    ) -> Result<(u64, u64), SpoolError> {
        let line = encode_line(record)?;
        let key = match key {
            Some((account, key, ms)) => Some((journal::encode(account, key, ms)?, ms)),
            None => None,
        };
        let len = line.len() as u64;
        let (reply, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Append { line, key, reply })
            .await
            .map_err(|_| SpoolError::Closed)?;
        match rx.await.map_err(|_| SpoolError::Closed)? {
            Ok(segment) => {
                self.shared.healthy.store(true, Ordering::Relaxed);
                Ok((segment, len))
            }
            Err(e) => {
                self.shared.healthy.store(false, Ordering::Relaxed);
                Err(SpoolError::Io(e))
            }
        }
    }

    /// Waits until everything written so far is on disk (used at shutdown).
    pub async fn flush(&self) {
        let (reply, done) = oneshot::channel();
        if self
            .shared
            .tx
            .send(Command::Barrier { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Entries accepted but not yet delivered or dead-lettered.
    pub fn pending(&self) -> usize {
        self.ledger().pending()
    }

    /// Whether the last write succeeded (for `/readyz`).
    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// Where dead letters are written.
    pub fn dead_letter_file(&self) -> PathBuf {
        dead_letter_path(&self.shared.settings.dir)
    }

    /// Number of segment files currently kept (for tests).
    pub fn segments(&self) -> usize {
        self.ledger().segments()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{entry, settings};
    use super::*;

    #[tokio::test]
    async fn a_full_spool_refuses_new_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.max_pending = 1;
        let (spool, _) = Spool::open(s).unwrap();
        spool.append(&entry("a", 1)).await.unwrap();
        assert!(matches!(
            spool.append(&entry("b", 1)).await,
            Err(SpoolError::Full)
        ));
    }

    #[tokio::test]
    async fn concurrent_appends_are_all_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.max_pending = 1_000;
        let (spool, _) = Spool::open(s.clone()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let spool = spool.clone();
            tasks.push(tokio::spawn(async move {
                spool.append(&entry(&format!("k{i}"), i)).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        drop(spool);
        let (_, replay) = Spool::open(s).unwrap();
        assert_eq!(replay.pending.len(), 200);
    }
}
