//! A Binance USDⓈ-M futures REST emulator, One-way position mode: `GET /fapi/v1/exchangeInfo`,
//! `POST /fapi/v1/order`, `GET /fapi/v1/order`, `DELETE /fapi/v1/order`,
//! `POST /fapi/v1/leverage`, `GET /fapi/v2/positionRisk`, `GET /fapi/v2/account`.
//!
//! Checked as the futures API documents it. Signed requests as on Spot (shared:
//! [`super::binance_signed`]). New orders: the mandatory parameters per type (`MARKET`:
//! `quantity`; `LIMIT`: `timeInForce`, `quantity`, `price`; `-1102`), those sent when not
//! required (`-1106`), conditional types refused for the Algo Order API (`-4120`),
//! `positionSide` other than `BOTH` (`-4061`), `reduceOnly` other than `true`/`false` (`-4062`),
//! `newClientOrderId` matching `^[\.A-Z\:/a-z0-9_-]{1,36}$` (`-4015`) and unique among open
//! orders (`-4116 ClientOrderId is duplicated.`), plain decimals; the filters: quantity above
//! zero (`-4003`), LOT_SIZE / MARKET_LOT_SIZE bounds (`-4004`/`-4005`), more decimals than
//! `quantityPrecision`/`pricePrecision` (`-1111`), off the step (`-4023`), PRICE_FILTER (`-4013`, `-4002`, `-4014`),
//! MIN_NOTIONAL for orders that are not reduce-only (`-4164`); a reduce-only order that would
//! open, grow or flip the position (`-2022`); initial margin (notional / leverage) above what the
//! wallet has free (`-2019 Margin is insufficient.`).
//!
//! Market orders, and limit orders that cross the mark price, fill at once at the mark price;
//! others rest as `NEW`. Positions are kept per symbol (signed `positionAmt`) with their
//! leverage (default 20 until `POST /fapi/v1/leverage`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::Clock;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::binance_signed::{
    bad, check_known, check_presence, decimal_param, err, fault_body, mandatory, param,
    valid_client_id, BinanceAuth, OrderKey, SignedCheck,
};
use super::{json_reply, Emulator, Faults, Recorded, Reply, Venue};

/// One perpetual contract and its filters (zero disables a bound, as on Binance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuturesSymbol {
    /// `BTCUSDT`.
    pub symbol: String,
    /// `TRADING`, `SETTLING`, ...
    pub status: String,
    /// LOT_SIZE minQty.
    pub min_qty: Decimal,
    /// LOT_SIZE maxQty.
    pub max_qty: Decimal,
    /// LOT_SIZE stepSize.
    pub step_size: Decimal,
    /// MARKET_LOT_SIZE maxQty.
    pub market_max_qty: Decimal,
    /// PRICE_FILTER minPrice.
    pub min_price: Decimal,
    /// PRICE_FILTER maxPrice.
    pub max_price: Decimal,
    /// PRICE_FILTER tickSize.
    pub tick_size: Decimal,
    /// MIN_NOTIONAL `notional`.
    pub min_notional: Decimal,
    /// Where market orders fill and margin is counted.
    pub mark_price: Decimal,
    /// The highest leverage `POST /fapi/v1/leverage` accepts.
    pub max_leverage: u32,
    /// `pricePrecision`: more decimals in a price is `-1111`.
    pub price_precision: u32,
    /// `quantityPrecision`: more decimals in a quantity is `-1111`.
    pub quantity_precision: u32,
}

impl FuturesSymbol {
    /// BTCUSDT as the futures testnet lists it (step 0.001, tick 0.10, min notional 100) at 50000.
    pub fn btcusdt() -> Self {
        Self {
            symbol: "BTCUSDT".into(),
            status: "TRADING".into(),
            min_qty: Decimal::new(1, 3),
            max_qty: Decimal::new(1000, 0),
            step_size: Decimal::new(1, 3),
            market_max_qty: Decimal::new(120, 0),
            min_price: Decimal::new(5568, 1),
            max_price: Decimal::new(4_529_764, 0),
            tick_size: Decimal::new(10, 2),
            min_notional: Decimal::new(100, 0),
            mark_price: Decimal::new(50_000, 0),
            max_leverage: 125,
            price_precision: 2,
            quantity_precision: 3,
        }
    }

