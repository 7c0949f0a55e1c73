//! The executor: turns an admitted message's legs into orders and places them, exactly once.
//!
//! A job goes through these steps, each in its own file:
//!
//! 1. [`queue`]: on [`Executor::submit`] the job takes its place, synchronously, in the line of
//!    every (account, symbol) it touches, and waits for its [`queue::Turn`]. Orders for one
//!    (account, symbol) run one at a time in submission order; a multi-leg alert takes every
//!    place at once, so it cannot deadlock.
//! 2. Warm-up (here): the account's per-minute risk count is seeded from the journal after a
//!    restart, and the positions of the job's symbols are read: from the venue for target
//!    legs when it reports positions, else from [`positions`] (a cache in front of the
//!    journal); the equity and lot rules when a quantity is to be computed ([`sizing`]).
//! 3. [`plan`]: a pure function from legs and positions to order intents (`close` resolves
//!    against the position, a target places the difference), or `nothing_to_close`,
//!    `already_at_target`, or `invalid`.
//! 4. Risk gates (here, [`crate::risk`]), then the orders are journaled (status `new`) before
//!    the venue hears of them, so a crash at any point leaves enough to resume with the same
//!    client order ids ([`Work::Resume`]).
//! 5. [`place`]: each order goes to the broker, transient errors retried with the same id.
//! 6. [`record`]: answers and outcome are written at once; the turn is released there.
//!
//! Client order ids are derived from the message id and the leg index ([`client_order_id`];
//! the open of a reversal: [`client_order_id_part`]). [`Executor::settle`] settles an `unknown`
//! order for reconciliation, in the same queue. [`working`]: cancels, and the paper venue's
//! resting orders filled when a later alert's price crosses them (before step 3).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alertgate_shared::Clock;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, Notify};

use rust_decimal::Decimal;

use crate::broker::{Broker, BrokerError, LotRule};
use crate::config::ExecutorConfig;
use crate::controls::daily_loss;
use crate::journal::{
    EarlierPending, EventKind, Journal, JournalError, NotifyEvent, OrderRecord, Outcome,
};
use crate::metrics::Metrics;
use crate::normalize::{Action, Leg, Sizing};
use crate::risk::{Candidate, RiskGates, Standing};
use crate::routing::Venues;

mod claim;
pub mod place;
pub mod plan;
pub mod positions;
pub mod queue;
pub mod record;
mod settle;
pub mod sizing;
pub mod tally;
pub mod working;

pub use self::settle::Found;

use self::place::Placer;
use self::plan::{Plan, Request};
use self::positions::PositionCache;
use self::queue::{KeyedQueue, Turn};
use self::record::{Finished, Recorder};
use self::tally::Tally;

/// Recorded as `reason` when a `close` found no position (outcome `filled`, no orders).
pub const NOTHING_TO_CLOSE: &str = "nothing_to_close";
/// Recorded as `reason` when a target position is already held (outcome `filled`, no orders).
pub const ALREADY_AT_TARGET: &str = "already_at_target";

/// Recorded as `reason` of a still-`pending` answer when another receiver holds the message's
/// lease (it is executing it).
pub const EXECUTING_ELSEWHERE: &str = "executing_on_another_receiver";

/// What orders are queued by: (account, venue symbol).
pub type Key = (String, String);

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
    /// The alert's strategy (strategy switches); `None` when it names none or for a resume.
    pub strategy: Option<String>,
    /// The venue (by name) the message was routed to.
    pub venue: String,
    /// For a copy (`[accounts.NAME] copies`): the factor quantities are scaled by.
    pub scale: Option<Decimal>,
    /// Legs or journaled orders.
    pub work: Work,
    /// A resume (of a message read from the journal), not a first delivery: another job may
    /// have finished the message since it was read, so it is read again at the job's turn.
    pub resumed: bool,
}

