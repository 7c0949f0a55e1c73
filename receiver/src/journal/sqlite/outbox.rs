//! The notification outbox (`notify_outbox`), each destination's place in it (`notify_cursors`)
//! and what became of each event at each destination (`notify_deliveries`).

use rusqlite::{params, Connection, OptionalExtension};

use super::storage;
use crate::journal::events::NotifyEvent;
use crate::journal::{DeliveryRecord, JournalError, OutboxEntry};

/// How long events and their delivery records are kept: an event not delivered in a week is no
/// longer news.
const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Pruning runs when a destination passes every this many events.
const PRUNE_EVERY: i64 = 1000;

/// Deletes events (and their delivery records) created before `before_ms`.
fn prune(conn: &Connection, before_ms: i64) -> Result<(), JournalError> {
    conn.prepare_cached(
        "DELETE FROM notify_deliveries WHERE event_seq IN (SELECT seq FROM notify_outbox WHERE created_at < ?1)",
    )
    .map_err(storage)?
    .execute([before_ms])
    .map_err(storage)?;
    conn.prepare_cached("DELETE FROM notify_outbox WHERE created_at < ?1")
        .map_err(storage)?
        .execute([before_ms])
        .map_err(storage)?;
    Ok(())
}

/// Appends `event` (inside the caller's transaction).
pub(super) fn insert(conn: &Connection, event: &NotifyEvent) -> Result<(), JournalError> {
    let json = serde_json::to_string(event)
        .map_err(|e| JournalError::Storage(format!("cannot encode an event: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO notify_outbox (id, kind, message_id, event, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(storage)?
    .execute(params![
        event.id,
        event.kind.as_str(),
        event.message_id,
        json,
        event.at_ms
    ])
    .map_err(storage)?;
    Ok(())
}

/// The destination's cursor; a destination seen for the first time starts after the newest
/// event (it is not sent the history).
pub(super) fn cursor(
    conn: &Connection,
    destination: &str,
    now_ms: i64,
) -> Result<i64, JournalError> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT last_seq FROM notify_cursors WHERE destination = ?1")
        .map_err(storage)?
        .query_row([destination], |r| r.get(0))
        .optional()
        .map_err(storage)?;
    if let Some(seq) = found {
        return Ok(seq);
    }
    let newest: i64 = conn
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM notify_outbox", [], |r| {
            r.get(0)
        })
        .map_err(storage)?;
    conn.prepare_cached(
        "INSERT INTO notify_cursors (destination, last_seq, updated_at) VALUES (?1, ?2, ?3)",
    )
    .map_err(storage)?
    .execute(params![destination, newest, now_ms])
    .map_err(storage)?;
    Ok(newest)
}

/// Events after `after_seq`, oldest first.
pub(super) fn after(
    conn: &Connection,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<OutboxEntry>, JournalError> {
    let rows: Vec<(i64, String)> = conn
        .prepare_cached("SELECT seq, event FROM notify_outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")
        .map_err(storage)?
        .query_map(params![after_seq, limit], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(storage)?
        .collect::<Result<_, _>>()
        .map_err(storage)?;
    rows.into_iter()
        .map(|(seq, json)| {
            let event = serde_json::from_str(&json)
                .map_err(|e| JournalError::Corrupt(format!("outbox event {seq}: {e}")))?;
            Ok(OutboxEntry { seq, event })
        })
        .collect()
}

/// Moves the destination past `seq`, recording the delivery when the event was meant for it.
pub(super) fn advance(
    conn: &Connection,
    destination: &str,
    seq: i64,
    delivery: Option<DeliveryRecord>,
    now_ms: i64,
) -> Result<(), JournalError> {
    if let Some(d) = delivery {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO notify_deliveries (event_seq, destination, outcome, attempts, error, delivered_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(storage)?
        .execute(params![seq, destination, d.outcome, d.attempts, d.error, now_ms])
        .map_err(storage)?;
    }
    if seq % PRUNE_EVERY == 0 {
        prune(conn, now_ms - RETENTION_MS)?;
    }
    conn.prepare_cached(
        "INSERT INTO notify_cursors (destination, last_seq, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (destination) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq), updated_at = excluded.updated_at",
    )
    .map_err(storage)?
    .execute(params![destination, seq, now_ms])
    .map_err(storage)?;
    Ok(())
}

/// Deliveries recorded for the event `event_id` (destination, outcome, attempts): tests and
/// troubleshooting.
pub(super) fn deliveries(
    conn: &Connection,
    event_id: &str,
) -> Result<Vec<(String, String, u32)>, JournalError> {
    conn.prepare_cached(
        "SELECT d.destination, d.outcome, d.attempts FROM notify_deliveries d \
         JOIN notify_outbox o ON o.seq = d.event_seq WHERE o.id = ?1 ORDER BY d.destination",
    )
    .map_err(storage)?
    .query_map([event_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .map_err(storage)?
    .collect::<Result<_, _>>()
    .map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::events::{EventKind, NotifyEvent};
    use crate::journal::sqlite::schema::open_connection;

    #[test]
    fn a_destination_resumes_after_its_cursor_records_once_and_old_events_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(
            &dir.path().join("j.db"),
            std::time::Duration::from_millis(200),
        )
        .unwrap();
        insert(&conn, &NotifyEvent::standalone(EventKind::Drift, 1, "old")).unwrap();
        assert_eq!(
            cursor(&conn, "tg", 10).unwrap(),
            1,
            "a new destination starts at the end"
        );
        let fresh = NotifyEvent::standalone(EventKind::Drift, RETENTION_MS + 10, "new");
        insert(&conn, &fresh).unwrap();
        let pending = after(&conn, 1, 10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].event, fresh);
        let d = DeliveryRecord {
            outcome: "sent".into(),
            attempts: 1,
            error: None,
        };
        advance(&conn, "tg", 2, Some(d.clone()), RETENTION_MS + 20).unwrap();
        advance(&conn, "tg", 2, Some(d), RETENTION_MS + 21).unwrap();
        assert_eq!(cursor(&conn, "tg", 0).unwrap(), 2);
        assert_eq!(
            deliveries(&conn, &fresh.id).unwrap(),
            vec![("tg".to_owned(), "sent".to_owned(), 1)]
        );
        prune(&conn, RETENTION_MS).unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM notify_outbox", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1, "only the old event is pruned");
    }
}
