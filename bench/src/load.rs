//! Traffic shapes: closed-loop load (N keep-alive connections, each sending its next request as
//! soon as the previous answer arrives) and paced load (a fixed rate, for latency at light
//! traffic). Every loop is bounded by a deadline and a count.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::http::Connection;

/// A request that takes longer than this counts as an error (and its connection is replaced).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound on the requests one closed-loop connection sends, whatever the duration.
const MAX_REQUESTS_PER_CONNECTION: u64 = 10_000_000;

/// Builds request `n` (unique per run) as complete HTTP bytes.
pub type MakeRequest = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// A latency histogram in microseconds (1 µs to 60 s, 3 significant digits).
pub fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// Microseconds of `d`, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What a run of requests got back.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Answers with the expected status.
    pub ok: u64,
    /// Every answer by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (I/O error or [`REQUEST_TIMEOUT`]).
    pub errors: u64,
    /// Latency of every answered request (µs), from the first byte written to the last read.
    pub latency: Histogram<u64>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// TCP connections opened (more than the connection count means the server closed some).
    pub connections_opened: u64,
}

impl Tally {
    /// Nothing yet.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: 0,
            statuses: BTreeMap::new(),
            errors: 0,
            latency: histogram()?,
            elapsed: Duration::ZERO,
            connections_opened: 0,
        })
    }

    /// Adds `other`'s counts (elapsed times add up, for runs made one after the other).
    pub fn merge(&mut self, other: &Tally) -> anyhow::Result<()> {
        self.ok += other.ok;
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.errors += other.errors;
        self.latency.add(&other.latency)?;
        self.elapsed += other.elapsed;
        self.connections_opened += other.connections_opened;
        Ok(())
    }

    /// Expected answers per second of wall time.
    pub fn ok_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// The JSON/table view.
    pub fn summary(&self) -> Summary {
        Summary {
            requests: self.statuses.values().sum::<u64>() + self.errors,
            ok: self.ok,
            errors: self.errors,
            statuses: self
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            seconds: self.elapsed.as_secs_f64(),
            ok_per_second: self.ok_per_second(),
            latency: Percentiles::of(&self.latency),
            connections_opened: self.connections_opened,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Percentiles {
    /// Reads them off a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// A [`Tally`] as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests sent.
    pub requests: u64,
    /// Answers with the expected status.
    pub ok: u64,
    /// Requests without an answer.
    pub errors: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Wall time.
    pub seconds: f64,
    /// `ok / seconds`.
    pub ok_per_second: f64,
    /// Latency of answered requests.
    pub latency: Percentiles,
    /// TCP connections opened.
    pub connections_opened: u64,
}

/// `connections` keep-alive connections from `source` to `target`, each sending request after
/// request for `duration`. `expect` is the status that counts as success.
pub async fn closed_loop(
    target: SocketAddr,
    source: IpAddr,
    connections: usize,
    duration: Duration,
    make: MakeRequest,
    expect: u16,
) -> anyhow::Result<Tally> {
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let counter = Arc::clone(&counter);
        let make = Arc::clone(&make);
        tasks.spawn(async move {
            let mut tally = Tally::new()?;
            let mut conn = Connection::new(target, Some(source));
            let mut opened = 0;
            if conn.connect().await.is_err() {
                tally.errors += 1;
            }
            let mut sent = 0;
            while Instant::now() < deadline && sent < MAX_REQUESTS_PER_CONNECTION {
                sent += 1;
                let request = make(counter.fetch_add(1, Ordering::Relaxed));
                let t0 = Instant::now();
                match tokio::time::timeout(REQUEST_TIMEOUT, conn.send(&request)).await {
                    Ok(Ok(answer)) => {
                        tally.latency.saturating_record(micros(t0.elapsed()).max(1));
                        *tally.statuses.entry(answer.status).or_default() += 1;
                        if answer.status == expect {
                            tally.ok += 1;
                        }
                    }
                    _ => {
                        tally.errors += 1;
                        opened += conn.opened;
                        conn = Connection::new(target, Some(source));
                        // A server that refuses connections must not turn this into a spin.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            }
            tally.connections_opened = opened + conn.opened;
            anyhow::Ok(tally)
        });
    }
    let mut total = Tally::new()?;
    while let Some(joined) = tasks.join_next().await {
        let tally = joined??;
        total.merge(&tally)?;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// One request of a paced run.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its sequence number.
    pub n: u64,
    /// The answer's status, or `None` without an answer.
    pub status: Option<u16>,
    /// The answer's body.
    pub body: Vec<u8>,
    /// Request latency.
    pub latency: Duration,
    /// Wall-clock time (unix µs) when the answer had been read.
    pub answered_unix_us: i64,
    /// Monotonic time when the answer had been read.
    pub answered: Instant,
}

/// Now, in unix microseconds.
pub fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How a paced run sends.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Where requests go.
    pub target: SocketAddr,
    /// The local address to send from.
    pub source: IpAddr,
    /// Requests per second.
    pub rate: f64,
    /// Requests at most.
    pub count: u64,
    /// No request starts after this.
    pub deadline: Instant,
    /// Each request on its own new connection (as TradingView does; latency includes the
    /// connect), instead of one keep-alive connection.
    pub fresh: bool,
}

/// Sends requests as `pace` says, one at a time.
pub async fn paced(pace: Pace, make: MakeRequest) -> Vec<Sent> {
    let Pace {
        target,
        source,
        rate,
        count,
        deadline,
        fresh,
    } = pace;
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut conn = Connection::new(target, Some(source));
    let mut next = tokio::time::Instant::now();
    let mut out = Vec::new();
    for n in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep_until(next).await;
        next += period;
        if fresh {
            conn = Connection::new(target, Some(source));
        }
        let request = make(n);
        let t0 = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, conn.send(&request)).await;
        let answered = Instant::now();
        let answered_unix_us = unix_micros();
        let (status, body) = match answer {
            Ok(Ok(r)) => (Some(r.status), r.body),
            _ => {
                conn = Connection::new(target, Some(source));
                (None, Vec::new())
            }
        };
        let sent = Sent {
            n,
            status,
            body,
            latency: answered - t0,
            answered_unix_us,
            answered,
        };
        out.push(sent);
    }
    out
}
