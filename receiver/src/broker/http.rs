//! `http`: the user's own order-management system. Each order is POSTed as JSON to
//! `[broker.http] url`, signed with Standard Webhooks (`v1`, the configured `whsec_` secrets) with
//! `webhook-id` = the client order id, so the OMS verifies it and dedupes on that id.
//!
//! Also holds the HTTP plumbing every venue adapter shares: the client, `Retry-After`, venue-safe
//! client order ids, and the split between "never sent" and "outcome unknown" failures.
//!
//! Wire contract (documented in `receiver/VENUES.md`):
//! `{"client_order_id","account","symbol","side","quantity","order_type","limit_price",
//! "stop_price","tif","reference_price"}`; decimals are JSON strings, absent prices are `null`.
//! 2xx → placed (`id`/`order_id` and `status` read from the answer when present); 409 → the OMS
//! already has it → placed; 408/429/5xx/timeouts → transient (retried with the same webhook-id);
//! other 4xx → rejected with the OMS's message. With `positions_url`, positions are read with a
//! signed `GET {positions_url}?account=A` (empty body; `webhook-id` `positions-{ms}`) answering
//! `{"positions":[{"symbol":"BTCUSDT","position":"-0.5"}]}` (a symbol not listed is flat).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::{Clock, HmacSecret, Signer};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::HttpBrokerConfig;
use super::{
    Broker, BrokerBuildError, BrokerError, BrokerFuture, OrderStatus, Placement, Positions,
};
use crate::order::{OrderRequest, OrderType, Price, Quantity, Side, TimeInForce};

/// Builds the shared client: rustls, a total per-request timeout, no redirects (a venue that
/// redirects an order POST is misconfigured, and following it could resend the order).
pub(crate) fn build_client(
    kind: &'static str,
    timeout_ms: u64,
) -> Result<reqwest::Client, BrokerBuildError> {
    if timeout_ms == 0 {
        return Err(BrokerBuildError::Invalid {
            key: kind,
            message: "timeout_ms must be above 0".into(),
        });
    }
    let timeout = Duration::from_millis(timeout_ms);
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("alertgate-receiver/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BrokerBuildError::Client {
            kind,
            message: e.to_string(),
        })
}

/// Checks a configured base URL: absolute http(s), returned without a trailing slash.
pub(crate) fn base_url(key: &'static str, url: &str) -> Result<String, BrokerBuildError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| BrokerBuildError::Invalid {
        key,
        message: format!("not a URL ({e})"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(BrokerBuildError::Invalid {
            key,
            message: "must start with https:// (or http://)".into(),
        });
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A venue's `Retry-After` (seconds or HTTP-date, [`alertgate_shared::retry`]). An HTTP-date is
/// measured from the answer's own `Date` header, else from the wall clock: it is the venue's
/// time, not the receiver's injected clock, that the venue's date refers to.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    alertgate_shared::retry::retry_after(headers, time::OffsetDateTime::now_utc().unix_timestamp())
}

/// The client order id a venue accepts: `id` itself when it fits `max_len` and
/// `[A-Za-z0-9_-]`, else `ag-` + hex of its SHA-256, cut to `max_len`. Deterministic, so every
/// retry (and every restart) uses the same venue id for the same order.
pub fn venue_client_id(id: &str, max_len: usize) -> String {
    let fits = !id.is_empty()
        && id.len() <= max_len
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        return id.to_owned();
    }
    let digest = hex::encode(Sha256::digest(id.as_bytes()));
    let mut derived = format!("ag-{digest}");
    derived.truncate(max_len);
    derived
}

/// A short, printable excerpt of a response body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How a request failed before any response arrived.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// The connection was never made: the venue cannot have seen the request.
    NotSent(String),
    /// Timed out or broke after sending: the venue may have acted on it.
    Unknown(String),
}

/// Classifies a reqwest error by whether the request could have reached the venue.
pub(crate) fn classify(error: &reqwest::Error) -> SendFailure {
    // reqwest's Display includes the URL but never headers, so no credential leaks here.
    let message = if error.is_timeout() {
        "timed out waiting for the venue".to_owned()
    } else {
        error_text(error)
    };
    if error.is_connect() && !error.is_timeout() {
        SendFailure::NotSent(message)
    } else {
        SendFailure::Unknown(message)
    }
}

/// The error text with its causes but without the URL (query strings carry signed parameters).
fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<venue>");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A venue answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers (`Retry-After`).
    pub headers: HeaderMap,
    /// Raw body.
    pub body: bytes::Bytes,
}

