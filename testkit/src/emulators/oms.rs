//! A user's order-management system, as the `http` broker talks to it: `POST` anywhere, body
//! verified with Standard Webhooks against the configured `whsec_` secrets (shared `Verifier`),
//! deduplicated on `webhook-id`.
//!
//! Answers: 201 `{"id":"oms-N","status":"accepted"}` for a new order; 409 with the first order's
//! `id` for a `webhook-id` already seen; 401 `{"error":"bad_signature"|"stale_timestamp"}`;
//! 400 `{"message":...}` for a body without the required fields. `GET .../positions` (signed over
//! the empty body) answers `{"positions":[{"symbol","position"}]}` as set by
//! [`OmsEmulator::set_position`].

use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::webhooks::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use alertgate_shared::{Clock, HmacSecret, Verifier};
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{json_reply, Emulator, Faults, Recorded, Reply, Venue};

/// An order the OMS accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct OmsOrderRecord {
    /// The OMS's id (`oms-N`).
    pub id: String,
    /// The `webhook-id` it came with.
    pub webhook_id: String,
    /// The body, parsed.
    pub body: Value,
}

/// What the OMS emulator is started with.
#[derive(Debug, Clone)]
pub struct OmsEmulatorConfig {
    /// The `whsec_` secrets it trusts.
    pub secrets: Vec<HmacSecret>,
    /// "Now" for the timestamp tolerance (300 s).
    pub clock: Arc<dyn Clock>,
}

impl OmsEmulatorConfig {
    /// Trusts `secrets`, with `clock` as its time.
    pub fn new(secrets: Vec<HmacSecret>, clock: Arc<dyn Clock>) -> Self {
        Self { secrets, clock }
    }
}

/// The OMS's state: its verifier and the orders it accepted. Served as [`OmsEmulator`].
#[derive(Debug)]
pub struct OmsState {
    /// Checks the Standard Webhooks signature of every POST.
    verifier: Verifier,
    /// "Now" for the verifier.
    clock: Arc<dyn Clock>,
    /// Orders accepted, in order.
    orders: Mutex<Vec<OmsOrderRecord>>,
    /// Symbol → signed position, answered at `GET .../positions`.
    positions: Mutex<std::collections::BTreeMap<String, String>>,
}

/// A running OMS emulator; stops when dropped.
pub type OmsEmulator = Emulator<OmsState>;

const REQUIRED: [&str; 7] = [
    "client_order_id",
    "account",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "tif",
];

impl Venue for OmsState {
    type Config = OmsEmulatorConfig;

    fn new(config: OmsEmulatorConfig) -> std::io::Result<Self> {
        let verifier = Verifier::new(Vec::new(), config.secrets, 300)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Self {
            verifier,
            clock: config.clock,
            orders: Mutex::new(Vec::new()),
            positions: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.method == "POST"
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        let positions = request.method == "GET" && request.path.ends_with("/positions");
        if request.method != "POST" && !positions {
            return Some(json_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"message": "POST only"}),
            ));
        }
        let verified = self.verifier.verify(
            request.header(HEADER_ID),
            request.header(HEADER_TIMESTAMP),
            request.header(HEADER_SIGNATURE),
            &request.body,
            self.clock.now_unix(),
        );
        if let Err(e) = verified {
            return Some(json_reply(
                StatusCode::UNAUTHORIZED,
                &json!({"error": e.error_code(), "message": e.to_string()}),
            ));
        }
        if positions {
            let list: Vec<Value> = lock_positions(&self.positions)
                .iter()
                .map(|(symbol, position)| json!({"symbol": symbol, "position": position}))
                .collect();
            return Some(json_reply(StatusCode::OK, &json!({ "positions": list })));
        }
        faults.around(|| self.accept(request), error_body)
    }
}

fn lock_positions(
    m: &Mutex<std::collections::BTreeMap<String, String>>,
) -> MutexGuard<'_, std::collections::BTreeMap<String, String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Emulator<OmsState> {
    /// Starts on `127.0.0.1:0`, trusting these secrets, with a 300 s timestamp tolerance.
    pub async fn trusting(
        secrets: Vec<HmacSecret>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Self> {
        Self::start(OmsEmulatorConfig::new(secrets, clock)).await
    }

    /// The URL to configure as `[broker.http] url`.
    pub fn url(&self) -> String {
        format!("{}/orders", self.base_url())
    }

    /// Every order accepted, in order.
    pub fn orders(&self) -> Vec<OmsOrderRecord> {
        self.venue().orders().clone()
    }

    /// The URL to configure as `[broker.http] positions_url`.
    pub fn positions_url(&self) -> String {
        format!("{}/positions", self.base_url())
    }

    /// Sets the position the OMS reports for `symbol` (a decimal string).
    pub fn set_position(&self, symbol: &str, position: &str) {
        lock_positions(&self.venue().positions).insert(symbol.to_owned(), position.to_owned());
    }
}

fn error_body(status: u16) -> Value {
    json!({"message": format!("emulated failure {status}")})
}

impl OmsState {
    fn orders(&self) -> MutexGuard<'_, Vec<OmsOrderRecord>> {
        self.orders.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn accept(&self, request: &Recorded) -> Reply {
        let webhook_id = request.header(HEADER_ID).unwrap_or_default().to_owned();
        let body = request.json();
        if let Some(missing) = REQUIRED
            .iter()
            .find(|k| body.get(**k).is_none_or(Value::is_null))
        {
            return json_reply(
                StatusCode::BAD_REQUEST,
                &json!({"message": format!("missing field {missing}")}),
            );
        }
        let mut orders = self.orders();
        if let Some(existing) = orders.iter().find(|o| o.webhook_id == webhook_id) {
            return json_reply(
                StatusCode::CONFLICT,
                &json!({"id": existing.id, "status": "accepted"}),
            );
        }
        let id = format!("oms-{}", orders.len() + 1);
        orders.push(OmsOrderRecord {
            id: id.clone(),
            webhook_id,
            body,
        });
        json_reply(
            StatusCode::CREATED,
            &json!({"id": id, "status": "accepted"}),
        )
    }
}
