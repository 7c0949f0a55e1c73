//! Reading the spool back at open: the accepted-but-unresolved entries become pending again in
//! the ledger (where their records lie, in acceptance order: their bodies stay on disk until the
//! forwarder reads them), and every dedupe key the segments and the key journal remember is
//! collected for the window. A torn last line is ignored; an unreadable record is skipped with a
//! warning.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use alertgate_shared::MessageId;

use super::file::for_each_line;
use super::format::{segment_number, segment_path, Record};
use super::ledger::{Ledger, Location};
use super::Replay;
use crate::dedupe::journal;

/// The numbered files of a spool directory, ascending.
#[derive(Debug)]
pub(super) struct Listing {
    /// Segment numbers.
    segments: Vec<u64>,
    /// Key journal file numbers.
    keys: Vec<u64>,
}

/// Lists the segments and key journal files in `dir`.
pub(super) fn list(dir: &Path) -> io::Result<Listing> {
    let mut segments = Vec::new();
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(n) = segment_number(&path) {
            segments.push(n);
        } else if let Some(n) = journal::keys_number(&path) {
            keys.push(n);
        }
    }
    segments.sort_unstable();
    keys.sort_unstable();
    Ok(Listing { segments, keys })
}

/// Everything a spool reopens with.
#[derive(Debug)]
pub(super) struct Recovered {
    /// Pending entries and segment sizes.
    pub(super) ledger: Ledger,
    /// What the caller gets back.
    pub(super) replay: Replay,
    /// The number of the segment to write next.
    pub(super) next_segment: u64,
    /// The key journal files found, for the writer to expire in time.
    pub(super) journal: journal::JournalFiles,
}

/// Replays the files of `listing` in `dir`.
pub(super) fn read(dir: &Path, listing: &Listing) -> io::Result<Recovered> {
    let mut ledger = Ledger::default();
    // id → (acceptance rank, where): only what the ledger keeps, one segment in memory at a time.
    let mut accepted: HashMap<String, (usize, Location)> = HashMap::new();
    let mut rank = 0;
    let mut keys = journal::NewestKeys::default();
    for &n in &listing.segments {
        let path = segment_path(dir, n);
        let present = for_each_line(&path, |i, offset, line| {
            match serde_json::from_slice::<Record>(line) {
                Ok(Record::Accept {
                    id,
                    account,
                    key,
                    received_ms,
                    ..
                }) => {
                    if MessageId::parse(&id).is_ok() {
                        let at = Location {
                            segment: n,
                            offset,
                            len: u32::try_from(line.len()).unwrap_or(u32::MAX),
                        };
                        accepted.insert(id, (rank, at));
                        rank += 1;
                    }
                    if let Some(key) = key {
                        keys.note(account, key, received_ms);
                    }
                }
                Ok(Record::Resolve { id, .. }) => {
                    accepted.remove(&id);
                }
                Ok(Record::Probe { .. }) => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), line = i + 1, error = %e, "skipping an unreadable spool record");
                }
            }
        })?;
        if let Some(bytes) = present {
            ledger.found_segment(n, bytes);
        }
    }
    let journal = journal::replay(dir, &listing.keys, &mut keys)?;
    let keys = keys.into_sorted();
    let mut pending: Vec<(String, (usize, Location))> = accepted.into_iter().collect();
    pending.sort_unstable_by_key(|(_, (rank, _))| *rank);
    let count = pending.len();
    for (id, (_, at)) in pending {
        ledger.accepted(id, at, None);
    }
    Ok(Recovered {
        ledger,
        replay: Replay {
            pending: count,
            keys,
        },
        next_segment: listing.segments.last().map_or(1, |n| n + 1),
        journal,
    })
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::segment_number;
    use crate::spool::testing::{entry, settings, take_all};
    use crate::spool::{Resolution, Spool};

    #[tokio::test]
    async fn a_replay_restores_unresolved_entries_and_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, replay) = Spool::open(settings(dir.path())).unwrap();
        assert_eq!(replay.pending, 0);
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
        assert_eq!(replay.pending, 1);
        let pending = take_all(&again).await;
        assert_eq!(pending[0].id, b.alert.id);
        assert_eq!(
            pending[0].body, b.alert.body,
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
        assert_eq!(replay.pending, 1);
        assert_eq!(take_all(&spool).await[0].id, a.alert.id);
        // Later appends go to a fresh segment and replay cleanly.
        spool.append(&entry("c", 5)).await.unwrap();
        drop(spool);
        let (_, replay) = Spool::open(settings(dir.path())).unwrap();
        assert_eq!(replay.pending, 2);
    }
}
