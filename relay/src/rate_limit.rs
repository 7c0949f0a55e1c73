//! Steps 3 and 7 of the pipeline: governor (GCRA) limits per client address, for everyone
//! together, and per authenticated account. A refusal carries how long to wait, for `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitSettings;

/// A request over a limit, with the wait before the next one would pass (at least 1 s, as
/// `Retry-After` counts whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds to wait.
    pub retry_after_secs: u64,
}

/// The three limiters of one configuration.
#[derive(Debug)]
pub struct RateLimits {
    /// The settings they were built from, so a reload keeps the buckets when nothing changed.
    settings: RateLimitSettings,
    /// One bucket per client address.
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// One bucket for everyone.
    global: DefaultDirectRateLimiter,
    /// One bucket per account.
    per_account: DefaultKeyedRateLimiter<String>,
    /// Source of "now" for the wait computation (the limiters' own clock).
    clock: DefaultClock,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    /// Limiters for these settings (validated to be non-zero).
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            settings,
            per_ip: DefaultKeyedRateLimiter::keyed(quota(
                settings.per_ip_per_second,
                settings.per_ip_burst,
            )),
            global: DefaultDirectRateLimiter::direct(quota(
                settings.global_per_second,
                settings.global_burst,
            )),
            per_account: DefaultKeyedRateLimiter::keyed(quota(
                settings.per_account_per_second,
                settings.per_account_burst,
            )),
            clock: DefaultClock::default(),
        }
    }

    /// The settings these limiters enforce.
    pub fn settings(&self) -> RateLimitSettings {
        self.settings
    }

    /// The per-address limit, then the global one.
    pub fn check_client(&self, ip: IpAddr) -> Result<(), Limited> {
        self.per_ip
            .check_key(&ip)
            .map_err(|n| self.limited(n.wait_time_from(self.clock.now())))?;
        self.global
            .check()
            .map_err(|n| self.limited(n.wait_time_from(self.clock.now())))
    }

    /// The per-account limit.
    pub fn check_account(&self, account: &str) -> Result<(), Limited> {
        // Keys are configured account ids, so this map cannot grow without bound.
        self.per_account
            .check_key(&account.to_owned())
            .map_err(|n| self.limited(n.wait_time_from(self.clock.now())))
    }

    /// Forgets buckets that are full again, so a spray of addresses does not grow memory forever.
    pub fn forget_idle(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
    }

    fn limited(&self, wait: Duration) -> Limited {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Limited {
            retry_after_secs: secs.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(per_ip_burst: u32, global_burst: u32) -> RateLimitSettings {
        RateLimitSettings {
            per_ip_per_second: 1,
            per_ip_burst,
            global_per_second: 1,
            global_burst,
            per_account_per_second: 1,
            per_account_burst: 2,
        }
    }

    #[test]
    fn an_address_over_its_burst_is_told_to_wait_at_least_a_second() {
        let limits = RateLimits::new(settings(2, 100));
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        assert!(limits.check_client(ip).is_ok());
        assert!(limits.check_client(ip).is_ok());
        let limited = limits.check_client(ip).unwrap_err();
        assert!(limited.retry_after_secs >= 1);
        assert!(
            limits.check_client("1.2.3.5".parse().unwrap()).is_ok(),
            "other addresses are unaffected"
        );
    }

    #[test]
    fn the_global_limit_applies_across_addresses() {
        let limits = RateLimits::new(settings(100, 2));
        assert!(limits.check_client("1.1.1.1".parse().unwrap()).is_ok());
        assert!(limits.check_client("1.1.1.2".parse().unwrap()).is_ok());
        assert!(limits.check_client("1.1.1.3".parse().unwrap()).is_err());
    }

    #[test]
    fn accounts_have_their_own_buckets() {
        let limits = RateLimits::new(settings(100, 100));
        assert!(limits.check_account("a").is_ok());
        assert!(limits.check_account("a").is_ok());
        assert!(limits.check_account("a").is_err());
        assert!(limits.check_account("b").is_ok());
    }
}
