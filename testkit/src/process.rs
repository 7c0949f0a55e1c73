//! One harness for the built binaries as child processes: start one with a config file, wait
//! until it is ready, signal it (SIGKILL, SIGSTOP/SIGCONT, SIGHUP, SIGTERM), keep everything it
//! writes in a log file that tests read back, and start it again on the same config and data.
//!
//! ```text
//! let mut relay = Service::new("relay", binary("alertgate-relay")?, config_path, Ready::Http(addr));
//! relay.start().await?;
//! relay.kill9()?;              // no chance to flush anything
//! relay.start().await?;        // same config, same spool
//! relay.wait_for_log("configuration reloaded", WAIT).await?;
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long [`Service::start`] waits for readiness.
const START_WITHIN: Duration = Duration::from_secs(30);
/// How long [`Service::stop`] waits after SIGTERM before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(15);
/// How often readiness and logs are polled.
const POLL: Duration = Duration::from_millis(20);

/// The path of a workspace binary next to the running test executable (`target/<profile>/NAME`),
/// where `cargo test --workspace` puts it. A crate's own tests use `env!("CARGO_BIN_EXE_NAME")`.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/TEST or target/<profile>/TEST.
    let path = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow!(
                "{name} not found beside {}: run the tests with `cargo test --workspace`, which \
                 builds it",
                exe.display()
            )
        })?;
    Ok(path)
}

/// When a started service counts as ready.
#[derive(Debug, Clone)]
pub enum Ready {
    /// `GET http://ADDR/readyz` answers 200.
    Http(SocketAddr),
    /// `ADDR` accepts TCP connections (a TLS listener that wants client certificates).
    Tcp(SocketAddr),
    /// A log line contains this text.
    Logged(String),
}

/// One service process and what is needed to start it again. Killed when dropped.
#[derive(Debug)]
pub struct Service {
    /// Shown in errors.
    name: String,
    /// The binary.
    bin: PathBuf,
    /// `run --config FILE`.
    config: PathBuf,
    /// Extra environment (secrets referenced as `env:NAME`, `RUST_LOG`).
    env: Vec<(String, String)>,
    /// stdout and stderr of every run, appended.
    log: PathBuf,
    /// What [`start`](Self::start) waits for.
    ready: Ready,
    /// Run under `sh -c 'ulimit -n HARD'`, for tests that open thousands of connections.
    raise_open_files: bool,
    /// Run in this network namespace (`ip netns exec NAME`, which execs the binary in place:
    /// signals reach it).
    netns: Option<String>,
    /// The running process, if any.
    child: Option<Child>,
    /// Log lines [`wait_for_log`](Self::wait_for_log) has already looked at.
    seen_lines: usize,
}

