//! The `messages` table: admission (once per id across every receiver, with the shared
//! idempotency-key window), outcomes, and the messages left `pending`.

use std::str::FromStr;

use tokio_postgres::Transaction;

use super::orders::{query_orders, ORDER_COLUMNS};
use super::outbox;
use super::pg;
use crate::journal::events::NotifyEvent;
use crate::journal::{Admission, EarlierPending, JournalError, MessageRecord, NewMessage, Outcome};

const MESSAGE_COLUMNS: &str =
    "id, account, idempotency_key, received_at, recorded_at, updated_at, outcome, reason, envelope, finished_by";

fn read_message(row: &tokio_postgres::Row) -> Result<MessageRecord, JournalError> {
    let outcome: String = row.try_get(6).map_err(pg)?;
    Ok(MessageRecord {
        id: row.try_get(0).map_err(pg)?,
        account: row.try_get(1).map_err(pg)?,
        idempotency_key: row.try_get(2).map_err(pg)?,
        received_at_ms: row.try_get(3).map_err(pg)?,
        recorded_at_ms: row.try_get(4).map_err(pg)?,
        updated_at_ms: row.try_get(5).map_err(pg)?,
        outcome: Outcome::from_str(&outcome)?,
        reason: row.try_get(7).map_err(pg)?,
        envelope: row.try_get(8).map_err(pg)?,
        finished_by: row.try_get(9).map_err(pg)?,
        orders: Vec::new(),
    })
}

/// One message with its orders.
pub(super) async fn load(
    tx: &Transaction<'_>,
    id: &str,
) -> Result<Option<MessageRecord>, JournalError> {
    let row = tx
        .query_opt(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(pg)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut record = read_message(&row)?;
    record.orders = query_orders(
        tx,
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE message_id = $1 ORDER BY leg, seq"),
        &[&id],
    )
    .await?;
    Ok(Some(record))
}

/// Journals `m` unless its id is known, marking it `duplicate` when its idempotency key was used
/// within the window. Receivers sharing the database serialize on a transaction-scoped advisory
/// lock per (account, key), so two deliveries of one key to two receivers cannot both be first;
/// the same id delivered twice at once is settled by the primary key (the second insert waits
/// for the first to commit, inserts nothing and reads the stored record). A message final at
/// admission is finished by `writer`.
pub(super) async fn admit(
    tx: &Transaction<'_>,
    mut m: NewMessage,
    writer: &str,
) -> Result<Admission, JournalError> {
    if let Some(existing) = load(tx, &m.id).await? {
        return Ok(Admission::Seen(existing));
    }
    let mut outcome = m.outcome;
    let mut reason = m.reason.take();
    if let (Some(account), Some(key)) = (&m.account, &m.idempotency_key) {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('alertgate-key:' || $1::text || chr(31) || $2::text, 0))",
            &[account, key],
        )
        .await
        .map_err(pg)?;
        let earlier = tx
            .query_opt(
                "SELECT id FROM messages WHERE account = $1 AND idempotency_key = $2 AND recorded_at >= $3 \
                 AND outcome <> 'duplicate' ORDER BY recorded_at, seq LIMIT 1",
                &[account, key, &m.dedupe_since_ms],
            )
            .await
            .map_err(pg)?;
        if let Some(earlier) = earlier {
            let earlier: String = earlier.try_get(0).map_err(pg)?;
            outcome = Outcome::Duplicate;
            reason = Some(format!("idempotency key already used by {earlier}"));
        }
    }
    let inserted = tx
        .query_opt(
            "INSERT INTO messages (id, account, idempotency_key, received_at, recorded_at, updated_at, envelope, \
             outcome, reason, finished_by) VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING \
             RETURNING seq",
            &[
                &m.id,
                &m.account,
                &m.idempotency_key,
                &m.received_at_ms,
                &m.now_ms,
                &m.envelope.as_ref(),
                &outcome.as_str(),
                &reason,
                &(outcome != Outcome::Pending).then_some(writer),
            ],
        )
        .await
        .map_err(pg)?;
    let Some(inserted) = inserted else {
        // Another receiver journaled it between our read and our insert.
        let existing = load(tx, &m.id)
            .await?
            .ok_or_else(|| JournalError::Corrupt(format!("message {} vanished", m.id)))?;
        return Ok(Admission::Seen(existing));
    };
    if outcome == Outcome::Pending {
        let seq: i64 = inserted.try_get(0).map_err(pg)?;
        keep_keys(tx, &m.id, &m.keys, seq).await?;
        super::leases::take(tx, &m.id, writer, m.now_ms, m.lease_until_ms).await?;
    }
    let now_ms = m.now_ms;
    let record = m.into_record(outcome, reason, writer);
    // As SQLite's: an alert refused at admission is final already; its event goes with it.
    if let Some(event) = NotifyEvent::for_outcome(&record, now_ms) {
        outbox::insert(tx, &event).await?;
    }
    Ok(Admission::New(record))
}

