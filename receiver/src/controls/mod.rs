//! Order controls (receiver/README.md, "Order controls"; DESIGN.md section 13): the state the
//! risk gates read beyond their limits.
//!
//! - [`session`]: trading sessions in IANA time zones (`outside_session`).
//! - [`daily_loss`]: realized PnL per account per UTC day (`max_daily_loss`).
//! - [`Strategies`] (here): strategy switches, persisted in the journal (`strategy_disabled`).
//!
//! These gates stop *opening* orders only: exits, closes and cancels reduce risk and still run.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::journal::{EventKind, Journal, JournalError, NotifyEvent, StrategySwitch};
use crate::metrics::Metrics;

pub mod daily_loss;
pub mod session;

/// The UTC days on which each account's daily-loss lock was already announced.
#[derive(Debug, Default)]
pub struct LockNotices {
    /// Account → start of the UTC day last announced.
    announced: Mutex<std::collections::HashMap<String, i64>>,
}

impl LockNotices {
    /// `true` the first time `account` is found locked on the day starting at `day_start_ms`.
    pub fn first_today(&self, account: &str, day_start_ms: i64) -> bool {
        let mut announced = self.announced.lock().unwrap_or_else(|e| e.into_inner());
        announced.insert(account.to_owned(), day_start_ms) != Some(day_start_ms)
    }
}

/// Strategy switches: the journal's record, cached; strategies seen in alerts count as enabled.
#[derive(Debug, Default)]
pub struct Strategies {
    /// By name: switched ones with their time, seen ones with `changed_at_ms` 0.
    known: Mutex<BTreeMap<String, StrategySwitch>>,
}

impl Strategies {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, StrategySwitch>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads the journal's switches (at start).
    pub async fn load(&self, journal: &dyn Journal, metrics: &Metrics) -> Result<(), JournalError> {
        let switches = journal.strategies().await?;
        let mut known = self.lock();
        for s in switches {
            metrics.strategy_enabled(&s.name, s.enabled);
            known.insert(s.name.clone(), s);
        }
        Ok(())
    }

    /// `true` unless `name` was disabled; remembers a strategy seen for the first time.
    pub fn enabled(&self, name: &str, metrics: &Metrics) -> bool {
        let mut known = self.lock();
        if let Some(s) = known.get(name) {
            return s.enabled;
        }
        metrics.strategy_enabled(name, true);
        known.insert(
            name.to_owned(),
            StrategySwitch {
                name: name.to_owned(),
                enabled: true,
                changed_at_ms: 0,
            },
        );
        true
    }

    /// Switches `name` on or off, durably, then in memory. Returns the switch.
    pub async fn set(
        &self,
        journal: &dyn Journal,
        metrics: &Metrics,
        name: &str,
        enabled: bool,
        now_ms: i64,
    ) -> Result<StrategySwitch, JournalError> {
        let switch = StrategySwitch {
            name: name.to_owned(),
            enabled,
            changed_at_ms: now_ms,
        };
        journal.set_strategy(switch.clone()).await?;
        if !enabled {
            let event = NotifyEvent::standalone(EventKind::StrategyDisabled, now_ms, name);
            if let Err(e) = journal.enqueue_event(event).await {
                tracing::warn!(error = %e, "cannot queue the strategy_disabled notification");
            }
        }
        self.lock().insert(name.to_owned(), switch.clone());
        metrics.strategy_enabled(name, enabled);
        tracing::warn!(
            strategy = name,
            enabled,
            "strategy {}",
            if enabled { "enabled" } else { "disabled" }
        );
        Ok(switch)
    }

    /// Every strategy switched or seen, by name.
    pub fn list(&self) -> Vec<StrategySwitch> {
        self.lock().values().cloned().collect()
    }
}
