//! A Betfair Exchange API-NG emulator: the identity host (`/api/certlogin`, `/api/login`,
//! `/api/keepAlive`) and the REST betting API (`/exchange/betting/rest/v1.0/{placeOrders,
//! listCurrentOrders,listMarketCatalogue}/`) on one loopback base URL.
//!
//! Checked as the API-NG documentation describes:
//! - Logins: form-encoded `username`/`password` and the `X-Application` header; `login` answers
//!   `{"token","product","status","error"}` (`FAIL` + `INVALID_USERNAME_OR_PASSWORD`), `certlogin`
//!   `{"sessionToken","loginStatus"}`. Not emulated: the client certificate of `certlogin` is part
//!   of the TLS handshake, and this emulator speaks plain HTTP, so it cannot check it. Missing app
//!   keys on a login answer `FORBIDDEN` (this emulator's choice; Betfair's exact answer was not
//!   verifiable).
//! - Sessions expire `session_ttl_secs` after the login or the last keep-alive (betting calls do
//!   not extend them), or at once with [`Emulator::expire_sessions`]; `keepAlive` with a gone
//!   token answers `FAIL` + `NO_SESSION`.
//! - Betting calls: `X-Application` (fault `NO_APP_KEY`/`INVALID_APP_KEY`), `X-Authentication`
//!   (`NO_SESSION`/`INVALID_SESSION_INFORMATION`), JSON body (`INVALID_INPUT_DATA`). A fault is
//!   HTTP 400 `{"detail":{"APINGException":{"errorCode",..},"exceptionname":"APINGException"},
//!   "faultcode":"Client","faultstring":"ANGX-00NN"}`.
//! - `placeOrders`: `marketId` (`INVALID_MARKET_ID`), 1..=200 instructions, `customerRef` ≤32
//!   characters of `[A-Za-z0-9:-._+*;~]` (`INVALID_INPUT_DATA`), a request with the same
//!   `customerRef` within 60 s → `FAILURE`/`DUPLICATE_TRANSACTION` (after 60 s it is a new
//!   order, as documented), market status (`MARKET_SUSPENDED`, `MARKET_NOT_OPEN_FOR_BETTING`),
//!   per instruction: runner (`INVALID_RUNNER`), `BACK`/`LAY`, `orderType` `LIMIT`
//!   (`INVALID_ORDER_TYPE` otherwise: only LIMIT is emulated), `persistenceType`
//!   `LAPSE`/`PERSIST` (`INVALID_PERSISTENCE_TYPE`), odds on the price ladder (`INVALID_ODDS`),
//!   size ≥ `min_bet_size` with two decimals at most (`INVALID_BET_SIZE`), `customerOrderRef` ≤32
//!   (`INVALID_CUSTOMER_ORDER_REF`), funds (stake for a BACK, stake × (odds − 1) for a LAY;
//!   `INSUFFICIENT_FUNDS`). One bad instruction fails the whole request (`BET_ACTION_ERROR`).
//! - A BACK matches when the runner's `available_to_back` is at least its odds; a LAY when
//!   `available_to_lay` is at most its odds; otherwise the bet rests (`EXECUTABLE`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::Clock;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{json_reply, parse_params, Emulator, Faults, Recorded, Reply, Venue};

mod betting;

/// Where the betting operations live, under the emulator's base URL (as at Betfair).
pub const BETTING_PATH: &str = "/exchange/betting/rest/v1.0";

/// A runner (selection) of an emulated market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedRunner {
    /// `selectionId`.
    pub selection_id: u64,
    /// `runnerName`.
    pub name: String,
    /// Best odds available to back: a BACK at or below them matches, at them.
    pub available_to_back: Option<Decimal>,
    /// Best odds available to lay: a LAY at or above them matches, at them.
    pub available_to_lay: Option<Decimal>,
}

/// An emulated market.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedMarket {
    /// `marketId`, e.g. `1.109850906`.
    pub market_id: String,
    /// `marketName`.
    pub name: String,
    /// `OPEN`, `SUSPENDED`, `INACTIVE` or `CLOSED`.
    pub status: String,
    /// Its runners.
    pub runners: Vec<EmulatedRunner>,
}

