//! Trading sessions: `"mon-fri 09:30-16:00"` in an IANA time zone. Outside every session opening
//! orders are refused (`outside_session`); exits and cancels still run.
//!
//! A session is a set of week days and a time range in the zone's local time. The range may
//! cross midnight (`"sun-thu 18:00-17:00"`, a futures week): it starts on a listed day and ends
//! the next. Daylight saving time comes from the zone database (jiff), never from arithmetic here.

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_MINUTES: u16 = 24 * 60;

/// One session: days (Monday = 0) and local minutes since midnight `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Session {
    /// The days a session starts on.
    days: [bool; 7],
    /// Start, local minutes since midnight.
    start: u16,
    /// End, local minutes since midnight (`1440` for 24:00); at or before `start`: the next day.
    end: u16,
    /// As written, for errors and `check-config`.
    text: String,
}

/// Why a session string cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {message} (expected e.g. \"mon-fri 09:30-16:00\")")]
pub struct SessionError {
    text: String,
    message: String,
}

fn day_index(name: &str) -> Option<usize> {
    DAYS.iter().position(|d| name.eq_ignore_ascii_case(d))
}

fn minutes(hhmm: &str) -> Option<u16> {
    let (h, m) = hhmm.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(DAY_MINUTES),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl FromStr for Session {
    type Err = SessionError;

    fn from_str(text: &str) -> Result<Self, SessionError> {
        let fail = |message: &str| SessionError {
            text: text.to_owned(),
            message: message.to_owned(),
        };
        let mut words = text.split_whitespace();
        let (Some(day_part), Some(time_part), None) = (words.next(), words.next(), words.next())
        else {
            return Err(fail("a session is days, a space, and a time range"));
        };
        let mut days = [false; 7];
        if day_part.eq_ignore_ascii_case("daily") {
            days = [true; 7];
        } else {
            for item in day_part.split(',') {
                let (from, to) = item.split_once('-').unwrap_or((item, item));
                let (Some(from), Some(to)) = (day_index(from), day_index(to)) else {
                    return Err(fail("days are mon, tue, wed, thu, fri, sat, sun or daily"));
                };
                // A range may wrap the week: "fri-mon".
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
        }
        let Some((start, end)) = time_part.split_once('-') else {
            return Err(fail("the time range is HH:MM-HH:MM"));
        };
        let (Some(start), Some(end)) = (minutes(start), minutes(end)) else {
            return Err(fail("times are HH:MM from 00:00 to 24:00"));
        };
        if start == DAY_MINUTES || start == end {
            return Err(fail("a session must not be empty"));
        }
        Ok(Self {
            days,
            start,
            end,
            text: text.to_owned(),
        })
    }
}

impl TryFrom<String> for Session {
    type Error = SessionError;
    fn try_from(text: String) -> Result<Self, SessionError> {
        text.parse()
    }
}

impl From<Session> for String {
    fn from(s: Session) -> String {
        s.text
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Session {
    /// `true` when local `weekday` (Monday = 0) at `minute` past midnight is inside.
    fn contains(&self, weekday: usize, minute: u16) -> bool {
        if self.start < self.end {
            self.days[weekday] && minute >= self.start && minute < self.end
        } else {
            let yesterday = (weekday + 6) % 7;
            (self.days[weekday] && minute >= self.start)
                || (self.days[yesterday] && minute < self.end)
        }
    }
}

/// An IANA time zone name (`America/New_York`), checked against the zone database at load.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zone {
    name: String,
    zone: TimeZone,
}

impl Eq for Zone {}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Zone {
    /// UTC.
    pub fn utc() -> Self {
        Self {
            name: "UTC".into(),
            zone: TimeZone::UTC,
        }
    }
}

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        TimeZone::get(&name)
            .map(|zone| Self {
                name: name.clone(),
                zone,
            })
            .map_err(|_| {
                format!("{name:?} is not an IANA time zone name (e.g. \"America/New_York\", \"Europe/London\", \"Asia/Kolkata\")")
            })
    }
}

impl From<Zone> for String {
    fn from(z: Zone) -> String {
        z.name
    }
}

/// Sessions in a zone. No sessions: always open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The sessions.
    pub sessions: Vec<Session>,
    /// Their zone.
    pub zone: Zone,
}

