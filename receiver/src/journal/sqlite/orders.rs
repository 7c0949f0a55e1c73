//! The `orders` and `positions` tables: planned orders, the venue's answers (settlements) and the
//! position each answer moves, exactly once.

use std::str::FromStr;

use rusqlite::{params, Connection, OptionalExtension, Row};
use rust_decimal::Decimal;

use super::storage;
use super::values::{dec, opt_dec, parse_order_type, parse_product, parse_side, parse_tif};
use crate::journal::{JournalError, OrderRecord, OrderState, Settlement};

/// The columns of an order row, in the order [`read_order_row`] reads them.
pub(super) const ORDER_COLUMNS: &str = "client_order_id, message_id, leg, account, symbol, side, quantity, order_type, \
     limit_price, stop_price, tif, reference_price, status, venue, venue_order_id, filled_quantity, \
     average_price, error, created_at, updated_at, product";

/// Raw columns of an order row, converted after the statement is done.
struct OrderRow {
    text: [Option<String>; 16],
    product: Option<String>,
    leg: i64,
    created_at: i64,
    updated_at: i64,
}

fn read_order_row(row: &Row<'_>) -> rusqlite::Result<OrderRow> {
    // Column order follows ORDER_COLUMNS; `leg`, `created_at`, `updated_at` are integers.
    let t = |i: usize| row.get::<_, Option<String>>(i);
    Ok(OrderRow {
        text: [
            t(0)?,
            t(1)?,
            t(3)?,
            t(4)?,
            t(5)?,
            t(6)?,
            t(7)?,
            t(8)?,
            t(9)?,
            t(10)?,
            t(11)?,
            t(12)?,
            t(13)?,
            t(14)?,
            t(15)?,
            t(16)?,
        ],
        product: t(20)?,
        leg: row.get(2)?,
        created_at: row.get(18)?,
        updated_at: row.get(19)?,
    })
}

fn read_error(row: &Row<'_>) -> rusqlite::Result<Option<String>> {
    row.get(17)
}

impl OrderRow {
    fn into_record(self, error: Option<String>) -> Result<OrderRecord, JournalError> {
        let [cid, mid, account, symbol, side, qty, otype, limit, stop, tif, refp, status, venue, vid, filled, avg] =
            self.text;
        let req = |v: Option<String>, what: &str| {
            v.ok_or_else(|| JournalError::Corrupt(format!("missing {what}")))
        };
        Ok(OrderRecord {
            client_order_id: req(cid, "client_order_id")?,
            message_id: req(mid, "message_id")?,
            leg: u32::try_from(self.leg).map_err(|_| JournalError::Corrupt("bad leg".into()))?,
            account: req(account, "account")?,
            symbol: req(symbol, "symbol")?,
            side: parse_side(&req(side, "side")?)?,
            quantity: dec(&req(qty, "quantity")?)?,
            order_type: parse_order_type(&req(otype, "order_type")?)?,
            limit_price: opt_dec(limit)?,
            stop_price: opt_dec(stop)?,
            tif: parse_tif(&req(tif, "tif")?)?,
            reference_price: opt_dec(refp)?,
            product: parse_product(self.product)?,
            status: OrderState::from_str(&req(status, "status")?)?,
            venue: req(venue, "venue")?,
            venue_order_id: vid,
            filled_quantity: dec(&req(filled, "filled_quantity")?)?,
            average_price: opt_dec(avg)?,
            error,
            created_at_ms: self.created_at,
            updated_at_ms: self.updated_at,
        })
    }
}

/// The orders `sql` (selecting [`ORDER_COLUMNS`]) returns.
pub(super) fn query_orders(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<OrderRecord>, JournalError> {
    let mut stmt = conn.prepare_cached(sql).map_err(storage)?;
    let rows = stmt
        .query_map(args, |row| Ok((read_order_row(row)?, read_error(row)?)))
        .map_err(storage)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage)?;
    rows.into_iter().map(|(r, e)| r.into_record(e)).collect()
}

