//! `alertgate-relay` command line: `run`, `check-config`, `keygen`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alertgate_relay::{Relay, RelayOptions, Resolved, Settings};
use alertgate_shared::SigningKey;
use anyhow::Context as _;
use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Keygen { out } => keygen(&out),
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
