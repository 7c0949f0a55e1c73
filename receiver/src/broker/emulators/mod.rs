//! Loopback emulators of the real venues, for tests (cargo feature `emulators`).
//!
//! Each one is a real HTTP server on `127.0.0.1:0` that checks requests the way its venue
//! documents (signatures, headers, parameters per order type, duplicate client ids, filters),
//! keeps an order book in memory, records every request, and can be told to misbehave for the
//! next N order requests ([`Fault`]): 429 with `Retry-After`, 5xx before or after accepting the
//! order, or no answer at all.
//!
//! - [`binance::BinanceEmulator`]: Binance Spot REST (`/api/v3/exchangeInfo`, `/api/v3/order`).
//! - [`alpaca::AlpacaEmulator`]: Alpaca Trading API (`/v2/orders`, `/v2/orders:by_client_order_id`).
//! - [`oms::OmsEmulator`]: a user's OMS receiving Standard Webhooks-signed orders.
//!
//! ```text
//! let venue = BinanceEmulator::start(BinanceEmulatorConfig::hmac("key", "secret", clock)).await?;
//! venue.fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);
//! // point [broker.binance] base_url at venue.base_url(), place an order, then:
//! assert_eq!(venue.orders().len(), 1);
//! ```

pub mod alpaca;
pub mod binance;
pub mod oms;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use warp::http::{HeaderMap, Method, Response, StatusCode};
use warp::Filter;

/// A way for the next order request to go wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer 429 with `Retry-After: retry_after_secs`, without acting on the request.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Answer `status` (a 5xx) without acting on the request.
    ServerError {
        /// The status code.
        status: u16,
    },
    /// Act on the request (place the order), then answer `status` anyway: the outcome is
    /// unknown to the client.
    AcceptThenServerError {
        /// The status code.
        status: u16,
    },
    /// Never answer, without acting on the request (the client times out).
    Hang,
    /// Act on the request, then never answer.
    AcceptThenHang,
}

/// One request as the emulator received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/api/v3/order`.
    pub path: String,
    /// The raw query string (without `?`), exactly as received.
    pub query: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Bytes,
}

impl Recorded {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        parse_params(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body parsed as JSON (`Null` if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// `k=v&k=v` → decoded pairs, in order.
pub fn parse_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space, as form encoding does).
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a handler answers.
pub type Reply = Response<String>;

/// A JSON answer.
pub fn json_reply(status: StatusCode, body: &serde_json::Value) -> Reply {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Faults queued for the next order requests, and every request seen.
#[derive(Debug, Default)]
pub(crate) struct Common {
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<Recorded>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Common {
    pub(crate) fn push_faults(&self, fault: Fault, times: usize) {
        let mut faults = lock(&self.faults);
        for _ in 0..times {
            faults.push_back(fault.clone());
        }
    }

    pub(crate) fn next_fault(&self) -> Option<Fault> {
        lock(&self.faults).pop_front()
    }

    pub(crate) fn record(&self, request: Recorded) {
        lock(&self.requests).push(request);
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }
}

/// Applies `fault` around `act` (which performs the request and builds the normal answer).
/// `error_body` renders a venue-specific error body for a status.
pub(crate) async fn with_fault(
    fault: Option<Fault>,
    act: impl FnOnce() -> Reply,
    error_body: impl Fn(u16) -> serde_json::Value,
) -> Reply {
    let status =
        |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match fault {
        None => act(),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut reply = json_reply(StatusCode::TOO_MANY_REQUESTS, &error_body(429));
            if let Ok(v) = warp::http::HeaderValue::from_str(&retry_after_secs.to_string()) {
                reply
                    .headers_mut()
                    .insert(warp::http::header::RETRY_AFTER, v);
            }
            reply
        }
        Some(Fault::ServerError { status: code }) => json_reply(status(code), &error_body(code)),
        Some(Fault::AcceptThenServerError { status: code }) => {
            let _ = act();
            json_reply(status(code), &error_body(code))
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::AcceptThenHang) => {
            let _ = act();
            std::future::pending().await
        }
    }
}

type Handler = Arc<dyn Fn(Recorded) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// A running loopback server; stops when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves every request through `handler`, recording it first.
    pub(crate) async fn start(common: Arc<Common>, handler: Handler) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let routes = warp::any()
            .and(warp::method())
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |method: Method,
                      path: warp::path::FullPath,
                      query: String,
                      headers: HeaderMap,
                      body: Bytes| {
                    let recorded = Recorded {
                        method: method.to_string(),
                        path: path.as_str().to_owned(),
                        query,
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_ascii_lowercase(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        body,
                    };
                    common.record(recorded.clone());
                    let handler = handler.clone();
                    async move { Ok::<Reply, Infallible>(handler(recorded).await) }
                },
            )
            .map(|r: Result<Reply, Infallible>| match r {
                Ok(reply) => reply,
                Err(never) => match never {},
            });
        let task = tokio::spawn(warp::serve(routes).incoming(listener).run());
        Ok(Self { addr, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let params = parse_params("a=1&sig=a%2Bb%2Fc%3D&empty=&c=x+y");
        assert_eq!(params[1], ("sig".to_owned(), "a+b/c=".to_owned()));
        assert_eq!(params[2], ("empty".to_owned(), String::new()));
        assert_eq!(params[3], ("c".to_owned(), "x y".to_owned()));
        assert_eq!(percent_decode("100%"), "100%");
    }
}
