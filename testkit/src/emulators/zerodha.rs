//! A Kite Connect v3 (Zerodha) emulator: `POST /orders/regular` and `GET /orders`.
//!
//! Checked as the Kite Connect v3 documentation describes it (kite.trade/docs/connect/v3:
//! "Orders", "Exceptions and errors", the changelog's authentication section):
//! - every request: `X-Kite-Version: 3` and `Authorization: token api_key:access_token`; a wrong
//!   or old token is 403 `TokenException` (the token changes daily: [`ZerodhaEmulator::rotate_token`]);
//! - orders: a form-encoded body (`application/x-www-form-urlencoded`) with `tradingsymbol`,
//!   `exchange` (NSE, BSE, NFO, MCX, CDS, BFO), `transaction_type` (BUY/SELL), `order_type`
//!   (MARKET/LIMIT/SL/SL-M), `quantity` (a positive whole number), `product` (CNC/NRML/MIS/MTF),
//!   `validity` (DAY/IOC/TTL), `price` for LIMIT and SL, `trigger_price` for SL and SL-M, and an
//!   optional `tag` of at most 20 alphanumerics; anything else wrong is 400 `InputException`;
//! - answers `{"status":"success","data":{"order_id":"..."}}`; errors
//!   `{"status":"error","message":...,"error_type":...}`.
//!
//! Kite does **not** dedupe: the same tag twice is two orders, which is what lets a test prove
//! the adapter looks the order up before resending. MARKET orders complete at once at the
//! configured fill price; others rest `OPEN` (SL/SL-M: `TRIGGER PENDING`). Symbols listed in
//! [`ZerodhaEmulatorConfig::rms_rejects`] are accepted, then `REJECTED` by the RMS with a
//! `status_message`, the way Kite reports margin and holding failures after placement.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use rust_decimal::Decimal;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{json_reply, parse_params, Emulator, Faults, Recorded, Reply, Venue};

/// What the emulator is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZerodhaEmulatorConfig {
    /// The app's `api_key`.
    pub api_key: String,
    /// Today's `access_token`.
    pub access_token: String,
    /// The price MARKET orders fill at.
    pub fill_price: Decimal,
    /// Symbols whose orders the RMS rejects after acceptance, with the `status_message`.
    pub rms_rejects: HashMap<String, String>,
}

impl ZerodhaEmulatorConfig {
    /// These credentials; MARKET orders fill at 2820.25.
    pub fn new(api_key: &str, access_token: &str) -> Self {
        Self {
            api_key: api_key.into(),
            access_token: access_token.into(),
            fill_price: Decimal::new(282_025, 2),
            rms_rejects: HashMap::new(),
        }
    }
}

/// An order the emulator accepted, with the form fields as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KiteOrderRecord {
    /// Kite's order id.
    pub order_id: String,
    /// The decoded form fields, in the order received.
    pub fields: Vec<(String, String)>,
    /// `COMPLETE`, `OPEN`, `TRIGGER PENDING`, `REJECTED`.
    pub status: String,
    /// Why, for a rejected order.
    pub status_message: Option<String>,
    /// Filled quantity.
    pub filled_quantity: u64,
    /// Average fill price (0 until filled, as Kite reports it).
    pub average_price: Decimal,
}

impl KiteOrderRecord {
    /// One form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        let f = |k: &str| self.field(k).map(str::to_owned);
        // Kite sends prices as JSON numbers; 0 when the order has none.
        let number = |text: Option<&str>| -> Value {
            text.and_then(|v| serde_json::from_str::<Value>(v).ok())
                .filter(Value::is_number)
                .unwrap_or(json!(0))
        };
        let quantity: u64 = self
            .field("quantity")
            .and_then(|q| q.parse().ok())
            .unwrap_or(0);
        let tag = f("tag");
        json!({
            "order_id": self.order_id, "exchange_order_id": null, "parent_order_id": null,
            "status": self.status, "status_message": self.status_message,
            "order_timestamp": "2026-11-23 09:15:00", "variety": "regular",
            "exchange": f("exchange"), "tradingsymbol": f("tradingsymbol"),
            "instrument_token": 738561, "order_type": f("order_type"),
            "transaction_type": f("transaction_type"), "validity": f("validity"),
            "product": f("product"), "quantity": quantity, "disclosed_quantity": 0,
            "price": number(self.field("price")),
            "trigger_price": number(self.field("trigger_price")),
            "average_price": number(Some(&self.average_price.to_string())),
            "filled_quantity": self.filled_quantity,
            "pending_quantity": quantity - self.filled_quantity.min(quantity),
            "cancelled_quantity": 0, "market_protection": 0, "meta": {},
            "tag": tag, "tags": tag.as_ref().map(|t| vec![t.clone()]).unwrap_or_default(),
            "guid": format!("guid-{}", self.order_id)
        })
    }
}

