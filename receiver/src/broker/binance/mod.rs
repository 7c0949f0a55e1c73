//! `binance`: Binance Spot over its REST API (the Spot testnet by default).
//!
//! One order is `POST /api/v3/order` with every parameter in the signed query string
//! ([`sign`]), `X-MBX-APIKEY`, `timestamp` from the injected clock and `recvWindow`. Parameters are
//! rounded to the symbol's exchange filters first ([`filters`], cached per symbol for an hour).
//!
//! Idempotency. Binance refuses a reused `newClientOrderId` only while the first order is still
//! open; once it has filled, the same id places a second order. So before every send the order is
//! looked up with `GET /api/v3/order?origClientOrderId=` (one extra request, weight 4): an order
//! that is already there is returned, never sent again. That single rule covers executor retries,
//! duplicate deliveries and restarts after a crash, where no memory of earlier attempts survives.
//! After a send whose outcome is unknown (5xx, `-1006`/`-1007`, timeout), the order is looked up
//! again; if Binance does not have it, the call fails as transient and the executor's retry looks
//! once more before it sends: an order is never resent blind. `modify` is a cancel-replace
//! under a derived client id, looked up the same way ([`replace`]); cancels go by Binance's
//! `orderId` when it is known.

mod account;
pub mod filters;
pub mod replace;
pub mod sign;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use alertgate_shared::{Clock, Secret, SigningKey};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde::Deserialize;

use self::filters::SymbolRules;
use self::sign::{query_string, RequestSigner};
use super::config::BinanceConfig;
use super::http::{
    base_url, build_client, excerpt, retry_after, send, venue_client_id, Answer, SendFailure,
};
use super::Positions;
use super::{Broker, BrokerBuildError, BrokerError, BrokerFuture, LotRule, OrderStatus, Placement};
use crate::order::OrderRequest;

/// Binance's limit on `newClientOrderId` (`^[a-zA-Z0-9-_]{1,36}$`).
pub const CLIENT_ORDER_ID_MAX: usize = 36;
/// How long a symbol's exchange filters are trusted before they are fetched again.
const RULES_TTL_SECS: i64 = 3600;
/// Binance's largest `recvWindow`.
const MAX_RECV_WINDOW_MS: u32 = 60_000;

/// Binance's error body.
#[derive(Debug, Deserialize)]
struct ApiError {
    code: i64,
    #[serde(default)]
    msg: String,
}

/// The fields of an order (new-order RESULT or query answer) that matter here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BinanceOrder {
    order_id: i64,
    status: String,
    #[serde(default)]
    executed_qty: Option<String>,
    #[serde(default)]
    cummulative_quote_qty: Option<String>,
}

impl BinanceOrder {
    fn placement(self) -> Placement {
        let parse = |s: Option<String>| {
            s.and_then(|s| s.parse::<Decimal>().ok())
                .unwrap_or(Decimal::ZERO)
        };
        let filled = parse(self.executed_qty);
        let quote = parse(self.cummulative_quote_qty);
        let status = match self.status.as_str() {
            "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
            "FILLED" => OrderStatus::Filled,
            "CANCELED" | "EXPIRED" | "EXPIRED_IN_MATCH" | "REJECTED" | "PENDING_CANCEL" => {
                OrderStatus::Cancelled
            }
            // NEW, PENDING_NEW.
            _ => OrderStatus::Placed,
        };
        // cummulativeQuoteQty can be negative for very old orders: no average then.
        let average_price =
            (filled > Decimal::ZERO && quote > Decimal::ZERO).then(|| (quote / filled).normalize());
        Placement {
            venue_order_id: Some(self.order_id.to_string()),
            status,
            filled_quantity: filled.normalize(),
            average_price,
        }
    }
}

/// What one order send produced.
enum Sent {
    /// Binance answered with the order.
    Placed(Placement),
    /// `-2010 Duplicate order sent.`: the id is already on the book.
    Duplicate,
    /// The outcome is unknown: it may or may not have been placed.
    Unknown(String),
}

/// Binance Spot.
pub struct BinanceBroker {
    /// REST base URL without trailing slash.
    base_url: String,
    /// `X-MBX-APIKEY`.
    api_key: Secret,
    /// HMAC secret or Ed25519 key.
    signer: RequestSigner,
    /// `recvWindow` sent with every signed request.
    recv_window_ms: u32,
    /// Shared client with the configured timeout.
    client: reqwest::Client,
    /// `timestamp` source, and the rules cache's age.
    clock: Arc<dyn Clock>,
    /// Exchange filters per symbol, with the unix second they were fetched.
    rules: Mutex<HashMap<String, (i64, Arc<SymbolRules>)>>,
}

