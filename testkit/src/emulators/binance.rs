//! A Binance Spot REST emulator: `GET /api/v3/exchangeInfo`, `POST /api/v3/order`,
//! `POST /api/v3/order/cancelReplace`, `GET /api/v3/order`, `GET /api/v3/account` (balances: the quote asset starts at 1,000,000,
//! fills move base and quote; [`BinanceEmulator::set_balance`] trades by hand).
//!
//! Checked as Binance documents it: `X-MBX-APIKEY` (`-2014`/`-2015`, 401); the signature over the
//! exact received parameter string, which must end with `&signature=` (HMAC hex, or percent-encoded
//! base64 Ed25519; `-1022`); `timestamp` within `recvWindow` of the emulator's clock (`-1021`);
//! the mandatory and the forbidden parameters of each order type (`-1102`, `-1106`); decimals in
//! plain notation and `newClientOrderId` matching `^[a-zA-Z0-9-_]{1,36}$` (`-1100`); LOT_SIZE,
//! MARKET_LOT_SIZE, PRICE_FILTER and NOTIONAL (`-1013 Filter failure: ...`); a `newClientOrderId`
//! of an order still open (`-2010 Duplicate order sent.`), while the id of a filled order is
//! accepted again, as Binance does.
//!
//! Market orders, and limit orders that cross the symbol's last price, fill at once at that price;
//! other orders rest as `NEW`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::Clock;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use warp::http::StatusCode;

pub use super::binance_signed::BinanceAuth;
use super::binance_signed::{
    bad, check_presence, decimal_param, err, fault_body, mandatory, param, valid_client_id,
    OrderKey, SignedCheck,
};
use super::{json_reply, Emulator, Faults, Recorded, Reply, Venue};

#[path = "binance_oco.rs"]
mod oco;
pub use self::oco::EmulatedList;

/// One tradable symbol and its filters (zero disables a bound, as on Binance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedSymbol {
    /// `BTCUSDT`.
    pub symbol: String,
    /// `BTC`.
    pub base_asset: String,
    /// `USDT`.
    pub quote_asset: String,
    /// `TRADING`, `BREAK`, ...
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
    /// NOTIONAL minNotional (applied to market orders too).
    pub min_notional: Decimal,
    /// Where market orders fill.
    pub last_price: Decimal,
}

impl EmulatedSymbol {
    /// BTCUSDT with Binance's usual filters (step 0.00001, tick 0.01, min notional 5) at 42000.
    pub fn btcusdt() -> Self {
        Self {
            symbol: "BTCUSDT".into(),
            base_asset: "BTC".into(),
            quote_asset: "USDT".into(),
            status: "TRADING".into(),
            min_qty: Decimal::new(1, 5),
            max_qty: Decimal::new(9000, 0),
            step_size: Decimal::new(1, 5),
            market_max_qty: Decimal::new(100, 0),
            min_price: Decimal::new(1, 2),
            max_price: Decimal::new(1_000_000, 0),
            tick_size: Decimal::new(1, 2),
            min_notional: Decimal::new(5, 0),
            last_price: Decimal::new(42000, 0),
        }
    }

    /// PRICE_FILTER on `prices` and LOT_SIZE on `quantity`, as filters.md states them
    /// (`price % tickSize == 0`, `quantity % stepSize == 0`): `-1013 Filter failure: ...`.
    fn check_filters(
        &self,
        prices: &[Option<Decimal>],
        quantity: Decimal,
    ) -> Result<(), Box<Reply>> {
        let on_grid = |v: Decimal, step: Decimal| step.is_zero() || (v % step).is_zero();
        for p in prices.iter().flatten() {
            if *p < self.min_price
                || (!self.max_price.is_zero() && *p > self.max_price)
                || !on_grid(*p, self.tick_size)
            {
                return Err(Box::new(bad(-1013, "Filter failure: PRICE_FILTER")));
            }
        }
        if quantity < self.min_qty || quantity > self.max_qty || !on_grid(quantity, self.step_size)
        {
            return Err(Box::new(bad(-1013, "Filter failure: LOT_SIZE")));
        }
        Ok(())
    }