/// One error answer queued for the next order placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KiteErrorAnswer {
    /// HTTP status.
    pub status: u16,
    /// `InputException`, `OrderException`, `MarginException`, `NetworkException`, ...
    pub error_type: String,
    /// The message.
    pub message: String,
}

#[derive(Debug)]
struct Book {
    token: String,
    orders: Vec<KiteOrderRecord>,
    next_errors: VecDeque<KiteErrorAnswer>,
}

/// Kite's state: credentials, the day's orders, queued error answers. Served as
/// [`ZerodhaEmulator`].
#[derive(Debug)]
pub struct ZerodhaState {
    /// Credentials and behaviour.
    config: ZerodhaEmulatorConfig,
    /// The day's orders and the current token.
    book: Mutex<Book>,
}

/// A running Kite Connect emulator; stops when dropped.
pub type ZerodhaEmulator = Emulator<ZerodhaState>;

fn kite_error(status: StatusCode, error_type: &str, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"status": "error", "message": message, "data": null, "error_type": error_type}),
    )
}

fn input_error(message: &str) -> Reply {
    kite_error(StatusCode::BAD_REQUEST, "InputException", message)
}

fn error_body(status: u16) -> Value {
    let (error_type, message) = match status {
        429 => ("NetworkException", "Too many requests"),
        502 => (
            "NetworkException",
            "Couldn't reach the OMS. Please try again.",
        ),
        503 => ("NetworkException", "Service unavailable"),
        504 => ("NetworkException", "Gateway timed out"),
        _ => ("GeneralException", "Something went wrong"),
    };
    json!({"status": "error", "message": message, "data": null, "error_type": error_type})
}

impl Venue for ZerodhaState {
    type Config = ZerodhaEmulatorConfig;

    fn new(config: ZerodhaEmulatorConfig) -> std::io::Result<Self> {
        let book = Book {
            token: config.access_token.clone(),
            orders: Vec::new(),
            next_errors: VecDeque::new(),
        };
        Ok(Self {
            config,
            book: Mutex::new(book),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.method == "POST" && request.path == "/orders/regular"
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        if request.header("x-kite-version") != Some("3") {
            return Some(input_error(
                "Kite Connect v3 needs the X-Kite-Version: 3 header",
            ));
        }
        let expected = format!("token {}:{}", self.config.api_key, self.book().token);
        if request.header("authorization") != Some(expected.as_str()) {
            return Some(kite_error(
                StatusCode::FORBIDDEN,
                "TokenException",
                "Incorrect `api_key` or `access_token`.",
            ));
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/orders/regular") => {
                if let Some(e) = self.book().next_errors.pop_front() {
                    let status =
                        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return Some(kite_error(status, &e.error_type, &e.message));
                }
                faults.around(|| self.place(request), error_body)
            }
            ("GET", "/orders") => {
                let data: Vec<Value> = self
                    .book()
                    .orders
                    .iter()
                    .map(KiteOrderRecord::json)
                    .collect();
                Some(json_reply(
                    StatusCode::OK,
                    &json!({"status": "success", "data": data}),
                ))
            }
            _ => Some(kite_error(
                StatusCode::NOT_FOUND,
                "GeneralException",
                "Route not found",
            )),
        }
    }
}

impl Emulator<ZerodhaState> {
    /// Every order accepted today, in order.
    pub fn orders(&self) -> Vec<KiteOrderRecord> {
        self.venue().book().orders.clone()
    }

