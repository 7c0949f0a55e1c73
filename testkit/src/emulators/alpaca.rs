//! An Alpaca Trading API emulator: `POST /v2/orders`, `GET /v2/orders:by_client_order_id`,
//! `GET /v2/orders/{id}`, `PATCH /v2/orders/{id}` (replace), `DELETE /v2/orders/{id}`, `GET /v2/positions`, `GET /v2/account`.
//!
//! Checked as Alpaca documents it: both key headers (401
//! `{"code":40110000,"message":"request is not authorized"}`); a JSON body with `symbol`, `qty`,
//! `side`, `type`, `time_in_force`, `limit_price` for limit/stop_limit and `stop_price` for
//! stop/stop_limit, decimals as JSON strings (this emulator insists, though Alpaca also accepts
//! numbers) (422 `40010001`); `client_order_id` of at most 48 characters and unique across all
//! orders (422 "client_order_id must be unique"); buying power (403 `40310000` "insufficient
//! buying power").
//!
//! New orders answer `accepted`; a market order is then filled at the symbol's last price, which
//! a lookup shows, and moves the position (`GET /v2/positions`; [`AlpacaEmulator::set_position`]
//! trades by hand). A bracket/OTO order's exits are orders of their own
//! ([`AlpacaEmulator::legs`], `legs` in the order entity), `held` until the entry fills, then
//! `new`. `equity` starts at the buying power ([`AlpacaEmulator::set_equity`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rust_decimal::Decimal;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{json_reply, Emulator, Faults, Recorded, Reply, Venue};

/// What the emulator is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlpacaEmulatorConfig {
    /// The accepted `APCA-API-KEY-ID`.
    pub key_id: String,
    /// The accepted `APCA-API-SECRET-KEY`.
    pub secret_key: String,
    /// Tradable symbols and their last prices.
    pub symbols: HashMap<String, Decimal>,
    /// Cash available for buys.
    pub buying_power: Decimal,
}

impl AlpacaEmulatorConfig {
    /// These keys, AAPL at 190, and 100000 of buying power.
    pub fn new(key_id: &str, secret_key: &str) -> Self {
        Self {
            key_id: key_id.into(),
            secret_key: secret_key.into(),
            symbols: HashMap::from([("AAPL".to_owned(), Decimal::new(190, 0))]),
            buying_power: Decimal::new(100_000, 0),
        }
    }
}

/// An order the emulator accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlpacaOrderRecord {
    /// Alpaca's order id.
    pub id: String,
    /// `client_order_id`.
    pub client_order_id: String,
    /// `symbol`.
    pub symbol: String,
    /// `qty` as received.
    pub qty: String,
    /// `side`.
    pub side: String,
    /// `type`.
    pub order_type: String,
    /// `time_in_force`.
    pub time_in_force: String,
    /// `limit_price` as received.
    pub limit_price: Option<String>,
    /// `stop_price` as received.
    pub stop_price: Option<String>,
    /// `accepted`, `new`, `filled`, ...
    pub status: String,
    /// Filled quantity.
    pub filled_qty: Decimal,
    /// Average fill price.
    pub filled_avg_price: Option<Decimal>,
    /// `order_class`: `simple` (or absent), `bracket`, `oto`.
    pub order_class: String,
    /// `take_profit.limit_price` as received.
    pub take_profit: Option<String>,
    /// `stop_loss.stop_price` as received.
    pub stop_loss: Option<String>,
    /// A bracket/OTO exit leg: the entry's id.
    pub parent_id: Option<String>,
    /// The order this one replaced (`PATCH /v2/orders/{id}`).
    pub replaces: Option<String>,
    /// The order that replaced this one (its status is then `replaced`).
    pub replaced_by: Option<String>,
}

