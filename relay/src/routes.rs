//! The HTTP surface: `POST /webhook[/{account}]`, `GET /healthz`, `GET /readyz`, and the pipeline
//! a webhook request goes through, in the documented order. Each step is cheap and refuses before
//! the next one starts; the body is not read until the address is allowed and within its limits.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertgate_shared::{idempotency, Clock, Envelope, MessageId};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};
use warp::reply::Response;
use warp::Filter;

use crate::auth::AuthFailure;
use crate::client_ip;
use crate::config::ClientCertMode;
use crate::dedupe::DedupeWindow;
use crate::error::{handle_rejection, json_response, ApiError};
use crate::live::LiveHandle;
use crate::metrics::{Metrics, RequestOutcome};
use crate::server::{Gate, PeerAddr};
use crate::spool::{NewEntry, Spool, SpoolError, SpooledAlert};
use crate::tls::{self, PeerCerts};

/// What request handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Reloadable accounts, keys, allowlist and limits.
    pub live: LiveHandle,
    /// Where accepted alerts are stored.
    pub spool: Spool,
    /// The edge duplicate window.
    pub dedupe: DedupeWindow,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Receipt times and dedupe expiry.
    pub clock: Arc<dyn Clock>,
    /// `server.max_body_bytes`.
    pub max_body_bytes: u64,
    /// `server.body_timeout_ms`.
    pub body_timeout: Duration,
    /// `server.tls.tradingview_client_cert` (off without TLS).
    pub client_cert: ClientCertMode,
    /// `[[notify]]`: `spool_full`.
    pub notices: crate::notify::Notices,
}

/// Every route, with rejections turned into JSON.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with_state = warp::any().map(move || Arc::clone(&state));
    let health = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| json_response(StatusCode::OK, &json!({"status": "ok"})));
    let ready = warp::path("readyz")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state.clone())
        .map(|state: Arc<AppState>| readiness(&state));
    let account = warp::path::end()
        .map(|| None)
        .or(warp::path::param::<String>()
            .and(warp::path::end())
            .map(Some))
        .unify();
    let webhook = warp::path("webhook")
        .and(account)
        .and(warp::post())
        .and(with_state)
        .and(warp::ext::get::<PeerAddr>())
        .and(warp::ext::optional::<PeerCerts>())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            |account: Option<String>,
             state: Arc<AppState>,
             peer: PeerAddr,
             certs: Option<PeerCerts>,
             headers: HeaderMap,
             body| async move {
                webhook(state, account, peer.0.ip(), certs, headers, body).await
            },
        );
    health
        .or(ready)
        .unify()
        .or(webhook)
        .unify()
        .recover(handle_rejection)
        .unify()
}

/// The allowlist check (pipeline steps 1 and 2) run by the accept loop before the warp filter:
/// a `POST /webhook…` from an address that is not allowed (or without TradingView's certificate
/// when one is required) is answered 403 there, its body never read. The cheapest possible
/// refusal is what keeps a flood from an unlisted address from costing the relay more than a
/// bare server. The pipeline checks again, so nothing depends on the gate alone.
pub fn gate(state: Arc<AppState>) -> Gate {
    Gate(Arc::new(move |req, peer, certs| {
        if req.method() != http::Method::POST || !req.uri().path().starts_with("/webhook") {
            return None;
        }
        let live = state.live.load();
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let ip = client_ip::resolve(peer.ip(), forwarded, &live.trusted_proxies);
        if live.allowlist.allows(ip) && tls::client_cert_ok(state.client_cert, certs) {
            return None;
        }
        let outcome = RequestOutcome::Forbidden;
        state.metrics.request(outcome);
        tracing::debug!(%ip, outcome = outcome.as_str(), "webhook refused before its body was read");
        Some(ApiError::Forbidden.into_response())
    }))
}

fn readiness(state: &AppState) -> Response {
    if state.spool.is_healthy() {
        json_response(StatusCode::OK, &json!({"status": "ready"}))
    } else {
        ApiError::Unavailable("the spool is not writable").into_response()
    }
}

