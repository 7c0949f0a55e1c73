//! `alpaca`: Alpaca's Trading API (paper trading by default).
//!
//! `POST /v2/orders` with a JSON body whose decimals are strings (`qty`, `limit_price`,
//! `stop_price`), authenticated by the `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` headers.
//! Alpaca refuses a second order with the same `client_order_id` (422 "client_order_id must be
//! unique"), so a resend can never double an order; when that answer comes, or when the outcome of
//! a send is unknown (timeout, 5xx), the order is fetched with
//! `GET /v2/orders:by_client_order_id?client_order_id=` and returned. An entry with
//! `take_profit`/`stop_loss` is one bracket order (`order_class: "bracket"`, or `"oto"` with one
//! exit): Alpaca holds the exits and cancels one when the other fills. `modify` replaces the
//! entry and/or its exit legs (`PATCH /v2/orders/{id}`), reading the order first so a retry
//! never replaces twice; lookups follow `replaced_by` to the live order.

use std::fmt;

use alertgate_shared::Secret;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::AlpacaConfig;
use super::http::{
    base_url, build_client, excerpt, retry_after, send, venue_client_id, Answer, SendFailure,
};
use super::Positions;
use super::{
    AttachedLeg, Broker, BrokerBuildError, BrokerError, BrokerFuture, LotRule, OrderStatus,
    Placement,
};
use crate::order::{OrderRequest, OrderType};

/// Alpaca's limit on `client_order_id`.
pub const CLIENT_ORDER_ID_MAX: usize = 48;

/// Alpaca's answer to a duplicate `client_order_id`.
const DUPLICATE_MESSAGE: &str = "client_order_id must be unique";

/// Alpaca's Trading API.
pub struct AlpacaBroker {
    /// `https://paper-api.alpaca.markets` unless configured otherwise.
    base_url: String,
    /// `APCA-API-KEY-ID`.
    key_id: Secret,
    /// `APCA-API-SECRET-KEY`.
    secret_key: Secret,
    /// Shared client with the configured timeout.
    client: reqwest::Client,
}

impl fmt::Debug for AlpacaBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlpacaBroker")
            .field("base_url", &self.base_url)
            .field("key_id", &self.key_id)
            .field("secret_key", &self.secret_key)
            .finish_non_exhaustive()
    }
}

/// The `POST /v2/orders` body.
#[derive(Debug, Serialize)]
struct NewOrder<'a> {
    symbol: &'a str,
    qty: String,
    side: &'static str,
    #[serde(rename = "type")]
    order_type: &'static str,
    time_in_force: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_price: Option<String>,
    client_order_id: &'a str,
    /// `bracket` (both exits) or `oto` (one), when the entry carries protective exits.
    #[serde(skip_serializing_if = "Option::is_none")]
    order_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    take_profit: Option<TakeProfit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_loss: Option<StopLoss>,
}

/// A bracket's `take_profit` leg.
#[derive(Debug, Serialize)]
struct TakeProfit {
    limit_price: String,
}

/// A bracket's `stop_loss` leg.
#[derive(Debug, Serialize)]
struct StopLoss {
    stop_price: String,
}

/// The fields of Alpaca's order entity that matter here.
#[derive(Debug, Deserialize)]
struct AlpacaOrder {
    id: String,
    status: String,
    #[serde(default)]
    filled_qty: Option<String>,
    #[serde(default)]
    filled_avg_price: Option<String>,
    /// `market`, `limit`, `stop`, `stop_limit`, ...
    #[serde(default, rename = "type")]
    order_type: Option<String>,
    #[serde(default)]
    limit_price: Option<String>,
    #[serde(default)]
    stop_price: Option<String>,
    /// The order that replaced this one (`PATCH`): its status is then `replaced`.
    #[serde(default)]
    replaced_by: Option<String>,
    /// A bracket/OTO order's exit legs (orders of their own).
    #[serde(default)]
    legs: Option<Vec<AlpacaOrder>>,
}

