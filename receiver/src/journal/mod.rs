//! The journal: the durable record of every authenticated message, the orders it produced, and
//! positions per (account, venue, symbol). Nothing is executed before its message is journaled, and a
//! message id is journaled once, so nothing is executed twice, across restarts too.
//!
//! The [`Journal`] trait is deliberately narrow (a PostgreSQL journal for several receivers comes
//! later); [`sqlite::SqliteJournal`] is the embedded default. [`PlacementStore`] is the storage a
//! venue living inside the receiver (the paper broker) keeps its book in: the journal stores the
//! rows, the venue decides what they mean.
//!
//! The journal depends on the order types ([`crate::order`]) only; brokers and the executor
//! depend on it, never the other way round.

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Mutex;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::order::{Exits, OrderStatus, OrderType, Placement, Product, Side, TimeInForce};

pub mod events;
pub mod hold;
pub mod postgres;
pub mod sqlite;
pub mod store;

pub use events::{EventKind, NotifyEvent};
pub use hold::KeyHold;
pub use postgres::PostgresJournal;
pub use sqlite::SqliteJournal;
pub use store::Store;

/// The future a journal call returns; it completes once the change is durable (committed, and
/// on SQLite the WAL synced after the commit).
pub type JournalFuture<T> = Pin<Box<dyn Future<Output = Result<T, JournalError>> + Send + 'static>>;

/// The journal could not be read or written. Requests answer 503 so the relay retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The database refused (locked, read-only, disk full, corrupt).
    #[error("journal storage error: {0}")]
    Storage(String),
    /// The writer thread is gone (shutting down).
    #[error("journal is closed")]
    Closed,
    /// A stored value could not be read back.
    #[error("journal holds an unreadable value: {0}")]
    Corrupt(String),
}

/// What became of a message (contract: receiver/README.md, "Outcomes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Execution is still running (or will resume after a restart).
    Pending,
    /// Every order was accepted by the venue; at least one is still working.
    Placed,
    /// Every order filled (or there was nothing to do: `close` while flat).
    Filled,
    /// The venue refused an order; `reason` says why.
    Failed,
    /// The venue never confirmed an order and could not be asked (unreachable through every
    /// retry); reconciliation looks it up by client order id and settles it.
    Unknown,
    /// A risk gate refused; `reason` names it.
    Rejected,
    /// The alert could not be understood; `reason` names the field.
    Invalid,
    /// The relay accepted it longer than `risk.max_alert_age_seconds` ago.
    Expired,
    /// Its (account, idempotency key) was journaled within `dedupe.window_seconds`.
    Duplicate,
    /// A cancel ran (`reason` lists what it cancelled, or `nothing_to_cancel`), or every working
    /// order of this message was cancelled.
    Cancelled,
}

impl Outcome {
    /// Every outcome, for metrics and tests.
    pub const ALL: [Outcome; 10] = [
        Self::Pending,
        Self::Placed,
        Self::Filled,
        Self::Failed,
        Self::Unknown,
        Self::Rejected,
        Self::Invalid,
        Self::Expired,
        Self::Duplicate,
        Self::Cancelled,
    ];

    /// The name used in JSON, the journal and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Placed => "placed",
            Self::Filled => "filled",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Rejected => "rejected",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::Duplicate => "duplicate",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = JournalError;
    fn from_str(s: &str) -> Result<Self, JournalError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| JournalError::Corrupt(format!("unknown outcome {s:?}")))
    }
}

/// Where one journaled order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Journaled, not yet acknowledged by the venue: resumed after a restart.
    New,
    /// Working at the venue.
    Placed,
    /// Partly filled and working.
    PartiallyFilled,
    /// Filled.
    Filled,
    /// Cancelled or expired at the venue.
    Cancelled,
    /// The venue refused it (or reconciliation did not find it: `not_found_at_venue`).
    Failed,
    /// Not sent because an earlier leg of the same alert failed.
    Skipped,
    /// Sent, but the venue never confirmed it and could not be asked: reconciliation settles it.
    Unknown,
}

