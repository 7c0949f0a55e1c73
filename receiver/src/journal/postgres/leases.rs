//! The `leases` table: which receiver executes a `pending` message, until when. A receiver that
//! dies stops renewing; once its lease has expired another receiver takes the message over and
//! resumes it with the same client order ids.

use tokio_postgres::Transaction;

use super::pg;
use crate::journal::JournalError;

/// Takes or renews the lease of `id` for `holder` until `until_ms`, unless another holder's lease
/// is still running at `now_ms`. `true` when `holder` holds it afterwards.
pub(super) async fn take(
    tx: &Transaction<'_>,
    id: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, JournalError> {
    let taken = tx
        .execute(
            "INSERT INTO leases (message_id, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (message_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $3",
            &[&id, &holder, &now_ms, &until_ms],
        )
        .await
        .map_err(pg)?;
    Ok(taken == 1)
}