impl fmt::Debug for BinanceBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceBroker")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("signer", &self.signer)
            .field("recv_window_ms", &self.recv_window_ms)
            .finish_non_exhaustive()
    }
}

/// The config key names of one Binance section, for messages that name what to change.
pub(crate) struct KeyNames {
    /// `binance`.
    pub section: &'static str,
    /// `binance.api_key`.
    pub api_key: &'static str,
    /// `binance.api_secret`.
    pub api_secret: &'static str,
    /// `binance.private_key`.
    pub private_key: &'static str,
    /// `binance.recv_window_ms`.
    pub recv_window_ms: &'static str,
}

const SPOT_KEYS: KeyNames = KeyNames {
    section: "binance",
    api_key: "binance.api_key",
    api_secret: "binance.api_secret",
    private_key: "binance.private_key",
    recv_window_ms: "binance.recv_window_ms",
};

/// Resolves a Binance section's `api_key` and exactly one of `api_secret` (HMAC) and
/// `private_key` (Ed25519), and checks `recv_window_ms`: what Spot and USDⓈ-M futures share.
pub(crate) fn credentials(
    names: &KeyNames,
    api_key: &alertgate_shared::SecretRef,
    api_secret: Option<&alertgate_shared::SecretRef>,
    private_key: Option<&alertgate_shared::SecretRef>,
    recv_window_ms: u32,
) -> Result<(Secret, RequestSigner), BrokerBuildError> {
    let api_key = api_key
        .resolve()
        .map_err(|source| BrokerBuildError::Secret {
            key: names.api_key,
            source,
        })?;
    let signer = match (api_secret, private_key) {
        (Some(secret), None) => {
            RequestSigner::Hmac(
                secret
                    .resolve()
                    .map_err(|source| BrokerBuildError::Secret {
                        key: names.api_secret,
                        source,
                    })?,
            )
        }
        (None, Some(key)) => RequestSigner::Ed25519(SigningKey::load(key).map_err(|source| {
            BrokerBuildError::Key {
                key: names.private_key,
                source,
            }
        })?),
        _ => {
            return Err(BrokerBuildError::Invalid {
                key: names.section,
                message: "set exactly one of api_secret (HMAC key) or private_key (Ed25519 key)"
                    .into(),
            })
        }
    };
    if recv_window_ms == 0 || recv_window_ms > MAX_RECV_WINDOW_MS {
        return Err(BrokerBuildError::Invalid {
            key: names.recv_window_ms,
            message: format!("must be between 1 and {MAX_RECV_WINDOW_MS} (Binance's maximum)"),
        });
    }
    Ok((api_key, signer))
}

