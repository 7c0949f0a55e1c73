//! The embedded journal: one SQLite file (WAL), written by a single thread that commits whatever
//! is queued in one transaction (group commit), so concurrent requests share one fsync, which a
//! second thread performs while the writer goes on with the next batch (see `writer`). Each queued operation runs inside its own savepoint, so one failing operation does
//! not undo its neighbours; callers are answered only after the commit.
//!
//! Decimals are stored as TEXT (exact), times as unix milliseconds.
//!
//! - [`schema`]: migrations and connection pragmas.
//! - `writer`: the writer thread, its group commit, and the syncer that makes batches durable.
//! - `messages`, `orders`, `placements`, `controls` (strategy switches, fills for daily-loss
//!   accounting), `outbox` (notifications): the SQL of each table; `values`: how values are stored.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use rust_decimal::Decimal;
use tokio::sync::oneshot;

use super::{
    Admission, DeliveryRecord, Fill, Journal, JournalError, JournalFuture, MessageRecord,
    NewMessage, NotifyEvent, OrderRecord, OrderState, OutboxEntry, Outcome, PlacementStore,
    PositionRecord, Reprice, Settlement, StrategySwitch, VenuePosition,
};
use crate::order::Placement;

mod controls;
mod messages;
mod orders;
mod outbox;
mod placements;
pub mod schema;
pub(crate) mod values;
mod writer;

pub use schema::open_connection;
use writer::{in_savepoint, writer_loop, Op};