/// Sends `request` and reads the whole answer.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Answer, SendFailure> {
    let response = request.send().await.map_err(|e| classify(&e))?;
    let status = response.status();
    let headers = response.headers().clone();
    // A body cut off mid-read still means the venue received the request.
    let body = response
        .bytes()
        .await
        .map_err(|e| SendFailure::Unknown(classify(&e).message()))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

impl SendFailure {
    /// The description.
    pub(crate) fn message(self) -> String {
        match self {
            Self::NotSent(m) | Self::Unknown(m) => m,
        }
    }
}

/// The order as the OMS receives it (the wire contract; see the module docs).
#[derive(Debug, Serialize)]
struct OmsOrder<'a> {
    client_order_id: &'a str,
    account: &'a str,
    symbol: &'a str,
    side: Side,
    quantity: Quantity,
    order_type: OrderType,
    limit_price: Option<Price>,
    stop_price: Option<Price>,
    tif: TimeInForce,
    reference_price: Option<Price>,
}

/// The user's own OMS over HTTP.
pub struct HttpBroker {
    /// Where orders are POSTed.
    url: String,
    /// Standard Webhooks `v1` signer over the configured `whsec_` secrets.
    signer: Signer,
    /// Shared client with the configured timeout.
    client: reqwest::Client,
    /// `webhook-timestamp` of each attempt.
    clock: Arc<dyn Clock>,
    /// `[broker.http] positions_url`, when the OMS reports positions.
    positions_url: Option<String>,
}

impl fmt::Debug for HttpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpBroker")
            .field("url", &self.url)
            .field("signing_keys", &self.signer.fingerprints())
            .finish_non_exhaustive()
    }
}