/// The `PATCH /v2/orders/{id}` body: what changes.
#[derive(Debug, Serialize)]
struct Replace {
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_price: Option<String>,
}

/// How many `replaced_by` links a lookup follows to the live order.
const MAX_REPLACEMENTS: usize = 32;

fn decimal(v: &Option<String>) -> Option<Decimal> {
    v.as_deref().and_then(|p| p.parse::<Decimal>().ok())
}

impl AlpacaOrder {
    /// `true` while Alpaca can still fill (or replace) it.
    fn is_open(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "filled" | "canceled" | "expired" | "rejected" | "replaced"
        )
    }

    /// What a `PATCH` must change so the order rests at `limit`/`stop` (each only where the
    /// order type has it and it differs): `None` when it is already there.
    fn change_to(&self, limit: Option<Decimal>, stop: Option<Decimal>) -> Option<Replace> {
        let kind = self.order_type.as_deref().unwrap_or_default();
        let differs = |new: Option<Decimal>, old: &Option<String>| {
            new.filter(|n| decimal(old) != Some(*n))
                .map(|n| n.normalize().to_string())
        };
        let body = Replace {
            limit_price: matches!(kind, "limit" | "stop_limit")
                .then(|| differs(limit, &self.limit_price))
                .flatten(),
            stop_price: matches!(kind, "stop" | "stop_limit")
                .then(|| differs(stop, &self.stop_price))
                .flatten(),
        };
        (body.limit_price.is_some() || body.stop_price.is_some()).then_some(body)
    }

    /// A bracket's exit leg as alertgate journals it: its kind from its type (a limit is the
    /// take-profit, a stop the stop-loss); `None` for a type a bracket does not have.
    fn attached(self) -> Option<AttachedLeg> {
        let order_type = match self.order_type.as_deref()? {
            "limit" => OrderType::Limit,
            "stop" => OrderType::Stop,
            "stop_limit" => OrderType::StopLimit,
            _ => return None,
        };
        let (limit_price, stop_price) = (decimal(&self.limit_price), decimal(&self.stop_price));
        Some(AttachedLeg {
            order_type,
            limit_price,
            stop_price,
            placement: self.placement(),
        })
    }

    fn placement(self) -> Placement {
        let filled = self
            .filled_qty
            .and_then(|q| q.parse::<Decimal>().ok())
            .unwrap_or(Decimal::ZERO);
        let status = match self.status.as_str() {
            "filled" => OrderStatus::Filled,
            "partially_filled" => OrderStatus::PartiallyFilled,
            "done_for_day" if filled > Decimal::ZERO => OrderStatus::PartiallyFilled,
            "canceled" | "expired" | "rejected" | "replaced" => OrderStatus::Cancelled,
            // new, accepted, pending_new, accepted_for_bidding, held, pending_cancel,
            // pending_replace, calculated, stopped, suspended, done_for_day (nothing filled).
            _ => OrderStatus::Placed,
        };
        Placement {
            fee: None,
            venue_order_id: Some(self.id),
            status,
            filled_quantity: filled,
            average_price: self
                .filled_avg_price
                .and_then(|p| p.parse::<Decimal>().ok()),
        }
    }
}

/// Alpaca's error body: `{"code": 40310000, "message": "..."}`.
fn alpaca_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| excerpt(body))
}

/// Alpaca's grid for fractional shares: 9 decimal places, no minimum quantity (its $1
/// minimum order value is checked by Alpaca).
const FRACTIONAL_LOT: LotRule = LotRule {
    step: Decimal::from_parts(1, 0, 0, false, 9),
    min: Decimal::ZERO,
};

/// One entry of `GET /v2/positions`.
#[derive(Debug, Deserialize)]
struct AlpacaPosition {
    symbol: String,
    qty: String,
    #[serde(default)]
    side: Option<String>,
}

