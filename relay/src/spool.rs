//! Step 9 of the pipeline: the durable spool. An alert is answered 200 only once it is here.
//!
//! On disk (`spool.dir`):
//! - `segment-NNNNNNNNNNNNNNNNNNNN.jsonl`: append-only JSON lines. An `accept` record holds the
//!   message id, account, idempotency key, receipt time and the exact envelope bytes to send; a
//!   `resolve` record marks an id delivered or dead-lettered. Each start opens a fresh segment, and
//!   a segment is rotated past `segment_bytes`.
//! - `keys-NNNNNNNNNNNNNNNNNNNN.jsonl`: the dedupe journal, one small `key` record (account, key,
//!   receipt time) per accepted alert that has an idempotency key. It outlives the segments, so a
//!   delivered alert's body can be deleted while its key still guards the window.
//! - `dead/dead-letters.jsonl`: every dead letter with its reason and envelope.
//!
//! Writes go through one writer thread that batches concurrent appends into a single write and
//! a single `fdatasync` (group commit): every caller waits for the sync that covers its record.
//! The key journal is written in the same batch but synced lazily: the accept record (synced)
//! carries the key too, and the journal is synced before any segment is deleted.
//! On start the segments and the key journal are replayed: accepted-but-unresolved entries are
//! pending again, and the dedupe window is rebuilt. A torn last line (a crash mid-write) is
//! ignored. The oldest segment is deleted once all its entries are resolved (later segments may
//! hold the resolutions of earlier ones, never the reverse); a key journal file is deleted once
//! its newest key has left the dedupe window.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::MessageId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config::SpoolSettings;

/// Most commands folded into one write + sync.
const MAX_BATCH: usize = 4096;

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

/// A dead letter as written to `dead/dead-letters.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The message id.
    pub id: String,
    /// The account.
    pub account: String,
    /// `rejected_<status>` or `expired`.
    pub reason: String,
    /// When it was accepted (unix ms).
    pub received_ms: i64,
    /// When it was given up (unix ms).
    pub dead_ms: i64,
    /// The envelope that was (or would have been) sent.
    pub envelope: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Record {
    Accept {
        id: String,
        account: String,
        key: Option<String>,
        received_ms: i64,
        body: String,
    },
    Resolve {
        id: String,
        outcome: Resolution,
    },
    Key {
        account: String,
        key: String,
        received_ms: i64,
    },
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
    state: Mutex<State>,
    /// Limits and layout.
    settings: SpoolSettings,
    /// Cleared by a failed write, set by a successful one (`/readyz`).
    healthy: AtomicBool,
    /// Test hook shared with the writer.
    #[cfg(test)]
    fail_writes: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Default)]
struct State {
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

enum Command {
    /// A spool record (synced before the reply), with the accept's key record if any.
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

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("segment-{n:020}.jsonl"))
}

fn segment_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("segment-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

fn keys_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("keys-{n:020}.jsonl"))
}