impl OrderState {
    const ALL: [OrderState; 8] = [
        Self::New,
        Self::Placed,
        Self::PartiallyFilled,
        Self::Filled,
        Self::Cancelled,
        Self::Failed,
        Self::Skipped,
        Self::Unknown,
    ];

    /// The name used in JSON, the journal and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Placed => "placed",
            Self::PartiallyFilled => "partially_filled",
            Self::Filled => "filled",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Unknown => "unknown",
        }
    }

    /// The state a venue status maps to.
    pub fn from_status(status: OrderStatus) -> Self {
        use OrderStatus as S;
        match status {
            S::Placed => Self::Placed,
            S::PartiallyFilled => Self::PartiallyFilled,
            S::Filled => Self::Filled,
            S::Cancelled => Self::Cancelled,
        }
    }
}

impl FromStr for OrderState {
    type Err = JournalError;
    fn from_str(s: &str) -> Result<Self, JournalError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| JournalError::Corrupt(format!("unknown order status {s:?}")))
    }
}

/// A message to journal, with the outcome decided before any execution.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `webhook-id`.
    pub id: String,
    /// The envelope's account (absent when the envelope could not be parsed).
    pub account: Option<String>,
    /// The alert's idempotency key, when it has one.
    pub idempotency_key: Option<String>,
    /// The envelope's `received_at` (unix ms).
    pub received_at_ms: Option<i64>,
    /// The body exactly as verified.
    pub envelope: bytes::Bytes,
    /// `pending` when it is to be executed; otherwise final (`invalid`, `expired`).
    pub outcome: Outcome,
    /// Why, for a final outcome.
    pub reason: Option<String>,
    /// Now (unix ms), as the receiver's clock says.
    pub now_ms: i64,
    /// A message with the same (account, idempotency key) journaled at or after this time (unix ms)
    /// makes this one a `duplicate`.
    pub dedupe_since_ms: i64,
    /// The (account, venue symbol) keys a `pending` message's orders are queued by. A store
    /// several receivers share keeps them while the message is `pending`, so that a job of a
    /// later message of a key runs only after it ([`Journal::earliest_pending`]).
    pub keys: Vec<(String, String)>,
    /// A store several receivers share leases a new `pending` message to the admitting journal
    /// ([`Journal::writer`]) until this time (unix ms), so that no other receiver resumes it
    /// while it waits for its turn here ([`Journal::lease`]).
    pub lease_until_ms: i64,
}

impl NewMessage {
    /// The record a store journals for this message, with the outcome the dedupe check left
    /// (the same in every store), admitted by the journal named `writer`.
    pub fn into_record(
        self,
        outcome: Outcome,
        reason: Option<String>,
        writer: &str,
    ) -> MessageRecord {
        MessageRecord {
            id: self.id,
            account: self.account,
            idempotency_key: self.idempotency_key,
            received_at_ms: self.received_at_ms,
            recorded_at_ms: self.now_ms,
            updated_at_ms: self.now_ms,
            outcome,
            reason,
            envelope: self.envelope.to_vec(),
            finished_by: (outcome != Outcome::Pending).then(|| writer.to_owned()),
            orders: Vec::new(),
        }
    }
}

/// A fresh name for an opened journal ([`Journal::writer`]): random, so every receiver process,
/// and every start of one, has its own.
pub(crate) fn new_writer() -> String {
    use rand::Rng;
    format!("receiver-{:016x}", rand::thread_rng().gen::<u64>())
}

/// A `pending` message journaled before another of its keys ([`Journal::earliest_pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlierPending {
    /// Its id.
    pub message_id: String,
    /// Who holds its execution lease and until when (unix ms), if anyone ever did.
    pub lease: Option<(String, i64)>,
}

