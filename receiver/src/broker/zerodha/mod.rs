//! `zerodha`: Kite Connect v3, the NSE multi-leg format's broker (NSE, BSE, NFO, MCX, CDS, BFO).
//!
//! `POST /orders/regular`, form-encoded, with `X-Kite-Version: 3` and
//! `Authorization: token API_KEY:ACCESS_TOKEN` ([`wire`] builds the form). Venue symbols are
//! `EXCHANGE:TRADINGSYMBOL` ([`Broker::exchange_in_symbol`]).
//!
//! **Kite does not dedupe.** Every order carries a `tag` derived from its client order id
//! ([`wire::tag_for`]), and before every `POST` the day's orders (`GET /orders`) are searched for
//! that tag: a crash between a `POST` and the journal's record cannot be told apart from a first
//! attempt, so the lookup is not only done after a failure. After an answer whose outcome is
//! unknown (timeout, 5xx, `NetworkException`), the order book is read again at once; if the order
//! is not there yet the error is transient and the next attempt looks again before sending. After
//! a successful `POST` (Kite answers only the order id) the order book gives the status.
//!
//! The access token changes every day: a `file:` reference is reread on `SIGHUP`
//! ([`Broker::reload_credentials`]) and once when Kite answers `TokenException`; if the token
//! reread is the one that failed, the order fails with a message telling ops to renew it.

pub mod wire;

use std::fmt;

use alertgate_shared::reload::Reloadable;
use alertgate_shared::{Secret, SecretRef};
use reqwest::header::HeaderValue;
use reqwest::StatusCode;

use self::wire::KiteError;
use super::config::ZerodhaConfig;
use super::http::{base_url, build_client, excerpt, retry_after, send, Answer, SendFailure};
use super::{Broker, BrokerBuildError, BrokerError, BrokerFuture, Placement};
use crate::order::OrderRequest;

/// Kite Connect v3.
pub struct ZerodhaBroker {
    /// `https://api.kite.trade` unless configured otherwise.
    base_url: String,
    /// The app's `api_key`.
    api_key: Secret,
    /// Where the access token comes from, reread when it changes.
    token_ref: SecretRef,
    /// The access token in use; replaced whole on a reread.
    token: Reloadable<Secret>,
    /// Shared client with the configured timeout.
    client: reqwest::Client,
}

impl fmt::Debug for ZerodhaBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZerodhaBroker")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("access_token", &self.token_ref)
            .finish_non_exhaustive()
    }
}

/// A Kite call that did not give a usable answer.
enum CallError {
    /// No answer: never sent, or the outcome is unknown.
    Send(SendFailure),
    /// Kite still refused the access token after a reread.
    Token(String),
}

impl ZerodhaBroker {
    /// Resolves the api key and the access token and builds the client.
    pub fn from_config(config: &ZerodhaConfig) -> Result<Self, BrokerBuildError> {
        let api_key = config
            .api_key
            .resolve()
            .map_err(|source| BrokerBuildError::Secret {
                key: "zerodha.api_key",
                source,
            })?;
        let token = resolve_token(&config.access_token)?;
        Ok(Self {
            base_url: base_url("zerodha.base_url", &config.base_url)?,
            api_key,
            token_ref: config.access_token.clone(),
            token: Reloadable::new(token),
            client: build_client("zerodha", config.timeout_ms)?,
        })
    }

