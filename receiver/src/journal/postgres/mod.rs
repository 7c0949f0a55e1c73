//! The shared journal: PostgreSQL, for several receivers on one database (DESIGN.md section 15).
//! Every call takes a pooled connection and runs in one transaction; it completes once committed.
//! What SQLite gets from being one process, this store gets from the database: the message id is
//! a primary key (a concurrent delivery to another receiver reads the stored record), the dedupe
//! check holds a transaction-scoped advisory lock per (account, idempotency key), settlements lock
//! the order and position rows, and `leases` records which receiver executes a message.
//!
//! - [`schema`]: migrations (numbered as SQLite's) under an advisory lock.
//! - `messages`, `orders`, `placements`, `controls`, `leases`: the SQL of each table.
//!
//! The pool is deadpool-postgres over tokio-postgres without TLS: run the database on the
//! receivers' private network (or a local TLS proxy such as pgbouncer/stunnel).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rust_decimal::Decimal;
use tokio_postgres::{NoTls, Transaction};

use super::{
    Admission, DeliveryRecord, EarlierPending, Fill, Journal, JournalError, JournalFuture, KeyHold,
    MessageRecord, NewMessage, NotifyEvent, OrderRecord, OrderState, OutboxEntry, Outcome,
    PlacementStore, PositionRecord, Reprice, Settlement, StrategySwitch, VenuePosition,
};
use crate::order::Placement;

mod controls;
mod keys;
mod leases;
mod messages;
mod orders;
mod outbox;
mod placements;
pub mod schema;
mod tls;

/// How long a call waits to connect (or for a free pooled connection) before it fails with 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The PostgreSQL journal. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct PostgresJournal {
    /// Connections to the database (`store.pool_size`).
    pool: Pool,
    /// Connections holding (account, symbol) locks while jobs execute (`store.pool_size`).
    locks: Pool,
    /// This journal's name ([`Journal::writer`]).
    writer: String,
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("PostgresJournal")
            .field("pool", &self.pool.status())
            .field("locks", &self.locks.status())
            .field("writer", &self.writer)
            .finish()
    }
}

/// A database error, as the journal reports it (the driver's message never includes the
/// password).
pub(crate) fn pg(e: tokio_postgres::Error) -> JournalError {
    match e.as_db_error() {
        Some(db) => {
            JournalError::Storage(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => {
            // The cause (a refused certificate, a reset connection) is the useful part.
            let mut text = format!("postgres: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.ends_with(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            JournalError::Storage(text)
        }
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> JournalError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => JournalError::Storage(format!("postgres pool: {other}")),
    }
}

type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, JournalError>> + Send + 't>>;

impl PostgresJournal {
    /// Connects to `url` (a `postgres://` URL or key=value string) with up to `pool_size`
    /// connections and migrates the schema. Tables go into the connection's `search_path` (a URL
    /// may choose it: `?options=-c%20search_path%3Dname`). In plain text unless the URL says
    /// `sslmode=require` ([`PostgresJournal::open_with`]).
    pub async fn open(url: &str, pool_size: usize) -> Result<Self, JournalError> {
        Self::open_with(url, pool_size, None).await
    }

    /// As [`PostgresJournal::open`]; with `sslmode=require` in `url` over TLS, the server's
    /// certificate verified against `tls_ca_file` (PEM) or else the public web roots ([`tls`]).
    pub async fn open_with(
        url: &str,
        pool_size: usize,
        tls_ca_file: Option<&std::path::Path>,
    ) -> Result<Self, JournalError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| JournalError::Storage("store.url is not a PostgreSQL URL".into()))?;
        let tls = if matches!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        ) {
            Some(tls::Rustls::new(tls_ca_file)?)
        } else if tls_ca_file.is_some() {
            return Err(JournalError::Storage(
                "store.tls_ca_file is set but store.url does not ask for TLS: add sslmode=require to it"
                    .into(),
            ));
        } else {
            None
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("alertgate-receiver");
        }
        // Verified: an idle connection is checked (one round trip) before it is handed out, so
        // after the database went away and came back the first call does not fail on a dead one.
        let build = |wait: Option<Duration>| {
            let verified = || ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            };
            let manager = match &tls {
                Some(tls) => Manager::from_config(config.clone(), tls.clone(), verified()),
                None => Manager::from_config(config.clone(), NoTls, verified()),
            };
            Pool::builder(manager)
                .max_size(pool_size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(wait)
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| JournalError::Storage(format!("postgres pool: {e}")))
        };
        let pool = build(Some(CONNECT_TIMEOUT))?;
        // Jobs wait for a lock connection as long as it takes: they are queued work, in order.
        let locks = build(None)?;
        let journal = Self {
            pool,
            locks,
            writer: super::new_writer(),
        };
        {
            let mut client = journal.pool.get().await.map_err(pool_error)?;
            schema::migrate(&mut client).await?;
        }
        Ok(journal)
    }

    /// Runs `f` in one transaction on a pooled connection; resolves after the commit. The work
    /// starts at once, as SQLite's queued writes do, whether or not the future is polled yet
    /// (the executor starts a plan and awaits it later).
    fn tx<T, F>(&self, f: F) -> JournalFuture<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t Transaction<'t>) -> TxFuture<'t, T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let work = tokio::spawn(async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            let tx = client.transaction().await.map_err(pg)?;
            let out = f(&tx).await?;
            tx.commit().await.map_err(pg)?;
            Ok(out)
        });
        Box::pin(async move { work.await.map_err(|_| JournalError::Closed)? })
    }
}

