//! Where the binaries are, the bare server (the ceiling) as a child process, and what is measured
//! of processes: resident memory (`/proc/PID/status`, from the kit), CPU time (`/proc/PID/stat`)
//! and `perf` profiles. The relay and the receiver run under the kit's process harness
//! ([`alertgate_testkit::Service`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub use alertgate_testkit::process::{memory, Memory};
use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// Where the three binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `alertgate-relay`.
    pub relay: PathBuf,
    /// `alertgate-receiver`.
    pub receiver: PathBuf,
    /// `bare-server`.
    pub bare: PathBuf,
    /// When set, every service started gets a `perf record` (CPU-clock samples, call graphs)
    /// written to `DIR/<scenario>-<service>.data`.
    pub perf_dir: Option<PathBuf>,
}

impl Binaries {
    /// The binaries in `dir` (normally `target/release`, beside `alertgate-load`).
    pub fn in_dir(dir: &Path) -> anyhow::Result<Self> {
        let find = |name: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            if path.exists() {
                Ok(path)
            } else {
                bail!(
                    "{} not found: build it first (`cargo build --release -p alertgate-relay \
                     -p alertgate-receiver -p alertgate-bench`)",
                    path.display()
                )
            }
        };
        Ok(Self {
            relay: find("alertgate-relay")?,
            receiver: find("alertgate-receiver")?,
            bare: find("bare-server")?,
            perf_dir: None,
        })
    }
}

/// The bare warp server (the ceiling), listening on an ephemeral loopback port it reports.
#[derive(Debug)]
pub struct Bare {
    /// The process (killed on drop).
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Bare {
    /// Starts `bare-server --listen 127.0.0.1:0` and reads the address it printed.
    pub async fn start(bin: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("bare-server has no stdout"))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("bare-server did not report its address within 10 s")??
            .ok_or_else(|| anyhow!("bare-server exited before reporting its address"))?;
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().parse().ok())
            .ok_or_else(|| anyhow!("unexpected first line from bare-server: {line:?}"))?;
        Ok(Self { child, addr })
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .ok_or_else(|| anyhow!("bare-server has exited"))
    }

    /// Its current and peak resident memory.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.pid()?)
    }
}

/// `perf record` (CPU samples) and `perf stat` (fsync and write system calls) attached to one
/// process (see [`Binaries::perf_dir`]).
#[derive(Debug)]
pub struct Profiler {
    /// `perf record`.
    record: Child,
    /// `perf stat`.
    stat: Child,
}

/// System calls counted by `perf stat`: how many fsyncs group commit saves.
const COUNTED: &str = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,\
                       syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_pwrite64";

impl Profiler {
    /// Starts sampling `pid` into `BASE.data` and counting its system calls into `BASE.stat`.
    pub fn attach(pid: u32, base: &Path) -> anyhow::Result<Self> {
        let perf = |args: &[&str], out: PathBuf| {
            Command::new("perf")
                .args(args)
                .arg(pid.to_string())
                .arg("-o")
                .arg(out)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting perf (apt-get install linux-perf)")
        };
        let record = perf(
            &["record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-p"],
            base.with_extension("data"),
        )?;
        let stat = perf(&["stat", "-e", COUNTED, "-p"], base.with_extension("stat"))?;
        Ok(Self { record, stat })
    }

    /// Stops both (SIGINT, as perf expects) and waits for their files to be written.
    pub async fn finish(self) -> anyhow::Result<()> {
        for mut child in [self.record, self.stat] {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
            }
            if tokio::time::timeout(Duration::from_secs(300), child.wait())
                .await
                .is_err()
            {
                child.kill().await?;
                bail!("perf did not stop within 300 s");
            }
        }
        Ok(())
    }

    /// Attaches to `pid` as `DIR/<label>.data` when `bins` asks for profiles.
    pub fn maybe(bins: &Binaries, pid: u32, label: &str) -> anyhow::Result<Option<Self>> {
        match &bins.perf_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                Ok(Some(Self::attach(pid, &dir.join(label))?))
            }
            None => Ok(None),
        }
    }
}

