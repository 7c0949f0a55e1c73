//! Betfair's JSON on the wire: the `placeOrders` and `listCurrentOrders` bodies, the answers
//! (`PlaceExecutionReport`, `CurrentOrderSummaryReport`, the identity hosts' login answers), the
//! REST fault (`{"faultcode","faultstring","detail":{"APINGException":{"errorCode",...}}}`), and
//! what each error code means for the user.
//!
//! Betfair's sizes and prices are JSON numbers (`Double`). They are written here from the
//! decimals' plain text, never through a float, so `2.52` goes out as `2.52`.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use crate::order::OrderStatus;
use crate::order::Placement;

/// `BACK` or `LAY`.
pub(crate) type BetSide = &'static str;

/// One LIMIT bet, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bet<'a> {
    /// `1.109850906`.
    pub market_id: &'a str,
    /// The runner.
    pub selection_id: u64,
    /// `BACK` (buy) or `LAY` (sell).
    pub side: BetSide,
    /// Stake in the account's currency.
    pub size: Decimal,
    /// Decimal odds, on the ladder.
    pub price: Decimal,
    /// `customerRef` and `customerOrderRef` (the client order id's ≤32-character form).
    pub reference: &'a str,
}

fn text(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

impl Bet<'_> {
    /// The `placeOrders` body: one LIMIT instruction with persistence LAPSE (unmatched stake is
    /// cancelled when the market turns in-play). The reference goes twice: `customerRef`
    /// (Betfair's 60-second dedupe of the request) and the instruction's `customerOrderRef`, the
    /// one that stays on the bet so `listCurrentOrders` can find it later.
    pub(crate) fn place_orders_body(&self) -> String {
        format!(
            concat!(
                r#"{{"marketId":{market},"instructions":[{{"selectionId":{selection},"#,
                r#""side":"{side}","orderType":"LIMIT","limitOrder":{{"size":{size},"#,
                r#""price":{price},"persistenceType":"LAPSE"}},"customerOrderRef":{reference}}}],"#,
                r#""customerRef":{reference}}}"#
            ),
            market = text(self.market_id),
            selection = self.selection_id,
            side = self.side,
            size = self.size.normalize(),
            price = self.price.normalize(),
            reference = text(self.reference),
        )
    }

    /// The `listCurrentOrders` body that finds this bet by its `customerOrderRef`.
    pub(crate) fn lookup_body(&self) -> String {
        serde_json::json!({
            "customerOrderRefs": [self.reference],
            "marketIds": [self.market_id],
            "orderProjection": "ALL",
        })
        .to_string()
    }
}

/// A JSON number as a decimal (Betfair sends `Double`s; their shortest text is the value meant).
fn decimal(n: &Option<serde_json::Number>) -> Option<Decimal> {
    let text = n.as_ref()?.to_string();
    text.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// What a bet's state means as a placement: `EXECUTION_COMPLETE` fully matched → filled, partly
/// matched (the rest lapsed or cancelled) or unmatched → cancelled with what matched;
/// `EXECUTABLE` → placed, or partially filled once something matched.
fn placement(
    bet_id: Option<String>,
    status: Option<&str>,
    requested: Decimal,
    matched: Decimal,
    average: Option<Decimal>,
) -> Placement {
    let status = match status {
        Some("EXECUTION_COMPLETE") if matched >= requested && matched > Decimal::ZERO => {
            OrderStatus::Filled
        }
        Some("EXECUTION_COMPLETE" | "EXPIRED") => OrderStatus::Cancelled,
        _ if matched > Decimal::ZERO => OrderStatus::PartiallyFilled,
        // EXECUTABLE, PENDING (async placement).
        _ => OrderStatus::Placed,
    };
    Placement {
        fee: None,
        venue_order_id: bet_id,
        status,
        filled_quantity: matched.normalize(),
        average_price: average
            .filter(|_| matched > Decimal::ZERO)
            .map(|d| d.normalize()),
    }
}

/// `PlaceExecutionReport`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlaceExecutionReport {
    /// `SUCCESS`, `FAILURE`, `PROCESSED_WITH_ERRORS`, `TIMEOUT`.
    pub status: String,
    /// An `ExecutionReportErrorCode`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// One per instruction.
    #[serde(default)]
    pub instruction_reports: Vec<PlaceInstructionReport>,
}

/// `PlaceInstructionReport`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlaceInstructionReport {
    /// `SUCCESS`, `FAILURE`, `TIMEOUT`.
    pub status: String,
    /// An `InstructionReportErrorCode`.
    #[serde(default)]
    pub error_code: Option<String>,
    /// `PENDING`, `EXECUTION_COMPLETE`, `EXECUTABLE`, `EXPIRED`.
    #[serde(default)]
    pub order_status: Option<String>,
    #[serde(default)]
    bet_id: Option<String>,
    #[serde(default)]
    average_price_matched: Option<serde_json::Number>,
    #[serde(default)]
    size_matched: Option<serde_json::Number>,
}