/// One webhook request, start to finish: answer, metrics and (for authenticated or failed-auth
/// requests) one log line.
async fn webhook<S, B>(
    state: Arc<AppState>,
    path_account: Option<String>,
    peer: IpAddr,
    certs: Option<PeerCerts>,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let started = Instant::now();
    let mut log = RequestLog::default();
    let result = pipeline(
        &state,
        path_account.as_deref(),
        peer,
        certs.as_ref(),
        &headers,
        body,
        &mut log,
    )
    .await;
    let elapsed = started.elapsed();
    state
        .metrics
        .request_duration
        .observe(elapsed.as_secs_f64());
    let (outcome, response) = match result {
        Ok(id) => (
            RequestOutcome::Accepted,
            json_response(
                StatusCode::OK,
                &json!({"status": "accepted", "id": id.as_str()}),
            ),
        ),
        Err(e) => (outcome_label(&e, &log), e.into_response()),
    };
    state.metrics.request(outcome);
    let outcome = outcome.as_str();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let ip = log.ip.map(|ip| ip.to_string()).unwrap_or_default();
    if log.authenticated || log.auth_failure.is_some() {
        let account = log.account.as_deref().unwrap_or("");
        let id = log.id.as_ref().map(MessageId::as_str).unwrap_or("");
        let reason = log.auth_failure.map(AuthFailure::as_str).unwrap_or("");
        tracing::info!(account, %ip, id, key = log.key.as_deref().unwrap_or(""), outcome, reason, latency_ms, "webhook");
    } else {
        tracing::debug!(%ip, outcome, latency_ms, "webhook refused before authentication");
    }
    response
}

/// What the log line says about a request (never the secret).
#[derive(Debug, Default)]
struct RequestLog {
    /// The resolved client address.
    ip: Option<IpAddr>,
    /// The account asked for (bounded; caller-chosen until authenticated).
    account: Option<String>,
    /// The message id, once assigned.
    id: Option<MessageId>,
    /// The idempotency key, if any.
    key: Option<String>,
    /// Whether the secret matched (decides the log level).
    authenticated: bool,
    /// Why authentication failed, for the log only.
    auth_failure: Option<AuthFailure>,
}

/// The metric outcome of a refusal (a rate limit counts apart once the account is known).
fn outcome_label(e: &ApiError, log: &RequestLog) -> RequestOutcome {
    match e {
        ApiError::Forbidden => RequestOutcome::Forbidden,
        ApiError::RateLimited { .. } if log.authenticated => RequestOutcome::RateLimitedAccount,
        ApiError::RateLimited { .. } => RequestOutcome::RateLimited,
        ApiError::PayloadTooLarge { .. } => RequestOutcome::TooLarge,
        ApiError::BodyTimeout => RequestOutcome::BodyTimeout,
        ApiError::InvalidJson(_) => RequestOutcome::InvalidJson,
        ApiError::Unauthorized => RequestOutcome::Unauthorized,
        ApiError::Duplicate { .. } => RequestOutcome::Duplicate,
        ApiError::Unavailable(_) => RequestOutcome::Unavailable,
        ApiError::NotFound | ApiError::MethodNotAllowed | ApiError::Internal => {
            RequestOutcome::Error
        }
    }
}

