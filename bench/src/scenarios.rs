//! The five scenarios of issue 7. Each starts its own services, so one scenario's spool, journal
//! or peak memory never colours the next.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::http::{self, Connection};
use crate::load::{
    self, closed_loop, histogram, micros, paced, MakeRequest, Pace, Percentiles, Summary,
};
use crate::procs::{memory, Bare, Binaries, CpuMeter, CpuUse, Flask, Memory, Profiler};
use crate::stack::{alert, Stack, LEGIT_SOURCE, OPS_TOKEN, UNLISTED_SOURCE};

/// How long and how hard each scenario runs.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `quick` (smoke test) or `full`.
    pub mode: &'static str,
    /// Connections for the reject-path comparison.
    pub reject_connections: usize,
    /// Seconds per target (split in two alternating halves: bare, relay, bare, relay).
    pub reject_seconds: f64,
    /// Connection counts of the accept path.
    pub accept_connections: Vec<usize>,
    /// Seconds per connection count.
    pub accept_seconds: f64,
    /// Symbols the accept-path alerts rotate over (the receiver serializes each symbol).
    pub accept_symbols: u64,
    /// Alerts per second of the end-to-end scenario.
    pub e2e_rate: f64,
    /// Alerts timed from the receiver's timestamps.
    pub e2e_alerts: u64,
    /// Alerts timed by polling the receiver.
    pub e2e_polled_alerts: u64,
    /// Seconds of flood.
    pub flood_seconds: f64,
    /// Flood connections (closed loop, unlisted address).
    pub flood_connections: usize,
    /// Legitimate alerts per second during the flood.
    pub legit_rate: f64,
    /// Seconds the services rest before idle memory is read.
    pub settle_seconds: f64,
    /// Seconds of unrecorded traffic before measuring (connection pools, caches, page faults).
    pub warmup_seconds: f64,
    /// Connections of the receiver-alone scenario (the relay's forwarder plays no part).
    pub receiver_connections: usize,
    /// Seconds of the receiver-alone scenario.
    pub receiver_seconds: f64,
    /// Connections of the Flask comparison (the wrk runs used 32).
    pub compare_connections: usize,
    /// Seconds of each half of a comparison round (Flask, then the relay).
    pub compare_seconds: f64,
    /// Comparison rounds; the target must hold in every one.
    pub compare_rounds: usize,
}

impl Plan {
    /// The real measurement.
    pub fn full() -> Self {
        Self {
            mode: "full",
            reject_connections: 64,
            reject_seconds: 6.0,
            accept_connections: vec![1, 16, 64],
            accept_seconds: 8.0,
            accept_symbols: 16,
            e2e_rate: 100.0,
            e2e_alerts: 1000,
            e2e_polled_alerts: 300,
            flood_seconds: 30.0,
            flood_connections: 64,
            legit_rate: 10.0,
            settle_seconds: 2.0,
            warmup_seconds: 1.0,
            receiver_connections: 64,
            receiver_seconds: 8.0,
            compare_connections: 32,
            compare_seconds: 10.0,
            compare_rounds: 2,
        }
    }

