//! The single writer thread and its syncer: the writer runs whatever is queued in one
//! transaction (group commit), each queued operation in its own savepoint so one failing
//! operation does not undo its neighbours, and hands the committed batch to the syncer thread,
//! which makes it durable (`fdatasync` of the WAL file) and only then answers its callers.
//!
//! Why two threads: with `synchronous = FULL` SQLite syncs inside `COMMIT`, so the writer sat
//! idle for a whole fsync per batch and every operation queued meanwhile (a read inside an
//! executor turn, the paper broker's fill) waited for it: each (account, symbol) then ran at a
//! few hundred alerts a second however idle the CPUs were. Now the connection runs with
//! `synchronous = NORMAL` (SQLite itself syncs only around checkpoints, which keeps the database
//! file consistent) and the syncer supplies the per-commit sync `FULL` would have: a caller is
//! answered only after an `fdatasync` of the WAL that began after its batch's `COMMIT` wrote
//! the batch's frames. The writer meanwhile runs the next batch. One sync covers every batch
//! committed before it, so the syncer folds all waiting batches into one.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::Connection;

use super::storage;
use crate::journal::JournalError;

/// Operations committed together at most.
const MAX_BATCH: usize = 512;

/// Called with the commit's result once the batch is durable (or rolled back).
pub(super) type Reply = Box<dyn FnOnce(Result<(), JournalError>) + Send>;
/// One queued operation: runs on the writer thread, returns what to do after the commit.
pub(super) type Op = Box<dyn FnOnce(&Connection) -> Reply + Send>;

pub(super) fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    // Prepared once per connection (the statement cache), not parsed again for every operation.
    run_cached(conn, "SAVEPOINT op")?;
    match f(conn) {
        Ok(v) => {
            run_cached(conn, "RELEASE op")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}

/// Runs one statement from the connection's statement cache.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), JournalError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(storage)
}

/// Runs on the writer thread until every sender is gone; `db` is the database file (its WAL is
/// `{db}-wal`).
pub(super) fn writer_loop(conn: Connection, db: PathBuf, queue: mpsc::Receiver<Op>) {
    let (committed, to_sync) = mpsc::channel::<Vec<Reply>>();
    let syncer = std::thread::Builder::new()
        .name("journal-sync".into())
        .spawn(move || sync_loop(&wal_path(&db), to_sync));
    if let Err(e) = &syncer {
        tracing::error!(error = %e, "journal: cannot start the sync thread; answering every write with an error");
    }
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(err) = run_cached(&conn, "BEGIN IMMEDIATE") {
            tracing::error!(error = %err, "journal: cannot begin a transaction");
            // Nothing ran: dropping the operations drops their reply channels, which callers see
            // as `JournalError::Closed` and answer with 503 like any storage error.
            drop(batch);
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|op| op(&conn)).collect();
        if let Err(e) = run_cached(&conn, "COMMIT") {
            tracing::error!(error = %e, "journal: commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            for reply in replies {
                reply(Err(e.clone()));
            }
            continue;
        }
        if let Err(mpsc::SendError(replies)) = committed.send(replies) {
            for reply in replies {
                reply(Err(JournalError::Storage(
                    "the journal's sync thread has stopped".into(),
                )));
            }
        }
    }
    // Every batch committed so far is answered once the syncer has drained its queue.
    drop(committed);
    if let Ok(syncer) = syncer {
        let _ = syncer.join();
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Makes committed batches durable, oldest first, and answers their callers.
fn sync_loop(wal: &Path, committed: mpsc::Receiver<Vec<Reply>>) {
    let mut file: Option<File> = None;
    while let Ok(first) = committed.recv() {
        let mut replies = first;
        while let Ok(more) = committed.try_recv() {
            replies.extend(more);
        }
        let result = sync_wal(wal, &mut file);
        if let Err(e) = &result {
            tracing::error!(error = %e, "journal: cannot sync the WAL; the batch is not durable");
        }
        for reply in replies {
            reply(result.clone());
        }
    }
}

/// `fdatasync` of the WAL file, (re)opened when it is not the file now at `wal` (SQLite removes
/// the WAL only when the last connection closes; a new one is a new inode).
fn sync_wal(wal: &Path, file: &mut Option<File>) -> Result<(), JournalError> {
    let current = std::fs::metadata(wal)
        .map_err(|e| JournalError::Storage(format!("cannot stat {}: {e}", wal.display())))?;
    let stale = match file {
        Some(f) => f
            .metadata()
            .map(|m| m.ino() != current.ino())
            .unwrap_or(true),
        None => true,
    };
    if stale {
        *file =
            Some(File::open(wal).map_err(|e| {
                JournalError::Storage(format!("cannot open {}: {e}", wal.display()))
            })?);
    }
    match file {
        Some(f) => f
            .sync_data()
            .map_err(|e| JournalError::Storage(format!("cannot sync {}: {e}", wal.display()))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_sits_beside_the_database_with_a_suffix() {
        assert_eq!(
            wal_path(Path::new("/data/receiver.db")),
            PathBuf::from("/data/receiver.db-wal")
        );
    }
}
