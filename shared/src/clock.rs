//! Injected time. Everything whose behaviour depends on "now" (timestamp tolerance, dedupe windows,
//! alert expiry) takes a [`Clock`], so tests can move time instead of sleeping.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current UTC time.
    fn now(&self) -> OffsetDateTime;

    /// The current time as whole unix seconds.
    fn now_unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// The current time as unix milliseconds.
    fn now_unix_ms(&self) -> i64 {
        i64::try_from(self.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; cheap to clone, all clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    /// Shared so a test can hold one handle and give another to the code under test.
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock standing at unix second `secs`.
    pub fn at_unix(secs: i64) -> Self {
        Self::new(OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}
