//! The PostgreSQL schema: the same migrations, by number, as the SQLite journal's
//! ([`crate::journal::sqlite::schema`]), in PostgreSQL's dialect, applied at start under an
//! advisory lock so receivers starting together migrate once. `schema_migrations` records the
//! numbers applied.
//!
//! Values are stored as in SQLite (decimals as exact TEXT, times as unix milliseconds in BIGINT),
//! so both stores read back the same records.

use tokio_postgres::Client;

use super::pg;
use crate::journal::JournalError;

/// Schema migrations, numbered as SQLite's: entry `i` is migration `i + 1`. A new migration is
/// appended here with the same number as its SQLite twin.
pub const MIGRATIONS: &[&str] = &[
    // 1: messages, orders, positions, the paper book. `messages.seq` gives arrival order (SQLite's
    // rowid).
    r#"
CREATE TABLE messages (
    seq             BIGSERIAL NOT NULL,
    id              TEXT PRIMARY KEY,
    account         TEXT,
    idempotency_key TEXT,
    received_at     BIGINT,
    recorded_at     BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    envelope        BYTEA NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT
);
CREATE INDEX messages_by_key ON messages (account, idempotency_key, recorded_at)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_pending ON messages (outcome) WHERE outcome = 'pending';
CREATE TABLE orders (
    seq             BIGSERIAL PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    message_id      TEXT NOT NULL REFERENCES messages (id),
    leg             BIGINT NOT NULL,
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
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX orders_by_message ON orders (message_id, leg);
CREATE INDEX orders_by_account ON orders (account, created_at);
CREATE TABLE positions (
    account    TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    quantity   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account, symbol)
);
CREATE TABLE paper_orders (
    client_order_id TEXT PRIMARY KEY,
    venue_order_id  TEXT,
    status          TEXT NOT NULL,
    filled_quantity TEXT NOT NULL,
    average_price   TEXT,
    created_at      BIGINT NOT NULL
);
"#,
    // 2: the product type an order carries to venues that need one.
    r#"
ALTER TABLE orders ADD COLUMN product TEXT;
"#,
    // 3: target positions, sizing and reconciliation.
    r#"
ALTER TABLE orders ADD COLUMN sizing TEXT;
ALTER TABLE orders ADD COLUMN waits_for_fill BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX orders_unknown ON orders (status) WHERE status = 'unknown';
CREATE TABLE venue_positions (
    account       TEXT NOT NULL,
    venue         TEXT NOT NULL,
    symbol        TEXT NOT NULL,
    position      TEXT,
    reconciled_at BIGINT NOT NULL,
    PRIMARY KEY (account, venue, symbol)
);
"#,
    // 4: order controls: strategy switches, the fills daily-loss accounting reads, the working
    // orders cancels look up, protective exits.
    r#"
CREATE TABLE strategies (
    name       TEXT PRIMARY KEY,
    enabled    BOOLEAN NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX orders_filled ON orders (account, updated_at) WHERE filled_quantity <> '0';
ALTER TABLE orders ADD COLUMN take_profit TEXT;
ALTER TABLE orders ADD COLUMN stop_loss TEXT;
ALTER TABLE orders ADD COLUMN parent TEXT;
CREATE INDEX orders_working ON orders (account, symbol, seq)
    WHERE status IN ('placed', 'partially_filled');
"#,
    // 5: the notification outbox (as SQLite's 5).
    r#"
CREATE TABLE notify_outbox (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    message_id TEXT,
    event      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE notify_cursors (
    destination TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE TABLE notify_deliveries (
    event_seq    BIGINT NOT NULL REFERENCES notify_outbox (seq),
    destination  TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    error        TEXT,
    delivered_at BIGINT NOT NULL,
    PRIMARY KEY (event_seq, destination)
);
"#,
    // 6: positions per venue (as SQLite's 6).
    r#"
ALTER TABLE positions ADD COLUMN venue TEXT;
UPDATE positions p SET venue = COALESCE(
    (SELECT o.venue FROM orders o WHERE o.account = p.account AND o.symbol = p.symbol
     ORDER BY o.seq DESC LIMIT 1), 'paper');
ALTER TABLE positions ALTER COLUMN venue SET NOT NULL;
ALTER TABLE positions DROP CONSTRAINT positions_pkey;
ALTER TABLE positions ADD PRIMARY KEY (account, venue, symbol);
"#,
    // 7: which receiver finished each message (as SQLite's 7).
    r#"
ALTER TABLE messages ADD COLUMN finished_by TEXT;
"#,
    // 8: the legs of filled brackets (as SQLite's 8).
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

/// Objects only PostgreSQL needs (several receivers), created with `IF NOT EXISTS` after the
/// numbered migrations so they never take a number SQLite uses: the execution leases, and the
/// (account, symbol) keys of each `pending` message with its arrival `seq` (a job runs only
/// once no earlier `pending` message shares one of its keys).
const SHARED_ONLY: &str = r#"
CREATE TABLE IF NOT EXISTS leases (
    message_id TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_keys (
    message_id TEXT NOT NULL,
    account    TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (message_id, account, symbol)
);
CREATE INDEX IF NOT EXISTS pending_keys_in_order ON pending_keys (account, symbol, seq);
"#;

/// Applies pending migrations under a session advisory lock keyed by the schema, so receivers
/// starting together (and tests in their own schemas) do not race.
pub async fn migrate(client: &mut Client) -> Result<(), JournalError> {
    client
        .batch_execute(
            "SELECT pg_advisory_lock(hashtext('alertgate-migrations:' || current_schema()));",
        )
        .await
        .map_err(pg)?;
    let result = apply(client).await;
    let unlock = client
        .batch_execute(
            "SELECT pg_advisory_unlock(hashtext('alertgate-migrations:' || current_schema()));",
        )
        .await
        .map_err(pg);
    result.and(unlock)
}

async fn apply(client: &mut Client) -> Result<(), JournalError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());",
        )
        .await
        .map_err(pg)?;
    let applied: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg)?
        .get(0);
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(JournalError::Corrupt(format!(
            "schema version {applied} is newer than this receiver knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = client.transaction().await.map_err(pg)?;
        tx.batch_execute(sql).await.map_err(pg)?;
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
    }
    client.batch_execute(SHARED_ONLY).await.map_err(pg)?;
    Ok(())
}
