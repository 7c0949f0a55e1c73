//! A Discord incoming webhook ("Execute Webhook", discord.com/developers/docs/resources/webhook):
//! `POST /api/webhooks/{webhook.id}/{webhook.token}` with a JSON body holding at least one of
//! `content` (at most 2000 characters), `embeds`, `components`, `file`, `poll`. Without
//! `?wait=true` success is `204 No Content`. Errors are JSON `{"message","code"}`: 401 `Invalid
//! Webhook Token` (50027), 404 `Unknown Webhook` (10015), 400 `Cannot send an empty message`
//! (50006) or `Invalid Form Body` (50035). A rate limit is 429 with a `Retry-After` header and
//! the body `{"message":"You are being rate limited.","retry_after":<seconds, fractional>,
//! "global":false}`.

use serde_json::{json, Value};
use warp::http::StatusCode;

use super::chat::{is_json, rate_limited_secs, text_reply, ChatMessage, Inbox};
use super::{json_reply, Emulator, Faults, Recorded, Reply, Venue};

/// What the emulator is started with.
#[derive(Debug, Clone)]
pub struct DiscordConfig {
    /// The webhook's id.
    pub id: String,
    /// The webhook's token.
    pub token: String,
}

/// The webhook's state.
#[derive(Debug)]
pub struct DiscordState {
    /// Id and token.
    config: DiscordConfig,
    /// Messages posted.
    inbox: Inbox,
}

/// A running Discord webhook emulator.
pub type DiscordEmulator = Emulator<DiscordState>;

fn error(status: StatusCode, code: u32, message: &str) -> Reply {
    json_reply(status, &json!({"message": message, "code": code}))
}

impl Venue for DiscordState {
    type Config = DiscordConfig;

    fn new(config: DiscordConfig) -> std::io::Result<Self> {
        Ok(Self {
            config,
            inbox: Inbox::default(),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.path.starts_with("/api/webhooks/")
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        let ["api", "webhooks", id, token] = parts.as_slice() else {
            return Some(error(StatusCode::NOT_FOUND, 0, "404: Not Found"));
        };
        if *id != self.config.id {
            return Some(error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook"));
        }
        if *token != self.config.token {
            return Some(error(
                StatusCode::UNAUTHORIZED,
                50027,
                "Invalid Webhook Token",
            ));
        }
        let reply = faults.around(
            || self.post(request),
            |_| json!({"message": "500: Internal Server Error", "code": 0}),
        )?;
        Some(match rate_limited_secs(&reply) {
            Some(secs) => {
                let mut r = json_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({"message": "You are being rate limited.",
                            "retry_after": secs as f64, "global": false}),
                );
                if let Some(v) = reply.headers().get(warp::http::header::RETRY_AFTER) {
                    r.headers_mut()
                        .insert(warp::http::header::RETRY_AFTER, v.clone());
                }
                r
            }
            None => reply,
        })
    }
}

impl DiscordState {
    fn post(&self, request: &Recorded) -> Reply {
        if request.method != "POST" {
            return error(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed");
        }
        if !is_json(request.header("content-type")) {
            return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
        }
        let body = request.json();
        let content = body
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let other = ["embeds", "components", "file", "poll"]
            .iter()
            .any(|k| body.get(*k).is_some_and(|v| !v.is_null()));
        if content.trim().is_empty() && !other {
            return error(
                StatusCode::BAD_REQUEST,
                50006,
                "Cannot send an empty message",
            );
        }
        if content.chars().count() > 2000 {
            return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
        }
        self.inbox.push(ChatMessage {
            text: content.to_owned(),
            body,
            to: String::new(),
        });
        text_reply(StatusCode::NO_CONTENT, "", "text/plain")
    }
}

impl Emulator<DiscordState> {
    /// Starts a webhook with this id and token.
    pub async fn webhook(id: &str, token: &str) -> std::io::Result<Self> {
        Self::start(DiscordConfig {
            id: id.to_owned(),
            token: token.to_owned(),
        })
        .await
    }

    /// The `webhook_url` to configure.
    pub fn webhook_url(&self) -> String {
        let c = &self.venue().config;
        format!("{}/api/webhooks/{}/{}", self.base_url(), c.id, c.token)
    }

    /// Messages posted.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.venue().inbox.all()
    }
}
