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
//! Memory stays bounded whatever the backlog: the ledger keeps only where each pending entry's
//! record lies, in acceptance order, and the forwarder [`Spool::take`]s them in batches, their
//! bodies read back from the segments (or from a small cache of recent ones). Resumed entries
//! after a restart take the same path. A full disk is survived without losing an accepted alert
//! and without writing first to recover: see `writer`.
//!
//! # Layout
//! - this file: the [`Spool`] handle, its public API and types.
//! - `format`: segment file names and the `accept` / `resolve` line encoding.
//! - `file`: creating private, durable append-only files; reading them without a torn line.
//! - `replay`: reading the segments (and the key journal) back at open.
//! - `ledger`: in-memory bookkeeping: what is pending where, in which order, limits, what may go.
//! - `read`: reading pending alerts back from their segments, in batches.
//! - `writer`: the group-commit writer thread, fsync, segment rotation and deletion, full disks.
//! - `dead_letter`: [`DeadLetter`] and its file.
//! - `lock`: the process lock (`LOCK`, stale lock takeover).

mod dead_letter;
pub(crate) mod file;
pub(crate) mod format;
mod ledger;
mod lock;
mod read;
mod replay;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod writer;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::MessageId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};

pub(crate) use self::dead_letter::dead_letter_path;
pub use self::dead_letter::DeadLetter;
use self::format::{encode_line, Record};
use self::ledger::Ledger;
use self::writer::{Command, Effect, Writer};
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
    /// Entries pending again (the forwarder [`Spool::take`]s them, oldest first).
    pub pending: usize,
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
    /// What the writer thread shares with the handle.
    state: Arc<State>,
    /// Limits and layout.
    settings: SpoolSettings,
    /// Test hook shared with the writer.
    #[cfg(test)]
    fail_writes: Arc<std::sync::atomic::AtomicUsize>,
}

/// Shared by the handle and the writer thread (which must not hold the command sender, or it
/// would never see the channel close).
#[derive(Debug, Default)]
struct State {
    /// Bookkeeping: what is pending, where, in which order.
    ledger: Mutex<Ledger>,
    /// Cleared by a failed spool write, set by a successful one or a probe (`/readyz`).
    healthy: AtomicBool,
    /// Woken by the writer when new entries are pending (the forwarder waits on it).
    wake: Notify,
}

