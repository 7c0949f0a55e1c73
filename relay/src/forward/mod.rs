//! Forwarding: every spooled alert is POSTed to `forward.url` with Standard Webhooks headers,
//! re-signed (fresh timestamp, every configured key) on each attempt, until the receiver answers
//! 2xx (delivered), answers a permanent 4xx (dead letter `rejected_<status>`), or the alert is
//! older than `forward.max_age_seconds` (dead letter `expired`: a late trading signal is worse
//! than none). 5xx, 408, 429, timeouts and connection errors are retried with exponential backoff
//! and jitter, honouring `Retry-After`. At most `forward.concurrency` requests are in flight.
//!
//! Alerts of one (account, ticker) go out one at a time, in acceptance order (`order`): a later
//! one waits while an earlier one is tried, retried or waits itself, so the receiver journals and
//! executes them in the order the relay accepted them.
//!
//! Pending alerts are taken from the spool in acceptance order, a batch at a time, whenever
//! fewer than a bounded number are in hand; the spool wakes the forwarder when it accepts one,
//! so an alert accepted while the forwarder is idle goes out at once (from the spool's cache,
//! without a disk read).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertgate_shared::envelope::PREFER_RESPOND_ASYNC;
use alertgate_shared::retry::{self, Backoff};
use alertgate_shared::{ordering, Clock, Envelope};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::config::ForwardSettings;
use crate::live::LiveHandle;
use crate::metrics::{DeadLetterReason, ForwardOutcome, Metrics};
use crate::spool::{DeadLetter, Resolution, Spool, SpoolError, SpooledAlert};

mod order;

use order::{Sequencer, Ticket};

/// Alerts taken from the spool at once, and the least of them held in memory (being tried or
/// waiting to retry): the forwarder's memory is bounded by this, not by the backlog.
const BATCH: usize = 256;

/// Longest wait between attempts to write a dead letter (the disk is full).
const DEAD_LETTER_RETRY_MAX: Duration = Duration::from_secs(5);

/// Why the forward client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("forward.{key}: {message}")]
pub struct ClientError {
    /// The offending key.
    key: &'static str,
    /// What is wrong.
    message: String,
}

/// The HTTP client for the receiver: keep-alive, per-attempt timeout, optional private CA and
/// client certificate (mTLS).
pub fn build_client(settings: &ForwardSettings) -> Result<reqwest::Client, ClientError> {
    let fail = |key, e: &dyn std::fmt::Display| ClientError {
        key,
        message: e.to_string(),
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("alertgate-relay/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_millis(settings.timeout_ms))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(settings.concurrency)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| fail("ca_file", &format!("{}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| fail("ca_file", &e))?;
        builder = builder.tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert), Some(key)) = (&settings.client_cert_file, &settings.client_key_file) {
        let mut pem = std::fs::read(cert)
            .map_err(|e| fail("client_cert_file", &format!("{}: {e}", cert.display())))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key)
                .map_err(|e| fail("client_key_file", &format!("{}: {e}", key.display())))?,
        );
        let identity =
            reqwest::Identity::from_pem(&pem).map_err(|e| fail("client_key_file", &e))?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| fail("url", &e))
}

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Delivered,
    Rejected(u16),
    Retry(Option<Duration>),
}

fn classify(result: &Result<reqwest::Response, reqwest::Error>, now_unix: i64) -> Attempt {
    match result {
        Ok(r) => {
            let status = r.status();
            if status.is_success() {
                Attempt::Delivered
            } else if status.is_client_error() && status != 408 && status != 429 {
                Attempt::Rejected(status.as_u16())
            } else {
                Attempt::Retry(retry::retry_after(r.headers(), now_unix))
            }
        }
        Err(_) => Attempt::Retry(None),
    }
}

/// Delivers spooled alerts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// Shared by every delivery task.
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Keep-alive connections to the receiver.
    client: reqwest::Client,
    /// URL, timeouts, backoff, concurrency.
    settings: ForwardSettings,
    /// The signing keys in force at each attempt (SIGHUP swaps them).
    live: LiveHandle,
    /// Where deliveries and dead letters are recorded.
    spool: Spool,
    /// Signature timestamps and alert age.
    clock: Arc<dyn Clock>,
    /// Forward counters and durations.
    metrics: Arc<Metrics>,
    /// Bounds concurrent attempts (not waiting alerts).
    slots: Arc<Semaphore>,
    /// Bounds deliveries being recorded in the spool after their symbol moved on.
    recording: Arc<Semaphore>,
    /// Delay between attempts of one alert.
    backoff: Backoff,
    /// `[[notify]]`: `dead_letter`.
    notices: Option<crate::notify::Notices>,
}

