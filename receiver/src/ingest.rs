//! The `POST /v1/alerts` pipeline, free of HTTP: verify the raw bytes, interpret the envelope,
//! journal the message (once per id), then execute it within the inline deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::envelope::ALERT_TYPE;
use alertgate_shared::{Clock, Envelope, VerifyError};
use bytes::Bytes;
use http::HeaderMap;
use rust_decimal::Decimal;

use crate::config::CopyConfig;
use crate::executor::queue::Turn;
use crate::executor::{Completion, Execution, Executor, Job, Work};
use crate::journal::{
    Admission, Journal, JournalError, MessageRecord, NewMessage, OrderRecord, Outcome,
};
use crate::metrics::Metrics;
use crate::normalize::{normalize, Leg, NormalizeContext};
use crate::routing::{self, Route, Venues};
use crate::verify::TrustedKeys;

/// How the receiver reads alerts (from `[[venues]]`/`[broker]`, `[symbols]`, `[accounts]`,
/// `[risk]`).
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// The venues, in routing order ([`crate::routing::pick`]).
    pub routes: Vec<Route>,
    /// `[accounts.NAME] copies`, by account.
    pub copies: BTreeMap<String, Vec<CopyConfig>>,
    /// `risk.max_alert_age_seconds` in ms.
    pub max_age_ms: i64,
    /// `risk.max_signal_age_seconds` in ms (against the alert's `sent_at`); `None`: off.
    pub max_signal_age_ms: Option<i64>,
}

/// What an envelope asks for, before the journal has its say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpretation {
    /// The account it runs for: the envelope's, or the copy's.
    pub account: Option<String>,
    /// The alert's idempotency key.
    pub idempotency_key: Option<String>,
    /// The envelope's `received_at` (unix ms).
    pub received_at_ms: Option<i64>,
    /// Orders to execute, or a final outcome.
    pub verdict: Verdict,
}

/// Normalized legs routed to a venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The legs, normalized for the venue.
    pub legs: Vec<Leg>,
    /// The alert's strategy.
    pub strategy: Option<String>,
    /// The venue's name.
    pub venue: String,
    /// For a copy: the factor its quantities are scaled by.
    pub scale: Option<Decimal>,
}

/// Execute, or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Normalized legs, to be gated and placed at their venue.
    Execute(Routed),
    /// `invalid` or `expired`, with the reason.
    Final(Outcome, String),
}

/// The message id of the copy of message `parent` for `account`: derived, so a redelivery or
/// a restart finds the same copy (and its client order ids, [`crate::executor::client_order_id`])
/// again.
pub fn copy_message_id(parent: &str, account: &str) -> String {
    format!("{parent}-copy-{account}")
}

/// Normalization that does not depend on the venue: enough to read the symbols an alert
/// trades (their exchanges route it) and its idempotency key.
fn routing_context(empty: &BTreeMap<String, String>) -> NormalizeContext<'_> {
    NormalizeContext {
        symbols: empty,
        perpetuals: crate::normalize::Perpetuals::AsSent,
        exchange_in_symbol: false,
        allow_short: true,
        exits: crate::order::ExitSupport::Orders,
    }
}

impl Interpreter {
    /// Reads a verified body at `now_ms`, for the envelope's account.
    pub fn interpret(&self, body: &[u8], now_ms: i64) -> Interpretation {
        self.interpret_as(body, now_ms, None)
    }

