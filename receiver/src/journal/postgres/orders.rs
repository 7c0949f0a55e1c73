//! The `orders` and `positions` tables: planned orders, the venue's answers (settlements) and the
//! position each answer moves, exactly once even when two receivers settle at once (the order
//! row is locked, then the position row); the venue's positions as reconciliation last read them.

use std::str::FromStr;

use rust_decimal::Decimal;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::pg;
use crate::journal::sqlite::values::{
    dec, opt_dec, parse_order_type, parse_product, parse_side, parse_tif,
};
use crate::journal::{
    JournalError, OrderRecord, OrderState, PositionRecord, Reprice, Settlement, VenuePosition,
};
use crate::order::Exits;

/// The columns of an order row, in the order [`read_order`] reads them (as SQLite's).
pub(super) const ORDER_COLUMNS: &str = "client_order_id, message_id, leg, account, symbol, side, quantity, order_type, \
     limit_price, stop_price, tif, reference_price, status, venue, venue_order_id, filled_quantity, \
     average_price, error, created_at, updated_at, product, sizing, waits_for_fill, take_profit, stop_loss, parent";

fn read_order(row: &Row) -> Result<OrderRecord, JournalError> {
    let text = |i: usize| row.try_get::<_, String>(i).map_err(pg);
    let opt = |i: usize| row.try_get::<_, Option<String>>(i).map_err(pg);
    let leg: i64 = row.try_get(2).map_err(pg)?;
    Ok(OrderRecord {
        client_order_id: text(0)?,
        message_id: text(1)?,
        leg: u32::try_from(leg).map_err(|_| JournalError::Corrupt("bad leg".into()))?,
        account: text(3)?,
        symbol: text(4)?,
        side: parse_side(&text(5)?)?,
        quantity: dec(&text(6)?)?,
        order_type: parse_order_type(&text(7)?)?,
        limit_price: opt_dec(opt(8)?)?,
        stop_price: opt_dec(opt(9)?)?,
        tif: parse_tif(&text(10)?)?,
        reference_price: opt_dec(opt(11)?)?,
        status: OrderState::from_str(&text(12)?)?,
        venue: text(13)?,
        venue_order_id: opt(14)?,
        filled_quantity: dec(&text(15)?)?,
        average_price: opt_dec(opt(16)?)?,
        error: opt(17)?,
        created_at_ms: row.try_get(18).map_err(pg)?,
        updated_at_ms: row.try_get(19).map_err(pg)?,
        product: parse_product(opt(20)?)?,
        sizing: opt(21)?,
        waits_for_fill: row.try_get(22).map_err(pg)?,
        exits: Exits {
            take_profit: opt_dec(opt(23)?)?,
            stop_loss: opt_dec(opt(24)?)?,
        },
        parent: opt(25)?,
    })
}

/// The orders `sql` (selecting [`ORDER_COLUMNS`]) returns.
pub(super) async fn query_orders(
    tx: &Transaction<'_>,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<Vec<OrderRecord>, JournalError> {
    let rows = tx.query(sql, args).await.map_err(pg)?;
    rows.iter().map(read_order).collect()
}