impl Forwarder {
    /// A forwarder for these settings.
    pub fn new(
        client: reqwest::Client,
        settings: ForwardSettings,
        live: LiveHandle,
        spool: Spool,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(settings.concurrency));
        let recording = Arc::new(Semaphore::new(settings.concurrency.max(BATCH)));
        // A Retry-After longer than the alert may live is cut there anyway (the alert expires).
        let backoff = Backoff::new(
            Duration::from_millis(settings.backoff_initial_ms),
            Duration::from_millis(settings.backoff_max_ms),
            Duration::from_secs(settings.max_age_seconds),
        );
        Self {
            inner: Arc::new(Inner {
                client,
                settings,
                live,
                spool,
                clock,
                metrics,
                slots,
                recording,
                backoff,
                notices: None,
            }),
        }
    }

    /// Delivers the spool's pending entries, oldest first, until the returned task is aborted
    /// (which also aborts deliveries in progress; they stay spooled). The alerts in memory at
    /// once are bounded: at most `window` are being tried, waiting to retry or waiting for an
    /// earlier alert of their symbol ([`order`]), taken from the spool in batches as earlier
    /// ones finish, so the first attempts keep the order of acceptance whatever the backlog.
    ///
    /// The work runs on threads of its own at `forward.nice` ([`Forwarding`]); where they
    /// cannot be started it runs on the caller's runtime, at the accept path's priority.
    pub fn spawn(self) -> Forwarding {
        let nice = self.inner.settings.nice;
        match forward_runtime(nice) {
            Ok(runtime) => {
                let task = runtime.spawn(self.run());
                Forwarding {
                    task,
                    runtime: Some(runtime),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the forwarder's threads; forwarding at the accept path's priority");
                Forwarding {
                    task: tokio::spawn(self.run()),
                    runtime: None,
                }
            }
        }
    }

    /// The delivery loop (see [`Forwarder::spawn`]).
    async fn run(self) {
        let window = self.inner.settings.concurrency.max(BATCH);
        let mut sequencer = Sequencer::default();
        let mut tasks = JoinSet::new();
        let mut tickets: HashMap<tokio::task::Id, Ticket> = HashMap::new();
        loop {
            while sequencer.len() < window {
                let want = (window - sequencer.len()).min(BATCH);
                let batch = match self.inner.spool.take(want).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read pending alerts from the spool; retrying in a second");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if batch.is_empty() {
                    break;
                }
                for alert in batch {
                    let tickers = order_keys(&alert);
                    let account = alert.account.clone();
                    if let Some((ticket, alert)) = sequencer.admit(&account, tickers, alert) {
                        // Taken in order here, so first attempts start in acceptance order.
                        if !self.start(&mut tasks, &mut tickets, ticket, alert).await {
                            return;
                        }
                    }
                }
            }
            let finished = tokio::select! {
                () = self.inner.spool.wait_for_new() => None,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => Some(done),
            };
            let mut finished: Vec<_> = finished.into_iter().collect();
            while let Some(done) = tasks.try_join_next_with_id() {
                finished.push(done);
            }
            for done in finished {
                let id = match done {
                    Ok((id, ())) => id,
                    // A delivery that panicked leaves its alert spooled (sent again after a
                    // restart); its symbol must not stay blocked meanwhile.
                    Err(e) => e.id(),
                };
                let Some(ticket) = tickets.remove(&id) else {
                    continue;
                };
                for (ticket, alert) in sequencer.finish(ticket) {
                    if !self.start(&mut tasks, &mut tickets, ticket, alert).await {
                        return;
                    }
                }
            }
        }
    }

    /// Starts delivering `alert` once a slot is free; `false` when the forwarder is closing.
    async fn start(
        &self,
        tasks: &mut JoinSet<()>,
        tickets: &mut HashMap<tokio::task::Id, Ticket>,
        ticket: Ticket,
        alert: SpooledAlert,
    ) -> bool {
        let Ok(slot) = Arc::clone(&self.inner.slots).acquire_owned().await else {
            return false;
        };
        let this = self.clone();
        let handle = tasks.spawn(async move { this.deliver(alert, slot).await });
        tickets.insert(handle.id(), ticket);
        true
    }

    /// Tries until delivered, rejected or expired; the first attempt uses `first`, a slot taken
    /// for it in order.
    async fn deliver(&self, alert: SpooledAlert, first: OwnedSemaphorePermit) {
        let inner = &self.inner;
        let max_age_ms =
            i64::try_from(inner.settings.max_age_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let deadline_ms = alert.received_ms.saturating_add(max_age_ms);
        let mut attempt: u32 = 0;
        let mut first = Some(first);
        loop {
            let result = {
                let slot = match first.take() {
                    Some(slot) => slot,
                    None => match Arc::clone(&inner.slots).acquire_owned().await {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                };
                // Checked after waiting for a slot: the wait itself may have aged the alert.
                let now_ms = inner.clock.now_unix_ms();
                if now_ms >= deadline_ms {
                    drop(slot);
                    self.dead_letter(&alert, "expired", DeadLetterReason::Expired)
                        .await;
                    return;
                }
                let remaining =
                    Duration::from_millis(u64::try_from(deadline_ms - now_ms).unwrap_or(0));
                // The keys in force now: a SIGHUP between attempts re-signs with the new ones.
                let ts = inner.clock.now_unix();
                let headers = match inner.live.load().signer.request_headers(
                    alert.id.as_str(),
                    ts,
                    &alert.body,
                ) {
                    Ok(mut headers) => {
                        // Answered once journaled: the next alert of this symbol need not
                        // wait for this one's venue round trip (see the constant).
                        let (name, value) = PREFER_RESPOND_ASYNC;
                        headers.insert(
                            http::HeaderName::from_static(name),
                            http::HeaderValue::from_static(value),
                        );
                        headers
                    }
                    Err(e) => {
                        // Spool ids are always valid webhook-ids; this is a corrupt entry.
                        drop(slot);
                        self.dead_letter(
                            &alert,
                            &format!("invalid_id: {e}"),
                            DeadLetterReason::Rejected,
                        )
                        .await;
                        return;
                    }
                };
                let timeout = Duration::from_millis(inner.settings.timeout_ms).min(remaining);
                let started = Instant::now();
                // Failover: the next receiver when one is unreachable, slow or failing (5xx);
                // a receiver's refusal (4xx) or success ends the attempt.
                let mut result = None;
                for url in inner.settings.targets() {
                    let sent = inner
                        .client
                        .post(url)
                        .headers(headers.clone())
                        .timeout(timeout)
                        .body(alert.body.clone())
                        .send()
                        .await;
                    let failed_over =
                        matches!(classify(&sent, inner.clock.now_unix()), Attempt::Retry(_));
                    if failed_over {
                        tracing::debug!(id = %alert.id, url, "receiver failed; trying the next");
                    }
                    result = Some(sent);
                    if !failed_over {
                        break;
                    }
                }
                let Some(result) = result else {
                    return;
                };
                inner
                    .metrics
                    .forward_duration
                    .observe(started.elapsed().as_secs_f64());
                result
            };
            attempt += 1;
            match classify(&result, inner.clock.now_unix()) {
                Attempt::Delivered => {
                    inner.metrics.forward(ForwardOutcome::Delivered);
                    tracing::info!(id = %alert.id, account = %alert.account, attempt, "alert delivered");
                    // The receiver has journaled it, so the next alert of its symbol may go now,
                    // without waiting for the spool's sync of this delivery. Should the relay
                    // stop before that sync, the alert is sent again after the restart and the
                    // receiver answers it as the duplicate it is. At most `recording` such writes
                    // are outstanding: past that the symbol waits, as it did before.
                    let Ok(permit) = Arc::clone(&inner.recording).acquire_owned().await else {
                        return;
                    };
                    let this = self.clone();
                    tokio::spawn(async move {
                        let inner = &this.inner;
                        if let Err(e) = inner.spool.resolve(&alert.id, Resolution::Delivered).await
                        {
                            tracing::warn!(id = %alert.id, error = %e, "cannot record the delivery; it is sent again only if the relay restarts before its segment is deleted");
                        }
                        drop(permit);
                        this.report_pending();
                    });
                    return;
                }
                Attempt::Rejected(status) => {
                    inner.metrics.forward(ForwardOutcome::Rejected);
                    self.dead_letter(
                        &alert,
                        &format!("rejected_{status}"),
                        DeadLetterReason::Rejected,
                    )
                    .await;
                    return;
                }
                Attempt::Retry(retry_after) => {
                    inner.metrics.forward(ForwardOutcome::Retry);
                    let what = match &result {
                        Ok(r) => format!("status {}", r.status().as_u16()),
                        Err(e) => format!("{e}"),
                    };
                    let delay = inner.backoff.delay_now(attempt, retry_after);
                    tracing::debug!(id = %alert.id, attempt, %what, delay_ms = delay.as_millis() as u64, "forward failed; will retry");
                    // Never sleep past the deadline by more than one backoff step: the loop head
                    // dead-letters the alert as soon as it is too old.
                    let now_ms = inner.clock.now_unix_ms();
                    let left =
                        Duration::from_millis(u64::try_from(deadline_ms - now_ms).unwrap_or(0));
                    tokio::time::sleep(delay.min(left.max(Duration::from_millis(1)))).await;
                }
            }
        }
    }

    /// Tells `[[notify]]` destinations about dead letters (before the forwarder is shared).
    pub fn with_notices(mut self, notices: crate::notify::Notices) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.notices = Some(notices);
        }
        self
    }

    async fn dead_letter(&self, alert: &SpooledAlert, reason: &str, metric: DeadLetterReason) {
        let inner = &self.inner;
        let letter = DeadLetter {
            id: alert.id.to_string(),
            account: alert.account.clone(),
            reason: reason.to_owned(),
            received_ms: alert.received_ms,
            dead_ms: inner.clock.now_unix_ms(),
            envelope: String::from_utf8_lossy(&alert.body).into_owned(),
        };
        inner.metrics.dead_letter(metric);
        if metric == DeadLetterReason::Expired {
            inner.metrics.forward(ForwardOutcome::Expired);
        }
        tracing::warn!(id = %alert.id, account = %alert.account, reason, "alert dead-lettered");
        // It stays pending until the letter is on disk: retried while the disk is full.
        let mut delay = Duration::from_millis(100);
        while let Err(e) = inner.spool.dead_letter(&letter).await {
            if matches!(e, SpoolError::Closed) {
                return;
            }
            tracing::error!(id = %alert.id, error = %e, "cannot write the dead letter; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(DEAD_LETTER_RETRY_MAX);
        }
        if let Some(notices) = &inner.notices {
            notices.dead_letter(&letter);
        }
        self.report_pending();
    }

    fn report_pending(&self) {
        let inner = &self.inner;
        inner.spool.report_pending(|n| {
            inner.metrics.spool_pending.set(gauge(n));
        });
    }
}