impl Service {
    /// Describes `bin run --config CONFIG`, logging to `CONFIG` with extension `.log`;
    /// [`start`](Self::start) runs it. `RUST_LOG` is removed, so the config's `[log]` decides.
    pub fn new(
        name: &str,
        bin: impl Into<PathBuf>,
        config: impl Into<PathBuf>,
        ready: Ready,
    ) -> Self {
        let config = config.into();
        Self {
            name: name.to_owned(),
            bin: bin.into(),
            log: config.with_extension("log"),
            config,
            env: Vec::new(),
            ready,
            raise_open_files: false,
            netns: None,
            child: None,
            seen_lines: 0,
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Logs to `path` instead.
    pub fn log_to(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = path.into();
        self
    }

    /// Raises the process's soft open-files limit to the hard limit.
    pub fn raise_open_files_limit(mut self) -> Self {
        self.raise_open_files = true;
        self
    }

    /// Runs the process in network namespace `name` ([`crate::netns::Namespace`]).
    pub fn in_netns(mut self, name: &str) -> Self {
        self.netns = Some(name.to_owned());
        self
    }

    /// The config file this service runs with.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Starts the process (again, after a kill or stop: same config, same data) and waits until
    /// it is ready.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.name);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let run: [OsString; 3] = ["run".into(), "--config".into(), self.config.clone().into()];
        // The program and its arguments, under `sh` (the open-files limit) and `ip netns exec`
        // (the namespace) as asked; each execs the next in place.
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip".into(), "netns".into(), "exec".into(), ns.into()]);
        }
        if self.raise_open_files {
            argv.extend([
                "sh".into(),
                "-c".into(),
                r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#.into(),
            ]);
        }
        argv.push(self.bin.clone().into());
        argv.extend(run);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        command
            .env_remove("RUST_LOG")
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if let Some(status) = self.try_wait()? {
                bail!(
                    "{} exited with {status} while starting; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            let ready = match &self.ready {
                Ready::Http(addr) => client
                    .get(format!("http://{addr}/readyz"))
                    .timeout(Duration::from_millis(500))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                Ready::Tcp(addr) => tokio::net::TcpStream::connect(addr).await.is_ok(),
                Ready::Logged(text) => self.log_lines().iter().any(|l| l.contains(text.as_str())),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready within {START_WITHIN:?}; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The exit status, if the process has exited (it is then no longer tracked).
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait()?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<Pid> {
        self.child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .map(Pid::from_raw)
    }

    fn running_pid(&self) -> anyhow::Result<Pid> {
        self.pid()
            .ok_or_else(|| anyhow!("{} is not running", self.name))
    }

    /// Sends a signal.
    pub fn signal(&self, sig: Signal) -> anyhow::Result<()> {
        kill(self.running_pid()?, sig).with_context(|| format!("signalling {}", self.name))
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGSTOP: the process stays, answering nothing, until [`resume`](Self::resume).
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// SIGCONT.
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Waits (at most `within`) for the process to exit by itself.
    pub async fn wait_exit(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if self.child.is_none() {
                bail!("{} is not running", self.name);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {within:?}", self.name);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s, reported as an error).
    pub async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        match self.wait_exit(STOP_WITHIN).await {
            Ok(status) => Ok(status),
            Err(e) => {
                self.kill9()?;
                Err(e.context(format!("{} ignored SIGTERM", self.name)))
            }
        }
    }

    /// SIGHUP, then waits until the log shows one more line about a reload (`reload` in it,
    /// accepted or refused) than before.
    pub async fn reload(&mut self) -> anyhow::Result<String> {
        let count = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.to_lowercase().contains("reload"))
                .count()
        };
        let before = count(&self.log_lines());
        self.signal(Signal::SIGHUP)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.log_lines();
            if count(&lines) > before {
                self.seen_lines = lines.len();
                let line = lines
                    .iter()
                    .rev()
                    .find(|l| l.to_lowercase().contains("reload"));
                return Ok(line.cloned().unwrap_or_default());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} logged no reload within 10 s of SIGHUP; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything the process wrote so far (every run).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// [`log_text`](Self::log_text), line by line.
    pub fn log_lines(&self) -> Vec<String> {
        self.log_text().lines().map(str::to_owned).collect()
    }

    /// The last 40 lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let lines = self.log_lines();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits (at most `within`) for a log line containing `fragment` that no earlier call
    /// returned, and returns it: two waits for the same text need two such lines.
    pub async fn wait_for_log(
        &mut self,
        fragment: &str,
        within: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        loop {
            let lines = self.log_lines();
            let found = lines
                .iter()
                .enumerate()
                .skip(self.seen_lines)
                .find(|(_, l)| l.contains(fragment));
            if let Some((i, line)) = found {
                self.seen_lines = i + 1;
                return Ok(line.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} logged no line containing {fragment:?} within {within:?}; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The process id, while running, as `/proc` names it.
    pub fn id(&self) -> anyhow::Result<u32> {
        Ok(u32::try_from(self.running_pid()?.as_raw())?)
    }

    /// Bytes its log holds so far.
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Its current and peak resident memory.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.id()?)
    }

    /// Open file descriptors, from `/proc/PID/fd`.
    pub fn open_fds(&self) -> anyhow::Result<usize> {
        let pid = self.running_pid()?;
        Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size since the process started.
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid` from `/proc/PID/status`.
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

/// This process's soft limit on open files, from `/proc/self/limits`.
pub fn soft_open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Runs `alertgate-relay keygen --out BASE`: `BASE.key` and `BASE.pub`.
pub fn keygen(relay_bin: &Path, base: &Path) -> anyhow::Result<()> {
    let out = Command::new(relay_bin)
        .args(["keygen", "--out"])
        .arg(base)
        .output()
        .with_context(|| format!("running {}", relay_bin.display()))?;
    if !out.status.success() {
        bail!("keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