/// Inserts planned orders; ids already present are kept.
pub(super) async fn plan(
    tx: &Transaction<'_>,
    orders: Vec<OrderRecord>,
) -> Result<(), JournalError> {
    let stmt = tx
        .prepare(&format!(
            "INSERT INTO orders ({ORDER_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26) \
             ON CONFLICT (client_order_id) DO NOTHING"
        ))
        .await
        .map_err(pg)?;
    for o in orders {
        let text = |d: Option<Decimal>| d.map(|d| d.to_string());
        tx.execute(
            &stmt,
            &[
                &o.client_order_id,
                &o.message_id,
                &i64::from(o.leg),
                &o.account,
                &o.symbol,
                &o.side.as_str(),
                &o.quantity.to_string(),
                &o.order_type.as_str(),
                &text(o.limit_price),
                &text(o.stop_price),
                &o.tif.as_str(),
                &text(o.reference_price),
                &o.status.as_str(),
                &o.venue,
                &o.venue_order_id,
                &o.filled_quantity.to_string(),
                &text(o.average_price),
                &o.error,
                &o.created_at_ms,
                &o.updated_at_ms,
                &o.product.map(|p| p.as_str()),
                &o.sizing,
                &o.waits_for_fill,
                &text(o.exits.take_profit),
                &text(o.exits.stop_loss),
                &o.parent,
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// The signed position of (account, venue, symbol); zero when unknown.
pub(super) async fn position(
    tx: &Transaction<'_>,
    account: &str,
    venue: &str,
    symbol: &str,
) -> Result<Decimal, JournalError> {
    let row = tx
        .query_opt(
            "SELECT quantity FROM positions WHERE account = $1 AND venue = $2 AND symbol = $3",
            &[&account, &venue, &symbol],
        )
        .await
        .map_err(pg)?;
    match row {
        Some(row) => dec(&row.try_get::<_, String>(0).map_err(pg)?),
        None => Ok(Decimal::ZERO),
    }
}

/// Records one answer; the position moves only when the order leaves `new` (or `unknown`).
pub(super) async fn settle(tx: &Transaction<'_>, s: Settlement) -> Result<(), JournalError> {
    // FOR UPDATE: a second receiver settling the same order waits, then sees it settled.
    let target = tx
        .query_opt(
            "SELECT account, symbol, status, venue FROM orders WHERE client_order_id = $1 FOR UPDATE",
            &[&s.client_order_id],
        )
        .await
        .map_err(pg)?;
    let Some(target) = target else {
        return Err(JournalError::Corrupt(format!(
            "settling unknown order {}",
            s.client_order_id
        )));
    };
    let account: String = target.try_get(0).map_err(pg)?;
    let symbol: String = target.try_get(1).map_err(pg)?;
    let status: String = target.try_get(2).map_err(pg)?;
    let venue: String = target.try_get(3).map_err(pg)?;
    tx.execute(
        "UPDATE orders SET status = $2, venue_order_id = $3, filled_quantity = $4, average_price = $5, error = $6, \
         updated_at = $7, fee = COALESCE($8, fee) WHERE client_order_id = $1",
        &[
            &s.client_order_id,
            &s.status.as_str(),
            &s.venue_order_id,
            &s.filled_quantity.to_string(),
            &s.average_price.map(|d| d.to_string()),
            &s.error,
            &s.now_ms,
            &s.fee.map(|d| d.to_string()),
        ],
    )
    .await
    .map_err(pg)?;
    // As SQLite's: a working order's later answers carry what filled since its last answer.
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
        // Create the row first so that FOR UPDATE has something to lock; then read-modify-write.
        tx.execute(
            "INSERT INTO positions (account, venue, symbol, quantity, updated_at) VALUES ($1, $2, $3, '0', $4) \
             ON CONFLICT (account, venue, symbol) DO NOTHING",
            &[&account, &venue, &symbol, &s.now_ms],
        )
        .await
        .map_err(pg)?;
        let row = tx
            .query_one(
                "SELECT quantity FROM positions WHERE account = $1 AND venue = $2 AND symbol = $3 FOR UPDATE",
                &[&account, &venue, &symbol],
            )
            .await
            .map_err(pg)?;
        let next = dec(&row.try_get::<_, String>(0).map_err(pg)?)? + s.position_delta;
        tx.execute(
            "UPDATE positions SET quantity = $4, updated_at = $5 WHERE account = $1 AND venue = $2 AND symbol = $3",
            &[&account, &venue, &symbol, &next.normalize().to_string(), &s.now_ms],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// Orders of (account, symbol) working at the venue, oldest first.
pub(super) async fn working(
    tx: &Transaction<'_>,
    account: &str,
    symbol: &str,
) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        tx,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE account = $1 AND symbol = $2 \
             AND status IN ('placed', 'partially_filled') ORDER BY seq"
        ),
        &[&account, &symbol],
    )
    .await
}

/// Filled entries whose protective exits the venue holds as their legs (as SQLite's).
pub(super) async fn unadopted_brackets(
    tx: &Transaction<'_>,
) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        tx,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status = 'filled' AND parent IS NULL AND (take_profit IS NOT NULL OR stop_loss IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM orders c WHERE c.parent = orders.client_order_id) ORDER BY seq"
        ),
        &[],
    )
    .await
}

