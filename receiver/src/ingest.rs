//! The `POST /v1/alerts` pipeline, free of HTTP: verify the raw bytes, interpret the envelope,
//! journal the message (once per id), then execute it within the inline deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::envelope::ALERT_TYPE;
use alertgate_shared::{Clock, Envelope, VerifyError};
use bytes::Bytes;
use http::HeaderMap;

use crate::executor::{Execution, Executor, Job, Work};
use crate::journal::{
    Admission, Journal, JournalError, MessageRecord, NewMessage, OrderRecord, Outcome,
};
use crate::metrics::Metrics;
use crate::normalize::{normalize, Leg, NormalizeContext};
use crate::verify::TrustedKeys;

/// How the receiver reads alerts (from `[symbols]`, `[broker]`, `[risk]`, `[dedupe]`).
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// `[symbols]`.
    pub symbols: BTreeMap<String, String>,
    /// What the venue does with perpetual tickers ([`crate::broker::Broker::perpetuals`]).
    pub perpetuals: crate::normalize::Perpetuals,
    /// `true` when the venue's symbols carry their exchange ([`crate::broker::Broker::exchange_in_symbol`]).
    pub exchange_in_symbol: bool,
    /// `false` when the venue cannot hold a short position: negative targets are invalid.
    pub allow_short: bool,
    /// How the venue attaches protective exits ([`crate::broker::Broker::exits`]).
    pub exits: crate::order::ExitSupport,
    /// `risk.max_alert_age_seconds` in ms.
    pub max_age_ms: i64,
    /// `risk.max_signal_age_seconds` in ms (against the alert's `sent_at`); `None`: off.
    pub max_signal_age_ms: Option<i64>,
}

/// What an envelope asks for, before the journal has its say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpretation {
    /// The envelope's account.
    pub account: Option<String>,
    /// The alert's idempotency key.
    pub idempotency_key: Option<String>,
    /// The envelope's `received_at` (unix ms).
    pub received_at_ms: Option<i64>,
    /// Orders to execute, or a final outcome.
    pub verdict: Verdict,
}

/// Execute, or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Normalized legs, to be gated and placed, and the alert's strategy.
    Execute(Vec<Leg>, Option<String>),
    /// `invalid` or `expired`, with the reason.
    Final(Outcome, String),
}

impl Interpreter {
    /// Reads a verified body at `now_ms`.
    pub fn interpret(&self, body: &[u8], now_ms: i64) -> Interpretation {
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
        let received_at_ms =
            i64::try_from(envelope.received_at.unix_timestamp_nanos() / 1_000_000).ok();
        let ctx = self.context();
        let normalized = normalize(&envelope.alert, &ctx);
        let idempotency_key = normalized
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
            match normalized {
                Ok(n) => match self.signal_too_old(n.sent_at_ms, now_ms) {
                    Some(reason) => Verdict::Final(Outcome::Expired, reason),
                    None => Verdict::Execute(n.legs, n.strategy),
                },
                Err(invalid) => Verdict::Final(Outcome::Invalid, invalid.to_string()),
            }
        };
        Interpretation {
            account: Some(envelope.account),
            idempotency_key,
            received_at_ms,
            verdict,
        }
    }
}

impl Interpreter {
    /// How `settings` and the venue `broker` read alerts.
    pub fn new(settings: &crate::Settings, broker: &dyn crate::broker::Broker) -> Self {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            symbols: settings.symbols.clone(),
            perpetuals: broker.perpetuals(),
            exchange_in_symbol: broker.exchange_in_symbol(),
            allow_short: broker.allows_short(),
            exits: broker.exits(),
            max_age_ms: ms(settings.risk.max_alert_age_seconds),
            max_signal_age_ms: settings.risk.max_signal_age_seconds.map(ms),
        }
    }

    /// What normalization needs from this configuration (also the dashboard's view of legs).
    pub fn context(&self) -> NormalizeContext<'_> {
        NormalizeContext {
            symbols: &self.symbols,
            perpetuals: self.perpetuals,
            exchange_in_symbol: self.exchange_in_symbol,
            allow_short: self.allow_short,
            exits: self.exits,
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
    },
    /// 503: the journal could not be written; the relay retries.
    Unavailable(JournalError),
}