impl AlpacaOrderRecord {
    /// `true` while the order can still fill or be cancelled.
    pub fn is_open(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "filled" | "canceled" | "expired" | "rejected" | "replaced"
        )
    }

    /// The order entity with its live exit legs (`legs`, as `nested=true` shows them).
    fn json_with(&self, legs: &[AlpacaOrderRecord]) -> Value {
        let mut v = self.json();
        let mine: Vec<Value> = legs
            .iter()
            .filter(|l| l.parent_id.as_deref() == Some(self.id.as_str()) && l.replaced_by.is_none())
            .map(AlpacaOrderRecord::json)
            .collect();
        v["legs"] = if mine.is_empty() {
            Value::Null
        } else {
            Value::Array(mine)
        };
        v
    }

    fn json(&self) -> Value {
        json!({
            "replaces": self.replaces, "replaced_by": self.replaced_by,
            "id": self.id, "client_order_id": self.client_order_id,
            "created_at": "2026-11-23T09:00:00Z", "submitted_at": "2026-11-23T09:00:00Z",
            "asset_class": "us_equity", "symbol": self.symbol, "qty": self.qty, "notional": null,
            "filled_qty": self.filled_qty.to_string(),
            "filled_avg_price": self.filled_avg_price.map(|p| p.to_string()),
            "order_class": self.order_class, "order_type": self.order_type, "type": self.order_type,
            "side": self.side, "time_in_force": self.time_in_force,
            "limit_price": self.limit_price, "stop_price": self.stop_price,
            "status": self.status, "extended_hours": false
        })
    }
}

#[derive(Debug)]
struct Book {
    orders: Vec<AlpacaOrderRecord>,
    /// Exit legs of bracket/OTO orders (and their replacements): orders of their own at
    /// Alpaca, kept apart so [`AlpacaEmulator::orders`] lists what was sent.
    legs: Vec<AlpacaOrderRecord>,
    /// Ids handed out so far.
    ids: usize,
    buying_power: Decimal,
    /// Symbol → signed quantity held (negative: short), moved by fills.
    positions: HashMap<String, Decimal>,
    /// What `GET /v2/account` reports as `equity`.
    equity: Decimal,
}

impl Book {
    /// A fresh order id, shaped like Alpaca's UUIDs.
    fn next_id(&mut self) -> String {
        self.ids += 1;
        let n = self.ids;
        format!("{n:08x}-0000-4000-8000-{n:012x}")
    }
}

/// Alpaca's state: the config and the order book. Served as [`AlpacaEmulator`].
#[derive(Debug)]
pub struct AlpacaState {
    /// Credentials and symbols.
    config: AlpacaEmulatorConfig,
    /// Orders and buying power.
    book: Mutex<Book>,
}

/// A running Alpaca emulator; stops when dropped.
pub type AlpacaEmulator = Emulator<AlpacaState>;

fn unprocessable(message: &str) -> Reply {
    json_reply(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({"code": 40010001, "message": message}),
    )
}

fn error_body(status: u16) -> Value {
    match status {
        429 => json!({"code": 42910000, "message": "rate limit exceeded"}),
        _ => json!({"code": 50010000, "message": "internal server error occurred"}),
    }
}

impl Venue for AlpacaState {
    type Config = AlpacaEmulatorConfig;

