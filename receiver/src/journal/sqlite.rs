//! The embedded journal: one SQLite file (WAL, `synchronous=FULL`), written by a single thread
//! that commits whatever is queued in one transaction (group commit), so concurrent requests share
//! one fsync. Each queued operation runs inside its own savepoint, so one failing operation does
//! not undo its neighbours; callers are answered only after the commit.
//!
//! Decimals are stored as TEXT (exact), times as unix milliseconds.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};
use rust_decimal::Decimal;
use tokio::sync::oneshot;

use super::{
    Admission, Journal, JournalError, JournalFuture, MessageRecord, NewMessage, OrderRecord,
    OrderState, Outcome, PaperBook, Settlement,
};
use crate::broker::{OrderStatus, Placement};
use crate::order::{OrderType, Side, TimeInForce};

/// Operations committed together at most.
const MAX_BATCH: usize = 512;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

type Reply = Box<dyn FnOnce(Result<(), JournalError>) + Send>;
type Op = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// The SQLite journal. Cheap to share behind an `Arc`; the writer thread stops when it is dropped.
#[derive(Debug)]
pub struct SqliteJournal {
    /// Queue of the writer thread.
    ops: mpsc::Sender<Op>,
    /// The database file.
    path: PathBuf,
}

fn storage(e: rusqlite::Error) -> JournalError {
    JournalError::Storage(e.to_string())
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path` and migrates its schema. A write that waits
    /// longer than `busy_timeout` for a lock fails (and its request gets 503).
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| {
                        JournalError::Storage(format!("cannot create {}: {e}", dir.display()))
                    })?;
            }
        }
        // The journal holds every order and envelope: owner-only. SQLite gives its -wal and -shm
        // files the database file's mode, so creating the file first covers them too.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    JournalError::Storage(format!("cannot create {}: {e}", path.display()))
                })?;
        }
        let conn = open_connection(path, busy_timeout)?;
        let (ops, queue) = mpsc::channel::<Op>();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_loop(conn, queue))
            .map_err(|e| JournalError::Storage(format!("cannot start the journal thread: {e}")))?;
        Ok(Self {
            ops,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer thread inside the next transaction; resolves after the commit.
    fn call<T, F>(&self, f: F) -> JournalFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: Op = Box::new(move |conn| {
            let result = in_savepoint(conn, f);
            Box::new(move |commit: Result<(), JournalError>| {
                let _ = tx.send(commit.and(result));
            })
        });
        let sent = self.ops.send(op);
        Box::pin(async move {
            sent.map_err(|_| JournalError::Closed)?;
            rx.await.map_err(|_| JournalError::Closed)?
        })
    }

    /// Like [`Self::call`], but answers as soon as `f` has run, before the commit. Only for the
    /// paper broker's book: whatever depends on the answer (the executor's completion write) is
    /// queued behind it and awaited before anything claims the order. Should this batch's commit
    /// fail, the paper book forgets the order; if the order's plan was in the same batch the
    /// completion then fails too (the message stays `pending` and is placed again at the next
    /// start), otherwise the orders table still records the fill, which is the record that counts.
    fn call_uncommitted<T, F>(&self, f: F) -> JournalFuture<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let op: Op = Box::new(move |conn| {
            let _ = tx.send(in_savepoint(conn, f));
            Box::new(|_commit: Result<(), JournalError>| {})
        });
        let sent = self.ops.send(op);
        Box::pin(async move {
            sent.map_err(|_| JournalError::Closed)?;
            rx.await.map_err(|_| JournalError::Closed)?
        })
    }
}

/// Opens a connection with the journal's pragmas and runs pending migrations.
pub fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, JournalError> {
    let conn = Connection::open(path).map_err(storage)?;
    conn.busy_timeout(busy_timeout).map_err(storage)?;
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

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    conn.execute_batch("SAVEPOINT op").map_err(storage)?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE op").map_err(storage)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
            Err(e)
        }
    }
}

fn writer_loop(conn: Connection, queue: mpsc::Receiver<Op>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let err = storage(e);
            tracing::error!(error = %err, "journal: cannot begin a transaction");
            // Nothing ran: dropping the operations drops their reply channels, which callers see
            // as `JournalError::Closed` and answer with 503 like any storage error.
            drop(batch);
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|op| op(&conn)).collect();
        let commit = conn.execute_batch("COMMIT").map_err(storage);
        if let Err(e) = &commit {
            tracing::error!(error = %e, "journal: commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}

fn dec(s: &str) -> Result<Decimal, JournalError> {
    Decimal::from_str_exact(s).map_err(|_| JournalError::Corrupt(format!("bad decimal {s:?}")))
}

fn opt_dec(s: Option<String>) -> Result<Option<Decimal>, JournalError> {
    s.as_deref().map(dec).transpose()
}

fn parse_side(s: &str) -> Result<Side, JournalError> {
    match s {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        _ => Err(JournalError::Corrupt(format!("bad side {s:?}"))),
    }
}

/// The variant of `all` whose stored name is `s`; a name nothing writes means a corrupt row.
fn parse_stored<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    s: &str,
    what: &str,
) -> Result<T, JournalError> {
    all.iter()
        .copied()
        .find(|t| name(*t) == s)
        .ok_or_else(|| JournalError::Corrupt(format!("bad {what} {s:?}")))
}

fn parse_order_type(s: &str) -> Result<OrderType, JournalError> {
    use OrderType::*;
    parse_stored(
        &[Market, Limit, Stop, StopLimit],
        OrderType::as_str,
        s,
        "order type",
    )
}

fn parse_tif(s: &str) -> Result<TimeInForce, JournalError> {
    use TimeInForce::*;
    parse_stored(
        &[Gtc, Day, Ioc, Fok],
        TimeInForce::as_str,
        s,
        "time in force",
    )
}

fn parse_status(s: &str) -> Result<OrderStatus, JournalError> {
    use OrderStatus::*;
    let all = [Placed, PartiallyFilled, Filled, Cancelled];
    parse_stored(&all, OrderStatus::as_str, s, "venue status")
}

const ORDER_COLUMNS: &str = "client_order_id, message_id, leg, account, symbol, side, quantity, order_type, \
     limit_price, stop_price, tif, reference_price, status, venue, venue_order_id, filled_quantity, \
     average_price, error, created_at, updated_at";

/// Raw columns of an order row, converted after the statement is done.
struct OrderRow {
    text: [Option<String>; 16],
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

fn query_orders(
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

fn load_message(conn: &Connection, id: &str) -> Result<Option<MessageRecord>, JournalError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, account, idempotency_key, received_at, recorded_at, updated_at, outcome, reason, envelope \
             FROM messages WHERE id = ?1",
        )
        .map_err(storage)?;
    let row = stmt
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Vec<u8>>(8)?,
            ))
        })
        .optional()
        .map_err(storage)?;
    let Some((
        id,
        account,
        idempotency_key,
        received_at_ms,
        recorded_at_ms,
        updated_at_ms,
        outcome,
        reason,
        envelope,
    )) = row
    else {
        return Ok(None);
    };
    let orders = query_orders(
        conn,
        &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE message_id = ?1 ORDER BY leg"),
        [&id],
    )?;
    Ok(Some(MessageRecord {
        id,
        account,
        idempotency_key,
        received_at_ms,
        recorded_at_ms,
        updated_at_ms,
        outcome: Outcome::from_str(&outcome)?,
        reason,
        envelope,
        orders,
    }))
}

fn admit(conn: &Connection, m: NewMessage) -> Result<Admission, JournalError> {
    if let Some(existing) = load_message(conn, &m.id)? {
        return Ok(Admission::Seen(existing));
    }
    let mut outcome = m.outcome;
    let mut reason = m.reason;
    if let (Some(account), Some(key)) = (&m.account, &m.idempotency_key) {
        let earlier: Option<String> = conn
            .prepare_cached(
                "SELECT id FROM messages WHERE account = ?1 AND idempotency_key = ?2 AND recorded_at >= ?3 \
                 AND outcome <> 'duplicate' ORDER BY recorded_at LIMIT 1",
            )
            .map_err(storage)?
            .query_row(params![account, key, m.dedupe_since_ms], |r| r.get(0))
            .optional()
            .map_err(storage)?;
        if let Some(earlier) = earlier {
            outcome = Outcome::Duplicate;
            reason = Some(format!("idempotency key already used by {earlier}"));
        }
    }
    conn.prepare_cached(
        "INSERT INTO messages (id, account, idempotency_key, received_at, recorded_at, updated_at, envelope, \
         outcome, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
    )
    .map_err(storage)?
    .execute(params![
        m.id,
        m.account,
        m.idempotency_key,
        m.received_at_ms,
        m.now_ms,
        m.envelope.as_ref(),
        outcome.as_str(),
        reason
    ])
    .map_err(storage)?;
    Ok(Admission::New(MessageRecord {
        id: m.id,
        account: m.account,
        idempotency_key: m.idempotency_key,
        received_at_ms: m.received_at_ms,
        recorded_at_ms: m.now_ms,
        updated_at_ms: m.now_ms,
        outcome,
        reason,
        envelope: m.envelope.to_vec(),
        orders: Vec::new(),
    }))
}

fn plan(conn: &Connection, orders: Vec<OrderRecord>) -> Result<(), JournalError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO orders ({ORDER_COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)"
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
        ])
        .map_err(storage)?;
    }
    Ok(())
}

fn position(conn: &Connection, account: &str, symbol: &str) -> Result<Decimal, JournalError> {
    let q: Option<String> = conn
        .prepare_cached("SELECT quantity FROM positions WHERE account = ?1 AND symbol = ?2")
        .map_err(storage)?
        .query_row([account, symbol], |r| r.get(0))
        .optional()
        .map_err(storage)?;
    q.as_deref().map_or(Ok(Decimal::ZERO), dec)
}

fn settle(conn: &Connection, s: Settlement) -> Result<(), JournalError> {
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
    if status == OrderState::New.as_str() && !s.position_delta.is_zero() {
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

fn finish(
    conn: &Connection,
    id: &str,
    outcome: Outcome,
    reason: Option<String>,
    now_ms: i64,
) -> Result<(), JournalError> {
    conn.prepare_cached(
        "UPDATE messages SET outcome = ?2, reason = ?3, updated_at = ?4 WHERE id = ?1",
    )
    .map_err(storage)?
    .execute(params![id, outcome.as_str(), reason, now_ms])
    .map_err(storage)?;
    if outcome != Outcome::Pending {
        conn.prepare_cached(
            "UPDATE orders SET status = 'skipped', updated_at = ?2 WHERE message_id = ?1 AND status = 'new'",
        )
        .map_err(storage)?
        .execute(params![id, now_ms])
        .map_err(storage)?;
    }
    Ok(())
}

impl Journal for SqliteJournal {
    fn admit(&self, message: NewMessage) -> JournalFuture<Admission> {
        self.call(move |c| admit(c, message))
    }

    fn plan(&self, orders: Vec<OrderRecord>) -> JournalFuture<()> {
        self.call(move |c| plan(c, orders))
    }

    fn complete(
        &self,
        settlements: Vec<Settlement>,
        id: &str,
        outcome: Outcome,
        reason: Option<String>,
        now_ms: i64,
    ) -> JournalFuture<()> {
        let id = id.to_owned();
        self.call(move |c| {
            for settlement in settlements {
                settle(c, settlement)?;
            }
            finish(c, &id, outcome, reason, now_ms)
        })
    }

    fn message(&self, id: &str) -> JournalFuture<Option<MessageRecord>> {
        let id = id.to_owned();
        self.call(move |c| load_message(c, &id))
    }

    fn recent_orders(&self, limit: u32) -> JournalFuture<Vec<OrderRecord>> {
        self.call(move |c| {
            query_orders(
                c,
                &format!("SELECT {ORDER_COLUMNS} FROM orders ORDER BY seq DESC LIMIT ?1"),
                [limit],
            )
        })
    }

    fn position(&self, account: &str, symbol: &str) -> JournalFuture<Decimal> {
        let (account, symbol) = (account.to_owned(), symbol.to_owned());
        self.call(move |c| position(c, &account, &symbol))
    }

    fn unfinished(&self) -> JournalFuture<Vec<MessageRecord>> {
        self.call(|c| {
            let ids: Vec<String> = c
                .prepare_cached(
                    "SELECT id FROM messages WHERE outcome = 'pending' ORDER BY recorded_at, rowid",
                )
                .map_err(storage)?
                .query_map([], |r| r.get(0))
                .map_err(storage)?
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(load_message(c, &id)?);
            }
            Ok(out)
        })
    }

    fn orders_since(&self, account: &str, since_ms: i64) -> JournalFuture<u32> {
        let account = account.to_owned();
        self.call(move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM orders WHERE account = ?1 AND created_at >= ?2 AND status <> 'skipped'",
                )
                .map_err(storage)?
                .query_row(params![account, since_ms], |r| r.get(0))
                .map_err(storage)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    fn ping(&self) -> JournalFuture<()> {
        self.call(|c| {
            c.execute_batch("CREATE TEMP TABLE IF NOT EXISTS ping (x); DELETE FROM ping;")
                .map_err(storage)
        })
    }
}

impl PaperBook for SqliteJournal {
    fn record_once(
        &self,
        client_order_id: &str,
        placement: Placement,
        now_ms: i64,
    ) -> JournalFuture<Placement> {
        let cid = client_order_id.to_owned();
        self.call_uncommitted(move |c| {
            c.prepare_cached(
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
            lookup_paper(c, &cid)?.ok_or_else(|| JournalError::Corrupt("paper order vanished".into()))
        })
    }

    fn lookup(&self, client_order_id: &str) -> JournalFuture<Option<Placement>> {
        let cid = client_order_id.to_owned();
        self.call(move |c| lookup_paper(c, &cid))
    }
}

fn lookup_paper(conn: &Connection, cid: &str) -> Result<Option<Placement>, JournalError> {
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
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> (tempfile::TempDir, SqliteJournal) {
        let dir = tempfile::tempdir().unwrap();
        let j = SqliteJournal::open(&dir.path().join("j.db"), Duration::from_millis(200)).unwrap();
        (dir, j)
    }

    fn message(id: &str, key: Option<&str>, now_ms: i64) -> NewMessage {
        NewMessage {
            id: id.into(),
            account: Some("main".into()),
            idempotency_key: key.map(Into::into),
            received_at_ms: Some(now_ms),
            envelope: bytes::Bytes::from_static(b"{}"),
            outcome: Outcome::Pending,
            reason: None,
            now_ms,
            dedupe_since_ms: now_ms - 300_000,
        }
    }

    #[tokio::test]
    async fn a_message_id_is_admitted_once_even_when_admitted_concurrently() {
        let (_d, j) = journal();
        let (a, b) = tokio::join!(
            j.admit(message("msg_a", None, 1)),
            j.admit(message("msg_a", None, 1))
        );
        let news = [a.unwrap(), b.unwrap()]
            .iter()
            .filter(|x| matches!(x, Admission::New(_)))
            .count();
        assert_eq!(news, 1);
    }

    #[tokio::test]
    async fn an_idempotency_key_inside_the_window_is_a_duplicate_and_outside_is_not() {
        let (_d, j) = journal();
        j.admit(message("msg_1", Some("k"), 1_000_000))
            .await
            .unwrap();
        let Admission::New(dup) = j
            .admit(message("msg_2", Some("k"), 1_100_000))
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(dup.outcome, Outcome::Duplicate);
        let Admission::New(fresh) = j
            .admit(message("msg_3", Some("k"), 1_400_001))
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(fresh.outcome, Outcome::Pending);
    }

    #[tokio::test]
    async fn the_schema_survives_reopening_and_is_not_migrated_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.db");
        {
            let j = SqliteJournal::open(&path, Duration::from_millis(200)).unwrap();
            j.admit(message("msg_1", None, 1)).await.unwrap();
        }
        let j = SqliteJournal::open(&path, Duration::from_millis(200)).unwrap();
        assert!(matches!(
            j.admit(message("msg_1", None, 2)).await.unwrap(),
            Admission::Seen(_)
        ));
    }
}