    fn info(&self) -> Value {
        let f = |d: Decimal| d.normalize().to_string();
        json!({
            "symbol": self.symbol, "pair": self.symbol, "contractType": "PERPETUAL",
            "deliveryDate": 4_133_404_800_000_i64, "onboardDate": 1_569_398_400_000_i64,
            "status": self.status, "baseAsset": self.symbol.trim_end_matches("USDT"),
            "quoteAsset": "USDT", "marginAsset": "USDT",
            "pricePrecision": self.price_precision, "quantityPrecision": self.quantity_precision,
            "underlyingType": "COIN", "triggerProtect": "0.0500",
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": f(self.min_price), "maxPrice": f(self.max_price), "tickSize": f(self.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": f(self.min_qty), "maxQty": f(self.max_qty), "stepSize": f(self.step_size)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": f(self.min_qty), "maxQty": f(self.market_max_qty), "stepSize": f(self.step_size)},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": f(self.min_notional)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"}
            ]
        })
    }
}

/// What the emulator is started with.
#[derive(Debug, Clone)]
pub struct BinanceFuturesEmulatorConfig {
    /// The only accepted `X-MBX-APIKEY`.
    pub api_key: String,
    /// How signatures are checked.
    pub auth: BinanceAuth,
    /// The emulator's "server time" for `timestamp`/`recvWindow`.
    pub clock: Arc<dyn Clock>,
    /// Tradable contracts.
    pub symbols: Vec<FuturesSymbol>,
    /// The USDT wallet balance that margins positions.
    pub wallet_balance: Decimal,
}

impl BinanceFuturesEmulatorConfig {
    /// HMAC credentials, BTCUSDT, a 10,000 USDT wallet.
    pub fn hmac(api_key: &str, secret: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            api_key: api_key.into(),
            auth: BinanceAuth::Hmac(secret.into()),
            clock,
            symbols: vec![FuturesSymbol::btcusdt()],
            wallet_balance: Decimal::new(10_000, 0),
        }
    }
}

/// An order the emulator accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuturesOrder {
    /// Binance's `orderId`.
    pub order_id: i64,
    /// `clientOrderId`.
    pub client_order_id: String,
    /// `BTCUSDT`.
    pub symbol: String,
    /// `BUY`/`SELL`.
    pub side: String,
    /// `MARKET`, `LIMIT`.
    pub order_type: String,
    /// `GTC`/`IOC`/`FOK`/`GTX`, when sent.
    pub time_in_force: Option<String>,
    /// `quantity`.
    pub quantity: Decimal,
    /// `price`, when sent.
    pub price: Option<Decimal>,
    /// `reduceOnly=true` was sent.
    pub reduce_only: bool,
    /// `NEW`, `FILLED`, `CANCELED`.
    pub status: String,
    /// Filled quantity.
    pub executed_qty: Decimal,
    /// Average fill price (zero before any fill).
    pub avg_price: Decimal,
}

impl FuturesOrder {
    fn json(&self, now_ms: i64) -> Value {
        let f = |d: Decimal| d.normalize().to_string();
        json!({
            "orderId": self.order_id, "symbol": self.symbol, "status": self.status,
            "clientOrderId": self.client_order_id, "price": f(self.price.unwrap_or_default()),
            "avgPrice": f(self.avg_price), "origQty": f(self.quantity),
            "executedQty": f(self.executed_qty), "cumQty": f(self.executed_qty),
            "cumQuote": f(self.executed_qty * self.avg_price),
            "timeInForce": self.time_in_force.clone().unwrap_or_else(|| "GTC".into()),
            "type": self.order_type, "origType": self.order_type, "reduceOnly": self.reduce_only,
            "closePosition": false, "side": self.side, "positionSide": "BOTH", "stopPrice": "0",
            "workingType": "CONTRACT_PRICE", "priceProtect": false, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "updateTime": now_ms
        })
    }

    fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "NEW" | "PARTIALLY_FILLED")
    }

    fn signed_quantity(&self, quantity: Decimal) -> Decimal {
        if self.side == "BUY" {
            quantity
        } else {
            -quantity
        }
    }
}

/// One symbol's One-way position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    /// Signed `positionAmt`.
    amount: Decimal,
    /// Average entry price (zero when flat).
    entry: Decimal,
}

impl Position {
    /// Applies a fill of signed `qty` at `price`.
    fn fill(&mut self, qty: Decimal, price: Decimal) {
        let after = self.amount + qty;
        let same_way =
            self.amount.is_zero() || (self.amount > Decimal::ZERO) == (qty > Decimal::ZERO);
        self.entry = if after.is_zero() {
            Decimal::ZERO
        } else if same_way {
            (self.amount.abs() * self.entry + qty.abs() * price) / after.abs()
        } else if (after > Decimal::ZERO) != (self.amount > Decimal::ZERO) {
            price
        } else {
            self.entry
        };
        self.amount = after;
    }
}

#[derive(Debug)]
struct Book {
    symbols: HashMap<String, FuturesSymbol>,
    orders: Vec<FuturesOrder>,
    next_id: i64,
    positions: HashMap<String, Position>,
    leverage: HashMap<String, u32>,
    wallet: Decimal,
}

impl Book {
    fn leverage_of(&self, symbol: &str) -> u32 {
        self.leverage
            .get(symbol)
            .copied()
            .unwrap_or(DEFAULT_LEVERAGE)
    }

    fn mark(&self, symbol: &str) -> Decimal {
        self.symbols
            .get(symbol)
            .map(|s| s.mark_price)
            .unwrap_or_default()
    }

    /// The initial margin positions hold: Σ |positionAmt| × mark / leverage.
    fn used_margin(&self) -> Decimal {
        self.positions
            .iter()
            .map(|(s, p)| p.amount.abs() * self.mark(s) / Decimal::from(self.leverage_of(s)))
            .sum()
    }
}

/// Binance futures' leverage for a symbol never set.
const DEFAULT_LEVERAGE: u32 = 20;

/// Binance futures' state: the config and the book. Served as [`BinanceFuturesEmulator`].
#[derive(Debug)]
pub struct BinanceFuturesState {
    /// Credentials and clock.
    config: BinanceFuturesEmulatorConfig,
    /// Symbols (as changed since), orders, positions, leverage, wallet.
    book: Mutex<Book>,
}

/// A running Binance USDⓈ-M futures emulator; stops when dropped.
pub type BinanceFuturesEmulator = Emulator<BinanceFuturesState>;

fn error_body(status: u16) -> Value {
    fault_body(status, "Too many requests; current limit is 2400 requests per minute. Please use the websocket for live updates to avoid polling the API.")
}

/// Futures' `^[\.A-Z\:/a-z0-9_-]{1,36}$`.
fn valid_client_order_id(id: &str) -> bool {
    valid_client_id(id, b".:/_-")
}

fn places(d: Decimal) -> u32 {
    d.normalize().scale()
}

impl Venue for BinanceFuturesState {
    type Config = BinanceFuturesEmulatorConfig;

