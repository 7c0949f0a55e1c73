//! The executor: turns an admitted message's legs into orders and places them, exactly once.
//!
//! - Orders for one (account, symbol) run one at a time, in submission order: every job takes its
//!   place in a per-key chain when it is submitted (synchronously), then waits for the job ahead.
//!   A multi-leg alert takes its place in every chain it touches at once, so it cannot deadlock.
//! - Inside its turn a job resolves closes from the journal's position, passes the risk gates,
//!   journals its orders (status `new`) and only then calls the broker, so a crash at any point
//!   leaves enough to resume with the same client order ids.
//! - Client order ids are derived from the message id and the leg index; transient broker errors
//!   are retried with the same id (bounded, exponential backoff, honouring `Retry-After`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alertgate_shared::Clock;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, Notify};

use crate::broker::{Broker, BrokerError, Placement};
use crate::config::ExecutorConfig;
use crate::journal::{
    Journal, JournalError, JournalFuture, OrderRecord, OrderState, Outcome, Settlement,
};
use crate::metrics::Metrics;
use crate::normalize::{Action, Leg};
use crate::order::{OrderRequest, Positive, Side};
use crate::risk::{Candidate, RiskGates};

/// Recorded as `reason` when a `close` found no position (outcome `filled`, no orders).
pub const NOTHING_TO_CLOSE: &str = "nothing_to_close";

/// Longest wait between two attempts, whatever a venue's `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// What a job works from.
#[derive(Debug, Clone)]
pub enum Work {
    /// A newly admitted message: resolve, gate, journal and place these legs.
    Legs(Vec<Leg>),
    /// A message interrupted after its orders were journaled: place those still `new`.
    Resume(Vec<OrderRecord>),
}

/// One message to execute.
#[derive(Debug, Clone)]
pub struct Job {
    /// The message id (the root of every client order id).
    pub message_id: String,
    /// The envelope's account.
    pub account: String,
    /// Legs or journaled orders.
    pub work: Work,
}

/// A message's final result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Final outcome.
    pub outcome: Outcome,
    /// Why (gate, venue error, `nothing_to_close`).
    pub reason: Option<String>,
    /// The orders, by leg.
    pub orders: Vec<OrderRecord>,
}

/// Resolves when the job has finished (its result is journaled).
pub type Completion = oneshot::Receiver<Result<Execution, JournalError>>;

type ChainKey = (String, String);

/// Places orders; cheap to clone.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    journal: Arc<dyn Journal>,
    broker: Arc<dyn Broker>,
    risk: RiskGates,
    clock: Arc<dyn Clock>,
    config: ExecutorConfig,
    metrics: Metrics,
    /// Per (account, symbol): the generation of the last job in line and the signal it gives
    /// when done.
    chains: Mutex<HashMap<ChainKey, (u64, oneshot::Receiver<()>)>>,
    /// Positions per (account, symbol), loaded from the journal on first use. Only jobs holding
    /// the key's turn read or change an entry, so it matches the journal between jobs.
    positions: Mutex<HashMap<ChainKey, Decimal>>,
    /// Generation counter for chain entries.
    next_gen: AtomicU64,
    /// Jobs submitted and not finished.
    running: AtomicUsize,
    /// Ids of the messages those jobs execute.
    active: Mutex<HashSet<String>>,
    /// Woken when `running` drops to zero.
    idle: Notify,
}

/// The client order id of leg `leg` of message `message_id`: `{message id}-{leg}`, or, for ids
/// longer than 32 characters (not made by alertgate's relay), `ag-` + a hash, so every venue's
/// length limit is met (Binance: 36).
pub fn client_order_id(message_id: &str, leg: u32) -> String {
    if message_id.len() <= 32 {
        format!("{message_id}-{leg}")
    } else {
        let digest = Sha256::digest(message_id.as_bytes());
        format!("ag-{}-{leg}", hex::encode(&digest[..12]))
    }
}

fn signed(side: Side, quantity: Decimal) -> Decimal {
    match side {
        Side::Buy => quantity,
        Side::Sell => -quantity,
    }
}

enum Plan {
    Orders(Vec<OrderRecord>),
    Final(Outcome, Option<String>),
}