/// CPU time (user + system) a process has used so far, in seconds. `None` for this process.
pub fn cpu_seconds(pid: Option<u32>) -> anyhow::Result<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (`state`);
    // utime and stime are fields 14 and 15, in USER_HZ ticks (always 100 on Linux).
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// CPU used by some processes, and by the load generator itself, over an interval.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUse {
    /// Wall time of the interval.
    pub wall_seconds: f64,
    /// CPU seconds of each measured process, in the order given.
    pub process_seconds: Vec<f64>,
    /// CPU seconds of the load generator.
    pub generator_seconds: f64,
}

impl CpuUse {
    /// Adds another interval (same processes).
    pub fn add(&mut self, other: &CpuUse) {
        self.wall_seconds += other.wall_seconds;
        self.process_seconds.resize(
            other.process_seconds.len().max(self.process_seconds.len()),
            0.0,
        );
        for (mine, theirs) in self.process_seconds.iter_mut().zip(&other.process_seconds) {
            *mine += theirs;
        }
        self.generator_seconds += other.generator_seconds;
    }

    /// Share of the machine's CPUs that was busy with the measured processes and the generator.
    pub fn machine_busy(&self, cpus: usize) -> f64 {
        let used: f64 = self.process_seconds.iter().sum::<f64>() + self.generator_seconds;
        used / (self.wall_seconds * cpus.max(1) as f64).max(1e-9)
    }

    /// CPU microseconds of process `i` per unit of work.
    pub fn micros_per(&self, i: usize, units: u64) -> f64 {
        self.process_seconds.get(i).copied().unwrap_or(0.0) * 1e6 / units.max(1) as f64
    }
}

/// Starts measuring the CPU of `pids` (and of this process).
#[derive(Debug)]
pub struct CpuMeter {
    /// The processes.
    pids: Vec<u32>,
    /// Their CPU seconds at the start.
    start: Vec<f64>,
    /// This process's CPU seconds at the start.
    generator: f64,
    /// When.
    at: Instant,
}

impl CpuMeter {
    /// Reads the starting values.
    pub fn start(pids: &[u32]) -> anyhow::Result<Self> {
        let start = pids
            .iter()
            .map(|p| cpu_seconds(Some(*p)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            pids: pids.to_vec(),
            start,
            generator: cpu_seconds(None)?,
            at: Instant::now(),
        })
    }

    /// What was used since [`start`](Self::start).
    pub fn stop(&self) -> anyhow::Result<CpuUse> {
        let mut process_seconds = Vec::new();
        for (pid, start) in self.pids.iter().zip(&self.start) {
            process_seconds.push(cpu_seconds(Some(*pid))? - start);
        }
        Ok(CpuUse {
            wall_seconds: self.at.elapsed().as_secs_f64(),
            process_seconds,
            generator_seconds: cpu_seconds(None)? - self.generator,
        })
    }
}

/// The tutorial-style Flask receiver (`bench/flask/tutorial_receiver.py`) under gunicorn's sync
/// workers, one per CPU: the baseline the accept path is compared with.
#[derive(Debug)]
pub struct Flask {
    /// The gunicorn master (its workers exit with it).
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Flask {
    /// `gunicorn` on `PATH`, if installed (Debian: `apt-get install gunicorn python3-flask`).
    pub fn available() -> bool {
        std::process::Command::new("gunicorn")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts it with `workers` workers and waits until it accepts connections.
    pub async fn start(workers: usize, secret: &str) -> anyhow::Result<Self> {
        let addr = alertgate_testkit::free_addr()?;
        let app_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("flask");
        let child = Command::new("gunicorn")
            .arg("--workers")
            .arg(workers.to_string())
            .arg("--bind")
            .arg(addr.to_string())
            .arg("--chdir")
            .arg(&app_dir)
            .args(["--log-level", "warning", "tutorial_receiver:app"])
            .env("BENCH_SECRET_MAIN", secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting gunicorn")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                bail!("gunicorn did not listen on {addr} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, addr })
    }
}

impl Drop for Flask {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; kill_on_drop then ends the master.
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
