//! The dedupe window on disk: `keys-NNNNNNNNNNNNNNNNNNNN.jsonl` files beside the spool
//! segments, one `{"t":"key","account":..,"key":..,"received_ms":..}` line per accepted alert that
//! has an idempotency key, so the window survives a restart.
//!
//! The journal outlives the segments: a delivered alert's segment is deleted at once while its
//! key still guards the window. The spool's writer thread appends the keys in the same batch as
//! their accept records, but only once those are durable, and syncs the journal lazily: the
//! synced accept record carries the key too, and the journal is synced before any segment is
//! deleted. A journal file rotates past `spool.segment_bytes` and is deleted once its newest key
//! has left the window.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spool::file::{for_each_line, AppendFile};

/// One line of a key journal file (tagged like the spool's records).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum KeyRecord {
    /// An accepted alert's key.
    Key {
        /// The account it was accepted for.
        account: String,
        /// Its idempotency key.
        key: String,
        /// Receipt time (unix ms): the window is counted from it.
        received_ms: i64,
    },
}

/// (account, key, received_ms) of a key read back.
pub(crate) type StoredKey = (String, String, i64);

/// Where key journal file `n` lives.
pub(crate) fn keys_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("keys-{n:020}.jsonl"))
}

/// The number of a key journal file, or `None` if `path` is not one.
pub(crate) fn keys_number(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("keys-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// The journal line for a key accepted at `received_ms`.
pub(crate) fn encode(account: &str, key: &str, received_ms: i64) -> io::Result<Vec<u8>> {
    crate::spool::format::encode_line(&KeyRecord::Key {
        account: account.to_owned(),
        key: key.to_owned(),
        received_ms,
    })
}

/// The key journal files replay found, and the one to write next.
#[derive(Debug, Default)]
pub(crate) struct JournalFiles {
    /// Each file read and the newest receipt time in it (deleted once that leaves the window).
    closed: BTreeMap<u64, i64>,
    /// The number of the file to write next.
    next: u64,
}

/// Reads key journal files `numbers` (ascending) in `dir` into `keys`, and returns the files
/// for [`KeyJournal::open`].
pub(crate) fn replay(
    dir: &Path,
    numbers: &[u64],
    keys: &mut NewestKeys,
) -> io::Result<JournalFiles> {
    let mut files = JournalFiles {
        closed: BTreeMap::new(),
        next: numbers.last().map_or(1, |n| n + 1),
    };
    for &n in numbers {
        let path = keys_path(dir, n);
        let mut newest = 0;
        let present = for_each_line(&path, |i, _, line| {
            match serde_json::from_slice::<KeyRecord>(line) {
                Ok(KeyRecord::Key {
                    account,
                    key,
                    received_ms,
                }) => {
                    newest = received_ms.max(newest);
                    keys.note(account, key, received_ms);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), line = i + 1, error = %e, "skipping an unreadable key record");
                }
            }
        })?;
        if present.is_some() {
            files.closed.insert(n, newest);
        }
    }
    Ok(files)
}

/// The keys a replay finds, each once with its newest receipt time: a key is usually both in
/// its accept record and in the key journal, and is kept once as it is read, not collected
/// twice first.
#[derive(Debug, Default)]
pub(crate) struct NewestKeys(HashMap<(String, String), i64>);

impl NewestKeys {
    /// A key received at `received_ms`.
    pub(crate) fn note(&mut self, account: String, key: String, received_ms: i64) {
        let slot = self.0.entry((account, key)).or_insert(received_ms);
        *slot = (*slot).max(received_ms);
    }

    /// (account, key, received_ms) per key, oldest first.
    pub(crate) fn into_sorted(self) -> Vec<StoredKey> {
        let mut keys: Vec<_> = self.0.into_iter().map(|((a, k), ms)| (a, k, ms)).collect();
        keys.sort_by_key(|k| k.2);
        keys
    }
}

