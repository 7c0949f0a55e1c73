//! The `orders` and `positions` tables: planned orders, the venue's answers (settlements) and the
//! position each answer moves, exactly once; the venue's positions as reconciliation last read
//! them (`venue_positions`).

use std::str::FromStr;

use rusqlite::{params, Connection, OptionalExtension, Row};
use rust_decimal::Decimal;

use super::storage;
use super::values::{dec, opt_dec, parse_order_type, parse_product, parse_side, parse_tif};
use crate::journal::{
    JournalError, OrderRecord, OrderState, PositionRecord, Settlement, VenuePosition,
};
use crate::order::Exits;

/// The columns of an order row, in the order [`read_order_row`] reads them.
pub(super) const ORDER_COLUMNS: &str = "client_order_id, message_id, leg, account, symbol, side, quantity, order_type, \
     limit_price, stop_price, tif, reference_price, status, venue, venue_order_id, filled_quantity, \
     average_price, error, created_at, updated_at, product, sizing, waits_for_fill, take_profit, stop_loss, parent";

/// Raw columns of an order row, converted after the statement is done.
struct OrderRow {
    text: [Option<String>; 16],
    product: Option<String>,
    sizing: Option<String>,
    waits_for_fill: bool,
    take_profit: Option<String>,
    stop_loss: Option<String>,
    parent: Option<String>,
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
        sizing: row.get(21)?,
        waits_for_fill: row.get(22)?,
        take_profit: t(23)?,
        stop_loss: t(24)?,
        parent: t(25)?,
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
            sizing: self.sizing,
            waits_for_fill: self.waits_for_fill,
            exits: Exits {
                take_profit: opt_dec(self.take_profit)?,
                stop_loss: opt_dec(self.stop_loss)?,
            },
            parent: self.parent,
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
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)"
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
            o.sizing,
            o.waits_for_fill,
            o.exits.take_profit.map(|d| d.to_string()),
            o.exits.stop_loss.map(|d| d.to_string()),
            o.parent,
        ])
        .map_err(storage)?;
    }
    Ok(())
}

/// The signed position of (account, venue, symbol); zero when unknown.
pub(super) fn position(
    conn: &Connection,
    account: &str,
    venue: &str,
    symbol: &str,
) -> Result<Decimal, JournalError> {
    let q: Option<String> = conn
        .prepare_cached(
            "SELECT quantity FROM positions WHERE account = ?1 AND venue = ?2 AND symbol = ?3",
        )
        .map_err(storage)?
        .query_row([account, venue, symbol], |r| r.get(0))
        .optional()
        .map_err(storage)?;
    q.as_deref().map_or(Ok(Decimal::ZERO), dec)
}

/// Records one answer; the position moves only while the order is open (`new`, `unknown`, or
/// working: `placed`, `partially_filled`), never for an order already final, so recording the
/// same answer twice moves it once.
pub(super) fn settle(conn: &Connection, s: Settlement) -> Result<(), JournalError> {
    let target: Option<(String, String, String, String)> = conn
        .prepare_cached(
            "SELECT account, symbol, status, venue FROM orders WHERE client_order_id = ?1",
        )
        .map_err(storage)?
        .query_row([&s.client_order_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()
        .map_err(storage)?;
    let Some((account, symbol, status, venue)) = target else {
        return Err(JournalError::Corrupt(format!(
            "settling unknown order {}",
            s.client_order_id
        )));
    };
    conn.prepare_cached(
        "UPDATE orders SET status = ?2, venue_order_id = ?3, filled_quantity = ?4, average_price = ?5, error = ?6, \
         updated_at = ?7, fee = COALESCE(?8, fee) WHERE client_order_id = ?1",
    )
    .map_err(storage)?
    .execute(params![
        s.client_order_id,
        s.status.as_str(),
        s.venue_order_id,
        s.filled_quantity.to_string(),
        s.average_price.map(|d| d.to_string()),
        s.error,
        s.now_ms,
        s.fee.map(|d| d.to_string())
    ])
    .map_err(storage)?;
    // `unknown` orders never moved the position either: their settlement by reconciliation does.
    // A working order's later answers (a resting fill, a cancel after a partial fill) carry only
    // the quantity filled since its last answer.
    let was_open = OrderState::from_str(&status).is_ok_and(|st| {
        matches!(
            st,
            OrderState::New
                | OrderState::Unknown
                | OrderState::Placed
                | OrderState::PartiallyFilled
        )
    });
    if was_open && !s.position_delta.is_zero() {
        let next = position(conn, &account, &venue, &symbol)? + s.position_delta;
        conn.prepare_cached(
            "INSERT INTO positions (account, venue, symbol, quantity, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (account, venue, symbol) DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at",
        )
        .map_err(storage)?
        .execute(params![account, venue, symbol, next.normalize().to_string(), s.now_ms])
        .map_err(storage)?;
    }
    Ok(())
}

/// Orders of (account, symbol) working at the venue, oldest first.
pub(super) fn working(
    conn: &Connection,
    account: &str,
    symbol: &str,
) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        conn,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE account = ?1 AND symbol = ?2 \
             AND status IN ('placed', 'partially_filled') ORDER BY seq"
        ),
        params![account, symbol],
    )
}

/// Filled entries whose protective exits the venue holds as their legs (Alpaca's bracket) and
/// whose legs are not journaled yet, oldest first.
pub(super) fn unadopted_brackets(conn: &Connection) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        conn,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'filled' AND parent IS NULL AND (take_profit IS NOT NULL OR stop_loss IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM orders c WHERE c.parent = orders.client_order_id) ORDER BY seq"
        ),
        [],
    )
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

/// Every position row.
pub(super) fn all_positions(conn: &Connection) -> Result<Vec<PositionRecord>, JournalError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT account, venue, symbol, quantity FROM positions ORDER BY account, symbol, venue",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(storage)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage)?;
    rows.into_iter()
        .map(|(account, venue, symbol, q)| {
            Ok(PositionRecord {
                account,
                venue,
                symbol,
                position: dec(&q)?,
            })
        })
        .collect()
}

/// Orders in `status`, oldest first.
pub(super) fn with_status(
    conn: &Connection,
    status: OrderState,
) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        conn,
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE status = ?1 ORDER BY seq"),
        [status.as_str()],
    )
}

/// Replaces the venue readings of these (account, venue, symbol)s.
pub(super) fn record_venue(
    conn: &Connection,
    readings: Vec<VenuePosition>,
) -> Result<(), JournalError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO venue_positions (account, venue, symbol, position, reconciled_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (account, venue, symbol) DO UPDATE SET position = excluded.position, \
             reconciled_at = excluded.reconciled_at",
        )
        .map_err(storage)?;
    for r in readings {
        stmt.execute(params![
            r.account,
            r.venue,
            r.symbol,
            r.position.map(|d| d.normalize().to_string()),
            r.reconciled_at_ms
        ])
        .map_err(storage)?;
    }
    Ok(())
}

/// Every venue reading.
pub(super) fn venue_readings(conn: &Connection) -> Result<Vec<VenuePosition>, JournalError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT account, venue, symbol, position, reconciled_at FROM venue_positions \
             ORDER BY account, symbol, venue",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .map_err(storage)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage)?;
    rows.into_iter()
        .map(|(account, venue, symbol, position, at)| {
            Ok(VenuePosition {
                account,
                venue,
                symbol,
                position: opt_dec(position)?,
                reconciled_at_ms: at,
            })
        })
        .collect()
}
