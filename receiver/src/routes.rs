//! HTTP routes (receiver/README.md, "Orders API"): one function per route returning a filter, plain async
//! handlers, and one place ([`handle_rejection`], [`alert_reply`]) where errors become status +
//! JSON.
//!
//! - `POST /v1/alerts`: signed deliveries from the relay.
//! - `GET /v1/orders?limit=N`, `GET /v1/messages/{id}`, `GET /v1/positions`: the ops API
//!   (Bearer `ops.token`).
//! - `GET /v1/strategies`, `POST /v1/strategies/{name}/disable|enable`: strategy switches
//!   (Bearer `ops.token`).
//! - `GET /ui` and `/ui/...`: the dashboard ([`crate::ui`]).
//! - `GET /healthz` (process up), `GET /readyz` (the journal takes writes).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use alertgate_shared::envelope::format_millis;
use alertgate_shared::Secret;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use time::OffsetDateTime;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply as _};

use crate::ingest::{Ingest, Reply};
use crate::journal::{Journal, MessageRecord, OrderRecord, Outcome};

/// Default and largest `limit` of `GET /v1/orders`.
pub const DEFAULT_ORDERS_LIMIT: u32 = 100;
/// Largest `limit` of `GET /v1/orders`; larger values are clamped.
pub const MAX_ORDERS_LIMIT: u32 = 1000;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The alert pipeline.
    pub ingest: Ingest,
    /// The journal (ops API, readiness).
    pub journal: Arc<dyn Journal>,
    /// `ops.token`; `None`: the ops API refuses everyone.
    pub ops_token: Option<Secret>,
    /// `server.max_body_bytes`.
    pub max_body_bytes: u64,
    /// The venues' names, in routing order (the positions view).
    pub venues: Vec<String>,
    /// The dashboard's sessions (`/ui`).
    pub ui: crate::ui::Ui,
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Every route, with rejections turned into JSON.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    alerts(state.clone())
        .or(orders(state.clone()))
        .unify()
        .or(message(state.clone()))
        .unify()
        .or(positions(state.clone()))
        .unify()
        .or(strategies(state.clone()))
        .unify()
        .or(strategy_switch(state.clone()))
        .unify()
        .or(healthz())
        .unify()
        .or(crate::ui::routes(state.clone()))
        .unify()
        .or(readyz(state))
        .unify()
        .recover(handle_rejection)
        .unify()
}

fn alerts(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let limit = state.max_body_bytes;
    warp::path!("v1" / "alerts")
        .and(warp::post())
        .and(warp::body::content_length_limit(limit))
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .and(with_state(state))
        .then(
            |headers: HeaderMap, body: Bytes, state: Arc<AppState>| async move {
                // Its own task: a relay that hangs up (a timed-out attempt, a dropped link)
                // cancels this future, and a message journaled by then must still be counted
                // and executed, not left `pending` until the resume sweep.
                let ingest = state.ingest.clone();
                let delivery = tokio::spawn(async move { ingest.receive(&headers, body).await });
                match delivery.await {
                    Ok(reply) => alert_reply(reply),
                    Err(e) => {
                        tracing::error!(error = %e, "delivery task failed; answering 503");
                        alert_reply(Reply::Unavailable(crate::journal::JournalError::Closed))
                    }
                }
            },
        )
}

fn orders(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "orders")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_state(state))
        .then(|auth: Option<String>, query: HashMap<String, String>, state: Arc<AppState>| async move {
            if !authorized(&state, auth.as_deref()) {
                return unauthorized();
            }
            let limit = match query.get("limit").map(|l| l.parse::<u32>()) {
                None => DEFAULT_ORDERS_LIMIT,
                Some(Ok(n)) if n >= 1 => n.min(MAX_ORDERS_LIMIT),
                Some(_) => {
                    return error(StatusCode::BAD_REQUEST, "invalid_query", Some("limit: expected an integer from 1 to 1000"))
                }
            };
            match state.journal.recent_orders(limit).await {
                Ok(orders) => {
                    let orders: Vec<Value> = orders.iter().map(order_json).collect();
                    json_reply(StatusCode::OK, &json!({ "orders": orders }))
                }
                Err(e) => journal_unavailable(&e),
            }
        })
}

fn message(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "messages" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_state(state))
        .then(
            |id: String, auth: Option<String>, state: Arc<AppState>| async move {
                if !authorized(&state, auth.as_deref()) {
                    return unauthorized();
                }
                match state.journal.message(&id).await {
                    Ok(Some(record)) => json_reply(StatusCode::OK, &message_json(&record)),
                    Ok(None) => error(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        Some("no message with this id"),
                    ),
                    Err(e) => journal_unavailable(&e),
                }
            },
        )
}

