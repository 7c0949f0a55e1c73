//! The `paper_orders` table: the placements a venue inside the receiver (the paper broker) keeps
//! by client order id. The table name predates [`crate::journal::PlacementStore`] and stays, so
//! existing journals keep their books.

use rusqlite::{params, Connection, OptionalExtension};

use super::storage;
use super::values::{dec, opt_dec, parse_status};
use crate::journal::JournalError;
use crate::order::Placement;

/// Stores `placement` for `cid` unless a placement is stored already; returns the stored one.
pub(super) fn record_once(
    conn: &Connection,
    cid: &str,
    placement: Placement,
    now_ms: i64,
) -> Result<Placement, JournalError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO paper_orders (client_order_id, venue_order_id, status, filled_quantity, \
         average_price, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .map_err(storage)?
    .execute(params![
        cid,
        placement.venue_order_id,
        placement.status.as_str(),
        placement.filled_quantity.to_string(),
        placement.average_price.map(|d| d.to_string()),
        now_ms
    ])
    .map_err(storage)?;
    lookup(conn, cid)?.ok_or_else(|| JournalError::Corrupt("paper order vanished".into()))
}

/// The placement stored for `cid`.
pub(super) fn lookup(conn: &Connection, cid: &str) -> Result<Option<Placement>, JournalError> {
    let row: Option<(Option<String>, String, String, Option<String>)> = conn
        .prepare_cached(
            "SELECT venue_order_id, status, filled_quantity, average_price FROM paper_orders WHERE client_order_id = ?1",
        )
        .map_err(storage)?
        .query_row([cid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()
        .map_err(storage)?;
    row.map(|(venue_order_id, status, filled, avg)| {
        Ok(Placement {
            venue_order_id,
            status: parse_status(&status)?,
            filled_quantity: dec(&filled)?,
            average_price: opt_dec(avg)?,
            fee: None,
        })
    })
    .transpose()
}

/// Replaces the placement stored for `cid` (a paper order cancelled or filled while resting).
pub(super) fn update(
    conn: &Connection,
    cid: &str,
    placement: &Placement,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "UPDATE paper_orders SET status = ?2, filled_quantity = ?3, average_price = ?4 \
         WHERE client_order_id = ?1",
    )
    .map_err(storage)?
    .execute(params![
        cid,
        placement.status.as_str(),
        placement.filled_quantity.to_string(),
        placement.average_price.map(|d| d.to_string()),
    ])
    .map_err(storage)?;
    Ok(())
}