impl State {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An admitted append, counted against the limits until it is dropped, whether the append
/// finished or its future was dropped mid-write (a connection torn down).
struct Admission<'a>(&'a State);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.ledger().settle();
    }
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
            ledger,
            replay,
            next_segment,
            journal,
        } = replay::read(&dir, &listing)?;
        let state = Arc::new(State {
            ledger: Mutex::new(ledger),
            healthy: AtomicBool::new(true),
            wake: Notify::new(),
        });

        let writer = Writer::open(dir, next_segment, journal, &settings, Arc::clone(&state))?;
        #[cfg(test)]
        let fail_writes = Arc::clone(&writer.fail_writes);
        let (tx, rx) = mpsc::channel(65_536);
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))?;
        let shared = Shared {
            tx,
            state,
            settings,
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
        self.shared.state.ledger()
    }

    /// Durably appends an accepted alert; returns once it is synced to disk (it is then pending,
    /// and the forwarder is woken).
    pub async fn append(&self, entry: &NewEntry) -> Result<(), SpoolError> {
        self.ledger().admit(&self.shared.settings)?;
        let _admitted = Admission(&self.shared.state);
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
        self.write(&record, key, Effect::Accept(a.clone())).await
    }

    /// Marks an entry delivered or dead-lettered, then deletes segments no longer needed. The
    /// entry leaves the spool even if its record cannot be written (an error then): it would only
    /// be sent again after a restart that comes before its segment is deleted.
    pub async fn resolve(&self, id: &MessageId, outcome: Resolution) -> Result<(), SpoolError> {
        let record = Record::Resolve {
            id: id.to_string(),
            outcome,
        };
        self.write(&record, None, Effect::Resolve(id.to_string()))
            .await
    }

    /// Up to `n` pending entries not handed out before, oldest first: the forwarder's next
    /// batch. Their bodies are read from the segments unless still cached. A read error puts
    /// them back, to be taken again.
    pub async fn take(&self, n: usize) -> io::Result<Vec<SpooledAlert>> {
        let entries = self.ledger().take(n);
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let loaded = if entries.iter().all(|q| q.cached.is_some()) {
            read::load(&self.shared.settings.dir, entries)
        } else {
            let dir = self.shared.settings.dir.clone();
            tokio::task::spawn_blocking(move || read::load(&dir, entries))
                .await
                .map_err(|e| io::Error::other(e.to_string()))?
        };
        match loaded {
            Ok(alerts) => {
                // Resolved while queued (only by hand, as tests do): not handed out again.
                let ledger = self.ledger();
                Ok(alerts
                    .into_iter()
                    .filter(|a| ledger.is_pending(a.id.as_str()))
                    .collect())
            }
            Err(e) => {
                self.ledger().untake(e.entries);
                Err(e.error)
            }
        }
    }

    /// Completes once entries were added since the last call (at once if some were before).
    pub async fn wait_for_new(&self) {
        self.shared.state.wake.notified().await;
    }

    /// Deletes key journal files whose keys have all left the window ending at `now_ms`.
    pub async fn expire_keys(&self, now_ms: i64, window_ms: i64) {
        let before_ms = now_ms.saturating_sub(window_ms);
        let _ = self.shared.tx.send(Command::Expire { before_ms }).await;
    }

    /// While the last write failed: reclaims what it can and tries whether the disk takes a
    /// record again (so `/readyz` recovers even when no alert arrives).
    pub async fn probe(&self) {
        if !self.is_healthy() {
            let _ = self.shared.tx.send(Command::Probe).await;
        }
    }

    /// Writes a dead letter (synced), then resolves the entry. An error means the letter is not
    /// written and the entry stays pending.
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
        if let Err(e) = self.resolve(&id, Resolution::DeadLettered).await {
            tracing::warn!(%id, error = %e, "dead letter written but not its resolution; it may be dead-lettered again after a restart");
        }
        Ok(())
    }

    /// Sends one record (and the accept's dedupe key, for the key journal) to the writer and
    /// waits for its sync.
    async fn write(
        &self,
        record: &Record,
        key: Option<(&str, &str, i64)>,
        effect: Effect,
    ) -> Result<(), SpoolError> {
        let line = encode_line(record)?;
        let key = match key {
            Some((account, key, ms)) => Some((journal::encode(account, key, ms)?, ms)),
            None => None,
        };
        let (reply, rx) = oneshot::channel();
        self.shared
            .tx
            .send(Command::Append {
                line,
                key,
                effect,
                reply,
            })
            .await
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)??;
        Ok(())
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

    /// Calls `report` with [`Spool::pending`] while no entry can come or go, so that reports
    /// from concurrent tasks (a gauge set by the request handler and by the forwarder) cannot
    /// land out of order and leave a stale count behind.
    pub fn report_pending(&self, report: impl FnOnce(usize)) {
        let ledger = self.ledger();
        report(ledger.pending());
    }

    /// Whether the last write succeeded (for `/readyz`).
    pub fn is_healthy(&self) -> bool {
        self.shared.state.healthy.load(Ordering::Relaxed)
    }

    /// Where dead letters are written.
    pub fn dead_letter_file(&self) -> PathBuf {
        dead_letter_path(&self.shared.settings.dir)
    }

    /// The spool directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.shared.settings.dir
    }

    /// Whether `id` is accepted and not yet delivered or dead-lettered.
    pub fn is_pending(&self, id: &str) -> bool {
        self.ledger().is_pending(id)
    }

    /// Number of segment files currently kept (for tests).
    pub fn segments(&self) -> usize {
        self.ledger().segments()
    }
}