fn positions(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "positions")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_state(state))
        .then(|auth: Option<String>, state: Arc<AppState>| async move {
            if !authorized(&state, auth.as_deref()) {
                return unauthorized();
            }
            match crate::reconcile::position_rows(state.journal.as_ref(), &state.venues).await {
                Ok(rows) => {
                    let rows: Vec<Value> = rows.iter().map(position_json).collect();
                    json_reply(StatusCode::OK, &json!({ "positions": rows }))
                }
                Err(e) => journal_unavailable(&e),
            }
        })
}

fn strategies(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "strategies")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_state(state))
        .then(|auth: Option<String>, state: Arc<AppState>| async move {
            if !authorized(&state, auth.as_deref()) {
                return unauthorized();
            }
            let list = state.ingest.executor.risk().strategies().list();
            let rows: Vec<Value> = list.iter().map(strategy_json).collect();
            json_reply(StatusCode::OK, &json!({ "strategies": rows }))
        })
}

fn strategy_switch(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("v1" / "strategies" / String / String)
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(with_state(state))
        .then(
            |name: String, verb: String, auth: Option<String>, state: Arc<AppState>| async move {
                if !authorized(&state, auth.as_deref()) {
                    return unauthorized();
                }
                switch_strategy(&state, &name, &verb).await
            },
        )
}

/// `POST .../strategies/{name}/enable|disable` once the caller is authorized (the ops API and
/// the dashboard).
pub(crate) async fn switch_strategy(state: &AppState, name: &str, verb: &str) -> Response {
    let enabled = match verb {
        "enable" => true,
        "disable" => false,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                Some("expected /v1/strategies/{name}/enable or /disable"),
            )
        }
    };
    let name = percent_decode(name);
    if name.trim().is_empty() || name.chars().count() > crate::normalize::MAX_ID_LEN {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_strategy",
            Some("name: expected 1 to 128 characters, as the alert's strategy field"),
        );
    }
    let ingest = &state.ingest;
    match ingest
        .executor
        .risk()
        .strategies()
        .set(
            ingest.journal.as_ref(),
            &ingest.metrics,
            &name,
            enabled,
            ingest.clock.now_unix_ms(),
        )
        .await
    {
        Ok(switch) => json_reply(StatusCode::OK, &strategy_json(&switch)),
        Err(e) => journal_unavailable(&e),
    }
}

/// `%XX` escapes of a path segment decoded (strategy names may hold spaces); invalid UTF-8 is
/// replaced.
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One row of `GET /v1/strategies`.
pub fn strategy_json(s: &crate::journal::StrategySwitch) -> Value {
    json!({
        "name": s.name,
        "enabled": s.enabled,
        "changed_at": if s.changed_at_ms == 0 { Value::Null } else { time_json(s.changed_at_ms) },
    })
}

/// One row of `GET /v1/positions`.
pub fn position_json(p: &crate::reconcile::PositionRow) -> Value {
    json!({
        "account": p.account,
        "venue": p.venue,
        "symbol": p.symbol,
        "position": p.position.normalize().to_string(),
        "venue_position": decimal_json(p.venue_position),
        "drift": decimal_json(p.drift),
        "reconciled_at": p.reconciled_at_ms.map_or(Value::Null, time_json),
    })
}

fn healthz() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| json_reply(StatusCode::OK, &json!({ "status": "ok" })))
}

fn readyz(state: Arc<AppState>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state))
        .then(|state: Arc<AppState>| async move {
            match state.journal.ping().await {
                Ok(()) => json_reply(StatusCode::OK, &json!({ "status": "ready" })),
                Err(e) => {
                    tracing::warn!(error = %e, "not ready: the journal does not take writes");
                    json_reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({ "status": "unavailable", "error": "journal_unavailable" }),
                    )
                }
            }
        })
}

/// Constant-time comparison of `Authorization: Bearer <token>` with `ops.token`.
fn authorized(state: &AppState, header: Option<&str>) -> bool {
    let (Some(token), Some(header)) = (&state.ops_token, header) else {
        return false;
    };
    let presented = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .unwrap_or("");
    !presented.is_empty() && token.matches(presented.trim().as_bytes())
}

pub(crate) fn json_reply(status: StatusCode, body: &Value) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

pub(crate) fn error(status: StatusCode, code: &str, message: Option<&str>) -> Response {
    let body = match message {
        Some(m) => json!({ "error": code, "message": m }),
        None => json!({ "error": code }),
    };
    json_reply(status, &body)
}

