//! Order controls' tables: strategy switches (`strategies`), the fills daily-loss accounting
//! reads from `orders`, and the new prices of a modified working order.

use rusqlite::{params, Connection};

use super::storage;
use super::values::{dec, opt_dec, parse_side};
use crate::journal::{Fill, JournalError, Reprice, StrategySwitch};

/// Every fill of `account`, oldest first.
pub(super) fn fills(conn: &Connection, account: &str) -> Result<Vec<Fill>, JournalError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT symbol, side, filled_quantity, average_price, updated_at, fee FROM orders \
             WHERE account = ?1 AND filled_quantity <> '0' ORDER BY updated_at, seq",
        )
        .map_err(storage)?;
    let rows = stmt
        .query_map(params![account], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(storage)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage)?;
    let mut out = Vec::with_capacity(rows.len());
    for (symbol, side, quantity, price, at_ms, fee) in rows {
        let quantity = dec(&quantity)?;
        let Some(price) = opt_dec(price)? else {
            continue;
        };
        if quantity.is_zero() {
            continue;
        }
        out.push(Fill {
            fee: opt_dec(fee)?.unwrap_or_default(),
            symbol,
            side: parse_side(&side)?,
            quantity,
            price,
            at_ms,
        });
    }
    Ok(out)
}

/// Records a switch.
pub(super) fn set_strategy(conn: &Connection, s: &StrategySwitch) -> Result<(), JournalError> {
    conn.prepare_cached(
        "INSERT INTO strategies (name, enabled, changed_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, changed_at = excluded.changed_at",
    )
    .map_err(storage)?
    .execute(params![s.name, s.enabled, s.changed_at_ms])
    .map_err(storage)?;
    Ok(())
}

/// Every switch, by name.
pub(super) fn strategies(conn: &Connection) -> Result<Vec<StrategySwitch>, JournalError> {
    let mut stmt = conn
        .prepare_cached("SELECT name, enabled, changed_at FROM strategies ORDER BY name")
        .map_err(storage)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StrategySwitch {
                name: r.get(0)?,
                enabled: r.get(1)?,
                changed_at_ms: r.get(2)?,
            })
        })
        .map_err(storage)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(storage)?;
    Ok(rows)
}

/// Records a modify's new prices.
pub(super) fn reprice(conn: &Connection, r: &Reprice) -> Result<(), JournalError> {
    conn.prepare_cached(
        "UPDATE orders SET limit_price = ?2, stop_price = ?3, \
         venue_order_id = COALESCE(?4, venue_order_id), updated_at = ?5, \
         take_profit = ?6, stop_loss = ?7 WHERE client_order_id = ?1",
    )
    .map_err(storage)?
    .execute(params![
        r.client_order_id,
        r.limit_price.map(|d| d.to_string()),
        r.stop_price.map(|d| d.to_string()),
        r.venue_order_id,
        r.now_ms,
        r.exits.take_profit.map(|d| d.to_string()),
        r.exits.stop_loss.map(|d| d.to_string())
    ])
    .map_err(storage)?;
    Ok(())
}