    /// The day changes: only `token` is accepted from now on (the old one gets
    /// `TokenException`).
    pub fn rotate_token(&self, token: &str) {
        self.venue().book().token = token.to_owned();
    }

    /// The next order placement gets this error instead of being acted on.
    pub fn answer_next_order_with(&self, status: u16, error_type: &str, message: &str) {
        self.venue().book().next_errors.push_back(KiteErrorAnswer {
            status,
            error_type: error_type.into(),
            message: message.into(),
        });
    }
}

/// `true` for a decimal price Kite would read (`2820.25`, `0.05`).
fn is_price(v: &str) -> bool {
    v.parse::<Decimal>().is_ok_and(|d| d > Decimal::ZERO) && !v.contains(['e', 'E'])
}

impl ZerodhaState {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn place(&self, request: &Recorded) -> Reply {
        if !request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            return input_error(
                "Request body must be form-encoded (application/x-www-form-urlencoded)",
            );
        }
        let fields = parse_params(&String::from_utf8_lossy(&request.body));
        let get = |k: &str| {
            fields
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        for required in [
            "tradingsymbol",
            "exchange",
            "transaction_type",
            "order_type",
            "quantity",
            "product",
            "validity",
        ] {
            if get(required).is_none() {
                return input_error(&format!("Missing or empty field `{required}`."));
            }
        }
        let exchange = get("exchange").unwrap_or_default();
        if !["NSE", "BSE", "NFO", "MCX", "CDS", "BFO"].contains(&exchange) {
            return input_error("Invalid `exchange`.");
        }
        if !matches!(get("transaction_type"), Some("BUY" | "SELL")) {
            return input_error("Invalid `transaction_type`.");
        }
        let order_type = get("order_type").unwrap_or_default();
        let (needs_price, needs_trigger) = match order_type {
            "MARKET" => (false, false),
            "LIMIT" => (true, false),
            "SL" => (true, true),
            "SL-M" => (false, true),
            _ => return input_error("Invalid `order_type`."),
        };
        if !matches!(get("product"), Some("CNC" | "NRML" | "MIS" | "MTF")) {
            return input_error("Invalid `product`.");
        }
        if !matches!(get("validity"), Some("DAY" | "IOC" | "TTL")) {
            return input_error("Invalid `validity`.");
        }
        let quantity = match get("quantity").map(str::parse::<u64>) {
            Some(Ok(q)) if q > 0 => q,
            _ => return input_error("Invalid `quantity`."),
        };
        if needs_price && !get("price").is_some_and(is_price) {
            return input_error("Missing or invalid `price` for this order type.");
        }
        if needs_trigger && !get("trigger_price").is_some_and(is_price) {
            return input_error("Missing or invalid `trigger_price` for this order type.");
        }
        if let Some(tag) = get("tag") {
            if tag.chars().count() > 20 || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
                return input_error("Invalid `tag`: at most 20 alphanumeric characters.");
            }
        }
        let symbol = get("tradingsymbol").unwrap_or_default().to_owned();
        let mut book = self.book();
        let order_id = format!("2611230{:08}", book.orders.len() + 1);
        let mut order = KiteOrderRecord {
            order_id: order_id.clone(),
            fields: fields.clone(),
            status: "OPEN".into(),
            status_message: None,
            filled_quantity: 0,
            average_price: Decimal::ZERO,
        };
        if let Some(why) = self.config.rms_rejects.get(&symbol) {
            order.status = "REJECTED".into();
            order.status_message = Some(why.clone());
        } else if order_type == "MARKET" {
            order.status = "COMPLETE".into();
            order.filled_quantity = quantity;
            order.average_price = self.config.fill_price;
        } else if needs_trigger {
            order.status = "TRIGGER PENDING".into();
        }
        book.orders.push(order);
        json_reply(
            StatusCode::OK,
            &json!({"status": "success", "data": {"order_id": order_id}}),
        )
    }
}