impl PlaceInstructionReport {
    /// The bet as a placement, given the stake that was asked for.
    pub(crate) fn placement(self, requested: Decimal) -> Placement {
        let matched = decimal(&self.size_matched).unwrap_or(Decimal::ZERO);
        placement(
            self.bet_id,
            self.order_status.as_deref(),
            requested,
            matched,
            decimal(&self.average_price_matched),
        )
    }
}

/// `CurrentOrderSummaryReport`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CurrentOrderSummaryReport {
    #[serde(default)]
    pub current_orders: Vec<CurrentOrderSummary>,
}

/// `CurrentOrderSummary`: the fields that matter here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CurrentOrderSummary {
    bet_id: String,
    /// `EXECUTABLE`, `EXECUTION_COMPLETE`.
    status: String,
    #[serde(default)]
    price_size: Option<PriceSize>,
    #[serde(default)]
    average_price_matched: Option<serde_json::Number>,
    #[serde(default)]
    size_matched: Option<serde_json::Number>,
    /// The reference the bet was placed with.
    #[serde(default)]
    pub customer_order_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PriceSize {
    #[serde(default)]
    size: Option<serde_json::Number>,
}

impl CurrentOrderSummary {
    /// The bet as a placement.
    pub(crate) fn placement(self) -> Placement {
        let matched = decimal(&self.size_matched).unwrap_or(Decimal::ZERO);
        let requested = self
            .price_size
            .as_ref()
            .and_then(|ps| decimal(&ps.size))
            .unwrap_or(matched);
        placement(
            Some(self.bet_id),
            Some(&self.status),
            requested,
            matched,
            decimal(&self.average_price_matched),
        )
    }
}

/// The `APINGException` of a REST fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    /// `INVALID_SESSION_INFORMATION`, `INVALID_APP_KEY`, ...
    pub code: String,
    /// `errorDetails`, when Betfair gave any.
    pub details: String,
}

impl Fault {
    /// Reads a fault body: `{"detail":{"APINGException":{"errorCode",..}}}`, or the JSON-RPC
    /// style `{"error":{"data":{"APINGException":..}}}` some gateways answer with.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let json: Value = serde_json::from_slice(body).ok()?;
        let exception = json
            .pointer("/detail/APINGException")
            .or_else(|| json.pointer("/error/data/APINGException"))?;
        Some(Self {
            code: exception.get("errorCode")?.as_str()?.to_owned(),
            details: exception
                .get("errorDetails")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// The session token is missing, invalid or expired: log in again.
    pub(crate) fn is_session(&self) -> bool {
        matches!(
            self.code.as_str(),
            "INVALID_SESSION_INFORMATION" | "NO_SESSION"
        )
    }

    /// `CODE` or `CODE: details`.
    pub(crate) fn describe(&self) -> String {
        if self.details.is_empty() {
            self.code.clone()
        } else {
            format!("{}: {}", self.code, self.details)
        }
    }
}

/// What the receiver does with an error code from an execution or instruction report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Meaning {
    /// The bet will not be placed as written: outcome `failed` with this reason.
    Refused(String),
    /// Betfair may or may not have acted (matcher timeout): look the bet up.
    Unknown,
    /// A request with this `customerRef` was already accepted in the last 60 s: look it up.
    Duplicate,
    /// Betfair is unavailable right now: try again later.
    Busy,
}

/// The user-facing reason for an `ExecutionReportErrorCode` or `InstructionReportErrorCode`.
pub(crate) fn meaning(code: &str) -> Meaning {
    let refused = |why: &str| Meaning::Refused(format!("{why} ({code})"));
    match code {
        "DUPLICATE_TRANSACTION" => Meaning::Duplicate,
        "ERROR_IN_MATCHER" | "BET_IN_PROGRESS" | "TIMEOUT" => Meaning::Unknown,
        "SERVICE_UNAVAILABLE" | "REGULATOR_IS_NOT_AVAILABLE" => Meaning::Busy,
        "INSUFFICIENT_FUNDS" => refused(
            "insufficient funds at Betfair: the stake (or a lay's liability) exceeds the \
             available-to-bet balance or the exposure limit",
        ),
        "MARKET_SUSPENDED" => refused("the Betfair market is suspended"),
        "MARKET_NOT_OPEN_FOR_BETTING" => refused(
            "the Betfair market is not open for betting (not yet active, suspended or closed)",
        ),
        "INVALID_ODDS" => refused("Betfair refused the odds: they are not on its price ladder"),
        "INVALID_BET_SIZE" => refused(
            "Betfair refused the stake: below the minimum bet for the account's currency, or \
             more than two decimals",
        ),
        "BET_TAKEN_OR_LAPSED" => refused(
            "the bet lapsed as it was placed (the market turned in-play or had an admin event)",
        ),
        "INVALID_MARKET_ID" => refused(
            "Betfair has no such market: check the [symbols] mapping to MARKET_ID:SELECTION_ID",
        ),
        "INVALID_RUNNER" => refused(
            "the selection is not a runner of that market: check the [symbols] mapping to \
             MARKET_ID:SELECTION_ID",
        ),
        "RUNNER_REMOVED" => refused("the runner has been removed from the event"),
        "LOSS_LIMIT_EXCEEDED" => {
            refused("the bet would exceed the account's self-imposed loss limit")
        }
        "INVALID_ACCOUNT_STATE" => refused(
            "Betfair refused the bet because of the account's status (suspended or inactive)",
        ),
        "INVALID_WALLET_STATUS" => {
            refused("Betfair refused the bet because of the wallet's status")
        }
        "PERMISSION_DENIED" => refused(
            "Betfair does not allow this bet: a delayed application key, or a restricted \
             jurisdiction",
        ),
        "REJECTED_BY_REGULATOR" | "NO_CHASING" => refused("the regulator rejected the bet"),
        "INVALID_PERSISTENCE_TYPE" => refused("the market does not take LAPSE bets"),
        "INVALID_BACK_LAY_COMBINATION" => {
            refused("the bet would match the account's own opposite bet on this runner")
        }
        "INVALID_CUSTOMER_ORDER_REF" => refused("Betfair refused the customerOrderRef"),
        "ERROR_IN_ORDER" => refused("Betfair refused the order"),
        other => Meaning::Refused(format!("Betfair refused the bet ({other})")),
    }
}

/// `MarketCatalogue` with `RUNNER_DESCRIPTION`: the fields the symbol check reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MarketCatalogue {
    pub market_id: String,
    #[serde(default)]
    pub market_name: String,
    #[serde(default)]
    pub runners: Vec<RunnerCatalog>,
}

