//! TradingView-like traffic from a seed: a few accounts, each a strategy firing alerts one
//! after another (market and limit orders on two symbols, multi-leg alerts, target positions, now
//! and then a malformed one), some fired twice, and resent as TradingView resends: after a 5xx
//! (at most three times), and here also after a timeout, which is how a user's second attempt
//! looks to the relay.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertgate_testkit::TradingView;
use serde_json::{json, Value};

use super::rng::Rng;

/// TradingView waits 5 s before a resend; the campaign's seeds last seconds, so it waits this.
pub const RESEND_AFTER: Duration = Duration::from_millis(800);
/// At most this many resends after a 5xx (TradingView: 4 sends per trigger).
pub const MAX_RESENDS: usize = 3;

/// The venue symbols alerts trade, and their TradingView names.
pub const SYMBOLS: [(&str, &str); 2] = [
    ("BINANCE:BTCUSDT", "BTCUSDT"),
    ("BINANCE:ETHUSDT", "ETHUSDT"),
];

/// What an alert asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One market order.
    Market,
    /// One limit order that rests.
    Limit,
    /// Two legs, one per symbol.
    MultiLeg,
    /// `target_position` on BTCUSDT.
    Target,
    /// No quantity: `invalid` at the receiver.
    Invalid,
}

/// One alert a strategy fires.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The relay account.
    pub account: String,
    /// Its place in the account's sequence (the acceptance order, as each account sends one
    /// alert at a time).
    pub seq: usize,
    /// The idempotency key (`id`).
    pub key: String,
    /// What it asks for.
    pub shape: Shape,
    /// Orders it makes when executed (target positions: 0 or 1, decided at the venue).
    pub legs: usize,
    /// The body sent, secret included.
    pub body: String,
    /// Fired twice in a row (the second must be a 409).
    pub twice: bool,
    /// Pause after it, in ms.
    pub gap_ms: u64,
}

/// The secret of `account`.
pub fn secret(account: &str) -> String {
    format!("chaos-secret-{account}-0123456789abcdef")
}

/// The accounts of a seed.
pub fn accounts(rng: &mut Rng) -> Vec<String> {
    (0..rng.range(2, 3)).map(|i| format!("acct{i}")).collect()
}

/// The alerts of `account`, filling about `traffic_ms`.
pub fn plan(rng: &mut Rng, seed: u64, account: &str, traffic_ms: u64) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut elapsed = 0;
    while elapsed < traffic_ms {
        let seq = out.len();
        let key = format!("{account}-s{seed}-{seq}");
        let shape = match rng.range(0, 19) {
            0..=8 => Shape::Market,
            9..=11 => Shape::Limit,
            12..=14 => Shape::MultiLeg,
            15..=17 => Shape::Target,
            _ => Shape::Invalid,
        };
        let btc = format!("0.00{}", rng.range(1, 5));
        let eth = format!("0.0{}", rng.range(1, 5));
        let (symbol, qty, price) = if rng.chance(50) {
            (SYMBOLS[0].0, btc.clone(), "42000")
        } else {
            (SYMBOLS[1].0, eth.clone(), "2500")
        };
        // Spot: BTC is only bought (a target position sells it back), ETH both ways.
        let side = if symbol == SYMBOLS[0].0 || rng.chance(50) {
            "buy"
        } else {
            "sell"
        };
        let mut alert = json!({
            "secret": secret(account),
            "account": account,
            "id": key,
            "strategy": format!("chaos-{account}"),
            "sent_at": "2026-12-01T00:00:00Z",
        });
        let legs = match shape {
            Shape::Market => {
                merge(
                    &mut alert,
                    json!({"symbol": symbol, "action": side, "quantity": qty, "price": price}),
                );
                1
            }
            Shape::Limit => {
                let limit = match (symbol == SYMBOLS[0].0, side) {
                    (true, _) => "41000",
                    (false, "buy") => "2400",
                    (false, _) => "2600",
                };
                merge(
                    &mut alert,
                    json!({"symbol": symbol, "action": side, "quantity": qty,
                    "order_type": "limit", "limit_price": limit, "tif": "gtc", "price": price}),
                );
                1
            }
            Shape::MultiLeg => {
                merge(
                    &mut alert,
                    json!({"symbol": SYMBOLS[0].0, "price": "42000", "legs": [
                        {"symbol": SYMBOLS[0].0, "action": "buy", "quantity": btc, "price": "42000"},
                        {"symbol": SYMBOLS[1].0, "action": "sell", "quantity": eth, "price": "2500"},
                    ]}),
                );
                2
            }
            Shape::Target => {
                let target = format!("0.00{}", rng.range(0, 6));
                merge(
                    &mut alert,
                    json!({"symbol": SYMBOLS[0].0, "action": "buy",
                    "target_position": target, "price": "42000"}),
                );
                1
            }
            Shape::Invalid => {
                merge(
                    &mut alert,
                    json!({"symbol": symbol, "action": side, "price": price}),
                );
                0
            }
        };
        let gap_ms = rng.range(40, 350);
        elapsed += gap_ms;
        out.push(Planned {
            account: account.to_owned(),
            seq,
            key,
            shape,
            legs,
            body: alert.to_string(),
            twice: rng.chance(8),
            gap_ms,
        });
    }
    out
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// How one send ended, as the sender saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status, with the message id of a 200.
    Status(u16, Option<String>),
    /// TradingView's 3 s ran out.
    Timeout,
    /// No connection, or it was closed before an answer.
    Connection,
}