async fn pipeline<S, B>(
    state: &AppState,
    path_account: Option<&str>,
    peer: IpAddr,
    certs: Option<&PeerCerts>,
    headers: &HeaderMap,
    body: S,
    log: &mut RequestLog,
) -> Result<MessageId, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let deadline = tokio::time::Instant::now() + state.body_timeout;
    let live = state.live.load();

    // 1. Client address.
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let ip = client_ip::resolve(peer, forwarded, &live.trusted_proxies);
    log.ip = Some(ip);

    // 2. Allowlist (and TradingView's client certificate when required); the body is untouched.
    if !live.allowlist.allows(ip) || !tls::client_cert_ok(state.client_cert, certs) {
        return Err(ApiError::Forbidden);
    }

    // 3. Per-address, then global limits.
    live.limits
        .check_client(ip)
        .map_err(|l| ApiError::RateLimited {
            retry_after_secs: l.retry_after_secs,
        })?;

    // 4. Body size and deadline.
    let limit = state.max_body_bytes;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let raw = read_body(body, limit, deadline).await?;

    // 5. A UTF-8 JSON object, whatever the content type says.
    let alert = parse_alert(&raw)?;

    // 6. Account and secret.
    // Caller-chosen text until authenticated: bounded before it reaches the log.
    log.account = live
        .accounts
        .requested(path_account, &alert)
        .map(|a| a.chars().take(64).collect());
    let account = match live.accounts.authenticate(path_account, &alert) {
        Ok(a) => a,
        Err(failure) => {
            log.auth_failure = Some(failure);
            return Err(ApiError::Unauthorized);
        }
    };
    log.authenticated = true;

    // 7. Per-account limit.
    live.limits
        .check_account(&account.id)
        .map_err(|l| ApiError::RateLimited {
            retry_after_secs: l.retry_after_secs,
        })?;

    // 8. Duplicate window (a reservation, committed only once spooled).
    let now = state.clock.now();
    let received_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    // The receiver applies the same rule: what it would refuse is refused here, before a 200.
    let key =
        idempotency::idempotency_key(&alert).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    log.key = key.clone();
    let reservation = match &key {
        Some(k) => Some(
            state
                .dedupe
                .reserve(&account.id, k, received_ms)
                .map_err(|_| ApiError::Duplicate { key: k.clone() })?,
        ),
        None => None,
    };

    // 9. Durable append.
    let id = MessageId::generate_at(received_ms);
    log.id = Some(id.clone());
    let envelope = Envelope::new(account.id.clone(), now, ip, alert);
    let spooled = SpooledAlert {
        id: id.clone(),
        account: account.id.clone(),
        received_ms,
        body: Bytes::from(envelope.to_bytes()),
    };
    let entry = NewEntry {
        alert: spooled,
        key,
    };
    match state.spool.append(&entry).await {
        Ok(()) => {}
        Err(SpoolError::Full) => {
            state.notices.spool_full();
            return Err(ApiError::Unavailable("the spool is full; retry later"));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot spool an accepted alert");
            return Err(ApiError::Unavailable(
                "the alert could not be stored; retry later",
            ));
        }
    }
    if let Some(r) = reservation {
        r.commit(received_ms);
    }
    state.spool.report_pending(|n| {
        state
            .metrics
            .spool_pending
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    });

    // 10. Accepted; the spool has woken the forwarder, which sends it asynchronously.
    Ok(id)
}

async fn read_body<S, B>(
    body: S,
    limit: u64,
    deadline: tokio::time::Instant,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    loop {
        let next = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| ApiError::BodyTimeout)?;
        match next {
            None => return Ok(buf.freeze()),
            Some(Err(_)) => return Err(ApiError::InvalidJson("the body could not be read".into())),
            Some(Ok(mut chunk)) => {
                if (buf.len() + chunk.remaining()) as u64 > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                while chunk.has_remaining() {
                    let part = chunk.chunk();
                    let n = part.len();
                    buf.extend_from_slice(part);
                    chunk.advance(n);
                }
            }
        }
    }
}

/// The alert's idempotency key by the rule the receiver applies too
/// ([`alertgate_shared::idempotency`]): a key the receiver would refuse is a 400 here, never a
/// 200 that the receiver then records `invalid`.
pub fn idempotency_key(alert: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    idempotency::idempotency_key(alert).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

/// Step 5: the body as an alert, a UTF-8 JSON object (public for the fuzz target).
pub fn parse_alert(raw: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| ApiError::InvalidJson("the body is not UTF-8".into()))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::InvalidJson(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(ApiError::InvalidJson(format!("the body is not JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_numbers_keep_their_value_exactly_through_the_envelope() {
        // Found by relay/fuzz: without exact float parsing (serde_json's `float_roundtrip`), the
        // relay's own rendering of this number is read back one unit in the last place away.
        let alert =
            parse_alert(br#"{"client_ref":40000000001000000000000000000000000002}"#).unwrap();
        let text = serde_json::to_string(&alert).unwrap();
        let again = parse_alert(text.as_bytes()).unwrap();
        assert_eq!(alert, again);
        for n in [
            "42000.5",
            "0.1",
            "1234.5678",
            "0.30000000000000004",
            "9007199254740993",
        ] {
            let body = format!(r#"{{"q":{n}}}"#);
            assert_eq!(
                serde_json::to_string(&parse_alert(body.as_bytes()).unwrap()).unwrap(),
                body
            );
        }
    }

    #[test]
    fn only_utf8_json_objects_are_alerts() {
        assert!(parse_alert(br#"{"a":1}"#).is_ok());
        for bad in [&b"[1]"[..], b"buy BTC", b"\xff\xfe", b"", b"\"s\""] {
            assert!(
                matches!(parse_alert(bad), Err(ApiError::InvalidJson(_))),
                "{bad:?}"
            );
        }
    }
}