/// The running forwarder (from [`Forwarder::spawn`]).
#[derive(Debug)]
pub struct Forwarding {
    /// The delivery loop.
    task: tokio::task::JoinHandle<()>,
    /// Its threads, when it has threads of its own.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Forwarding {
    /// Stops forwarding: deliveries in progress are abandoned, their alerts stay spooled.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
        if let Some(runtime) = self.runtime.take() {
            // Not `drop`: a runtime must not be dropped from inside another one.
            runtime.shutdown_background();
        }
    }
}

/// The forwarder's runtime: as many workers as the accept path has, each set `nice` steps
/// less favoured by the kernel's scheduler than the thread building it, as it starts (on Linux
/// the nice value is per thread), blocking threads (spool reads, DNS) included.
fn forward_runtime(nice: u8) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // Absolute, not relative: a blocking thread started by a worker inherits the worker's.
    let base = current_nice();
    let target = (base + i32::from(nice)).min(i32::from(crate::config::MAX_NICE));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("relay-forward")
        .on_thread_start(move || set_priority(target))
        .enable_all()
        .build()
}

/// Sets the calling thread's nice value; a failure is logged and forwarding goes on at the
/// priority it has.
fn set_priority(nice: i32) {
    if current_nice() == nice {
        return;
    }
    if let Err(e) = rustix::process::setpriority_process(None, nice) {
        tracing::warn!(error = %e, nice, "cannot lower the forwarder's CPU priority");
    }
}

