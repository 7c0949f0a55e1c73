//! A Slack incoming webhook (api.slack.com/messaging/webhooks):
//! `POST /services/T…/B…/<secret>` with `Content-type: application/json` and a body holding
//! `text` (or `blocks`). Success is `200` with the plain body `ok`. Errors are plain words:
//! 400 `invalid_payload` (unparsable body) / `no_text`, 403 `action_prohibited`, 404
//! `no_service` (an unknown or revoked URL), 410 `channel_is_archived`. A rate limit is 429 with
//! `Retry-After` (seconds).

use serde_json::Value;
use warp::http::StatusCode;

use super::chat::{is_json, text_reply, ChatMessage, Inbox};
use super::{Emulator, Faults, Recorded, Reply, Venue};

/// The webhook's state.
#[derive(Debug)]
pub struct SlackState {
    /// The path it answers on (`/services/T…/B…/…`).
    path: String,
    /// Messages posted.
    inbox: Inbox,
}

/// A running Slack incoming-webhook emulator.
pub type SlackEmulator = Emulator<SlackState>;

impl Venue for SlackState {
    /// The webhook's path.
    type Config = String;

    fn new(path: String) -> std::io::Result<Self> {
        Ok(Self {
            path,
            inbox: Inbox::default(),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.path.starts_with("/services/")
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        if request.path != self.path {
            return Some(text_reply(StatusCode::NOT_FOUND, "no_service", "text/html"));
        }
        let reply = faults.around(
            || self.post(request),
            |_| Value::String("rollup_error".into()),
        )?;
        Some(if reply.status() == StatusCode::TOO_MANY_REQUESTS {
            let mut r = text_reply(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "text/html");
            if let Some(v) = reply.headers().get(warp::http::header::RETRY_AFTER) {
                r.headers_mut()
                    .insert(warp::http::header::RETRY_AFTER, v.clone());
            }
            r
        } else {
            reply
        })
    }
}

impl SlackState {
    fn post(&self, request: &Recorded) -> Reply {
        if request.method != "POST" {
            return text_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_method",
                "text/html",
            );
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return text_reply(StatusCode::BAD_REQUEST, "invalid_payload", "text/html");
        };
        if !is_json(request.header("content-type")) {
            return text_reply(StatusCode::BAD_REQUEST, "invalid_payload", "text/html");
        }
        let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
        if text.trim().is_empty() && body.get("blocks").is_none() {
            return text_reply(StatusCode::BAD_REQUEST, "no_text", "text/html");
        }
        self.inbox.push(ChatMessage {
            text: text.to_owned(),
            body,
            to: String::new(),
        });
        text_reply(StatusCode::OK, "ok", "text/html")
    }
}

impl Emulator<SlackState> {
    /// Starts a webhook at `/services/T00000000/B00000000/<secret>`.
    pub async fn webhook(secret: &str) -> std::io::Result<Self> {
        Self::start(format!("/services/T00000000/B00000000/{secret}")).await
    }

    /// The `webhook_url` to configure.
    pub fn webhook_url(&self) -> String {
        format!("{}{}", self.base_url(), self.venue().path)
    }

    /// Messages posted.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.venue().inbox.all()
    }
}