impl EmulatedMarket {
    /// `1.109850906`, "TEAM1 v TEAM2": TEAM1 (237486) backable at 2.5 and layable at 2.52,
    /// TEAM2 (60443) with nothing available (bets rest).
    pub fn team1_team2() -> Self {
        Self {
            market_id: "1.109850906".into(),
            name: "TEAM1 v TEAM2".into(),
            status: "OPEN".into(),
            runners: vec![
                EmulatedRunner {
                    selection_id: 237486,
                    name: "TEAM1".into(),
                    available_to_back: Some(Decimal::new(25, 1)),
                    available_to_lay: Some(Decimal::new(252, 2)),
                },
                EmulatedRunner {
                    selection_id: 60443,
                    name: "TEAM2".into(),
                    available_to_back: None,
                    available_to_lay: None,
                },
            ],
        }
    }
}

/// What the emulator is started with.
#[derive(Debug, Clone)]
pub struct BetfairEmulatorConfig {
    /// The accepted `X-Application`.
    pub app_key: String,
    /// The account's username.
    pub username: String,
    /// The account's password.
    pub password: String,
    /// Session ages, the 60-second `customerRef` window, `placedDate`.
    pub clock: Arc<dyn Clock>,
    /// Markets.
    pub markets: Vec<EmulatedMarket>,
    /// The account's available-to-bet balance.
    pub available_to_bet: Decimal,
    /// The smallest stake (the currency's minimum bet).
    pub min_bet_size: Decimal,
    /// How long a session lives without a keep-alive.
    pub session_ttl_secs: i64,
}

impl BetfairEmulatorConfig {
    /// These credentials, the TEAM1 v TEAM2 market, 1000 available, a minimum bet of 1 and
    /// sessions of 4 hours.
    pub fn new(app_key: &str, username: &str, password: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            app_key: app_key.into(),
            username: username.into(),
            password: password.into(),
            clock,
            markets: vec![EmulatedMarket::team1_team2()],
            available_to_bet: Decimal::new(1000, 0),
            min_bet_size: Decimal::ONE,
            session_ttl_secs: 4 * 3600,
        }
    }
}

/// A bet the emulator accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedBet {
    /// `betId`.
    pub bet_id: String,
    /// `marketId`.
    pub market_id: String,
    /// `selectionId`.
    pub selection_id: u64,
    /// `BACK` / `LAY`.
    pub side: String,
    /// Odds asked.
    pub price: Decimal,
    /// Stake asked.
    pub size: Decimal,
    /// `LAPSE` / `PERSIST`.
    pub persistence_type: String,
    /// The request's `customerRef`.
    pub customer_ref: Option<String>,
    /// The instruction's `customerOrderRef`.
    pub customer_order_ref: Option<String>,
    /// Matched so far.
    pub size_matched: Decimal,
    /// Average matched odds.
    pub average_price_matched: Option<Decimal>,
    /// Unix second it was placed.
    pub placed_at: i64,
    /// `placedDate`, e.g. `2026-11-23T09:00:00.000Z`.
    pub placed_date: String,
}

impl EmulatedBet {
    fn status(&self) -> &'static str {
        if self.size_matched >= self.size {
            "EXECUTION_COMPLETE"
        } else {
            "EXECUTABLE"
        }
    }

    fn summary(&self) -> Value {
        json!({
            "betId": self.bet_id, "marketId": self.market_id, "selectionId": self.selection_id,
            "handicap": 0.0, "priceSize": {"price": num(self.price), "size": num(self.size)},
            "bspLiability": 0.0, "side": self.side, "status": self.status(),
            "persistenceType": self.persistence_type, "orderType": "LIMIT",
            "placedDate": self.placed_date,
            "averagePriceMatched": num(self.average_price_matched.unwrap_or_default()),
            "sizeMatched": num(self.size_matched), "sizeRemaining": num(self.size - self.size_matched),
            "sizeLapsed": 0.0, "sizeCancelled": 0.0, "sizeVoided": 0.0, "regulatorCode": "MALTA LOTTERIES AND GAMBLING AUTHORITY",
            "customerOrderRef": self.customer_order_ref,
        })
    }
}

/// A decimal as the JSON number Betfair sends.
fn num(d: Decimal) -> Value {
    d.normalize()
        .to_string()
        .parse::<serde_json::Number>()
        .map_or(Value::Null, Value::Number)
}