/// The calling thread's nice value.
fn current_nice() -> i32 {
    rustix::process::getpriority_process(None).unwrap_or(0)
}

/// The tickers `alert` is ordered by ([`ordering`]), read from its envelope: one rule for alerts
/// accepted now and alerts read back from disk. An envelope that does not parse has none (the
/// receiver refuses it, so it has no order to keep).
fn order_keys(alert: &SpooledAlert) -> BTreeSet<String> {
    Envelope::from_slice(&alert.body)
        .map(|envelope| ordering::order_keys(&envelope.alert))
        .unwrap_or_default()
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice values of a worker and of a blocking thread the worker starts.
    fn nice_in(runtime: &tokio::runtime::Runtime) -> (i32, i32) {
        runtime.block_on(async {
            tokio::spawn(async {
                let blocking = tokio::task::spawn_blocking(current_nice).await;
                (current_nice(), blocking.expect("blocking thread"))
            })
            .await
            .expect("worker")
        })
    }

    #[test]
    fn the_forwarders_threads_run_nicer_than_the_thread_that_starts_them() {
        let base = current_nice();
        let runtime = forward_runtime(5).expect("forward runtime");
        let expected = (base + 5).min(i32::from(crate::config::MAX_NICE));
        assert_eq!(nice_in(&runtime), (expected, expected));
        assert_eq!(
            current_nice(),
            base,
            "the starting thread keeps its priority"
        );
        runtime.shutdown_background();
    }

    #[test]
    fn nice_zero_keeps_the_accept_paths_priority() {
        let base = current_nice();
        let runtime = forward_runtime(0).expect("forward runtime");
        assert_eq!(nice_in(&runtime), (base, base));
        runtime.shutdown_background();
    }
}