    fn new(config: BinanceFuturesEmulatorConfig) -> std::io::Result<Self> {
        let book = Book {
            symbols: config
                .symbols
                .iter()
                .map(|s| (s.symbol.clone(), s.clone()))
                .collect(),
            orders: Vec::new(),
            next_id: 8_389_765_000,
            positions: HashMap::new(),
            leverage: HashMap::new(),
            wallet: config.wallet_balance,
        };
        Ok(Self {
            config,
            book: Mutex::new(book),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.method == "POST" && request.path == "/fapi/v1/order"
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/fapi/v1/exchangeInfo") => Some(self.exchange_info()),
            // The rate limiter and backend errors come before any check of the request.
            ("POST", "/fapi/v1/order") => faults.around(
                || self.signed(request, |params| self.new_order(params)),
                error_body,
            ),
            ("GET", "/fapi/v1/order") => {
                Some(self.signed(request, |params| self.query_order(params)))
            }
            ("DELETE", "/fapi/v1/order") => {
                Some(self.signed(request, |params| self.cancel_order(params)))
            }
            ("POST", "/fapi/v1/leverage") => {
                Some(self.signed(request, |params| self.change_leverage(params)))
            }
            ("GET", "/fapi/v2/positionRisk") => {
                Some(self.signed(request, |params| self.position_risk(params)))
            }
            ("GET", "/fapi/v2/account") => Some(self.signed(request, |_| self.account())),
            _ => Some(err(StatusCode::NOT_FOUND, -1000, "Unknown endpoint.")),
        }
    }
}

impl Emulator<BinanceFuturesState> {
    /// Every order accepted, in order.
    pub fn orders(&self) -> Vec<FuturesOrder> {
        self.venue().book().orders.clone()
    }

    /// The signed position (`positionAmt`) in `symbol`.
    pub fn position(&self, symbol: &str) -> Decimal {
        self.venue()
            .book()
            .positions
            .get(symbol)
            .map(|p| p.amount)
            .unwrap_or_default()
    }

    /// Sets the position in `symbol` at its mark price: a trade made at the venue behind
    /// alertgate's back.
    pub fn set_position(&self, symbol: &str, amount: Decimal) {
        let mut book = self.venue().book();
        let entry = if amount.is_zero() {
            Decimal::ZERO
        } else {
            book.mark(symbol)
        };
        book.positions
            .insert(symbol.to_owned(), Position { amount, entry });
    }

    /// The leverage of `symbol` (20 until set).
    pub fn leverage(&self, symbol: &str) -> u32 {
        self.venue().book().leverage_of(symbol)
    }

    /// Sets the USDT wallet balance (what margins new positions).
    pub fn set_wallet_balance(&self, amount: Decimal) {
        self.venue().book().wallet = amount;
    }

    /// Changes a symbol's filters, status or mark price.
    pub fn update_symbol(&self, symbol: &str, change: impl FnOnce(&mut FuturesSymbol)) {
        if let Some(s) = self.venue().book().symbols.get_mut(symbol) {
            change(s);
        }
    }

    /// Fills every open order at its symbol's mark price.
    pub fn fill_open_orders(&self) {
        let mut book = self.venue().book();
        let marks: HashMap<String, Decimal> = book
            .symbols
            .iter()
            .map(|(k, s)| (k.clone(), s.mark_price))
            .collect();
        let mut fills = Vec::new();
        for order in book.orders.iter_mut().filter(|o| o.is_open()) {
            let price = marks.get(&order.symbol).copied().unwrap_or_default();
            order.status = "FILLED".into();
            order.executed_qty = order.quantity;
            order.avg_price = price;
            fills.push((
                order.symbol.clone(),
                order.signed_quantity(order.quantity),
                price,
            ));
        }
        for (symbol, qty, price) in fills {
            book.positions.entry(symbol).or_default().fill(qty, price);
        }
    }
}

impl BinanceFuturesState {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn signed(
        &self,
        request: &Recorded,
        then: impl FnOnce(&HashMap<String, String>) -> Reply,
    ) -> Reply {
        SignedCheck {
            api_key: &self.config.api_key,
            auth: &self.config.auth,
            clock: &self.config.clock,
        }
        .answer(request, then)
    }

    fn exchange_info(&self) -> Reply {
        let book = self.book();
        let mut symbols: Vec<&FuturesSymbol> = book.symbols.values().collect();
        symbols.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        let symbols: Vec<Value> = symbols.into_iter().map(FuturesSymbol::info).collect();
        json_reply(
            StatusCode::OK,
            &json!({"timezone": "UTC", "serverTime": self.config.clock.now_unix_ms(),
                    "futuresType": "U_MARGINED", "rateLimits": [], "exchangeFilters": [],
                    "assets": [{"asset": "USDT", "marginAvailable": true, "autoAssetExchange": "-10000"}],
                    "symbols": symbols}),
        )
    }