/// `RunnerCatalog`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunnerCatalog {
    pub selection_id: u64,
    #[serde(default)]
    pub runner_name: String,
}

/// `certlogin`'s answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CertLogin {
    #[serde(default)]
    pub session_token: Option<String>,
    pub login_status: String,
}

/// `login` and `keepAlive`'s answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Identity {
    #[serde(default)]
    pub token: Option<String>,
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_writes_decimals_as_plain_json_numbers() {
        let bet = Bet {
            market_id: "1.109850906",
            selection_id: 237486,
            side: "LAY",
            size: "2.50".parse().unwrap(),
            price: "1000".parse().unwrap(),
            reference: "msg_01-0",
        };
        let body = bet.place_orders_body();
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["instructions"][0]["limitOrder"]["price"], 1000);
        assert!(body.contains(r#""size":2.5,"#), "{body}");
        assert_eq!(json["customerRef"], "msg_01-0");
        assert_eq!(json["instructions"][0]["customerOrderRef"], "msg_01-0");
    }

    #[test]
    fn bet_states_map_onto_order_statuses() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let p = |status, matched| placement(None, Some(status), d("2"), d(matched), Some(d("2.5")));
        assert_eq!(p("EXECUTION_COMPLETE", "2").status, OrderStatus::Filled);
        assert_eq!(p("EXECUTION_COMPLETE", "1").status, OrderStatus::Cancelled);
        assert_eq!(p("EXECUTION_COMPLETE", "0").average_price, None);
        assert_eq!(p("EXECUTABLE", "0").status, OrderStatus::Placed);
        assert_eq!(p("EXECUTABLE", "1").status, OrderStatus::PartiallyFilled);
        assert_eq!(p("PENDING", "0").status, OrderStatus::Placed);
    }

    #[test]
    fn a_rest_fault_is_read_with_its_code() {
        let fault = Fault::parse(br#"{"detail":{"exceptionname":"APINGException","APINGException":{"errorDetails":"","errorCode":"INVALID_SESSION_INFORMATION","requestUUID":"x"}},"faultcode":"Client","faultstring":"ANGX-0003"}"#).unwrap();
        assert!(fault.is_session());
        assert_eq!(fault.describe(), "INVALID_SESSION_INFORMATION");
        assert_eq!(Fault::parse(b"<html>"), None);
    }
}
