//! Order controls' tables: strategy switches and the fills daily-loss accounting reads.

use tokio_postgres::Transaction;

use super::pg;
use crate::journal::sqlite::values::{dec, opt_dec, parse_side};
use crate::journal::{Fill, JournalError, StrategySwitch};

/// Every fill of `account`, oldest first.
pub(super) async fn fills(tx: &Transaction<'_>, account: &str) -> Result<Vec<Fill>, JournalError> {
    let rows = tx
        .query(
            "SELECT symbol, side, filled_quantity, average_price, updated_at, fee FROM orders \
             WHERE account = $1 AND filled_quantity <> '0' ORDER BY updated_at, seq",
            &[&account],
        )
        .await
        .map_err(pg)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let quantity = dec(&r.try_get::<_, String>(2).map_err(pg)?)?;
        let Some(price) = opt_dec(r.try_get(3).map_err(pg)?)? else {
            continue;
        };
        if quantity.is_zero() {
            continue;
        }
        out.push(Fill {
            fee: opt_dec(r.try_get(5).map_err(pg)?)?.unwrap_or_default(),
            symbol: r.try_get(0).map_err(pg)?,
            side: parse_side(&r.try_get::<_, String>(1).map_err(pg)?)?,
            quantity,
            price,
            at_ms: r.try_get(4).map_err(pg)?,
        });
    }
    Ok(out)
}

/// Records a switch.
pub(super) async fn set_strategy(
    tx: &Transaction<'_>,
    s: &StrategySwitch,
) -> Result<(), JournalError> {
    tx.execute(
        "INSERT INTO strategies (name, enabled, changed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, changed_at = excluded.changed_at",
        &[&s.name, &s.enabled, &s.changed_at_ms],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Every switch, by name.
pub(super) async fn strategies(tx: &Transaction<'_>) -> Result<Vec<StrategySwitch>, JournalError> {
    let rows = tx
        .query(
            "SELECT name, enabled, changed_at FROM strategies ORDER BY name",
            &[],
        )
        .await
        .map_err(pg)?;
    rows.iter()
        .map(|r| {
            Ok(StrategySwitch {
                name: r.try_get(0).map_err(pg)?,
                enabled: r.try_get(1).map_err(pg)?,
                changed_at_ms: r.try_get(2).map_err(pg)?,
            })
        })
        .collect()
}