fn keys_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("keys-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// The complete lines of a journal file; a torn last line is dropped with a warning.
fn complete_lines<'a>(path: &Path, data: &'a [u8]) -> impl Iterator<Item = (usize, &'a [u8])> + 'a {
    let torn = !data.is_empty() && data.last() != Some(&b'\n');
    if torn {
        tracing::warn!(file = %path.display(), "ignoring a torn last record");
    }
    data.split_inclusive(|&b| b == b'\n')
        .filter(|l| l.last() == Some(&b'\n'))
        .enumerate()
}

fn dead_letter_path(dir: &Path) -> PathBuf {
    dir.join("dead").join("dead-letters.jsonl")
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
        let mut numbers = Vec::new();
        let mut key_files = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if let Some(n) = segment_number(&path) {
                numbers.push(n);
            } else if let Some(n) = keys_number(&path) {
                key_files.push(n);
            }
        }
        numbers.sort_unstable();
        key_files.sort_unstable();
        claim(&dir)?;

        let mut state = State::default();
        let mut accepted: HashMap<String, (u64, SpooledAlert)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut keys = Vec::new();
        for &n in &numbers {
            let path = segment_path(&dir, n);
            let Some(data) = read_if_present(&path)? else {
                continue;
            };
            let meta = state.segments.entry(n).or_default();
            meta.bytes = data.len() as u64;
            state.total_bytes += data.len() as u64;
            for (i, line) in complete_lines(&path, &data) {
                match serde_json::from_slice::<Record>(line) {
                    Ok(Record::Accept {
                        id,
                        account,
                        key,
                        received_ms,
                        body,
                    }) => {
                        if let Some(key) = key {
                            keys.push((account.clone(), key, received_ms));
                        }
                        let Ok(msg_id) = MessageId::parse(&id) else {
                            continue;
                        };
                        let alert = SpooledAlert {
                            id: msg_id,
                            account,
                            received_ms,
                            body: Bytes::from(body),
                        };
                        order.push(id.clone());
                        accepted.insert(id, (n, alert));
                    }
                    Ok(Record::Resolve { id, .. }) => {
                        accepted.remove(&id);
                    }
                    Ok(Record::Key { .. }) => {}
                    Err(e) => {
                        tracing::warn!(file = %path.display(), line = i + 1, error = %e, "skipping an unreadable spool record");
                    }
                }
            }
        }
        let mut closed_keys = BTreeMap::new();
        for &n in &key_files {
            let path = keys_path(&dir, n);
            let Some(data) = read_if_present(&path)? else {
                continue;
            };
            let mut newest = 0;
            for (i, line) in complete_lines(&path, &data) {
                match serde_json::from_slice::<Record>(line) {
                    Ok(Record::Key {
                        account,
                        key,
                        received_ms,
                    }) => {
                        newest = received_ms.max(newest);
                        keys.push((account, key, received_ms));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(file = %path.display(), line = i + 1, error = %e, "skipping an unreadable key record");
                    }
                }
            }
            closed_keys.insert(n, newest);
        }
        let mut pending = Vec::with_capacity(accepted.len());
        for id in order {
            if let Some((n, alert)) = accepted.remove(&id) {
                if let Some(meta) = state.segments.get_mut(&n) {
                    meta.unresolved += 1;
                }
                state.pending.insert(id, n);
                pending.push(alert);
            }
        }
        pending.sort_by_key(|a| a.received_ms);
        // A key is usually both in its accept record and in the key journal: keep one of each.
        let mut newest: HashMap<(String, String), i64> = HashMap::new();
        for (account, key, ms) in keys {
            let slot = newest.entry((account, key)).or_insert(ms);
            *slot = (*slot).max(ms);
        }
        let mut keys: Vec<_> = newest.into_iter().map(|((a, k), ms)| (a, k, ms)).collect();
        keys.sort_by_key(|k| k.2);

        let first = numbers.last().map_or(1, |n| n + 1);
        let first_keys = key_files.last().map_or(1, |n| n + 1);
        let writer = Writer::open(
            dir.clone(),
            first,
            first_keys,
            closed_keys,
            settings.segment_bytes,
        )?;
        #[cfg(test)]
        let fail_writes = Arc::clone(&writer.fail_writes);
        state.newest_segment = first;
        state.segments.entry(first).or_default();
        let (tx, rx) = mpsc::channel(65_536);
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(rx))?;
        let shared = Shared {
            tx,
            state: Mutex::new(state),
            settings,
            healthy: AtomicBool::new(true),
            #[cfg(test)]
            fail_writes,
        };
        Ok((
            Self {
                shared: Arc::new(shared),
            },
            Replay { pending, keys },
        ))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Durably appends an accepted alert; returns once it is synced to disk.
    pub async fn append(&self, entry: &NewEntry) -> Result<(), SpoolError> {
        {
            let mut state = self.lock();
            let s = &self.shared.settings;
            if state.pending.len() + state.in_flight >= s.max_pending
                || state.total_bytes >= s.max_bytes
            {
                return Err(SpoolError::Full);
            }
            state.in_flight += 1;
        }
        let a = &entry.alert;
        let record = Record::Accept {
            id: a.id.to_string(),
            account: a.account.clone(),
            key: entry.key.clone(),
            received_ms: a.received_ms,
            body: String::from_utf8_lossy(&a.body).into_owned(),
        };
        let key = entry.key.as_ref().map(|k| Record::Key {
            account: a.account.clone(),
            key: k.clone(),
            received_ms: a.received_ms,
        });
        let result = self
            .write(&record, key.as_ref().map(|k| (k, a.received_ms)))
            .await;
        let mut state = self.lock();
        state.in_flight -= 1;
        let (segment, len) = result?;
        state.note_write(segment, len);
        state.pending.insert(a.id.to_string(), segment);
        if let Some(meta) = state.segments.get_mut(&segment) {
            meta.unresolved += 1;
        }
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
            let mut state = self.lock();
            state.note_write(segment, len);
            if let Some(n) = state.pending.remove(id.as_str()) {
                if let Some(meta) = state.segments.get_mut(&n) {
                    meta.unresolved = meta.unresolved.saturating_sub(1);
                }
            }
            state.removable()
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
        let mut line = serde_json::to_vec(letter).map_err(io::Error::other)?;
        line.push(b'\n');
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

    async fn write(
        &self,
        record: &Record,
        key: Option<(&Record, i64)>,
    ) -> Result<(u64, u64), SpoolError> {
        let mut line = serde_json::to_vec(record).map_err(io::Error::other)?;
        line.push(b'\n');
        let key = match key {
            Some((k, ms)) => {
                let mut l = serde_json::to_vec(k).map_err(io::Error::other)?;
                l.push(b'\n');
                Some((l, ms))
            }
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
        self.lock().pending.len()
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
        self.lock().segments.len()
    }
}

impl State {
    fn note_write(&mut self, segment: u64, len: u64) {
        self.newest_segment = self.newest_segment.max(segment);
        self.total_bytes += len;
        self.segments.entry(segment).or_default().bytes += len;
    }

    /// Oldest-first run of fully resolved segments, short of the one being written. Only the
    /// oldest may go: a later segment may hold the resolution of an earlier one's entry.
    fn removable(&mut self) -> Vec<u64> {
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
}

/// An append-only file the writer thread owns, rotated past a size.
struct Journal {
    /// Open for appending.
    file: File,
    /// Its sequence number in the file name.
    number: u64,
    /// Bytes appended since it was opened (rotation).
    written: u64,
}

/// The thread that owns the files.
struct Writer {
    /// `spool.dir`.
    dir: PathBuf,
    /// The segment being appended to.
    segment: Journal,
    /// The key journal file being appended to.
    keys: Journal,
    /// Newest receipt time in the current key file.
    keys_newest: i64,
    /// Whether the key file has writes not yet synced.
    keys_dirty: bool,
    /// Closed key files and the newest receipt time in each.
    closed_keys: BTreeMap<u64, i64>,
    /// Rotation size for both journals.
    segment_bytes: u64,
    /// The dead-letter file, opened on first use.
    dead: Option<File>,
    /// Test hook: this many spool writes fail as if the disk did.
    #[cfg(test)]
    fail_writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl Writer {
    fn open(
        dir: PathBuf,
        segment: u64,
        keys: u64,
        closed_keys: BTreeMap<u64, i64>,
        segment_bytes: u64,
    ) -> io::Result<Self> {
        let segment = Journal {
            file: create_file(&segment_path(&dir, segment), &dir)?,
            number: segment,
            written: 0,
        };
        let keys = Journal {
            file: create_file(&keys_path(&dir, keys), &dir)?,
            number: keys,
            written: 0,
        };
        Ok(Self {
            dir,
            segment,
            keys,
            keys_newest: 0,
            keys_dirty: false,
            closed_keys,
            segment_bytes,
            dead: None,
            #[cfg(test)]
            fail_writes: Arc::default(),
        })
    }

    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
        let _ = self.keys.file.sync_data();
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
                        self.keys_newest = self.keys_newest.max(ms);
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
            let result = self.write_dead(&dead_buf);
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
        // Keys only of accepts that are now durable. Not synced here: the accept records carry
        // the keys too, and the journal is synced before any segment is deleted.
        if !keys_buf.is_empty() && matches!(spool_result, Some(Ok(_))) {
            match self.keys.file.write_all(&keys_buf) {
                Ok(()) => {
                    self.keys.written += keys_buf.len() as u64;
                    self.keys_dirty = true;
                }
                Err(e) => {
                    tracing::error!(error = %e, "key journal write failed; starting a new file");
                    self.rotate_keys();
                }
            }
        }
        if self.keys.written >= self.segment_bytes {
            self.rotate_keys();
        }
        // A segment's keys must be durable in the key journal before the segment goes.
        if !removals.is_empty() && self.sync_keys().is_ok() {
            for segment in removals {
                if segment != self.segment.number {
                    let _ = std::fs::remove_file(segment_path(&self.dir, segment));
                }
            }
        }
        if let Some(before_ms) = expire_before {
            let expired: Vec<u64> = self
                .closed_keys
                .iter()
                .filter(|(_, &newest)| newest < before_ms)
                .map(|(&n, _)| n)
                .collect();
            for n in expired {
                self.closed_keys.remove(&n);
                let _ = std::fs::remove_file(keys_path(&self.dir, n));
            }
        }
        // Replies last, so a caller that saw its reply also sees every earlier command done.
        if let Some(result) = spool_result {
            for reply in spool_replies {
                let _ = reply.send(result.as_ref().copied().map_err(clone_err));
            }
        }
        if !barriers.is_empty() {
            let _ = self.sync_keys();
            for reply in barriers {
                let _ = reply.send(());
            }
        }
    }

    fn sync_keys(&mut self) -> io::Result<()> {
        if self.keys_dirty {
            self.keys.file.sync_data()?;
            self.keys_dirty = false;
        }
        Ok(())
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

    fn write_dead(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.dead.is_none() {
            let path = dead_letter_path(&self.dir);
            self.dead = Some(private_append(&path)?);
        }
        let file = self
            .dead
            .as_mut()
            .ok_or_else(|| io::Error::other("no dead-letter file"))?;
        let result = file.write_all(buf).and_then(|_| file.sync_data());
        if result.is_err() {
            self.dead = None;
        }
        result
    }

    fn rotate_segment(&mut self) {
        let n = self.segment.number + 1;
        match create_file(&segment_path(&self.dir, n), &self.dir) {
            Ok(file) => {
                self.segment = Journal {
                    file,
                    number: n,
                    written: 0,
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot start a new spool segment"),
        }
    }

    fn rotate_keys(&mut self) {
        if self.sync_keys().is_err() {
            tracing::error!("cannot sync the key journal before rotating it");
        }
        let n = self.keys.number + 1;
        match create_file(&keys_path(&self.dir, n), &self.dir) {
            Ok(file) => {
                self.closed_keys.insert(self.keys.number, self.keys_newest);
                self.keys = Journal {
                    file,
                    number: n,
                    written: 0,
                };
                self.keys_newest = 0;
            }
            Err(e) => tracing::error!(error = %e, "cannot start a new key journal file"),
        }
    }
}

/// A file's contents, or `None` if it was deleted since the directory was listed (a previous
/// writer finishing its last removals).
fn read_if_present(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Refuses a spool directory that another live relay process uses (two writers would interleave
/// records). A lock left by a process that is gone, or whose pid now belongs to a different
/// program (after a reboot), is taken over.
fn claim(dir: &Path) -> io::Result<()> {
    let lock = dir.join("LOCK");
    let me = std::process::id();
    let program = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
    if let Ok(text) = std::fs::read_to_string(&lock) {
        if let Ok(pid) = text.trim().parse::<u32>() {
            let same_program =
                program(&pid.to_string()).is_some_and(|p| Some(p) == program("self"));
            if pid != me && same_program {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "in use by process {pid} (remove {} if that is not a relay)",
                        lock.display()
                    ),
                ));
            }
        }
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&lock)?;
    file.write_all(format!("{me}\n").as_bytes())
}

/// Opens `path` for appending, creating it readable by the owner only.
fn private_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn clone_err(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

fn create_file(path: &Path, dir: &Path) -> io::Result<File> {
    let file = private_append(path)?;
    // Make the new directory entry durable too.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> SpoolSettings {
        SpoolSettings {
            dir: dir.to_owned(),
            max_pending: 10,
            max_bytes: 1 << 20,
            segment_bytes: 1 << 20,
        }
    }

    fn entry(key: &str, received_ms: i64) -> NewEntry {
        let alert = SpooledAlert {
            id: MessageId::generate(),
            account: "main".into(),
            received_ms,
            body: Bytes::from(format!(r#"{{"type":"tradingview.alert","k":"{key}"}}"#)),
        };
        NewEntry {
            alert,
            key: Some(key.to_owned()),
        }
    }

    #[tokio::test]
    async fn a_replay_restores_unresolved_entries_and_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, replay) = Spool::open(settings(dir.path())).unwrap();
        assert!(replay.pending.is_empty());
        let a = entry("a", 1);
        let b = entry("b", 2);
        spool.append(&a).await.unwrap();
        spool.append(&b).await.unwrap();
        spool
            .resolve(&a.alert.id, Resolution::Delivered)
            .await
            .unwrap();
        drop(spool);

        let (again, replay) = Spool::open(settings(dir.path())).unwrap();
        assert_eq!(replay.pending.len(), 1);
        assert_eq!(replay.pending[0].id, b.alert.id);
        assert_eq!(
            replay.pending[0].body, b.alert.body,
            "the envelope bytes are kept exactly"
        );
        assert_eq!(replay.keys.len(), 2);
        assert_eq!(again.pending(), 1);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(settings(dir.path())).unwrap();
        let a = entry("a", 1);
        spool.append(&a).await.unwrap();
        drop(spool);
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| segment_number(p).is_some())
            .unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(br#"{"t":"accept","id":"msg_01TORN","acc"#)
            .unwrap();
        drop(f);

        let (spool, replay) = Spool::open(settings(dir.path())).unwrap();
        assert_eq!(replay.pending.len(), 1);
        assert_eq!(replay.pending[0].id, a.alert.id);
        // Later appends go to a fresh segment and replay cleanly.
        spool.append(&entry("c", 5)).await.unwrap();
        drop(spool);
        let (_, replay) = Spool::open(settings(dir.path())).unwrap();
        assert_eq!(replay.pending.len(), 2);
    }

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

    fn files(dir: &Path, prefix: &str) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_str()
                    .unwrap()
                    .starts_with(prefix)
            })
            .count()
    }

    #[tokio::test]
    async fn delivered_segments_are_deleted_but_their_keys_stay_until_the_window_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.segment_bytes = 1; // every write starts new files
        let (spool, _) = Spool::open(s.clone()).unwrap();
        let a = entry("a", 1_000);
        spool.append(&a).await.unwrap();
        spool
            .resolve(&a.alert.id, Resolution::Delivered)
            .await
            .unwrap();
        spool.append(&entry("b", 2_000)).await.unwrap();
        drop(spool);
        let (spool, replay) = Spool::open(s.clone()).unwrap();
        assert_eq!(replay.pending.len(), 1);
        assert!(
            replay.keys.iter().any(|(_, k, _)| k == "a"),
            "a's key outlives its segment"
        );
        assert!(!segment_path(dir.path(), 1).exists(), "a's segment is gone");
        assert!(files(dir.path(), "keys-") >= 1);

        // Once the window has passed, the key files go too.
        spool.expire_keys(100_000, 10_000).await;
        spool
            .resolve(&replay.pending[0].id, Resolution::Delivered)
            .await
            .unwrap();
        drop(spool);
        let (_, replay) = Spool::open(s).unwrap();
        assert!(replay.pending.is_empty());
        assert!(
            replay.keys.iter().all(|(_, k, _)| k != "a"),
            "{:?}",
            replay.keys
        );
    }

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

    #[test]
    fn a_lock_left_by_a_dead_process_or_another_program_is_taken_over() {
        // (A live relay holding the lock is refused: see the process tests.)
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("LOCK"), format!("{}\n", u32::MAX - 1)).unwrap();
        assert!(Spool::open(settings(dir.path())).is_ok());
        std::fs::write(dir.path().join("LOCK"), "1\n").unwrap(); // pid 1 is init, not a relay
        assert!(Spool::open(settings(dir.path())).is_ok());
        let lock = std::fs::read_to_string(dir.path().join("LOCK")).unwrap();
        assert_eq!(lock.trim(), std::process::id().to_string());
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