    /// Reads a verified body at `now_ms`, for the envelope's account or, with `copy`, for the
    /// copy's account (routed for that account, quantities to be scaled).
    pub fn interpret_as(
        &self,
        body: &[u8],
        now_ms: i64,
        copy: Option<&CopyConfig>,
    ) -> Interpretation {
        let envelope = match Envelope::from_slice(body) {
            Ok(e) => e,
            Err(e) => {
                return Interpretation {
                    account: None,
                    idempotency_key: None,
                    received_at_ms: None,
                    verdict: Verdict::Final(Outcome::Invalid, format!("envelope: {e}")),
                }
            }
        };
        let account = copy.map_or_else(|| envelope.account.clone(), |c| c.account.clone());
        let received_at_ms =
            i64::try_from(envelope.received_at.unix_timestamp_nanos() / 1_000_000).ok();
        let empty = BTreeMap::new();
        let general = normalize(&envelope.alert, &routing_context(&empty));
        let idempotency_key = general
            .as_ref()
            .ok()
            .and_then(|n| n.idempotency_key.clone());
        let age_ms = received_at_ms.map_or(0, |r| now_ms - r);
        let verdict = if envelope.kind != ALERT_TYPE {
            Verdict::Final(
                Outcome::Invalid,
                format!("type: expected {ALERT_TYPE:?}, got {:?}", envelope.kind),
            )
        } else if age_ms > self.max_age_ms {
            Verdict::Final(
                Outcome::Expired,
                format!(
                    "received by the relay {} s ago; risk.max_alert_age_seconds is {}",
                    age_ms / 1000,
                    self.max_age_ms / 1000
                ),
            )
        } else {
            match general.map_err(|e| e.to_string()).and_then(|general| {
                let route = self.route(&envelope.alert, &account, &general.legs)?;
                normalize(&envelope.alert, &route.context())
                    .map(|n| (n, route.name.clone()))
                    .map_err(|e| e.to_string())
            }) {
                Ok((n, venue)) => match self.signal_too_old(n.sent_at_ms, now_ms) {
                    Some(reason) => Verdict::Final(Outcome::Expired, reason),
                    None => Verdict::Execute(Routed {
                        legs: n.legs,
                        strategy: n.strategy,
                        venue,
                        scale: copy.map(|c| c.scale),
                    }),
                },
                Err(invalid) => Verdict::Final(Outcome::Invalid, invalid),
            }
        };
        Interpretation {
            account: Some(account),
            idempotency_key,
            received_at_ms,
            verdict,
        }
    }

    /// Reads a journaled message again (a resume): a copy (its account is not the
    /// envelope's) is read as that copy, while it is still configured.
    pub fn reread(&self, record: &MessageRecord, now_ms: i64) -> Interpretation {
        let envelope_account = Envelope::from_slice(&record.envelope)
            .ok()
            .map(|e| e.account);
        match (&record.account, envelope_account) {
            (Some(account), Some(parent)) if *account != parent => {
                match self.copies_of(&parent).iter().find(|c| c.account == *account) {
                    Some(copy) => self.interpret_as(&record.envelope, now_ms, Some(copy)),
                    None => Interpretation {
                        account: Some(account.clone()),
                        idempotency_key: None,
                        received_at_ms: record.received_at_ms,
                        verdict: Verdict::Final(
                            Outcome::Invalid,
                            format!(
                                "accounts.{parent}.copies: the copy to {account:?} is no longer configured"
                            ),
                        ),
                    },
                }
            }
            _ => self.interpret(&record.envelope, now_ms),
        }
    }

    /// The venue for the alert `alert` of `account` whose legs are `legs`.
    fn route(
        &self,
        alert: &serde_json::Map<String, serde_json::Value>,
        account: &str,
        legs: &[Leg],
    ) -> Result<&Route, String> {
        let requested = match alert.get("venue") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(name)) => Some(name.as_str()),
            Some(_) => return Err("venue: must be a venue name (a string)".into()),
        };
        let symbols: Vec<&str> = legs.iter().map(|l| l.tv_symbol.as_str()).collect();
        routing::pick(&self.routes, account, &symbols, requested)
    }

    /// The copies of `account`'s alerts.
    pub fn copies_of(&self, account: &str) -> &[CopyConfig] {
        self.copies.get(account).map_or(&[], Vec::as_slice)
    }
}