/// What [`Journal::admit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// First time this id was seen: journaled with this record's outcome (which is `duplicate`
    /// when the idempotency key was seen within the window).
    New(MessageRecord),
    /// The id was journaled before: nothing new was written.
    Seen(MessageRecord),
}

/// A journaled message and its orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// `webhook-id`.
    pub id: String,
    /// The envelope's account.
    pub account: Option<String>,
    /// The alert's idempotency key.
    pub idempotency_key: Option<String>,
    /// The envelope's `received_at` (unix ms).
    pub received_at_ms: Option<i64>,
    /// When the receiver journaled it (unix ms).
    pub recorded_at_ms: i64,
    /// When its outcome last changed (unix ms).
    pub updated_at_ms: i64,
    /// Current outcome.
    pub outcome: Outcome,
    /// Why (the rejected gate, the invalid field, the venue's error).
    pub reason: Option<String>,
    /// The verified body.
    pub envelope: Vec<u8>,
    /// The journal ([`Journal::writer`]: one receiver process) whose write took the message out
    /// of `pending`, or journaled it final at admission; `None` while `pending`. A receiver
    /// whose write lost its answer reads it to learn whether that write committed
    /// ([`crate::executor::tally`]).
    pub finished_by: Option<String>,
    /// Its orders, by leg.
    pub orders: Vec<OrderRecord>,
}

/// One journaled order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// Deterministic: `{message id}-{leg}`; the venue's idempotency key.
    pub client_order_id: String,
    /// The message it came from.
    pub message_id: String,
    /// Its position in the alert's legs (0-based).
    pub leg: u32,
    /// Account.
    pub account: String,
    /// Venue symbol.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity.
    pub quantity: Decimal,
    /// Order type.
    pub order_type: OrderType,
    /// Limit price.
    pub limit_price: Option<Decimal>,
    /// Stop price.
    pub stop_price: Option<Decimal>,
    /// Time in force.
    pub tif: TimeInForce,
    /// The alert's reference price.
    pub reference_price: Option<Decimal>,
    /// The alert's product (`productType`), for venues that need one.
    pub product: Option<Product>,
    /// Where it stands.
    pub status: OrderState,
    /// The broker (`paper`, `binance`, ...).
    pub venue: String,
    /// The venue's id.
    pub venue_order_id: Option<String>,
    /// Quantity filled.
    pub filled_quantity: Decimal,
    /// Average fill price.
    pub average_price: Option<Decimal>,
    /// The venue's error, for a failed order.
    pub error: Option<String>,
    /// How the quantity was computed (JSON: `{"method":"notional","notional":"100",
    /// "price":"50000","lot_step":"0.00001",...}`); `None` for a plain `quantity`.
    pub sizing: Option<String>,
    /// Sent only once the order before it in the same message has filled: the open of a
    /// reversal through zero, which must not go before its close. A protective exit waits for
    /// its [`OrderRecord::parent`] instead.
    pub waits_for_fill: bool,
    /// Protective exits attached to this entry at the venue (Alpaca's bracket); empty when the
    /// exits are orders of their own.
    pub exits: Exits,
    /// For a protective exit: the client order id of the entry it protects. Exits with the same
    /// parent cancel each other (one-cancels-other).
    pub parent: Option<String>,
    /// When it was journaled (unix ms).
    pub created_at_ms: i64,
    /// When its status last changed (unix ms).
    pub updated_at_ms: i64,
}

/// The venue's answer for one order, recorded with the position change it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The order.
    pub client_order_id: String,
    /// New status.
    pub status: OrderState,
    /// The venue's id.
    pub venue_order_id: Option<String>,
    /// Quantity filled.
    pub filled_quantity: Decimal,
    /// Average fill price.
    pub average_price: Option<Decimal>,
    /// The venue's error.
    pub error: Option<String>,
    /// Signed change of the (account, symbol) position (buy positive), applied once: only when
    /// the order moves out of `new` or `unknown`.
    pub position_delta: Decimal,
    /// The fee for the order's fills so far ([`crate::order::Placement::fee`]); `None` keeps
    /// what was recorded.
    pub fee: Option<Decimal>,
    /// Now (unix ms).
    pub now_ms: i64,
}

