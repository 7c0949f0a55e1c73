//! The relay → receiver body and the `webhook-id` it travels under.
//!
//! ```json
//! {"type":"tradingview.alert","account":"main","received_at":"2026-11-22T09:00:00.123Z",
//!  "source_ip":"52.89.214.238","alert":{"...":"the alert object, secret removed"}}
//! ```

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// The envelope's `type` for a TradingView alert.
pub const ALERT_TYPE: &str = "tradingview.alert";

/// The alert field that carries the TradingView secret; removed before forwarding.
pub const SECRET_FIELD: &str = "secret";

/// `Prefer: respond-async` ([RFC 7240](https://www.rfc-editor.org/rfc/rfc7240#section-4.1)):
/// the relay asks the receiver to answer a delivery as soon as the message is durably journaled
/// (202 `pending`), not after its execution. The relay only needs to know the message is safe
/// (2xx), refused (4xx) or to be retried (5xx), and it delivers an (account, symbol)'s alerts one
/// after another: waiting for each execution would bound each symbol to one venue round trip per
/// alert. The receiver still executes in arrival order, resumes after a crash, and answers a
/// redelivery with the outcome.
pub const PREFER_RESPOND_ASYNC: (&str, &str) = ("prefer", "respond-async");

/// Whether `headers` carry the [`PREFER_RESPOND_ASYNC`] preference (case-insensitive, among
/// other preferences, with or without parameters, in one `Prefer` header or several).
pub fn prefers_respond_async(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(PREFER_RESPOND_ASYNC.0)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.split(';').next())
        .any(|token| {
            token
                .trim()
                .split('=')
                .next()
                .is_some_and(|name| name.trim().eq_ignore_ascii_case(PREFER_RESPOND_ASYNC.1))
        })
}

/// The id of one accepted alert: `msg_` + a ULID. The same on every delivery attempt of that alert,
/// never derived from the alert's own idempotency key (users repeat those across trades).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MessageId(String);

/// A string that is not a usable message id.
#[derive(Debug, thiserror::Error)]
#[error("invalid message id: expected 1 to 128 characters of [A-Za-z0-9_-]")]
pub struct InvalidMessageId;

impl MessageId {
    /// A new, unique id (`msg_` + 26-character ULID, sortable by time).
    pub fn generate() -> Self {
        Self(format!("msg_{}", ulid::Ulid::new()))
    }

    /// A new id whose ULID carries the given time (unix milliseconds).
    pub fn generate_at(unix_ms: i64) -> Self {
        let ms = u64::try_from(unix_ms).unwrap_or(0);
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        Self(format!("msg_{}", ulid::Ulid::from_datetime(t)))
    }

    /// Validates an id received from elsewhere (Standard Webhooks ids from any sender are accepted,
    /// as long as they cannot be confused with the `.` separators of the signed content).
    pub fn parse(s: &str) -> Result<Self, InvalidMessageId> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| Self(s.to_owned())).ok_or(InvalidMessageId)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MessageId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What the relay forwards for each accepted alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always [`ALERT_TYPE`] for now; lets the receiver refuse bodies of other kinds.
    #[serde(rename = "type")]
    pub kind: String,
    /// The relay account the alert was authenticated for.
    pub account: String,
    /// When the relay accepted the alert (millisecond precision, UTC).
    #[serde(with = "timestamp_millis")]
    pub received_at: OffsetDateTime,
    /// The client address the relay saw (after trusted-proxy resolution).
    pub source_ip: IpAddr,
    /// The alert object as TradingView sent it, minus its secret.
    pub alert: Map<String, Value>,
}

impl Envelope {
    /// Wraps an authenticated alert, removing its `secret` field.
    pub fn new(
        account: impl Into<String>,
        received_at: OffsetDateTime,
        source_ip: IpAddr,
        mut alert: Map<String, Value>,
    ) -> Self {
        alert.shift_remove(SECRET_FIELD);
        Self {
            kind: ALERT_TYPE.to_owned(),
            account: account.into(),
            received_at,
            source_ip,
            alert,
        }
    }

    /// The body bytes, exactly as they will be signed and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a map of JSON values and strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a body (after its signature was verified).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Formats a time as `2026-11-22T09:00:00.123Z`.
pub fn format_millis(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Parses any RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

/// Serde adapter for [`format_millis`] / [`parse_rfc3339`].
pub mod timestamp_millis {
    use super::*;

    /// Writes the time with millisecond precision.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_millis(*t))
    }

    /// Reads an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respond_async_is_found_among_other_preferences_and_nowhere_else() {
        let with = |values: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for v in values {
                headers.append("prefer", http::HeaderValue::from_str(v).unwrap());
            }
            prefers_respond_async(&headers)
        };
        assert!(with(&["respond-async"]));
        assert!(with(&["Respond-Async"]));
        assert!(with(&["return=minimal, respond-async; foo=bar"]));
        assert!(with(&["wait=10", "respond-async"]));
        assert!(!with(&[]));
        assert!(!with(&["return=minimal"]));
        assert!(!with(&["respond-asynchronously"]));
        assert!(!with(&["wait=respond-async"]));
        let mut other = http::HeaderMap::new();
        other.insert("x-prefer", http::HeaderValue::from_static("respond-async"));
        assert!(!prefers_respond_async(&other));
    }

    #[test]
    fn the_envelope_drops_the_secret_and_keeps_everything_else_in_order() {
        let alert: Map<String, Value> =
            serde_json::from_str(r#"{"secret":"s3cr3t","symbol":"BTCUSDT","action":"buy","zz":1}"#)
                .unwrap();
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_338_000_123_456_789).unwrap();
        let env = Envelope::new("main", at, "52.89.214.238".parse().unwrap(), alert);
        let text = String::from_utf8(env.to_bytes()).unwrap();
        assert!(!text.contains("s3cr3t"));
        assert_eq!(
            text,
            r#"{"type":"tradingview.alert","account":"main","received_at":"2026-11-22T09:00:00.123Z","source_ip":"52.89.214.238","alert":{"symbol":"BTCUSDT","action":"buy","zz":1}}"#
        );
        let back = Envelope::from_slice(text.as_bytes()).unwrap();
        assert_eq!(
            back.received_at.unix_timestamp_nanos(),
            1_795_338_000_123_000_000
        );
        assert_eq!(back.alert.len(), 3);
    }

    #[test]
    fn message_ids_are_ulids_without_dots() {
        let id = MessageId::generate();
        assert!(id.as_str().starts_with("msg_"));
        assert_eq!(id.as_str().len(), 30);
        assert!(!id.as_str().contains('.'));
        assert_ne!(id, MessageId::generate());
        assert!(MessageId::parse("msg_p5jXN8AQM9LWM0D4loKWxJek").is_ok());
        assert!(MessageId::parse("msg.1").is_err());
        assert!(MessageId::parse("").is_err());
    }
}