impl Executor {
    /// An executor placing through `broker`, recording in `journal`.
    pub fn new(
        journal: Arc<dyn Journal>,
        broker: Arc<dyn Broker>,
        risk: RiskGates,
        clock: Arc<dyn Clock>,
        config: ExecutorConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                journal,
                broker,
                risk,
                clock,
                config,
                metrics,
                chains: Mutex::new(HashMap::new()),
                positions: Mutex::new(HashMap::new()),
                next_gen: AtomicU64::new(0),
                running: AtomicUsize::new(0),
                active: Mutex::new(HashSet::new()),
                idle: Notify::new(),
            }),
        }
    }

    /// The broker's name (`paper`, `binance`, ...).
    pub fn venue(&self) -> &'static str {
        self.inner.broker.name()
    }

    /// Queues `job` behind earlier jobs for the same (account, symbol) keys and runs it in the
    /// background; the returned receiver resolves when it is done. Dropping the receiver does not
    /// stop the job.
    pub fn submit(&self, job: Job) -> Completion {
        let keys: BTreeSet<ChainKey> = match &job.work {
            Work::Legs(legs) => legs
                .iter()
                .map(|l| (job.account.clone(), l.symbol.clone()))
                .collect(),
            Work::Resume(orders) => orders
                .iter()
                .map(|o| (o.account.clone(), o.symbol.clone()))
                .collect(),
        };
        let generation = self.inner.next_gen.fetch_add(1, Ordering::Relaxed);
        let mut waits = Vec::new();
        let mut releases = Vec::new();
        {
            let mut chains = self.inner.lock_chains();
            for key in keys {
                let (tx, rx) = oneshot::channel::<()>();
                if let Some((_, previous)) = chains.insert(key.clone(), (generation, rx)) {
                    waits.push(previous);
                }
                releases.push((key, tx));
            }
        }
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        self.inner.lock_active().insert(job.message_id.clone());
        let (done, completion) = oneshot::channel();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            for previous in waits {
                // Resolves (with an error) when the job ahead drops its sender: done or gone.
                let _ = previous.await;
            }
            let message_id = job.message_id.clone();
            let mut turn = Some(Turn {
                generation,
                releases,
            });
            let result = inner.run(job, &mut turn).await;
            if let Some(turn) = turn.take() {
                inner.release(turn);
            }
            if let Err(e) = &result {
                tracing::error!(message_id, error = %e, "execution interrupted; it resumes at the next start");
            }
            let _ = done.send(result);
            inner.lock_active().remove(&message_id);
            if inner.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                inner.idle.notify_waiters();
            }
        });
        completion
    }

    /// `true` while a job for this message is queued or running.
    pub fn is_active(&self, message_id: &str) -> bool {
        self.inner.lock_active().contains(message_id)
    }

    /// Waits until no job is running, or `timeout` passes; `true` when idle.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.idle.notified();
                if self.inner.running.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// A job's place in the chains of its (account, symbol) keys.
#[derive(Debug)]
struct Turn {
    /// Tells whether the chain entry is still this job's.
    generation: u64,
    /// Dropping a sender lets the next job in that chain go.
    releases: Vec<(ChainKey, oneshot::Sender<()>)>,
}

impl Inner {
    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets the next jobs in this job's chains go.
    fn release(&self, turn: Turn) {
        let mut chains = self.lock_chains();
        for (key, tx) in turn.releases {
            if chains.get(&key).is_some_and(|(g, _)| *g == turn.generation) {
                chains.remove(&key);
            }
            drop(tx);
        }
    }