    fn info(&self) -> Value {
        let f = |d: Decimal| format!("{:.8}", d);
        json!({
            "symbol": self.symbol, "status": self.status,
            "baseAsset": self.base_asset, "baseAssetPrecision": 8,
            "quoteAsset": self.quote_asset, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"],
            "isSpotTradingAllowed": true,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": f(self.min_price), "maxPrice": f(self.max_price), "tickSize": f(self.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": f(self.min_qty), "maxQty": f(self.max_qty), "stepSize": f(self.step_size)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": f(Decimal::ZERO), "maxQty": f(self.market_max_qty), "stepSize": f(Decimal::ZERO)},
                {"filterType": "NOTIONAL", "minNotional": f(self.min_notional), "applyMinToMarket": true,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}
            ]
        })
    }
}

/// What the emulator is started with.
#[derive(Debug, Clone)]
pub struct BinanceEmulatorConfig {
    /// The only accepted `X-MBX-APIKEY`.
    pub api_key: String,
    /// How signatures are checked.
    pub auth: BinanceAuth,
    /// The emulator's "server time" for `timestamp`/`recvWindow`.
    pub clock: Arc<dyn Clock>,
    /// Tradable symbols.
    pub symbols: Vec<EmulatedSymbol>,
}

impl BinanceEmulatorConfig {
    /// HMAC credentials and BTCUSDT.
    pub fn hmac(api_key: &str, secret: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            api_key: api_key.into(),
            auth: BinanceAuth::Hmac(secret.into()),
            clock,
            symbols: vec![EmulatedSymbol::btcusdt()],
        }
    }
}

/// The taker commission every trade pays (as `commissionRates.taker` says): 0.1 %. The
/// balances are moved by the trade only, not by its commission.
const TAKER_RATE: Decimal = Decimal::from_parts(1, 0, 0, false, 3);

/// An order the emulator accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedOrder {
    /// Binance's `orderId`.
    pub order_id: i64,
    /// `clientOrderId`.
    pub client_order_id: String,
    /// `BTCUSDT`.
    pub symbol: String,
    /// `BUY`/`SELL`.
    pub side: String,
    /// `MARKET`, `LIMIT`, `STOP_LOSS`, `STOP_LOSS_LIMIT`.
    pub order_type: String,
    /// `GTC`/`IOC`/`FOK`, when sent.
    pub time_in_force: Option<String>,
    /// `quantity` as received.
    pub quantity: String,
    /// `price` as received.
    pub price: Option<String>,
    /// `stopPrice` as received.
    pub stop_price: Option<String>,
    /// `NEW`, `FILLED`, ...
    pub status: String,
    /// Filled quantity.
    pub executed_qty: Decimal,
    /// Filled value in the quote asset.
    pub cummulative_quote_qty: Decimal,
    /// The `orderListId` of the OCO it is a leg of; `-1` for a lone order.
    pub order_list_id: i64,
}

impl EmulatedOrder {
    fn json(&self, now_ms: i64) -> Value {
        let f = |d: Decimal| format!("{:.8}", d);
        let price = self
            .price
            .as_deref()
            .and_then(|p| p.parse::<Decimal>().ok())
            .unwrap_or_default();
        let mut body = json!({
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id, "transactTime": now_ms, "time": now_ms,
            "price": f(price), "origQty": f(self.quantity.parse::<Decimal>().unwrap_or_default()),
            "executedQty": f(self.executed_qty), "cummulativeQuoteQty": f(self.cummulative_quote_qty),
            "status": self.status, "timeInForce": self.time_in_force.clone().unwrap_or_else(|| "GTC".into()),
            "type": self.order_type, "side": self.side, "workingTime": now_ms,
            "selfTradePreventionMode": "EXPIRE_MAKER"
        });
        if let Some(stop) = self
            .stop_price
            .as_deref()
            .and_then(|p| p.parse::<Decimal>().ok())
        {
            body["stopPrice"] = json!(f(stop));
        }
        body
    }

    fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "NEW" | "PARTIALLY_FILLED")
    }
}

#[derive(Debug)]
struct Book {
    symbols: HashMap<String, EmulatedSymbol>,
    orders: Vec<EmulatedOrder>,
    next_id: i64,
    insufficient_balance: bool,
    /// Asset → free balance (nothing is locked by resting orders here).
    balances: HashMap<String, Decimal>,
    /// OCO order lists, oldest first.
    lists: Vec<oco::EmulatedList>,
    /// The asset commission is paid in ([`BinanceEmulator::set_commission_asset`]); `None`: the
    /// asset the trade brings in (the base asset for a buy, the quote asset for a sell).
    commission_asset: Option<String>,
}

/// Binance's state: the config and the order book. Served as [`BinanceEmulator`].
#[derive(Debug)]
pub struct BinanceState {
    /// Credentials, clock and the initial symbols.
    config: BinanceEmulatorConfig,
    /// Symbols (as changed since), orders and switches.
    book: Mutex<Book>,
    /// Faults for the next `POST /api/v3/orderList/oco` requests (the order faults stay with
    /// `POST /api/v3/order`, so a test can break the OCO behind a good entry).
    list_faults: Faults,
}

/// A running Binance emulator; stops when dropped.
pub type BinanceEmulator = Emulator<BinanceState>;