/// The durable record behind the receiver.
pub trait Journal: Send + Sync + Debug {
    /// This opened journal's name (random per open, so per receiver process): recorded as
    /// [`MessageRecord::finished_by`] by the writes it makes, and the receiver's name in
    /// execution leases.
    fn writer(&self) -> &str;

    /// Journals a message by id, atomically with the idempotency-key check. Two concurrent calls
    /// with the same id: exactly one gets [`Admission::New`].
    fn admit(&self, message: NewMessage) -> JournalFuture<Admission>;

    /// Journals the orders a message will place (status `new`; ids already present are kept).
    fn plan(&self, orders: Vec<OrderRecord>) -> JournalFuture<()>;

    /// Records the venue's answers for a message's orders (with their position changes) and the
    /// message's final outcome, in one atomic write. Orders still `new` afterwards are marked
    /// `skipped` unless the outcome is `pending`; a message leaving `pending` records this
    /// journal as [`MessageRecord::finished_by`].
    fn complete(
        &self,
        settlements: Vec<Settlement>,
        id: &str,
        outcome: Outcome,
        reason: Option<String>,
        now_ms: i64,
    ) -> JournalFuture<()>;

    /// Sets a message's final outcome when it placed nothing.
    fn finish(
        &self,
        id: &str,
        outcome: Outcome,
        reason: Option<String>,
        now_ms: i64,
    ) -> JournalFuture<()> {
        self.complete(Vec::new(), id, outcome, reason, now_ms)
    }

    /// One message with its orders.
    fn message(&self, id: &str) -> JournalFuture<Option<MessageRecord>>;

    /// The newest orders first.
    fn recent_orders(&self, limit: u32) -> JournalFuture<Vec<OrderRecord>>;

    /// The position per (account, venue, symbol): signed, zero when flat or unknown.
    fn position(&self, account: &str, venue: &str, symbol: &str) -> JournalFuture<Decimal>;

    /// Messages still `pending` (execution interrupted by a restart), oldest first.
    fn unfinished(&self) -> JournalFuture<Vec<MessageRecord>>;

    /// Orders journaled for `account` at or after `since_ms` (for the per-minute limit after a
    /// restart).
    fn orders_since(&self, account: &str, since_ms: i64) -> JournalFuture<u32>;

    /// Checks that the journal can take a write (for `/readyz`).
    fn ping(&self) -> JournalFuture<()>;

    /// Every (account, venue, symbol) position the journal's fills made, flat ones included.
    fn positions(&self) -> JournalFuture<Vec<PositionRecord>>;

    /// Orders in `status`, oldest first (reconciliation: the `unknown` ones).
    fn orders_with_status(&self, status: OrderState) -> JournalFuture<Vec<OrderRecord>>;

    /// Records what reconciliation read from the venue (replacing the earlier reading of each
    /// (account, venue, symbol)).
    fn record_venue_positions(&self, readings: Vec<VenuePosition>) -> JournalFuture<()>;

    /// The last venue reading of every (account, venue, symbol).
    fn venue_positions(&self) -> JournalFuture<Vec<VenuePosition>>;

    /// Orders of (account, symbol) still working at the venue (`placed`, `partially_filled`),
    /// oldest first: what a cancel cancels and paper crossing fills.
    fn working_orders(&self, account: &str, symbol: &str) -> JournalFuture<Vec<OrderRecord>>;

    /// Records new prices of a working order (a modify the venue accepted), with the venue's
    /// order id when the venue replaced the order under a new one.
    fn reprice(&self, change: Reprice) -> JournalFuture<()>;

    /// Every fill of `account`'s orders, oldest first (daily-loss accounting).
    fn fills(&self, account: &str) -> JournalFuture<Vec<Fill>>;

