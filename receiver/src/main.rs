//! `alertgate-receiver` command line: `run`, `check-config`, `certs`, `orders`, `positions`.

use std::path::{Path, PathBuf};

use alertgate_receiver::{certs, Receiver, Settings};
use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// mimalloc: glibc's malloc and free were about a tenth of the receiver's CPU per alert
/// (BENCHMARKS.md, "Issue 17, session 12").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// alertgate receiver: verifies signed alerts from the relay and places orders exactly once.
#[derive(Debug, Parser)]
#[command(name = "alertgate-receiver", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve. SIGHUP reloads the trusted keys; SIGTERM/SIGINT stop gracefully.
    Run {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate the config (secrets and key files resolve) and print it, secrets redacted.
    CheckConfig {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Create a private CA, the receiver's server certificate and the relay's client certificate.
    Certs {
        /// Directory to write into (created if needed; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// The host name the relay uses to reach the receiver (the server certificate's SAN).
        #[arg(long)]
        receiver_host: String,
    },
    /// Print the most recent orders from the journal.
    Orders {
        /// The TOML config file (for `store.path`).
        #[arg(long)]
        config: PathBuf,
        /// How many orders, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Print the positions: the journal's beside the venue's as reconciliation last read them.
    Positions {
        /// The TOML config file (for `store.path` and the venues).
        #[arg(long)]
        config: PathBuf,
    },
    /// Judge the alerts journaled since a time again under this config's normalization and risk
    /// gates; place nothing; print what would have been decided differently.
    Replay {
        /// The TOML config file (the rules to try, and `store.path`).
        #[arg(long)]
        config: PathBuf,
        /// Alerts journaled at or after this time (RFC 3339).
        #[arg(long)]
        since: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { config } => {
            let settings = Settings::load(&config)?;
            // Building the venues resolves every venue's credentials and makes no network
            // call: a missing `env:`/`file:` secret is caught here, not at the first order.
            // Nothing is placed, so paper venues get a book in memory rather than the journal.
            build_venues(&settings, &config)?;
            print!("{}", settings.to_toml());
            for warning in permission_warnings(&settings) {
                eprintln!("warning: {warning}");
            }
            eprintln!("{}: OK", config.display());
            Ok(())
        }
        Command::Certs { out, receiver_host } => {
            let written = certs::generate(&out, &receiver_host)?;
            for file in &written.files {
                println!("wrote {}", file.display());
            }
            println!(
                "Copy ca.pem, relay-client.pem and relay-client.key to the relay; keep ca.key on this side only."
            );
            Ok(())
        }
        Command::Orders { config, limit } => orders(&config, limit),
        Command::Positions { config } => positions(&config),
        Command::Replay { config, since } => replay(&config, &since),
    }
}

/// Private files (secrets, the TLS key) readable by group or others.
fn permission_warnings(settings: &Settings) -> Vec<String> {
    let mut private: Vec<&Path> = settings
        .verify
        .hmac_secrets
        .iter()
        .filter_map(|r| r.path())
        .collect();
    private.extend(settings.ops.as_ref().and_then(|o| o.token.path()));
    private.extend(settings.server.tls.as_ref().map(|t| t.key_file.as_path()));
    private
        .into_iter()
        .filter_map(alertgate_shared::keys::loose_permissions_warning)
        .collect()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(config: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    alertgate_shared::telemetry::init(&settings.log);
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        for warning in permission_warnings(&settings) {
            tracing::warn!("{warning}");
        }
        let receiver = Receiver::build(settings, listener).await?;
        let keys = receiver.trusted_keys();
        let venues = receiver.venues();
        let config = config.to_owned();
        let mut hangups = alertgate_shared::shutdown::hangups().context("cannot watch SIGHUP")?;
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match Settings::load(&config).map_err(anyhow::Error::from).and_then(|s| Ok(keys.reload(&s)?)) {
                    Ok(fingerprints) => tracing::info!(?fingerprints, "SIGHUP: trusted keys reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: config refused; keeping the keys in use"),
                }
                // The venue's own rotating credentials (Zerodha's daily access token), from the
                // references it was started with.
                for venue in venues.iter() {
                    let name = venue.route.name.as_str();
                    match venue.broker.reload_credentials() {
                        Ok(true) => tracing::info!(venue = name, "SIGHUP: venue credentials reloaded"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(venue = name, error = %e, "SIGHUP: venue credentials not reloaded; keeping the ones in use"),
                    }
                }
            }
        });
        receiver
            .run_until_stopped(async {
                let signal = alertgate_shared::shutdown::terminate().await;
                tracing::info!(signal, "stopping");
            })
            .await?;
        Ok(())
    })
}

