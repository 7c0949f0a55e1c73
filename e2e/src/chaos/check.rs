//! The invariants (DESIGN.md section 17), checked once the stack is quiet: every alert the relay
//! answered 200 became exactly one venue order per leg, or one dead letter with a reason, or a
//! journaled outcome without orders (invalid, rejected, ... with its reason); no venue order
//! without an alert the relay took; per (account, symbol) venue orders in acceptance order; no
//! 5xx to the sender while the spool was writable; metrics agree with the journal.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use alertgate_testkit::emulators::binance::EmulatedOrder;
use anyhow::Context as _;

use super::traffic::{Answer, Attempt, Planned};

/// One journaled message, as the receiver's SQLite journal holds it.
#[derive(Debug, Clone)]
pub struct Message {
    /// `webhook-id`.
    pub id: String,
    /// The alert's idempotency key.
    pub key: Option<String>,
    /// Its outcome.
    pub outcome: String,
    /// Why.
    pub reason: Option<String>,
}

/// One journaled order.
#[derive(Debug, Clone)]
pub struct Order {
    /// The venue's idempotency key.
    pub client_order_id: String,
    /// Its message.
    pub message_id: String,
    /// Its leg.
    pub leg: i64,
    /// `placed`, `filled`, `failed`, ...
    pub status: String,
}

/// What the journal holds.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    /// By id.
    pub messages: HashMap<String, Message>,
    /// In journal order.
    pub orders: Vec<Order>,
}

impl Journal {
    /// Reads the receiver's SQLite journal (read-only; the receiver may be running).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let db =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("opening {}", path.display()))?;
        let mut journal = Self::default();
        let mut q = db.prepare("SELECT id, idempotency_key, outcome, reason FROM messages")?;
        let rows = q.query_map([], |r| {
            Ok(Message {
                id: r.get(0)?,
                key: r.get(1)?,
                outcome: r.get(2)?,
                reason: r.get(3)?,
            })
        })?;
        for m in rows {
            let m = m?;
            journal.messages.insert(m.id.clone(), m);
        }
        let mut q =
            db.prepare("SELECT client_order_id, message_id, leg, status FROM orders ORDER BY seq")?;
        let rows = q.query_map([], |r| {
            Ok(Order {
                client_order_id: r.get(0)?,
                message_id: r.get(1)?,
                leg: r.get(2)?,
                status: r.get(3)?,
            })
        })?;
        for o in rows {
            journal.orders.push(o?);
        }
        Ok(journal)
    }

    /// Reads the receiver's PostgreSQL journal (its own schema; `url` sets the search path).
    pub async fn read_postgres(url: &str) -> anyhow::Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        let mut journal = Self::default();
        for r in client
            .query(
                "SELECT id, idempotency_key, outcome, reason FROM messages",
                &[],
            )
            .await?
        {
            let m = Message {
                id: r.try_get(0)?,
                key: r.try_get(1)?,
                outcome: r.try_get(2)?,
                reason: r.try_get(3)?,
            };
            journal.messages.insert(m.id.clone(), m);
        }
        for r in client
            .query(
                "SELECT client_order_id, message_id, leg, status FROM orders ORDER BY seq",
                &[],
            )
            .await?
        {
            journal.orders.push(Order {
                client_order_id: r.try_get(0)?,
                message_id: r.try_get(1)?,
                leg: r.try_get(2)?,
                status: r.try_get(3)?,
            });
        }
        drop(client);
        let _ = connection.await;
        Ok(journal)
    }

    /// Messages or orders still in flight (`pending`, `new`, `unknown`): not quiet yet.
    pub fn unsettled(&self) -> Vec<String> {
        let messages = self
            .messages
            .values()
            .filter(|m| matches!(m.outcome.as_str(), "pending" | "unknown"))
            .map(|m| format!("message {} {}", m.id, m.outcome));
        let orders = self
            .orders
            .iter()
            .filter(|o| matches!(o.status.as_str(), "new" | "unknown"))
            .map(|o| format!("order {} {}", o.client_order_id, o.status));
        messages.chain(orders).collect()
    }
}

