//! `[[notify]]` on the relay: the same destinations as the receiver's (shared
//! [`alertgate_shared::notify`]) for the two things an operator must hear about here,
//! `dead_letter` (an alert the relay gave up on) and `spool_full` (alerts refused with 503).
//!
//! The relay keeps no journal of its own for these: each destination has a bounded queue in
//! memory, served by one task (retries, `retry_after`, pacing), and a full queue drops the notice
//! with a warning rather than holding up an alert. The dead letter itself is on disk
//! (`dead/dead-letters.jsonl`) whatever becomes of its notice. `spool_full` is sent at most once a
//! minute.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use alertgate_shared::config::Invalid;
use alertgate_shared::notify::{event_id, Channel, Notice, NotifyConfig};
use alertgate_shared::Clock;
use serde_json::json;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::spool::DeadLetter;

/// The relay's events (contract: DESIGN.md section 16).
pub const EVENTS: [&str; 2] = ["dead_letter", "spool_full"];

/// Notices waiting per destination before new ones are dropped.
const QUEUE: usize = 256;
/// The least time between two `spool_full` notices.
const SPOOL_FULL_EVERY_MS: i64 = 60_000;

/// Where the relay's notices go; cheap to clone. Without `[[notify]]` it does nothing.
#[derive(Debug, Clone)]
pub struct Notices {
    /// Each destination's queue.
    queues: Arc<Vec<(String, mpsc::Sender<Notice>)>>,
    /// When the last `spool_full` went out (unix ms).
    last_spool_full: Arc<AtomicI64>,
    /// "Now".
    clock: Arc<dyn Clock>,
    /// `alertgate_relay_notifications_total`.
    metrics: Option<Arc<Metrics>>,
}

impl Notices {
    /// Resolves every destination and starts its task (inside a Tokio runtime).
    pub fn start(
        configs: &[NotifyConfig],
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Invalid> {
        NotifyConfig::validate_all(configs, &EVENTS)?;
        let mut queues = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let channel = Channel::build(config, i, &EVENTS, clock.clone())?;
            let (tx, mut rx) = mpsc::channel::<Notice>(QUEUE);
            queues.push((channel.name().to_owned(), tx));
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                while let Some(notice) = rx.recv().await {
                    if !channel.wants(&notice.event) {
                        continue;
                    }
                    let d = channel.deliver(&notice).await;
                    metrics.notification(channel.name(), d.outcome());
                    match &d.error {
                        None => {
                            tracing::debug!(destination = channel.name(), event = %notice.id, "notification delivered")
                        }
                        Some(error) => {
                            tracing::warn!(destination = channel.name(), event = %notice.id, attempts = d.attempts, error = %error, "notification not delivered; giving up")
                        }
                    }
                }
            });
        }
        Ok(Self {
            queues: Arc::new(queues),
            last_spool_full: Arc::new(AtomicI64::new(i64::MIN)),
            clock,
            metrics: Some(metrics),
        })
    }

    /// No destinations (tests, `check-config`).
    pub fn none(clock: Arc<dyn Clock>) -> Self {
        Self {
            queues: Arc::new(Vec::new()),
            last_spool_full: Arc::new(AtomicI64::new(i64::MIN)),
            clock,
            metrics: None,
        }
    }

    fn send(&self, notice: Notice) {
        for (name, queue) in self.queues.iter() {
            if queue.try_send(notice.clone()).is_err() {
                if let Some(m) = &self.metrics {
                    m.notification(name, "dropped");
                }
                tracing::warn!(destination = %name, event = %notice.id, "notification queue full; notice dropped");
            }
        }
    }

    /// An alert was dead-lettered.
    pub fn dead_letter(&self, letter: &DeadLetter) {
        if self.queues.is_empty() {
            return;
        }
        let now = self.clock.now_unix_ms();
        let id = event_id(now);
        let body = json!({"id": id, "type": "dead_letter", "at_ms": now,
                          "message_id": letter.id, "account": letter.account, "reason": letter.reason});
        self.send(Notice {
            text: format!(
                "dead letter: {} {} · relay · {} · replay with alertgate-relay dead-letters replay --id {}",
                letter.id, letter.reason, letter.account, letter.id
            ),
            id,
            event: "dead_letter".into(),
            json: body.to_string().into_bytes(),
        });
    }

    /// The spool refused an alert because it is full (at most one notice a minute).
    pub fn spool_full(&self) {
        if self.queues.is_empty() {
            return;
        }
        let now = self.clock.now_unix_ms();
        let last = self.last_spool_full.load(Ordering::Relaxed);
        if now.saturating_sub(last) < SPOOL_FULL_EVERY_MS
            || self
                .last_spool_full
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let id = event_id(now);
        let body = json!({"id": id, "type": "spool_full", "at_ms": now});
        self.send(Notice {
            text: "spool full: the relay is refusing alerts with 503 until the receiver catches up · relay".into(),
            id,
            event: "spool_full".into(),
            json: body.to_string().into_bytes(),
        });
    }
}