#[derive(Debug, Default)]
struct Book {
    bets: Vec<EmulatedBet>,
    /// Token → unix second of the login or last keep-alive.
    sessions: HashMap<String, i64>,
    logins: usize,
    /// `customerRef` → unix second its request was accepted.
    customer_refs: HashMap<String, i64>,
    available: Decimal,
    markets: Vec<EmulatedMarket>,
}

/// Betfair's state. Served as [`BetfairEmulator`].
#[derive(Debug)]
pub struct BetfairState {
    /// Credentials and rules.
    config: BetfairEmulatorConfig,
    /// Bets, sessions, balance.
    book: Mutex<Book>,
}

/// A running Betfair emulator; stops when dropped.
pub type BetfairEmulator = Emulator<BetfairState>;

const ANGX: [(&str, &str); 9] = [
    ("TOO_MUCH_DATA", "ANGX-0001"),
    ("INVALID_INPUT_DATA", "ANGX-0002"),
    ("INVALID_SESSION_INFORMATION", "ANGX-0003"),
    ("NO_APP_KEY", "ANGX-0004"),
    ("NO_SESSION", "ANGX-0005"),
    ("UNEXPECTED_ERROR", "ANGX-0006"),
    ("INVALID_APP_KEY", "ANGX-0007"),
    ("TOO_MANY_REQUESTS", "ANGX-0008"),
    ("SERVICE_BUSY", "ANGX-0009"),
];

fn fault_body(code: &str, details: &str) -> Value {
    let angx = ANGX
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("ANGX-0006", |(_, a)| a);
    json!({"detail": {"APINGException": {"requestUUID": "emulator-0000", "errorCode": code,
           "errorDetails": details}, "exceptionname": "APINGException"},
           "faultcode": "Client", "faultstring": angx})
}

fn fault(code: &str, details: &str) -> Reply {
    json_reply(StatusCode::BAD_REQUEST, &fault_body(code, details))
}

/// `customerRef` may hold letters, digits and `: - . _ + * ; ~`.
fn customer_ref_ok(r: &str) -> bool {
    r.chars().count() <= 32
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-._+*;~".contains(c))
}

/// The API-NG price ladder for odds markets, in hundredths.
pub fn on_ladder(odds: Decimal) -> bool {
    const BANDS: [(i64, i64, i64); 10] = [
        (101, 200, 1),
        (200, 300, 2),
        (300, 400, 5),
        (400, 600, 10),
        (600, 1000, 20),
        (1000, 2000, 50),
        (2000, 3000, 100),
        (3000, 5000, 200),
        (5000, 10000, 500),
        (10000, 100000, 1000),
    ];
    let h = odds * Decimal::ONE_HUNDRED;
    h.fract().is_zero()
        && BANDS.iter().any(|&(from, to, step)| {
            let (from, to, step) = (Decimal::from(from), Decimal::from(to), Decimal::from(step));
            h >= from && h <= to && ((h - from) % step).is_zero()
        })
}

impl Venue for BetfairState {
    type Config = BetfairEmulatorConfig;

    fn new(config: BetfairEmulatorConfig) -> std::io::Result<Self> {
        let book = Book {
            available: config.available_to_bet,
            markets: config.markets.clone(),
            ..Book::default()
        };
        Ok(Self {
            config,
            book: Mutex::new(book),
        })
    }

    fn places_order(request: &Recorded) -> bool {
        request.path.trim_end_matches('/') == format!("{BETTING_PATH}/placeOrders")
    }

    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply> {
        if request.method != "POST" {
            return Some(fault("INVALID_INPUT_DATA", "POST only"));
        }
        match request.path.as_str() {
            "/api/certlogin" => return Some(self.login(request, true)),
            "/api/login" => return Some(self.login(request, false)),
            "/api/keepAlive" => return Some(self.keep_alive(request)),
            _ => {}
        }
        let Some(operation) = request
            .path
            .strip_prefix(BETTING_PATH)
            .map(|p| p.trim_matches('/'))
        else {
            return Some(json_reply(
                StatusCode::NOT_FOUND,
                &json!({"error": "no such path"}),
            ));
        };
        if let Some(refusal) = self.refusal(request) {
            return Some(refusal);
        }
        let body = request.json();
        if !request
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
            || !body.is_object()
        {
            return Some(fault(
                "INVALID_INPUT_DATA",
                "the body must be a JSON object",
            ));
        }
        match operation {
            "placeOrders" => faults.around(
                || self.place_orders(&body),
                |status| {
                    fault_body(
                        if status == 429 {
                            "TOO_MANY_REQUESTS"
                        } else {
                            "UNEXPECTED_ERROR"
                        },
                        "",
                    )
                },
            ),
            "listCurrentOrders" => Some(self.list_current_orders(&body)),
            "listMarketCatalogue" => Some(self.list_market_catalogue(&body)),
            _ => Some(json_reply(
                StatusCode::NOT_FOUND,
                &json!({"error": "no such operation"}),
            )),
        }
    }
}