impl Job {
    /// The (account, symbol) keys the job touches.
    pub fn keys(&self) -> BTreeSet<Key> {
        match &self.work {
            Work::Legs(legs) => legs
                .iter()
                .map(|l| (self.account.clone(), l.symbol.clone()))
                .collect(),
            Work::Resume(orders) => orders
                .iter()
                .map(|o| (o.account.clone(), o.symbol.clone()))
                .collect(),
        }
    }
}

/// Waits between attempts of a job whose journal failed mid-execution (it keeps its turn).
const JOURNAL_RETRY: alertgate_shared::retry::Backoff = alertgate_shared::retry::Backoff::new(
    std::time::Duration::from_millis(100),
    std::time::Duration::from_secs(5),
    std::time::Duration::ZERO,
);

/// Waits of a job that found an earlier `pending` message of its keys on a shared store, before
/// it looks again (it lets its turn go meanwhile).
const BEHIND_RETRY: alertgate_shared::retry::Backoff = alertgate_shared::retry::Backoff::new(
    std::time::Duration::from_millis(25),
    std::time::Duration::from_secs(1),
    std::time::Duration::ZERO,
);

/// What claiming and running a job came to.
enum Step {
    /// The job is done (or another receiver executes or finished its message).
    Finished(Execution),
    /// An earlier `pending` message shares a key: that one goes first.
    Behind(EarlierPending),
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

/// What a job's legs come to once planned and gated.
enum Prepared {
    /// Orders to journal and place.
    Orders(Vec<OrderRecord>),
    /// A final outcome reached without placing anything.
    Finished(Finished),
}

/// Resolves when the job has finished (its result is journaled).
pub type Completion = oneshot::Receiver<Result<Execution, JournalError>>;

/// A place in the executor's backlog ([`Executor::room`]); freed when dropped.
#[derive(Debug)]
pub struct Room {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Places orders; cheap to clone.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where messages, orders and positions are recorded.
    journal: Arc<dyn Journal>,
    /// The venues, by name.
    venues: Venues,
    /// The gates every order passes.
    risk: RiskGates,
    /// Order and record times.
    clock: Arc<dyn Clock>,
    /// Inline deadline, attempts and backoff.
    config: ExecutorConfig,
    /// Outcomes, order answers, placement time.
    metrics: Metrics,
    /// One job at a time per (account, symbol).
    queue: KeyedQueue<Key>,
    /// One admission or resume decision at a time per message id ([`Executor::message_turn`]).
    decisions: KeyedQueue<String>,
    /// This receiver's name in execution leases: its journal's [`Journal::writer`].
    holder: String,
    /// `messages_total`, once per message.
    tally: Tally,
    /// Positions in front of the journal.
    positions: PositionCache,
    /// Jobs submitted and not finished.
    running: AtomicUsize,
    /// Ids of the messages those jobs execute.
    active: Mutex<HashSet<String>>,
    /// Woken when `running` drops to zero.
    idle: Notify,
    /// Accounts whose daily-loss lock was announced today.
    lock_notices: crate::controls::LockNotices,
    /// Earlier `pending` messages that jobs wait for and that no receiver holds a lease on (the
    /// one executing them died or gave up): to be resumed now ([`Executor::resume_requests`]).
    resume_requests: Mutex<BTreeSet<String>>,
    /// Woken when `resume_requests` gains one.
    resume_requested: Notify,
    /// Unfinished deliveries' jobs at most: `executor.max_backlog` ([`Executor::room`]).
    backlog: Arc<tokio::sync::Semaphore>,
}

/// `true` when `{message_id}-...` fits every venue's client id rules: at most 32 characters
/// of `[A-Za-z0-9_-]` (Binance allows 36 of those).
fn plain_id(message_id: &str) -> bool {
    message_id.len() <= 32
        && message_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The client order id of leg `leg` of message `message_id`: `{message id}-{leg}`, or, for ids
/// longer than 32 characters or with other characters (not made by alertgate's relay; copies
/// to other accounts), `ag-` + a hash, so every venue's length limit and charset is met
/// (Binance: 36 of `[A-Za-z0-9_-]`).
pub fn client_order_id(message_id: &str, leg: u32) -> String {
    if plain_id(message_id) {
        format!("{message_id}-{leg}")
    } else {
        let digest = Sha256::digest(message_id.as_bytes());
        format!("ag-{}-{leg}", hex::encode(&digest[..12]))
    }
}

/// The client order id of the `part`-th extra order of leg `leg` (the open of a reversal):
/// `{message id}-{leg}o{part}`, hashed like [`client_order_id`] when that would pass 36
/// characters.
pub fn client_order_id_part(message_id: &str, leg: u32, part: usize) -> String {
    let plain = format!("{message_id}-{leg}o{part}");
    if plain_id(message_id) && plain.len() <= 36 {
        plain
    } else {
        let digest = Sha256::digest(message_id.as_bytes());
        format!("ag-{}-{leg}o{part}", hex::encode(&digest[..12]))
    }
}

impl Executor {
    /// An executor placing at `venues`, recording in `journal`.
    pub fn new(
        journal: Arc<dyn Journal>,
        venues: Venues,
        risk: RiskGates,
        clock: Arc<dyn Clock>,
        config: ExecutorConfig,
        metrics: Metrics,
    ) -> Self {
        let holder = journal.writer().to_owned();
        let tally = Tally::new(metrics.clone(), &holder);
        let backlog = Arc::new(tokio::sync::Semaphore::new(config.max_backlog.max(1)));
        Self {
            inner: Arc::new(Inner {
                journal,
                venues,
                risk,
                clock,
                config,
                metrics,
                queue: KeyedQueue::new(),
                decisions: KeyedQueue::new(),
                holder,
                tally,
                positions: PositionCache::default(),
                running: AtomicUsize::new(0),
                active: Mutex::new(HashSet::new()),
                idle: Notify::new(),
                lock_notices: crate::controls::LockNotices::default(),
                resume_requests: Mutex::new(BTreeSet::new()),
                resume_requested: Notify::new(),
                backlog,
            }),
        }
    }

    /// The risk gates (strategy switches live there).
    pub fn risk(&self) -> &RiskGates {
        &self.inner.risk
    }

    /// The venues orders go to.
    pub fn venues(&self) -> &Venues {
        &self.inner.venues
    }

    /// Room for one more delivery's job: waits while `executor.max_backlog` jobs taken with
    /// [`Executor::submit_in`] are unfinished, so deliveries answered before their execution
    /// (`Prefer: respond-async`, or past the inline deadline) cannot pile up in memory faster
    /// than the venues take them: the sender waits (and the relay keeps them in its spool).
    pub async fn room(&self) -> Room {
        Room {
            _permit: Arc::clone(&self.inner.backlog).acquire_owned().await.ok(),
        }
    }

    /// [`Executor::submit`], holding `room` until the job has finished.
    pub fn submit_in(&self, job: Job, room: Room) -> Completion {
        self.spawn_job(job, Some(room))
    }

    /// Queues `job` behind earlier jobs for the same (account, symbol) keys and runs it in the
    /// background; the returned receiver resolves when it is done. Dropping the receiver does not
    /// stop the job.
    pub fn submit(&self, job: Job) -> Completion {
        self.spawn_job(job, None)
    }

    fn spawn_job(&self, job: Job, room: Option<Room>) -> Completion {
        let ticket = self.inner.queue.enqueue(job.keys());
        self.inner.running.fetch_add(1, Ordering::SeqCst);
        self.inner.lock_active().insert(job.message_id.clone());
        let (done, completion) = oneshot::channel();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut turn = Some(ticket.turn().await);
            let message_id = job.message_id.clone();
            let mut job = job;
            let (mut attempt, mut behind) = (0, 0);
            let result = loop {
                match inner.claim_and_run(&mut job, &mut turn).await {
                    Ok(Step::Finished(execution)) => break Ok(execution),
                    // Another receiver journaled a message of these keys earlier and has not
                    // finished it (it may have died after answering): this job lets its turn
                    // go, so that message can run here too, and looks again.
                    Ok(Step::Behind(earlier)) => {
                        behind += 1;
                        if behind == 1 {
                            tracing::info!(
                                message_id,
                                earlier = earlier.message_id,
                                "waiting for an earlier pending message of the same (account, symbol)"
                            );
                        }
                        inner.request_resume_if_abandoned(&earlier);
                        tokio::time::sleep(BEHIND_RETRY.delay_now(behind, None)).await;
                        job.resumed = true;
                        turn = Some(inner.queue.enqueue(job.keys()).turn().await);
                    }
                    // The journal failed before the outcome was recorded (or while recording
                    // one with an order the venue does not have), so this job still has its
                    // (account, symbol) turn: it keeps it and tries again once the journal
                    // answers (reading the message again, as a resume does), so that no later
                    // message of the key reaches the venue before this one.
                    Err(e) if turn.is_some() => {
                        attempt += 1;
                        let wait = JOURNAL_RETRY.delay_now(attempt, None);
                        tracing::warn!(
                            message_id,
                            attempt,
                            error = %e,
                            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "the journal failed during the execution; retrying it, ahead of later messages of its (account, symbol)"
                        );
                        tokio::time::sleep(wait).await;
                        job.resumed = true;
                    }
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = &result {
                tracing::error!(message_id, error = %e, "execution interrupted; a redelivery or the resume sweep resumes it");
                // Another receiver may take a redelivery of it at once.
                inner.release_lease(&message_id).await;
            }
            let _ = done.send(result);
            drop(room);
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

    /// The turn to decide about message `message_id`: admitting it and submitting its job, or
    /// resuming it. Held from before the journal is asked until the job is submitted, so a
    /// concurrent delivery of the same id in this receiver sees the job ([`Executor::is_active`])
    /// and never resumes a message a first delivery is about to submit.
    pub async fn message_turn(&self, message_id: &str) -> Turn<String> {
        self.inner
            .decisions
            .enqueue([message_id.to_owned()])
            .turn()
            .await
    }

    /// Whether message `message_id`, journaled `pending`, is to be resumed here now (call it
    /// holding its [`Executor::message_turn`]): no job of this receiver executes it, and no
    /// other receiver holds a running lease on it. The lease is taken for this receiver, so
    /// a receiver asking next sees it held; the job's claim keeps it.
    pub async fn resumable(&self, message_id: &str) -> Result<bool, JournalError> {
        if self.is_active(message_id) {
            return Ok(false);
        }
        self.inner.take_lease(message_id).await
    }

    /// Until when (unix ms) a receiver admitting a message at `now_ms` leases it
    /// (`executor.lease_seconds`).
    pub fn lease_until(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.inner.lease_ms())
    }

    /// Waits until jobs ask for earlier `pending` messages to be resumed (messages of their keys
    /// that no receiver holds a lease on), and returns their ids.
    pub async fn resume_requests(&self) -> Vec<String> {
        loop {
            let notified = self.inner.resume_requested.notified();
            let ids: Vec<String> = std::mem::take(&mut *self.inner.lock_requests())
                .into_iter()
                .collect();
            if !ids.is_empty() {
                return ids;
            }
            notified.await;
        }
    }

    /// `messages_total`, counted once per message.
    pub fn tally(&self) -> &Tally {
        &self.inner.tally
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

impl Inner {
    fn lock_active(&self) -> MutexGuard<'_, HashSet<String>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_requests(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.resume_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for `earlier` to be resumed when no job of this receiver executes it and no
    /// receiver's lease on it is running: whoever executed it is gone.
    fn request_resume_if_abandoned(&self, earlier: &EarlierPending) {
        let now = self.clock.now_unix_ms();
        let leased = earlier
            .lease
            .as_ref()
            .is_some_and(|(_, until)| *until > now);
        if leased || self.lock_active().contains(&earlier.message_id) {
            return;
        }
        if self.lock_requests().insert(earlier.message_id.clone()) {
            self.resume_requested.notify_one();
        }
    }

    /// The broker of the venue named `venue`; a venue no longer configured (renamed or
    /// removed since its orders were journaled) is an error for the order's outcome.
    fn broker(&self, venue: &str) -> Result<&dyn Broker, BrokerError> {
        self.venues
            .get(venue)
            .map(|v| v.broker.as_ref())
            .ok_or_else(|| BrokerError::Rejected {
                message: format!(
                    "venue {venue:?} is not configured (venues: {})",
                    self.venues.names().join(", ")
                ),
            })
    }

    fn placer<'a>(&'a self, broker: &'a dyn Broker) -> Placer<'a> {
        Placer {
            broker,
            config: &self.config,
            metrics: &self.metrics,
            clock: self.clock.as_ref(),
        }
    }

    /// The placer of the venue named `venue`.
    fn placer_at(&self, venue: &str) -> Result<Placer<'_>, BrokerError> {
        Ok(self.placer(self.broker(venue)?))
    }

    fn recorder(&self) -> Recorder<'_> {
        Recorder {
            journal: self.journal.as_ref(),
            positions: &self.positions,
            tally: &self.tally,
            clock: self.clock.as_ref(),
        }
    }

    /// Runs one job holding its turn: every step after the queue.
    /// Across receivers sharing the store: the same key's jobs one at a time, and this message
    /// executed by the one receiver holding its lease. `turn` is taken when the outcome is
    /// recorded ([`Recorder::record`]); it is still there when the journal failed before that.
    async fn claim_and_run(
        &self,
        job: &mut Job,
        turn: &mut Option<Turn<Key>>,
    ) -> Result<Step, JournalError> {
        match self.claim(job).await? {
            claim::Claimed::Run(claim) => {
                let result = self.run(job, turn).await;
                drop(claim);
                result.map(Step::Finished)
            }
            claim::Claimed::Elsewhere => {
                // Another receiver executes it: this one's turn is of no use to it.
                turn.take();
                Ok(Step::Finished(Execution {
                    outcome: Outcome::Pending,
                    reason: Some(EXECUTING_ELSEWHERE.to_owned()),
                    orders: Vec::new(),
                }))
            }
            claim::Claimed::Done(execution) => {
                turn.take();
                Ok(Step::Finished(execution))
            }
            claim::Claimed::Behind(earlier) => {
                turn.take();
                Ok(Step::Behind(earlier))
            }
        }
    }

    async fn run(
        &self,
        job: &Job,
        turn: &mut Option<Turn<Key>>,
    ) -> Result<Execution, JournalError> {
        let broker = match self.broker(&job.venue) {
            Ok(broker) => broker,
            Err(e) => {
                let finished = Finished::without_orders(Outcome::Failed, Some(e.to_string()));
                return self
                    .recorder()
                    .record(&job.message_id, finished, turn)
                    .await;
            }
        };
        let (orders, planned) = match &job.work {
            Work::Resume(orders) => (orders.clone(), None),
            Work::Legs(legs)
                if legs
                    .iter()
                    .any(|l| matches!(l.action, Action::Cancel | Action::Modify)) =>
            {
                let finished = if legs.iter().all(|l| l.action == Action::Cancel) {
                    self.cancel(&job.message_id, &job.account, &job.venue, legs)
                        .await?
                } else if legs.iter().all(|l| l.action == Action::Modify) {
                    self.modify(&job.message_id, &job.account, &job.venue, legs)
                        .await?
                } else {
                    Finished::without_orders(
                        Outcome::Invalid,
                        Some(
                            "action: a cancel or modify cannot share an alert with orders; send it on its own"
                                .into(),
                        ),
                    )
                };
                return self
                    .recorder()
                    .record(&job.message_id, finished, turn)
                    .await;
            }
            Work::Legs(legs) => match self.prepare(job, broker, legs).await? {
                Prepared::Orders(orders) => {
                    let planned = self.journal.plan(orders.clone());
                    if broker.shares_journal() {
                        // Queued ahead of the broker's own record: durable no later than it.
                        (orders, Some(planned))
                    } else {
                        // A real venue: the orders must be durable before it hears of them.
                        planned.await?;
                        (orders, None)
                    }
                }
                Prepared::Finished(finished) => {
                    return self
                        .recorder()
                        .record(&job.message_id, finished, turn)
                        .await
                }
            },
        };
        let placed = self
            .placer(broker)
            .place_all(&job.message_id, orders, planned)
            .await?;
        let finished = Finished {
            outcome: placed.outcome,
            reason: placed.reason,
            orders: placed.orders,
            settlements: placed.settlements,
        };
        self.recorder()
            .record(&job.message_id, finished, turn)
            .await
    }

    /// Warm-up, plan and risk gates: the orders to journal and place, or the final outcome
    /// reached without placing anything.
    async fn prepare(
        &self,
        job: &Job,
        broker: &dyn Broker,
        legs: &[Leg],
    ) -> Result<Prepared, JournalError> {
        let (message_id, account, strategy) = (
            job.message_id.as_str(),
            job.account.as_str(),
            job.strategy.as_deref(),
        );
        let venue = job.venue.as_str();
        // Resting paper orders this alert's price crosses fill first, oldest first.
        self.cross(venue, broker, account, legs).await?;
        let scaled;
        let legs = match job.scale {
            Some(scale) => {
                scaled = sizing::scale_legs(legs, scale);
                &scaled[..]
            }
            None => legs,
        };
        let now = self.clock.now_unix_ms();
        if !self.risk.is_seeded(account) {
            let count = self.journal.orders_since(account, now - 60_000).await?;
            self.risk.seed(account, count);
        }
        let state = match self
            .venue_state(venue, broker, account, legs, job.scale.is_some())
            .await?
        {
            Ok(state) => state,
            Err(reason) => {
                tracing::warn!(
                    message_id,
                    account,
                    reason,
                    "cannot read what the plan needs from the venue"
                );
                return Ok(Prepared::Finished(Finished::without_orders(
                    Outcome::Failed,
                    Some(reason),
                )));
            }
        };
        let request = Request {
            message_id,
            account,
            venue,
            now_ms: now,
            legs,
            equity: state.equity,
            lots: &state.lots,
            position_source: state.position_source,
            exits: broker.exits(),
            scale: job.scale,
        };
        let intents = match plan::plan(&request, &state.positions) {
            Plan::Orders(intents) => intents,
            Plan::NothingToClose => {
                let reason = Some(NOTHING_TO_CLOSE.to_owned());
                return Ok(Prepared::Finished(Finished::without_orders(
                    Outcome::Filled,
                    reason,
                )));
            }
            Plan::AlreadyAtTarget => {
                let reason = Some(ALREADY_AT_TARGET.to_owned());
                return Ok(Prepared::Finished(Finished::without_orders(
                    Outcome::Filled,
                    reason,
                )));
            }
            Plan::Invalid(reason) => {
                return Ok(Prepared::Finished(Finished::without_orders(
                    Outcome::Invalid,
                    Some(reason),
                )));
            }
        };
        let candidates: Vec<Candidate<'_>> = intents.iter().map(plan::Intent::candidate).collect();
        let opening = candidates.iter().any(|c| c.opening);
        let realized_today = if opening && self.risk.needs_daily_pnl(account, venue) {
            let fills = self.journal.fills(account).await?;
            Some(daily_loss::realized_since(
                &fills,
                daily_loss::utc_day_start(now),
            ))
        } else {
            None
        };
        let standing = Standing {
            strategy,
            realized_today,
        };
        if let Err(rejection) = self.risk.admit(account, venue, &candidates, &standing) {
            if rejection.gate == crate::risk::Gate::MaxDailyLoss
                && self
                    .lock_notices
                    .first_today(account, daily_loss::utc_day_start(now))
            {
                let mut event = NotifyEvent::standalone(EventKind::DailyLossLock, now, account);
                event.account = Some(account.to_owned());
                event.reason = Some(rejection.detail.clone());
                if let Err(e) = self.journal.enqueue_event(event).await {
                    tracing::warn!(error = %e, "cannot queue the daily_loss_lock notification");
                }
            }
            tracing::info!(message_id, account, gate = %rejection.gate, detail = rejection.detail, "rejected by risk gate");
            let reason = Some(rejection.gate.as_str().to_owned());
            return Ok(Prepared::Finished(Finished::without_orders(
                Outcome::Rejected,
                reason,
            )));
        }
        Ok(Prepared::Orders(
            intents.into_iter().map(|i| i.order).collect(),
        ))
    }
}

/// What the plan needs to know beyond the legs.
struct VenueState {
    /// Signed positions per symbol.
    positions: HashMap<String, Decimal>,
    /// `venue` or `journal`: where `positions` came from.
    position_source: &'static str,
    /// The account's equity, read only when a leg sizes by percent of equity.
    equity: Option<Decimal>,
    /// Lot rules of the symbols whose quantity is computed.
    lots: HashMap<String, LotRule>,
}

impl Inner {
    /// Positions, equity and lot rules for `legs`: target legs start from the venue's position
    /// where the venue reports one (else the journal's), other legs from the journal. The inner
    /// `Err` is a venue error (outcome `failed`).
    async fn venue_state(
        &self,
        venue: &str,
        broker: &dyn Broker,
        account: &str,
        legs: &[Leg],
        scaled: bool,
    ) -> Result<Result<VenueState, String>, JournalError> {
        let has_target = legs.iter().any(|l| l.action == Action::Target);
        let from_venue = has_target && broker.reports_positions();
        let mut symbols: Vec<String> = legs.iter().map(|l| l.symbol.clone()).collect();
        symbols.sort();
        symbols.dedup();
        let mut positions = HashMap::new();
        if from_venue {
            match broker.positions(account, &symbols).await {
                Ok(Some(held)) => positions.extend(held),
                Ok(None) => {}
                Err(e) => return Ok(Err(format!("cannot read the position at the venue: {e}"))),
            }
        }
        for symbol in &symbols {
            if !positions.contains_key(symbol) {
                let p = self
                    .positions
                    .get(self.journal.as_ref(), account, venue, symbol)
                    .await?;
                positions.insert(symbol.clone(), p);
            }
        }
        let equity = if legs
            .iter()
            .any(|l| matches!(l.sizing, Sizing::PercentOfEquity(_)))
        {
            match broker.equity(account).await {
                Ok(e) => e,
                Err(e) => {
                    return Ok(Err(format!(
                        "cannot read the account's equity at the venue: {e}"
                    )))
                }
            }
        } else {
            None
        };
        let mut lots = HashMap::new();
        for leg in legs {
            // A copy's scaled quantities are computed too: they round down to the lot step.
            let computed = scaled || leg.action == Action::Target || leg.sizing != Sizing::Quantity;
            if computed && !lots.contains_key(&leg.symbol) {
                match broker.lot_rule(&leg.symbol).await {
                    Ok(Some(rule)) => {
                        lots.insert(leg.symbol.clone(), rule);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Ok(Err(format!(
                            "cannot read the lot size of {} at the venue: {e}",
                            leg.symbol
                        )))
                    }
                }
            }
        }
        Ok(Ok(VenueState {
            positions,
            position_source: if from_venue { "venue" } else { "journal" },
            equity,
            lots,
        }))
    }
}

#[cfg(test)]
mod tests;