impl Schedule {
    /// `true` when `unix_ms` falls in a session (or there are none).
    pub fn is_open(&self, unix_ms: i64) -> bool {
        if self.sessions.is_empty() {
            return true;
        }
        let Ok(ts) = jiff::Timestamp::from_millisecond(unix_ms) else {
            return false;
        };
        let local = ts.to_zoned(self.zone.zone.clone());
        let weekday = usize::from(local.weekday().to_monday_zero_offset().unsigned_abs());
        let minute = u16::try_from(local.hour()).unwrap_or(0) * 60
            + u16::try_from(local.minute()).unwrap_or(0);
        self.sessions.iter().any(|s| s.contains(weekday, minute))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(sessions: &[&str], zone: &str) -> Schedule {
        Schedule {
            sessions: sessions.iter().map(|s| s.parse().unwrap()).collect(),
            zone: Zone::try_from(zone.to_owned()).unwrap(),
        }
    }

    fn ms(rfc3339: &str) -> i64 {
        rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn new_york_hours_follow_the_march_dst_change() {
        // DST began on Sunday 2026-03-08: 09:30 New York is 14:30 UTC before, 13:30 UTC after.
        let s = schedule(&["mon-fri 09:30-16:00"], "America/New_York");
        assert!(!s.is_open(ms("2026-03-06T14:29:00Z")), "Fri 09:29 EST");
        assert!(s.is_open(ms("2026-03-06T14:30:00Z")), "Fri 09:30 EST");
        assert!(!s.is_open(ms("2026-03-06T13:35:00Z")), "Fri 08:35 EST");
        assert!(s.is_open(ms("2026-03-09T13:35:00Z")), "Mon 09:35 EDT");
        assert!(!s.is_open(ms("2026-03-09T13:29:00Z")), "Mon 09:29 EDT");
        assert!(s.is_open(ms("2026-03-09T19:59:00Z")), "Mon 15:59 EDT");
        assert!(!s.is_open(ms("2026-03-09T20:00:00Z")), "Mon 16:00 EDT");
        assert!(s.is_open(ms("2026-03-06T20:59:00Z")), "Fri 15:59 EST");
        assert!(!s.is_open(ms("2026-03-07T15:00:00Z")), "Saturday");
    }

    #[test]
    fn a_session_may_cross_midnight_and_the_week() {
        let s = schedule(&["sun-thu 18:00-17:00"], "UTC");
        assert!(s.is_open(ms("2026-03-08T18:00:00Z")), "Sun 18:00");
        assert!(s.is_open(ms("2026-03-09T12:00:00Z")), "Mon noon");
        assert!(
            s.is_open(ms("2026-03-13T16:59:00Z")),
            "Fri 16:59, from Thursday"
        );
        assert!(!s.is_open(ms("2026-03-13T17:00:00Z")), "Fri 17:00");
        assert!(!s.is_open(ms("2026-03-14T12:00:00Z")), "Saturday");
        assert!(!s.is_open(ms("2026-03-09T17:30:00Z")), "the daily break");
    }

    #[test]
    fn several_sessions_and_day_lists() {
        let s = schedule(
            &["mon,wed 09:00-12:00", "fri-sat 00:00-24:00"],
            "Asia/Kolkata",
        );
        assert!(s.is_open(ms("2026-03-09T04:00:00Z")), "Mon 09:30 IST");
        assert!(!s.is_open(ms("2026-03-10T04:00:00Z")), "Tue 09:30 IST");
        assert!(s.is_open(ms("2026-03-14T18:00:00Z")), "Sat 23:30 IST");
        assert!(!s.is_open(ms("2026-03-14T18:31:00Z")), "Sun 00:01 IST");
        assert!(schedule(&[], "UTC").is_open(0));
    }

    #[test]
    fn bad_sessions_and_zones_are_named() {
        for bad in [
            "mon-fri",
            "monday 09:00-10:00",
            "mon-fri 9:30-16:00",
            "mon-fri 09:30-25:00",
            "mon 10:00-10:00",
            "mon 09:00-10:00 extra",
        ] {
            let e = bad.parse::<Session>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let e = Zone::try_from("America/Nowhere".to_owned()).unwrap_err();
        assert!(e.contains("America/Nowhere") && e.contains("IANA"), "{e}");
    }
}