/// The SQLite journal. Cheap to share behind an `Arc`; the writer thread stops when it is dropped.
#[derive(Debug)]
pub struct SqliteJournal {
    /// Queue of the writer thread.
    ops: mpsc::Sender<Op>,
    /// The database file.
    path: PathBuf,
    /// This journal's name ([`Journal::writer`]).
    writer: String,
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
        // The writer's syncer supplies the per-commit sync (see `writer`): SQLite itself then
        // syncs only around checkpoints.
        conn.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(storage)?;
        let (ops, queue) = mpsc::channel::<Op>();
        let db = path.to_owned();
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_loop(conn, db, queue))
            .map_err(|e| JournalError::Storage(format!("cannot start the journal thread: {e}")))?;
        Ok(Self {
            ops,
            path: path.to_owned(),
            writer: super::new_writer(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Messages journaled at or after `since_ms`, oldest first, with their orders (`replay`).
    pub fn messages_since(&self, since_ms: i64) -> JournalFuture<Vec<MessageRecord>> {
        self.call(move |c| messages::since(c, since_ms))
    }

    /// (destination, outcome, attempts) of every delivery of the event `event_id`: tests and
    /// troubleshooting.
    pub fn deliveries(&self, event_id: &str) -> JournalFuture<Vec<(String, String, u32)>> {
        let id = event_id.to_owned();
        self.call(move |c| outbox::deliveries(c, &id))
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

    /// Like [`Self::call`], but answers as soon as `f` has run, before the commit. For two
    /// kinds of callers only:
    /// - the paper broker's book: whatever depends on the answer (the executor's completion
    ///   write) is queued behind it and awaited before anything claims the order. Should this
    ///   batch's commit fail, the paper book forgets the order; if the order's plan was in the
    ///   same batch the completion then fails too (the message stays `pending` and is placed
    ///   again at the next start), otherwise the orders table still records the fill, which is
    ///   the record that counts.
    /// - the executor's reads inside an (account, symbol) turn (positions, working orders, fills,
    ///   the order count): they run on the writer's connection after every write queued before
    ///   them, so they see the previous job's orders even before that job's commit, and need not
    ///   wait for an fsync they add nothing to. Waiting for it made every turn as long as a
    ///   commit, which bounded each symbol to a few hundred alerts a second. A read changes
    ///   nothing, so it is only as good as what it saw: if that batch's commit fails, its
    ///   writers are told so and their messages stay `pending`, to be resumed at the next start.
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

impl Journal for SqliteJournal {
    fn writer(&self) -> &str {
        &self.writer
    }

    fn admit(&self, message: NewMessage) -> JournalFuture<Admission> {
        let writer = self.writer.clone();
        self.call(move |c| messages::admit(c, message, &writer))
    }

    fn plan(&self, orders: Vec<OrderRecord>) -> JournalFuture<()> {
        self.call(move |c| orders::plan(c, orders))
    }

    fn complete(
        &self,
        settlements: Vec<Settlement>,
        id: &str,
        outcome: Outcome,
        reason: Option<String>,
        now_ms: i64,
    ) -> JournalFuture<()> {
        let (id, writer) = (id.to_owned(), self.writer.clone());
        self.call(move |c| {
            for settlement in settlements {
                orders::settle(c, settlement)?;
            }
            messages::finish(c, &id, outcome, reason, now_ms, &writer)
        })
    }

    fn message(&self, id: &str) -> JournalFuture<Option<MessageRecord>> {
        let id = id.to_owned();
        self.call(move |c| messages::load(c, &id))
    }

    fn recent_orders(&self, limit: u32) -> JournalFuture<Vec<OrderRecord>> {
        self.call(move |c| orders::recent(c, limit))
    }

    fn recent_messages(&self, limit: u32) -> JournalFuture<Vec<MessageRecord>> {
        self.call(move |c| messages::recent(c, limit))
    }

    fn position(&self, account: &str, venue: &str, symbol: &str) -> JournalFuture<Decimal> {
        let (account, venue, symbol) = (account.to_owned(), venue.to_owned(), symbol.to_owned());
        self.call_uncommitted(move |c| orders::position(c, &account, &venue, &symbol))
    }

    fn unfinished(&self) -> JournalFuture<Vec<MessageRecord>> {
        self.call(messages::unfinished)
    }

    fn orders_since(&self, account: &str, since_ms: i64) -> JournalFuture<u32> {
        let account = account.to_owned();
        self.call_uncommitted(move |c| orders::count_since(c, &account, since_ms))
    }

    fn positions(&self) -> JournalFuture<Vec<PositionRecord>> {
        self.call(orders::all_positions)
    }

    fn orders_with_status(&self, status: OrderState) -> JournalFuture<Vec<OrderRecord>> {
        self.call(move |c| orders::with_status(c, status))
    }

    fn record_venue_positions(&self, readings: Vec<VenuePosition>) -> JournalFuture<()> {
        self.call(move |c| orders::record_venue(c, readings))
    }

    fn venue_positions(&self) -> JournalFuture<Vec<VenuePosition>> {
        self.call(orders::venue_readings)
    }

    fn working_orders(&self, account: &str, symbol: &str) -> JournalFuture<Vec<OrderRecord>> {
        let (account, symbol) = (account.to_owned(), symbol.to_owned());
        self.call_uncommitted(move |c| orders::working(c, &account, &symbol))
    }

    fn unadopted_brackets(&self) -> JournalFuture<Vec<OrderRecord>> {
        self.call_uncommitted(orders::unadopted_brackets)
    }

    fn reprice(&self, change: Reprice) -> JournalFuture<()> {
        self.call(move |c| controls::reprice(c, &change))
    }

    fn fills(&self, account: &str) -> JournalFuture<Vec<Fill>> {
        let account = account.to_owned();
        self.call_uncommitted(move |c| controls::fills(c, &account))
    }

    fn set_strategy(&self, switch: StrategySwitch) -> JournalFuture<()> {
        self.call(move |c| controls::set_strategy(c, &switch))
    }

    fn strategies(&self) -> JournalFuture<Vec<StrategySwitch>> {
        self.call(controls::strategies)
    }

    fn enqueue_event(&self, event: NotifyEvent) -> JournalFuture<()> {
        self.call(move |c| outbox::insert(c, &event))
    }

    fn outbox_cursor(&self, destination: &str, now_ms: i64) -> JournalFuture<i64> {
        let destination = destination.to_owned();
        self.call(move |c| outbox::cursor(c, &destination, now_ms))
    }

    fn outbox_after(&self, after_seq: i64, limit: u32) -> JournalFuture<Vec<OutboxEntry>> {
        self.call(move |c| outbox::after(c, after_seq, limit))
    }

    fn outbox_advance(
        &self,
        destination: &str,
        seq: i64,
        delivery: Option<DeliveryRecord>,
        now_ms: i64,
    ) -> JournalFuture<()> {
        let destination = destination.to_owned();
        self.call(move |c| outbox::advance(c, &destination, seq, delivery, now_ms))
    }

    fn ping(&self) -> JournalFuture<()> {
        self.call(|c| {
            c.execute_batch("CREATE TEMP TABLE IF NOT EXISTS ping (x); DELETE FROM ping;")
                .map_err(storage)
        })
    }
}

impl PlacementStore for SqliteJournal {
    fn record_once(
        &self,
        client_order_id: &str,
        placement: Placement,
        now_ms: i64,
    ) -> JournalFuture<Placement> {
        let cid = client_order_id.to_owned();
        self.call_uncommitted(move |c| placements::record_once(c, &cid, placement, now_ms))
    }

    fn lookup(&self, client_order_id: &str) -> JournalFuture<Option<Placement>> {
        let cid = client_order_id.to_owned();
        self.call(move |c| placements::lookup(c, &cid))
    }

    fn update(&self, client_order_id: &str, placement: Placement) -> JournalFuture<()> {
        let cid = client_order_id.to_owned();
        self.call(move |c| placements::update(c, &cid, &placement))
    }
}
