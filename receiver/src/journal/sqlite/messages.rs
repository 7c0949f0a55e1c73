//! The `messages` table: admission (once per id, with the idempotency-key check), outcomes, and
//! the messages left `pending`.

use std::str::FromStr;

use rusqlite::{params, Connection, OptionalExtension};

use super::orders::{query_orders, ORDER_COLUMNS};
use super::outbox;
use super::storage;
use crate::journal::events::NotifyEvent;
use crate::journal::{Admission, JournalError, MessageRecord, NewMessage, Outcome};

/// One message with its orders.
pub(super) fn load(conn: &Connection, id: &str) -> Result<Option<MessageRecord>, JournalError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, account, idempotency_key, received_at, recorded_at, updated_at, outcome, reason, envelope, \
             finished_by FROM messages WHERE id = ?1",
        )
        .map_err(storage)?;
    let row = stmt
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Vec<u8>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })
        .optional()
        .map_err(storage)?;
    let Some((
        id,
        account,
        idempotency_key,
        received_at_ms,
        recorded_at_ms,
        updated_at_ms,
        outcome,
        reason,
        envelope,
        finished_by,
    )) = row
    else {
        return Ok(None);
    };
    let orders = query_orders(
        conn,
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE message_id = ?1 ORDER BY leg, seq"),
        [&id],
    )?;
    Ok(Some(MessageRecord {
        id,
        account,
        idempotency_key,
        received_at_ms,
        recorded_at_ms,
        updated_at_ms,
        outcome: Outcome::from_str(&outcome)?,
        reason,
        envelope,
        finished_by,
        orders,
    }))
}

/// Journals `m` unless its id is known, marking it `duplicate` when its idempotency key was used
/// within the window; a message final at admission is finished by `writer`.
pub(super) fn admit(
    conn: &Connection,
    mut m: NewMessage,
    writer: &str,
) -> Result<Admission, JournalError> {
    if let Some(existing) = load(conn, &m.id)? {
        return Ok(Admission::Seen(existing));
    }
    let mut outcome = m.outcome;
    let mut reason = m.reason.take();
    if let (Some(account), Some(key)) = (&m.account, &m.idempotency_key) {
        let earlier: Option<String> = conn
            .prepare_cached(
                "SELECT id FROM messages WHERE account = ?1 AND idempotency_key = ?2 AND recorded_at >= ?3 \
                 AND outcome <> 'duplicate' ORDER BY recorded_at LIMIT 1",
            )
            .map_err(storage)?
            .query_row(params![account, key, m.dedupe_since_ms], |r| r.get(0))
            .optional()
            .map_err(storage)?;
        if let Some(earlier) = earlier {
            outcome = Outcome::Duplicate;
            reason = Some(format!("idempotency key already used by {earlier}"));
        }
    }
    conn.prepare_cached(
        "INSERT INTO messages (id, account, idempotency_key, received_at, recorded_at, updated_at, envelope, \
         outcome, reason, finished_by) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
    )
    .map_err(storage)?
    .execute(params![
        m.id,
        m.account,
        m.idempotency_key,
        m.received_at_ms,
        m.now_ms,
        m.envelope.as_ref(),
        outcome.as_str(),
        reason,
        (outcome != Outcome::Pending).then_some(writer)
    ])
    .map_err(storage)?;
    let now_ms = m.now_ms;
    let record = m.into_record(outcome, reason, writer);
    // An alert refused at admission (`invalid`) is final already: its event goes with it.
    if let Some(event) = NotifyEvent::for_outcome(&record, now_ms) {
        outbox::insert(conn, &event)?;
    }
    Ok(Admission::New(record))
}

/// Sets a message's outcome; orders still `new` become `skipped` unless it is `pending`. A
/// message leaving `pending` is finished by `writer`.
pub(super) fn finish(
    conn: &Connection,
    id: &str,
    outcome: Outcome,
    reason: Option<String>,
    now_ms: i64,
    writer: &str,
) -> Result<(), JournalError> {
    let before: Option<String> = conn
        .prepare_cached("SELECT outcome FROM messages WHERE id = ?1")
        .map_err(storage)?
        .query_row([id], |r| r.get(0))
        .optional()
        .map_err(storage)?;
    conn.prepare_cached(
        "UPDATE messages SET outcome = ?2, reason = ?3, updated_at = ?4, \
         finished_by = CASE WHEN outcome = 'pending' AND ?2 <> 'pending' THEN ?5 ELSE finished_by END \
         WHERE id = ?1",
    )
    .map_err(storage)?
    .execute(params![id, outcome.as_str(), reason, now_ms, writer])
    .map_err(storage)?;
    if outcome != Outcome::Pending {
        conn.prepare_cached(
            "UPDATE orders SET status = 'skipped', updated_at = ?2 WHERE message_id = ?1 AND status = 'new'",
        )
        .map_err(storage)?
        .execute(params![id, now_ms])
        .map_err(storage)?;
    }
    if before.as_deref() != Some(outcome.as_str()) {
        enqueue_outcome_event(conn, id, now_ms)?;
    }
    Ok(())
}

/// Writes the notification event of the message's new outcome, if it makes one, in the same
/// transaction as the outcome.
fn enqueue_outcome_event(conn: &Connection, id: &str, now_ms: i64) -> Result<(), JournalError> {
    if let Some(message) = load(conn, id)? {
        if let Some(event) = NotifyEvent::for_outcome(&message, now_ms) {
            outbox::insert(conn, &event)?;
        }
    }
    Ok(())
}

/// Messages still `pending`, oldest first.
pub(super) fn unfinished(conn: &Connection) -> Result<Vec<MessageRecord>, JournalError> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE outcome = 'pending' ORDER BY recorded_at, rowid",
        )
        .map_err(storage)?
        .query_map([], |r| r.get(0))
        .map_err(storage)?
        .collect::<Result<_, _>>()
        .map_err(storage)?;
    load_all(conn, ids)
}

/// The `limit` messages inserted last, newest first (by rowid: insertion order, no scan).
pub(super) fn recent(conn: &Connection, limit: u32) -> Result<Vec<MessageRecord>, JournalError> {
    let ids: Vec<String> = conn
        .prepare_cached("SELECT id FROM messages ORDER BY rowid DESC LIMIT ?1")
        .map_err(storage)?
        .query_map([limit], |r| r.get(0))
        .map_err(storage)?
        .collect::<Result<_, _>>()
        .map_err(storage)?;
    load_all(conn, ids)
}

/// The messages of `ids`, in that order.
fn load_all(conn: &Connection, ids: Vec<String>) -> Result<Vec<MessageRecord>, JournalError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(load(conn, &id)?);
    }
    Ok(out)
}

/// Messages journaled at or after `since_ms`, oldest first (`replay`).
pub(super) fn since(conn: &Connection, since_ms: i64) -> Result<Vec<MessageRecord>, JournalError> {
    let ids: Vec<String> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE recorded_at >= ?1 ORDER BY recorded_at, rowid",
        )
        .map_err(storage)?
        .query_map([since_ms], |r| r.get(0))
        .map_err(storage)?
        .collect::<Result<_, _>>()
        .map_err(storage)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(load(conn, &id)?);
    }
    Ok(out)
}