impl Interpreter {
    /// How `settings` and its built `venues` read alerts.
    pub fn new(settings: &crate::Settings, venues: &Venues) -> Self {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            routes: venues.routes(),
            copies: settings
                .accounts
                .iter()
                .filter(|(_, a)| !a.copies.is_empty())
                .map(|(name, a)| (name.clone(), a.copies.clone()))
                .collect(),
            max_age_ms: ms(settings.risk.max_alert_age_seconds),
            max_signal_age_ms: settings.risk.max_signal_age_seconds.map(ms),
        }
    }

    /// An interpreter with one venue `route`, no copies and no signal-age limit (tests).
    pub fn single(route: Route, max_age_ms: i64) -> Self {
        Self {
            routes: vec![route],
            copies: BTreeMap::new(),
            max_age_ms,
            max_signal_age_ms: None,
        }
    }

    /// The first venue's normalization (the dashboard's view of legs, which needs no routing).
    pub fn context(&self) -> NormalizeContext<'_> {
        static EMPTY: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
        match self.routes.first() {
            Some(route) => route.context(),
            None => routing_context(EMPTY.get_or_init(BTreeMap::new)),
        }
    }

    /// Why a signal sent at `sent_at_ms` is too old at `now_ms`, if it is.
    fn signal_too_old(&self, sent_at_ms: Option<i64>, now_ms: i64) -> Option<String> {
        let (max, sent) = (self.max_signal_age_ms?, sent_at_ms?);
        let age = now_ms - sent;
        (age > max).then(|| {
            format!(
                "sent_at is {} s old; risk.max_signal_age_seconds is {}",
                age / 1000,
                max / 1000
            )
        })
    }
}

/// How often a redelivery reads a message another receiver executes, until the inline deadline.
const ELSEWHERE_POLL: Duration = Duration::from_millis(25);

/// What `POST /v1/alerts` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 401: the signature or timestamp did not verify.
    Unverified(VerifyError),
    /// 200 (or 202 while `pending`): the message is journaled.
    Recorded {
        /// The message id.
        id: String,
        /// Current outcome.
        outcome: Outcome,
        /// Why.
        reason: Option<String>,
        /// Orders so far.
        orders: Vec<OrderRecord>,
        /// `true` when this id was journaled by an earlier delivery.
        duplicate: bool,
        /// The copies to other accounts (`[accounts.NAME] copies`), each its own message.
        copies: Vec<CopyReply>,
    },
    /// 503: the journal could not be written; the relay retries.
    Unavailable(JournalError),
    /// 503 with `Retry-After`: the message is `pending` and another receiver holds its lease
    /// (executing it, or dead and not yet expired). The relay retries, and keeps the later
    /// alerts of its (account, ticker) back meanwhile: answered 202, they could reach the venue
    /// before it, were the other receiver dead (resumed only once its lease expires).
    ExecutingElsewhere {
        /// The message id.
        id: String,
    },
}

/// Where one copy of a message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReply {
    /// The copy's message id ([`copy_message_id`]).
    pub id: String,
    /// The copy's account.
    pub account: String,
    /// Its outcome so far.
    pub outcome: Outcome,
    /// Why.
    pub reason: Option<String>,
    /// Its orders so far.
    pub orders: Vec<OrderRecord>,
}

impl CopyReply {
    fn from_record(record: MessageRecord) -> Self {
        Self {
            id: record.id,
            account: record.account.unwrap_or_default(),
            outcome: record.outcome,
            reason: record.reason,
            orders: record.orders,
        }
    }
}

impl Reply {
    fn from_record(record: MessageRecord, duplicate: bool, copies: Vec<CopyReply>) -> Self {
        Reply::Recorded {
            id: record.id,
            outcome: record.outcome,
            reason: record.reason,
            orders: record.orders,
            duplicate,
            copies,
        }
    }
}

/// The pipeline with everything it needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// Trusted keys (reloadable).
    pub keys: TrustedKeys,
    /// How alerts are read.
    pub interpreter: Arc<Interpreter>,
    /// The journal.
    pub journal: Arc<dyn Journal>,
    /// The executor.
    pub executor: Executor,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub metrics: Metrics,
    /// `dedupe.window_seconds` in ms.
    pub dedupe_window_ms: i64,
    /// `executor.inline_deadline_ms`.
    pub inline_deadline: Duration,
}

