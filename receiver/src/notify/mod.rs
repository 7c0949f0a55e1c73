//! Notifications: the outbox's delivery side. Events are written by the journal with the
//! outcomes that cause them ([`crate::journal::events`]); here one task per `[[notify]]`
//! destination reads the outbox after its cursor, sends each event it wants through
//! [`alertgate_shared::notify::Channel`] (retries, `retry_after`, pacing) and moves its cursor past
//! it with the delivery's record, one event at a time. Nothing here is on an order's path: an
//! order's answer never waits for a destination, and a dead destination only delays its own
//! queue.
//!
//! Delivery is once per destination across restarts: the cursor moves only after the send, so a
//! crash between send and record repeats that one event (the signed webhook carries the event id
//! as `webhook-id` for receivers that drop repeats), and an event committed but not yet sent when
//! the process died is sent after the restart.

use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::config::Invalid;
use alertgate_shared::notify::{Channel, Notice, NotifyConfig};
use alertgate_shared::Clock;
use tokio::sync::watch;

use crate::journal::{DeliveryRecord, EventKind, Journal, JournalError, NotifyEvent};
use crate::metrics::Metrics;

/// How often the kill-switch file is looked at for the `kill_switch` event.
const KILL_SWITCH_POLL: Duration = Duration::from_secs(1);

/// How often a destination looks for new events when its queue is empty.
const POLL: Duration = Duration::from_millis(200);
/// Events read per look.
const BATCH: u32 = 32;

/// The destinations and what they deliver from.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The outbox.
    journal: Arc<dyn Journal>,
    /// One per `[[notify]]` table.
    channels: Vec<Arc<Channel>>,
    /// `alertgate_receiver_notifications_total`.
    metrics: Metrics,
    /// "Now" for delivery records.
    clock: Arc<dyn Clock>,
    /// `risk.kill_switch_file` and whether it existed at build: its appearing and disappearing
    /// afterwards are `kill_switch` events.
    kill_switch: Option<(std::path::PathBuf, bool)>,
}

impl Notifier {
    /// Resolves every `[[notify]]` table (secrets included).
    pub fn build(
        configs: &[NotifyConfig],
        kill_switch: Option<std::path::PathBuf>,
        journal: Arc<dyn Journal>,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Invalid> {
        let channels = configs
            .iter()
            .enumerate()
            .map(|(i, c)| Channel::build(c, i, &EventKind::NAMES, clock.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            journal,
            channels,
            metrics,
            clock,
            kill_switch: kill_switch.map(|p| {
                let on = p.exists();
                (p, on)
            }),
        })
    }

    /// Reads (or starts) every destination's cursor. Called at startup before anything is
    /// journaled, so a new destination starts at the outbox's end and misses nothing after.
    pub async fn open_cursors(&self) -> Result<Vec<i64>, JournalError> {
        let mut cursors = Vec::with_capacity(self.channels.len());
        for c in &self.channels {
            cursors.push(
                self.journal
                    .outbox_cursor(c.name(), self.clock.now_unix_ms())
                    .await?,
            );
        }
        Ok(cursors)
    }

    /// Runs every destination's delivery until `stop` turns true.
    pub async fn run(self, cursors: Vec<i64>, stop: watch::Receiver<bool>) {
        let watcher = self.kill_switch.clone().map(|(path, on)| {
            let this = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move { this.watch_kill_switch(path, on, stop).await })
        });
        let tasks: Vec<_> = self
            .channels
            .iter()
            .cloned()
            .zip(cursors)
            .map(|(channel, cursor)| {
                let this = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move { this.deliver_from(channel, cursor, stop).await })
            })
            .collect();
        for t in tasks.into_iter().chain(watcher) {
            let _ = t.await;
        }
    }

    /// Queues a `kill_switch` event each time the file appears (`on`) or goes (`off`); the
    /// state at start (`on`) is not news.
    async fn watch_kill_switch(
        &self,
        path: std::path::PathBuf,
        mut on: bool,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(KILL_SWITCH_POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let now_on = path.exists();
            if now_on == on {
                continue;
            }
            on = now_on;
            let state = if on {
                "on: every order is rejected"
            } else {
                "off: orders are placed again"
            };
            let event =
                NotifyEvent::standalone(EventKind::KillSwitch, self.clock.now_unix_ms(), state);
            if let Err(e) = self.journal.enqueue_event(event).await {
                tracing::warn!(error = %e, "cannot queue the kill-switch notification");
            }
        }
    }

    /// One destination's loop.
    async fn deliver_from(
        &self,
        channel: Arc<Channel>,
        mut cursor: i64,
        mut stop: watch::Receiver<bool>,
    ) {
        let name = channel.name().to_owned();
        loop {
            if *stop.borrow() {
                return;
            }
            let batch = match self.journal.outbox_after(cursor, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(destination = %name, error = %e, "cannot read the notification outbox");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
            for entry in batch {
                let delivery = if channel.wants(entry.event.kind.as_str()) {
                    let notice = notice(&entry.event);
                    let d = tokio::select! {
                        d = channel.deliver(&notice) => d,
                        // Not recorded: sent (again) after the restart.
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    self.metrics.notification(&name, d.outcome());
                    if let Some(error) = &d.error {
                        tracing::warn!(destination = %name, event = %entry.event.id, kind = %entry.event.kind, attempts = d.attempts, error = %error, "notification not delivered; giving up");
                    } else {
                        tracing::debug!(destination = %name, event = %entry.event.id, "notification delivered");
                    }
                    Some(DeliveryRecord {
                        outcome: d.outcome().to_owned(),
                        attempts: d.attempts,
                        error: d.error,
                    })
                } else {
                    None
                };
                // Recording must not be lost, or the event is sent twice: retry until it sticks.
                loop {
                    match self
                        .journal
                        .outbox_advance(
                            &name,
                            entry.seq,
                            delivery.clone(),
                            self.clock.now_unix_ms(),
                        )
                        .await
                    {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(destination = %name, error = %e, "cannot record a notification delivery; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(POLL) => {}
                                _ = stop.wait_for(|s| *s) => return,
                            }
                        }
                    }
                }
                cursor = entry.seq;
            }
        }
    }
}

/// The notice a destination sends for `event`.
pub fn notice(event: &NotifyEvent) -> Notice {
    Notice {
        id: event.id.clone(),
        event: event.kind.as_str().to_owned(),
        text: event.text(),
        json: serde_json::to_vec(event).unwrap_or_default(),
    }
}
