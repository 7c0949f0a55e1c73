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
