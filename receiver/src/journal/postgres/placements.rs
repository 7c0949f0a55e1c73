//! The `paper_orders` table: the paper broker's book by client order id, shared by every
//! receiver on the database.

use tokio_postgres::Transaction;

use super::pg;
use crate::journal::sqlite::values::{dec, opt_dec, parse_status};
use crate::journal::JournalError;
use crate::order::Placement;

/// Stores `placement` for `cid` unless a placement is stored already; returns the stored one.
pub(super) async fn record_once(
    tx: &Transaction<'_>,
    cid: &str,
    placement: Placement,
    now_ms: i64,
) -> Result<Placement, JournalError> {
    tx.execute(
        "INSERT INTO paper_orders (client_order_id, venue_order_id, status, filled_quantity, \
         average_price, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (client_order_id) DO NOTHING",
        &[
            &cid,
            &placement.venue_order_id,
            &placement.status.as_str(),
            &placement.filled_quantity.to_string(),
            &placement.average_price.map(|d| d.to_string()),
            &now_ms,
        ],
    )
    .await
    .map_err(pg)?;
    lookup(tx, cid)
        .await?
        .ok_or_else(|| JournalError::Corrupt("paper order vanished".into()))
}

/// The placement stored for `cid`.
pub(super) async fn lookup(
    tx: &Transaction<'_>,
    cid: &str,
) -> Result<Option<Placement>, JournalError> {
    let row = tx
        .query_opt(
            "SELECT venue_order_id, status, filled_quantity, average_price FROM paper_orders WHERE client_order_id = $1",
            &[&cid],
        )
        .await
        .map_err(pg)?;
    row.map(|r| {
        Ok(Placement {
            venue_order_id: r.try_get(0).map_err(pg)?,
            status: parse_status(&r.try_get::<_, String>(1).map_err(pg)?)?,
            filled_quantity: dec(&r.try_get::<_, String>(2).map_err(pg)?)?,
            average_price: opt_dec(r.try_get(3).map_err(pg)?)?,
            fee: None,
        })
    })
    .transpose()
}

/// Replaces the placement stored for `cid` (a paper order cancelled or filled while resting).
pub(super) async fn update(
    tx: &Transaction<'_>,
    cid: &str,
    placement: &Placement,
) -> Result<(), JournalError> {
    tx.execute(
        "UPDATE paper_orders SET status = $2, filled_quantity = $3, average_price = $4 \
         WHERE client_order_id = $1",
        &[
            &cid,
            &placement.status.as_str(),
            &placement.filled_quantity.to_string(),
            &placement.average_price.map(|d| d.to_string()),
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
