//! A generic endpoint receiving Standard Webhooks 1.0 deliveries (standardwebhooks.com): every
//! `POST` must carry `webhook-id`, `webhook-timestamp` (within 300 s) and a `webhook-signature`
//! that verifies against one of its `whsec_` secrets over `{id}.{timestamp}.{body}`, with
//! `content-type: application/json`. Answers 204 for a new id, 200 for an id already seen (a
//! repeat is not stored twice), 401 `{"error"}` for a bad signature, 400 for a body that is not
//! JSON.

use std::sync::Arc;

use alertgate_shared::webhooks::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use alertgate_shared::{Clock, HmacSecret, Verifier};
use serde_json::json;
use warp::http::StatusCode;

use super::chat::{is_json, text_reply, ChatMessage, Inbox};
use super::{json_reply, lock, Emulator, Faults, Recorded, Reply, Venue};

/// What the endpoint is started with.
#[derive(Debug, Clone)]
pub struct SignedWebhookConfig {
    /// Secrets it trusts.
    pub secrets: Vec<HmacSecret>,
    /// "Now" for the tolerance.
    pub clock: Arc<dyn Clock>,
}

/// The endpoint's state.
#[derive(Debug)]
pub struct SignedWebhookState {
    /// Checks every POST.
    verifier: Verifier,
    /// "Now".
    clock: Arc<dyn Clock>,
    /// Deliveries accepted (first per `webhook-id`).
    inbox: Inbox,
    /// How many deliveries repeated an id already stored.
    repeats: std::sync::Mutex<usize>,
}

/// A running signed-webhook endpoint.
pub type SignedWebhookEmulator = Emulator<SignedWebhookState>;

impl Venue for SignedWebhookState {
    type Config = SignedWebhookConfig;

    fn new(config: SignedWebhookConfig) -> std::io::Result<Self> {
        let verifier = Verifier::new(Vec::new(), config.secrets, 300)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Self {
            verifier,
            clock: config.clock,
            inbox: Inbox::default(),
            repeats: std::sync::Mutex::new(0),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.method == "POST"
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        if request.method != "POST" {
            return Some(text_reply(StatusCode::METHOD_NOT_ALLOWED, "", "text/plain"));
        }
        if let Err(e) = self.verifier.verify(
            request.header(HEADER_ID),
            request.header(HEADER_TIMESTAMP),
            request.header(HEADER_SIGNATURE),
            &request.body,
            self.clock.now_unix(),
        ) {
            return Some(json_reply(
                StatusCode::UNAUTHORIZED,
                &json!({"error": e.error_code(), "message": e.to_string()}),
            ));
        }
        faults.around(
            || self.accept(request),
            |code| json!({"error": format!("emulated failure {code}")}),
        )
    }
}

impl SignedWebhookState {
    fn accept(&self, request: &Recorded) -> Reply {
        if !is_json(request.header("content-type")) {
            return json_reply(StatusCode::BAD_REQUEST, &json!({"error": "content-type"}));
        }
        let Ok(body) = serde_json::from_slice(&request.body) else {
            return json_reply(StatusCode::BAD_REQUEST, &json!({"error": "not JSON"}));
        };
        let id = request.header(HEADER_ID).unwrap_or_default().to_owned();
        if self.inbox.all().iter().any(|m| m.to == id) {
            *lock(&self.repeats) += 1;
            return text_reply(StatusCode::OK, "", "text/plain");
        }
        self.inbox.push(ChatMessage {
            text: String::from_utf8_lossy(&request.body).into_owned(),
            body,
            to: id,
        });
        text_reply(StatusCode::NO_CONTENT, "", "text/plain")
    }
}

impl Emulator<SignedWebhookState> {
    /// Starts an endpoint trusting `secrets`.
    pub async fn trusting(
        secrets: Vec<HmacSecret>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        Self::start(SignedWebhookConfig { secrets, clock }).await
    }

    /// The `url` to configure.
    pub fn url(&self) -> String {
        format!("{}/hooks/alertgate", self.base_url())
    }

    /// Deliveries accepted, first per `webhook-id` (`to` is the id).
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.venue().inbox.all()
    }

    /// Deliveries that repeated an id already accepted.
    pub fn repeats(&self) -> usize {
        *lock(&self.venue().repeats)
    }
}