impl Ingest {
    /// Handles one delivery.
    #[tracing::instrument(skip_all, fields(id))]
    pub async fn receive(&self, headers: &HeaderMap, body: Bytes) -> Reply {
        let now = self.clock.now();
        let id = match self.keys.verify(headers, &body, now.unix_timestamp()) {
            Ok(id) => id.to_owned(),
            Err(e) => {
                self.metrics.verify_failure(&e);
                tracing::debug!(reason = e.reason(), "delivery refused");
                return Reply::Unverified(e);
            }
        };
        tracing::Span::current().record("id", id.as_str());
        let now_ms = self.clock.now_unix_ms();
        let reading = self.interpreter.interpret(&body, now_ms);
        let parent_account = reading.account.clone();
        // The relay asks for an answer once the message is journaled; anyone else gets the
        // outcome inline when it is reached within the deadline.
        let wait = if alertgate_shared::envelope::prefers_respond_async(headers) {
            Duration::ZERO
        } else {
            self.inline_deadline
        };
        // Taken before the message is journaled: a delivery waiting for room has promised nothing.
        let room = self.executor.room().await;
        // Held until the job is submitted: a concurrent delivery of this id waits, then finds
        // the job running rather than resuming it too.
        let turn = self.executor.message_turn(&id).await;
        let mark = self.executor.tally().mark();
        let (record, job) = match self.admit(&id, reading, body.clone(), now_ms, true).await {
            Ok((Admission::Seen(record), _)) => {
                self.executor.tally().read(mark, &id, Some(&record));
                tracing::info!(
                    outcome = record.outcome.as_str(),
                    "redelivery of a journaled message"
                );
                return self.redelivered(record, turn).await;
            }
            Ok((Admission::New(record), job)) => (record, job),
            Err(e) => {
                tracing::error!(error = %e, "cannot journal the message; answering 503");
                return Reply::Unavailable(e);
            }
        };
        // Copies: each its own message, admitted before anything executes, so a restart finds
        // them (a redelivery of this id is `Seen` and makes none).
        let mut copies = Vec::new();
        if record.outcome != Outcome::Duplicate {
            if let Some(parent) = &parent_account {
                match self.admit_copies(&id, parent, &body, now_ms).await {
                    Ok(c) => copies = c,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot journal the copies; answering 503");
                        return Reply::Unavailable(e);
                    }
                }
            }
        }
        let completion = match job {
            Some(job) => Some(self.executor.submit_in(job, room)),
            None => {
                tracing::info!(
                    outcome = record.outcome.as_str(),
                    reason = record.reason,
                    "message recorded"
                );
                None
            }
        };
        drop(turn);
        let copy_completions: Vec<_> = copies
            .into_iter()
            .map(|(reply, job)| (reply, job.map(|j| self.executor.submit(j))))
            .collect();
        let waited = tokio::time::timeout(wait, async {
            let own = match completion {
                Some(c) => Some(c.await),
                None => None,
            };
            let mut copies = Vec::with_capacity(copy_completions.len());
            for (reply, completion) in copy_completions {
                copies.push(match completion {
                    Some(c) => (reply, Some(c.await)),
                    None => (reply, None),
                });
            }
            (own, copies)
        })
        .await;
        let Ok((own, copy_results)) = waited else {
            if wait.is_zero() {
                tracing::debug!("answering 202 once journaled (Prefer: respond-async)");
            } else {
                tracing::info!("execution still running at the inline deadline; answering 202");
            }
            let copies = match self.copy_records(&record).await {
                Ok(copies) => copies,
                Err(e) => return Reply::Unavailable(e),
            };
            let pending = record.outcome == Outcome::Pending;
            return Reply::Recorded {
                id,
                outcome: record.outcome,
                reason: if pending { None } else { record.reason },
                orders: Vec::new(),
                duplicate: false,
                copies,
            };
        };
        let mut copies = Vec::with_capacity(copy_results.len());
        for (mut reply, result) in copy_results {
            match result {
                None => {}
                Some(Ok(Ok(execution))) => {
                    reply.outcome = execution.outcome;
                    reply.reason = execution.reason;
                    reply.orders = execution.orders;
                }
                Some(Ok(Err(e))) => return Reply::Unavailable(e),
                Some(Err(_)) => return Reply::Unavailable(JournalError::Closed),
            }
            copies.push(reply);
        }
        match own {
            None => Reply::from_record(record, false, copies),
            Some(Ok(Ok(Execution {
                outcome,
                reason,
                orders,
            }))) => Reply::Recorded {
                id,
                outcome,
                reason,
                orders,
                duplicate: false,
                copies,
            },
            Some(Ok(Err(e))) => Reply::Unavailable(e),
            Some(Err(_)) => Reply::Unavailable(JournalError::Closed),
        }
    }

    /// Answers a redelivery of `record`'s message (holding its `turn`). A message still
    /// `pending` that nothing executes (a first delivery whose commit lost its answer, an
    /// execution a journal error interrupted) resumes now, as the resume sweep would, and the
    /// answer waits for it within the inline deadline as a first delivery's does.
    async fn redelivered(&self, mut record: MessageRecord, turn: Turn<String>) -> Reply {
        let completion = if record.outcome == Outcome::Pending
            && !self.executor.is_active(&record.id)
        {
            match self.executor.resumable(&record.id).await {
                Ok(true) => {
                    tracing::info!(id = record.id, "resuming a redelivered pending message");
                    match self.resume_one(record.clone()).await {
                        Ok(completion) => completion,
                        Err(e) => return Reply::Unavailable(e),
                    }
                }
                Ok(false) => match self.finished_elsewhere(&record.id).await {
                    Ok(Some(done)) => {
                        record = done;
                        None
                    }
                    Ok(None) => {
                        tracing::info!(
                            id = record.id,
                            "a redelivered pending message is leased by another receiver; answering 503"
                        );
                        return Reply::ExecutingElsewhere { id: record.id };
                    }
                    Err(e) => return Reply::Unavailable(e),
                },
                Err(e) => return Reply::Unavailable(e),
            }
        } else {
            None
        };
        drop(turn);
        let executed = match completion {
            Some(c) => match tokio::time::timeout(self.inline_deadline, c).await {
                Ok(Ok(Ok(execution))) => Some(execution),
                Ok(Ok(Err(e))) => return Reply::Unavailable(e),
                Ok(Err(_)) => return Reply::Unavailable(JournalError::Closed),
                Err(_) => None,
            },
            None => None,
        };
        if executed.as_ref().is_some_and(|e| {
            e.outcome == Outcome::Pending
                && e.reason.as_deref() == Some(crate::executor::EXECUTING_ELSEWHERE)
        }) {
            // The resumed job found another receiver's lease at its claim: as above, the relay
            // retries rather than sending the key's later alerts.
            return Reply::ExecutingElsewhere { id: record.id };
        }
        let copies = match self.copy_records(&record).await {
            Ok(copies) => copies,
            Err(e) => return Reply::Unavailable(e),
        };
        match executed {
            Some(Execution {
                outcome,
                reason,
                orders,
            }) => Reply::Recorded {
                id: record.id,
                outcome,
                reason,
                orders,
                duplicate: true,
                copies,
            },
            None => Reply::from_record(record, true, copies),
        }
    }

    /// Waits, within the inline deadline, for another receiver holding message `id`'s lease
    /// to finish it: the record once it is final, `None` when it is still `pending`.
    async fn finished_elsewhere(&self, id: &str) -> Result<Option<MessageRecord>, JournalError> {
        let deadline = tokio::time::Instant::now() + self.inline_deadline;
        loop {
            if let Some(record) = self.journal.message(id).await? {
                if record.outcome != Outcome::Pending {
                    return Ok(Some(record));
                }
            }
            let next = tokio::time::Instant::now() + ELSEWHERE_POLL;
            if next > deadline {
                return Ok(None);
            }
            tokio::time::sleep_until(next).await;
        }
    }

    /// Journals message `id` as `reading` says (`dedupe`: with its idempotency key) and, when
    /// it is new and to be executed, the job that executes it. A message final at admission is
    /// counted here (once: [`crate::executor::tally`]).
    async fn admit(
        &self,
        id: &str,
        reading: Interpretation,
        body: Bytes,
        now_ms: i64,
        dedupe: bool,
    ) -> Result<(Admission, Option<Job>), JournalError> {
        let (outcome, reason, job) = match (reading.verdict, reading.account.clone()) {
            (Verdict::Execute(routed), Some(account)) => (
                Outcome::Pending,
                None,
                Some(job_for(id.to_owned(), account, routed)),
            ),
            (Verdict::Execute(_), None) => (Outcome::Pending, None, None),
            (Verdict::Final(outcome, reason), _) => (outcome, Some(reason), None),
        };
        let admitted = self
            .journal
            .admit(NewMessage {
                id: id.to_owned(),
                account: reading.account,
                idempotency_key: reading.idempotency_key.filter(|_| dedupe),
                received_at_ms: reading.received_at_ms,
                envelope: body,
                outcome,
                reason,
                now_ms,
                dedupe_since_ms: now_ms - self.dedupe_window_ms,
                keys: job
                    .as_ref()
                    .map(|j| j.keys().into_iter().collect())
                    .unwrap_or_default(),
                lease_until_ms: self.executor.lease_until(now_ms),
            })
            .await;
        let admission = match admitted {
            Ok(admission) => admission,
            Err(e) => {
                // It may be journaled all the same (the commit's answer lost), final or not.
                self.executor.tally().unsure(id, None);
                return Err(e);
            }
        };
        if let Admission::New(record) = &admission {
            if record.outcome != Outcome::Pending {
                self.executor.tally().written(id, record.outcome);
            }
        }
        let job = match &admission {
            Admission::New(record) if record.outcome == Outcome::Pending => job,
            _ => None,
        };
        Ok((admission, job))
    }

    /// Journals the copies of message `id` (an alert of `parent`): each new one with the job
    /// that executes it. A copy journaled before (a resume) is left to its own resume.
    async fn admit_copies(
        &self,
        id: &str,
        parent: &str,
        body: &Bytes,
        now_ms: i64,
    ) -> Result<Vec<(CopyReply, Option<Job>)>, JournalError> {
        let mut out = Vec::new();
        for copy in self.interpreter.copies_of(parent) {
            let copy_id = copy_message_id(id, &copy.account);
            let reading = self.interpreter.interpret_as(body, now_ms, Some(copy));
            match self
                .admit(&copy_id, reading, body.clone(), now_ms, false)
                .await?
            {
                (Admission::New(record), job) => {
                    tracing::info!(
                        copy = copy_id,
                        account = copy.account,
                        outcome = record.outcome.as_str(),
                        "copy recorded"
                    );
                    out.push((CopyReply::from_record(record), job));
                }
                (Admission::Seen(record), _) => out.push((CopyReply::from_record(record), None)),
            }
        }
        Ok(out)
    }

    /// The journaled copies of `record`'s message, as configured now.
    async fn copy_records(&self, record: &MessageRecord) -> Result<Vec<CopyReply>, JournalError> {
        let Some(account) = &record.account else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for copy in self.interpreter.copies_of(account) {
            if let Some(r) = self
                .journal
                .message(&copy_message_id(&record.id, &copy.account))
                .await?
            {
                out.push(CopyReply::from_record(r));
            }
        }
        Ok(out)
    }

    /// Resumes every message left `pending` by an earlier run (in journal order, before any new
    /// delivery is taken). Returns how many were resumed.
    pub async fn resume_unfinished(&self) -> Result<usize, JournalError> {
        let unfinished = self.journal.unfinished().await?;
        self.resume(unfinished).await
    }

    /// Resumes messages still `pending` that no job is executing and that were journaled at least
    /// `older_than` ago: executions a journal error interrupted without a restart, whose
    /// redelivery did not come. (The age keeps clear of a message between its admission and its
    /// submission.) Settles first the writes whose answers were lost ([`Ingest::settle_unsure`]).
    pub async fn resume_stuck(&self, older_than: Duration) -> Result<usize, JournalError> {
        self.settle_unsure().await?;
        let cutoff =
            self.clock.now_unix_ms() - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        let stuck: Vec<MessageRecord> = self
            .journal
            .unfinished()
            .await?
            .into_iter()
            .filter(|m| m.recorded_at_ms <= cutoff && !self.executor.is_active(&m.id))
            .collect();
        self.resume(stuck).await
    }

    /// Resumes the messages `ids` that are still `pending` and to be resumed here
    /// ([`Executor::resumable`]); returns how many were.
    pub async fn resume_ids(&self, ids: Vec<String>) -> Result<usize, JournalError> {
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.journal.message(&id).await? {
                if record.outcome == Outcome::Pending {
                    records.push(record);
                }
            }
        }
        self.resume(records).await
    }

    /// Reads the messages whose final writes lost their answers, so each is counted if the
    /// write committed ([`crate::executor::tally`]).
    pub async fn settle_unsure(&self) -> Result<(), JournalError> {
        let tally = self.executor.tally();
        let mark = tally.mark();
        for id in tally.unsure_ids(mark) {
            let record = self.journal.message(&id).await?;
            tally.read(mark, &id, record.as_ref());
        }
        Ok(())
    }

    /// Resumes each of `records` that is still to be resumed here ([`Executor::resumable`]);
    /// returns how many were.
    async fn resume(&self, records: Vec<MessageRecord>) -> Result<usize, JournalError> {
        let mut count = 0;
        for record in records {
            let turn = self.executor.message_turn(&record.id).await;
            if !self.executor.resumable(&record.id).await? {
                continue;
            }
            count += 1;
            // Runs in the background, in order per (account, symbol), ahead of new deliveries.
            drop(self.resume_one(record).await?);
            drop(turn);
        }
        Ok(count)
    }

    /// Resumes one message journaled `pending` (its orders, or its legs read again), as a
    /// restart would; the completion of its job, or `None` when reading it again made it final
    /// (or it has no account). Call it holding the message's turn, once it is
    /// [`Executor::resumable`].
    async fn resume_one(&self, record: MessageRecord) -> Result<Option<Completion>, JournalError> {
        let Some(account) = record.account.clone() else {
            return Ok(None);
        };
        let now_ms = self.clock.now_unix_ms();
        let job = if let Some(first) = record.orders.first() {
            Job {
                message_id: record.id.clone(),
                account,
                strategy: None,
                venue: first.venue.clone(),
                scale: None,
                work: Work::Resume(record.orders.clone()),
                resumed: true,
            }
        } else {
            let reading = self.interpreter.reread(&record, now_ms);
            let is_parent =
                Envelope::from_slice(&record.envelope).is_ok_and(|e| e.account == account);
            if is_parent {
                // Copies a crash left unjournaled; those journaled resume on their own.
                for (_, job) in self
                    .admit_copies(
                        &record.id,
                        &account,
                        &Bytes::from(record.envelope.clone()),
                        now_ms,
                    )
                    .await?
                {
                    if let Some(job) = job {
                        drop(self.executor.submit(job));
                    }
                }
            }
            match reading.verdict {
                Verdict::Execute(routed) => Job {
                    resumed: true,
                    ..job_for(record.id.clone(), account, routed)
                },
                Verdict::Final(outcome, reason) => {
                    let tally = self.executor.tally();
                    match self
                        .journal
                        .finish(&record.id, outcome, Some(reason), now_ms)
                        .await
                    {
                        Ok(()) => tally.written(&record.id, outcome),
                        Err(e) => {
                            tally.unsure(&record.id, Some(outcome));
                            return Err(e);
                        }
                    }
                    return Ok(None);
                }
            }
        };
        tracing::info!(id = record.id, "resuming an interrupted execution");
        Ok(Some(self.executor.submit(job)))
    }
}

/// The job executing message `message_id` of `account` as `routed`.
fn job_for(message_id: String, account: String, routed: Routed) -> Job {
    Job {
        message_id,
        account,
        strategy: routed.strategy,
        venue: routed.venue,
        scale: routed.scale,
        work: Work::Legs(routed.legs),
        resumed: false,
    }
}
