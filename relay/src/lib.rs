//! alertgate-relay: TradingView's edge. Accepts alerts from listed addresses, authenticates them,
//! stores them durably, then signs and forwards them to the receiver.
//!
//! # Layout
//! The request pipeline, in the order a webhook goes through it:
//! - [`client_ip`]: the client address (TCP peer, or `X-Forwarded-For` behind a trusted proxy).
//! - [`allowlist`]: CIDR allowlist, checked before the body is read.
//! - [`rate_limit`]: governor limits per address, global, and per account.
//! - [`auth`]: account resolution and constant-time secret check.
//! - [`dedupe`]: the (account, idempotency key) rule and window: `dedupe/window.rs` the in-memory
//!   TTL set, `dedupe/journal.rs` its `keys-*.jsonl` files so it survives a restart.
//! - [`spool`]: the durable, group-committed queue of accepted alerts. `spool/mod.rs` the handle;
//!   `format.rs` segment names and records; `file.rs` private append-only files; `replay.rs`
//!   reading back at open; `ledger.rs` what is pending where, in acceptance order; `read.rs`
//!   reading pending alerts back in batches; `writer.rs` the group-commit thread (and full
//!   disks); `dead_letter.rs` dead letters; `lock.rs` the process lock.
//! - [`forward`]: signed delivery to the receiver with retries, backoff and expiry.
//!
//! Around it:
//! - [`routes`]: the warp filters and the pipeline itself; [`error`]: refusals → status + JSON.
//! - [`server`]: the hyper-util accept loop (limits, timeouts, graceful drain); [`tls`]: rustls
//!   and TradingView's client certificate.
//! - [`config`]: typed settings; [`live`]: the reloadable, resolved part of them.
//! - [`metrics`]: Prometheus metrics and their label values.
//! - [`dead_letters`]: `dead-letters list|replay`: reading letters, queuing replays the running
//!   relay appends to its spool.
//! - [`notify`]: `[[notify]]` notices of dead letters and a full spool (shared channels).
//!
//! [`Relay`] ties them together: `Relay::build(settings, listener)`, then
//! `run_until_stopped(shutdown)`.

pub mod allowlist;
pub mod auth;
pub mod client_ip;
pub mod config;
pub mod dead_letters;
pub mod dedupe;
pub mod error;
pub mod forward;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod spool;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::{Clock, SystemClock};
use tokio::net::TcpListener;
use warp::Filter;

pub use config::Settings;

use crate::config::ClientCertMode;
use crate::dedupe::DedupeWindow;
use crate::forward::Forwarder;
use crate::live::{Live, LiveHandle, ResolveError};
use crate::metrics::{Metrics, ReloadOutcome};
use crate::routes::AppState;
use crate::spool::Spool;

/// Why a relay could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A secret or key could not be read or parsed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The forward client cannot be built.
    #[error(transparent)]
    Forward(#[from] forward::ClientError),
    /// The spool directory cannot be opened or replayed.
    #[error("spool.dir {path}: {source}")]
    Spool {
        /// The directory.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A value is not acceptable.
    #[error(transparent)]
    Invalid(#[from] alertgate_shared::config::Invalid),
    /// The listener's address cannot be read.
    #[error("listener: {0}")]
    Listener(std::io::Error),
}

/// Everything [`Settings`] resolves to, without starting anything: what `check-config` checks.
#[derive(Debug)]
pub struct Resolved {
    /// Accounts, keys, allowlist, limits.
    pub live: Live,
    /// The TLS configuration, when the relay terminates TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The client for the receiver.
    pub client: reqwest::Client,
}

impl Resolved {
    /// Reads every secret, key and certificate the settings name.
    pub fn resolve(settings: &Settings) -> Result<Self, BuildError> {
        let live = Live::resolve(settings, None)?;
        let tls = settings
            .server
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()?;
        let client = forward::build_client(&settings.forward)?;
        Ok(Self { live, tls, client })
    }
}

/// Optional parts of a relay that tests and `main` provide.
#[derive(Debug)]
pub struct RelayOptions {
    /// Time source for receipt times, dedupe expiry and alert expiry.
    pub clock: Arc<dyn Clock>,
    /// Serve `GET /metrics` on this socket.
    pub metrics_listener: Option<TcpListener>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            metrics_listener: None,
        }
    }
}

