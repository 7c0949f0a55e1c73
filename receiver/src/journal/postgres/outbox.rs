//! The notification outbox on PostgreSQL, as SQLite's (`journal/sqlite/outbox.rs`): events,
//! each destination's cursor and the delivery records, shared by every receiver on the database.

use tokio_postgres::Transaction;

use super::pg;
use crate::journal::events::NotifyEvent;
use crate::journal::{DeliveryRecord, JournalError, OutboxEntry};

/// How long events and their delivery records are kept (as SQLite's).
const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Pruning runs when a destination passes every this many events.
const PRUNE_EVERY: i64 = 1000;

/// Appends `event` (inside the caller's transaction).
pub(super) async fn insert(tx: &Transaction<'_>, event: &NotifyEvent) -> Result<(), JournalError> {
    let json = serde_json::to_string(event)
        .map_err(|e| JournalError::Storage(format!("cannot encode an event: {e}")))?;
    tx.execute(
        "INSERT INTO notify_outbox (id, kind, message_id, event, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING",
        &[&event.id, &event.kind.as_str(), &event.message_id, &json, &event.at_ms],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// The destination's cursor; a destination seen for the first time starts after the newest event.
pub(super) async fn cursor(
    tx: &Transaction<'_>,
    destination: &str,
    now_ms: i64,
) -> Result<i64, JournalError> {
    if let Some(row) = tx
        .query_opt(
            "SELECT last_seq FROM notify_cursors WHERE destination = $1",
            &[&destination],
        )
        .await
        .map_err(pg)?
    {
        return row.try_get(0).map_err(pg);
    }
    let newest: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM notify_outbox",
            &[],
        )
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    tx.execute(
        "INSERT INTO notify_cursors (destination, last_seq, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (destination) DO NOTHING",
        &[&destination, &newest, &now_ms],
    )
    .await
    .map_err(pg)?;
    let row = tx
        .query_one(
            "SELECT last_seq FROM notify_cursors WHERE destination = $1",
            &[&destination],
        )
        .await
        .map_err(pg)?;
    row.try_get(0).map_err(pg)
}

/// Events after `after_seq`, oldest first.
pub(super) async fn after(
    tx: &Transaction<'_>,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<OutboxEntry>, JournalError> {
    let rows = tx
        .query(
            "SELECT seq, event FROM notify_outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after_seq, &i64::from(limit)],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            let seq: i64 = r.try_get(0).map_err(pg)?;
            let json: String = r.try_get(1).map_err(pg)?;
            let event = serde_json::from_str(&json)
                .map_err(|e| JournalError::Corrupt(format!("outbox event {seq}: {e}")))?;
            Ok(OutboxEntry { seq, event })
        })
        .collect()
}

/// Moves the destination past `seq`, recording the delivery when the event was meant for it.
pub(super) async fn advance(
    tx: &Transaction<'_>,
    destination: &str,
    seq: i64,
    delivery: Option<DeliveryRecord>,
    now_ms: i64,
) -> Result<(), JournalError> {
    if let Some(d) = delivery {
        tx.execute(
            "INSERT INTO notify_deliveries (event_seq, destination, outcome, attempts, error, delivered_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_seq, destination) DO UPDATE SET \
             outcome = excluded.outcome, attempts = excluded.attempts, error = excluded.error, \
             delivered_at = excluded.delivered_at",
            &[&seq, &destination, &d.outcome, &i64::from(d.attempts), &d.error, &now_ms],
        )
        .await
        .map_err(pg)?;
    }
    if seq % PRUNE_EVERY == 0 {
        let before = now_ms - RETENTION_MS;
        tx.execute(
            "DELETE FROM notify_deliveries WHERE event_seq IN (SELECT seq FROM notify_outbox WHERE created_at < $1)",
            &[&before],
        )
        .await
        .map_err(pg)?;
        tx.execute(
            "DELETE FROM notify_outbox WHERE created_at < $1",
            &[&before],
        )
        .await
        .map_err(pg)?;
    }
    tx.execute(
        "INSERT INTO notify_cursors (destination, last_seq, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (destination) DO UPDATE SET last_seq = GREATEST(notify_cursors.last_seq, excluded.last_seq), \
         updated_at = excluded.updated_at",
        &[&destination, &seq, &now_ms],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