fn unauthorized() -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", None);
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    response
}

pub(crate) fn journal_unavailable(e: &crate::journal::JournalError) -> Response {
    tracing::error!(error = %e, "journal unavailable");
    error(StatusCode::SERVICE_UNAVAILABLE, "journal_unavailable", None)
}

/// Status and JSON of a `POST /v1/alerts` answer.
pub fn alert_reply(reply: Reply) -> Response {
    match reply {
        Reply::Unverified(e) => error(StatusCode::UNAUTHORIZED, e.error_code(), None),
        Reply::Unavailable(e) => journal_unavailable(&e),
        Reply::ExecutingElsewhere { id } => {
            let message = format!(
                "message {id} is pending and leased by another receiver (executing it, or \
                 stopped until its lease expires: executor.lease_seconds); retry"
            );
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                crate::executor::EXECUTING_ELSEWHERE,
                Some(&message),
            );
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            response
        }
        Reply::Recorded {
            id,
            outcome,
            reason,
            orders,
            duplicate,
            copies,
        } => {
            let status = if outcome == Outcome::Pending {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let orders: Vec<Value> = orders.iter().map(order_json).collect();
            let mut body = json!({ "id": id, "outcome": outcome.as_str(), "orders": orders, "reason": reason, "duplicate": duplicate });
            if !copies.is_empty() {
                body["copies"] = copies
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "account": c.account, "outcome": c.outcome.as_str(),
                               "reason": c.reason, "orders": c.orders.iter().map(order_json).collect::<Vec<_>>()})
                    })
                    .collect();
            }
            json_reply(status, &body)
        }
    }
}

fn time_json(ms: i64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_or(Value::Null, |t| Value::String(format_millis(t)))
}

fn decimal_json(d: Option<rust_decimal::Decimal>) -> Value {
    d.map_or(Value::Null, |d| Value::String(d.normalize().to_string()))
}

/// One order as the APIs show it.
pub fn order_json(o: &OrderRecord) -> Value {
    json!({
        "client_order_id": o.client_order_id,
        "message_id": o.message_id,
        "leg": o.leg,
        "account": o.account,
        "symbol": o.symbol,
        "side": o.side.as_str(),
        "quantity": o.quantity.normalize().to_string(),
        "order_type": o.order_type.as_str(),
        "limit_price": decimal_json(o.limit_price),
        "stop_price": decimal_json(o.stop_price),
        "tif": o.tif.as_str(),
        "reference_price": decimal_json(o.reference_price),
        "status": o.status.as_str(),
        "venue": o.venue,
        "venue_order_id": o.venue_order_id,
        "filled_quantity": o.filled_quantity.normalize().to_string(),
        "average_price": decimal_json(o.average_price),
        "error": o.error,
        "sizing": o.sizing.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        "waits_for_fill": o.waits_for_fill,
        // Exits attached to the entry at the venue (Alpaca's bracket legs).
        "take_profit": decimal_json(o.exits.take_profit),
        "stop_loss": decimal_json(o.exits.stop_loss),
        "created_at": time_json(o.created_at_ms),
        "updated_at": time_json(o.updated_at_ms),
    })
}

/// A message's outcome record as `GET /v1/messages/{id}` shows it.
pub fn message_json(m: &MessageRecord) -> Value {
    let envelope = serde_json::from_slice::<Value>(&m.envelope)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&m.envelope).into_owned()));
    json!({
        "id": m.id,
        "account": m.account,
        "idempotency_key": m.idempotency_key,
        "received_at": m.received_at_ms.map_or(Value::Null, time_json),
        "recorded_at": time_json(m.recorded_at_ms),
        "updated_at": time_json(m.updated_at_ms),
        "outcome": m.outcome.as_str(),
        "reason": m.reason,
        "orders": m.orders.iter().map(order_json).collect::<Vec<_>>(),
        "envelope": envelope,
    })
}

/// Turns every rejection into `{"error": ...}` with the right status.
pub async fn handle_rejection(rejection: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{LengthRequired, MethodNotAllowed, PayloadTooLarge};
    let response = if rejection.is_not_found() {
        error(StatusCode::NOT_FOUND, "not_found", None)
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None)
    } else if rejection.find::<LengthRequired>().is_some() {
        error(StatusCode::LENGTH_REQUIRED, "length_required", None)
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
    } else {
        tracing::debug!(?rejection, "bad request");
        error(StatusCode::BAD_REQUEST, "bad_request", None)
    };
    Ok(response)
}
