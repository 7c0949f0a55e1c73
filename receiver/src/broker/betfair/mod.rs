//! `betfair`: the Betfair Exchange over API-NG's REST betting API, the venue the BACK/LAY +
//! stake alert format was written for.
//!
//! An order is one LIMIT bet: symbol `MARKET_ID:SELECTION_ID` (from `[symbols]`), buy → `BACK`,
//! sell → `LAY`, quantity → stake (`size`), `limit_price` or else the alert's reference `price`
//! → odds, persistence `LAPSE`. Odds off the price ladder ([`ladder`]) are refused before
//! anything is sent. `POST {base_url}/placeOrders/` with `X-Application`, `X-Authentication`
//! (the [`session`]) and a JSON body ([`wire`]).
//!
//! Idempotency. Betfair dedupes a `customerRef` for 60 seconds only, so it cannot be the
//! guarantee. The client order id's ≤32-character form is sent as `customerRef` and as the
//! instruction's `customerOrderRef`, which stays on the bet; before every send the bet is looked
//! up with `listCurrentOrders` by `customerOrderRefs`, and a bet that is already there is
//! returned, never placed again. After a send whose outcome is unknown (timeout, 5xx, matcher
//! timeout) it is looked up again; if Betfair does not have it, the call fails as transient and
//! the retry looks once more before it sends.
//!
//! A token Betfair refuses (`INVALID_SESSION_INFORMATION`, `NO_SESSION`) triggers one fresh login
//! and one retry of the call: the refused call was not acted on.

pub mod ladder;
pub mod session;
mod wire;

use std::fmt;
use std::sync::Arc;

use alertgate_shared::{Clock, Secret};
use reqwest::StatusCode;

use self::session::{Credentials, Session};
use self::wire::{Bet, CurrentOrderSummaryReport, Fault, Meaning, PlaceExecutionReport};
use super::config::BetfairConfig;
use super::http::{
    base_url, build_client, excerpt, retry_after, send, venue_client_id, Answer, SendFailure,
};
use super::{Broker, BrokerBuildError, BrokerError, BrokerFuture, Placement};
use crate::order::{OrderRequest, OrderType, Side, TimeInForce};

/// Betfair's limit on `customerRef` and `customerOrderRef`.
pub const CUSTOMER_REF_MAX: usize = 32;

/// Betfair Exchange.
pub struct BetfairBroker {
    /// Betting API base URL without trailing slash.
    base_url: String,
    /// Login, keep-alive and the current token.
    session: Session,
    /// Client for betting calls, with the configured timeout.
    client: reqwest::Client,
}

impl fmt::Debug for BetfairBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BetfairBroker")
            .field("base_url", &self.base_url)
            .field("app_key", self.session.app_key())
            .finish_non_exhaustive()
    }
}

/// Why a betting call produced no usable answer.
enum CallFailure {
    /// A final error (login refused, session refused twice).
    Broker(BrokerError),
    /// No answer: never sent, or outcome unknown.
    Send(SendFailure),
}

/// What one `placeOrders` produced.
enum Sent {
    /// Betfair took the bet.
    Placed(Placement),
    /// `DUPLICATE_TRANSACTION`: a request with this `customerRef` was accepted in the last 60 s.
    Duplicate,
    /// It may or may not have been placed.
    Unknown(String),
}

fn transient(message: String) -> BrokerError {
    BrokerError::Transient {
        message,
        retry_after: None,
    }
}

fn invalid(message: String) -> BrokerError {
    BrokerError::Invalid { message }
}

/// `MARKET_ID:SELECTION_ID` → `("1.109850906", 237486)`.
pub fn parse_symbol(symbol: &str) -> Result<(&str, u64), BrokerError> {
    let wrong = || {
        invalid(format!(
            "Betfair symbol {symbol:?} is not MARKET_ID:SELECTION_ID (e.g. \"1.109850906:237486\"): \
             map the alert's symbol to it in [symbols]"
        ))
    };
    let (market, selection) = symbol.split_once(':').ok_or_else(wrong)?;
    let market_ok = market.split_once('.').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
    });
    let selection = selection.parse::<u64>().ok().filter(|_| market_ok);
    selection.map(|s| (market, s)).ok_or_else(wrong)
}

