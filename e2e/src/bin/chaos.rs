//! `alertgate-chaos`: the fault campaign (what `deploy/chaos.sh` runs).
//!
//! ```text
//! alertgate-chaos [SEEDS] [--from FIRST] [--seed N]... [--traffic-ms MS] [--disk] [--postgres] [--netns] [--keep] [--lax-order]
//! ```
//! Runs seeds FIRST..FIRST+SEEDS (default 1..=10), or only the `--seed`s given, one after
//! another, printing a line per seed, the details of every violated one (seed, fault schedule,
//! offending alerts), and a summary of the faults injected by kind. Exits 1 when any invariant
//! did not hold, 2 on a harness error.

use std::process::ExitCode;
use std::time::Instant;

use alertgate_e2e::chaos::{self, Options, SeedReport};
use anyhow::{bail, Context as _};

struct Args {
    seeds: Vec<u64>,
    options: Options,
}

const USAGE: &str = "usage: alertgate-chaos [SEEDS] [--from FIRST] [--seed N]... [--traffic-ms MS] [--disk] [--postgres] [--netns] [--keep] [--lax-order]";

fn parse() -> anyhow::Result<Args> {
    let mut count: u64 = 10;
    let mut from: u64 = 1;
    let mut only = Vec::new();
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    let number = |v: Option<String>, what: &str| -> anyhow::Result<u64> {
        v.with_context(|| format!("{what} needs a number"))?
            .parse()
            .with_context(|| format!("{what} needs a number"))
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--from" => from = number(args.next(), "--from")?,
            "--seed" => only.push(number(args.next(), "--seed")?),
            "--traffic-ms" => options.traffic_ms = number(args.next(), "--traffic-ms")?,
            "--disk" => options.disk = true,
            "--postgres" => options.postgres = true,
            "--netns" => options.netns = true,
            "--keep" => options.keep = true,
            "--lax-order" => options.strict_order = false,
            "-h" | "--help" => bail!("{USAGE}"),
            n if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => count = n.parse()?,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if options.disk && !chaos::disk_faults_possible() {
        bail!("--disk mounts a tmpfs under the spool and the journal: run as root");
    }
    if options.netns && !chaos::partitions_possible() {
        bail!("--netns puts the receiver in a network namespace (ip netns): run as root with iproute2");
    }
    let seeds = if only.is_empty() {
        (from..from.saturating_add(count)).collect()
    } else {
        only
    };
    Ok(Args { seeds, options })
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(campaign(args))
}

async fn campaign(args: Args) -> ExitCode {
    let began = Instant::now();
    let total = args.seeds.len();
    let mut reports: Vec<SeedReport> = Vec::new();
    let mut errors = 0;
    println!(
        "chaos: {total} seed(s), {} ms of traffic each{}",
        args.options.traffic_ms,
        [
            (args.options.disk, ", full disks on"),
            (args.options.postgres, ", the receiver on PostgreSQL"),
            (args.options.netns, ", the receiver in a network namespace"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, what)| *what)
        .collect::<String>()
    );
    for (i, seed) in args.seeds.iter().enumerate() {
        match chaos::run_seed(*seed, &args.options).await {
            Ok((report, plans)) => {
                println!("[{}/{total}] {}", i + 1, report.line());
                if !report.violations.is_empty() || !report.out_of_order.is_empty() {
                    println!("{}", report.details(&plans));
                }
                reports.push(report);
            }
            Err(e) => {
                errors += 1;
                println!("[{}/{total}] seed {seed}: harness error: {e:#}", i + 1);
            }
        }
    }
    let violated: Vec<u64> = reports
        .iter()
        .filter(|r| !r.violations.is_empty())
        .map(|r| r.seed)
        .collect();
    println!(
        "\nsummary: {} seed(s) run in {:.0} s",
        reports.len(),
        began.elapsed().as_secs_f64()
    );
    let sum = |f: fn(&SeedReport) -> usize| reports.iter().map(f).sum::<usize>();
    println!(
        "  alerts {}, sends {}, accepted {}, venue orders {}, dead letters {}",
        sum(|r| r.alerts),
        sum(|r| r.sends),
        sum(|r| r.accepted),
        sum(|r| r.venue_orders),
        sum(|r| r.dead_letters)
    );
    println!("  faults injected by kind:");
    let by_kind = chaos::faults_by_kind(&reports);
    for (kind, n) in &by_kind {
        println!("    {kind:<34} {n}");
    }
    println!("    {:<34} {}", "total", by_kind.values().sum::<usize>());
    let disordered: Vec<u64> = reports
        .iter()
        .filter(|r| !r.out_of_order.is_empty())
        .map(|r| r.seed)
        .collect();
    println!(
        "  seeds with venue orders out of acceptance order (with --lax-order: reported, not failing): {} {:?}",
        disordered.len(),
        disordered
    );
    println!(
        "  seeds with violations: {} {:?}; harness errors: {errors}",
        violated.len(),
        violated
    );
    if !violated.is_empty() {
        ExitCode::from(1)
    } else if errors > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