/// The part of `GET /v2/account` that matters here.
#[derive(Debug, Deserialize)]
struct AlpacaAccount {
    equity: String,
}

impl AlpacaBroker {
    /// `GET` of an account endpoint as JSON, errors named after `what`.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<T, BrokerError> {
        let answer = send(self.request(reqwest::Method::GET, path))
            .await
            .map_err(|failure| BrokerError::Transient {
                message: format!("Alpaca {what}: {}", failure.message()),
                retry_after: None,
            })?;
        match answer.status {
            s if s.is_success() => {
                serde_json::from_slice(&answer.body).map_err(|e| BrokerError::Transient {
                    message: format!("Alpaca {what} answer is unreadable ({e})"),
                    retry_after: None,
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(BrokerError::Rejected {
                message: format!(
                    "Alpaca refused the API key ({})",
                    alpaca_message(&answer.body)
                ),
            }),
            s => Err(BrokerError::Transient {
                message: format!(
                    "Alpaca {what} answered {s}: {}",
                    alpaca_message(&answer.body)
                ),
                retry_after: retry_after(&answer.headers),
            }),
        }
    }

    /// `GET /v2/positions`: the signed quantity of each of `symbols` (zero when not held).
    async fn open_positions(
        &self,
        symbols: &[String],
    ) -> Result<Vec<(String, Decimal)>, BrokerError> {
        let open: Vec<AlpacaPosition> = self.get_json("/v2/positions", "positions").await?;
        let mut out = Vec::with_capacity(symbols.len());
        for symbol in symbols {
            let mut held = Decimal::ZERO;
            if let Some(p) = open.iter().find(|p| &p.symbol == symbol) {
                let qty = p
                    .qty
                    .parse::<Decimal>()
                    .map_err(|_| BrokerError::Transient {
                        message: format!("Alpaca position qty of {symbol} is not a decimal"),
                        retry_after: None,
                    })?;
                // Alpaca gives short positions a negative qty and side "short"; either says so.
                let short = p.side.as_deref() == Some("short");
                held = if short { -qty.abs() } else { qty };
            }
            out.push((symbol.clone(), held.normalize()));
        }
        Ok(out)
    }

    /// `GET /v2/account`: `equity`.
    async fn account_equity(&self) -> Result<Decimal, BrokerError> {
        let account: AlpacaAccount = self.get_json("/v2/account", "account").await?;
        account
            .equity
            .parse::<Decimal>()
            .map_err(|_| BrokerError::Transient {
                message: "Alpaca account equity is not a decimal".into(),
                retry_after: None,
            })
    }

    /// Resolves the key pair and builds the client.
    pub fn from_config(config: &AlpacaConfig) -> Result<Self, BrokerBuildError> {
        let key_id = config
            .key_id
            .resolve()
            .map_err(|source| BrokerBuildError::Secret {
                key: "alpaca.key_id",
                source,
            })?;
        let secret_key =
            config
                .secret_key
                .resolve()
                .map_err(|source| BrokerBuildError::Secret {
                    key: "alpaca.secret_key",
                    source,
                })?;
        Ok(Self {
            base_url: base_url("alpaca.base_url", &config.base_url)?,
            key_id,
            secret_key,
            client: build_client("alpaca", config.timeout_ms)?,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base_url))
            .header("APCA-API-KEY-ID", self.key_id.expose())
            .header("APCA-API-SECRET-KEY", self.secret_key.expose())
    }

    async fn place_inner(&self, order: &OrderRequest) -> Result<Placement, BrokerError> {
        let client_order_id = venue_client_id(&order.client_order_id, self.max_client_id_len());
        let body = NewOrder {
            symbol: &order.symbol,
            qty: order.quantity.to_string(),
            side: order.side.as_str(),
            order_type: order.order_type.as_str(),
            time_in_force: order.tif.as_str(),
            limit_price: order.limit_price.map(|p| p.to_string()),
            stop_price: order.stop_price.map(|p| p.to_string()),
            client_order_id: &client_order_id,
            order_class: match (order.exits.take_profit, order.exits.stop_loss) {
                (Some(_), Some(_)) => Some("bracket"),
                (None, None) => None,
                _ => Some("oto"),
            },
            take_profit: order.exits.take_profit.map(|p| TakeProfit {
                limit_price: p.normalize().to_string(),
            }),
            stop_loss: order.exits.stop_loss.map(|p| StopLoss {
                stop_price: p.normalize().to_string(),
            }),
        };
        let request = self
            .request(reqwest::Method::POST, "/v2/orders")
            .json(&body);
        let answer = match send(request).await {
            Ok(answer) => answer,
            Err(SendFailure::NotSent(why)) => {
                return Err(BrokerError::Transient {
                    message: format!("Alpaca: {why}"),
                    retry_after: None,
                })
            }
            Err(SendFailure::Unknown(why)) => {
                return self.resolve_unknown(&client_order_id, &why).await
            }
        };
        if answer.status.is_success() {
            return parse_order(&answer).map(AlpacaOrder::placement);
        }
        let message = alpaca_message(&answer.body);
        match answer.status {
            StatusCode::UNPROCESSABLE_ENTITY if message.contains(DUPLICATE_MESSAGE) => {
                match self.find_order(&client_order_id).await? {
                    Some(existing) => Ok(existing),
                    None => Err(BrokerError::Transient {
                        message: format!(
                            "Alpaca says {client_order_id} exists but cannot find it yet"
                        ),
                        retry_after: None,
                    }),
                }
            }
            StatusCode::UNAUTHORIZED => Err(BrokerError::Rejected {
                message: format!(
                    "Alpaca refused the API key ({message}): check key_id/secret_key, and that \
                     paper keys go to paper-api.alpaca.markets and live keys to api.alpaca.markets"
                ),
            }),
            StatusCode::FORBIDDEN => Err(BrokerError::Rejected {
                message: format!("Alpaca refused the order: {message}"),
            }),
            StatusCode::TOO_MANY_REQUESTS => Err(BrokerError::Transient {
                message: format!("Alpaca rate limit: {message}"),
                retry_after: retry_after(&answer.headers),
            }),
            s if s == StatusCode::REQUEST_TIMEOUT || s.is_server_error() => {
                self.resolve_unknown(&client_order_id, &format!("Alpaca answered {s}: {message}"))
                    .await
            }
            s => Err(BrokerError::Rejected {
                message: format!("Alpaca refused the order ({s}): {message}"),
            }),
        }
    }

    /// After a send whose outcome is unknown: the order if Alpaca has it, else transient (the
    /// executor's retry sends again, which Alpaca's unique client order id makes safe).
    async fn resolve_unknown(
        &self,
        client_order_id: &str,
        why: &str,
    ) -> Result<Placement, BrokerError> {
        match self.find_order(client_order_id).await {
            Ok(Some(existing)) => Ok(existing),
            Ok(None) => Err(BrokerError::Transient {
                message: format!("Alpaca: {why}; the order is not there, it will be sent again"),
                retry_after: None,
            }),
            Err(e) => Err(BrokerError::Transient {
                message: format!("Alpaca: {why}; looking the order up failed too ({e})"),
                retry_after: None,
            }),
        }
    }

    /// `GET /v2/orders:by_client_order_id`, followed through replacements to the live order:
    /// `None` on 404.
    async fn find_order(&self, client_order_id: &str) -> Result<Option<Placement>, BrokerError> {
        Ok(self
            .live_order(client_order_id, None)
            .await?
            .map(AlpacaOrder::placement))
    }

    /// alertgate's order `client_order_id` (Alpaca's id `venue_order_id` when known) as Alpaca
    /// holds it now ([`AlpacaBroker::live_order`]).
    async fn order_of(
        &self,
        client_order_id: &str,
        venue_order_id: Option<&str>,
    ) -> Result<Option<AlpacaOrder>, BrokerError> {
        let venue_cid = venue_client_id(client_order_id, self.max_client_id_len());
        self.live_order(&venue_cid, venue_order_id).await
    }

    /// The order `client_order_id` (or venue id `venue_order_id`) as Alpaca holds it now, with
    /// its legs: a replaced order's `replaced_by` link is followed to its replacement.
    async fn live_order(
        &self,
        client_order_id: &str,
        venue_order_id: Option<&str>,
    ) -> Result<Option<AlpacaOrder>, BrokerError> {
        let mut order = match venue_order_id {
            Some(id) => {
                self.fetch(&format!("/v2/orders/{id}"), &[("nested", "true")])
                    .await?
            }
            None => {
                self.fetch(
                    "/v2/orders:by_client_order_id",
                    &[("client_order_id", client_order_id)],
                )
                .await?
            }
        };
        for _ in 0..MAX_REPLACEMENTS {
            let Some(next) = order.as_ref().and_then(|o| o.replaced_by.clone()) else {
                break;
            };
            order = self
                .fetch(&format!("/v2/orders/{next}"), &[("nested", "true")])
                .await?;
        }
        Ok(order)
    }

    /// One order `GET`: `None` on 404.
    async fn fetch(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<AlpacaOrder>, BrokerError> {
        let request = self.request(reqwest::Method::GET, path).query(query);
        let answer = send(request)
            .await
            .map_err(|failure| BrokerError::Transient {
                message: format!("Alpaca order lookup: {}", failure.message()),
                retry_after: None,
            })?;
        match answer.status {
            s if s.is_success() => parse_order(&answer).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED => Err(BrokerError::Rejected {
                message: format!(
                    "Alpaca refused the API key ({})",
                    alpaca_message(&answer.body)
                ),
            }),
            s => Err(BrokerError::Transient {
                message: format!(
                    "Alpaca order lookup answered {s}: {}",
                    alpaca_message(&answer.body)
                ),
                retry_after: retry_after(&answer.headers),
            }),
        }
    }
}

impl AlpacaBroker {
    /// `DELETE /v2/orders/{id}` (the id looked up by client order id when it is not known),
    /// then the order as Alpaca reports it. Alpaca cancels asynchronously: an order it reports
    /// `pending_cancel` after a 204 is answered as cancelled.
    async fn cancel_inner(
        &self,
        client_order_id: &str,
        venue_order_id: Option<&str>,
    ) -> Result<Placement, BrokerError> {
        let venue_cid = venue_client_id(client_order_id, self.max_client_id_len());
        let id = match venue_order_id {
            Some(id) => id.to_owned(),
            None => match self.find_order(&venue_cid).await? {
                Some(Placement {
                    venue_order_id: Some(id),
                    ..
                }) => id,
                _ => {
                    return Err(BrokerError::Rejected {
                        message: format!("Alpaca has no order {venue_cid} to cancel"),
                    })
                }
            },
        };
        let answer = send(self.request(reqwest::Method::DELETE, &format!("/v2/orders/{id}")))
            .await
            .map_err(|failure| BrokerError::Transient {
                message: format!("Alpaca cancel: {}", failure.message()),
                retry_after: None,
            })?;
        let accepted = match answer.status {
            s if s.is_success() => true,
            // Filled or cancelled already: what it is now is the answer.
            StatusCode::UNPROCESSABLE_ENTITY => false,
            StatusCode::NOT_FOUND => {
                return Err(BrokerError::Rejected {
                    message: format!("Alpaca has no order {id} to cancel"),
                })
            }
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(BrokerError::Transient {
                    message: format!("Alpaca rate limit: {}", alpaca_message(&answer.body)),
                    retry_after: retry_after(&answer.headers),
                })
            }
            s if s.is_server_error() => {
                return Err(BrokerError::Transient {
                    message: format!("Alpaca cancel answered {s}"),
                    retry_after: None,
                })
            }
            s => {
                return Err(BrokerError::Rejected {
                    message: format!(
                        "Alpaca refused the cancel ({s}): {}",
                        alpaca_message(&answer.body)
                    ),
                })
            }
        };
        let Some(mut now) = self
            .live_order(&venue_cid, Some(&id))
            .await?
            .map(AlpacaOrder::placement)
        else {
            return Err(BrokerError::Transient {
                message: format!("Alpaca cancelled {id} but cannot find it"),
                retry_after: None,
            });
        };
        if accepted
            && matches!(
                now.status,
                OrderStatus::Placed | OrderStatus::PartiallyFilled
            )
        {
            now.status = OrderStatus::Cancelled;
        }
        Ok(now)
    }
}

impl AlpacaBroker {
    /// Moves the entry `order` (alertgate's record with the new prices) and its bracket's exit
    /// legs to their new prices with `PATCH /v2/orders/{id}` (Alpaca's replace: a new order, the
    /// old one `replaced`). Every call first reads the order as it is now, following
    /// replacements, and patches only what is not yet at its new price: a retry after a lost
    /// answer finds the replacement and never replaces twice.
    async fn modify_inner(
        &self,
        order: &OrderRequest,
        venue_order_id: Option<&str>,
    ) -> Result<Placement, BrokerError> {
        let venue_cid = venue_client_id(&order.client_order_id, self.max_client_id_len());
        let Some(mut entry) = self.live_order(&venue_cid, venue_order_id).await? else {
            return Err(BrokerError::Rejected {
                message: format!("Alpaca has no order {venue_cid} to modify"),
            });
        };
        if entry.is_open() {
            if let Some(change) = entry.change_to(
                order.limit_price.map(|p| p.get()),
                order.stop_price.map(|p| p.get()),
            ) {
                self.replace(&entry.id, &change).await?;
                entry = self.current(&venue_cid, &entry.id).await?;
            }
        }
        let exits = order.exits;
        for leg in entry.legs.take().unwrap_or_default() {
            if !leg.is_open() {
                continue;
            }
            let target = match leg.order_type.as_deref() {
                Some("limit") => leg.change_to(exits.take_profit, None),
                Some("stop" | "stop_limit") => leg.change_to(None, exits.stop_loss),
                _ => None,
            };
            if let Some(change) = target {
                self.replace(&leg.id, &change).await?;
            }
        }
        Ok(self.current(&venue_cid, &entry.id).await?.placement())
    }

    /// The live order after a replace of `id` (client id `venue_cid`).
    async fn current(&self, venue_cid: &str, id: &str) -> Result<AlpacaOrder, BrokerError> {
        self.live_order(venue_cid, Some(id))
            .await?
            .ok_or_else(|| BrokerError::Transient {
                message: format!("Alpaca replaced {id} but cannot find it"),
                retry_after: None,
            })
    }

    /// One `PATCH /v2/orders/{id}`. An answer that is lost (timeout, 5xx) is transient: the
    /// retry reads the order first and patches only what did not change.
    async fn replace(&self, id: &str, change: &Replace) -> Result<(), BrokerError> {
        let request = self
            .request(reqwest::Method::PATCH, &format!("/v2/orders/{id}"))
            .json(change);
        let answer = send(request)
            .await
            .map_err(|failure| BrokerError::Transient {
                message: format!("Alpaca replace: {}", failure.message()),
                retry_after: None,
            })?;
        let message = alpaca_message(&answer.body);
        match answer.status {
            s if s.is_success() => Ok(()),
            StatusCode::TOO_MANY_REQUESTS => Err(BrokerError::Transient {
                message: format!("Alpaca rate limit: {message}"),
                retry_after: retry_after(&answer.headers),
            }),
            s if s == StatusCode::REQUEST_TIMEOUT || s.is_server_error() => {
                Err(BrokerError::Transient {
                    message: format!("Alpaca replace answered {s}: {message}"),
                    retry_after: None,
                })
            }
            s => Err(BrokerError::Rejected {
                message: format!("Alpaca refused the replace of {id} ({s}): {message}"),
            }),
        }
    }
}

fn parse_order(answer: &Answer) -> Result<AlpacaOrder, BrokerError> {
    serde_json::from_slice(&answer.body).map_err(|e| BrokerError::Transient {
        message: format!(
            "Alpaca sent an order this receiver cannot read ({e}): {}",
            excerpt(&answer.body)
        ),
        retry_after: None,
    })
}

impl Broker for AlpacaBroker {
    fn name(&self) -> &'static str {
        "alpaca"
    }

    fn spot_only(&self) -> bool {
        true
    }

    fn max_client_id_len(&self) -> usize {
        CLIENT_ORDER_ID_MAX
    }

    fn reports_positions(&self) -> bool {
        true
    }

    fn exits(&self) -> crate::order::ExitSupport {
        crate::order::ExitSupport::Attached
    }

    fn positions<'a>(
        &'a self,
        _account: &'a str,
        symbols: &'a [String],
    ) -> BrokerFuture<'a, Result<Option<Positions>, BrokerError>> {
        Box::pin(async move { self.open_positions(symbols).await.map(Some) })
    }

    fn equity<'a>(
        &'a self,
        _account: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Decimal>, BrokerError>> {
        Box::pin(async move { self.account_equity().await.map(Some) })
    }

    fn looks_up_orders(&self) -> bool {
        true
    }

    fn lookup<'a>(
        &'a self,
        _symbol: &'a str,
        client_order_id: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        Box::pin(async move {
            let venue_id = venue_client_id(client_order_id, self.max_client_id_len());
            self.find_order(&venue_id).await
        })
    }

    fn lookup_working<'a>(
        &'a self,
        _symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        Box::pin(async move {
            let order = self.order_of(client_order_id, venue_order_id).await?;
            Ok(order.map(AlpacaOrder::placement))
        })
    }

    fn attached_legs<'a>(
        &'a self,
        _symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Vec<AttachedLeg>, BrokerError>> {
        Box::pin(async move {
            let Some(entry) = self.order_of(client_order_id, venue_order_id).await? else {
                return Ok(Vec::new());
            };
            Ok(entry
                .legs
                .unwrap_or_default()
                .into_iter()
                .filter_map(AlpacaOrder::attached)
                .collect())
        })
    }

    fn lot_rule<'a>(
        &'a self,
        _symbol: &'a str,
    ) -> BrokerFuture<'a, Result<Option<LotRule>, BrokerError>> {
        // Alpaca takes fractional quantities to 9 decimal places.
        Box::pin(async { Ok(Some(FRACTIONAL_LOT)) })
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.place_inner(order))
    }

    fn cancel<'a>(
        &'a self,
        _symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.cancel_inner(client_order_id, venue_order_id))
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
    fn alpaca_statuses_map_onto_order_statuses() {
        let order = |status: &str, filled: &str| AlpacaOrder {
            id: "x".into(),
            status: status.into(),
            filled_qty: Some(filled.into()),
            filled_avg_price: None,
            order_type: None,
            limit_price: None,
            stop_price: None,
            replaced_by: None,
            legs: None,
        };
        assert_eq!(
            order("accepted", "0").placement().status,
            OrderStatus::Placed
        );
        assert_eq!(
            order("pending_new", "0").placement().status,
            OrderStatus::Placed
        );
        assert_eq!(
            order("partially_filled", "1").placement().status,
            OrderStatus::PartiallyFilled
        );
        assert_eq!(order("filled", "2").placement().status, OrderStatus::Filled);
        assert_eq!(
            order("done_for_day", "1").placement().status,
            OrderStatus::PartiallyFilled
        );
        for gone in ["canceled", "expired", "rejected", "replaced"] {
            assert_eq!(order(gone, "0").placement().status, OrderStatus::Cancelled);
        }
    }
}