impl Journal for PostgresJournal {
    fn writer(&self) -> &str {
        &self.writer
    }

    fn admit(&self, message: NewMessage) -> JournalFuture<Admission> {
        let writer = self.writer.clone();
        self.tx(move |t| Box::pin(async move { messages::admit(t, message, &writer).await }))
    }

    fn plan(&self, orders: Vec<OrderRecord>) -> JournalFuture<()> {
        self.tx(move |t| Box::pin(orders::plan(t, orders)))
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
        self.tx(move |t| {
            Box::pin(async move {
                for settlement in settlements {
                    orders::settle(t, settlement).await?;
                }
                messages::finish(t, &id, outcome, reason, now_ms, &writer).await
            })
        })
    }

    fn message(&self, id: &str) -> JournalFuture<Option<MessageRecord>> {
        let id = id.to_owned();
        self.tx(move |t| Box::pin(async move { messages::load(t, &id).await }))
    }

    fn recent_orders(&self, limit: u32) -> JournalFuture<Vec<OrderRecord>> {
        self.tx(move |t| Box::pin(orders::recent(t, limit)))
    }

    fn position(&self, account: &str, venue: &str, symbol: &str) -> JournalFuture<Decimal> {
        let (account, venue, symbol) = (account.to_owned(), venue.to_owned(), symbol.to_owned());
        self.tx(move |t| {
            Box::pin(async move { orders::position(t, &account, &venue, &symbol).await })
        })
    }

    fn unfinished(&self) -> JournalFuture<Vec<MessageRecord>> {
        self.tx(|t| Box::pin(messages::unfinished(t)))
    }

    fn orders_since(&self, account: &str, since_ms: i64) -> JournalFuture<u32> {
        let account = account.to_owned();
        self.tx(move |t| Box::pin(async move { orders::count_since(t, &account, since_ms).await }))
    }

    fn ping(&self) -> JournalFuture<()> {
        self.tx(|t| {
            Box::pin(async move {
                t.batch_execute("SELECT 1").await.map_err(pg)?;
                Ok(())
            })
        })
    }

    fn positions(&self) -> JournalFuture<Vec<PositionRecord>> {
        self.tx(|t| Box::pin(orders::all_positions(t)))
    }

    fn orders_with_status(&self, status: OrderState) -> JournalFuture<Vec<OrderRecord>> {
        self.tx(move |t| Box::pin(orders::with_status(t, status)))
    }

    fn record_venue_positions(&self, readings: Vec<VenuePosition>) -> JournalFuture<()> {
        self.tx(move |t| Box::pin(orders::record_venue(t, readings)))
    }

    fn venue_positions(&self) -> JournalFuture<Vec<VenuePosition>> {
        self.tx(|t| Box::pin(orders::venue_readings(t)))
    }