    /// `Authorization: token api_key:access_token`, marked sensitive so no debug output shows it.
    fn authorization(&self, token: &Secret) -> Option<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!(
            "token {}:{}",
            self.api_key.expose(),
            token.expose()
        ))
        .ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Sends the request `build` makes; on `TokenException`, rereads the token once and, if it
    /// changed, sends again (a refused token means Kite acted on nothing).
    async fn call(&self, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Answer, CallError> {
        let mut token = self.token.load();
        let mut reread = false;
        loop {
            let mut request = build().header("X-Kite-Version", "3");
            if let Some(auth) = self.authorization(&token) {
                request = request.header(reqwest::header::AUTHORIZATION, auth);
            }
            let answer = send(request).await.map_err(CallError::Send)?;
            let error = (!answer.status.is_success()).then(|| KiteError::parse(&answer.body));
            let token_refused = answer.status == StatusCode::FORBIDDEN
                && error
                    .as_ref()
                    .is_some_and(|e| e.error_type.is_empty() || e.error_type == "TokenException");
            if !token_refused {
                return Ok(answer);
            }
            if !reread {
                reread = true;
                if let Ok(fresh) = resolve_token(&self.token_ref) {
                    if fresh.expose() != token.expose() {
                        tracing::info!(
                            access_token = %self.token_ref,
                            "Zerodha refused the access token; using the one reread from its reference"
                        );
                        self.token.store(fresh);
                        token = self.token.load();
                        continue;
                    }
                }
            }
            let message = error.map(|e| e.message).unwrap_or_default();
            return Err(CallError::Token(format!(
                "Zerodha refused the access token (TokenException: {message}): access token \
                 expired or invalid: renew it (it changes daily), write it to {} and send SIGHUP \
                 to the receiver",
                self.token_ref
            )));
        }
    }

    /// The day's order carrying `tag`, if Kite has it.
    async fn lookup(
        &self,
        tag: &str,
    ) -> Result<Option<Result<Placement, BrokerError>>, BrokerError> {
        let url = format!("{}/orders", self.base_url);
        let answer = match self.call(|| self.client.get(&url)).await {
            Ok(answer) => answer,
            Err(CallError::Token(message)) => return Err(BrokerError::Rejected { message }),
            Err(CallError::Send(failure)) => {
                return Err(BrokerError::Transient {
                    message: format!("Zerodha order book: {}", failure.message()),
                    retry_after: None,
                })
            }
        };
        if !answer.status.is_success() {
            let error = KiteError::parse(&answer.body);
            return Err(BrokerError::Transient {
                message: format!(
                    "Zerodha order book answered {} ({}): {}",
                    answer.status, error.error_type, error.message
                ),
                retry_after: retry_after(&answer.headers),
            });
        }
        let book: wire::OrderBook =
            serde_json::from_slice(&answer.body).map_err(|e| BrokerError::Transient {
                message: format!(
                    "Zerodha sent an order book this receiver cannot read ({e}): {}",
                    excerpt(&answer.body)
                ),
                retry_after: None,
            })?;
        Ok(book
            .data
            .into_iter()
            .find(|o| o.has_tag(tag))
            .map(wire::KiteOrder::placement))
    }

    /// After a send whose outcome is unknown: the order if Kite has it, else transient (the
    /// next attempt looks it up again before sending).
    async fn resolve_unknown(
        &self,
        tag: &str,
        why: &str,
        retry_after: Option<std::time::Duration>,
    ) -> Result<Placement, BrokerError> {
        match self.lookup(tag).await {
            Ok(Some(found)) => found,
            Ok(None) => Err(BrokerError::Transient {
                message: format!(
                    "Zerodha: {why}; no order tagged {tag} in the order book, it will be looked up \
                     again before it is sent again"
                ),
                retry_after,
            }),
            Err(BrokerError::Rejected { message }) => Err(BrokerError::Rejected { message }),
            Err(e) => Err(BrokerError::Transient {
                message: format!("Zerodha: {why}; looking the order up failed too ({e})"),
                retry_after,
            }),
        }
    }

    async fn place_inner(&self, order: &OrderRequest) -> Result<Placement, BrokerError> {
        let tag = wire::tag_for(&order.client_order_id);
        let body = wire::form_encode(&wire::order_fields(order, &tag)?);
        // Kite does not dedupe: never send without knowing the order is not there already.
        if let Some(found) = self.lookup(&tag).await? {
            return found;
        }
        let url = format!("{}/orders/regular", self.base_url);
        let answer = match self
            .call(|| {
                self.client
                    .post(&url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body.clone())
            })
            .await
        {
            Ok(answer) => answer,
            Err(CallError::Token(message)) => return Err(BrokerError::Rejected { message }),
            Err(CallError::Send(SendFailure::NotSent(why))) => {
                return Err(BrokerError::Transient {
                    message: format!("Zerodha: {why}"),
                    retry_after: None,
                })
            }
            Err(CallError::Send(SendFailure::Unknown(why))) => {
                return self.resolve_unknown(&tag, &why, None).await
            }
        };
        if answer.status.is_success() {
            let placed: wire::Placed =
                serde_json::from_slice(&answer.body).map_err(|e| BrokerError::Transient {
                    message: format!(
                        "Zerodha accepted order tag {tag} with an answer this receiver cannot \
                         read ({e}): {}",
                        excerpt(&answer.body)
                    ),
                    retry_after: None,
                })?;
            // The answer carries only the id; the order book has the status (a failed read
            // leaves it `placed`).
            return match self.lookup(&tag).await {
                Ok(Some(found)) => found,
                _ => Ok(Placement {
                    venue_order_id: Some(placed.data.order_id),
                    status: super::OrderStatus::Placed,
                    filled_quantity: rust_decimal::Decimal::ZERO,
                    average_price: None,
                    fee: None,
                }),
            };
        }
        let error = KiteError::parse(&answer.body);
        let wait = retry_after(&answer.headers);
        match (answer.status, error.error_type.as_str()) {
            (StatusCode::TOO_MANY_REQUESTS, _) => Err(BrokerError::Transient {
                message: format!("Zerodha rate limit: {}", error.message),
                retry_after: wait,
            }),
            (s, kind) if s.is_server_error() || kind == "NetworkException" => {
                let why = format!("Zerodha answered {s} ({kind}): {}", error.message);
                self.resolve_unknown(&tag, &why, wait).await
            }
            (s, kind) => Err(BrokerError::Rejected {
                message: format!(
                    "Zerodha refused the order ({s}{}): {}",
                    if kind.is_empty() {
                        String::new()
                    } else {
                        format!(", {kind}")
                    },
                    error.message
                ),
            }),
        }
    }
}

fn resolve_token(reference: &SecretRef) -> Result<Secret, BrokerBuildError> {
    let token = reference
        .resolve()
        .map_err(|source| BrokerBuildError::Secret {
            key: "zerodha.access_token",
            source,
        })?;
    if token.expose().trim().is_empty() {
        return Err(BrokerBuildError::Invalid {
            key: "zerodha.access_token",
            message: format!("{reference} is empty"),
        });
    }
    Ok(Secret::new(token.expose().trim()))
}

impl Broker for ZerodhaBroker {
    fn name(&self) -> &'static str {
        "zerodha"
    }

    fn spot_only(&self) -> bool {
        // NFO/MCX futures are dated contracts, never perpetuals: `.P` tickers are refused.
        true
    }

    fn exchange_in_symbol(&self) -> bool {
        true
    }

    fn reload_credentials(&self) -> Result<bool, BrokerBuildError> {
        let fresh = resolve_token(&self.token_ref)?;
        self.token.store(fresh);
        Ok(true)
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.place_inner(order))
    }
}