    fn lock_chains(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ChainKey, (u64, oneshot::Receiver<()>)>> {
        self.chains.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(&self, job: Job, turn: &mut Option<Turn>) -> Result<Execution, JournalError> {
        match job.work {
            Work::Resume(orders) => self.place_all(&job.message_id, orders, None, turn).await,
            Work::Legs(legs) => match self.plan(&job.message_id, &job.account, &legs).await? {
                Plan::Orders(orders) => {
                    let planned = self.journal.plan(orders.clone());
                    let planned = if self.broker.shares_journal() {
                        // Queued ahead of the broker's own record: durable no later than it.
                        Some(planned)
                    } else {
                        // A real venue: the orders must be durable before it hears of them.
                        planned.await?;
                        None
                    };
                    self.place_all(&job.message_id, orders, planned, turn).await
                }
                Plan::Final(outcome, reason) => {
                    let (orders, settlements) = (Vec::new(), Vec::new());
                    self.finish(&job.message_id, outcome, reason, orders, settlements, turn)
                        .await
                }
            },
        }
    }

    /// The position of (account, symbol), from the cache or the journal.
    async fn position(&self, account: &str, symbol: &str) -> Result<Decimal, JournalError> {
        let key = (account.to_owned(), symbol.to_owned());
        if let Some(p) = self.lock_positions().get(&key) {
            return Ok(*p);
        }
        let p = self.journal.position(account, symbol).await?;
        self.lock_positions().insert(key, p);
        Ok(p)
    }

    fn lock_positions(&self) -> std::sync::MutexGuard<'_, HashMap<ChainKey, Decimal>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn plan(
        &self,
        message_id: &str,
        account: &str,
        legs: &[Leg],
    ) -> Result<Plan, JournalError> {
        let now = self.clock.now_unix_ms();
        if !self.risk.is_seeded(account) {
            let count = self.journal.orders_since(account, now - 60_000).await?;
            self.risk.seed(account, count);
        }
        let mut positions: HashMap<&str, Decimal> = HashMap::new();
        let mut orders = Vec::with_capacity(legs.len());
        let mut opening = Vec::with_capacity(legs.len());
        for (i, leg) in legs.iter().enumerate() {
            let position = match positions.get(leg.symbol.as_str()) {
                Some(p) => *p,
                None => self.position(account, &leg.symbol).await?,
            };
            let wanted = leg.quantity.map(Positive::get);
            let (side, quantity, opens) = match leg.action {
                Action::Buy | Action::Sell => {
                    let side = if leg.action == Action::Buy {
                        Side::Buy
                    } else {
                        Side::Sell
                    };
                    let Some(q) = wanted else {
                        let reason = format!("legs[{i}].quantity: required for buy and sell");
                        return Ok(Plan::Final(Outcome::Invalid, Some(reason)));
                    };
                    (side, q, true)
                }
                Action::Close | Action::CloseLong | Action::CloseShort => {
                    let side = if position > Decimal::ZERO {
                        Side::Sell
                    } else {
                        Side::Buy
                    };
                    let applies = match leg.action {
                        Action::CloseLong => position > Decimal::ZERO,
                        Action::CloseShort => position < Decimal::ZERO,
                        _ => !position.is_zero(),
                    };
                    if !applies {
                        positions.insert(&leg.symbol, position);
                        continue;
                    }
                    let held = position.abs();
                    (side, wanted.map_or(held, |w| w.min(held)), false)
                }
            };
            let after = position + signed(side, quantity);
            positions.insert(&leg.symbol, after);
            let leg_index = u32::try_from(i).unwrap_or(u32::MAX);
            let price = leg
                .limit_price
                .or(leg.reference_price)
                .or(leg.stop_price)
                .map(Positive::get);
            opening.push((i, price, opens, after));
            orders.push(OrderRecord {
                client_order_id: client_order_id(message_id, leg_index),
                message_id: message_id.to_owned(),
                leg: leg_index,
                account: account.to_owned(),
                symbol: leg.symbol.clone(),
                side,
                quantity,
                order_type: leg.order_type,
                limit_price: leg.limit_price.map(Positive::get),
                stop_price: leg.stop_price.map(Positive::get),
                tif: leg.tif,
                reference_price: leg.reference_price.map(Positive::get),
                status: OrderState::New,
                venue: self.broker.name().to_owned(),
                venue_order_id: None,
                filled_quantity: Decimal::ZERO,
                average_price: None,
                error: None,
                created_at_ms: now,
                updated_at_ms: now,
            });
        }
        if orders.is_empty() {
            return Ok(Plan::Final(
                Outcome::Filled,
                Some(NOTHING_TO_CLOSE.to_owned()),
            ));
        }
        let candidates: Vec<Candidate<'_>> = orders
            .iter()
            .zip(&opening)
            .map(|(o, (i, price, opens, after))| Candidate {
                symbol: &o.symbol,
                tv_symbol: &legs[*i].tv_symbol,
                quantity: o.quantity,
                price: *price,
                opening: *opens,
                position_after: *after,
            })
            .collect();
        if let Err(rejection) = self.risk.admit(account, &candidates) {
            tracing::info!(message_id, account, gate = %rejection.gate, detail = rejection.detail, "rejected by risk gate");
            return Ok(Plan::Final(
                Outcome::Rejected,
                Some(rejection.gate.as_str().to_owned()),
            ));
        }
        Ok(Plan::Orders(orders))
    }

    /// Places every order still `new`, in leg order, then records all answers and the outcome
    /// in one write. Answers are not made durable one by one: after a crash the orders are still
    /// `new` in the journal and are placed again with the same ids, which the broker answers with
    /// the first placement.
    async fn place_all(
        &self,
        message_id: &str,
        mut orders: Vec<OrderRecord>,
        mut planned: Option<JournalFuture<()>>,
        turn: &mut Option<Turn>,
    ) -> Result<Execution, JournalError> {
        let mut settlements = Vec::new();
        let mut failure = None;
        for order in orders.iter_mut() {
            if order.status != OrderState::New {
                continue;
            }
            if failure.is_some() {
                order.status = OrderState::Skipped;
                continue;
            }
            let started = Instant::now();
            let result = match to_request(order) {
                Ok(request) => self.place_with_retries(&request).await,
                Err(e) => Err(e),
            };
            self.metrics.place_duration(started.elapsed());
            if let Some(planned) = planned.take() {
                // The paper broker's record was queued after the plan: both are durable now.
                planned.await?;
            }
            let now = self.clock.now_unix_ms();
            let settlement = match result {
                Ok(placement) => settlement(order, &placement, now),
                Err(error) => {
                    tracing::warn!(message_id, client_order_id = order.client_order_id, error = %error, "order failed");
                    let settlement = Settlement {
                        client_order_id: order.client_order_id.clone(),
                        status: OrderState::Failed,
                        venue_order_id: None,
                        filled_quantity: Decimal::ZERO,
                        average_price: None,
                        error: Some(error.to_string()),
                        position_delta: Decimal::ZERO,
                        now_ms: now,
                    };
                    failure = Some(error);
                    settlement
                }
            };
            order.status = settlement.status;
            order.venue_order_id.clone_from(&settlement.venue_order_id);
            order.filled_quantity = settlement.filled_quantity;
            order.average_price = settlement.average_price;
            order.error.clone_from(&settlement.error);
            order.updated_at_ms = now;
            self.metrics.order(&order.venue, order.status.as_str());
            settlements.push(settlement);
        }
        let (outcome, reason) = if let Some(error) = failure {
            let outcome = match error {
                BrokerError::Invalid { .. } => Outcome::Invalid,
                _ => Outcome::Failed,
            };
            (outcome, Some(error.to_string()))
        } else if let Some(c) = orders.iter().find(|o| o.status == OrderState::Cancelled) {
            let reason = format!("order {} was cancelled by the venue", c.client_order_id);
            (Outcome::Failed, Some(reason))
        } else if orders.iter().any(|o| o.status == OrderState::Failed) {
            (Outcome::Failed, orders.iter().find_map(|o| o.error.clone()))
        } else if orders.iter().all(|o| o.status == OrderState::Filled) {
            (Outcome::Filled, None)
        } else {
            (Outcome::Placed, None)
        };
        if let Some(planned) = planned {
            planned.await?;
        }
        self.finish(message_id, outcome, reason, orders, settlements, turn)
            .await
    }

    async fn place_with_retries(&self, request: &OrderRequest) -> Result<Placement, BrokerError> {
        let mut backoff = Duration::from_millis(self.config.retry_base_ms);
        let max_backoff = Duration::from_millis(self.config.retry_max_ms);
        let mut attempt = 1;
        loop {
            match self.broker.place(request).await {
                Ok(p) => return Ok(p),
                Err(BrokerError::Transient {
                    message,
                    retry_after,
                }) => {
                    if attempt >= self.config.max_attempts {
                        return Err(BrokerError::Rejected {
                            message: format!(
                                "venue unavailable after {attempt} attempts: {message} (if the \
                                 venue may have received the order, check it there before \
                                 sending the alert again)"
                            ),
                        });
                    }
                    let wait = retry_after
                        .map_or(backoff, |r| r.max(backoff))
                        .min(MAX_RETRY_WAIT);
                    tracing::warn!(
                        client_order_id = request.client_order_id,
                        attempt,
                        ?wait,
                        message,
                        "transient broker error; retrying with the same id"
                    );
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(max_backoff);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues the completion write, lets the next jobs of the same keys go (the single writer
    /// keeps their writes behind this one), then waits for it to be durable.
    async fn finish(
        &self,
        message_id: &str,
        outcome: Outcome,
        reason: Option<String>,
        orders: Vec<OrderRecord>,
        settlements: Vec<Settlement>,
        turn: &mut Option<Turn>,
    ) -> Result<Execution, JournalError> {
        let deltas: Vec<(ChainKey, Decimal)> = settlements
            .iter()
            .filter(|s| !s.position_delta.is_zero())
            .filter_map(|s| {
                let o = orders
                    .iter()
                    .find(|o| o.client_order_id == s.client_order_id)?;
                Some(((o.account.clone(), o.symbol.clone()), s.position_delta))
            })
            .collect();
        let now = self.clock.now_unix_ms();
        let written = self
            .journal
            .complete(settlements, message_id, outcome, reason.clone(), now);
        {
            // The fills happened at the venue: the next job must see them, even before the
            // journal has them on disk.
            let mut positions = self.lock_positions();
            for (key, delta) in &deltas {
                if let Some(p) = positions.get_mut(key) {
                    *p += *delta;
                }
            }
        }
        if let Some(turn) = turn.take() {
            self.release(turn);
        }
        if let Err(e) = written.await {
            // The journal is behind the cache now: reload these keys from it next time (this
            // message stays `pending` and its completion is written again at the next start).
            let mut positions = self.lock_positions();
            for (key, _) in &deltas {
                positions.remove(key);
            }
            return Err(e);
        }
        self.metrics.message(outcome.as_str());
        tracing::info!(
            message_id,
            outcome = outcome.as_str(),
            reason,
            "message executed"
        );
        Ok(Execution {
            outcome,
            reason,
            orders,
        })
    }
}

fn to_request(o: &OrderRecord) -> Result<OrderRequest, BrokerError> {
    let positive = |d: Decimal, what: &str| {
        Positive::new(d).map_err(|_| BrokerError::Invalid {
            message: format!("{what}: must be positive"),
        })
    };
    let optional = |d: Option<Decimal>, what: &str| d.map(|d| positive(d, what)).transpose();
    Ok(OrderRequest {
        client_order_id: o.client_order_id.clone(),
        account: o.account.clone(),
        symbol: o.symbol.clone(),
        side: o.side,
        quantity: positive(o.quantity, "quantity")?,
        order_type: o.order_type,
        limit_price: optional(o.limit_price, "limit_price")?,
        stop_price: optional(o.stop_price, "stop_price")?,
        tif: o.tif,
        reference_price: optional(o.reference_price, "price")?,
    })
}

fn settlement(order: &OrderRecord, p: &Placement, now_ms: i64) -> Settlement {
    Settlement {
        client_order_id: order.client_order_id.clone(),
        status: OrderState::from_status(p.status),
        venue_order_id: p.venue_order_id.clone(),
        filled_quantity: p.filled_quantity,
        average_price: p.average_price,
        error: None,
        position_delta: signed(order.side, p.filled_quantity),
        now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_ids_are_deterministic_and_fit_every_venue() {
        let id = "msg_01JD1W8M6ZQ4S5V7X9Y2A3B4C5";
        assert_eq!(client_order_id(id, 0), format!("{id}-0"));
        assert_eq!(client_order_id(id, 1), client_order_id(id, 1));
        let long = client_order_id(&"x".repeat(100), 3);
        assert!(long.len() <= 36, "{long}");
        assert_eq!(long, client_order_id(&"x".repeat(100), 3));
    }

    use std::sync::Mutex as StdMutex;

    use alertgate_shared::SystemClock;
    use bytes::Bytes;

    use crate::broker::{BrokerFuture, OrderStatus};
    use crate::config::RiskConfig;
    use crate::journal::{Admission, NewMessage, SqliteJournal};
    use crate::normalize::Action;
    use crate::order::{OrderType, TimeInForce};

    /// Answers after a delay that shrinks with each call (so later orders would overtake earlier
    /// ones if nothing kept them in line), failing transiently first when asked.
    #[derive(Debug, Default)]
    struct Recorder {
        seen: StdMutex<Vec<String>>,
        calls: AtomicU64,
        transient_failures: StdMutex<u32>,
    }

    impl Broker for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }

        fn place<'a>(
            &'a self,
            order: &'a OrderRequest,
        ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
            Box::pin(async move {
                {
                    let mut failures = self.transient_failures.lock().unwrap();
                    if *failures > 0 {
                        *failures -= 1;
                        self.seen
                            .lock()
                            .unwrap()
                            .push(format!("retry {}", order.client_order_id));
                        return Err(BrokerError::Transient {
                            message: "busy".into(),
                            retry_after: Some(Duration::from_millis(5)),
                        });
                    }
                }
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40u64.saturating_sub(n * 10))).await;
                self.seen
                    .lock()
                    .unwrap()
                    .push(order.client_order_id.clone());
                Ok(Placement {
                    venue_order_id: Some(format!("v-{}", order.client_order_id)),
                    status: OrderStatus::Filled,
                    filled_quantity: order.quantity.get(),
                    average_price: order.reference_price.map(Positive::get),
                })
            })
        }
    }

    fn leg(symbol: &str) -> Leg {
        Leg {
            tv_symbol: format!("X:{symbol}"),
            symbol: symbol.into(),
            action: Action::Buy,
            quantity: Some("1".parse().unwrap()),
            order_type: OrderType::Market,
            limit_price: None,
            stop_price: None,
            tif: TimeInForce::Gtc,
            reference_price: Some("10".parse().unwrap()),
        }
    }

    async fn setup(broker: Arc<Recorder>) -> (tempfile::TempDir, Arc<SqliteJournal>, Executor) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(
            SqliteJournal::open(&dir.path().join("j.db"), Duration::from_secs(1)).unwrap(),
        );
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let config = ExecutorConfig {
            retry_base_ms: 1,
            ..ExecutorConfig::default()
        };
        let executor = Executor::new(
            journal.clone(),
            broker,
            RiskGates::new(RiskConfig::default(), clock.clone()),
            clock,
            config,
            Metrics::new(),
        );
        (dir, journal, executor)
    }

    async fn admit(journal: &SqliteJournal, id: &str) {
        let m = NewMessage {
            id: id.into(),
            account: Some("main".into()),
            idempotency_key: None,
            received_at_ms: Some(0),
            envelope: Bytes::from_static(b"{}"),
            outcome: Outcome::Pending,
            reason: None,
            now_ms: 0,
            dedupe_since_ms: 0,
        };
        assert!(matches!(journal.admit(m).await.unwrap(), Admission::New(_)));
    }

    #[tokio::test]
    async fn jobs_for_one_symbol_reach_the_broker_in_submission_order() {
        let broker = Arc::new(Recorder::default());
        let (_dir, journal, executor) = setup(broker.clone()).await;
        let mut completions = Vec::new();
        for i in 0..4 {
            let id = format!("msg_{i}");
            admit(&journal, &id).await;
            let job = Job {
                message_id: id,
                account: "main".into(),
                work: Work::Legs(vec![leg("AAA")]),
            };
            completions.push(executor.submit(job));
        }
        for c in completions {
            assert_eq!(c.await.unwrap().unwrap().outcome, Outcome::Filled);
        }
        let seen = broker.seen.lock().unwrap().clone();
        assert_eq!(seen, vec!["msg_0-0", "msg_1-0", "msg_2-0", "msg_3-0"]);
        assert_eq!(
            journal.position("main", "AAA").await.unwrap(),
            Decimal::from(4)
        );
    }

    #[tokio::test]
    async fn a_transient_error_is_retried_with_the_same_client_order_id() {
        let broker = Arc::new(Recorder::default());
        *broker.transient_failures.lock().unwrap() = 2;
        let (_dir, journal, executor) = setup(broker.clone()).await;
        admit(&journal, "msg_r").await;
        let job = Job {
            message_id: "msg_r".into(),
            account: "main".into(),
            work: Work::Legs(vec![leg("AAA")]),
        };
        let done = executor.submit(job).await.unwrap().unwrap();
        assert_eq!(done.outcome, Outcome::Filled);
        let seen = broker.seen.lock().unwrap().clone();
        assert_eq!(seen, vec!["retry msg_r-0", "retry msg_r-0", "msg_r-0"]);
    }

    #[tokio::test]
    async fn a_venue_that_stays_unavailable_fails_the_message_after_the_last_attempt() {
        let broker = Arc::new(Recorder::default());
        *broker.transient_failures.lock().unwrap() = 100;
        let (_dir, journal, executor) = setup(broker.clone()).await;
        admit(&journal, "msg_f").await;
        let job = Job {
            message_id: "msg_f".into(),
            account: "main".into(),
            work: Work::Legs(vec![leg("AAA")]),
        };
        let done = executor.submit(job).await.unwrap().unwrap();
        assert_eq!(done.outcome, Outcome::Failed);
        assert!(done.reason.unwrap().contains("after 5 attempts"));
        assert_eq!(broker.seen.lock().unwrap().len(), 5);
        assert_eq!(
            journal.message("msg_f").await.unwrap().unwrap().orders[0].status,
            OrderState::Failed
        );
    }

    fn sign(d: Decimal) -> Decimal {
        if d > Decimal::ZERO {
            Decimal::ONE
        } else if d < Decimal::ZERO {
            -Decimal::ONE
        } else {
            Decimal::ZERO
        }
    }

    fn action_leg(action: Action, quantity: Option<u32>) -> Leg {
        Leg {
            action,
            quantity: quantity.map(|q| Positive::new(Decimal::from(q)).unwrap()),
            ..leg("AAA")
        }
    }

    fn arb_step() -> impl proptest::strategy::Strategy<Value = (Action, Option<u32>)> {
        use proptest::prelude::*;
        prop_oneof![
            (1u32..5).prop_map(|q| (Action::Buy, Some(q))),
            (1u32..5).prop_map(|q| (Action::Sell, Some(q))),
            Just((Action::Close, None)),
            (1u32..5).prop_map(|q| (Action::Close, Some(q))),
            Just((Action::CloseLong, None)),
            Just((Action::CloseShort, None)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
        #[test]
        fn the_journaled_position_is_the_sum_of_fills_and_closes_never_flip_it(
            steps in proptest::collection::vec(arb_step(), 1..12)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let journal = Arc::new(SqliteJournal::open(&dir.path().join("j.db"), Duration::from_secs(1)).unwrap());
                let clock: Arc<dyn Clock> = Arc::new(SystemClock);
                let paper = Arc::new(crate::broker::paper::PaperBroker::new(journal.clone(), clock.clone(), Duration::ZERO));
                let executor = Executor::new(
                    journal.clone(),
                    paper,
                    RiskGates::new(RiskConfig::default(), clock.clone()),
                    clock,
                    ExecutorConfig::default(),
                    Metrics::new(),
                );
                let mut model = Decimal::ZERO;
                for (i, (action, quantity)) in steps.iter().enumerate() {
                    let id = format!("msg_{i}");
                    admit(&journal, &id).await;
                    let job = Job { message_id: id, account: "main".into(), work: Work::Legs(vec![action_leg(*action, *quantity)]) };
                    let done = executor.submit(job).await.unwrap().unwrap();
                    assert_eq!(done.outcome, Outcome::Filled);
                    let q = quantity.map(Decimal::from);
                    let before = model;
                    model = match action {
                        Action::Buy => model + q.unwrap(),
                        Action::Sell => model - q.unwrap(),
                        Action::Close => {
                            let take = q.map_or(model.abs(), |q| q.min(model.abs()));
                            model - sign(model) * take
                        }
                        Action::CloseLong if model > Decimal::ZERO => Decimal::ZERO,
                        Action::CloseShort if model < Decimal::ZERO => Decimal::ZERO,
                        Action::CloseLong | Action::CloseShort => model,
                    };
                    if action.is_close() {
                        assert!(model.is_zero() || sign(model) == sign(before), "a close never flips the position");
                    }
                    assert_eq!(journal.position("main", "AAA").await.unwrap(), model, "after step {i}: {action:?} {quantity:?}");
                }
            });
        }
    }
}