/// A built relay, ready to serve.
#[derive(Debug)]
pub struct Relay {
    /// The public socket, bound by the caller.
    listener: TcpListener,
    /// Its address (port 0 resolved).
    local_addr: SocketAddr,
    /// The Prometheus socket, if any.
    metrics_listener: Option<TcpListener>,
    /// Its address.
    metrics_addr: Option<SocketAddr>,
    /// What request handlers share.
    state: Arc<AppState>,
    /// Set when the relay terminates TLS itself.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The configuration it was built from.
    settings: Settings,
    /// Delivers spooled alerts once running (pending ones from before the start first).
    forwarder: Forwarder,
}

impl Relay {
    /// Builds a relay on an already-bound listener, with the system clock and no metrics socket.
    pub async fn build(settings: Settings, listener: TcpListener) -> Result<Self, BuildError> {
        Self::build_with(settings, listener, RelayOptions::default()).await
    }

    /// Builds a relay with explicit options.
    pub async fn build_with(
        settings: Settings,
        listener: TcpListener,
        options: RelayOptions,
    ) -> Result<Self, BuildError> {
        let Resolved { live, tls, client } = Resolved::resolve(&settings)?;
        let local_addr = listener.local_addr().map_err(BuildError::Listener)?;
        let metrics_addr = match &options.metrics_listener {
            Some(l) => Some(l.local_addr().map_err(BuildError::Listener)?),
            None => None,
        };
        let spool_settings = settings.spool.clone();
        let (spool, replay) = tokio::task::spawn_blocking(move || Spool::open(spool_settings))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(|source| BuildError::Spool {
                path: settings.spool.dir.clone(),
                source,
            })?;

        let clock = options.clock;
        let dedupe = DedupeWindow::new(settings.dedupe.window_seconds);
        dedupe.restore(&replay.keys, clock.now_unix_ms());
        let metrics = Arc::new(Metrics::new());
        metrics
            .spool_pending
            .set(i64::try_from(replay.pending).unwrap_or(i64::MAX));
        if replay.pending > 0 {
            tracing::info!(pending = replay.pending, "resuming spooled alerts");
        }
        let live = LiveHandle::new(live);
        let notices =
            notify::Notices::start(&settings.notify, Arc::clone(&clock), Arc::clone(&metrics))?;
        let forwarder = Forwarder::new(
            client,
            settings.forward.clone(),
            live.clone(),
            spool.clone(),
            Arc::clone(&clock),
            Arc::clone(&metrics),
        )
        .with_notices(notices.clone());
        let client_cert = settings
            .server
            .tls
            .as_ref()
            .map_or(ClientCertMode::Off, |t| t.tradingview_client_cert);
        let state = Arc::new(AppState {
            live,
            spool,
            dedupe,
            metrics,
            clock,
            max_body_bytes: settings.server.max_body_bytes,
            body_timeout: Duration::from_millis(settings.server.body_timeout_ms),
            client_cert,
            notices,
        });
        Ok(Self {
            listener,
            local_addr,
            metrics_listener: options.metrics_listener,
            metrics_addr,
            state,
            tls,
            settings,
            forwarder,
        })
    }

    /// The address the public listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the metrics listener, if one was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// A handle that applies a new configuration (what `SIGHUP` does).
    pub fn reloader(&self) -> Reloader {
        Reloader {
            live: self.state.live.clone(),
            metrics: Arc::clone(&self.state.metrics),
            running: Arc::new(self.settings.clone()),
        }
    }