impl HttpBroker {
    /// Resolves the `whsec_` secrets and builds the client.
    pub fn from_config(
        config: &HttpBrokerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BrokerBuildError> {
        let url = base_url("http.url", &config.url)?;
        let secrets = config
            .hmac_secrets
            .iter()
            .map(|r| {
                HmacSecret::load(r).map_err(|source| BrokerBuildError::Key {
                    key: "http.hmac_secrets",
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(BrokerBuildError::Invalid {
                key: "http.hmac_secrets",
                message: "at least one whsec_ secret is required so the OMS can verify that orders come from this receiver".into(),
            });
        }
        let signer = Signer::new(Vec::new(), secrets).map_err(|e| BrokerBuildError::Invalid {
            key: "http.hmac_secrets",
            message: e.to_string(),
        })?;
        let positions_url = config
            .positions_url
            .as_deref()
            .map(|u| base_url("http.positions_url", u))
            .transpose()?;
        Ok(Self {
            url,
            signer,
            client: build_client("http", config.timeout_ms)?,
            clock,
            positions_url,
        })
    }

    async fn place_inner(&self, order: &OrderRequest) -> Result<Placement, BrokerError> {
        let body = serde_json::to_vec(&OmsOrder {
            client_order_id: &order.client_order_id,
            account: &order.account,
            symbol: &order.symbol,
            side: order.side,
            quantity: order.quantity,
            order_type: order.order_type,
            limit_price: order.limit_price,
            stop_price: order.stop_price,
            tif: order.tif,
            reference_price: order.reference_price,
        })
        .map_err(|e| BrokerError::Invalid {
            message: format!("cannot encode the order: {e}"),
        })?;
        // webhook-id allows [A-Za-z0-9_-] up to 128 characters.
        let id = venue_client_id(&order.client_order_id, self.max_client_id_len());
        let timestamp = self.clock.now_unix();
        let headers = self
            .signer
            .request_headers(&id, timestamp, &body)
            .map_err(|e| BrokerError::Invalid {
                message: format!("cannot sign the order: {e}"),
            })?;
        let request = self.client.post(&self.url).headers(headers).body(body);
        let answer = send(request)
            .await
            .map_err(|failure| BrokerError::Transient {
                message: format!("OMS: {}", failure.message()),
                retry_after: None,
            })?;
        let status = answer.status;
        if status.is_success() || status == StatusCode::CONFLICT {
            return Ok(oms_placement(&answer.body));
        }
        let message = oms_message(&answer.body);
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Err(BrokerError::Transient {
                message: format!("OMS answered {status}: {message}"),
                retry_after: retry_after(&answer.headers),
            });
        }
        Err(BrokerError::Rejected {
            message: format!("OMS refused the order ({status}): {message}"),
        })
    }
}

/// `{"positions":[{"symbol","position"}]}` from the OMS.
#[derive(Debug, serde::Deserialize)]
struct OmsPositions {
    positions: Vec<OmsPosition>,
}

/// One position the OMS reports; decimals as strings.
#[derive(Debug, serde::Deserialize)]
struct OmsPosition {
    symbol: String,
    position: String,
}

impl HttpBroker {
    /// `GET {positions_url}?account=`, signed with Standard Webhooks over the empty body.
    async fn oms_positions(
        &self,
        url: &str,
        account: &str,
        symbols: &[String],
    ) -> Result<Vec<(String, Decimal)>, BrokerError> {
        let transient = |message: String| BrokerError::Transient {
            message,
            retry_after: None,
        };
        let timestamp = self.clock.now_unix();
        let id = format!("positions-{}", self.clock.now_unix_ms());
        let headers = self
            .signer
            .request_headers(&id, timestamp, b"")
            .map_err(|e| transient(format!("cannot sign the positions request: {e}")))?;
        let request = self
            .client
            .get(url)
            .query(&[("account", account)])
            .headers(headers);
        let answer = send(request)
            .await
            .map_err(|f| transient(format!("OMS positions: {}", f.message())))?;
        if !answer.status.is_success() {
            return Err(transient(format!(
                "OMS positions answered {}: {}",
                answer.status,
                oms_message(&answer.body)
            )));
        }
        let list: OmsPositions = serde_json::from_slice(&answer.body)
            .map_err(|e| transient(format!("OMS positions answer is unreadable ({e})")))?;
        symbols
            .iter()
            .map(|symbol| {
                let held = match list.positions.iter().find(|p| &p.symbol == symbol) {
                    Some(p) => p.position.parse::<Decimal>().map_err(|_| {
                        transient(format!("OMS position of {symbol} is not a decimal"))
                    })?,
                    None => Decimal::ZERO,
                };
                Ok((symbol.clone(), held))
            })
            .collect()
    }
}

/// Reads `id`/`order_id`, `status`, `filled_quantity`, `average_price` when the OMS sends them.
fn oms_placement(body: &[u8]) -> Placement {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let text = |key: &str| match json.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let decimal = |key: &str| text(key).and_then(|s| s.parse::<Decimal>().ok());
    let status = match text("status")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("filled") => OrderStatus::Filled,
        Some("partially_filled") => OrderStatus::PartiallyFilled,
        Some("cancelled" | "canceled" | "rejected" | "expired") => OrderStatus::Cancelled,
        _ => OrderStatus::Placed,
    };
    Placement {
        fee: None,
        venue_order_id: text("id").or_else(|| text("order_id")),
        status,
        filled_quantity: decimal("filled_quantity").unwrap_or(Decimal::ZERO),
        average_price: decimal("average_price"),
    }
}

/// The OMS's `message` or `error` field, or the body itself.
fn oms_message(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    ["message", "error", "reason"]
        .iter()
        .find_map(|k| json.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| excerpt(body))
}

impl Broker for HttpBroker {
    fn name(&self) -> &'static str {
        "http"
    }

    /// The id is sent as `webhook-id`, which allows 128 characters.
    fn max_client_id_len(&self) -> usize {
        128
    }

    fn reports_positions(&self) -> bool {
        self.positions_url.is_some()
    }

    fn positions<'a>(
        &'a self,
        account: &'a str,
        symbols: &'a [String],
    ) -> BrokerFuture<'a, Result<Option<Positions>, BrokerError>> {
        Box::pin(async move {
            match &self.positions_url {
                Some(url) => self.oms_positions(url, account, symbols).await.map(Some),
                None => Ok(None),
            }
        })
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(self.place_inner(order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_clean_id_is_used_as_is_and_anything_else_is_hashed_deterministically() {
        assert_eq!(venue_client_id("msg_01HX-0", 36), "msg_01HX-0");
        let long = "msg_01JD6Z3V6C8Q2W9K4M7N5P1R3T-leg-12-extra";
        let a = venue_client_id(long, 36);
        assert_eq!(a.len(), 36);
        assert!(a.starts_with("ag-"));
        assert_eq!(a, venue_client_id(long, 36));
        assert_ne!(
            a,
            venue_client_id("msg_01JD6Z3V6C8Q2W9K4M7N5P1R3T-leg-13-extra", 36)
        );
        let dotted = venue_client_id("a.b", 36);
        assert!(dotted
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn an_oms_answer_gives_its_id_and_status_when_present() {
        let p = oms_placement(br#"{"order_id": 42, "status": "FILLED", "filled_quantity": "2", "average_price": "10.5"}"#);
        assert_eq!(p.venue_order_id.as_deref(), Some("42"));
        assert_eq!(p.status, OrderStatus::Filled);
        assert_eq!(p.filled_quantity, Decimal::new(2, 0));
        let empty = oms_placement(b"");
        assert_eq!(empty.venue_order_id, None);
        assert_eq!(empty.status, OrderStatus::Placed);
    }
}
