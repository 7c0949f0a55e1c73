//! `alertgate-relay` command line: `run`, `check-config`, `keygen`, `dead-letters list|replay`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alertgate_relay::{Relay, RelayOptions, Resolved, Settings};
use alertgate_shared::SigningKey;
use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// mimalloc: as in the receiver, glibc's malloc and free are a share of every accepted
/// alert's CPU (BENCHMARKS.md, "Issue 17, session 12").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// alertgate relay: receives TradingView alerts, stores them durably, signs and forwards them.
#[derive(Debug, Parser)]
#[command(name = "alertgate-relay", version, about)]
struct Cli {
    #[command(subcommand)]
    /// What to do.
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve. SIGHUP reloads accounts, secrets, keys, allowlist and limits; SIGTERM stops.
    Run {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate the configuration (reading every secret and key) and print it, secrets redacted.
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Write a new Ed25519 signing key to PATH.key (mode 0600) and its public key to PATH.pub.
    Keygen {
        /// Base path of the two files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Alerts the relay gave up on: list them, or replay them (also while the relay runs).
    DeadLetters {
        #[command(subcommand)]
        /// What to do with them.
        command: DeadLetterCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
    /// Print every dead letter (id, account, reason, received, given up).
    List {
        /// The relay's TOML configuration file (its `spool.dir`).
        #[arg(long)]
        config: PathBuf,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put letters back into the spool with their original webhook-id and received_at.
    Replay {
        /// The relay's TOML configuration file (its `spool.dir`).
        #[arg(long)]
        config: PathBuf,
        /// This letter (repeatable).
        #[arg(long, conflicts_with_all = ["since", "all"], required_unless_present_any = ["since", "all"])]
        id: Vec<String>,
        /// Letters given up at or after this time (RFC 3339).
        #[arg(long, conflicts_with = "all")]
        since: Option<String>,
        /// Every letter.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Keygen { out } => keygen(&out),
        Command::DeadLetters { command } => dead_letters(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alertgate-relay: error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping causes the message already quotes.
fn describe(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(path)?;
    let resolved = Resolved::resolve(&settings)?;
    print!("{}", settings.to_toml());
    println!();
    println!(
        "# signing key fingerprints: {}",
        resolved.live.signer.fingerprints().join(", ")
    );
    println!("# {}: OK", path.display());
    Ok(())
}

fn dead_letters(command: DeadLetterCommand) -> anyhow::Result<()> {
    use alertgate_relay::dead_letters::{self, Selection};
    use alertgate_shared::envelope::{format_millis, parse_rfc3339};
    let when = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .map(format_millis)
            .unwrap_or_default()
    };
    match command {
        DeadLetterCommand::List { config, json } => {
            let settings = Settings::load(&config)?;
            let letters = dead_letters::read_all(&settings.spool.dir)?;
            if json {
                for l in &letters {
                    println!("{}", serde_json::to_string(l)?);
                }
                return Ok(());
            }
            println!(
                "{:<30}  {:<16}  {:<14}  {:<24}  DEAD",
                "ID", "ACCOUNT", "REASON", "RECEIVED"
            );
            for l in &letters {
                println!(
                    "{:<30}  {:<16}  {:<14}  {:<24}  {}",
                    l.id,
                    l.account,
                    l.reason,
                    when(l.received_ms),
                    when(l.dead_ms)
                );
            }
            Ok(())
        }
        DeadLetterCommand::Replay {
            config,
            id,
            since,
            all,
        } => {
            let settings = Settings::load(&config)?;
            let selection = if all {
                Selection::All
            } else if let Some(since) = since {
                let t = parse_rfc3339(&since)
                    .with_context(|| format!("--since {since:?} is not an RFC 3339 time"))?;
                Selection::Since(
                    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MIN),
                )
            } else {
                Selection::Ids(id)
            };
            let letters = dead_letters::read_all(&settings.spool.dir)?;
            let chosen = dead_letters::select(&letters, &selection).map_err(|missing| {
                anyhow::anyhow!("no dead letter with id {}", missing.join(", "))
            })?;
            if chosen.is_empty() {
                println!("nothing to replay");
                return Ok(());
            }
            let file = dead_letters::queue_replay(&settings.spool.dir, &chosen)?;
            for l in &chosen {
                println!("{}  {}  {}", l.id, l.account, l.reason);
            }
            println!(
                "{} letter(s) queued in {}: the running relay puts them back into its spool within a second (a stopped relay at its next start)",
                chosen.len(),
                file.display()
            );
            Ok(())
        }
    }
}

fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = SigningKey::generate();
    let (key_path, pub_path) = key.write_pair(out)?;
    let public = key.verifying_key();
    println!(
        "private key: {} (mode 0600; keep it on the relay)",
        key_path.display()
    );
    println!(
        "public key:  {} (give it to every receiver)",
        pub_path.display()
    );
    println!("{}", public.to_text());
    println!("fingerprint: {}", public.fingerprint());
    Ok(())
}

fn run(path: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(path)?;
    alertgate_shared::telemetry::init(&settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(path.to_owned(), settings))
}

async fn serve(path: PathBuf, settings: Settings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("server.listen {}", settings.server.listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(settings.metrics.listen)
        .await
        .with_context(|| format!("metrics.listen {}", settings.metrics.listen))?;
    let options = RelayOptions {
        metrics_listener: Some(metrics_listener),
        ..RelayOptions::default()
    };
    let relay = Relay::build_with(settings, listener, options).await?;
    let reloader = relay.reloader();
    let mut hangups =
        alertgate_shared::shutdown::hangups().context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!(config = %path.display(), "SIGHUP: reloading");
            match Settings::load(&path) {
                Ok(settings) => {
                    let _ = reloader.reload(&settings);
                }
                Err(e) => {
                    tracing::error!(error = %e, "configuration reload refused; the running configuration stays")
                }
            }
        }
    });
    relay
        .run_until_stopped(async {
            let signal = alertgate_shared::shutdown::terminate().await;
            tracing::info!(signal, "shutting down");
        })
        .await;
    Ok(())
}
