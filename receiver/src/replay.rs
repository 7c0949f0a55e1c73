//! `alertgate-receiver replay --config FILE --since T`: re-runs journaled alerts through the
//! normalization and risk gates of a (changed) config, places nothing, and says what would have
//! been decided differently ("a tightened `max_quantity` would have rejected 3 of 120").
//!
//! Each message is judged as of its own time: the alert is read as if just received (so nothing
//! expires), the per-minute limit counts along the replayed messages at their journaled times.
//! What depends on state rather than rules is left out: the kill switch (a switch, not a rule),
//! `max_position` (positions then are not positions now), and legs sized at execution
//! (`notional`, targets, closes) are gated with the quantity their journaled order got.
//! `expired` and `duplicate` messages are not re-judged.

use std::sync::Arc;

use alertgate_shared::ManualClock;
use rust_decimal::Decimal;

use crate::config::Settings;
use crate::ingest::{Interpreter, Verdict};
use crate::journal::{MessageRecord, Outcome};
use crate::risk::{Candidate, RiskGates};

/// How one message was, or would be, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Normalized and past the gates (then executed: placed, filled, failed, ...).
    Accepted,
    /// Could not be understood.
    Invalid(String),
    /// A gate refused; its name.
    Rejected(String),
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Accepted => f.write_str("accepted"),
            Self::Invalid(r) => write!(f, "invalid ({r})"),
            Self::Rejected(g) => write!(f, "rejected ({g})"),
        }
    }
}

/// A message the config would decide differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The message.
    pub id: String,
    /// As journaled.
    pub was: Decision,
    /// Under the config replayed.
    pub would: Decision,
}

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Messages judged again.
    pub examined: usize,
    /// Those decided differently.
    pub differences: Vec<Difference>,
}

fn as_journaled(m: &MessageRecord) -> Option<Decision> {
    match m.outcome {
        Outcome::Expired | Outcome::Duplicate => None,
        Outcome::Invalid => Some(Decision::Invalid(m.reason.clone().unwrap_or_default())),
        Outcome::Rejected => Some(Decision::Rejected(m.reason.clone().unwrap_or_default())),
        _ => Some(Decision::Accepted),
    }
}

/// Judges `messages` (oldest first) under `settings`; `interpreter` carries the venue's reading
/// rules (spot only, exchange in symbol, shorts).
pub fn replay(
    settings: &Settings,
    interpreter: &Interpreter,
    messages: &[MessageRecord],
) -> Report {
    let interpreter = Interpreter {
        max_age_ms: i64::MAX,
        ..interpreter.clone()
    };
    let mut risk = settings.risk.clone();
    risk.kill_switch_file = None;
    let clock = ManualClock::at_unix(0);
    let venue_limits = settings
        .venue_configs()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| Some((v.name, v.risk?)))
        .collect();
    let gates = RiskGates::new(risk, Arc::new(clock.clone())).with_venue_limits(venue_limits);
    let mut report = Report::default();
    for m in messages {
        let Some(was) = as_journaled(m) else { continue };
        report.examined += 1;
        clock.set(
            time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(m.recorded_at_ms) * 1_000_000,
            )
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        );
        let reading = interpreter.reread(m, m.received_at_ms.unwrap_or(m.recorded_at_ms));
        let would = match reading.verdict {
            Verdict::Final(Outcome::Invalid, reason) => Decision::Invalid(reason),
            Verdict::Final(..) => Decision::Accepted,
            Verdict::Execute(routed) => {
                let (legs, strategy, venue) = (routed.legs, routed.strategy, routed.venue);
                let account = reading.account.clone().unwrap_or_default();
                let candidates: Vec<Candidate<'_>> = legs
                    .iter()
                    .enumerate()
                    .filter(|(_, leg)| {
                        !matches!(
                            leg.action,
                            crate::normalize::Action::Cancel | crate::normalize::Action::Modify
                        )
                    })
                    .filter_map(|(i, leg)| {
                        let order = m.orders.iter().find(|o| o.leg as usize == i);
                        let quantity = leg
                            .quantity
                            .map(|q| q.get())
                            .or_else(|| order.map(|o| o.quantity))?;
                        Some(Candidate {
                            symbol: &leg.symbol,
                            tv_symbol: &leg.tv_symbol,
                            quantity,
                            price: leg
                                .limit_price
                                .map(|p| p.get())
                                .or(leg.reference_price.map(|p| p.get())),
                            opening: !leg.action.is_close(),
                            position_after: Decimal::ZERO,
                        })
                    })
                    .collect();
                // Daily loss is state, like the kill switch: not replayed.
                let standing = crate::risk::Standing {
                    strategy: strategy.as_deref(),
                    realized_today: None,
                };
                match gates.admit(&account, &venue, &candidates, &standing) {
                    Ok(()) => Decision::Accepted,
                    Err(r) => Decision::Rejected(r.gate.as_str().to_owned()),
                }
            }
        };
        let same = match (&was, &would) {
            (Decision::Invalid(_), Decision::Invalid(_)) => true,
            (a, b) => a == b,
        };
        if !same {
            report.differences.push(Difference {
                id: m.id.clone(),
                was,
                would,
            });
        }
    }
    report
}
