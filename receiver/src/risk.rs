//! Risk gates (receiver/README.md, "Risk gates"): every order passes them before it is placed. Each
//! rejection carries the gate's name as the message's `reason`:
//! `kill_switch`, `strategy_disabled`, `outside_session`, `max_daily_loss`, `symbol_not_allowed`,
//! `max_quantity`, `max_notional`, `max_orders_per_minute`, `max_position`.
//!
//! The kill switch, the symbol list and the per-minute count apply to every order. The order
//! controls (strategy switches, sessions, daily loss; [`crate::controls`]) and the size gates
//! (`max_quantity`, `max_notional`, `max_position`) apply to opening orders only: an order that
//! closes (part of) a position reduces exposure, and refusing it would keep the risk it removes.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use alertgate_shared::Clock;
use rust_decimal::Decimal;

use crate::config::{RiskConfig, RiskLimits};
use crate::controls::Strategies;
use crate::metrics::Metrics;

/// Why an order was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gate {
    /// The kill-switch file exists.
    KillSwitch,
    /// The symbol is not in `allowed_symbols`.
    SymbolNotAllowed,
    /// The quantity is over `max_quantity`.
    MaxQuantity,
    /// quantity × price is over `max_notional` (or there is no price to check it with).
    MaxNotional,
    /// The account placed `max_orders_per_minute` orders in the last 60 seconds.
    MaxOrdersPerMinute,
    /// The order would leave a position larger than `max_position`.
    MaxPosition,
    /// The alert's strategy was disabled (`POST /v1/strategies/{name}/disable`).
    StrategyDisabled,
    /// Now is outside every `[risk] sessions` entry.
    OutsideSession,
    /// The account's realized loss today (UTC) reached `max_daily_loss`.
    MaxDailyLoss,
}

impl Gate {
    /// The `reason` recorded for the message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KillSwitch => "kill_switch",
            Self::SymbolNotAllowed => "symbol_not_allowed",
            Self::MaxQuantity => "max_quantity",
            Self::MaxNotional => "max_notional",
            Self::MaxOrdersPerMinute => "max_orders_per_minute",
            Self::MaxPosition => "max_position",
            Self::StrategyDisabled => "strategy_disabled",
            Self::OutsideSession => "outside_session",
            Self::MaxDailyLoss => "max_daily_loss",
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused order: the gate and a detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The gate.
    pub gate: Gate,
    /// What exceeded what.
    pub detail: String,
}

fn reject(gate: Gate, detail: String) -> Rejection {
    Rejection { gate, detail }
}

/// One order as the gates see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Venue symbol.
    pub symbol: &'a str,
    /// The symbol as the alert wrote it.
    pub tv_symbol: &'a str,
    /// Quantity.
    pub quantity: Decimal,
    /// Limit price, else the reference price.
    pub price: Option<Decimal>,
    /// `true` for buy/sell, `false` for an order that reduces a position.
    pub opening: bool,
    /// Signed position after this order (and the alert's earlier legs).
    pub position_after: Decimal,
}

/// What the order controls know about one alert, read before the gates run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing<'a> {
    /// The alert's strategy, when it names one.
    pub strategy: Option<&'a str>,
    /// What the account realized today (UTC); read only while `max_daily_loss` is set and the
    /// alert opens.
    pub realized_today: Option<Decimal>,
}

/// The gates with their state (the per-minute counts, the strategy switches).
#[derive(Debug)]
pub struct RiskGates {
    /// Limits and the kill-switch path.
    config: RiskConfig,
    /// Time of the sliding minute and of sessions.
    clock: Arc<dyn Clock>,
    /// Unix ms of each order counted per account in the last minute.
    recent: Mutex<HashMap<String, VecDeque<i64>>>,
    /// Strategy switches.
    strategies: Arc<Strategies>,
    /// Metrics for strategies seen and daily-loss locks.
    metrics: Metrics,
    /// Each venue's `risk` overrides, by venue name.
    venues: HashMap<String, RiskLimits>,
}

const MINUTE_MS: i64 = 60_000;

impl RiskGates {
    /// Gates for `config`.
    pub fn new(config: RiskConfig, clock: Arc<dyn Clock>) -> Self {
        Self::with_metrics(config, clock, Metrics::default())
    }