impl BinanceBroker {
    /// Resolves the credentials (exactly one of `api_secret` and `private_key`) and builds the client.
    pub fn from_config(
        config: &BinanceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BrokerBuildError> {
        let (api_key, signer) = credentials(
            &SPOT_KEYS,
            &config.api_key,
            config.api_secret.as_ref(),
            config.private_key.as_ref(),
            config.recv_window_ms,
        )?;
        Ok(Self {
            base_url: base_url("binance.base_url", &config.base_url)?,
            api_key,
            signer,
            recv_window_ms: config.recv_window_ms,
            client: build_client("binance", config.timeout_ms)?,
            clock,
            rules: Mutex::new(HashMap::new()),
        })
    }

    async fn place_inner(&self, order: &OrderRequest) -> Result<Placement, BrokerError> {
        let client_order_id = venue_client_id(&order.client_order_id, self.max_client_id_len());
        // Lookup first: see the module docs for why this is the idempotency guarantee. It comes
        // before the filter checks too, so an order placed before the market closed or the
        // filters changed is still reported as placed, not as failed.
        if let Some(existing) = self.query(&order.symbol, &client_order_id).await? {
            return Ok(existing);
        }
        let rules = self.rules(&order.symbol).await?;
        let params = rules.order_params(order, &client_order_id)?;
        let sent = match self.send_order(params).await {
            // Binance's filters disagree with the cached ones: fetch them afresh next time.
            Err(e @ BrokerError::Invalid { .. }) => {
                self.lock_rules().remove(&order.symbol);
                return Err(e);
            }
            other => other?,
        };
        match sent {
            Sent::Placed(placement) => Ok(placement),
            Sent::Duplicate => match self.query(&order.symbol, &client_order_id).await? {
                Some(existing) => Ok(existing),
                None => Err(BrokerError::Transient {
                    message: format!("Binance reports {client_order_id} as a duplicate but cannot find it yet"),
                    retry_after: None,
                }),
            },
            Sent::Unknown(why) => match self.query(&order.symbol, &client_order_id).await {
                Ok(Some(existing)) => Ok(existing),
                Ok(None) => Err(BrokerError::Transient {
                    message: format!("Binance: {why}; the order is not there, it will be looked up again before any resend"),
                    retry_after: None,
                }),
                Err(e) => Err(BrokerError::Transient {
                    message: format!("Binance: {why}; looking the order up failed too ({e})"),
                    retry_after: None,
                }),
            },
        }
    }

    /// The signed query string for `params` at the clock's current time.
    fn signed_query(&self, mut params: Vec<(&'static str, String)>) -> String {
        params.push(("recvWindow", self.recv_window_ms.to_string()));
        params.push(("timestamp", self.clock.now_unix_ms().to_string()));
        self.signer.sign_query(&query_string(&params))
    }

    fn signed_request(
        &self,
        method: Method,
        path: &str,
        params: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}?{}", self.base_url, self.signed_query(params));
        self.client
            .request(method, url)
            .header("X-MBX-APIKEY", self.api_key.expose())
    }

    /// The symbol's filters, from the cache or `GET /api/v3/exchangeInfo?symbol=`.
    async fn rules(&self, symbol: &str) -> Result<Arc<SymbolRules>, BrokerError> {
        let now = self.clock.now_unix();
        if let Some((fetched, rules)) = self.lock_rules().get(symbol) {
            if now - fetched < RULES_TTL_SECS {
                return Ok(rules.clone());
            }
        }
        let url = format!(
            "{}/api/v3/exchangeInfo?{}",
            self.base_url,
            query_string(&[("symbol", symbol.to_owned())])
        );
        let answer =
            send(self.client.get(url))
                .await
                .map_err(|failure| BrokerError::Transient {
                    message: format!("Binance exchangeInfo: {}", failure.message()),
                    retry_after: None,
                })?;
        if !answer.status.is_success() {
            return Err(match error_of(&answer) {
                // Nothing was sent, so an unknown outcome here is simply transient.
                Classified::Final(e) => e,
                Classified::Unknown(why) | Classified::Duplicate(why) => BrokerError::Transient {
                    message: format!("Binance exchangeInfo: {why}"),
                    retry_after: None,
                },
            });
        }
        let info: serde_json::Value =
            serde_json::from_slice(&answer.body).map_err(|e| BrokerError::Transient {
                message: format!("Binance exchangeInfo is not JSON ({e})"),
                retry_after: None,
            })?;
        let rules = Arc::new(
            SymbolRules::from_exchange_info(&info, symbol).ok_or_else(|| {
                BrokerError::Rejected {
                    message: format!("Binance does not list the symbol {symbol}"),
                }
            })?,
        );
        self.lock_rules()
            .insert(symbol.to_owned(), (now, rules.clone()));
        Ok(rules)
    }

    fn lock_rules(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Arc<SymbolRules>)>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `POST /api/v3/order`.
    async fn send_order(&self, params: Vec<(&'static str, String)>) -> Result<Sent, BrokerError> {
        let answer = match send(self.signed_request(Method::POST, "/api/v3/order", params)).await {
            Ok(answer) => answer,
            Err(SendFailure::NotSent(why)) => {
                return Err(BrokerError::Transient {
                    message: format!("Binance: {why}"),
                    retry_after: None,
                })
            }
            Err(SendFailure::Unknown(why)) => return Ok(Sent::Unknown(why)),
        };
        if answer.status.is_success() {
            return parse_order(&answer).map(|o| Sent::Placed(o.placement()));
        }
        match error_of(&answer) {
            Classified::Final(e) => Err(e),
            Classified::Duplicate(_) => Ok(Sent::Duplicate),
            Classified::Unknown(why) => Ok(Sent::Unknown(why)),
        }
    }

    /// `GET /api/v3/order?symbol=&origClientOrderId=`: `None` when Binance has no such order.
    async fn query(
        &self,
        symbol: &str,
        client_order_id: &str,
    ) -> Result<Option<Placement>, BrokerError> {
        self.query_by(symbol, ("origClientOrderId", client_order_id.to_owned()))
            .await
    }

    /// `GET /api/v3/order?symbol=&{key}=`: `None` when Binance has no such order.
    async fn query_by(
        &self,
        symbol: &str,
        key: (&'static str, String),
    ) -> Result<Option<Placement>, BrokerError> {
        let params = vec![("symbol", symbol.to_owned()), key];
        let answer = send(self.signed_request(Method::GET, "/api/v3/order", params))
            .await
            .map_err(|failure| BrokerError::Transient {
                message: format!("Binance order lookup: {}", failure.message()),
                retry_after: None,
            })?;
        if answer.status.is_success() {
            return parse_order(&answer).map(|o| Some(o.placement()));
        }
        if let Some(ApiError { code: -2013, .. }) = api_error(&answer.body) {
            return Ok(None);
        }
        match error_of(&answer) {
            Classified::Final(e) => Err(e),
            Classified::Unknown(why) | Classified::Duplicate(why) => Err(BrokerError::Transient {
                message: format!("Binance order lookup: {why}"),
                retry_after: None,
            }),
        }
    }
}

impl BinanceBroker {
    /// `DELETE /api/v3/order?symbol=&origClientOrderId=`. `-2011 Unknown order sent.` (already
    /// cancelled or filled) is answered by looking the order up.
    async fn cancel_inner(
        &self,
        symbol: &str,
        client_order_id: &str,
        venue_order_id: Option<&str>,
    ) -> Result<Placement, BrokerError> {
        let venue_id = venue_client_id(client_order_id, self.max_client_id_len());
        // By Binance's order id when known: a modified order rests under its replacement's
        // client id, not alertgate's.
        let key = match venue_order_id {
            Some(id) => ("orderId", id.to_owned()),
            None => ("origClientOrderId", venue_id.clone()),
        };
        let params = vec![("symbol", symbol.to_owned()), key.clone()];
        let answer = send(self.signed_request(Method::DELETE, "/api/v3/order", params))
            .await
            .map_err(|failure| BrokerError::Transient {
                message: format!("Binance cancel: {}", failure.message()),
                retry_after: None,
            })?;
        if answer.status.is_success() {
            return parse_order(&answer).map(BinanceOrder::placement);
        }
        if let Some(ApiError { code: -2011, .. }) = api_error(&answer.body) {
            return match self.query_by(symbol, key).await? {
                Some(placement) => Ok(placement),
                None => Err(BrokerError::Rejected {
                    message: format!("Binance has no order {venue_id} to cancel"),
                }),
            };
        }
        match error_of(&answer) {
            Classified::Final(e) => Err(e),
            Classified::Unknown(why) | Classified::Duplicate(why) => Err(BrokerError::Transient {
                message: format!("Binance cancel: {why}"),
                retry_after: None,
            }),
        }
    }
}

fn api_error(body: &[u8]) -> Option<ApiError> {
    serde_json::from_slice(body).ok()
}

fn parse_order(answer: &Answer) -> Result<BinanceOrder, BrokerError> {
    serde_json::from_slice(&answer.body).map_err(|e| BrokerError::Transient {
        message: format!(
            "Binance sent an order this receiver cannot read ({e}): {}",
            excerpt(&answer.body)
        ),
        retry_after: None,
    })
}

/// A non-2xx answer, sorted by what the caller must do next.
enum Classified {
    /// A final or retryable error to return as is.
    Final(BrokerError),
    /// `-2010 Duplicate order sent.`
    Duplicate(String),
    /// Binance may have acted on the request (5xx, `-1006`, `-1007`).
    Unknown(String),
}

/// Maps Binance's HTTP status and `{"code","msg"}` to what a user can act on.
fn error_of(answer: &Answer) -> Classified {
    let status = answer.status;
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::IM_A_TEAPOT {
        let what = if status == StatusCode::IM_A_TEAPOT {
            "has banned this IP for a while (418)"
        } else {
            "rate limit (429)"
        };
        return Classified::Final(BrokerError::Transient {
            message: format!("Binance {what}: {}", excerpt(&answer.body)),
            retry_after: retry_after(&answer.headers),
        });
    }
    let Some(ApiError { code, msg }) = api_error(&answer.body) else {
        if status.is_server_error() {
            return Classified::Unknown(format!("Binance answered {status}"));
        }
        return Classified::Final(BrokerError::Rejected {
            message: format!("Binance answered {status}: {}", excerpt(&answer.body)),
        });
    };
    let rejected = |message: String| Classified::Final(BrokerError::Rejected { message });
    match code {
        -1006 | -1007 => Classified::Unknown(format!("Binance {code}: {msg}")),
        _ if status.is_server_error() => Classified::Unknown(format!("Binance answered {status} ({code}: {msg})")),
        -2010 if msg.contains("Duplicate order") => Classified::Duplicate(msg),
        -2010 if msg.to_ascii_lowercase().contains("insufficient balance") => {
            rejected(format!("insufficient balance at Binance for this order ({msg})"))
        }
        -2010 if msg.to_ascii_lowercase().contains("market is closed") => {
            rejected(format!("market closed at Binance ({msg})"))
        }
        -1121 => rejected(format!("Binance does not know this symbol ({code}: {msg})")),
        -1013 => Classified::Final(BrokerError::Invalid { message: format!("Binance refused the order's size or price ({msg})") }),
        -2014 | -2015 | -1022 | -1002 => rejected(format!(
            "Binance refused the credentials ({code}: {msg}): check api_key and api_secret/private_key, the key's \
             IP restrictions and that it may trade; testnet keys only work on testnet.binance.vision"
        )),
        -1021 => rejected(format!(
            "Binance says the request time is outside recvWindow ({msg}): check the system clock (NTP)"
        )),
        -1003 | -1008 | -1015 | -1016 => Classified::Final(BrokerError::Transient {
            message: format!("Binance is busy ({code}: {msg})"),
            retry_after: retry_after(&answer.headers),
        }),
        _ => rejected(format!("Binance refused the order ({code}: {msg})")),
    }
}

impl Broker for BinanceBroker {
    fn name(&self) -> &'static str {
        "binance"
    }

    fn spot_only(&self) -> bool {
        true
    }

    fn max_client_id_len(&self) -> usize {
        CLIENT_ORDER_ID_MAX
    }

    fn allows_short(&self) -> bool {
        false
    }

    fn reports_positions(&self) -> bool {
        true
    }

    fn positions<'a>(
        &'a self,
        _account: &'a str,
        symbols: &'a [String],
    ) -> BrokerFuture<'a, Result<Option<Positions>, BrokerError>> {
        Box::pin(async move { self.base_balances(symbols).await.map(Some) })
    }