    fn new_order(&self, params: &HashMap<String, String>) -> Reply {
        let get = |k: &str| param(params, k);
        let mut book = self.book();
        let Some(symbol) = get("symbol").cloned() else {
            return mandatory("symbol");
        };
        let Some(rules) = book.symbols.get(&symbol).cloned() else {
            return bad(-1121, "Invalid symbol.");
        };
        let Some(side) = get("side").cloned() else {
            return mandatory("side");
        };
        if side != "BUY" && side != "SELL" {
            return bad(-1117, "Invalid side.");
        }
        if get("positionSide").is_some_and(|p| p != "BOTH") {
            return bad(
                -4061,
                "Order's position side does not match user's setting.",
            );
        }
        let Some(order_type) = get("type").cloned() else {
            return mandatory("type");
        };
        let (needs_tif, needs_price) = match order_type.as_str() {
            "MARKET" => (false, false),
            "LIMIT" => (true, true),
            "STOP" | "STOP_MARKET" | "TAKE_PROFIT" | "TAKE_PROFIT_MARKET"
            | "TRAILING_STOP_MARKET" => {
                return bad(
                    -4120,
                    "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
                )
            }
            _ => return bad(-1116, "Invalid orderType."),
        };
        const KNOWN: [&str; 13] = [
            "symbol",
            "side",
            "positionSide",
            "type",
            "timeInForce",
            "quantity",
            "reduceOnly",
            "price",
            "newClientOrderId",
            "newOrderRespType",
            "selfTradePreventionMode",
            "recvWindow",
            "timestamp",
        ];
        if let Err(refusal) = check_known(params, &KNOWN) {
            return *refusal;
        }
        if let Err(refusal) = check_presence(
            params,
            &[("timeInForce", needs_tif), ("price", needs_price)],
        ) {
            return *refusal;
        }
        if let Some(tif) = get("timeInForce") {
            if !["GTC", "IOC", "FOK", "GTX"].contains(&tif.as_str()) {
                return bad(-1115, "Invalid timeInForce.");
            }
        }
        if let Some(kind) = get("newOrderRespType") {
            if kind != "ACK" && kind != "RESULT" {
                return bad(-1136, "Invalid newOrderRespType.");
            }
        }
        let reduce_only = match get("reduceOnly").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return bad(-4062, "Invalid or improper reduceOnly value."),
        };
        let decimal = |name: &str| decimal_param(params, name);
        let quantity = match decimal("quantity") {
            Ok(Some(q)) => q,
            Ok(None) => return mandatory("quantity"),
            Err(reply) => return *reply,
        };
        let price = match decimal("price") {
            Ok(p) => p,
            Err(reply) => return *reply,
        };
        let client_order_id = match get("newClientOrderId") {
            Some(id) if valid_client_order_id(id) => id.clone(),
            Some(_) => return bad(-4015, "Client order id is not valid."),
            None => format!("emu{}", book.next_id),
        };
        if rules.status != "TRADING" {
            return bad(-1122, "Invalid symbol status.");
        }
        // Filters, as the futures filters are stated.
        let on_grid = |v: Decimal, step: Decimal| step.is_zero() || (v % step).is_zero();
        if quantity <= Decimal::ZERO {
            return bad(-4003, "Quantity less than or equal to zero.");
        }
        if places(quantity) > rules.quantity_precision {
            return bad(
                -1111,
                "Precision is over the maximum defined for this asset.",
            );
        }
        if quantity < rules.min_qty {
            return bad(-4004, "Quantity less than min quantity.");
        }
        let max_qty = if order_type == "MARKET" {
            rules.market_max_qty
        } else {
            rules.max_qty
        };
        if !max_qty.is_zero() && quantity > max_qty {
            return bad(-4005, "Quantity greater than max quantity.");
        }
        if !on_grid(quantity, rules.step_size) {
            return bad(-4023, "Qty not increased by step size.");
        }
        if let Some(p) = price {
            if places(p) > rules.price_precision {
                return bad(
                    -1111,
                    "Precision is over the maximum defined for this asset.",
                );
            }
            if p < rules.min_price {
                return bad(-4013, "Price less than min price.");
            }
            if !rules.max_price.is_zero() && p > rules.max_price {
                return bad(-4002, "Price greater than max price.");
            }
            if !on_grid(p, rules.tick_size) {
                return bad(-4014, "Price not increased by tick size.");
            }
        }
        let reference = price.unwrap_or(rules.mark_price);
        if !reduce_only && quantity * reference < rules.min_notional {
            return bad(
                -4164,
                &format!(
                    "Order's notional must be no smaller than {} (unless you choose reduce only).",
                    rules.min_notional.normalize()
                ),
            );
        }
        if book
            .orders
            .iter()
            .any(|o| o.client_order_id == client_order_id && o.is_open())
        {
            return bad(-4116, "ClientOrderId is duplicated.");
        }
        let position = book.positions.get(&symbol).copied().unwrap_or_default();
        let signed = if side == "BUY" { quantity } else { -quantity };
        if reduce_only {
            let reduces = !position.amount.is_zero()
                && (position.amount > Decimal::ZERO) != (signed > Decimal::ZERO)
                && quantity <= position.amount.abs();
            if !reduces {
                return bad(-2022, "ReduceOnly Order is rejected.");
            }
        } else {
            let leverage = Decimal::from(book.leverage_of(&symbol));
            let grows = (position.amount + signed).abs() - position.amount.abs();
            let needed = grows.max(Decimal::ZERO) * reference / leverage;
            if needed > book.wallet - book.used_margin() {
                return bad(-2019, "Margin is insufficient.");
            }
        }
        let crosses = match (order_type.as_str(), price) {
            ("MARKET", _) => true,
            (_, Some(p)) => {
                (side == "BUY" && p >= rules.mark_price)
                    || (side == "SELL" && p <= rules.mark_price)
            }
            _ => false,
        };
        book.next_id += 1;
        let order = FuturesOrder {
            order_id: book.next_id,
            client_order_id,
            symbol: symbol.clone(),
            side,
            order_type,
            time_in_force: get("timeInForce").cloned(),
            quantity,
            price,
            reduce_only,
            status: if crosses { "FILLED" } else { "NEW" }.into(),
            executed_qty: if crosses { quantity } else { Decimal::ZERO },
            avg_price: if crosses {
                rules.mark_price
            } else {
                Decimal::ZERO
            },
        };
        let body = order.json(self.config.clock.now_unix_ms());
        if crosses {
            book.positions
                .entry(symbol)
                .or_default()
                .fill(signed, rules.mark_price);
        }
        book.orders.push(order);
        json_reply(StatusCode::OK, &body)
    }