    fn new(config: AlpacaEmulatorConfig) -> std::io::Result<Self> {
        let book = Book {
            orders: Vec::new(),
            legs: Vec::new(),
            ids: 0,
            buying_power: config.buying_power,
            positions: HashMap::new(),
            equity: config.buying_power,
        };
        Ok(Self {
            config,
            book: Mutex::new(book),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.method == "POST" && request.path == "/v2/orders"
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        let authorized = request.header("apca-api-key-id") == Some(self.config.key_id.as_str())
            && request.header("apca-api-secret-key") == Some(self.config.secret_key.as_str());
        if !authorized {
            return Some(json_reply(
                StatusCode::UNAUTHORIZED,
                &json!({"code": 40110000, "message": "request is not authorized"}),
            ));
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/v2/orders") => faults.around(|| self.new_order(request), error_body),
            ("GET", "/v2/orders:by_client_order_id") => {
                let id = request.param("client_order_id").unwrap_or_default();
                Some(self.find(|o| o.client_order_id == id))
            }
            ("GET", "/v2/positions") => Some(self.positions()),
            ("GET", "/v2/account") => Some(self.account()),
            ("PATCH", path) if path.starts_with("/v2/orders/") => {
                let id = path.trim_start_matches("/v2/orders/").to_owned();
                faults.around(|| self.replace(&id, request), error_body)
            }
            ("DELETE", path) if path.starts_with("/v2/orders/") => {
                let id = path.trim_start_matches("/v2/orders/").to_owned();
                Some(self.cancel(&id))
            }
            ("GET", path) if path.starts_with("/v2/orders/") => {
                let id = path.trim_start_matches("/v2/orders/").to_owned();
                Some(self.find(|o| o.id == id))
            }
            _ => Some(json_reply(
                StatusCode::NOT_FOUND,
                &json!({"code": 40410000, "message": "endpoint not found"}),
            )),
        }
    }
}

impl Emulator<AlpacaState> {
    /// Every order accepted, in order.
    pub fn orders(&self) -> Vec<AlpacaOrderRecord> {
        self.venue().book().orders.clone()
    }

    /// Every exit leg of bracket/OTO orders, replaced ones included, in order.
    pub fn legs(&self) -> Vec<AlpacaOrderRecord> {
        self.venue().book().legs.clone()
    }

    /// Sets the cash available for buys.
    pub fn set_buying_power(&self, value: Decimal) {
        self.venue().book().buying_power = value;
    }

    /// Sets the position in `symbol` (signed; 0 closes it): a trade made at the venue behind
    /// alertgate's back.
    pub fn set_position(&self, symbol: &str, qty: Decimal) {
        self.venue().book().positions.insert(symbol.to_owned(), qty);
    }

    /// The signed position in `symbol`.
    pub fn position(&self, symbol: &str) -> Decimal {
        self.venue()
            .book()
            .positions
            .get(symbol)
            .copied()
            .unwrap_or_default()
    }

    /// Sets what `GET /v2/account` reports as `equity`.
    pub fn set_equity(&self, value: Decimal) {
        self.venue().book().equity = value;
    }

    /// The market trades `symbol` at `price`: every open order it crosses fills completely (a
    /// buy limit at or above the price, a sell limit at or below, at the limit; a sell stop at
    /// or above the price, a buy stop at or below, at the price), entries before exit legs, as
    /// Alpaca fills them. An entry's `held` legs then become `new`; a leg that fills cancels the
    /// other legs of its entry (one-cancels-other). Positions move by the fills. Answers the ids
    /// of the orders that filled.
    pub fn trade(&self, symbol: &str, price: Decimal) -> Vec<String> {
        let mut book = self.venue().book();
        let book = &mut *book;
        let mut filled = Vec::new();
        let crosses = |o: &AlpacaOrderRecord| {
            let at = |p: &Option<String>| p.as_deref().and_then(|v| v.parse::<Decimal>().ok());
            let open = matches!(o.status.as_str(), "new" | "partially_filled");
            let fill = match (o.order_type.as_str(), o.side.as_str()) {
                ("limit", "buy") => at(&o.limit_price).filter(|l| price <= *l),
                ("limit", _) => at(&o.limit_price).filter(|l| price >= *l),
                ("stop", "buy") => at(&o.stop_price).filter(|s| price >= *s).map(|_| price),
                ("stop", _) => at(&o.stop_price).filter(|s| price <= *s).map(|_| price),
                _ => None,
            };
            fill.filter(|_| open && o.symbol == symbol)
        };
        let mut fill =
            |o: &mut AlpacaOrderRecord, at: Decimal, positions: &mut HashMap<String, Decimal>| {
                let qty = o.qty.parse::<Decimal>().unwrap_or_default();
                o.status = "filled".into();
                o.filled_qty = qty;
                o.filled_avg_price = Some(at);
                let signed = if o.side == "buy" { qty } else { -qty };
                *positions.entry(o.symbol.clone()).or_default() += signed;
                filled.push(o.id.clone());
            };
        for order in &mut book.orders {
            if let Some(at) = crosses(order) {
                fill(order, at, &mut book.positions);
                for leg in book.legs.iter_mut().filter(|l| {
                    l.parent_id.as_deref() == Some(order.id.as_str()) && l.status == "held"
                }) {
                    leg.status = "new".into();
                }
            }
        }
        let mut done_parents = Vec::new();
        for leg in &mut book.legs {
            if let Some(at) = crosses(leg) {
                if done_parents.contains(&leg.parent_id) {
                    continue;
                }
                fill(leg, at, &mut book.positions);
                done_parents.push(leg.parent_id.clone());
            }
        }
        for leg in book
            .legs
            .iter_mut()
            .filter(|l| done_parents.contains(&l.parent_id) && l.is_open())
        {
            leg.status = "canceled".into();
        }
        filled
    }
}

impl AlpacaState {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `DELETE /v2/orders/{order_id}`: 204 with no body once an open order is canceled; 422
    /// when it can no longer be canceled (filled, canceled); 404 for an unknown id.
    fn cancel(&self, id: &str) -> Reply {
        let mut book = self.book();
        let book = &mut *book;
        let Some(order) = book
            .orders
            .iter_mut()
            .chain(book.legs.iter_mut())
            .find(|o| o.id == id)
        else {
            return json_reply(
                StatusCode::NOT_FOUND,
                &json!({"code": 40410000, "message": "order not found"}),
            );
        };
        if matches!(
            order.status.as_str(),
            "filled" | "canceled" | "expired" | "rejected" | "replaced"
        ) {
            return json_reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"code": 42210000, "message": format!("order is already in \"{}\" state", order.status)}),
            );
        }
        order.status = "canceled".into();
        // Cancelling a bracket's entry cancels its exit legs.
        let parent = order.id.clone();
        for leg in book
            .legs
            .iter_mut()
            .filter(|l| l.parent_id.as_deref() == Some(parent.as_str()) && l.is_open())
        {
            leg.status = "canceled".into();
        }
        let mut response = Reply::new(String::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        response
    }