/// The journal as the spool's writer thread holds it.
#[derive(Debug)]
pub(crate) struct KeyJournal {
    /// `spool.dir`.
    dir: PathBuf,
    /// The file being appended to.
    current: AppendFile,
    /// Newest receipt time in the current file.
    newest: i64,
    /// Whether the current file has writes not yet synced.
    dirty: bool,
    /// Closed files and the newest receipt time in each.
    closed: BTreeMap<u64, i64>,
    /// Rotation size (`spool.segment_bytes`).
    rotate_at: u64,
}

impl KeyJournal {
    /// Starts the next file in `dir`, keeping track of the files replay found.
    pub(crate) fn open(dir: PathBuf, files: JournalFiles, rotate_at: u64) -> io::Result<Self> {
        let current = AppendFile::create(&keys_path(&dir, files.next), &dir, files.next)?;
        Ok(Self {
            dir,
            current,
            newest: 0,
            dirty: false,
            closed: files.closed,
            rotate_at,
        })
    }

    /// A key received at `received_ms` is about to be appended.
    pub(crate) fn note(&mut self, received_ms: i64) {
        self.newest = self.newest.max(received_ms);
    }

    /// Appends key lines (not synced: see the module docs). What a failed write left is cut
    /// again; only if that is impossible does the journal go on in a new file (a torn line must
    /// not be glued to the next one), so a full disk does not multiply files.
    pub(crate) fn append(&mut self, buf: &[u8]) {
        match self.current.file.write_all(buf) {
            Ok(()) => {
                self.current.written += buf.len() as u64;
                self.dirty = true;
            }
            Err(e) => {
                tracing::error!(error = %e, "key journal write failed; these keys are kept in memory and in their spool records only");
                if self.current.cut_to_written().is_err() {
                    self.rotate();
                }
            }
        }
    }

    /// Starts a new file once the current one is past the rotation size.
    pub(crate) fn rotate_if_full(&mut self) {
        if self.current.written >= self.rotate_at {
            self.rotate();
        }
    }

    /// Makes every key appended so far durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.current.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Deletes closed files whose newest key is older than `before_ms`.
    pub(crate) fn expire(&mut self, before_ms: i64) {
        let expired: Vec<u64> = self
            .closed
            .iter()
            .filter(|(_, &newest)| newest < before_ms)
            .map(|(&n, _)| n)
            .collect();
        for n in expired {
            self.closed.remove(&n);
            let _ = std::fs::remove_file(keys_path(&self.dir, n));
        }
    }

    fn rotate(&mut self) {
        if self.sync().is_err() {
            tracing::error!("cannot sync the key journal before rotating it");
        }
        let n = self.current.number + 1;
        match AppendFile::create(&keys_path(&self.dir, n), &self.dir, n) {
            Ok(file) => {
                self.closed.insert(self.current.number, self.newest);
                self.current = file;
                self.newest = 0;
            }
            Err(e) => tracing::error!(error = %e, "cannot start a new key journal file"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spool::format::segment_path;
    use crate::spool::testing::{entry, files, settings, take_all};
    use crate::spool::{Resolution, Spool};

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
        assert_eq!(replay.pending, 1);
        let pending = take_all(&spool).await;
        assert!(
            replay.keys.iter().any(|(_, k, _)| k == "a"),
            "a's key outlives its segment"
        );
        assert!(!segment_path(dir.path(), 1).exists(), "a's segment is gone");
        assert!(files(dir.path(), "keys-") >= 1);

        // Once the window has passed, the key files go too.
        spool.expire_keys(100_000, 10_000).await;
        spool
            .resolve(&pending[0].id, Resolution::Delivered)
            .await
            .unwrap();
        drop(spool);
        let (_, replay) = Spool::open(s).unwrap();
        assert_eq!(replay.pending, 0);
        assert!(
            replay.keys.iter().all(|(_, k, _)| k != "a"),
            "{:?}",
            replay.keys
        );
    }
}
