//! The services under test as child processes: the relay, the receiver and the bare server,
//! started from generated configs in a temporary folder, with their resident memory read from
//! `/proc/PID/status`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::http::{self, Connection};

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

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size since the process started.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    })
}

/// One running service. Killed when dropped.
#[derive(Debug)]
pub struct Service {
    /// Shown in errors.
    name: &'static str,
    /// The process.
    child: Child,
    /// Its stdout and stderr.
    log: PathBuf,
}

impl Service {
    /// Starts `bin run --config CONFIG` with `env`, logging to `log`.
    pub fn spawn(
        name: &'static str,
        bin: &Path,
        config: &Path,
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self { name, child, log })
    }

    /// The process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .ok_or_else(|| anyhow!("{} has exited", self.name))
    }

    /// Its current and peak resident memory.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.pid()?)
    }

    /// Waits (at most 30 s) until `GET /readyz` on `addr` answers 200.
    pub async fn wait_ready(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let request = http::get(addr, "/readyz", None);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} while starting; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let mut conn = Connection::new(addr, None);
            let answer =
                tokio::time::timeout(Duration::from_millis(500), conn.send(&request)).await;
            if matches!(answer, Ok(Ok(ref r)) if r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready within 30 s; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then waits (at most 15 s, then SIGKILL) for the exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
            bail!("{} did not stop within 15 s of SIGTERM", self.name);
        }
        Ok(())
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
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

/// An unused loopback port. The services bind what their config says, so the port is chosen
/// here and released just before the service starts.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
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
            if tokio::time::timeout(Duration::from_secs(60), child.wait())
                .await
                .is_err()
            {
                child.kill().await?;
                bail!("perf did not stop within 60 s");
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
