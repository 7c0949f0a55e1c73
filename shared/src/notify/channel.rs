//! One resolved `[[notify]]` destination: how a [`Notice`] becomes its request, how the answer
//! is read, and the retries and pacing around it.
//!
//! Requests, as each API documents them:
//! - Telegram: `POST {api_base}/bot{token}/sendMessage`, JSON `{"chat_id", "text"}` (text at most
//!   4096 characters); success is `{"ok":true,...}`; flood control is 429 with
//!   `{"ok":false,"parameters":{"retry_after":N}}`.
//! - Discord: `POST {webhook_url}`, JSON `{"content"}` (at most 2000 characters), 204 on success;
//!   429 with `{"retry_after": seconds (fractional)}` and `Retry-After`.
//! - Slack: `POST {webhook_url}`, JSON `{"text"}`, 200 `ok`; 429 with `Retry-After`; 400/403/404/
//!   410 name a permanent problem (`invalid_payload`, `no_service`, `channel_is_archived`).
//! - Webhook: `POST {url}`, the notice's JSON, signed with Standard Webhooks (`webhook-id` is the
//!   notice's id, so a receiver can drop a repeat).
//!
//! A 429, a 5xx, a timeout or a refused connection is retried with [`crate::retry::Backoff`],
//! never sooner than the destination asked; any other 4xx is given up at once (it will not
//! succeed by trying again). The token is part of Telegram's URL and the whole URL is the secret
//! of Discord's and Slack's webhooks: no error this module produces contains a URL.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::{ChannelKind, NotifyConfig, TELEGRAM_API_BASE};
use crate::config::Invalid;
use crate::retry::{self, Backoff};
use crate::{Clock, HmacSecret, Secret, Signer};

/// One thing to tell people, in both forms a destination may want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Unique per event (`evt_…`): the signed webhook's `webhook-id`.
    pub id: String,
    /// The event name (`filled`, `dead_letter`, ...), for the destination's filter.
    pub event: String,
    /// The line a person reads.
    pub text: String,
    /// The event as JSON: the signed webhook's body.
    pub json: Vec<u8>,
}

/// What became of one notice at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The destination took it.
    pub sent: bool,
    /// Requests made.
    pub attempts: u32,
    /// The last failure, when not sent (never holds a URL or token).
    pub error: Option<String>,
}

impl Delivery {
    /// `sent` or `failed`: the metric's and the journal's outcome.
    pub fn outcome(&self) -> &'static str {
        if self.sent {
            "sent"
        } else {
            "failed"
        }
    }
}

/// What one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Taken.
    Sent,
    /// Worth trying again, not before `wait` when the destination said so.
    Retry {
        /// The destination's `retry_after` / `Retry-After`.
        wait: Option<Duration>,
        /// What went wrong.
        error: String,
    },
    /// Will not succeed by trying again.
    GiveUp {
        /// What went wrong.
        error: String,
    },
}

/// Where a destination's requests go.
#[derive(Debug)]
enum Target {
    /// The full `sendMessage` URL (it holds the token).
    Telegram { url: Secret, chat_id: Value },
    /// The webhook URL (it is the token).
    Discord { url: Secret },
    /// The webhook URL (it is the token).
    Slack { url: Secret },
    /// A signed JSON webhook.
    Webhook { url: String, signer: Signer },
}

/// A destination ready to send.
#[derive(Debug)]
pub struct Channel {
    /// Its name (metrics, logs, delivery records).
    name: String,
    /// Its API.
    kind: ChannelKind,
    /// Where and how.
    target: Target,
    /// The events it gets.
    events: Vec<String>,
    /// The least time between two requests.
    min_interval: Duration,
    /// Attempts per notice.
    max_attempts: u32,
    /// Waits between attempts.
    backoff: Backoff,
    /// HTTP client with the request timeout; redirects are not followed (a redirect could carry a
    /// signed body or a token elsewhere).
    client: reqwest::Client,
    /// "Now" for `webhook-timestamp` and HTTP-date `Retry-After`.
    clock: Arc<dyn Clock>,
    /// When the last request went out, for pacing.
    last_request: Mutex<Option<Instant>>,
}

