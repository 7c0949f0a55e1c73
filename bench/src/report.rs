//! The results: the machine they were measured on, a JSON file, and a table for the terminal.

use std::fmt::Write as _;

use serde::Serialize;

use crate::load::{histogram, micros, Percentiles, Summary};
use crate::procs::Memory;
use crate::scenarios::{
    AcceptResult, CompareResult, EndToEndResult, FloodResult, Plan, ReceiverResult, RejectResult,
};

/// What the numbers were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `MemTotal` in MiB.
    pub memory_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` when the run started (other work on the machine skews every number).
    pub load_average_at_start: String,
    /// Latency of one 4 KiB write + `fdatasync`, back to back, on the disk holding the services'
    /// files: what each durable step (the relay's spool, the receiver's journal) costs when the
    /// disk is kept busy, as under load. Spaced-out syncs at light load can be faster.
    pub fdatasync: Percentiles,
}

impl Machine {
    /// Reads `/proc`.
    pub fn detect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        Self {
            cpus: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(0),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default(),
            memory_mib: meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kib| kib / 1024)
                .unwrap_or(0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average_at_start: read("/proc/loadavg").trim().to_owned(),
            fdatasync: probe_fdatasync(&std::env::temp_dir(), 100).unwrap_or_default(),
        }
    }
}

/// Times `rounds` overwrites of a 4 KiB block, each followed by `fdatasync`, in `dir`.
fn probe_fdatasync(dir: &std::path::Path, rounds: u64) -> anyhow::Result<Percentiles> {
    use std::os::unix::fs::FileExt;
    let file = tempfile::tempfile_in(dir)?;
    let block = [0x5au8; 4096];
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    let mut h = histogram()?;
    for i in 0..rounds {
        file.write_all_at(&block, (i % 16) * 4096)?;
        let t0 = std::time::Instant::now();
        file.sync_data()?;
        h.saturating_record(micros(t0.elapsed()).max(1));
    }
    Ok(Percentiles::of(&h))
}

/// Everything one run measured (the JSON file).
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// The machine.
    pub machine: Machine,
    /// Durations and counts used.
    pub plan: Plan,
    /// Generator worker threads.
    pub client_threads: usize,
    /// Scenario 1.
    pub reject: Option<RejectResult>,
    /// Scenarios 2 and 5.
    pub accept: Option<AcceptResult>,
    /// Scenario 3.
    pub end_to_end: Option<EndToEndResult>,
    /// Scenario 4.
    pub flood: Option<FloodResult>,
    /// Scenario 6.
    pub receiver: Option<ReceiverResult>,
    /// Scenario 7 (`None`: not run, or gunicorn missing).
    pub compare: Option<CompareResult>,
}

/// Decimal megabytes, the unit of the targets.
fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

/// `kib` is under `limit` decimal megabytes.
fn under_mb(kib: u64, limit: u64) -> bool {
    kib * 1024 < limit * 1_000_000
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn lat(p: &Percentiles) -> String {
    format!(
        "p50 {} · p99 {} · p99.9 {} · max {}",
        ms(p.p50_us),
        ms(p.p99_us),
        ms(p.p999_us),
        ms(p.max_us)
    )
}

fn statuses(s: &Summary) -> String {
    let mut out: Vec<String> = s.statuses.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    if s.errors > 0 {
        out.push(format!("errors×{}", s.errors));
    }
    out.join(" ")
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn row(out: &mut String, cells: [&str; 3]) {
    let _ = writeln!(out, "| {} | {} | {} |", cells[0], cells[1], cells[2]);
}

impl Results {
    /// A Markdown table of every number with its target (also printed to the terminal).
    pub fn table(&self) -> String {
        let quick = self.plan.mode == "quick";
        let target = |met: bool, text: &str| {
            if quick {
                format!("{text} (quick mode: not judged)")
            } else {
                format!("{text}: {}", verdict(met))
            }
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} × {}, {} MB RAM; disk fdatasync p50 {} p99 {}; load average at start {}\n",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.memory_mib * 1_048_576 / 1_000_000,
            ms(self.machine.fdatasync.p50_us),
            ms(self.machine.fdatasync.p99_us),
            self.machine.load_average_at_start
        );
        row(&mut out, ["scenario", "result", "target"]);
        row(&mut out, ["---", "---", "---"]);
        if let Some(r) = &self.reject {
            row(
                &mut out,
                [
                    &format!("1. reject path, bare warp server, {} conns", r.connections),
                    &format!(
                        "{:.0} req/s ({}); {}",
                        r.bare.ok_per_second,
                        statuses(&r.bare),
                        lat(&r.bare.latency)
                    ),
                    "ceiling",
                ],
            );
            row(
                &mut out,
                [
                    &format!("1. reject path, relay 403, {} conns", r.connections),
                    &format!(
                        "{:.0} req/s ({}); {}",
                        r.relay.ok_per_second,
                        statuses(&r.relay),
                        lat(&r.relay.latency)
                    ),
                    "",
                ],
            );
            row(
                &mut out,
                [
                    "1. relay ÷ bare",
                    &format!("{:.2}×", r.ratio),
                    &target(r.ratio >= 0.8, "≥ 0.80×"),
                ],
            );
            let cpus = self.machine.cpus;
            row(
                &mut out,
                [
                    "1. CPU per request: bare / relay (generator)",
                    &format!(
                        "{:.1} µs / {:.1} µs ({:.1} µs / {:.1} µs); machine busy {:.0}% / {:.0}%",
                        r.bare_cpu.micros_per(0, r.bare.ok),
                        r.relay_cpu.micros_per(0, r.relay.ok),
                        r.bare_cpu.generator_seconds * 1e6 / r.bare.ok.max(1) as f64,
                        r.relay_cpu.generator_seconds * 1e6 / r.relay.ok.max(1) as f64,
                        r.bare_cpu.machine_busy(cpus) * 100.0,
                        r.relay_cpu.machine_busy(cpus) * 100.0,
                    ),
                    "",
                ],
            );
        }
        if let Some(a) = &self.accept {
            for level in &a.levels {
                let met = level.connections < 64 || level.relay.ok_per_second >= 5000.0;
                row(
                    &mut out,
                    [
                        &format!(
                            "2. accept path, {} conn{}",
                            level.connections,
                            if level.connections == 1 { "" } else { "s" }
                        ),
                        &format!(
                            "{:.0} accepted/s ({}); {}; forwarded+placed {:.0}/s (drain {:.1} s); \
                             CPU per alert: relay {:.0} µs, receiver {:.0} µs; machine busy {:.0}%",
                            level.relay.ok_per_second,
                            statuses(&level.relay),
                            lat(&level.relay.latency),
                            level.delivered_per_second,
                            level.drain_seconds,
                            level.cpu.micros_per(0, level.relay.ok),
                            level.cpu.micros_per(1, level.relay.ok),
                            level.cpu.machine_busy(self.machine.cpus) * 100.0,
                        ),
                        &if level.connections == 64 {
                            target(met, "≥ 5,000/s")
                        } else {
                            String::new()
                        },
                    ],
                );
            }
        }
        if let Some(e) = &self.end_to_end {
            let t = &e.from_timestamps;
            row(
                &mut out,
                [
                    &format!(
                        "3. end to end at {:.0}/s: 200 → fill recorded, from `updated_at` (lower bound, ±0.5 ms)",
                        e.rate
                    ),
                    &format!(
                        "{} of {} recorded; {}; recorded before the 200 was read: {}",
                        e.recorded,
                        e.accepted,
                        lat(t),
                        e.recorded_before_200
                    ),
                    &target(
                        t.p50_us < 2000 && t.p99_us < 10_000,
                        "p50 < 2 ms, p99 < 10 ms",
                    ),
                ],
            );
            let p = &e.from_polling;
            row(
                &mut out,
                [
                    "3. end to end: 200 → fill visible to `GET /v1/messages/{id}` polling (upper bound)",
                    &format!(
                        "{} of {} seen filled ({:.1} polls each); {}",
                        e.polled_recorded,
                        e.polled_sent,
                        e.polls as f64 / e.polled_recorded.max(1) as f64,
                        lat(p)
                    ),
                    &target(
                        p.p50_us < 2000 && p.p99_us < 10_000,
                        "p50 < 2 ms, p99 < 10 ms",
                    ),
                ],
            );
            row(
                &mut out,
                [
                    "3. relay → receiver forward round trip (durably journaled and filled), buckets",
                    &format!(
                        "{} forwards; p50 ≤ {} ms, p99 ≤ {} ms",
                        e.forward.count, e.forward.p50_at_most_ms, e.forward.p99_at_most_ms
                    ),
                    "",
                ],
            );
            row(
                &mut out,
                [
                    "3. relay answer time at light load",
                    &lat(&e.relay_latency),
                    "",
                ],
            );
        }
        if let Some(f) = &self.flood {
            row(
                &mut out,
                [
                    &format!(
                        "4. flood from unlisted address, {} conns",
                        f.flood_connections
                    ),
                    &format!(
                        "{:.0} req/s ({}); relay CPU {:.1} µs/request; relay logged {} bytes",
                        f.flood.ok_per_second,
                        statuses(&f.flood),
                        f.relay_cpu.micros_per(0, f.flood.ok),
                        f.relay_log_bytes
                    ),
                    "",
                ],
            );
            let all = f.legit_sent > 0 && f.legit_placed == f.legit_sent;
            row(
                &mut out,
                [
                    "4. legitimate alerts during the flood (new connection each)",
                    &format!(
                        "{} sent, {} accepted, {} placed",
                        f.legit_sent, f.legit_accepted, f.legit_placed
                    ),
                    &target(all, "all accepted and placed"),
                ],
            );
            row(
                &mut out,
                [
                    "4. legitimate latency during the flood",
                    &lat(&f.legit_latency),
                    &target(f.legit_latency.p99_us < 50_000, "p99 < 50 ms"),
                ],
            );
            let peak = f.relay_peak_rss_kib.max(f.relay_memory.hwm_kib);
            row(
                &mut out,
                [
                    "4. relay peak RSS during the flood",
                    &format!(
                        "{} (VmHWM {})",
                        mb(f.relay_peak_rss_kib),
                        mb(f.relay_memory.hwm_kib)
                    ),
                    &target(under_mb(peak, 50), "< 50 MB"),
                ],
            );
        }
        if let Some(a) = &self.accept {
            let (relay, receiver): (Memory, Memory) = a.idle;
            row(
                &mut out,
                [
                    "5. idle RSS relay / receiver",
                    &format!("{} / {}", mb(relay.rss_kib), mb(receiver.rss_kib)),
                    &target(
                        under_mb(relay.rss_kib, 20) && under_mb(receiver.rss_kib, 20),
                        "< 20 MB each",
                    ),
                ],
            );
            let (relay, receiver) = a.loaded;
            row(
                &mut out,
                [
                    "5. peak RSS under accept load relay / receiver (VmHWM)",
                    &format!("{} / {}", mb(relay.hwm_kib), mb(receiver.hwm_kib)),
                    "",
                ],
            );
        }
        if let Some(r) = &self.receiver {
            let (filled, listed) = r.filled_of_listed;
            row(
                &mut out,
                [
                    &format!(
                        "6. receiver alone, signed deliveries, {} conns",
                        r.connections
                    ),
                    &format!(
                        "{:.0} executed/s ({}); {}; receiver CPU {:.0} µs/alert, generator {:.0} µs/alert; machine busy {:.0}%; {filled} of the {listed} orders listed filled",
                        r.receiver.ok_per_second,
                        statuses(&r.receiver),
                        lat(&r.receiver.latency),
                        r.cpu.micros_per(0, r.receiver.ok),
                        r.cpu.generator_seconds * 1e6 / r.receiver.ok.max(1) as f64,
                        r.cpu.machine_busy(self.machine.cpus) * 100.0,
                    ),
                    &target(r.receiver.ok_per_second >= 5000.0, "≥ 5,000/s"),
                ],
            );
        }
        if let Some(c) = &self.compare {
            for (i, r) in c.rounds.iter().enumerate() {
                let met = r.ratio >= 2.5 && r.relay.latency.p99_us < r.flask.latency.p99_us;
                row(
                    &mut out,
                    [
                        &format!("7. round {}: relay vs Flask tutorial receiver, {} conns", i + 1, c.connections),
                        &format!(
                            "relay {:.0}/s ({}), p99 {}; Flask {:.0}/s, p99 {}; {:.2}×; relay CPU {:.0} µs/alert, receiver {:.0} µs/alert",
                            r.relay.ok_per_second,
                            statuses(&r.relay),
                            ms(r.relay.latency.p99_us),
                            r.flask.ok_per_second,
                            ms(r.flask.latency.p99_us),
                            r.ratio,
                            r.cpu.micros_per(0, r.relay.ok),
                            r.cpu.micros_per(1, r.relay.ok),
                        ),
                        &target(met, "≥ 2.5× and a lower p99"),
                    ],
                );
                let accept_seconds = r.relay.seconds;
                row(
                    &mut out,
                    [
                        &format!("7. round {}: everything forwarded and placed", i + 1),
                        &format!(
                            "{:.1} s from the first accept ({:.1} s accepting + {:.1} s drain): {:.2}× the accept time",
                            accept_seconds + r.drain_seconds,
                            accept_seconds,
                            r.drain_seconds,
                            (accept_seconds + r.drain_seconds) / accept_seconds.max(1e-9)
                        ),
                        &target(
                            accept_seconds + r.drain_seconds <= 1.2 * accept_seconds,
                            "≤ 1.2 × the accept time",
                        ),
                    ],
                );
            }
        }
        out
    }
}