    fn working_orders(&self, account: &str, symbol: &str) -> JournalFuture<Vec<OrderRecord>> {
        let (account, symbol) = (account.to_owned(), symbol.to_owned());
        self.tx(move |t| Box::pin(async move { orders::working(t, &account, &symbol).await }))
    }

    fn unadopted_brackets(&self) -> JournalFuture<Vec<OrderRecord>> {
        self.tx(|t| Box::pin(orders::unadopted_brackets(t)))
    }

    fn reprice(&self, change: Reprice) -> JournalFuture<()> {
        self.tx(move |t| Box::pin(async move { orders::reprice(t, &change).await }))
    }

    fn recent_messages(&self, limit: u32) -> JournalFuture<Vec<MessageRecord>> {
        self.tx(move |t| Box::pin(messages::recent(t, limit)))
    }

    fn fills(&self, account: &str) -> JournalFuture<Vec<Fill>> {
        let account = account.to_owned();
        self.tx(move |t| Box::pin(async move { controls::fills(t, &account).await }))
    }

    fn set_strategy(&self, switch: StrategySwitch) -> JournalFuture<()> {
        self.tx(move |t| Box::pin(async move { controls::set_strategy(t, &switch).await }))
    }

    fn strategies(&self) -> JournalFuture<Vec<StrategySwitch>> {
        self.tx(|t| Box::pin(controls::strategies(t)))
    }

    fn enqueue_event(&self, event: NotifyEvent) -> JournalFuture<()> {
        self.tx(move |t| Box::pin(async move { outbox::insert(t, &event).await }))
    }

    fn outbox_cursor(&self, destination: &str, now_ms: i64) -> JournalFuture<i64> {
        let destination = destination.to_owned();
        self.tx(move |t| Box::pin(async move { outbox::cursor(t, &destination, now_ms).await }))
    }

    fn outbox_after(&self, after_seq: i64, limit: u32) -> JournalFuture<Vec<OutboxEntry>> {
        self.tx(move |t| Box::pin(outbox::after(t, after_seq, limit)))
    }

    fn outbox_advance(
        &self,
        destination: &str,
        seq: i64,
        delivery: Option<DeliveryRecord>,
        now_ms: i64,
    ) -> JournalFuture<()> {
        let destination = destination.to_owned();
        self.tx(move |t| {
            Box::pin(async move { outbox::advance(t, &destination, seq, delivery, now_ms).await })
        })
    }

    fn lease(&self, id: &str, holder: &str, now_ms: i64, until_ms: i64) -> JournalFuture<bool> {
        let (id, holder) = (id.to_owned(), holder.to_owned());
        self.tx(move |t| {
            Box::pin(async move { leases::take(t, &id, &holder, now_ms, until_ms).await })
        })
    }

    fn earliest_pending(
        &self,
        id: &str,
        keys: Vec<(String, String)>,
    ) -> JournalFuture<Option<EarlierPending>> {
        let id = id.to_owned();
        self.tx(move |t| Box::pin(async move { messages::earliest_pending(t, &id, &keys).await }))
    }

    fn hold_keys(&self, keys: Vec<(String, String)>) -> JournalFuture<KeyHold> {
        let locks = self.locks.clone();
        Box::pin(async move { keys::hold(&locks, keys).await })
    }
}

impl PlacementStore for PostgresJournal {
    fn record_once(
        &self,
        client_order_id: &str,
        placement: Placement,
        now_ms: i64,
    ) -> JournalFuture<Placement> {
        let cid = client_order_id.to_owned();
        self.tx(move |t| {
            Box::pin(async move { placements::record_once(t, &cid, placement, now_ms).await })
        })
    }

    fn lookup(&self, client_order_id: &str) -> JournalFuture<Option<Placement>> {
        let cid = client_order_id.to_owned();
        self.tx(move |t| Box::pin(async move { placements::lookup(t, &cid).await }))
    }

    fn update(&self, client_order_id: &str, placement: Placement) -> JournalFuture<()> {
        let cid = client_order_id.to_owned();
        self.tx(move |t| Box::pin(async move { placements::update(t, &cid, &placement).await }))
    }
}
