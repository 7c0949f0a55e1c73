//! What the chat emulators (Telegram, Discord, Slack, signed webhook) share: the messages they
//! accepted, plain-text answers, and moving a 429's `Retry-After` into the body where an API
//! puts it there instead.

use std::sync::Mutex;

use warp::http::{HeaderValue, Response, StatusCode};

use super::{lock, Reply};

/// One message a chat emulator accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// The text (Telegram `text`, Discord `content`, Slack `text`; a signed webhook's raw body).
    pub text: String,
    /// The whole JSON body.
    pub body: serde_json::Value,
    /// Telegram `chat_id` / the signed webhook's `webhook-id`; empty otherwise.
    pub to: String,
}

/// The messages accepted so far.
#[derive(Debug, Default)]
pub struct Inbox(Mutex<Vec<ChatMessage>>);

impl Inbox {
    /// Records one accepted message; returns how many there are now.
    pub(crate) fn push(&self, message: ChatMessage) -> usize {
        let mut all = lock(&self.0);
        all.push(message);
        all.len()
    }

    /// Every accepted message, in order.
    pub fn all(&self) -> Vec<ChatMessage> {
        lock(&self.0).clone()
    }
}

/// A plain-text answer (Slack answers `ok` or an error word).
pub(crate) fn text_reply(status: StatusCode, body: &str, content_type: &'static str) -> Reply {
    let mut r = Response::new(body.to_owned());
    *r.status_mut() = status;
    r.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

/// The `Retry-After` seconds a queued [`super::Fault::RateLimited`] put on `reply`, if it is a 429.
pub(crate) fn rate_limited_secs(reply: &Reply) -> Option<u64> {
    if reply.status() != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    reply
        .headers()
        .get(warp::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether `content-type` is JSON (charset allowed), as every one of these APIs requires for a
/// JSON body.
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"))
}