    /// `PATCH /v2/orders/{order_id}` (replace an order), as Alpaca documents it: each of `qty`,
    /// `time_in_force`, `limit_price`, `stop_price`, `client_order_id` overrides the order's own
    /// (decimals as strings; a limit price only for limit/stop_limit orders, a stop price only for
    /// stop/stop_limit); the answer is a NEW order (new `id`, `replaces` the old one), and the old
    /// one goes `replaced` with `replaced_by`. 404 for an unknown id; 422 for an order that is
    /// not open or that Alpaca will not replace in its state (`accepted`, `pending_new`,
    /// `pending_cancel`, `pending_replace`).
    fn replace(&self, id: &str, request: &Recorded) -> Reply {
        let body = request.json();
        if !body.is_object() {
            return unprocessable("request body format is invalid");
        }
        let mut book = self.book();
        let book = &mut *book;
        let leg = book.legs.iter().any(|o| o.id == id);
        let Some(old) = book
            .orders
            .iter()
            .chain(book.legs.iter())
            .find(|o| o.id == id)
            .cloned()
        else {
            return json_reply(
                StatusCode::NOT_FOUND,
                &json!({"code": 40410000, "message": "order not found"}),
            );
        };
        if !old.is_open()
            || matches!(
                old.status.as_str(),
                "accepted" | "pending_new" | "pending_cancel" | "pending_replace"
            )
        {
            return json_reply(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"code": 42210000, "message": format!("order is not replaceable in \"{}\" state", old.status)}),
            );
        }
        let mut new = old.clone();
        for key in ["qty", "limit_price", "stop_price"] {
            match body.get(key) {
                None | Some(Value::Null) => continue,
                Some(Value::String(v)) if v.parse::<Decimal>().is_ok_and(|d| d > Decimal::ZERO) => {
                    let allowed = match key {
                        "limit_price" => matches!(old.order_type.as_str(), "limit" | "stop_limit"),
                        "stop_price" => matches!(old.order_type.as_str(), "stop" | "stop_limit"),
                        _ => true,
                    };
                    if !allowed {
                        return unprocessable(&format!(
                            "{key} cannot be set on a {} order",
                            old.order_type
                        ));
                    }
                    match key {
                        "qty" => new.qty = v.clone(),
                        "limit_price" => new.limit_price = Some(v.clone()),
                        _ => new.stop_price = Some(v.clone()),
                    }
                }
                Some(_) => return unprocessable(&format!("invalid {key}")),
            }
        }
        if let Some(tif) = body.get("time_in_force").and_then(Value::as_str) {
            new.time_in_force = tif.to_owned();
        }
        let taken = |cid: &str| {
            book.orders
                .iter()
                .chain(book.legs.iter())
                .any(|o| o.client_order_id == cid)
        };
        new.client_order_id = match body.get("client_order_id").and_then(Value::as_str) {
            Some(cid) if cid.chars().count() > 48 => {
                return unprocessable("client_order_id must be no more than 48 characters")
            }
            Some(cid) if taken(cid) => return unprocessable("client_order_id must be unique"),
            Some(cid) => cid.to_owned(),
            None => format!("replaced-{}", book.ids + 1),
        };
        new.id = book.next_id();
        new.replaces = Some(old.id.clone());
        new.replaced_by = None;
        new.status = "new".into();
        let list = if leg {
            &mut book.legs
        } else {
            &mut book.orders
        };
        if let Some(o) = list.iter_mut().find(|o| o.id == old.id) {
            o.status = "replaced".into();
            o.replaced_by = Some(new.id.clone());
        }
        if !leg {
            // The exit legs follow their entry to the replacement.
            for l in book
                .legs
                .iter_mut()
                .filter(|l| l.parent_id.as_deref() == Some(old.id.as_str()))
            {
                l.parent_id = Some(new.id.clone());
            }
        }
        let answer = new.json_with(&book.legs);
        if leg {
            book.legs.push(new);
        } else {
            book.orders.push(new);
        }
        json_reply(StatusCode::OK, &answer)
    }

    fn find(&self, matches: impl Fn(&AlpacaOrderRecord) -> bool) -> Reply {
        let book = self.book();
        match book
            .orders
            .iter()
            .chain(book.legs.iter())
            .find(|o| matches(o))
        {
            Some(order) => json_reply(StatusCode::OK, &order.json_with(&book.legs)),
            None => json_reply(
                StatusCode::NOT_FOUND,
                &json!({"code": 40410000, "message": "order not found"}),
            ),
        }
    }

    /// `GET /v2/positions`: every open position (a flat one is not listed), `qty` signed
    /// (negative for a short) with `side` `long`/`short`, decimals as strings.
    fn positions(&self) -> Reply {
        let book = self.book();
        let mut held: Vec<(&String, &Decimal)> = book
            .positions
            .iter()
            .filter(|(_, q)| !q.is_zero())
            .collect();
        held.sort();
        let list: Vec<Value> = held
            .into_iter()
            .map(|(symbol, qty)| {
                let price = self.config.symbols.get(symbol).copied().unwrap_or_default();
                let value = *qty * price;
                json!({
                    "asset_id": format!("00000000-0000-4000-8000-{:012x}", symbol.len()),
                    "symbol": symbol, "exchange": "NASDAQ", "asset_class": "us_equity",
                    "asset_marginable": true, "avg_entry_price": price.to_string(),
                    "qty": qty.to_string(), "qty_available": qty.to_string(),
                    "side": if *qty < Decimal::ZERO { "short" } else { "long" },
                    "market_value": value.to_string(), "cost_basis": value.to_string(),
                    "unrealized_pl": "0", "unrealized_plpc": "0",
                    "unrealized_intraday_pl": "0", "unrealized_intraday_plpc": "0",
                    "current_price": price.to_string(), "lastday_price": price.to_string(),
                    "change_today": "0"
                })
            })
            .collect();
        json_reply(StatusCode::OK, &Value::Array(list))
    }

    /// `GET /v2/account`: the account, decimals as strings.
    fn account(&self) -> Reply {
        let book = self.book();
        json_reply(
            StatusCode::OK,
            &json!({
                "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98", "account_number": "PA2EMULATOR",
                "status": "ACTIVE", "currency": "USD", "cash": book.buying_power.to_string(),
                "portfolio_value": book.equity.to_string(), "equity": book.equity.to_string(),
                "last_equity": book.equity.to_string(), "buying_power": book.buying_power.to_string(),
                "pattern_day_trader": false, "trading_blocked": false, "transfers_blocked": false,
                "account_blocked": false, "shorting_enabled": true, "multiplier": "2"
            }),
        )
    }

    /// `order_class` with its legs, checked as Alpaca documents bracket and OTO orders: a
    /// bracket needs `take_profit.limit_price` and `stop_loss.stop_price`, an OTO exactly one;
    /// the entry is market or limit with `time_in_force` day or gtc; a buy's take-profit is at
    /// least a cent above the base price (the limit price, else the last price) and its stop at
    /// least a cent below (a sell the other way round). Ok: (class, take profit, stop loss).
    fn exits(
        &self,
        body: &Value,
        side: &str,
        order_type: &str,
        tif: &str,
        limit: Option<Decimal>,
        symbol: &str,
    ) -> Result<(String, Option<String>, Option<String>), String> {
        let class = body
            .get("order_class")
            .and_then(Value::as_str)
            .unwrap_or("simple")
            .to_owned();
        let leg = |name: &str, field: &str| -> Result<Option<(String, Decimal)>, String> {
            match body.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.get(field) {
                    Some(Value::String(s)) => s
                        .parse::<Decimal>()
                        .ok()
                        .filter(|d| *d > Decimal::ZERO)
                        .map(|d| Some((s.clone(), d)))
                        .ok_or_else(|| format!("invalid {name}.{field}")),
                    _ => Err(format!("{name}.{field} is required")),
                },
            }
        };
        let (tp, sl) = (
            leg("take_profit", "limit_price")?,
            leg("stop_loss", "stop_price")?,
        );
        match class.as_str() {
            "simple" | "" => {
                if tp.is_some() || sl.is_some() {
                    return Err("take_profit and stop_loss need order_class bracket or oto".into());
                }
                return Ok((String::new(), None, None));
            }
            "bracket" if tp.is_none() || sl.is_none() => {
                return Err(
                    "bracket orders require take_profit.limit_price and stop_loss.stop_price"
                        .into(),
                )
            }
            "oto" if tp.is_some() == sl.is_some() => {
                return Err("oto orders require exactly one of take_profit and stop_loss".into())
            }
            "bracket" | "oto" => {}
            _ => return Err("invalid order_class".into()),
        }
        if order_type != "market" && order_type != "limit" {
            return Err(format!("{class} orders must be market or limit orders"));
        }
        if tif != "day" && tif != "gtc" {
            return Err(format!("{class} orders must be day or gtc"));
        }
        let base = limit
            .or_else(|| self.config.symbols.get(symbol).copied())
            .unwrap_or_default();
        let cent = Decimal::new(1, 2);
        let buy = side == "buy";
        if let Some((_, p)) = &tp {
            if buy && *p < base + cent {
                return Err("take_profit.limit_price must be >= base_price + 0.01".into());
            }
            if !buy && *p > base - cent {
                return Err("take_profit.limit_price must be <= base_price - 0.01".into());
            }
        }
        if let Some((_, p)) = &sl {
            if buy && *p > base - cent {
                return Err("stop_loss.stop_price must be <= base_price - 0.01".into());
            }
            if !buy && *p < base + cent {
                return Err("stop_loss.stop_price must be >= base_price + 0.01".into());
            }
        }
        Ok((class, tp.map(|(s, _)| s), sl.map(|(s, _)| s)))
    }

    fn new_order(&self, request: &Recorded) -> Reply {
        if !request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return unprocessable("request body must be JSON");
        }
        let body = request.json();
        if !body.is_object() {
            return unprocessable("request body format is invalid");
        }
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        // Err: the 422 message.
        let decimal = |k: &str| -> Result<Option<Decimal>, String> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => s
                    .parse::<Decimal>()
                    .ok()
                    .filter(|d| *d > Decimal::ZERO)
                    .map(Some)
                    .ok_or_else(|| format!("invalid {k}")),
                Some(_) => Err(format!("{k} must be a string decimal")),
            }
        };
        let Some(symbol) = text("symbol") else {
            return unprocessable("symbol is required");
        };
        let qty = match decimal("qty") {
            Ok(Some(q)) => q,
            Ok(None) => return unprocessable("qty or notional is required"),
            Err(message) => return unprocessable(&message),
        };
        let side = text("side").unwrap_or_default();
        if side != "buy" && side != "sell" {
            return unprocessable("invalid side");
        }
        let order_type = text("type").unwrap_or_default();
        let (needs_limit, needs_stop) = match order_type.as_str() {
            "market" => (false, false),
            "limit" => (true, false),
            "stop" => (false, true),
            "stop_limit" => (true, true),
            _ => return unprocessable("invalid order type"),
        };
        let tif = text("time_in_force").unwrap_or_default();
        if !["day", "gtc", "opg", "cls", "ioc", "fok"].contains(&tif.as_str()) {
            return unprocessable("invalid time_in_force");
        }
        let (limit, stop) = match (decimal("limit_price"), decimal("stop_price")) {
            (Ok(l), Ok(s)) => (l, s),
            (Err(message), _) | (_, Err(message)) => return unprocessable(&message),
        };
        if needs_limit && limit.is_none() {
            return unprocessable("limit_price is required");
        }
        if needs_stop && stop.is_none() {
            return unprocessable("stop_price is required");
        }
        let exits = match self.exits(&body, &side, &order_type, &tif, limit, &symbol) {
            Ok(exits) => exits,
            Err(message) => return unprocessable(&message),
        };
        let mut book = self.book();
        let client_order_id = match text("client_order_id") {
            Some(id) if id.chars().count() > 48 => {
                return unprocessable("client_order_id must be no more than 48 characters")
            }
            Some(id) => id,
            None => format!("auto-{}", book.orders.len() + 1),
        };
        if book
            .orders
            .iter()
            .any(|o| o.client_order_id == client_order_id)
        {
            return unprocessable("client_order_id must be unique");
        }
        let Some(last) = self.config.symbols.get(&symbol).copied() else {
            return unprocessable(&format!("asset \"{symbol}\" not found"));
        };
        let cost = qty * limit.unwrap_or(last);
        if side == "buy" && cost > book.buying_power {
            return json_reply(
                StatusCode::FORBIDDEN,
                &json!({"code": 40310000, "message": "insufficient buying power"}),
            );
        }
        let id = book.next_id();
        let mut order = AlpacaOrderRecord {
            id,
            client_order_id,
            symbol,
            qty: text("qty").unwrap_or_default(),
            side: side.clone(),
            order_type: order_type.clone(),
            time_in_force: tif,
            limit_price: text("limit_price"),
            stop_price: text("stop_price"),
            status: "accepted".into(),
            filled_qty: Decimal::ZERO,
            filled_avg_price: None,
            order_class: exits.0,
            take_profit: exits.1,
            stop_loss: exits.2,
            parent_id: None,
            replaces: None,
            replaced_by: None,
        };
        // The exits are orders of their own, `held` until the entry fills.
        let exit_side = if side == "buy" { "sell" } else { "buy" };
        let mut legs = Vec::new();
        for (kind, limit_price, stop_price) in [
            ("limit", order.take_profit.clone(), None),
            ("stop", None, order.stop_loss.clone()),
        ] {
            if limit_price.is_none() && stop_price.is_none() {
                continue;
            }
            let leg_id = book.next_id();
            legs.push(AlpacaOrderRecord {
                client_order_id: format!("leg-{leg_id}"),
                id: leg_id,
                side: exit_side.into(),
                order_type: kind.into(),
                limit_price,
                stop_price,
                status: "held".into(),
                take_profit: None,
                stop_loss: None,
                parent_id: Some(order.id.clone()),
                ..order.clone()
            });
        }
        let answer = order.json_with(&legs);
        if order_type == "market" {
            order.status = "filled".into();
            order.filled_qty = qty;
            order.filled_avg_price = Some(last);
            let signed = if side == "buy" { qty } else { -qty };
            *book.positions.entry(order.symbol.clone()).or_default() += signed;
            for leg in &mut legs {
                leg.status = "new".into();
            }
        } else {
            order.status = "new".into();
        }
        if side == "buy" {
            book.buying_power -= cost;
        }
        book.orders.push(order);
        book.legs.extend(legs);
        json_reply(StatusCode::OK, &answer)
    }
}