/// Sets a message's outcome; orders still `new` become `skipped` unless it is `pending`. A
/// message leaving `pending` is finished by `writer`.
pub(super) async fn finish(
    tx: &Transaction<'_>,
    id: &str,
    outcome: Outcome,
    reason: Option<String>,
    now_ms: i64,
    writer: &str,
) -> Result<(), JournalError> {
    let before: Option<String> = tx
        .query_opt("SELECT outcome FROM messages WHERE id = $1", &[&id])
        .await
        .map_err(pg)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(pg)?;
    tx.execute(
        "UPDATE messages SET outcome = $2, reason = $3, updated_at = $4, \
         finished_by = CASE WHEN outcome = 'pending' AND $2 <> 'pending' THEN $5 ELSE finished_by END \
         WHERE id = $1",
        &[&id, &outcome.as_str(), &reason, &now_ms, &writer],
    )
    .await
    .map_err(pg)?;
    if outcome != Outcome::Pending {
        tx.execute(
            "UPDATE orders SET status = 'skipped', updated_at = $2 WHERE message_id = $1 AND status = 'new'",
            &[&id, &now_ms],
        )
        .await
        .map_err(pg)?;
        tx.execute("DELETE FROM leases WHERE message_id = $1", &[&id])
            .await
            .map_err(pg)?;
        tx.execute("DELETE FROM pending_keys WHERE message_id = $1", &[&id])
            .await
            .map_err(pg)?;
    }
    // The outcome's notification event, in the outcome's transaction (as SQLite's).
    if before.as_deref() != Some(outcome.as_str()) {
        if let Some(message) = load(tx, id).await? {
            if let Some(event) = NotifyEvent::for_outcome(&message, now_ms) {
                outbox::insert(tx, &event).await?;
            }
        }
    }
    Ok(())
}

/// Records the (account, symbol) keys of `pending` message `id`, journaled as `seq`.
async fn keep_keys(
    tx: &Transaction<'_>,
    id: &str,
    keys: &[(String, String)],
    seq: i64,
) -> Result<(), JournalError> {
    for (account, symbol) in keys {
        tx.execute(
            "INSERT INTO pending_keys (message_id, account, symbol, seq) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &[&id, account, symbol, &seq],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// The `pending` message journaled first before message `id` that shares one of `keys`, with
/// its lease. A message that is not `pending` any more (or unknown) has nothing before it.
pub(super) async fn earliest_pending(
    tx: &Transaction<'_>,
    id: &str,
    keys: &[(String, String)],
) -> Result<Option<EarlierPending>, JournalError> {
    let Some(own) = tx
        .query_opt("SELECT seq FROM messages WHERE id = $1", &[&id])
        .await
        .map_err(pg)?
    else {
        return Ok(None);
    };
    let own: i64 = own.try_get(0).map_err(pg)?;
    let mut first: Option<(i64, EarlierPending)> = None;
    for (account, symbol) in keys {
        let row = tx
            .query_opt(
                "SELECT k.seq, k.message_id, l.holder, l.expires_at FROM pending_keys k \
                 LEFT JOIN leases l ON l.message_id = k.message_id \
                 WHERE k.account = $1 AND k.symbol = $2 AND k.seq < $3 ORDER BY k.seq LIMIT 1",
                &[account, symbol, &own],
            )
            .await
            .map_err(pg)?;
        let Some(row) = row else { continue };
        let seq: i64 = row.try_get(0).map_err(pg)?;
        if first.as_ref().is_some_and(|(s, _)| *s <= seq) {
            continue;
        }
        let holder: Option<String> = row.try_get(2).map_err(pg)?;
        let expires: Option<i64> = row.try_get(3).map_err(pg)?;
        let earlier = EarlierPending {
            message_id: row.try_get(1).map_err(pg)?,
            lease: holder.zip(expires),
        };
        first = Some((seq, earlier));
    }
    Ok(first.map(|(_, e)| e))
}

/// Messages still `pending`, oldest first.
pub(super) async fn unfinished(tx: &Transaction<'_>) -> Result<Vec<MessageRecord>, JournalError> {
    let rows = tx
        .query(
            "SELECT id FROM messages WHERE outcome = 'pending' ORDER BY recorded_at, seq",
            &[],
        )
        .await
        .map_err(pg)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0).map_err(pg)?;
        out.extend(load(tx, &id).await?);
    }
    Ok(out)
}

/// The `limit` messages journaled last, newest first.
pub(super) async fn recent(
    tx: &Transaction<'_>,
    limit: u32,
) -> Result<Vec<MessageRecord>, JournalError> {
    let rows = tx
        .query(
            "SELECT id FROM messages ORDER BY seq DESC LIMIT $1",
            &[&i64::from(limit)],
        )
        .await
        .map_err(pg)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0).map_err(pg)?;
        out.extend(load(tx, &id).await?);
    }
    Ok(out)
}