/// Records a modify's new prices.
pub(super) async fn reprice(tx: &Transaction<'_>, r: &Reprice) -> Result<(), JournalError> {
    tx.execute(
        "UPDATE orders SET limit_price = $2, stop_price = $3, \
         venue_order_id = COALESCE($4, venue_order_id), updated_at = $5, \
         take_profit = $6, stop_loss = $7 WHERE client_order_id = $1",
        &[
            &r.client_order_id,
            &r.limit_price.map(|d| d.to_string()),
            &r.stop_price.map(|d| d.to_string()),
            &r.venue_order_id,
            &r.now_ms,
            &r.exits.take_profit.map(|d| d.to_string()),
            &r.exits.stop_loss.map(|d| d.to_string()),
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// The newest `limit` orders first.
pub(super) async fn recent(
    tx: &Transaction<'_>,
    limit: u32,
) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        tx,
        &format!("SELECT {ORDER_COLUMNS} FROM orders ORDER BY seq DESC LIMIT $1"),
        &[&i64::from(limit)],
    )
    .await
}

/// Orders journaled for `account` at or after `since_ms`, skipped ones excepted.
pub(super) async fn count_since(
    tx: &Transaction<'_>,
    account: &str,
    since_ms: i64,
) -> Result<u32, JournalError> {
    let n: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM orders WHERE account = $1 AND created_at >= $2 AND status <> 'skipped'",
            &[&account, &since_ms],
        )
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Every position row.
pub(super) async fn all_positions(
    tx: &Transaction<'_>,
) -> Result<Vec<PositionRecord>, JournalError> {
    let rows = tx
        .query(
            "SELECT account, venue, symbol, quantity FROM positions ORDER BY account, symbol, venue",
            &[],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            Ok(PositionRecord {
                account: r.try_get(0).map_err(pg)?,
                venue: r.try_get(1).map_err(pg)?,
                symbol: r.try_get(2).map_err(pg)?,
                position: dec(&r.try_get::<_, String>(3).map_err(pg)?)?,
            })
        })
        .collect()
}

/// Orders in `status`, oldest first.
pub(super) async fn with_status(
    tx: &Transaction<'_>,
    status: OrderState,
) -> Result<Vec<OrderRecord>, JournalError> {
    query_orders(
        tx,
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE status = $1 ORDER BY seq"),
        &[&status.as_str()],
    )
    .await
}

/// Replaces the venue readings of these (account, venue, symbol)s.
pub(super) async fn record_venue(
    tx: &Transaction<'_>,
    readings: Vec<VenuePosition>,
) -> Result<(), JournalError> {
    for r in readings {
        tx.execute(
            "INSERT INTO venue_positions (account, venue, symbol, position, reconciled_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (account, venue, symbol) DO UPDATE SET position = excluded.position, \
             reconciled_at = excluded.reconciled_at",
            &[
                &r.account,
                &r.venue,
                &r.symbol,
                &r.position.map(|d| d.normalize().to_string()),
                &r.reconciled_at_ms,
            ],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// Every venue reading.
pub(super) async fn venue_readings(
    tx: &Transaction<'_>,
) -> Result<Vec<VenuePosition>, JournalError> {
    let rows = tx
        .query(
            "SELECT account, venue, symbol, position, reconciled_at FROM venue_positions \
             ORDER BY account, symbol, venue",
            &[],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            Ok(VenuePosition {
                account: r.try_get(0).map_err(pg)?,
                venue: r.try_get(1).map_err(pg)?,
                symbol: r.try_get(2).map_err(pg)?,
                position: opt_dec(r.try_get(3).map_err(pg)?)?,
                reconciled_at_ms: r.try_get(4).map_err(pg)?,
            })
        })
        .collect()
}