    /// The order `params` name by `origClientOrderId` or `orderId` in `symbol`.
    fn find<'a>(
        book: &'a mut Book,
        params: &HashMap<String, String>,
    ) -> Result<Option<&'a mut FuturesOrder>, Box<Reply>> {
        let key = OrderKey::from_params(params, |s| book.symbols.contains_key(s))?;
        Ok(book
            .orders
            .iter_mut()
            .rev()
            .find(|o| key.names(&o.symbol, &o.client_order_id, o.order_id)))
    }

    fn query_order(&self, params: &HashMap<String, String>) -> Reply {
        let now = self.config.clock.now_unix_ms();
        let mut book = self.book();
        match Self::find(&mut book, params) {
            Err(reply) => *reply,
            Ok(Some(order)) => json_reply(StatusCode::OK, &order.json(now)),
            Ok(None) => bad(-2013, "Order does not exist."),
        }
    }

    /// `DELETE /fapi/v1/order`: an open order becomes `CANCELED`; anything else is `-2011`.
    fn cancel_order(&self, params: &HashMap<String, String>) -> Reply {
        let now = self.config.clock.now_unix_ms();
        let mut book = self.book();
        match Self::find(&mut book, params) {
            Err(reply) => *reply,
            Ok(Some(order)) if order.is_open() => {
                order.status = "CANCELED".into();
                json_reply(StatusCode::OK, &order.json(now))
            }
            Ok(_) => bad(-2011, "Unknown order sent."),
        }
    }

    /// `POST /fapi/v1/leverage`: `symbol`, `leverage` (1 to the symbol's maximum).
    fn change_leverage(&self, params: &HashMap<String, String>) -> Reply {
        let mut book = self.book();
        let Some(symbol) = params.get("symbol").cloned() else {
            return mandatory("symbol");
        };
        let Some(rules) = book.symbols.get(&symbol).cloned() else {
            return bad(-1121, "Invalid symbol.");
        };
        let Some(raw) = params.get("leverage") else {
            return mandatory("leverage");
        };
        let leverage = match raw.parse::<u32>() {
            Ok(l) if (1..=rules.max_leverage).contains(&l) => l,
            _ => return bad(-4028, &format!("Leverage {raw} is not valid")),
        };
        book.leverage.insert(symbol.clone(), leverage);
        json_reply(
            StatusCode::OK,
            &json!({"leverage": leverage, "maxNotionalValue": "1000000", "symbol": symbol}),
        )
    }

    /// `GET /fapi/v2/account`: the USDT wallet, margins and unrealised PnL at the mark prices.
    fn account(&self) -> Reply {
        let book = self.book();
        let f = |d: Decimal| d.normalize().to_string();
        let unrealized: Decimal = book
            .positions
            .iter()
            .map(|(s, p)| p.amount * (book.mark(s) - p.entry))
            .sum();
        let used = book.used_margin();
        let margin_balance = book.wallet + unrealized;
        json_reply(
            StatusCode::OK,
            &json!({
                "feeTier": 0, "canTrade": true, "canDeposit": true, "canWithdraw": true,
                "updateTime": 0, "multiAssetsMargin": false,
                "totalInitialMargin": f(used), "totalMaintMargin": "0",
                "totalWalletBalance": f(book.wallet), "totalUnrealizedProfit": f(unrealized),
                "totalMarginBalance": f(margin_balance), "totalPositionInitialMargin": f(used),
                "totalOpenOrderInitialMargin": "0", "totalCrossWalletBalance": f(book.wallet),
                "totalCrossUnPnl": f(unrealized), "availableBalance": f(margin_balance - used),
                "maxWithdrawAmount": f(margin_balance - used), "assets": [], "positions": []
            }),
        )
    }

    /// `GET /fapi/v2/positionRisk` (optional `symbol`): One-way mode, one `BOTH` entry a symbol.
    fn position_risk(&self, params: &HashMap<String, String>) -> Reply {
        let book = self.book();
        let mut symbols: Vec<&String> = match params.get("symbol") {
            Some(s) if book.symbols.contains_key(s) => vec![s],
            Some(_) => return bad(-1121, "Invalid symbol."),
            None => book.symbols.keys().collect(),
        };
        symbols.sort();
        let f = |d: Decimal| d.normalize().to_string();
        let entries: Vec<Value> = symbols
            .into_iter()
            .map(|s| {
                let p = book.positions.get(s).copied().unwrap_or_default();
                let mark = book.mark(s);
                json!({
                    "symbol": s, "positionAmt": f(p.amount), "entryPrice": f(p.entry),
                    "breakEvenPrice": f(p.entry), "markPrice": f(mark),
                    "unRealizedProfit": f(p.amount * (mark - p.entry)),
                    "liquidationPrice": "0", "leverage": book.leverage_of(s).to_string(),
                    "maxNotionalValue": "1000000", "marginType": "cross",
                    "isolatedMargin": "0.00000000", "isAutoAddMargin": "false",
                    "positionSide": "BOTH", "notional": f(p.amount * mark),
                    "isolatedWallet": "0", "updateTime": self.config.clock.now_unix_ms()
                })
            })
            .collect();
        json_reply(StatusCode::OK, &Value::Array(entries))
    }
}