impl BetfairBroker {
    /// Resolves the credentials, loads the client certificate when configured, and builds the
    /// clients. No network call is made.
    pub fn from_config(
        config: &BetfairConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BrokerBuildError> {
        let secret = |key: &'static str, r: &alertgate_shared::SecretRef| {
            r.resolve()
                .map_err(|source| BrokerBuildError::Secret { key, source })
        };
        let credentials = Credentials {
            app_key: secret("betfair.app_key", &config.app_key)?,
            username: secret("betfair.username", &config.username)?,
            password: secret("betfair.password", &config.password)?,
        };
        let identity_url = base_url("betfair.identity_url", config.identity_url())?;
        let (identity_client, certificate) = match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => (identity_client(cert, key, config.timeout_ms)?, true),
            (None, None) => (build_client("betfair", config.timeout_ms)?, false),
            _ => {
                return Err(BrokerBuildError::Invalid {
                    key: "betfair",
                    message: "set both cert_file and key_file (certificate login) or neither \
                              (interactive login)"
                        .into(),
                })
            }
        };
        Ok(Self {
            base_url: base_url("betfair.base_url", &config.base_url)?,
            session: Session::new(
                identity_url,
                credentials,
                identity_client,
                certificate,
                clock,
            ),
            client: build_client("betfair", config.timeout_ms)?,
        })
    }

    async fn place_inner(&self, order: &OrderRequest) -> Result<Placement, BrokerError> {
        let reference = venue_client_id(&order.client_order_id, CUSTOMER_REF_MAX);
        let bet = bet_of(order, &reference)?;
        // Lookup first: see the module docs for why this is the idempotency guarantee.
        if let Some(existing) = self.lookup(&bet).await? {
            return Ok(existing);
        }
        match self.send_bet(&bet).await? {
            Sent::Placed(placement) => Ok(placement),
            Sent::Duplicate => match self.lookup(&bet).await? {
                Some(existing) => Ok(existing),
                None => Err(transient(format!(
                    "Betfair reports customerRef {reference} as a duplicate but cannot list the bet yet"
                ))),
            },
            Sent::Unknown(why) => match self.lookup(&bet).await {
                Ok(Some(existing)) => Ok(existing),
                Ok(None) => Err(transient(format!(
                    "Betfair: {why}; the bet is not there, it will be looked up again before any resend"
                ))),
                Err(e) => Err(transient(format!(
                    "Betfair: {why}; looking the bet up failed too ({e})"
                ))),
            },
        }
    }

    /// `POST {base_url}/{operation}/` with the session, logging in again once if Betfair
    /// refuses the token.
    async fn call(&self, operation: &str, body: &str) -> Result<Answer, CallFailure> {
        let mut relogged = false;
        loop {
            let token = self.session.token().await.map_err(CallFailure::Broker)?;
            let request = self
                .client
                .post(format!("{}/{operation}/", self.base_url))
                .header("X-Application", self.session.app_key().expose())
                .header("X-Authentication", token.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .body(body.to_owned());
            let answer = send(request).await.map_err(CallFailure::Send)?;
            match Fault::parse(&answer.body) {
                Some(fault) if fault.is_session() && !relogged => {
                    self.session.invalidate(&token).await;
                    relogged = true;
                }
                Some(fault) if fault.is_session() => {
                    return Err(CallFailure::Broker(BrokerError::Rejected {
                        message: format!(
                            "Betfair refused a fresh session ({}): check that the app key belongs to this account",
                            fault.code
                        ),
                    }))
                }
                _ => return Ok(answer),
            }
        }
    }

    /// `placeOrders`.
    async fn send_bet(&self, bet: &Bet<'_>) -> Result<Sent, BrokerError> {
        let answer = match self.call("placeOrders", &bet.place_orders_body()).await {
            Ok(answer) => answer,
            Err(CallFailure::Broker(e)) => return Err(e),
            Err(CallFailure::Send(SendFailure::NotSent(why))) => {
                return Err(transient(format!("Betfair: {why}")))
            }
            Err(CallFailure::Send(SendFailure::Unknown(why))) => return Ok(Sent::Unknown(why)),
        };
        if !answer.status.is_success() {
            return match classify(&answer) {
                Failed::Error(e) => Err(e),
                Failed::Unknown(why) => Ok(Sent::Unknown(why)),
            };
        }
        let report: PlaceExecutionReport = match serde_json::from_slice(&answer.body) {
            Ok(report) => report,
            // Betfair answered 200 with something else: it may have placed the bet.
            Err(e) => {
                return Ok(Sent::Unknown(format!(
                    "unreadable placeOrders answer ({e})"
                )))
            }
        };
        let mut reports = report.instruction_reports;
        match report.status.as_str() {
            "SUCCESS" => match reports.pop() {
                Some(first) if first.status == "SUCCESS" => {
                    Ok(Sent::Placed(first.placement(bet.size)))
                }
                _ => Ok(Sent::Unknown(
                    "placeOrders answered SUCCESS without the bet's report".into(),
                )),
            },
            "TIMEOUT" => Ok(Sent::Unknown("placeOrders timed out at Betfair".into())),
            _ => {
                // FAILURE / PROCESSED_WITH_ERRORS: the instruction's code says more than the
                // report's BET_ACTION_ERROR / PROCESSED_WITH_ERRORS / ERROR_IN_ORDER.
                let instruction = reports
                    .pop()
                    .and_then(|r| r.error_code)
                    .filter(|c| c != "ERROR_IN_ORDER");
                let report_code = report.error_code.unwrap_or_else(|| report.status.clone());
                let code = match report_code.as_str() {
                    "BET_ACTION_ERROR" | "PROCESSED_WITH_ERRORS" => {
                        instruction.unwrap_or(report_code)
                    }
                    _ => report_code,
                };
                match wire::meaning(&code) {
                    Meaning::Duplicate => Ok(Sent::Duplicate),
                    Meaning::Unknown => Ok(Sent::Unknown(format!("Betfair answered {code}"))),
                    Meaning::Busy => Err(transient(format!(
                        "Betfair is unavailable right now ({code})"
                    ))),
                    Meaning::Refused(message) => Err(BrokerError::Rejected { message }),
                }
            }
        }
    }

    /// For a `check-symbols` style helper, never called at order time (markets are mapped
    /// explicitly in `[symbols]`): `listMarketCatalogue` for the symbol's market, answering
    /// "market name / runner name", or why the mapping is wrong.
    pub async fn describe_symbol(&self, symbol: &str) -> Result<String, BrokerError> {
        let (market_id, selection_id) = parse_symbol(symbol)?;
        let body = serde_json::json!({
            "filter": {"marketIds": [market_id]},
            "marketProjection": ["RUNNER_DESCRIPTION"],
            "maxResults": 1,
        })
        .to_string();
        let answer = match self.call("listMarketCatalogue", &body).await {
            Ok(answer) => answer,
            Err(CallFailure::Broker(e)) => return Err(e),
            Err(CallFailure::Send(f)) => {
                return Err(transient(format!(
                    "Betfair listMarketCatalogue: {}",
                    f.message()
                )))
            }
        };
        if !answer.status.is_success() {
            return Err(match classify(&answer) {
                Failed::Error(e) => e,
                Failed::Unknown(why) => transient(format!("Betfair listMarketCatalogue: {why}")),
            });
        }
        let markets: Vec<wire::MarketCatalogue> =
            serde_json::from_slice(&answer.body).map_err(|e| {
                transient(format!(
                    "Betfair listMarketCatalogue answer is unreadable ({e})"
                ))
            })?;
        let market = markets
            .into_iter()
            .find(|m| m.market_id == market_id)
            .ok_or_else(|| BrokerError::Rejected {
                message: format!(
                    "Betfair lists no market {market_id} (closed, settled or mistyped)"
                ),
            })?;
        let runner = market
            .runners
            .iter()
            .find(|r| r.selection_id == selection_id)
            .ok_or_else(|| BrokerError::Rejected {
                message: format!(
                    "market {market_id} ({}) has no selection {selection_id}; its runners: {}",
                    market.market_name,
                    market
                        .runners
                        .iter()
                        .map(|r| format!("{} = {}", r.selection_id, r.runner_name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        Ok(format!("{} / {}", market.market_name, runner.runner_name))
    }

    /// `listCurrentOrders` by `customerOrderRefs`: the bet, if Betfair has it.
    async fn lookup(&self, bet: &Bet<'_>) -> Result<Option<Placement>, BrokerError> {
        let answer = match self.call("listCurrentOrders", &bet.lookup_body()).await {
            Ok(answer) => answer,
            Err(CallFailure::Broker(e)) => return Err(e),
            Err(CallFailure::Send(f)) => {
                return Err(transient(format!("Betfair bet lookup: {}", f.message())))
            }
        };
        if !answer.status.is_success() {
            return Err(match classify(&answer) {
                Failed::Error(e) => e,
                Failed::Unknown(why) => transient(format!("Betfair bet lookup: {why}")),
            });
        }
        let report: CurrentOrderSummaryReport =
            serde_json::from_slice(&answer.body).map_err(|e| {
                transient(format!(
                    "Betfair listCurrentOrders answer is unreadable ({e}): {}",
                    excerpt(&answer.body)
                ))
            })?;
        Ok(report
            .current_orders
            .into_iter()
            .find(|o| o.customer_order_ref.as_deref() == Some(bet.reference))
            .map(wire::CurrentOrderSummary::placement))
    }
}

/// A non-2xx betting answer, sorted by what the caller does next.
enum Failed {
    /// Return this error.
    Error(BrokerError),
    /// Betfair may have acted on the request (5xx, its internal timeout): look the bet up.
    Unknown(String),
}

/// Maps a non-2xx betting answer: the fault's `errorCode` first, then the HTTP status.
fn classify(answer: &Answer) -> Failed {
    let fault = Fault::parse(&answer.body);
    let status = answer.status;
    let described = fault.as_ref().map_or_else(
        || format!("{status}: {}", excerpt(&answer.body)),
        Fault::describe,
    );
    let code = fault.as_ref().map(|f| f.code.as_str()).unwrap_or_default();
    match code {
        "TOO_MANY_REQUESTS" | "SERVICE_BUSY" => Failed::Error(BrokerError::Transient {
            message: format!("Betfair is busy ({described})"),
            retry_after: retry_after(&answer.headers),
        }),
        "INVALID_APP_KEY" | "NO_APP_KEY" => Failed::Error(BrokerError::Rejected {
            message: format!(
                "Betfair refused the application key ({described}): check betfair.app_key"
            ),
        }),
        "TIMEOUT_ERROR" | "UNEXPECTED_ERROR" => {
            Failed::Unknown(format!("Betfair answered {described}"))
        }
        _ if status == StatusCode::TOO_MANY_REQUESTS => Failed::Error(BrokerError::Transient {
            message: format!("Betfair answered {described}"),
            retry_after: retry_after(&answer.headers),
        }),
        _ if status.is_server_error() => Failed::Unknown(format!("Betfair answered {described}")),
        _ => Failed::Error(BrokerError::Rejected {
            message: format!("Betfair refused the request ({described})"),
        }),
    }
}

/// The bet an order becomes, or why it cannot be one (outcome `invalid`).
fn bet_of<'a>(order: &'a OrderRequest, reference: &'a str) -> Result<Bet<'a>, BrokerError> {
    let (market_id, selection_id) = parse_symbol(&order.symbol)?;
    if matches!(order.order_type, OrderType::Stop | OrderType::StopLimit) {
        return Err(invalid(format!(
            "Betfair takes LIMIT bets only: a {} order cannot be placed",
            order.order_type.as_str()
        )));
    }
    if matches!(order.tif, TimeInForce::Ioc | TimeInForce::Fok) {
        return Err(invalid(format!(
            "Betfair bets here persist until matched or the market turns in-play (LAPSE): tif {} is not supported",
            order.tif.as_str()
        )));
    }
    let price = order
        .limit_price
        .or(order.reference_price)
        .ok_or_else(|| {
            invalid("a Betfair bet needs odds: set the alert's price (or limit_price)".into())
        })?
        .get();
    if let Some(message) = ladder::check(price) {
        return Err(invalid(message));
    }
    let size = order.quantity.get();
    if size.normalize().scale() > 2 {
        return Err(invalid(format!(
            "stake {} has more than two decimals: Betfair stakes are in the account's currency",
            size.normalize()
        )));
    }
    Ok(Bet {
        market_id,
        selection_id,
        side: match order.side {
            Side::Buy => "BACK",
            Side::Sell => "LAY",
        },
        size,
        price,
        reference,
    })
}

/// The client for the identity host, presenting the certificate in `cert`/`key` (PEM).
fn identity_client(
    cert: &std::path::Path,
    key: &std::path::Path,
    timeout_ms: u64,
) -> Result<reqwest::Client, BrokerBuildError> {
    let read = |key_name: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| BrokerBuildError::Invalid {
            key: key_name,
            message: format!("cannot read {}: {e}", path.display()),
        })
    };
    let mut pem = read("betfair.cert_file", cert)?;
    pem.push(b'\n');
    pem.extend_from_slice(&read("betfair.key_file", key)?);
    let pem = Secret::new(String::from_utf8_lossy(&pem).into_owned());
    let identity = reqwest::Identity::from_pem(pem.expose().as_bytes()).map_err(|_| {
        // reqwest's message could quote the PEM; say only which files.
        BrokerBuildError::Invalid {
            key: "betfair.cert_file",
            message: format!(
                "{} and {} are not a PEM certificate and its private key",
                cert.display(),
                key.display()
            ),
        }
    })?;
    let timeout = std::time::Duration::from_millis(timeout_ms.max(1));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .identity(identity)
        .user_agent(concat!("alertgate-receiver/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BrokerBuildError::Client {
            kind: "betfair",
            message: e.to_string(),
        })
}

impl Broker for BetfairBroker {
    fn name(&self) -> &'static str {
        "betfair"
    }

    /// Betfair has no perpetuals (or any derivatives to confuse with spot): a `.P` ticker would
    /// need a `[symbols]` entry to `MARKET_ID:SELECTION_ID` anyway, and without one the symbol
    /// is refused as not of that form.
    fn spot_only(&self) -> bool {
        true
    }

    fn max_client_id_len(&self) -> usize {
        CUSTOMER_REF_MAX
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.place_inner(order))
    }
}