/// The longest message each kind takes, in characters.
fn max_chars(kind: ChannelKind) -> usize {
    match kind {
        ChannelKind::Telegram => 4096,
        ChannelKind::Discord => 2000,
        ChannelKind::Slack => 3000,
        ChannelKind::Webhook => usize::MAX,
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl Channel {
    /// Resolves the secrets of `config` (at index `index` of `[[notify]]`); `known` are the
    /// service's event names.
    pub fn build(
        config: &NotifyConfig,
        index: usize,
        known: &[&str],
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Invalid> {
        let key = |field: &str| format!("notify[{index}].{field}");
        let resolve = |r: &crate::SecretRef, field: &str| {
            r.resolve()
                .map_err(|e| Invalid::new(key(field), e.to_string()))
        };
        let missing = |field: &str| Invalid::new(key(field), "required");
        let target = match config.kind {
            ChannelKind::Telegram => {
                let token = resolve(
                    config
                        .bot_token
                        .as_ref()
                        .ok_or_else(|| missing("bot_token"))?,
                    "bot_token",
                )?;
                let base = config
                    .api_base
                    .as_deref()
                    .unwrap_or(TELEGRAM_API_BASE)
                    .trim_end_matches('/');
                let chat = config
                    .chat_id
                    .as_deref()
                    .ok_or_else(|| missing("chat_id"))?;
                let chat_id = chat
                    .trim()
                    .parse::<i64>()
                    .map_or_else(|_| Value::from(chat.trim()), Value::from);
                Target::Telegram {
                    url: Secret::new(format!("{base}/bot{}/sendMessage", token.expose())),
                    chat_id,
                }
            }
            ChannelKind::Discord | ChannelKind::Slack => {
                let url = resolve(
                    config
                        .webhook_url
                        .as_ref()
                        .ok_or_else(|| missing("webhook_url"))?,
                    "webhook_url",
                )?;
                if !url.expose().starts_with("https://") && !url.expose().starts_with("http://") {
                    return Err(Invalid::new(
                        key("webhook_url"),
                        "the referenced value is not an http(s) URL",
                    ));
                }
                if config.kind == ChannelKind::Discord {
                    Target::Discord { url }
                } else {
                    Target::Slack { url }
                }
            }
            ChannelKind::Webhook => {
                let mut secrets = Vec::new();
                for (i, r) in config.hmac_secrets.iter().enumerate() {
                    secrets.push(HmacSecret::load(r).map_err(|e| {
                        Invalid::new(key(&format!("hmac_secrets[{i}]")), e.to_string())
                    })?);
                }
                let signer = Signer::new(Vec::new(), secrets)
                    .map_err(|e| Invalid::new(key("hmac_secrets"), e.to_string()))?;
                Target::Webhook {
                    url: config.url.clone().ok_or_else(|| missing("url"))?,
                    signer,
                }
            }
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("alertgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Invalid::new(format!("notify[{index}]"), e.without_url().to_string()))?;
        Ok(Self {
            name: config.destination(),
            kind: config.kind,
            target,
            events: config.wanted_events(known),
            min_interval: Duration::from_millis(
                config
                    .min_interval_ms
                    .unwrap_or_else(|| config.kind.default_min_interval_ms()),
            ),
            max_attempts: config.max_attempts,
            backoff: Backoff::new(
                Duration::from_millis(500),
                Duration::from_secs(60),
                Duration::from_secs(300),
            ),
            client,
            clock,
            last_request: Mutex::new(None),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// Whether it gets `event`.
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }

    /// Overrides the waits between attempts (tests).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sends `notice`, retrying up to `max_attempts`, paced by `min_interval`.
    pub async fn deliver(&self, notice: &Notice) -> Delivery {
        let mut attempts = 0;
        loop {
            self.pace().await;
            attempts += 1;
            let (wait, error) = match self.attempt(notice).await {
                Attempt::Sent => {
                    return Delivery {
                        sent: true,
                        attempts,
                        error: None,
                    }
                }
                Attempt::GiveUp { error } => {
                    return Delivery {
                        sent: false,
                        attempts,
                        error: Some(error),
                    }
                }
                Attempt::Retry { wait, error } => (wait, error),
            };
            if attempts >= self.max_attempts {
                return Delivery {
                    sent: false,
                    attempts,
                    error: Some(error),
                };
            }
            let delay = self.backoff.delay_now(attempts, wait);
            tracing::debug!(destination = %self.name, attempts, error = %error, delay_ms = delay.as_millis() as u64, "notification not delivered yet; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Waits until `min_interval` has passed since the last request.
    async fn pace(&self) {
        let mut last = self.last_request.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + self.min_interval).await;
        }
        *last = Some(Instant::now());
    }

    /// One request.
    pub async fn attempt(&self, notice: &Notice) -> Attempt {
        let text = truncate(&notice.text, max_chars(self.kind));
        let request = match &self.target {
            Target::Telegram { url, chat_id } => self
                .client
                .post(url.expose())
                .json(&json!({"chat_id": chat_id, "text": text})),
            Target::Discord { url } => self
                .client
                .post(url.expose())
                .json(&json!({"content": text, "allowed_mentions": {"parse": []}})),
            Target::Slack { url } => self.client.post(url.expose()).json(&json!({"text": text})),
            Target::Webhook { url, signer } => {
                let headers =
                    match signer.request_headers(&notice.id, self.clock.now_unix(), &notice.json) {
                        Ok(h) => h,
                        Err(_) => {
                            return Attempt::GiveUp {
                                error: format!("{:?} is not a valid webhook-id", notice.id),
                            }
                        }
                    };
                self.client
                    .post(url)
                    .headers(headers)
                    .body(notice.json.clone())
            }
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    wait: None,
                    error: describe(e),
                }
            }
        };
        let status = response.status();
        let header_wait = retry::retry_after(response.headers(), self.clock.now_unix());
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if status.is_success() => {
                // The destination answered success before the body broke off: it has the notice.
                tracing::debug!(destination = %self.name, error = %describe(e), "notification answer cut short");
                return Attempt::Sent;
            }
            Err(e) => {
                return Attempt::Retry {
                    wait: header_wait,
                    error: describe(e),
                }
            }
        };
        self.classify(status, header_wait, &body)
    }

    /// Reads an answer the way its API documents it.
    fn classify(
        &self,
        status: reqwest::StatusCode,
        header_wait: Option<Duration>,
        body: &[u8],
    ) -> Attempt {
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let body_wait = match self.kind {
            // Telegram: `parameters.retry_after`, whole seconds.
            ChannelKind::Telegram => json
                .pointer("/parameters/retry_after")
                .and_then(Value::as_u64)
                .map(Duration::from_secs),
            // Discord: `retry_after`, seconds with a fraction.
            ChannelKind::Discord => json
                .get("retry_after")
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(86_400.0))),
            ChannelKind::Slack | ChannelKind::Webhook => None,
        };
        let wait = header_wait.max(body_wait);
        let telegram_ok = json.get("ok").and_then(Value::as_bool);
        if status.is_success() && telegram_ok != Some(false) {
            return Attempt::Sent;
        }
        let detail: String = match json
            .get("description")
            .or_else(|| json.get("message"))
            .and_then(Value::as_str)
        {
            Some(d) => d.to_owned(),
            None => String::from_utf8_lossy(body).into_owned(),
        };
        let error = format!(
            "{} answered {}: {}",
            self.kind.as_str(),
            status.as_u16(),
            truncate(detail.trim(), 200)
        );
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            Attempt::Retry { wait, error }
        } else {
            Attempt::GiveUp { error }
        }
    }
}

/// A request error without its URL (which may hold a token).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut out = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telegram_to(api_base: &str, token_file: &std::path::Path) -> Channel {
        let config: NotifyConfig = serde_json::from_value(json!({
            "kind": "telegram",
            "bot_token": format!("file:{}", token_file.display()),
            "chat_id": "42",
            "api_base": api_base,
            "timeout_ms": 2000,
        }))
        .unwrap();
        Channel::build(&config, 0, &["filled"], Arc::new(crate::SystemClock)).unwrap()
    }

    fn notice() -> Notice {
        Notice {
            id: "evt_1".into(),
            event: "filled".into(),
            text: "BUY 1 BTCUSDT filled at 1".into(),
            json: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn an_unreachable_telegram_is_retried_and_its_error_never_holds_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "123456:SECRET-TOKEN-abc").unwrap();
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let channel = telegram_to(&format!("http://127.0.0.1:{port}"), &token);
        match channel.attempt(&notice()).await {
            Attempt::Retry { error, .. } => {
                assert!(!error.contains("SECRET-TOKEN"), "{error}");
                assert!(!error.contains("127.0.0.1"), "no URL at all: {error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!format!("{channel:?}").contains("SECRET-TOKEN"));
    }

    #[test]
    fn a_discord_rate_limit_waits_the_longer_of_its_body_and_header_and_a_404_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, "https://discord.test/api/webhooks/1/t").unwrap();
        let config: NotifyConfig = serde_json::from_value(json!({
            "kind": "discord", "webhook_url": format!("file:{}", url.display()),
        }))
        .unwrap();
        let channel =
            Channel::build(&config, 0, &["filled"], Arc::new(crate::SystemClock)).unwrap();
        let body = br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#;
        assert_eq!(
            channel.classify(
                reqwest::StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(1)),
                body
            ),
            Attempt::Retry {
                wait: Some(Duration::from_millis(1500)),
                error: "discord answered 429: You are being rate limited.".into()
            }
        );
        assert!(matches!(
            channel.classify(
                reqwest::StatusCode::NOT_FOUND,
                None,
                br#"{"message":"Unknown Webhook","code":10015}"#
            ),
            Attempt::GiveUp { .. }
        ));
        assert_eq!(
            channel.classify(reqwest::StatusCode::NO_CONTENT, None, b""),
            Attempt::Sent
        );
    }

    #[test]
    fn long_texts_are_cut_to_what_the_api_takes() {
        let t = truncate(&"x".repeat(5000), 4096);
        assert_eq!(t.chars().count(), 4096);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
    }
}