    /// About a second per scenario: proves the harness works, measures nothing.
    pub fn quick() -> Self {
        Self {
            mode: "quick",
            reject_connections: 4,
            reject_seconds: 0.6,
            accept_connections: vec![1, 4],
            accept_seconds: 0.5,
            accept_symbols: 16,
            e2e_rate: 50.0,
            e2e_alerts: 10,
            e2e_polled_alerts: 5,
            flood_seconds: 1.0,
            flood_connections: 4,
            legit_rate: 10.0,
            settle_seconds: 0.2,
            warmup_seconds: 0.1,
            receiver_connections: 4,
            receiver_seconds: 0.5,
            compare_connections: 4,
            compare_seconds: 0.5,
            compare_rounds: 1,
        }
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Alerts on one symbol.
fn alerts(target: std::net::SocketAddr, run: &'static str) -> MakeRequest {
    alerts_over(target, run, 1)
}

/// Alerts rotating over `symbols` symbols.
fn alerts_over(target: std::net::SocketAddr, run: &'static str, symbols: u64) -> MakeRequest {
    Arc::new(move |n| http::post(target, "/webhook", &alert(run, n, symbols)))
}

/// Scenario 1: requests from an unlisted address, relay (403) against the bare server (200).
#[derive(Debug, Clone, Serialize)]
pub struct RejectResult {
    /// Connections used against each.
    pub connections: usize,
    /// The bare warp server (the ceiling).
    pub bare: Summary,
    /// The relay, answering 403.
    pub relay: Summary,
    /// relay requests/s ÷ bare requests/s (target ≥ 0.8).
    pub ratio: f64,
    /// The relay's memory after the run.
    pub relay_memory: Memory,
    /// The bare server's memory after the run.
    pub bare_memory: Memory,
    /// CPU of the bare server (process 0) while it was measured.
    pub bare_cpu: CpuUse,
    /// CPU of the relay (process 0) while it was measured.
    pub relay_cpu: CpuUse,
}

/// Runs scenario 1.
pub async fn reject(bins: &Binaries, plan: &Plan) -> anyhow::Result<RejectResult> {
    let bare = Bare::start(&bins.bare).await?;
    let bare_profile = Profiler::maybe(bins, bare.pid()?, "reject-bare")?;
    let stack = Stack::start(bins, "reject").await?;
    let half = secs(plan.reject_seconds / 2.0);
    let n = plan.reject_connections;
    let mut bare_total = load::Tally::new()?;
    let mut relay_total = load::Tally::new()?;
    let warmup = secs(plan.warmup_seconds);
    closed_loop(
        bare.addr,
        UNLISTED_SOURCE,
        n,
        warmup,
        alerts(bare.addr, "warmup"),
        200,
    )
    .await?;
    closed_loop(
        stack.relay_addr,
        UNLISTED_SOURCE,
        n,
        warmup,
        alerts(stack.relay_addr, "warmup"),
        403,
    )
    .await?;
    let (mut bare_cpu, mut relay_cpu) = (CpuUse::default(), CpuUse::default());
    for _ in 0..2 {
        let meter = CpuMeter::start(&[bare.pid()?])?;
        let make = alerts(bare.addr, "reject");
        let t = closed_loop(bare.addr, UNLISTED_SOURCE, n, half, make, 200).await?;
        bare_cpu.add(&meter.stop()?);
        bare_total.merge(&t)?;
        let meter = CpuMeter::start(&[stack.relay.id()?])?;
        let make = alerts(stack.relay_addr, "reject");
        let t = closed_loop(stack.relay_addr, UNLISTED_SOURCE, n, half, make, 403).await?;
        relay_cpu.add(&meter.stop()?);
        relay_total.merge(&t)?;
    }
    let bare_rps = bare_total.ok_per_second();
    let result = RejectResult {
        connections: n,
        ratio: if bare_rps > 0.0 {
            relay_total.ok_per_second() / bare_rps
        } else {
            0.0
        },
        bare: bare_total.summary(),
        relay: relay_total.summary(),
        relay_memory: stack.relay.memory()?,
        bare_memory: bare.memory()?,
        bare_cpu,
        relay_cpu,
    };
    if let Some(p) = bare_profile {
        p.finish().await?;
    }
    stack.stop().await?;
    Ok(result)
}

/// Unrecorded accepted alerts, forwarded and placed, so the measurement starts from a warm stack
/// (the forwarder's connection to the receiver open, caches and pages touched).
async fn warm_up(stack: &Stack, plan: &Plan) -> anyhow::Result<()> {
    let warmup = secs(plan.warmup_seconds);
    closed_loop(
        stack.relay_addr,
        LEGIT_SOURCE,
        4,
        warmup,
        alerts(stack.relay_addr, "warmup"),
        200,
    )
    .await?;
    stack.drain(Duration::from_secs(60)).await?;
    Ok(())
}

/// One connection count of the accept path.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptLevel {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// The relay's answers (200 = accepted, spooled with fsync).
    pub relay: Summary,
    /// Seconds the relay still needed afterwards to forward everything to the receiver.
    pub drain_seconds: f64,
    /// Accepted alerts ÷ (load time + drain time): the rate both services sustain together.
    pub delivered_per_second: f64,
    /// CPU of the relay (process 0) and the receiver (process 1) over load and drain.
    pub cpu: CpuUse,
}

/// Scenario 2 (and the memory half of 5): accepted alerts at each connection count.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptResult {
    /// Per connection count.
    pub levels: Vec<AcceptLevel>,
    /// (relay, receiver) memory after starting and resting.
    pub idle: (Memory, Memory),
    /// (relay, receiver) memory after the last level; `hwm_kib` is the peak under load.
    pub loaded: (Memory, Memory),
    /// Orders the receiver holds for the run's last alerts that are not `filled` (should be 0).
    pub unfilled_orders: usize,
}