impl Answer {
    /// The sender cannot tell whether the relay stored it.
    pub fn ambiguous(&self) -> bool {
        matches!(self, Self::Timeout | Self::Connection)
    }
}

/// One POST to the relay.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The account.
    pub account: String,
    /// The alert's place in the account's sequence.
    pub seq: usize,
    /// The idempotency key.
    pub key: String,
    /// What came back.
    pub answer: Answer,
    /// The relay's incarnation when the request was sent and when it was answered.
    pub epochs: (u64, u64),
    /// Whether a disk was full at any time during the request.
    pub disk_full: bool,
    /// When it was sent, ms after the traffic started.
    pub at_ms: u64,
}

/// What the senders share with the fault executor.
#[derive(Debug, Default)]
pub struct Shared {
    /// Bumped each time the relay is started again.
    pub relay_epoch: AtomicU64,
    /// Set while a disk is full (and a moment after).
    pub disk_full: AtomicBool,
}

/// Sends one account's alerts in order, each after the previous one's answer and gap.
pub async fn send_all(
    url: String,
    alerts: Vec<Planned>,
    shared: Arc<Shared>,
    started: Instant,
) -> Vec<Attempt> {
    let tv = TradingView::new();
    let mut attempts = Vec::new();
    for alert in alerts {
        let mut resends = 0;
        let mut sends = if alert.twice { 2 } else { 1 };
        while sends > 0 {
            sends -= 1;
            let attempt = send_once(&tv, &url, &alert, &shared, started).await;
            let answer = attempt.answer.clone();
            attempts.push(attempt);
            let resend = match answer {
                Answer::Status(s, _) if (500..600).contains(&s) => true,
                Answer::Timeout | Answer::Connection => resends == 0,
                _ => false,
            };
            if resend && resends < MAX_RESENDS {
                resends += 1;
                sends += 1;
                tokio::time::sleep(RESEND_AFTER).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(alert.gap_ms)).await;
    }
    attempts
}

async fn send_once(
    tv: &TradingView,
    url: &str,
    alert: &Planned,
    shared: &Shared,
    started: Instant,
) -> Attempt {
    let epoch_before = shared.relay_epoch.load(Ordering::SeqCst);
    let full_before = shared.disk_full.load(Ordering::SeqCst);
    let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let answer = match tv.post(url, alert.body.clone()).await {
        Ok(a) => {
            let id = (a.status == 200)
                .then(|| a.json()["id"].as_str().map(str::to_owned))
                .flatten();
            Answer::Status(a.status, id)
        }
        Err(e) if e.is_timeout() => Answer::Timeout,
        Err(_) => Answer::Connection,
    };
    Attempt {
        account: alert.account.clone(),
        seq: alert.seq,
        key: alert.key.clone(),
        answer,
        epochs: (epoch_before, shared.relay_epoch.load(Ordering::SeqCst)),
        disk_full: full_before || shared.disk_full.load(Ordering::SeqCst),
        at_ms,
    }
}