fn replay(config: &Path, since: &str) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let since_ms = alertgate_shared::envelope::parse_rfc3339(since)
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MIN))
        .map_err(|e| anyhow::anyhow!("--since {since:?} is not an RFC 3339 time: {e}"))?;
    anyhow::ensure!(
        settings.store.kind == alertgate_receiver::config::StoreKind::Sqlite,
        "replay reads the embedded SQLite journal; [store] kind = \"postgres\" is not supported by replay yet"
    );
    let path = &settings.store.path;
    anyhow::ensure!(path.exists(), "no journal at {} yet", path.display());
    let venues = build_venues(&settings, config)?;
    let interpreter = alertgate_receiver::ingest::Interpreter {
        // Replay judges rules, not lateness: no age limit.
        max_age_ms: i64::MAX,
        max_signal_age_ms: None,
        ..alertgate_receiver::ingest::Interpreter::new(&settings, &venues)
    };
    let messages = runtime()?.block_on(async {
        let journal = alertgate_receiver::journal::SqliteJournal::open(
            path,
            std::time::Duration::from_millis(settings.store.busy_timeout_ms),
        )?;
        journal.messages_since(since_ms).await
    })?;
    let report = alertgate_receiver::replay::replay(&settings, &interpreter, &messages);
    for d in &report.differences {
        println!("{}  was {}  would be {}", d.id, d.was, d.would);
    }
    println!(
        "{} of {} alerts since {since} would be decided differently (nothing was placed)",
        report.differences.len(),
        report.examined
    );
    Ok(())
}

fn orders(config: &Path, limit: u32) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    ensure_journal(&settings)?;
    let rows = runtime()?.block_on(async {
        let journal = settings.store.open().await?.journal;
        journal.recent_orders(limit.clamp(1, 1000)).await
    })?;
    let header = [
        "CREATED",
        "CLIENT ORDER ID",
        "ACCOUNT",
        "SYMBOL",
        "SIDE",
        "QTY",
        "TYPE",
        "LIMIT",
        "STATUS",
        "VENUE",
        "VENUE ORDER ID",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for o in &rows {
        let created = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(o.created_at_ms) * 1_000_000,
        )
        .map(alertgate_shared::envelope::format_millis)
        .unwrap_or_default();
        table.push(vec![
            created,
            o.client_order_id.clone(),
            o.account.clone(),
            o.symbol.clone(),
            o.side.as_str().to_owned(),
            o.quantity.normalize().to_string(),
            o.order_type.as_str().to_owned(),
            o.limit_price
                .map(|p| p.normalize().to_string())
                .unwrap_or_else(|| "-".into()),
            o.status.as_str().to_owned(),
            o.venue.clone(),
            o.venue_order_id.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&table);
    if rows.is_empty() {
        println!("(no orders yet)");
    }
    Ok(())
}

/// A SQLite journal must exist already (the commands never create one); PostgreSQL is asked.
fn ensure_journal(settings: &Settings) -> anyhow::Result<()> {
    let path = &settings.store.path;
    if settings.store.kind == alertgate_receiver::config::StoreKind::Sqlite {
        anyhow::ensure!(path.exists(), "no journal at {} yet", path.display());
    }
    Ok(())
}

fn print_table(table: &[Vec<String>]) {
    let columns = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

/// Every venue of `settings`, built without a journal (a paper book in memory).
fn build_venues(
    settings: &Settings,
    config: &Path,
) -> anyhow::Result<alertgate_receiver::routing::Venues> {
    alertgate_receiver::routing::Venues::build(
        settings,
        std::sync::Arc::new(alertgate_receiver::journal::MemoryPlacements::default()),
        std::sync::Arc::new(alertgate_shared::SystemClock),
    )
    .map_err(|e| {
        let table = if settings.venues.is_empty() {
            "[broker]: "
        } else {
            ""
        };
        anyhow::anyhow!("{}: {table}{e}", config.display())
    })
}

fn positions(config: &Path) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    ensure_journal(&settings)?;
    let venues: Vec<String> = settings
        .venue_configs()?
        .into_iter()
        .map(|v| v.name)
        .collect();
    let rows = runtime()?.block_on(async {
        let journal = settings.store.open().await?.journal;
        alertgate_receiver::reconcile::position_rows(journal.as_ref(), &venues).await
    })?;
    let header = [
        "ACCOUNT",
        "VENUE",
        "SYMBOL",
        "POSITION",
        "VENUE POSITION",
        "DRIFT",
        "RECONCILED",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    let shown = |d: Option<rust_decimal::Decimal>| {
        d.map_or_else(|| "-".to_owned(), |d| d.normalize().to_string())
    };
    for p in &rows {
        let reconciled = p
            .reconciled_at_ms
            .and_then(|ms| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
            })
            .map_or_else(|| "-".to_owned(), alertgate_shared::envelope::format_millis);
        table.push(vec![
            p.account.clone(),
            p.venue.clone(),
            p.symbol.clone(),
            p.position.normalize().to_string(),
            shown(p.venue_position),
            shown(p.drift),
            reconciled,
        ]);
    }
    print_table(&table);
    if rows.is_empty() {
        println!("(no positions yet)");
    }
    Ok(())
}