    /// Gates for `config` reporting to `metrics`.
    pub fn with_metrics(config: RiskConfig, clock: Arc<dyn Clock>, metrics: Metrics) -> Self {
        Self {
            config,
            clock,
            recent: Mutex::new(HashMap::new()),
            strategies: Arc::new(Strategies::default()),
            metrics,
            venues: HashMap::new(),
        }
    }

    /// These gates with each venue's `risk` overrides (by venue name).
    pub fn with_venue_limits(mut self, venues: HashMap<String, RiskLimits>) -> Self {
        self.venues = venues;
        self
    }

    /// The strategy switches.
    pub fn strategies(&self) -> &Arc<Strategies> {
        &self.strategies
    }

    /// The kill-switch file, if configured.
    pub fn kill_switch_file(&self) -> Option<&PathBuf> {
        self.config.kill_switch_file.as_ref()
    }

    /// `true` while the kill-switch file exists.
    pub fn kill_switch_on(&self) -> bool {
        self.config
            .kill_switch_file
            .as_ref()
            .is_some_and(|p| p.exists())
    }

    /// The limits for `account` at `venue` ([`RiskConfig::limits_at`]).
    pub fn limits(&self, account: &str, venue: &str) -> RiskLimits {
        self.config.limits_at(account, self.venues.get(venue))
    }

    /// `true` once the account's per-minute window has been loaded (see [`Self::seed`]).
    pub fn is_seeded(&self, account: &str) -> bool {
        self.lock().contains_key(account)
    }