/// A dead letter, as far as the check needs it.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The message id.
    pub id: String,
    /// Why it was given up.
    pub reason: String,
}

/// Metrics read after quiescence.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `alertgate_relay_requests_total{outcome="accepted"}` of the relay's last incarnation.
    pub relay_accepted: u64,
    /// The relay's incarnation (0: never restarted).
    pub relay_epoch: u64,
    /// `alertgate_receiver_messages_total` by outcome, when the receiver was never restarted.
    pub receiver_messages: Option<BTreeMap<String, u64>>,
}

/// Everything the check reads.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The alerts planned.
    pub plans: &'a [Planned],
    /// Every send and its answer.
    pub attempts: &'a [Attempt],
    /// The relay's dead letters.
    pub letters: &'a [Letter],
    /// The receiver's journal.
    pub journal: &'a Journal,
    /// The venue's order book, in the order the venue took them.
    pub venue: &'a [EmulatedOrder],
    /// Metrics.
    pub metrics: &'a Metrics,
}

/// The invariants that do not hold, one line each: `(order, others)`, where `order` holds the
/// venue orders out of acceptance order (kept apart: see [`super::Options::strict_order`]).
pub fn violations(o: &Observed<'_>) -> (Vec<String>, Vec<String>) {
    let mut out = Vec::new();
    let mut disorder = Vec::new();
    let plans: HashMap<&str, &Planned> = o.plans.iter().map(|p| (p.key.as_str(), p)).collect();
    let letters: HashMap<&str, &Letter> = o.letters.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut venue_by_client: HashMap<&str, Vec<&EmulatedOrder>> = HashMap::new();
    for v in o.venue {
        venue_by_client
            .entry(v.client_order_id.as_str())
            .or_default()
            .push(v);
    }
    let mut orders_by_message: HashMap<&str, Vec<&Order>> = HashMap::new();
    for j in &o.journal.orders {
        orders_by_message
            .entry(j.message_id.as_str())
            .or_default()
            .push(j);
    }
    let journal_by_client: HashMap<&str, &Order> = o
        .journal
        .orders
        .iter()
        .map(|j| (j.client_order_id.as_str(), j))
        .collect();

    // 1. Every 200 → one venue order per leg, a dead letter with a reason, or an outcome without
    //    orders.
    let accepted: Vec<(&Attempt, &str)> = o
        .attempts
        .iter()
        .filter_map(|a| match &a.answer {
            Answer::Status(200, Some(id)) => Some((a, id.as_str())),
            _ => None,
        })
        .collect();
    for (attempt, id) in &accepted {
        let plan = plans.get(attempt.key.as_str());
        let message = o.journal.messages.get(*id);
        let orders = orders_by_message.get(*id).cloned().unwrap_or_default();
        match (letters.get(*id), message) {
            (Some(letter), _) if letter.reason.trim().is_empty() => {
                out.push(format!(
                    "{} ({}): a dead letter without a reason",
                    id, attempt.key
                ));
            }
            (Some(letter), _) => {
                let placed: usize = orders
                    .iter()
                    .map(|j| {
                        venue_by_client
                            .get(j.client_order_id.as_str())
                            .map_or(0, Vec::len)
                    })
                    .sum();
                if placed > 0 {
                    out.push(format!(
                        "{} ({}): dead-lettered ({}) yet {placed} venue order(s) placed",
                        id, attempt.key, letter.reason
                    ));
                }
            }
            (None, None) => out.push(format!(
                "{} ({}): answered 200, yet neither journaled nor dead-lettered",
                id, attempt.key
            )),
            (None, Some(m)) => {
                // An alert too malformed to read has no key in the journal.
                if m.key.as_deref().is_some_and(|k| k != attempt.key) {
                    out.push(format!(
                        "{id}: journaled with key {:?}, sent as {}",
                        m.key, attempt.key
                    ));
                }
                match m.outcome.as_str() {
                    "placed" | "filled" | "cancelled" | "failed" => {
                        let expected = plan.map_or(0, |p| p.legs);
                        let is_target =
                            plan.is_some_and(|p| p.shape == super::traffic::Shape::Target);
                        // A target position is 0 orders (already there), 1, or 2 (through zero).
                        let counts_ok = if is_target {
                            orders.len() <= 2
                        } else {
                            orders.len() == expected || m.outcome == "failed"
                        };
                        if !counts_ok {
                            out.push(format!(
                                "{id} ({}): outcome {} with {} journaled order(s), {expected} leg(s)",
                                attempt.key,
                                m.outcome,
                                orders.len()
                            ));
                        }
                        if m.outcome == "failed"
                            && m.reason.as_deref().is_none_or(|r| r.trim().is_empty())
                        {
                            out.push(format!("{id} ({}): failed without a reason", attempt.key));
                        }
                    }
                    "invalid" | "rejected" | "expired" | "duplicate" => {
                        if !orders.is_empty() {
                            out.push(format!(
                                "{id} ({}): outcome {} yet {} journaled order(s)",
                                attempt.key,
                                m.outcome,
                                orders.len()
                            ));
                        }
                        if matches!(m.outcome.as_str(), "invalid" | "rejected")
                            && m.reason.as_deref().is_none_or(|r| r.trim().is_empty())
                        {
                            out.push(format!(
                                "{id} ({}): {} without a reason",
                                attempt.key, m.outcome
                            ));
                        }
                        if m.outcome == "invalid"
                            && plan.is_some_and(|p| p.shape != super::traffic::Shape::Invalid)
                        {
                            out.push(format!(
                                "{id} ({}): a well-formed alert journaled invalid: {:?}",
                                attempt.key, m.reason
                            ));
                        }
                    }
                    other => out.push(format!(
                        "{id} ({}): outcome {other} after quiescence",
                        attempt.key
                    )),
                }
                for j in &orders {
                    let at_venue = venue_by_client
                        .get(j.client_order_id.as_str())
                        .map_or(0, Vec::len);
                    let want = match j.status.as_str() {
                        "placed" | "partially_filled" | "filled" | "cancelled" => 1,
                        "failed" | "skipped" => 0,
                        _ => usize::MAX,
                    };
                    if at_venue != want {
                        out.push(format!(
                            "{id} ({}): order {} is {} in the journal, {at_venue} at the venue",
                            attempt.key, j.client_order_id, j.status
                        ));
                    }
                }
            }
        }
    }

    // 2. No venue order without an alert the relay took; no client id twice; no key executed
    //    by two messages.
    let mut sends_by_key: HashMap<&str, Vec<&Answer>> = HashMap::new();
    for a in o.attempts {
        sends_by_key
            .entry(a.key.as_str())
            .or_default()
            .push(&a.answer);
    }
    let mut executed_by_key: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (client, at_venue) in &venue_by_client {
        if at_venue.len() > 1 {
            out.push(format!(
                "venue order {client} placed {} times (ids {:?})",
                at_venue.len(),
                at_venue.iter().map(|v| v.order_id).collect::<Vec<_>>()
            ));
        }
        let Some(j) = journal_by_client.get(client) else {
            out.push(format!(
                "venue order {client}: no order of that id in the journal"
            ));
            continue;
        };
        let Some(m) = o.journal.messages.get(&j.message_id) else {
            out.push(format!(
                "venue order {client}: its message {} is not journaled",
                j.message_id
            ));
            continue;
        };
        let key = m.key.as_deref().unwrap_or("");
        executed_by_key
            .entry(key)
            .or_default()
            .insert(m.id.as_str());
        let sends = sends_by_key.get(key).cloned().unwrap_or_default();
        let took = sends
            .iter()
            .any(|a| matches!(a, Answer::Status(200, _) | Answer::Status(409, _)) || a.ambiguous());
        if !took {
            out.push(format!(
                "venue order {client} ({key}): the relay never took that alert (answers {sends:?})"
            ));
        }
    }
    for (key, messages) in &executed_by_key {
        if messages.len() > 1 {
            out.push(format!(
                "alert {key} executed by {} messages: {messages:?}",
                messages.len()
            ));
        }
    }

    // 3. Per (account, symbol), venue orders in acceptance order.
    let mut last: HashMap<(String, String), (usize, i64, String)> = HashMap::new();
    for v in o.venue {
        let Some(j) = journal_by_client.get(v.client_order_id.as_str()) else {
            continue;
        };
        let Some(plan) = o
            .journal
            .messages
            .get(&j.message_id)
            .and_then(|m| m.key.as_deref())
            .and_then(|k| plans.get(k))
        else {
            continue;
        };
        let stream = (plan.account.clone(), v.symbol.clone());
        let here = (plan.seq, j.leg, plan.key.clone());
        if let Some(before) = last.get(&stream) {
            if (here.0, here.1) < (before.0, before.1) {
                disorder.push(format!(
                    "{}/{}: venue order for {} (leg {}) came after {} (leg {}), accepted later",
                    stream.0, stream.1, here.2, here.1, before.2, before.1
                ));
            }
        }
        last.insert(stream, here);
    }

    // 4. No 5xx to the sender while the spool was writable.
    for a in o.attempts {
        if let Answer::Status(s, _) = a.answer {
            if (500..600).contains(&s) && !a.disk_full {
                out.push(format!(
                    "{} at t+{} ms: the relay answered {s} while its spool was writable",
                    a.key, a.at_ms
                ));
            }
        }
    }

    // 5. Metrics agree with the journal. The relay's last incarnation counted every 200 the
    //    sender saw from it, and at most the sends it took whose answer never arrived (a sender
    //    that gave up during a SIGSTOP).
    let epoch = o.metrics.relay_epoch;
    let from_last = |a: &&Attempt| a.epochs == (epoch, epoch);
    let seen = accepted.iter().filter(|(a, _)| from_last(a)).count() as u64;
    let unanswered = o
        .attempts
        .iter()
        .filter(from_last)
        .filter(|a| a.answer.ambiguous())
        .count() as u64;
    if !(seen..=seen + unanswered).contains(&o.metrics.relay_accepted) {
        out.push(format!(
            "relay metrics: requests_total{{outcome=\"accepted\"}} = {}, the sender saw {seen} 200s from that relay and {unanswered} sends without an answer",
            o.metrics.relay_accepted
        ));
    }
    if let Some(counted) = &o.metrics.receiver_messages {
        if !metrics_agree(counted, o.journal) {
            out.push(format!(
                "receiver metrics: messages_total {:?}, the journal holds {:?}",
                nonzero(counted),
                outcomes(o.journal)
            ));
        }
    }
    (disorder, out)
}

/// Messages in the journal by outcome.
fn outcomes(journal: &Journal) -> BTreeMap<String, u64> {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for m in journal.messages.values() {
        *by.entry(m.outcome.clone()).or_default() += 1;
    }
    by
}

fn nonzero(counted: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counted
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// `alertgate_receiver_messages_total` by outcome agrees with the journal. A message left
/// `unknown` is counted so, and again under the outcome reconciliation settles it to: `unknown`
/// may count more messages than the journal still holds.
pub fn metrics_agree(counted: &BTreeMap<String, u64>, journal: &Journal) -> bool {
    let journaled = outcomes(journal);
    let counted = nonzero(counted);
    let unknown = |m: &BTreeMap<String, u64>| m.get("unknown").copied().unwrap_or(0);
    let settled = |m: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        m.iter()
            .filter(|(k, _)| *k != "unknown")
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    settled(&counted) == settled(&journaled) && unknown(&counted) >= unknown(&journaled)
}