impl Reply {
    fn from_record(record: MessageRecord, duplicate: bool) -> Self {
        Reply::Recorded {
            id: record.id,
            outcome: record.outcome,
            reason: record.reason,
            orders: record.orders,
            duplicate,
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
        let (outcome, reason, legs) = match reading.verdict {
            Verdict::Execute(legs, strategy) => (Outcome::Pending, None, Some((legs, strategy))),
            Verdict::Final(outcome, reason) => (outcome, Some(reason), None),
        };
        let admission = self
            .journal
            .admit(NewMessage {
                id: id.clone(),
                account: reading.account.clone(),
                idempotency_key: reading.idempotency_key,
                received_at_ms: reading.received_at_ms,
                envelope: body,
                outcome,
                reason,
                now_ms,
                dedupe_since_ms: now_ms - self.dedupe_window_ms,
            })
            .await;
        let record = match admission {
            Ok(Admission::Seen(record)) => {
                tracing::info!(
                    outcome = record.outcome.as_str(),
                    "redelivery of a journaled message"
                );
                return Reply::from_record(record, true);
            }
            Ok(Admission::New(record)) => record,
            Err(e) => {
                tracing::error!(error = %e, "cannot journal the message; answering 503");
                return Reply::Unavailable(e);
            }
        };
        let (Outcome::Pending, Some((legs, strategy)), Some(account)) =
            (record.outcome, legs, reading.account)
        else {
            tracing::info!(
                outcome = record.outcome.as_str(),
                reason = record.reason,
                "message recorded"
            );
            self.metrics.message(record.outcome);
            return Reply::from_record(record, false);
        };
        let completion = self.executor.submit(Job {
            message_id: id.clone(),
            account,
            strategy,
            work: Work::Legs(legs),
        });
        match tokio::time::timeout(self.inline_deadline, completion).await {
            Ok(Ok(Ok(Execution {
                outcome,
                reason,
                orders,
            }))) => Reply::Recorded {
                id,
                outcome,
                reason,
                orders,
                duplicate: false,
            },
            Ok(Ok(Err(e))) => Reply::Unavailable(e),
            Ok(Err(_)) => Reply::Unavailable(JournalError::Closed),
            Err(_) => {
                tracing::info!("execution still running at the inline deadline; answering 202");
                Reply::Recorded {
                    id,
                    outcome: Outcome::Pending,
                    reason: None,
                    orders: Vec::new(),
                    duplicate: false,
                }
            }
        }
    }

    /// Resumes every message left `pending` by an earlier run (in journal order, before any new
    /// delivery is taken). Returns how many were resumed.
    pub async fn resume_unfinished(&self) -> Result<usize, JournalError> {
        let unfinished = self.journal.unfinished().await?;
        self.resume(unfinished).await
    }

    /// Resumes messages still `pending` that no job is executing and that were journaled at least
    /// `older_than` ago: executions a journal error interrupted without a restart. (The age keeps
    /// clear of a message between its admission and its submission.)
    pub async fn resume_stuck(&self, older_than: Duration) -> Result<usize, JournalError> {
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

    async fn resume(&self, records: Vec<MessageRecord>) -> Result<usize, JournalError> {
        let count = records.len();
        for record in records {
            let Some(account) = record.account.clone() else {
                continue;
            };
            let (work, strategy) = if !record.orders.is_empty() {
                (Work::Resume(record.orders), None)
            } else {
                match self
                    .interpreter
                    .interpret(&record.envelope, self.clock.now_unix_ms())
                    .verdict
                {
                    Verdict::Execute(legs, strategy) => (Work::Legs(legs), strategy),
                    Verdict::Final(outcome, reason) => {
                        self.journal
                            .finish(&record.id, outcome, Some(reason), self.clock.now_unix_ms())
                            .await?;
                        self.metrics.message(outcome);
                        continue;
                    }
                }
            };
            tracing::info!(id = record.id, "resuming an interrupted execution");
            // Runs in the background, in order per (account, symbol), ahead of new deliveries.
            drop(self.executor.submit(Job {
                message_id: record.id,
                account,
                strategy,
                work,
            }));
        }
        Ok(count)
    }
}