    /// Records a strategy's switch (replacing its earlier state).
    fn set_strategy(&self, switch: StrategySwitch) -> JournalFuture<()>;

    /// Every strategy switch recorded, by name.
    fn strategies(&self) -> JournalFuture<Vec<StrategySwitch>>;

    /// Entries that filled at a venue holding their protective exits as legs of their own
    /// (Alpaca's bracket, [`OrderRecord::exits`]) and whose legs are not journaled yet as
    /// orders with the entry as [`OrderRecord::parent`]: the legs to adopt (oldest first).
    fn unadopted_brackets(&self) -> JournalFuture<Vec<OrderRecord>>;

    /// The `limit` messages journaled last, newest first, with their orders (the dashboard's
    /// timeline).
    fn recent_messages(&self, limit: u32) -> JournalFuture<Vec<MessageRecord>>;

    /// Takes (or renews) the lease on executing message `id` for `holder` until `until_ms`,
    /// unless another holder's lease is still running at `now_ms`; `true` when `holder` holds
    /// it. A store shared by several receivers keeps leases (a final outcome releases it); the
    /// embedded store serves one receiver and always grants.
    fn lease(&self, id: &str, holder: &str, now_ms: i64, until_ms: i64) -> JournalFuture<bool> {
        let _ = (id, holder, now_ms, until_ms);
        Box::pin(async { Ok(true) })
    }

    /// The `pending` message journaled first, before message `id`, that shares one of `keys`:
    /// the one a job of `id` must let go first so that a key's messages reach the venue in
    /// arrival order across receivers. A store several receivers share keeps each `pending`
    /// message's keys ([`NewMessage::keys`]); the embedded store serves one receiver, whose
    /// queue keeps that order by itself, and finds none.
    fn earliest_pending(
        &self,
        id: &str,
        keys: Vec<(String, String)>,
    ) -> JournalFuture<Option<EarlierPending>> {
        let _ = (id, keys);
        Box::pin(async { Ok(None) })
    }

    /// Waits until no other receiver executes a job for any of these (account, symbol) keys,
    /// and holds them until the returned hold is dropped. The embedded store serves one receiver:
    /// [`KeyHold::local`] at once.
    fn hold_keys(&self, keys: Vec<(String, String)>) -> JournalFuture<KeyHold> {
        let _ = keys;
        Box::pin(async { Ok(KeyHold::local()) })
    }

    /// Appends an event to the notification outbox (events not caused by a message outcome:
    /// `drift`, `kill_switch`, `daily_loss_lock`, `strategy_disabled`, `cancelled`). Outcome
    /// events are written by [`Journal::admit`] and [`Journal::complete`] themselves, in the
    /// transaction of the outcome ([`NotifyEvent::for_outcome`]).
    fn enqueue_event(&self, event: NotifyEvent) -> JournalFuture<()>;

    /// The outbox position `destination` has handled up to; a destination seen for the first
    /// time starts after the newest event.
    fn outbox_cursor(&self, destination: &str, now_ms: i64) -> JournalFuture<i64>;

    /// Outbox events after `after_seq`, oldest first.
    fn outbox_after(&self, after_seq: i64, limit: u32) -> JournalFuture<Vec<OutboxEntry>>;

    /// Moves `destination` past event `seq`, recording `delivery` when the event was meant for
    /// it (an event its filter skips has none), in one write.
    fn outbox_advance(
        &self,
        destination: &str,
        seq: i64,
        delivery: Option<DeliveryRecord>,
        now_ms: i64,
    ) -> JournalFuture<()>;
}

/// A working order's new prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reprice {
    /// The order.
    pub client_order_id: String,
    /// New limit price (unchanged when the same).
    pub limit_price: Option<Decimal>,
    /// New stop price.
    pub stop_price: Option<Decimal>,
    /// New prices of the exits attached to the order at the venue (Alpaca's bracket legs).
    pub exits: crate::order::Exits,
    /// The venue's id after the change.
    pub venue_order_id: Option<String>,
    /// Now (unix ms).
    pub now_ms: i64,
}

