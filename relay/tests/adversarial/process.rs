//! The relay as a real process: its own memory and file descriptors (`/proc`), and every line
//! it writes, kept verbatim so tests can search them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertgate_relay::config::Settings;
use alertgate_shared::config::LogFormat;

pub const BIN: &str = env!("CARGO_BIN_EXE_alertgate-relay");

/// A running `alertgate-relay run`.
#[derive(Debug)]
pub struct RelayProcess {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    /// Everything written to stdout and stderr so far, line by line.
    pub output: Arc<Mutex<Vec<String>>>,
    /// The threads copying stdout and stderr into `output`.
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// Writes `settings` (JSON logs at `level`) to `dir/relay.toml` and starts the relay on it.
/// The relay's soft file limit is raised to its hard limit first.
pub async fn start(dir: &Path, settings: &Settings, level: &str) -> RelayProcess {
    let mut s = settings.clone();
    s.log.format = LogFormat::Json;
    s.log.level = level.to_owned();
    let config = dir.join("relay.toml");
    std::fs::write(&config, s.to_toml()).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" run --config "$1""#)
        .arg(BIN)
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel::<std::net::SocketAddr>();
    let mut readers = Vec::new();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = Arc::clone(&output);
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v["message"] == "relay serving" {
                        if let Some(addr) = v["listen"].as_str().and_then(|a| a.parse().ok()) {
                            let _ = tx.send(addr);
                        }
                    }
                }
                output.lock().unwrap().push(line);
            }
        }));
    }
    let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("the relay did not log \"relay serving\""));
    RelayProcess {
        child,
        addr,
        output,
        readers,
    }
}

impl RelayProcess {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// Resident memory in KiB, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Open file descriptors, from `/proc/PID/fd`.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// All output so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Stops the relay with SIGTERM and waits for it (and its output) to end.
    pub fn stop(mut self) -> Vec<String> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        for reader in std::mem::take(&mut self.readers) {
            let _ = reader.join();
        }
        self.output()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's soft limit on open files, from `/proc/self/limits`.
pub fn soft_open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}