    /// Serves until `shutdown` completes: then stops accepting, lets in-flight requests finish
    /// (every accepted alert is already synced to the spool) and stops forwarding; alerts not yet
    /// delivered stay spooled and resume at the next start.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let Self {
            listener,
            local_addr,
            metrics_listener,
            state,
            tls,
            settings,
            forwarder,
            ..
        } = self;
        let forwarding = forwarder.spawn();
        let maintenance = tokio::spawn(maintain(Arc::clone(&state)));
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = metrics_listener.map(|l| {
            let filter = metrics_routes(Arc::clone(&state.metrics));
            tokio::spawn(
                warp::serve(filter)
                    .incoming(l)
                    .graceful(async move {
                        let _ = metrics_stopped.await;
                    })
                    .run(),
            )
        });
        tracing::info!(
            listen = %local_addr,
            tls = tls.is_some(),
            forward = %settings.forward.targets().join(", "),
            "relay serving"
        );
        let options = server::ServeOptions {
            gate: Some(routes::gate(Arc::clone(&state))),
            ..server::options(&settings.server)
        };
        server::serve(
            listener,
            tls,
            &options,
            routes::routes(Arc::clone(&state)),
            shutdown,
        )
        .await;
        tracing::info!("stopped accepting; in-flight requests finished");
        let _ = stop_metrics.send(());
        if let Some(m) = metrics_server {
            let _ = tokio::time::timeout(Duration::from_secs(2), m).await;
        }
        maintenance.abort();
        forwarding.stop().await;
        state.spool.flush().await;
        tracing::info!(
            pending = state.spool.pending(),
            "spool flushed; undelivered alerts resume at the next start"
        );
    }
}

/// Periodic housekeeping: forget expired dedupe keys and, while the spool cannot write, probe
/// whether it can again (every second); forget idle rate-limit buckets and key journal files
/// whose keys have all left the window (every 10 s).
async fn maintain(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let now_ms = state.clock.now_unix_ms();
        state.dedupe.purge(now_ms);
        state.spool.probe().await;
        match dead_letters::take_replays(&state.spool, state.spool.dir()).await {
            Ok(0) => {}
            Ok(replayed) => {
                tracing::info!(
                    replayed,
                    "dead letters queued for replay are back in the spool"
                );
                state.spool.report_pending(|p| {
                    state
                        .metrics
                        .spool_pending
                        .set(i64::try_from(p).unwrap_or(i64::MAX));
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot take the dead letters queued for replay"),
        }
        if n % 10 == 0 {
            state.live.load().limits.forget_idle();
            state
                .spool
                .expire_keys(now_ms, state.dedupe.window_ms())
                .await;
        }
    }
}

fn metrics_routes(
    metrics: Arc<Metrics>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
       + Clone
       + Send
       + Sync
       + 'static {
    warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            let mut response = warp::reply::Response::new(metrics.encode().into());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        })
}

/// Applies a new configuration to a running relay: accounts, secrets, signing keys, allowlist,
/// trusted proxies and rate limits, all at once or not at all.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// Where the new configuration goes.
    live: LiveHandle,
    /// Counts reloads.
    metrics: Arc<Metrics>,
    /// The settings the relay was started with (to warn about changes that need a restart).
    running: Arc<Settings>,
}

impl Reloader {
    /// Resolves `settings` and swaps them in; on error the running configuration stays.
    pub fn reload(&self, settings: &Settings) -> Result<(), BuildError> {
        let result = settings
            .validate()
            .map_err(BuildError::from)
            .and_then(|()| Ok(Live::resolve(settings, Some(&self.live.load()))?));
        match result {
            Ok(live) => {
                self.live.store(live);
                self.metrics.reload(ReloadOutcome::Ok);
                let r = &self.running;
                if settings.server.listen != r.server.listen
                    || settings.server.tls != r.server.tls
                    || settings.forward != r.forward
                    || settings.spool != r.spool
                    || settings.dedupe != r.dedupe
                    || settings.metrics != r.metrics
                {
                    tracing::warn!(
                        "changes to server.listen, server.tls, forward, spool, dedupe or metrics take effect at the next restart"
                    );
                }
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.reload(ReloadOutcome::Error);
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
                Err(e)
            }
        }
    }
}