/// What one order filled, as daily-loss accounting reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// Venue symbol.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Quantity filled.
    pub quantity: Decimal,
    /// Average fill price.
    pub price: Decimal,
    /// The fee the venue reported for it, in the quote currency (zero when none was).
    pub fee: Decimal,
    /// When the fill was recorded (unix ms).
    pub at_ms: i64,
}

/// A strategy's on/off state (`POST /v1/strategies/{name}/disable`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StrategySwitch {
    /// The alert's `strategy`.
    pub name: String,
    /// `false`: its opening orders are rejected `strategy_disabled`.
    pub enabled: bool,
    /// When it last changed (unix ms).
    pub changed_at_ms: i64,
}

/// One event in the notification outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its position (increasing).
    pub seq: i64,
    /// The event.
    pub event: NotifyEvent,
}

/// What became of one event at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// `sent` or `failed` (given up after its attempts, or refused for good).
    pub outcome: String,
    /// Requests made.
    pub attempts: u32,
    /// The last error (never a URL or token).
    pub error: Option<String>,
}

/// One position as the journal's fills make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionRecord {
    /// Account.
    pub account: String,
    /// The venue (its name) whose fills made it.
    pub venue: String,
    /// Venue symbol.
    pub symbol: String,
    /// Signed quantity.
    pub position: Decimal,
}

/// One reading of a venue's position by reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenuePosition {
    /// Account.
    pub account: String,
    /// The venue (`binance`, ...).
    pub venue: String,
    /// Venue symbol.
    pub symbol: String,
    /// What the venue said; `None` when it cannot report positions (paper, OMS without
    /// `positions_url`).
    pub position: Option<Decimal>,
    /// When it was read (unix ms).
    pub reconciled_at_ms: i64,
}

/// Placements kept by client order id: the book of a venue that lives inside the receiver (the
/// paper broker), so its `place` stays idempotent across restarts.
pub trait PlacementStore: Send + Sync + Debug {
    /// Stores `placement` for `client_order_id` unless one is stored already; returns the stored
    /// one either way.
    fn record_once(
        &self,
        client_order_id: &str,
        placement: Placement,
        now_ms: i64,
    ) -> JournalFuture<Placement>;

    /// The stored placement, if any.
    fn lookup(&self, client_order_id: &str) -> JournalFuture<Option<Placement>>;

    /// Replaces the stored placement of `client_order_id` (a resting order cancelled or filled).
    fn update(&self, client_order_id: &str, placement: Placement) -> JournalFuture<()>;
}

/// A [`PlacementStore`] that forgets at exit: for building a paper broker that never places
/// (`check-config`) and for tests.
#[derive(Debug, Default)]
pub struct MemoryPlacements {
    /// The first placement recorded per client order id.
    placements: Mutex<HashMap<String, Placement>>,
}

impl MemoryPlacements {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Placement>> {
        self.placements.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PlacementStore for MemoryPlacements {
    fn record_once(
        &self,
        client_order_id: &str,
        placement: Placement,
        _now_ms: i64,
    ) -> JournalFuture<Placement> {
        let stored = self
            .lock()
            .entry(client_order_id.to_owned())
            .or_insert(placement)
            .clone();
        Box::pin(async move { Ok(stored) })
    }

    fn lookup(&self, client_order_id: &str) -> JournalFuture<Option<Placement>> {
        let stored = self.lock().get(client_order_id).cloned();
        Box::pin(async move { Ok(stored) })
    }

    fn update(&self, client_order_id: &str, placement: Placement) -> JournalFuture<()> {
        self.lock().insert(client_order_id.to_owned(), placement);
        Box::pin(async { Ok(()) })
    }
}