/// Runs scenario 2 and reads the idle and loaded memory of both services.
pub async fn accept(bins: &Binaries, plan: &Plan) -> anyhow::Result<AcceptResult> {
    let stack = Stack::start(bins, "accept").await?;
    tokio::time::sleep(secs(plan.settle_seconds)).await;
    let idle = stack.memory()?;
    warm_up(&stack, plan).await?;
    let mut levels = Vec::new();
    for (i, &connections) in plan.accept_connections.iter().enumerate() {
        let run: &'static str = ["accept-a", "accept-b", "accept-c", "accept-d"][i.min(3)];
        let meter = CpuMeter::start(&[stack.relay.id()?, stack.receiver.id()?])?;
        let tally = closed_loop(
            stack.relay_addr,
            LEGIT_SOURCE,
            connections,
            secs(plan.accept_seconds),
            alerts_over(stack.relay_addr, run, plan.accept_symbols),
            200,
        )
        .await?;
        let drain = stack.drain(Duration::from_secs(120)).await?;
        let cpu = meter.stop()?;
        let total = tally.elapsed + drain;
        levels.push(AcceptLevel {
            connections,
            delivered_per_second: tally.ok as f64 / total.as_secs_f64().max(1e-9),
            drain_seconds: drain.as_secs_f64(),
            cpu,
            relay: tally.summary(),
        });
    }
    let loaded = stack.memory()?;
    let unfilled_orders = stack
        .orders()
        .await?
        .iter()
        .filter(|o| o["status"] != "filled")
        .count();
    stack.stop().await?;
    Ok(AcceptResult {
        levels,
        idle,
        loaded,
        unfilled_orders,
    })
}

/// Scenario 3: from the relay's 200 to the paper order being recorded, at light traffic.
#[derive(Debug, Clone, Serialize)]
pub struct EndToEndResult {
    /// Alerts per second sent.
    pub rate: f64,
    /// Alerts the relay accepted (timestamp phase).
    pub accepted: u64,
    /// Of those, alerts whose order the receiver reports `filled`.
    pub recorded: u64,
    /// The relay's answer time (200) during the timestamp phase.
    pub relay_latency: Percentiles,
    /// 200 → the order's `updated_at` (the fill being recorded), from timestamps. `updated_at` has
    /// millisecond precision (truncated), so each sample is the midpoint of a 1 ms interval:
    /// accurate to ±0.5 ms. The receiver takes that time when it decides the fill, before the
    /// commit that makes it durable, so this is a lower bound.
    pub from_timestamps: Percentiles,
    /// The relay's forward round trips during the timestamp phase: from sending the alert to
    /// the receiver's answer, which comes once the outcome is durably journaled.
    pub forward: ForwardBuckets,
    /// Samples where the order was recorded, even at the top of its millisecond, before the
    /// client had read the relay's 200 (counted as 0 above).
    pub recorded_before_200: u64,
    /// Alerts sent in the polling phase.
    pub polled_sent: u64,
    /// Alerts whose order was seen filled by polling.
    pub polled_recorded: u64,
    /// `GET /v1/messages/{id}` requests made while polling.
    pub polls: u64,
    /// 200 → the first `GET /v1/messages/{id}` showing the order filled: an upper bound with µs
    /// resolution (it includes one poll round trip, and polling loads the journal a little).
    pub from_polling: Percentiles,
}

