//! The single writer thread: it commits whatever is queued in one transaction (group commit) and
//! runs each queued operation in its own savepoint, so one failing operation does not undo its
//! neighbours. Callers are answered after the commit.

use std::sync::mpsc;

use rusqlite::Connection;

use super::storage;
use crate::journal::JournalError;

/// Operations committed together at most.
const MAX_BATCH: usize = 512;

/// Called with the commit's result once the batch is committed (or rolled back).
pub(super) type Reply = Box<dyn FnOnce(Result<(), JournalError>) + Send>;
/// One queued operation: runs on the writer thread, returns what to do after the commit.
pub(super) type Op = Box<dyn FnOnce(&Connection) -> Reply + Send>;

pub(super) fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    conn.execute_batch("SAVEPOINT op").map_err(storage)?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE op").map_err(storage)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}

pub(super) fn writer_loop(conn: Connection, queue: mpsc::Receiver<Op>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = storage(e);
            tracing::error!(error = %err, "journal: cannot begin a transaction");
            // Nothing ran: dropping the operations drops their reply channels, which callers see
            // as `JournalError::Closed` and answer with 503 like any storage error.
            drop(batch);
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|op| op(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(storage);
        if let Err(e) = &commit {
            tracing::error!(error = %e, "journal: commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}