    fn lookup<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        Box::pin(async move {
            let venue_id = venue_client_id(client_order_id, self.max_client_id_len());
            self.query(symbol, &venue_id).await
        })
    }

    fn lot_rule<'a>(
        &'a self,
        symbol: &'a str,
    ) -> BrokerFuture<'a, Result<Option<LotRule>, BrokerError>> {
        Box::pin(async move {
            let rules = self.rules(symbol).await?;
            Ok(rules.lot.map(|lot| LotRule {
                step: lot.step,
                min: lot.min,
            }))
        })
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.place_inner(order))
    }

    fn cancel<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.cancel_inner(symbol, client_order_id, venue_order_id))
    }

    fn modify<'a>(
        &'a self,
        order: &'a OrderRequest,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.modify_inner(order, venue_order_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_statuses_and_fills_map_onto_placements() {
        let order = |status: &str, qty: &str, quote: &str| BinanceOrder {
            order_id: 7,
            status: status.into(),
            executed_qty: Some(qty.into()),
            cummulative_quote_qty: Some(quote.into()),
        };
        let filled = order("FILLED", "0.50000000", "21000.00000000").placement();
        assert_eq!(filled.status, OrderStatus::Filled);
        assert_eq!(filled.venue_order_id.as_deref(), Some("7"));
        assert_eq!(filled.filled_quantity.to_string(), "0.5");
        assert_eq!(
            filled.average_price.map(|p| p.to_string()).as_deref(),
            Some("42000")
        );
        assert_eq!(
            order("NEW", "0", "0").placement().status,
            OrderStatus::Placed
        );
        assert_eq!(order("NEW", "0", "0").placement().average_price, None);
        assert_eq!(
            order("PARTIALLY_FILLED", "1", "2").placement().status,
            OrderStatus::PartiallyFilled
        );
        for gone in ["CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"] {
            assert_eq!(
                order(gone, "0", "0").placement().status,
                OrderStatus::Cancelled
            );
        }
    }
}