/// A window of the relay's `alertgate_relay_forward_duration_seconds` histogram.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForwardBuckets {
    /// Forward attempts observed.
    pub count: u64,
    /// The bucket bound (ms) at or under which half of them finished.
    pub p50_at_most_ms: f64,
    /// The bucket bound (ms) at or under which 99% of them finished.
    pub p99_at_most_ms: f64,
    /// (bucket bound in ms, attempts that finished at or under it).
    pub cumulative: Vec<(f64, u64)>,
}

impl ForwardBuckets {
    /// The difference of two scrapes.
    fn between(before: &[(f64, u64)], after: &[(f64, u64)]) -> Self {
        let cumulative: Vec<(f64, u64)> = after
            .iter()
            .map(|(le, n)| {
                let old = before.iter().find(|(b, _)| b == le).map_or(0, |(_, m)| *m);
                (le * 1000.0, n.saturating_sub(old))
            })
            .collect();
        let count = cumulative.last().map_or(0, |(_, n)| *n);
        let at_most = |q: f64| {
            cumulative
                .iter()
                .find(|(_, n)| *n as f64 >= q * count as f64)
                .map_or(f64::INFINITY, |(le, _)| *le)
        };
        Self {
            count,
            p50_at_most_ms: at_most(0.5),
            p99_at_most_ms: at_most(0.99),
            cumulative,
        }
    }
}

