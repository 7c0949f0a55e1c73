//! Waiting for work that finishes in the background, without sleeping a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] probes.
const POLL: Duration = Duration::from_millis(20);

/// [`eventually`] gave up.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {within:?} waiting for {what}")]
pub struct TimedOut {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub within: Duration,
}

/// Probes every 20 ms until `probe` gives a value, and returns it; gives up after `within`.
/// A bool condition is `|| async { cond.then_some(()) }`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    within: Duration,
    mut probe: F,
) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: what.to_owned(),
                within,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How long [`until`] waits: background work in a test (a delivery, a retry, a fill) takes
/// milliseconds, so this only matters on a machine that is very busy.
pub const WAIT: Duration = Duration::from_secs(10);

/// [`eventually`] for a yes/no condition, within [`WAIT`]; panics naming `what` when it never
/// holds. For tests, where a timeout is a failure.
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = eventually(what, WAIT, || {
        let pending = check();
        async move { pending.await.then_some(()) }
    })
    .await;
    if let Err(e) = waited {
        panic!("{e}");
    }
}