/// Inserts planned orders; ids already present are kept.
pub(super) fn plan(conn: &Connection, orders: Vec<OrderRecord>) -> Result<(), JournalError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO orders ({ORDER_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
        ))
        .map_err(storage)?;
    for o in orders {
        stmt.execute(params![
            o.client_order_id,
            o.message_id,
            o.leg,
            o.account,
            o.symbol,
            o.side.as_str(),
            o.quantity.to_string(),
            o.order_type.as_str(),
            o.limit_price.map(|d| d.to_string()),
            o.stop_price.map(|d| d.to_string()),
            o.tif.as_str(),
            o.reference_price.map(|d| d.to_string()),
            o.status.as_str(),
            o.venue,
            o.venue_order_id,
            o.filled_quantity.to_string(),
            o.average_price.map(|d| d.to_string()),
            o.error,
            o.created_at_ms,
            o.updated_at_ms,
            o.product.map(|p| p.as_str()),
        ])
        .map_err(storage)?;
    }
    Ok(())
}

/// The signed position of (account, symbol); zero when unknown.
pub(super) fn position(
    conn: &Connection,
    account: &str,
    symbol: &str,
) -> Result<Decimal, JournalError> {
    let q: Option<String> = conn
        .prepare_cached("SELECT quantity FROM positions WHERE account = ?1 AND symbol = ?2")
        .map_err(storage)?
        .query_row([account, symbol], |r| r.get(0))
        .optional()
        .map_err(storage)?;
    q.as_deref().map_or(Ok(Decimal::ZERO), dec)
}

/// Records one answer; the position moves only when the order leaves `new`.
pub(super) fn settle(conn: &Connection, s: Settlement) -> Result<(), JournalError> {
    let target: Option<(String, String, String)> = conn
        .prepare_cached("SELECT account, symbol, status FROM orders WHERE client_order_id = ?1")
        .map_err(storage)?
        .query_row([&s.client_order_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map_err(storage)?;
    let Some((account, symbol, status)) = target else {
        return Err(JournalError::Corrupt(format!(
            "settling unknown order {}",
            s.client_order_id
        )));
    };
    conn.prepare_cached(
        "UPDATE orders SET status = ?2, venue_order_id = ?3, filled_quantity = ?4, average_price = ?5, error = ?6, \
         updated_at = ?7 WHERE client_order_id = ?1",
    )
    .map_err(storage)?
    .execute(params![
        s.client_order_id,
        s.status.as_str(),
        s.venue_order_id,
        s.filled_quantity.to_string(),
        s.average_price.map(|d| d.to_string()),
        s.error,
        s.now_ms
    ])
    .map_err(storage)?;
    let was_new = OrderState::from_str(&status).is_ok_and(|st| st == OrderState::New);
    if was_new && !s.position_delta.is_zero() {
        let next = position(conn, &account, &symbol)? + s.position_delta;
        conn.prepare_cached(
            "INSERT INTO positions (account, symbol, quantity, updated_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (account, symbol) DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at",
        )
        .map_err(storage)?
        .execute(params![account, symbol, next.normalize().to_string(), s.now_ms])
        .map_err(storage)?;
    }
    Ok(())
}

/// The newest `limit` orders first.
pub(super) fn recent(conn: &Connection, limit: u32) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        conn,
        &format!("SELECT {ORDER_COLUMNS} FROM orders ORDER BY seq DESC LIMIT ?1"),
        [limit],
    )
}

/// Orders journaled for `account` at or after `since_ms`, skipped ones excepted.
pub(super) fn count_since(
    conn: &Connection,
    account: &str,
    since_ms: i64,
) -> Result<u32, JournalError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM orders WHERE account = ?1 AND created_at >= ?2 AND status <> 'skipped'",
        )
        .map_err(storage)?
        .query_row(params![account, since_ms], |r| r.get(0))
        .map_err(storage)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}