/// Polls `GET /v1/messages/{id}` until its orders are all filled (at most 2 s).
async fn poll_filled(
    conn: &mut Connection,
    receiver: std::net::SocketAddr,
    id: &str,
    polls: &mut u64,
) -> anyhow::Result<bool> {
    let request = http::get(receiver, &format!("/v1/messages/{id}"), Some(OPS_TOKEN));
    let deadline = Instant::now() + Duration::from_secs(2);
    for _ in 0..200_000 {
        if Instant::now() > deadline {
            break;
        }
        *polls += 1;
        let Ok(answer) = conn.send(&request).await else {
            continue;
        };
        if answer.status == 200 {
            let record: Value = serde_json::from_slice(&answer.body)?;
            let orders = record["orders"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if !orders.is_empty() && orders.iter().all(|o| o["status"] == "filled") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn accepted_id(status: u16, body: &[u8]) -> Option<String> {
    if status != 200 {
        return None;
    }
    let body: Value = serde_json::from_slice(body).ok()?;
    body["id"].as_str().map(str::to_owned)
}

/// Order `updated_at` (unix µs, ms precision) per message id, for filled orders.
async fn filled_at(stack: &Stack) -> anyhow::Result<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for order in stack.orders().await? {
        if order["status"] != "filled" {
            continue;
        }
        let (Some(id), Some(at)) = (order["message_id"].as_str(), order["updated_at"].as_str())
        else {
            continue;
        };
        let at = alertgate_shared::envelope::parse_rfc3339(at)?;
        let us = i64::try_from(at.unix_timestamp_nanos() / 1000)?;
        out.insert(id.to_owned(), us);
    }
    Ok(out)
}

/// Runs scenario 3.
pub async fn end_to_end(bins: &Binaries, plan: &Plan) -> anyhow::Result<EndToEndResult> {
    let stack = Stack::start(bins, "end-to-end").await?;
    warm_up(&stack, plan).await?;
    let pace = |count: u64| Pace {
        target: stack.relay_addr,
        source: LEGIT_SOURCE,
        rate: plan.e2e_rate,
        count,
        deadline: Instant::now() + secs(count as f64 / plan.e2e_rate + 30.0),
        fresh: false,
    };

    // Phase 1: timestamps only, nothing else touches the receiver.
    let buckets_before = stack.forward_buckets().await?;
    let sent = paced(pace(plan.e2e_alerts), alerts(stack.relay_addr, "e2e")).await;
    stack.drain(Duration::from_secs(60)).await?;
    let forward = ForwardBuckets::between(&buckets_before, &stack.forward_buckets().await?);
    let filled = filled_at(&stack).await?;
    let mut relay_latency = histogram()?;
    let mut e2e = histogram()?;
    let (mut accepted, mut recorded, mut before) = (0, 0, 0);
    for s in &sent {
        let Some(id) = s.status.and_then(|st| accepted_id(st, &s.body)) else {
            continue;
        };
        accepted += 1;
        relay_latency.saturating_record(micros(s.latency).max(1));
        let Some(&at) = filled.get(&id) else { continue };
        recorded += 1;
        // The true time lies in [at, at + 1 ms): take the midpoint.
        let estimate = at + 500 - s.answered_unix_us;
        if at + 1000 <= s.answered_unix_us {
            before += 1;
        }
        e2e.saturating_record(u64::try_from(estimate).unwrap_or(0).max(1));
    }

    // Phase 2: poll the receiver after each 200 (same pacing, one alert at a time).
    let mut relay = Connection::new(stack.relay_addr, Some(LEGIT_SOURCE));
    let mut poller = Connection::new(stack.receiver_addr, None);
    let mut polled = histogram()?;
    let (mut polled_sent, mut polled_recorded, mut polls) = (0, 0, 0);
    let period = secs(1.0 / plan.e2e_rate);
    let mut next = tokio::time::Instant::now();
    for n in 0..plan.e2e_polled_alerts {
        tokio::time::sleep_until(next).await;
        next += period;
        polled_sent += 1;
        let request = http::post(stack.relay_addr, "/webhook", &alert("e2e-polled", n, 1));
        let Ok(Ok(answer)) =
            tokio::time::timeout(load::REQUEST_TIMEOUT, relay.send(&request)).await
        else {
            relay = Connection::new(stack.relay_addr, Some(LEGIT_SOURCE));
            continue;
        };
        let answered = Instant::now();
        let Some(id) = accepted_id(answer.status, &answer.body) else {
            continue;
        };
        if poll_filled(&mut poller, stack.receiver_addr, &id, &mut polls).await? {
            polled_recorded += 1;
            polled.saturating_record(micros(answered.elapsed()).max(1));
        }
    }
    stack.stop().await?;
    Ok(EndToEndResult {
        rate: plan.e2e_rate,
        accepted,
        recorded,
        relay_latency: Percentiles::of(&relay_latency),
        from_timestamps: Percentiles::of(&e2e),
        forward,
        recorded_before_200: before,
        polled_sent,
        polled_recorded,
        polls,
        from_polling: Percentiles::of(&polled),
    })
}

/// Scenario 4: a flood from an unlisted address while legitimate alerts flow.
#[derive(Debug, Clone, Serialize)]
pub struct FloodResult {
    /// Flood connections.
    pub flood_connections: usize,
    /// The flood's answers (403 expected).
    pub flood: Summary,
    /// Legitimate alerts sent (each on a new connection).
    pub legit_sent: u64,
    /// Of those, answered 200.
    pub legit_accepted: u64,
    /// Of those, whose order the receiver reports `filled`.
    pub legit_placed: u64,
    /// Legitimate request latency, connect included.
    pub legit_latency: Percentiles,
    /// The relay's largest sampled `VmRSS` during the flood (KiB).
    pub relay_peak_rss_kib: u64,
    /// The relay's memory at the end (`hwm_kib`: peak since start).
    pub relay_memory: Memory,
    /// The receiver's memory at the end.
    pub receiver_memory: Memory,
    /// Bytes the relay logged during the flood (rejections before authentication must not
    /// fill the disk).
    pub relay_log_bytes: u64,
    /// CPU of the relay (process 0) during the flood.
    pub relay_cpu: CpuUse,
}

/// Runs scenario 4.
pub async fn flood(bins: &Binaries, plan: &Plan) -> anyhow::Result<FloodResult> {
    let stack = Stack::start(bins, "flood").await?;
    warm_up(&stack, plan).await?;
    let duration = secs(plan.flood_seconds);
    let relay_pid = stack.relay.id()?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut peak = 0;
            let give_up = Instant::now() + duration + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
                if let Ok(m) = memory(relay_pid) {
                    peak = peak.max(m.rss_kib);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let log_before = stack.relay.log_bytes();
    let meter = CpuMeter::start(&[relay_pid])?;
    let flood = tokio::spawn(closed_loop(
        stack.relay_addr,
        UNLISTED_SOURCE,
        plan.flood_connections,
        duration,
        alerts(stack.relay_addr, "flood"),
        403,
    ));
    // The legitimate sender gets a thread of its own, so its latency is the relay's, not the
    // time it waited behind the flood's tasks in this process.
    let pace = Pace {
        target: stack.relay_addr,
        source: LEGIT_SOURCE,
        rate: plan.legit_rate,
        count: (plan.flood_seconds * plan.legit_rate).ceil() as u64,
        deadline: Instant::now() + duration,
        fresh: true,
    };
    let make = alerts(stack.relay_addr, "legit");
    let legit = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        anyhow::Ok(rt.block_on(paced(pace, make)))
    })
    .await??;
    let flood = flood.await??;
    let relay_cpu = meter.stop()?;
    let relay_log_bytes = stack.relay.log_bytes().saturating_sub(log_before);
    stop.store(true, Ordering::Relaxed);
    let relay_peak_rss_kib = sampler.await?;
    stack.drain(Duration::from_secs(60)).await?;
    let filled = filled_at(&stack).await?;
    let mut latency = histogram()?;
    let (mut accepted, mut placed) = (0, 0);
    for s in &legit {
        if let Some(id) = s.status.and_then(|st| accepted_id(st, &s.body)) {
            accepted += 1;
            latency.saturating_record(micros(s.latency).max(1));
            if filled.contains_key(&id) {
                placed += 1;
            }
        }
    }
    let (relay_memory, receiver_memory) = stack.memory()?;
    stack.stop().await?;
    Ok(FloodResult {
        flood_connections: plan.flood_connections,
        flood: flood.summary(),
        legit_sent: legit.len() as u64,
        legit_accepted: accepted,
        legit_placed: placed,
        legit_latency: Percentiles::of(&latency),
        relay_peak_rss_kib,
        relay_memory,
        receiver_memory,
        relay_log_bytes,
        relay_cpu,
    })
}

/// Scenario 6: the receiver alone, as the relay's forwarder drives it: signed deliveries
/// (prepared before the clock starts, so signing is not the generator's bottleneck) on keep-alive
/// connections, each answered once its paper order is filled and journaled.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiverResult {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// The receiver's answers (200 = executed: verified, journaled, filled, outcome durable).
    pub receiver: Summary,
    /// CPU of the receiver (process 0) and the generator over the run.
    pub cpu: CpuUse,
    /// Orders the receiver lists as filled afterwards, of the first 1,000 it lists.
    pub filled_of_listed: (usize, usize),
}

/// Most deliveries prepared before the run (about 80 MB of requests); past them, signed on
/// the fly.
const PREPARED_DELIVERIES: u64 = 120_000;

/// Runs scenario 6.
pub async fn receiver(bins: &Binaries, plan: &Plan) -> anyhow::Result<ReceiverResult> {
    let stack = Stack::start(bins, "receiver").await?;
    let delivery = stack.delivery_signer()?;
    let symbols = plan.accept_symbols;
    // Warm-up: the same path, not recorded.
    let warm = delivery.clone();
    closed_loop(
        stack.receiver_addr,
        LEGIT_SOURCE,
        4,
        secs(plan.warmup_seconds),
        Arc::new(move |n| warm.request("rwarm", n, symbols).unwrap_or_default()),
        200,
    )
    .await?;
    let prepared = if plan.mode == "quick" {
        2_000
    } else {
        PREPARED_DELIVERIES
    };
    let requests = Arc::new(
        (0..prepared)
            .map(|n| delivery.request("recv", n, symbols))
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    let make: MakeRequest = Arc::new(move |n| match requests.get(n as usize) {
        Some(r) => r.clone(),
        None => delivery.request("recv", n, symbols).unwrap_or_default(),
    });
    let meter = CpuMeter::start(&[stack.receiver.id()?])?;
    let tally = closed_loop(
        stack.receiver_addr,
        LEGIT_SOURCE,
        plan.receiver_connections,
        secs(plan.receiver_seconds),
        make,
        200,
    )
    .await?;
    let cpu = meter.stop()?;
    let orders = stack.orders().await?;
    let filled = orders.iter().filter(|o| o["status"] == "filled").count();
    stack.stop().await?;
    Ok(ReceiverResult {
        connections: plan.receiver_connections,
        receiver: tally.summary(),
        cpu,
        filled_of_listed: (filled, orders.len()),
    })
}

/// One round of scenario 7.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRound {
    /// The Flask receiver's answers (200 = "order placed", nothing durable).
    pub flask: Summary,
    /// The relay's answers (200 = spooled with fsync), the receiver running behind it.
    pub relay: Summary,
    /// relay accepted/s ÷ Flask 200/s (target ≥ 2.5).
    pub ratio: f64,
    /// Seconds the relay then needed to forward its backlog to the receiver.
    pub drain_seconds: f64,
    /// CPU of relay (0) and receiver (1) during the relay half and its drain.
    pub cpu: CpuUse,
}

/// Scenario 7: the accept path against the tutorial Flask receiver, alternating, same generator.
#[derive(Debug, Clone, Serialize)]
pub struct CompareResult {
    /// Connections used against each.
    pub connections: usize,
    /// Each round, Flask first.
    pub rounds: Vec<CompareRound>,
}

/// The loopback address a Flask run binds, a new one per run. gunicorn's sync workers close
/// every connection, so a 10-second run leaves ~30,000 sockets in TIME_WAIT, about the whole
/// ephemeral port range of one (source, destination) pair: the next run from the same source
/// spent its time in the kernel's port search (the generator at 70–90 % CPU, Flask at half its
/// rate), which flattered the relay's ratio in every round after the first.
fn flask_source(run: usize) -> std::net::IpAddr {
    let last = u8::try_from(10 + run).unwrap_or(u8::MAX);
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, last))
}

