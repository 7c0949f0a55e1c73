//! The journal's schema and connection settings: migrations applied in order (`PRAGMA
//! user_version` counts them, applied with `synchronous=FULL`), WAL. The journal's writer
//! then switches its connection to `NORMAL` and syncs each commit itself (see `writer`).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::storage;
use crate::journal::JournalError;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    account         TEXT,
    idempotency_key TEXT,
    received_at     INTEGER,
    recorded_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    envelope        BLOB NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT
);
CREATE INDEX messages_by_key ON messages (account, idempotency_key, recorded_at)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_pending ON messages (outcome) WHERE outcome = 'pending';
CREATE TABLE orders (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL UNIQUE,
    message_id      TEXT NOT NULL REFERENCES messages (id),
    leg             INTEGER NOT NULL,
    account         TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    quantity        TEXT NOT NULL,
    order_type      TEXT NOT NULL,
    limit_price     TEXT,
    stop_price      TEXT,
    tif             TEXT NOT NULL,
    reference_price TEXT,
    status          TEXT NOT NULL,
    venue           TEXT NOT NULL,
    venue_order_id  TEXT,
    filled_quantity TEXT NOT NULL DEFAULT '0',
    average_price   TEXT,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX orders_by_message ON orders (message_id, leg);
CREATE INDEX orders_by_account ON orders (account, created_at);
CREATE TABLE positions (
    account    TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    quantity   TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, symbol)
);
CREATE TABLE paper_orders (
    client_order_id TEXT PRIMARY KEY,
    venue_order_id  TEXT,
    status          TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    average_price   TEXT,
    created_at      INTEGER NOT NULL
);
"#,
    // The product type an order carries to venues that need one (Zerodha: CNC, MIS, NRML).
    r#"
ALTER TABLE orders ADD COLUMN product TEXT;
"#,
    // Target positions, sizing and reconciliation (receiver/README.md, "Positions").
    r#"
ALTER TABLE orders ADD COLUMN sizing TEXT;
ALTER TABLE orders ADD COLUMN waits_for_fill INTEGER NOT NULL DEFAULT 0;
CREATE INDEX orders_unknown ON orders (status) WHERE status = 'unknown';
CREATE TABLE venue_positions (
    account       TEXT NOT NULL,
    venue         TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    position      TEXT,
    reconciled_at INTEGER NOT NULL,
    PRIMARY KEY (account, venue, symbol)
);
"#,
    // Order controls (receiver/README.md, "Order controls"): strategy switches, the fills
    // daily-loss accounting reads per account, the working orders cancels look up,
    // protective exits (attached to the entry, or orders of their own with a parent).
    r#"
CREATE TABLE strategies (
    name       TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE INDEX orders_filled ON orders (account, updated_at) WHERE filled_quantity <> '0';
ALTER TABLE orders ADD COLUMN take_profit TEXT;
ALTER TABLE orders ADD COLUMN stop_loss TEXT;
ALTER TABLE orders ADD COLUMN parent TEXT;
CREATE INDEX orders_working ON orders (account, symbol, seq)
    WHERE status IN ('placed', 'partially_filled');
"#,
    // 5: the notification outbox (receiver/README.md, "Notifications"): events written with the
    // outcome that causes them, each destination's cursor, and one delivery row per event and
    // destination.
    r#"
CREATE TABLE notify_outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    message_id TEXT,
    event      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE notify_cursors (
    destination TEXT PRIMARY KEY,
    last_seq    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE notify_deliveries (
    event_seq    INTEGER NOT NULL REFERENCES notify_outbox (seq),
    destination  TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    error        TEXT,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (event_seq, destination)
);
"#,
    // 6: positions per venue ([[venues]]): the same symbol at two venues is two positions. An
    // existing position goes to the venue of its (account, symbol)'s latest order.
    r#"
CREATE TABLE positions_by_venue (
    account    TEXT NOT NULL,
    venue      TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    quantity   TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (account, venue, symbol)
);
INSERT INTO positions_by_venue (account, venue, symbol, quantity, updated_at)
    SELECT p.account,
           COALESCE((SELECT o.venue FROM orders o WHERE o.account = p.account AND o.symbol = p.symbol
                     ORDER BY o.seq DESC LIMIT 1), 'paper'),
           p.symbol, p.quantity, p.updated_at
    FROM positions p;
DROP TABLE positions;
ALTER TABLE positions_by_venue RENAME TO positions;
"#,
    // 7: which receiver finished each message (`finished_by`): the one whose write took it out
    // of `pending` counts it in `messages_total`, also when that write's answer was lost.
    r#"
ALTER TABLE messages ADD COLUMN finished_by TEXT;
"#,
    // 8: protective exits a venue holds as legs of their entry (Alpaca's bracket), journaled as
    // orders of their own once the entry filled: the filled entries whose legs are not listed
    // yet, and an order's exits by parent.
    r#"
CREATE INDEX orders_attached_exits ON orders (account, symbol)
    WHERE status = 'filled' AND parent IS NULL AND (take_profit IS NOT NULL OR stop_loss IS NOT NULL);
CREATE INDEX orders_by_parent ON orders (parent) WHERE parent IS NOT NULL;
"#,
    // 9: the fee a venue reported for an order's fills (quote currency), for daily PnL.
    r#"
ALTER TABLE orders ADD COLUMN fee TEXT;
"#,
];

/// Statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 128;

/// Opens a connection with the journal's pragmas and runs pending migrations.
pub fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, JournalError> {
    let conn = Connection::open(path).map_err(storage)?;
    conn.busy_timeout(busy_timeout).map_err(storage)?;
    // Room for every cached statement the journal runs (about 40): with rusqlite's default of
    // 16 they evict each other and are parsed again on the writer thread.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(storage)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(JournalError::Storage(format!(
            "cannot switch {} to WAL (got {mode})",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(storage)?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), JournalError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(storage)?;
    let applied = usize::try_from(version).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(JournalError::Corrupt(format!(
            "schema version {applied} is newer than this receiver knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let batch = format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        );
        if let Err(e) = conn.execute_batch(&batch) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(storage(e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_6_gives_each_existing_position_the_venue_of_its_latest_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 5;
                 INSERT INTO messages (id, recorded_at, updated_at, envelope, outcome)
                     VALUES ('m1', 0, 0, x'7b7d', 'filled');
                 INSERT INTO orders (client_order_id, message_id, leg, account, symbol, side, quantity,
                     order_type, tif, status, venue, created_at, updated_at)
                     VALUES ('m1-0', 'm1', 0, 'main', 'BTCUSDT', 'buy', '1', 'market', 'gtc',
                             'filled', 'binance', 0, 0);
                 INSERT INTO positions (account, symbol, quantity, updated_at)
                     VALUES ('main', 'BTCUSDT', '1', 0), ('main', 'AAPL', '2', 0);",
            )
            .unwrap();
        }

        let conn = open_connection(&path, Duration::from_secs(1)).unwrap();

        let mut stmt = conn
            .prepare("SELECT account, venue, symbol, quantity FROM positions ORDER BY symbol")
            .unwrap();
        let rows: Vec<(String, String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |v: &str, s: &str, q: &str| {
            ("main".to_owned(), v.to_owned(), s.to_owned(), q.to_owned())
        };
        assert_eq!(
            rows,
            [row("paper", "AAPL", "2"), row("binance", "BTCUSDT", "1")],
            "without an order a position goes to the single [broker]'s default name"
        );
    }
}