impl Emulator<BetfairState> {
    /// `{base_url}/exchange/betting/rest/v1.0`: the betting `base_url` to configure.
    pub fn betting_url(&self) -> String {
        format!("{}{BETTING_PATH}", self.base_url())
    }

    /// Every bet accepted, in order.
    pub fn bets(&self) -> Vec<EmulatedBet> {
        self.venue().book().bets.clone()
    }

    /// Successful logins so far.
    pub fn logins(&self) -> usize {
        self.venue().book().logins
    }

    /// Ends every session now: the next betting call meets `INVALID_SESSION_INFORMATION`.
    pub fn expire_sessions(&self) {
        self.venue().book().sessions.clear();
    }

    /// Sets a market's status (`OPEN`, `SUSPENDED`, `CLOSED`, ...).
    pub fn set_market_status(&self, market_id: &str, status: &str) {
        for market in self
            .venue()
            .book()
            .markets
            .iter_mut()
            .filter(|m| m.market_id == market_id)
        {
            market.status = status.into();
        }
    }

    /// Sets the available-to-bet balance.
    pub fn set_available_to_bet(&self, value: Decimal) {
        self.venue().book().available = value;
    }
}

impl BetfairState {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> i64 {
        self.config.clock.now_unix()
    }

    fn login(&self, request: &Recorded, certificate: bool) -> Reply {
        let form = parse_params(&String::from_utf8_lossy(&request.body));
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let status = if request.header("x-application") != Some(self.config.app_key.as_str()) {
            "FORBIDDEN"
        } else if field("username") != Some(self.config.username.as_str())
            || field("password") != Some(self.config.password.as_str())
        {
            "INVALID_USERNAME_OR_PASSWORD"
        } else {
            "SUCCESS"
        };
        let token = (status == "SUCCESS").then(|| {
            let mut book = self.book();
            book.logins += 1;
            let token = format!("emulated-session-{:04}-{}", book.logins, self.now());
            book.sessions.insert(token.clone(), self.now());
            token
        });
        let body = if certificate {
            json!({"sessionToken": token, "loginStatus": status})
        } else {
            let failed = status != "SUCCESS";
            json!({"token": token.unwrap_or_default(), "product": self.config.app_key,
                   "status": if failed { "FAIL" } else { "SUCCESS" },
                   "error": if failed { status } else { "" }})
        };
        json_reply(StatusCode::OK, &body)
    }

    /// `true` when `token` names a session younger than the TTL.
    fn live(&self, book: &Book, token: &str) -> bool {
        book.sessions
            .get(token)
            .is_some_and(|since| self.now() - since < self.config.session_ttl_secs)
    }

    fn keep_alive(&self, request: &Recorded) -> Reply {
        let token = request
            .header("x-authentication")
            .unwrap_or_default()
            .to_owned();
        let mut book = self.book();
        let ok = request.header("x-application") == Some(self.config.app_key.as_str())
            && self.live(&book, &token);
        if ok {
            book.sessions.insert(token.clone(), self.now());
        }
        let (status, error) = if ok {
            ("SUCCESS", "")
        } else {
            ("FAIL", "NO_SESSION")
        };
        json_reply(
            StatusCode::OK,
            &json!({"token": token, "product": self.config.app_key, "status": status, "error": error}),
        )
    }

    /// The fault a betting call without a valid app key and session gets, if any.
    fn refusal(&self, request: &Recorded) -> Option<Reply> {
        let code = match (
            request.header("x-application"),
            request.header("x-authentication"),
        ) {
            (None | Some(""), _) => "NO_APP_KEY",
            (Some(key), _) if key != self.config.app_key => "INVALID_APP_KEY",
            (_, None | Some("")) => "NO_SESSION",
            (_, Some(token)) if !self.live(&self.book(), token) => "INVALID_SESSION_INFORMATION",
            _ => return None,
        };
        Some(fault(code, ""))
    }
}