    /// Loads `count` orders journaled in the last minute (after a restart), counted as of now.
    pub fn seed(&self, account: &str, count: u32) {
        let now = self.clock.now_unix_ms();
        self.lock()
            .entry(account.to_owned())
            .or_insert_with(|| (0..count).map(|_| now).collect());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<i64>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks every order of one alert; all pass or the alert is rejected. When they pass, they
    /// are counted against the account's per-minute limit.
    pub fn admit(
        &self,
        account: &str,
        venue: &str,
        orders: &[Candidate<'_>],
        standing: &Standing<'_>,
    ) -> Result<(), Rejection> {
        if self.kill_switch_on() {
            return Err(reject(
                Gate::KillSwitch,
                "the kill-switch file exists".into(),
            ));
        }
        let limits = self.limits(account, venue);
        if orders.iter().any(|c| c.opening) {
            self.check_controls(account, &limits, standing)?;
        }
        for c in orders {
            check_order(&limits, c)?;
        }
        let now = self.clock.now_unix_ms();
        let mut recent = self.lock();
        let times = recent.entry(account.to_owned()).or_default();
        while times.front().is_some_and(|&t| t <= now - MINUTE_MS) {
            times.pop_front();
        }
        if let Some(max) = limits.max_orders_per_minute {
            let wanted = times.len() + orders.len();
            if wanted > max as usize {
                return Err(reject(
                    Gate::MaxOrdersPerMinute,
                    format!(
                        "{} orders in the last minute, {} more asked, limit {max}",
                        times.len(),
                        orders.len()
                    ),
                ));
            }
        }
        times.extend(std::iter::repeat_n(now, orders.len()));
        Ok(())
    }
}

impl RiskGates {
    /// The gates of [`crate::controls`], for an alert that opens.
    fn check_controls(
        &self,
        account: &str,
        limits: &RiskLimits,
        standing: &Standing<'_>,
    ) -> Result<(), Rejection> {
        if let Some(strategy) = standing.strategy {
            if !self.strategies.enabled(strategy, &self.metrics) {
                return Err(reject(
                    Gate::StrategyDisabled,
                    format!("strategy {strategy:?} is disabled"),
                ));
            }
        }
        let schedule = limits.schedule();
        if !schedule.is_open(self.clock.now_unix_ms()) {
            let sessions: Vec<String> = schedule.sessions.iter().map(|s| s.to_string()).collect();
            return Err(reject(
                Gate::OutsideSession,
                format!(
                    "outside the sessions {sessions:?} ({})",
                    String::from(schedule.zone.clone())
                ),
            ));
        }
        if let (Some(max), Some(realized)) = (limits.max_daily_loss, standing.realized_today) {
            let locked = -realized >= max;
            self.metrics.daily_loss_locked(account, locked);
            if locked {
                return Err(reject(
                    Gate::MaxDailyLoss,
                    format!(
                        "realized {} today (UTC), max_daily_loss {max}; opening orders resume at 00:00 UTC",
                        realized.normalize()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `true` when `account`'s opening orders need today's realized PnL.
    pub fn needs_daily_pnl(&self, account: &str, venue: &str) -> bool {
        self.limits(account, venue).max_daily_loss.is_some()
    }
}

fn check_order(limits: &RiskLimits, c: &Candidate<'_>) -> Result<(), Rejection> {
    if let Some(allowed) = limits.allowed_symbols.as_ref().filter(|a| !a.is_empty()) {
        if !allowed.iter().any(|s| s == c.symbol || s == c.tv_symbol) {
            return Err(reject(
                Gate::SymbolNotAllowed,
                format!("{} is not in allowed_symbols", c.tv_symbol),
            ));
        }
    }
    if !c.opening {
        return Ok(());
    }
    if let Some(max) = limits.max_quantity {
        if c.quantity > max {
            return Err(reject(
                Gate::MaxQuantity,
                format!("quantity {} > max_quantity {max}", c.quantity),
            ));
        }
    }
    if let Some(max) = limits.max_notional {
        match c.price {
            Some(price) if c.quantity * price > max => {
                return Err(reject(
                    Gate::MaxNotional,
                    format!(
                        "notional {} > max_notional {max}",
                        (c.quantity * price).normalize()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                return Err(reject(
                    Gate::MaxNotional,
                    "no limit or reference price to check max_notional with: add \"price\" to the alert".into(),
                ));
            }
        }
    }
    if let Some(max) = limits.max_position {
        if c.position_after.abs() > max {
            return Err(reject(
                Gate::MaxPosition,
                format!(
                    "position after the order {} > max_position {max}",
                    c.position_after
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alertgate_shared::ManualClock;

    fn candidate(quantity: i64, price: Option<i64>) -> Candidate<'static> {
        Candidate {
            symbol: "BTCUSDT",
            tv_symbol: "BINANCE:BTCUSDT",
            quantity: Decimal::from(quantity),
            price: price.map(Decimal::from),
            opening: true,
            position_after: Decimal::from(quantity),
        }
    }

    fn none() -> Standing<'static> {
        Standing::default()
    }

    fn gates(config: RiskConfig) -> (ManualClock, RiskGates) {
        let clock = ManualClock::at_unix(1_000_000);
        (clock.clone(), RiskGates::new(config, Arc::new(clock)))
    }

    #[test]
    fn the_per_minute_limit_counts_a_sliding_minute() {
        let (clock, g) = gates(RiskConfig {
            max_orders_per_minute: Some(2),
            ..RiskConfig::default()
        });
        g.admit("a", "paper", &[candidate(1, None)], &none())
            .unwrap();
        g.admit("a", "paper", &[candidate(1, None)], &none())
            .unwrap();
        assert_eq!(
            g.admit("a", "paper", &[candidate(1, None)], &none())
                .unwrap_err()
                .gate,
            Gate::MaxOrdersPerMinute
        );
        g.admit("b", "paper", &[candidate(1, None)], &none())
            .unwrap();
        clock.advance(time::Duration::seconds(60));
        g.admit("a", "paper", &[candidate(1, None)], &none())
            .unwrap();
    }

    #[test]
    fn size_gates_do_not_stop_an_order_that_reduces_a_position() {
        let (_c, g) = gates(RiskConfig {
            max_quantity: Some(Decimal::ONE),
            ..RiskConfig::default()
        });
        assert_eq!(
            g.admit("a", "paper", &[candidate(5, None)], &none())
                .unwrap_err()
                .gate,
            Gate::MaxQuantity
        );
        g.admit(
            "a",
            "paper",
            &[Candidate {
                opening: false,
                ..candidate(5, None)
            }],
            &none(),
        )
        .unwrap();
    }

    #[test]
    fn notional_without_any_price_is_refused_while_the_limit_is_set() {
        let (_c, g) = gates(RiskConfig {
            max_notional: Some(Decimal::from(100)),
            ..RiskConfig::default()
        });
        assert_eq!(
            g.admit("a", "paper", &[candidate(1, None)], &none())
                .unwrap_err()
                .gate,
            Gate::MaxNotional
        );
        assert_eq!(
            g.admit("a", "paper", &[candidate(2, Some(51))], &none())
                .unwrap_err()
                .gate,
            Gate::MaxNotional
        );
        g.admit("a", "paper", &[candidate(2, Some(50))], &none())
            .unwrap();
    }
}
