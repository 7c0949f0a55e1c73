//! Startup: builds the receiver from [`Settings`] around an already-bound listener, reports the
//! address it got, and runs until a shutdown future completes.
//!
//! ```no_run
//! # async fn demo(settings: alertgate_receiver::Settings) -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let receiver = alertgate_receiver::Receiver::build(settings, listener).await?;
//! println!("listening on {}", receiver.local_addr());
//! receiver.run_until_stopped(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::config::Invalid;
use alertgate_shared::{Clock, SystemClock};
use tokio::net::TcpListener;
use warp::Filter;

use crate::broker::BrokerBuildError;
use crate::config::Settings;
use crate::executor::Executor;
use crate::ingest::{Ingest, Interpreter};
use crate::journal::{Journal, JournalError};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::reconcile::Reconciler;
use crate::risk::RiskGates;
use crate::routes::{routes, AppState};
use crate::routing::Venues;
use crate::verify::TrustedKeys;

/// How long shutdown waits for running executions (they resume at the next start otherwise).
const EXECUTION_DRAIN: Duration = Duration::from_secs(5);

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A config value is unusable.
    #[error("{0}")]
    Config(#[from] Invalid),
    /// The journal could not be opened.
    #[error("store: {0}")]
    Journal(#[from] JournalError),
    /// The broker could not be built.
    #[error("{0}")]
    Broker(#[from] BrokerBuildError),
    /// A venue could not be built.
    #[error("{0}")]
    Venue(#[from] crate::routing::VenueBuildError),
    /// The TLS files could not be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A listener could not be bound or read.
    #[error("{what}: {source}")]
    Io {
        /// Which listener.
        what: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A built receiver, ready to run.
#[derive(Debug)]
pub struct Receiver {
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    metrics_addr: Option<SocketAddr>,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    executor: Executor,
    metrics: Metrics,
    keys: TrustedKeys,
    /// The venues, for rereading their credentials on `SIGHUP` ([`Receiver::venues`]).
    venues: Venues,
    header_read_timeout: Duration,
    reconciler: Reconciler,
    resume_interval: Duration,
    resume_after: Duration,
    /// `[[notify]]` delivery, with each destination's cursor as read at build.
    notifier: (Notifier, Vec<i64>),
}

impl Receiver {
    /// Builds the receiver with the real clock. Opens the journal, builds the broker, binds the
    /// metrics listener and resumes executions an earlier run left `pending`.
    pub async fn build(settings: Settings, listener: TcpListener) -> Result<Self, BuildError> {
        Self::build_with_clock(settings, listener, Arc::new(SystemClock)).await
    }

    /// [`Receiver::build`] with an injected clock (tests: signature tolerance, dedupe windows,
    /// alert age).
    pub async fn build_with_clock(
        settings: Settings,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BuildError> {
        settings.validate()?;
        let keys = TrustedKeys::from_settings(&settings)?;
        let store = settings.store.open().await?;
        let venues = Venues::build(&settings, store.book, clock.clone())?;
        let metrics = Metrics::new();
        let risk = RiskGates::with_metrics(settings.risk.clone(), clock.clone(), metrics.clone())
            .with_venue_limits(venues.risk_limits());
        let dyn_journal: Arc<dyn Journal> = store.journal;
        risk.strategies()
            .load(dyn_journal.as_ref(), &metrics)
            .await?;
        let executor = Executor::new(
            dyn_journal.clone(),
            venues.clone(),
            risk,
            clock.clone(),
            settings.executor.clone(),
            metrics.clone(),
        );
        let interpreter = Interpreter::new(&settings, &venues);
        let reconciler = Reconciler {
            journal: dyn_journal.clone(),
            venues: venues.clone(),
            executor: executor.clone(),
            clock: clock.clone(),
            config: settings.reconcile.clone(),
            metrics: metrics.clone(),
        };
        let ui_clock = clock.clone();
        let ingest = Ingest {
            keys: keys.clone(),
            interpreter: Arc::new(interpreter),
            journal: dyn_journal.clone(),
            executor: executor.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            dedupe_window_ms: i64::try_from(settings.dedupe.window_seconds.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            inline_deadline: Duration::from_millis(settings.executor.inline_deadline_ms),
        };
        // Cursors before anything is journaled: a new destination misses nothing from now on.
        let notifier = Notifier::build(
            &settings.notify,
            settings.risk.kill_switch_file.clone(),
            dyn_journal.clone(),
            metrics.clone(),
            clock.clone(),
        )?;
        let cursors = notifier.open_cursors().await?;
        let resumed = ingest.resume_unfinished().await?;
        if resumed > 0 {
            tracing::info!(resumed, "resuming interrupted executions");
        }
        let ops_token = match &settings.ops {
            Some(ops) => Some(
                ops.token
                    .resolve()
                    .map_err(|e| Invalid::new("ops.token", e.to_string()))?,
            ),
            None => None,
        };
        let tls = settings
            .server
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let (metrics_listener, metrics_addr) = match &settings.metrics {
            Some(m) => {
                let l = TcpListener::bind(m.listen)
                    .await
                    .map_err(|source| BuildError::Io {
                        what: "metrics.listen",
                        source,
                    })?;
                let addr = l.local_addr().map_err(|source| BuildError::Io {
                    what: "metrics.listen",
                    source,
                })?;
                (Some(l), Some(addr))
            }
            None => (None, None),
        };
        let local_addr = listener.local_addr().map_err(|source| BuildError::Io {
            what: "server.listen",
            source,
        })?;
        let state = Arc::new(AppState {
            ingest,
            journal: dyn_journal,
            ops_token,
            max_body_bytes: settings.server.max_body_bytes,
            venues: venues.names().into_iter().map(str::to_owned).collect(),
            ui: crate::ui::Ui::new(ui_clock, tls.is_some()),
        });
        Ok(Self {
            listener,
            local_addr,
            metrics_listener,
            metrics_addr,
            tls,
            state,
            executor,
            metrics,
            keys,
            venues,
            header_read_timeout: Duration::from_millis(settings.server.header_read_timeout_ms),
            reconciler,
            resume_interval: Duration::from_millis(settings.executor.resume_interval_ms),
            resume_after: Duration::from_secs(settings.executor.resume_after_seconds),
            notifier: (notifier, cursors),
        })
    }

    /// The address alerts are served on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics address, when `[metrics]` is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The reconciler, to run a pass on demand (tests, with `[reconcile] interval_seconds = 0`).
    pub fn reconciler(&self) -> Reconciler {
        self.reconciler.clone()
    }

    /// The trusted keys, for reloading on `SIGHUP` ([`TrustedKeys::reload`]).
    pub fn trusted_keys(&self) -> TrustedKeys {
        self.keys.clone()
    }

    /// The venues orders go to: `SIGHUP` calls each one's
    /// [`crate::broker::Broker::reload_credentials`] (the daily Zerodha access token).
    pub fn venues(&self) -> Venues {
        self.venues.clone()
    }

    /// Serves until `shutdown` completes; then stops accepting, finishes in-flight requests and
    /// gives running executions a few seconds (whatever is left resumes at the next start).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BuildError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let sweeper = {
            let ingest = self.state.ingest.clone();
            let (interval, after) = (self.resume_interval, self.resume_after);
            let mut stopped = stop_rx.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let requested = tokio::select! {
                        _ = ticks.tick() => None,
                        ids = ingest.executor.resume_requests() => Some(ids),
                        _ = stopped.wait_for(|s| *s) => return,
                    };
                    if let Some(ids) = requested {
                        // Earlier messages later ones wait for, that nobody executes.
                        match ingest.resume_ids(ids).await {
                            Ok(0) => {}
                            Ok(n) => tracing::warn!(
                                resumed = n,
                                "resumed abandoned executions later messages wait for"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot resume abandoned executions")
                            }
                        }
                        continue;
                    }
                    match ingest.resume_stuck(after).await {
                        Ok(0) => {}
                        Ok(n) => tracing::warn!(
                            resumed = n,
                            "resumed executions interrupted by journal errors"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot look for interrupted executions")
                        }
                    }
                }
            })
        };
        let reconciling = tokio::spawn(self.reconciler.clone().run(stop_rx.clone()));
        let (notifier, cursors) = self.notifier;
        let notifying = tokio::spawn(notifier.run(cursors, stop_rx.clone()));
        let metrics_task = self.metrics_listener.map(|listener| {
            let metrics = self.metrics.clone();
            let route = warp::path!("metrics").and(warp::get()).map(move || {
                warp::reply::with_header(
                    metrics.render(),
                    "content-type",
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            });
            let mut rx = stop_rx.clone();
            tokio::spawn(
                warp::serve(route)
                    .incoming(listener)
                    .graceful(async move {
                        let _ = rx.wait_for(|stopped| *stopped).await;
                    })
                    .run(),
            )
        });
        tracing::info!(addr = %self.local_addr, tls = self.tls.is_some(), venues = ?self.venues.names(), keys = ?self.keys.fingerprints(), "receiver listening");
        let options = alertgate_shared::server::ServeOptions {
            header_read_timeout: self.header_read_timeout,
            max_concurrent_streams: 256,
            ..Default::default()
        };
        // Open dashboard streams end when shutdown starts, so they do not hold it up.
        let ui_state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            ui_state.ui.stop();
        };
        alertgate_shared::server::serve(
            self.listener,
            self.tls,
            &options,
            routes(self.state),
            shutdown,
        )
        .await;
        let _ = stop_tx.send(true);
        let _ = sweeper.await;
        let _ = reconciling.await;
        let _ = notifying.await;
        if !self.executor.drain(EXECUTION_DRAIN).await {
            tracing::warn!("executions still running at shutdown resume at the next start");
        }
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        tracing::info!("receiver stopped");
        Ok(())
    }
}