fn error_body(status: u16) -> Value {
    fault_body(status, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")
}

/// Spot's `^[a-zA-Z0-9-_]{1,36}$`.
fn valid_client_order_id(id: &str) -> bool {
    valid_client_id(id, b"-_")
}

impl Venue for BinanceState {
    type Config = BinanceEmulatorConfig;

    fn new(config: BinanceEmulatorConfig) -> std::io::Result<Self> {
        let book = Book {
            symbols: config
                .symbols
                .iter()
                .map(|s| (s.symbol.clone(), s.clone()))
                .collect(),
            orders: Vec::new(),
            next_id: 1000,
            insufficient_balance: false,
            lists: Vec::new(),
            commission_asset: None,
            balances: config
                .symbols
                .iter()
                .map(|s| (s.quote_asset.clone(), Decimal::new(1_000_000, 0)))
                .collect(),
        };
        Ok(Self {
            config,
            book: Mutex::new(book),
            list_faults: Faults::default(),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.method == "POST" && request.path == "/api/v3/order"
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/api/v3/exchangeInfo") => Some(self.exchange_info(request)),
            // Binance's rate limiter and backend errors come before any check of the request.
            ("POST", "/api/v3/order") => faults.around(
                || self.signed(request, |params| self.new_order(params)),
                error_body,
            ),
            ("GET", "/api/v3/order") => {
                Some(self.signed(request, |params| self.query_order(params)))
            }
            ("POST", "/api/v3/order/cancelReplace") => faults.around(
                || self.signed(request, |params| self.cancel_replace(params)),
                error_body,
            ),
            ("GET", "/api/v3/account") => Some(self.signed(request, |params| self.account(params))),
            ("DELETE", "/api/v3/order") => {
                Some(self.signed(request, |params| self.cancel_order(params)))
            }
            ("POST", "/api/v3/orderList/oco") => self.list_faults.around(
                || self.signed(request, |params| self.new_oco(params)),
                error_body,
            ),
            ("GET", "/api/v3/orderList") => {
                Some(self.signed(request, |params| self.query_list(params)))
            }
            ("DELETE", "/api/v3/orderList") => {
                Some(self.signed(request, |params| self.cancel_list(params)))
            }
            _ => Some(err(StatusCode::NOT_FOUND, -1000, "Unknown endpoint.")),
        }
    }
}

impl Emulator<BinanceState> {
    /// Every order accepted, in order.
    pub fn orders(&self) -> Vec<EmulatedOrder> {
        self.venue().book().orders.clone()
    }

    /// Makes trades pay their commission in `asset` (`"BNB"`, as with Binance's BNB discount);
    /// `None`: in the asset the trade brings in.
    pub fn set_commission_asset(&self, asset: Option<&str>) {
        self.venue().book().commission_asset = asset.map(str::to_owned);
    }

    /// Makes new orders fail with `-2010 Account has insufficient balance for requested action.`
    pub fn set_insufficient_balance(&self, on: bool) {
        self.venue().book().insufficient_balance = on;
    }

    /// Sets a symbol's trading status (`BREAK` to close the market).
    pub fn set_symbol_status(&self, symbol: &str, status: &str) {
        if let Some(s) = self.venue().book().symbols.get_mut(symbol) {
            s.status = status.into();
        }
    }

    /// Changes a symbol's filters or price (Binance changes filters from time to time).
    pub fn update_symbol(&self, symbol: &str, change: impl FnOnce(&mut EmulatedSymbol)) {
        if let Some(s) = self.venue().book().symbols.get_mut(symbol) {
            change(s);
        }
    }

    /// Fills every open order at its symbol's last price (so its client id may be reused).
    /// Sets the free balance of `asset`: a trade made at the venue behind alertgate's back.
    pub fn set_balance(&self, asset: &str, amount: Decimal) {
        self.venue()
            .book()
            .balances
            .insert(asset.to_owned(), amount);
    }

    /// The free balance of `asset`.
    pub fn balance(&self, asset: &str) -> Decimal {
        self.venue()
            .book()
            .balances
            .get(asset)
            .copied()
            .unwrap_or_default()
    }

    pub fn fill_open_orders(&self) {
        let mut book = self.venue().book();
        let prices: HashMap<String, Decimal> = book
            .symbols
            .iter()
            .map(|(k, s)| (k.clone(), s.last_price))
            .collect();
        let mut fills = Vec::new();
        for order in book.orders.iter_mut().filter(|o| o.is_open()) {
            let qty = order.quantity.parse::<Decimal>().unwrap_or_default();
            let price = prices.get(&order.symbol).copied().unwrap_or_default();
            order.status = "FILLED".into();
            order.executed_qty = qty;
            order.cummulative_quote_qty = qty * price;
            fills.push((order.symbol.clone(), order.side.clone(), qty, qty * price));
        }
        for (symbol, side, qty, quote) in fills {
            book.settle_fill(&symbol, &side, qty, quote);
        }
    }
}

impl Book {
    /// Moves the base and quote balances by one fill.
    fn settle_fill(&mut self, symbol: &str, side: &str, qty: Decimal, quote: Decimal) {
        let Some(rules) = self.symbols.get(symbol) else {
            return;
        };
        let (base, quote_asset) = (rules.base_asset.clone(), rules.quote_asset.clone());
        let sign = if side == "BUY" {
            Decimal::ONE
        } else {
            -Decimal::ONE
        };
        *self.balances.entry(base).or_default() += sign * qty;
        *self.balances.entry(quote_asset).or_default() -= sign * quote;
    }
}

impl BinanceState {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exchange_info(&self, request: &Recorded) -> Reply {
        let book = self.book();
        let symbols: Vec<Value> = match request.param("symbol") {
            Some(symbol) => match book.symbols.get(&symbol) {
                Some(s) => vec![s.info()],
                None => return bad(-1121, "Invalid symbol."),
            },
            None => book.symbols.values().map(EmulatedSymbol::info).collect(),
        };
        json_reply(
            StatusCode::OK,
            &json!({"timezone": "UTC", "serverTime": self.config.clock.now_unix_ms(), "rateLimits": [], "exchangeFilters": [], "symbols": symbols}),
        )
    }

    /// Checks key, signature and timing ([`SignedCheck`]); hands the decoded parameters
    /// (without `signature`) on.
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

    fn new_order(&self, params: &HashMap<String, String>) -> Reply {
        let get = |k: &str| param(params, k);
        let mut book = self.book();
        let Some(symbol) = get("symbol") else {
            return mandatory("symbol");
        };
        let Some(rules) = book.symbols.get(symbol).cloned() else {
            return bad(-1121, "Invalid symbol.");
        };
        let Some(side) = get("side") else {
            return mandatory("side");
        };
        if side != "BUY" && side != "SELL" {
            return bad(-1117, "Invalid side.");
        }
        let Some(order_type) = get("type") else {
            return mandatory("type");
        };
        let (needs_tif, needs_price, needs_stop) = match order_type.as_str() {
            "MARKET" => (false, false, false),
            "LIMIT" => (true, true, false),
            "STOP_LOSS" => (false, false, true),
            "STOP_LOSS_LIMIT" => (true, true, true),
            _ => return bad(-1116, "Invalid orderType."),
        };
        const KNOWN: [&str; 12] = [
            "symbol",
            "side",
            "type",
            "timeInForce",
            "quantity",
            "price",
            "stopPrice",
            "newClientOrderId",
            "newOrderRespType",
            "recvWindow",
            "timestamp",
            "quoteOrderQty",
        ];
        // `signature` was read too, but is not in `params`.
        let read = params
            .keys()
            .filter(|k| KNOWN.contains(&k.as_str()))
            .count()
            + 1;
        if read <= params.len() {
            let sent = params.len() + 1;
            return bad(
                -1104,
                &format!("Not all sent parameters were read; read '{read}' parameter(s) but was sent '{sent}'."),
            );
        }
        if let Err(refusal) = check_presence(
            params,
            &[
                ("timeInForce", needs_tif),
                ("price", needs_price),
                ("stopPrice", needs_stop),
            ],
        ) {
            return *refusal;
        }
        if let Some(tif) = get("timeInForce") {
            if !["GTC", "IOC", "FOK"].contains(&tif.as_str()) {
                return bad(-1115, "Invalid timeInForce.");
            }
        }
        let decimal = |name: &str| decimal_param(params, name);
        let (quantity, price, stop_price) =
            match (decimal("quantity"), decimal("price"), decimal("stopPrice")) {
                (Ok(Some(q)), Ok(p), Ok(s)) => (q, p, s),
                (Ok(None), _, _) => return mandatory("quantity"),
                (Err(refusal), _, _) | (_, Err(refusal), _) | (_, _, Err(refusal)) => {
                    return *refusal
                }
            };
        let client_order_id = match get("newClientOrderId") {
            Some(id) if valid_client_order_id(id) => id.clone(),
            Some(_) => {
                return bad(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'.")
            }
            None => format!("emu{}", book.next_id),
        };
        if rules.status != "TRADING" {
            return bad(-2010, "Market is closed.");
        }
        if let Err(refusal) = rules.check_filters(&[price, stop_price], quantity) {
            return *refusal;
        }
        if order_type == "MARKET" && quantity > rules.market_max_qty {
            return bad(-1013, "Filter failure: MARKET_LOT_SIZE");
        }
        let notional_price = price.or(stop_price).unwrap_or(rules.last_price);
        if quantity * notional_price < rules.min_notional {
            return bad(-1013, "Filter failure: NOTIONAL");
        }
        if book
            .orders
            .iter()
            .any(|o| o.client_order_id == client_order_id && o.is_open())
        {
            return bad(-2010, "Duplicate order sent.");
        }
        if book.insufficient_balance {
            return bad(
                -2010,
                "Account has insufficient balance for requested action.",
            );
        }
        let crosses = match (order_type.as_str(), price) {
            ("MARKET", _) => true,
            ("LIMIT", Some(p)) => {
                (side == "BUY" && p >= rules.last_price)
                    || (side == "SELL" && p <= rules.last_price)
            }
            _ => false,
        };
        book.next_id += 1;
        let order = EmulatedOrder {
            order_id: book.next_id,
            client_order_id,
            symbol: symbol.clone(),
            side: side.clone(),
            order_type: order_type.clone(),
            time_in_force: get("timeInForce").cloned(),
            quantity: get("quantity").cloned().unwrap_or_default(),
            price: get("price").cloned(),
            stop_price: get("stopPrice").cloned(),
            status: if crosses { "FILLED" } else { "NEW" }.into(),
            executed_qty: if crosses { quantity } else { Decimal::ZERO },
            cummulative_quote_qty: if crosses {
                quantity * rules.last_price
            } else {
                Decimal::ZERO
            },
            order_list_id: -1,
        };
        let mut body = order.json(self.config.clock.now_unix_ms());
        // FULL (the default for MARKET and LIMIT) lists the trades, each with its commission:
        // the taker rate of `commissionRates`, in the asset the trade brings in.
        let full = match get("newOrderRespType").map(String::as_str) {
            Some(kind) => kind == "FULL",
            None => matches!(order_type.as_str(), "MARKET" | "LIMIT"),
        };
        if full {
            let mut fills = Vec::new();
            if crosses {
                let f = |d: Decimal| format!("{:.8}", d);
                let (asset, commission) = match (&book.commission_asset, side.as_str()) {
                    (Some(asset), _) => (asset.clone(), order.executed_qty * TAKER_RATE),
                    (None, "BUY") => (rules.base_asset.clone(), order.executed_qty * TAKER_RATE),
                    (None, _) => (
                        rules.quote_asset.clone(),
                        order.cummulative_quote_qty * TAKER_RATE,
                    ),
                };
                fills.push(json!({
                    "price": f(rules.last_price), "qty": f(order.executed_qty),
                    "commission": f(commission), "commissionAsset": asset,
                    "tradeId": order.order_id
                }));
            }
            body["fills"] = Value::Array(fills);
        }
        if crosses {
            let (qty, quote) = (order.executed_qty, order.cummulative_quote_qty);
            book.settle_fill(symbol, side, qty, quote);
        }
        book.orders.push(order);
        json_reply(StatusCode::OK, &body)
    }

    /// `GET /api/v3/account` (signed; `omitZeroBalances` optional): the account's balances,
    /// each asset's `free` and `locked` as decimal strings.
    fn account(&self, params: &HashMap<String, String>) -> Reply {
        let omit_zero = match params.get("omitZeroBalances").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return bad(-1100, "Illegal characters found in parameter 'omitZeroBalances'; legal range is 'true|false'."),
        };
        let book = self.book();
        let f = |d: Decimal| format!("{:.8}", d);
        let mut assets: Vec<(&String, &Decimal)> = book.balances.iter().collect();
        assets.sort();
        let balances: Vec<Value> = assets
            .into_iter()
            .filter(|(_, amount)| !omit_zero || !amount.is_zero())
            .map(|(asset, amount)| json!({"asset": asset, "free": f(*amount), "locked": f(Decimal::ZERO)}))
            .collect();
        let now = self.config.clock.now_unix_ms();
        json_reply(
            StatusCode::OK,
            &json!({
                "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"},
                "canTrade": true, "canWithdraw": true, "canDeposit": true, "brokered": false,
                "requireSelfTradePrevention": false, "preventSor": false,
                "updateTime": now, "accountType": "SPOT", "balances": balances,
                "permissions": ["SPOT"], "uid": 354937868
            }),
        )
    }

    /// `DELETE /api/v3/order` (signed): `symbol` and `orderId` or `origClientOrderId`. An open
    /// order becomes `CANCELED` and is answered with `origClientOrderId`; anything else (no such
    /// order, already filled or cancelled) is `-2011 Unknown order sent.`
    fn cancel_order(&self, params: &HashMap<String, String>) -> Reply {
        let now = self.config.clock.now_unix_ms();
        let mut book = self.book();
        let key = match OrderKey::from_params(params, |s| book.symbols.contains_key(s)) {
            Ok(key) => key,
            Err(refusal) => return *refusal,
        };
        let found = book
            .orders
            .iter_mut()
            .rev()
            .find(|o| key.names(&o.symbol, &o.client_order_id, o.order_id));
        match found {
            Some(order) if order.is_open() => {
                order.status = "CANCELED".into();
                let mut body = order.json(now);
                body["origClientOrderId"] = json!(order.client_order_id);
                body["clientOrderId"] = json!(format!("cancel{}", order.order_id));
                // "Canceling an individual order in an order list will cancel the entire
                // order list."
                let list = order.order_list_id;
                if list >= 0 {
                    book.end_list(list, "CANCELED");
                }
                json_reply(StatusCode::OK, &body)
            }
            _ => bad(-2011, "Unknown order sent."),
        }
    }

    /// `POST /api/v3/order/cancelReplace` (signed), as Binance documents it: `symbol`, `side`,
    /// `type`, `cancelReplaceMode` (`STOP_ON_FAILURE` or `ALLOW_FAILURE`) and `cancelOrderId` or
    /// `cancelOrigClientOrderId` are mandatory, the rest are the new order's parameters, checked
    /// as `POST /api/v3/order` checks them (filters before the cancel: a refused new order
    /// cancels nothing). An order that cannot be cancelled (unknown, filled, cancelled) is 400
    /// `-2022 Order cancel-replace failed.` with `cancelResult: FAILURE`, `newOrderResult:
    /// NOT_ATTEMPTED` under STOP_ON_FAILURE. Success: `cancelResult`/`newOrderResult` `SUCCESS`
    /// with `cancelResponse` and `newOrderResponse`.
    fn cancel_replace(&self, params: &HashMap<String, String>) -> Reply {
        let now = self.config.clock.now_unix_ms();
        match params.get("cancelReplaceMode").map(String::as_str) {
            None => return mandatory("cancelReplaceMode"),
            Some("STOP_ON_FAILURE") => {}
            Some("ALLOW_FAILURE") => {
                return bad(-1104, "ALLOW_FAILURE is not supported by this emulator.")
            }
            Some(_) => {
                return bad(
                    -1100,
                    "Illegal characters found in parameter 'cancelReplaceMode'.",
                )
            }
        }
        let Some(symbol) = params.get("symbol").cloned() else {
            return mandatory("symbol");
        };
        let by_client = params.get("cancelOrigClientOrderId").cloned();
        let by_id = params
            .get("cancelOrderId")
            .and_then(|i| i.parse::<i64>().ok());
        if by_client.is_none() && by_id.is_none() {
            return bad(
                -1102,
                "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be sent, but both were empty/null!",
            );
        }
        let target = |o: &EmulatedOrder| {
            o.symbol == symbol
                && by_client.as_ref().is_none_or(|c| &o.client_order_id == c)
                && by_id.is_none_or(|i| o.order_id == i)
        };
        let open = self
            .book()
            .orders
            .iter()
            .rev()
            .find(|o| target(o))
            .map(|o| (o.order_id, o.is_open()));
        let Some((old_id, true)) = open else {
            return json_reply(
                StatusCode::BAD_REQUEST,
                &json!({"code": -2022, "msg": "Order cancel-replace failed.", "data": {
                    "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                    "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                    "newOrderResponse": null}}),
            );
        };
        let new_params: HashMap<String, String> = params
            .iter()
            .filter(|(k, _)| !k.starts_with("cancel"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let placed = self.new_order(&new_params);
        if placed.status() != StatusCode::OK {
            return placed;
        }
        let mut book = self.book();
        let new_json = book.orders.last().map(|o| o.json(now));
        let Some(old) = book.orders.iter_mut().find(|o| o.order_id == old_id) else {
            return bad(-2011, "Unknown order sent.");
        };
        old.status = "CANCELED".into();
        let mut cancel_json = old.json(now);
        cancel_json["origClientOrderId"] = json!(old.client_order_id);
        json_reply(
            StatusCode::OK,
            &json!({"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
                    "cancelResponse": cancel_json, "newOrderResponse": new_json}),
        )
    }

    fn query_order(&self, params: &HashMap<String, String>) -> Reply {
        let book = self.book();
        let key = match OrderKey::from_params(params, |s| book.symbols.contains_key(s)) {
            Ok(key) => key,
            Err(refusal) => return *refusal,
        };
        let found = book
            .orders
            .iter()
            .rev()
            .find(|o| key.names(&o.symbol, &o.client_order_id, o.order_id));
        match found {
            Some(order) => json_reply(StatusCode::OK, &order.json(self.config.clock.now_unix_ms())),
            None => bad(-2013, "Order does not exist."),
        }
    }
}
