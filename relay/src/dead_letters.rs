//! Dead letters for the operator (contract: DESIGN.md section 16): `alertgate-relay
//! dead-letters list` reads `dead/dead-letters.jsonl`; `dead-letters replay` puts the chosen
//! letters back into the spool with their original `webhook-id` and `received_at` (the envelope
//! is sent byte for byte as it was), so exactly-once holds: a receiver that has the id answers
//! `duplicate`, and a stale signal still expires by its max-age rules.
//!
//! Replay works while the relay runs: the command never writes the spool (the running relay
//! owns it, `LOCK`); it drops a request file into `spool.dir/replay/` (written aside and renamed,
//! so it is whole or absent), and the relay appends its letters to the spool within a second
//! ([`take_replays`], from its maintenance loop, and once at start), then deletes the file. A
//! relay that is stopped takes them at its next start.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use alertgate_shared::MessageId;
use bytes::Bytes;

use crate::spool::{DeadLetter, NewEntry, Spool, SpooledAlert};

/// Which letters to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids.
    Ids(Vec<String>),
    /// Letters given up at or after this time (unix ms).
    Since(i64),
    /// Every letter.
    All,
}

/// `dead/dead-letters.jsonl` of the spool in `spool_dir`.
pub fn file(spool_dir: &Path) -> PathBuf {
    crate::spool::dead_letter_path(spool_dir)
}

/// Where replay requests wait for the relay.
pub fn replay_dir(spool_dir: &Path) -> PathBuf {
    spool_dir.join("replay")
}

/// Every dead letter, oldest first (an id dead-lettered twice appears twice). A torn last line
/// (a crash mid-write) is skipped; any other unreadable line is an error naming it.
pub fn read_all(spool_dir: &Path) -> io::Result<Vec<DeadLetter>> {
    let path = file(spool_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<DeadLetter>(line) {
            Ok(l) => out.push(l),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} line {}: {e}", path.display(), i + 1),
                ))
            }
        }
    }
    Ok(out)
}

/// The letters `selection` picks, each id once (its latest letter), oldest first. Unknown ids
/// are returned as the error's list.
pub fn select(
    letters: &[DeadLetter],
    selection: &Selection,
) -> Result<Vec<DeadLetter>, Vec<String>> {
    let mut latest: Vec<DeadLetter> = Vec::new();
    for l in letters {
        latest.retain(|x| x.id != l.id);
        latest.push(l.clone());
    }
    match selection {
        Selection::All => Ok(latest),
        Selection::Since(ms) => Ok(latest.into_iter().filter(|l| l.dead_ms >= *ms).collect()),
        Selection::Ids(ids) => {
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !latest.iter().any(|l| &l.id == *id))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(missing);
            }
            Ok(latest.into_iter().filter(|l| ids.contains(&l.id)).collect())
        }
    }
}

/// Queues `letters` for the relay; returns the request file.
pub fn queue_replay(spool_dir: &Path, letters: &[DeadLetter]) -> io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = replay_dir(spool_dir);
    std::fs::create_dir_all(&dir)?;
    let name = format!(
        "replay-{}-{}.jsonl",
        time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
        std::process::id()
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    for l in letters {
        let line = serde_json::to_string(l).map_err(io::Error::other)?;
        f.write_all(line.as_bytes())?;
        f.write_all(b"\n")?;
    }
    f.sync_all()?;
    let target = dir.join(name);
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(target)
}

/// Appends the letters of every waiting replay request to `spool` (original id, account,
/// receipt time and envelope), then deletes the request. Letters whose id is still pending are
/// skipped (they are on their way already). Returns how many were appended.
pub async fn take_replays(spool: &Spool, spool_dir: &Path) -> io::Result<usize> {
    let dir = replay_dir(spool_dir);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("replay-") && n.ends_with(".jsonl"))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    files.sort();
    let mut appended = 0;
    for path in files {
        let text = std::fs::read_to_string(&path)?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let letter: DeadLetter = serde_json::from_str(line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?;
            let Ok(id) = MessageId::parse(&letter.id) else {
                tracing::warn!(id = %letter.id, "replay: not a message id; skipped");
                continue;
            };
            if spool.is_pending(id.as_str()) {
                continue;
            }
            let entry = NewEntry {
                alert: SpooledAlert {
                    id,
                    account: letter.account.clone(),
                    received_ms: letter.received_ms,
                    body: Bytes::from(letter.envelope.clone().into_bytes()),
                },
                key: None,
            };
            spool
                .append(&entry)
                .await
                .map_err(|e| io::Error::other(format!("replaying {}: {e}", letter.id)))?;
            tracing::info!(id = %letter.id, account = %letter.account, "dead letter replayed into the spool");
            appended += 1;
        }
        std::fs::remove_file(&path)?;
    }
    Ok(appended)
}