/// Runs scenario 7, or `None` when gunicorn is not installed.
pub async fn compare(bins: &Binaries, plan: &Plan) -> anyhow::Result<Option<CompareResult>> {
    if !Flask::available() {
        eprintln!("   gunicorn not found (apt-get install gunicorn python3-flask): skipped");
        return Ok(None);
    }
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let flask = Flask::start(cpus, crate::stack::SECRET).await?;
    let stack = Stack::start(bins, "compare").await?;
    warm_up(&stack, plan).await?;
    let n = plan.compare_connections;
    let half = secs(plan.compare_seconds);
    closed_loop(
        flask.addr,
        flask_source(0),
        n,
        secs(plan.warmup_seconds),
        alerts(flask.addr, "fwarm"),
        200,
    )
    .await?;
    let mut rounds = Vec::new();
    for round in 0..plan.compare_rounds {
        let run: &'static str = ["cmp-a", "cmp-b", "cmp-c", "cmp-d"][round.min(3)];
        let flask_tally = closed_loop(
            flask.addr,
            flask_source(round + 1),
            n,
            half,
            alerts_over(flask.addr, run, plan.accept_symbols),
            200,
        )
        .await?;
        let meter = CpuMeter::start(&[stack.relay.id()?, stack.receiver.id()?])?;
        let relay_tally = closed_loop(
            stack.relay_addr,
            LEGIT_SOURCE,
            n,
            half,
            alerts_over(stack.relay_addr, run, plan.accept_symbols),
            200,
        )
        .await?;
        let drain = stack.drain(Duration::from_secs(300)).await?;
        let cpu = meter.stop()?;
        let flask_rps = flask_tally.ok_per_second();
        rounds.push(CompareRound {
            ratio: if flask_rps > 0.0 {
                relay_tally.ok_per_second() / flask_rps
            } else {
                0.0
            },
            flask: flask_tally.summary(),
            relay: relay_tally.summary(),
            drain_seconds: drain.as_secs_f64(),
            cpu,
        });
    }
    stack.stop().await?;
    drop(flask);
    Ok(Some(CompareResult {
        connections: n,
        rounds,
    }))
}
