//! `alertgate-load`: runs the load scenarios of issue 7 against the real binaries and writes the
//! results. `./bench/run.sh` builds everything in release mode and runs this; see BENCHMARKS.md.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use clap::{Parser, ValueEnum};

use alertgate_bench::procs::Binaries;
use alertgate_bench::report::{Machine, Results};
use alertgate_bench::scenarios::{self, Plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 1: unlisted address, relay against the bare server.
    Reject,
    /// 2 and 5: accepted alerts at each connection count; idle and loaded memory.
    Accept,
    /// 3: relay 200 → paper order recorded, at light traffic.
    EndToEnd,
    /// 4: flood from an unlisted address with legitimate alerts flowing.
    Flood,
    /// 6: the receiver alone, driven with signed deliveries as the relay's forwarder sends them.
    Receiver,
    /// 7: the accept path against a tutorial Flask receiver under gunicorn (skipped without it).
    Compare,
}

#[derive(Debug, Parser)]
#[command(about = "Load harness: drives alertgate-relay and alertgate-receiver over loopback HTTP")]
struct Args {
    /// Smoke-test mode: about a second per scenario; the numbers mean nothing.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench-results.json")]
    out: PathBuf,
    /// Folder holding alertgate-relay, alertgate-receiver and bare-server (default: this
    /// program's own folder, e.g. target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Run only these scenarios (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Record a CPU profile of every service with `perf record` into this folder
    /// (`<scenario>-<service>.data`; read with `perf report -i FILE`) and count its fsync and
    /// write system calls with `perf stat` (`<scenario>-<service>.stat`). Profiling costs CPU:
    /// use it for a separate run, not the one whose numbers you keep.
    #[arg(long)]
    perf_dir: Option<PathBuf>,
    /// Override the accept path's connection counts (e.g. `--accept-connections 64`).
    #[arg(long, value_delimiter = ',')]
    accept_connections: Vec<usize>,
    /// Worker threads of the load generator (the rest of the CPUs serve the services).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("cannot locate this program's folder"))?,
    };
    let mut bins = Binaries::in_dir(&bin_dir)?;
    bins.perf_dir = args.perf_dir.clone();
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if !args.accept_connections.is_empty() {
        plan.accept_connections = args.accept_connections.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    let results = runtime.block_on(run(&bins, plan, &args))?;
    let table = results.table();
    println!("\n{table}");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("results written to {}", args.out.display());
    Ok(())
}

async fn run(bins: &Binaries, plan: Plan, args: &Args) -> anyhow::Result<Results> {
    let wanted = |s: Scenario| args.only.is_empty() || args.only.contains(&s);
    let machine = Machine::detect();
    eprintln!(
        "{} mode on {} × {} ({} MiB), load average {}",
        plan.mode,
        machine.cpus,
        machine.cpu_model,
        machine.memory_mib,
        machine.load_average_at_start
    );
    let mut results = Results {
        machine,
        client_threads: args.client_threads,
        reject: None,
        accept: None,
        end_to_end: None,
        flood: None,
        receiver: None,
        compare: None,
        plan: plan.clone(),
    };
    if wanted(Scenario::Reject) {
        eprintln!("1/4 reject path: relay against the bare server ...");
        results.reject = Some(
            scenarios::reject(bins, &plan)
                .await
                .context("reject scenario")?,
        );
    }
    if wanted(Scenario::Accept) {
        eprintln!(
            "2/4 accept path at {:?} connections ...",
            plan.accept_connections
        );
        results.accept = Some(
            scenarios::accept(bins, &plan)
                .await
                .context("accept scenario")?,
        );
    }
    if wanted(Scenario::EndToEnd) {
        eprintln!("3/4 end to end at {}/s ...", plan.e2e_rate);
        results.end_to_end = Some(
            scenarios::end_to_end(bins, &plan)
                .await
                .context("end-to-end scenario")?,
        );
    }
    if wanted(Scenario::Flood) {
        eprintln!("4/4 flood for {} s ...", plan.flood_seconds);
        results.flood = Some(
            scenarios::flood(bins, &plan)
                .await
                .context("flood scenario")?,
        );
    }
    if wanted(Scenario::Receiver) {
        eprintln!(
            "6 the receiver alone at {} connections for {} s ...",
            plan.receiver_connections, plan.receiver_seconds
        );
        results.receiver = Some(
            scenarios::receiver(bins, &plan)
                .await
                .context("receiver scenario")?,
        );
    }
    if wanted(Scenario::Compare) {
        eprintln!(
            "7 the accept path against the Flask tutorial receiver, {} rounds ...",
            plan.compare_rounds
        );
        results.compare = scenarios::compare(bins, &plan)
            .await
            .context("compare scenario")?;
    }
    Ok(results)
}
