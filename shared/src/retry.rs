//! Retrying over HTTP: one backoff policy and one reading of `Retry-After`, for the relay's
//! forwarder and the receiver's venue adapters and notifiers alike.
//!
//! The delay before retry `n` is `initial · 2^(n-1)` capped at `max`, with "equal jitter" (between
//! half and all of it), and never less than what the other side asked for with `Retry-After`
//! (itself capped at [`Backoff::max_retry_after`], so a hostile or broken peer cannot park a retry
//! for a day). `Retry-After` comes in two forms (RFC 9110 §10.2.3): delay-seconds (`120`) and an
//! HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, plus the obsolete RFC 850 and asctime forms that
//! recipients must accept); a date in the past means "now".

use std::time::Duration;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// An exponential backoff policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry (before jitter).
    pub initial: Duration,
    /// The longest computed delay (before jitter).
    pub max: Duration,
    /// The longest wait a `Retry-After` may impose.
    pub max_retry_after: Duration,
}

impl Backoff {
    /// A policy from `initial` to `max`, honouring `Retry-After` up to `max_retry_after`.
    pub const fn new(initial: Duration, max: Duration, max_retry_after: Duration) -> Self {
        Self {
            initial,
            max,
            max_retry_after,
        }
    }

    /// The delay before retry number `attempt` (1-based); `jitter` is in `[0, 1)`.
    pub fn delay(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)));
        let base = exp.min(self.max);
        let delay = base / 2 + base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
        let asked = retry_after.unwrap_or_default().min(self.max_retry_after);
        delay.max(asked)
    }

    /// [`Backoff::delay`] with fresh random jitter.
    pub fn delay_now(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt, rand::random::<f64>(), retry_after)
    }
}

/// The `Retry-After` of a response as a wait; `None` when absent or unreadable.
///
/// An HTTP-date is measured from the response's own `Date` header when it has one (so a skew
/// between the peer's clock and ours does not change the wait), else from `now_unix` (seconds).
pub fn retry_after(headers: &http::HeaderMap, now_unix: i64) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    let now = headers
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(http_date)
        .map_or(now_unix, OffsetDateTime::unix_timestamp);
    parse_retry_after(value, now)
}

/// Reads a `Retry-After` value: delay-seconds or an HTTP-date, relative to `now_unix`.
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is "a very long time", not garbage.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let at = http_date(value)?.unix_timestamp();
    Some(Duration::from_secs(
        u64::try_from(at.saturating_sub(now_unix)).unwrap_or(0),
    ))
}

/// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const IMF_FIXDATE: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);
/// asctime: `Sun Nov  6 08:49:37 1994` (day padded with a space).
const ASCTIME: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
);
/// RFC 850 after its two-digit year is expanded: `Sunday, 06-Nov-1994 08:49:37 GMT`.
const RFC850_EXPANDED: &[FormatItem<'static>] =
    format_description!("[weekday], [day]-[month repr:short]-[year] [hour]:[minute]:[second] GMT");

/// An HTTP-date in any of its three forms (all UTC).
fn http_date(value: &str) -> Option<OffsetDateTime> {
    let parsed = PrimitiveDateTime::parse(value, IMF_FIXDATE)
        .or_else(|_| PrimitiveDateTime::parse(value, ASCTIME))
        .ok()
        .or_else(|| rfc850(value))?;
    Some(parsed.assume_utc())
}

/// RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`. Years `00`–`69` are 2000–2069, `70`–`99` are
/// 1970–1999 (the dates this form still appears with are all in that range).
fn rfc850(value: &str) -> Option<PrimitiveDateTime> {
    let (weekday, rest) = value.split_once(", ")?;
    let (day, rest) = rest.split_once('-')?;
    let (month, rest) = rest.split_once('-')?;
    let (yy, rest) = rest.split_once(' ')?;
    if yy.len() != 2 || !yy.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = yy.parse().ok()?;
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    let expanded = format!("{weekday}, {day}-{month}-{year} {rest}");
    PrimitiveDateTime::parse(&expanded, RFC850_EXPANDED).ok()
}

/// Formats `unix` as an IMF-fixdate (what a server sends), for tests and emulators.
pub fn format_http_date(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .format(IMF_FIXDATE)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn policy() -> Backoff {
        Backoff::new(MS(100), MS(1_000), Duration::from_secs(60))
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let b = policy();
        assert_eq!(b.delay(1, 0.0, None), MS(50));
        assert_eq!(b.delay(1, 0.999_999, None).as_millis(), 99);
        assert_eq!(b.delay(2, 0.0, None), MS(100));
        assert_eq!(b.delay(3, 0.0, None), MS(200));
        assert_eq!(b.delay(10, 0.0, None), MS(500));
        assert_eq!(b.delay(u32::MAX, 0.0, None), MS(500));
    }

    #[test]
    fn retry_after_is_a_lower_bound_capped_by_the_policy() {
        let b = policy();
        assert_eq!(
            b.delay(1, 0.0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(b.delay(1, 0.0, Some(MS(1))), MS(50));
        assert_eq!(
            b.delay(1, 0.0, Some(Duration::from_secs(86_400))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", 0),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "1.5", "soon", "12 s"] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn retry_after_as_an_http_date_in_all_three_forms() {
        // 1994-11-06T08:49:37Z
        let at = 784_111_777;
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(form, at - 30),
                Some(Duration::from_secs(30)),
                "{form}"
            );
        }
        // A date already past means "retry now".
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + 5),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST", at), None);
    }

    #[test]
    fn a_formatted_http_date_reads_back() {
        let now = 1_764_000_000;
        let text = format_http_date(now + 7).expect("formats");
        assert!(text.ends_with(" GMT"), "{text}");
        assert_eq!(parse_retry_after(&text, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_header_is_read_from_a_response() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers, 0), None);
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("2"),
        );
        assert_eq!(retry_after(&headers, 0), Some(Duration::from_secs(2)));
    }
}
