//! The Telegram Bot API's `sendMessage`, as documented at core.telegram.org/bots/api:
//! `POST /bot<token>/sendMessage` with a JSON body; `chat_id` (integer or `@channelusername`
//! string) and `text` (1–4096 characters) required. Every answer is JSON with `ok`: success is
//! `{"ok":true,"result":<Message>}`; failures are `{"ok":false,"error_code":N,"description":...}`
//! (401 `Unauthorized` for a bad token, 404 `Not Found` for an unknown method, 400 `Bad
//! Request: chat not found` / `message text is empty` / `message is too long`), and flood
//! control is 429 `Too Many Requests: retry after N` with `"parameters":{"retry_after":N}` (in
//! the body; no `Retry-After` header).

use serde_json::{json, Value};
use warp::http::StatusCode;

use super::chat::{is_json, rate_limited_secs, ChatMessage, Inbox};
use super::{json_reply, Emulator, Faults, Recorded, Reply, Venue};

/// What the emulator is started with.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// The bot token it accepts (`123456:ABC-...`).
    pub token: String,
    /// The chats that exist (as the API would resolve `chat_id`).
    pub chats: Vec<String>,
}

/// The bot's state.
#[derive(Debug)]
pub struct TelegramState {
    /// The token.
    config: TelegramConfig,
    /// Messages sent.
    inbox: Inbox,
}

/// A running Telegram Bot API emulator.
pub type TelegramEmulator = Emulator<TelegramState>;

fn error(code: u16, description: &str) -> Reply {
    json_reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"ok": false, "error_code": code, "description": description}),
    )
}

impl Venue for TelegramState {
    type Config = TelegramConfig;

    fn new(config: TelegramConfig) -> std::io::Result<Self> {
        Ok(Self {
            config,
            inbox: Inbox::default(),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.path.ends_with("/sendMessage")
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        let Some(rest) = request.path.strip_prefix("/bot") else {
            return Some(error(404, "Not Found"));
        };
        let Some((token, method)) = rest.split_once('/') else {
            return Some(error(404, "Not Found"));
        };
        if token != self.config.token {
            return Some(error(401, "Unauthorized"));
        }
        if method != "sendMessage" {
            return Some(error(404, "Not Found"));
        }
        let reply = faults.around(
            || self.send(request),
            |code| json!({"ok": false, "error_code": code, "description": "Internal Server Error"}),
        )?;
        // Telegram puts the wait in the body, not in a header.
        Some(match rate_limited_secs(&reply) {
            Some(secs) => json_reply(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"ok": false, "error_code": 429,
                        "description": format!("Too Many Requests: retry after {secs}"),
                        "parameters": {"retry_after": secs}}),
            ),
            None => reply,
        })
    }
}

impl TelegramState {
    fn send(&self, request: &Recorded) -> Reply {
        if request.method != "POST" || !is_json(request.header("content-type")) {
            return error(400, "Bad Request: expected a JSON POST");
        }
        let body = request.json();
        let chat = match body.get("chat_id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => return error(400, "Bad Request: chat_id is empty"),
        };
        let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
        if text.trim().is_empty() {
            return error(400, "Bad Request: message text is empty");
        }
        if text.chars().count() > 4096 {
            return error(400, "Bad Request: message is too long");
        }
        if !self.config.chats.contains(&chat) {
            return error(400, "Bad Request: chat not found");
        }
        let n = self.inbox.push(ChatMessage {
            text: text.to_owned(),
            body: body.clone(),
            to: chat.clone(),
        });
        json_reply(
            StatusCode::OK,
            &json!({"ok": true, "result": {"message_id": n, "date": 0,
                    "chat": {"id": body["chat_id"], "type": "private"}, "text": text}}),
        )
    }
}

impl Emulator<TelegramState> {
    /// Starts a bot with `token` and one chat, `chat`.
    pub async fn bot(token: &str, chat: &str) -> std::io::Result<Self> {
        Self::start(TelegramConfig {
            token: token.to_owned(),
            chats: vec![chat.to_owned()],
        })
        .await
    }

    /// The `api_base` to configure.
    pub fn api_base(&self) -> String {
        self.base_url()
    }

    /// Messages sent.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.venue().inbox.all()
    }
}
