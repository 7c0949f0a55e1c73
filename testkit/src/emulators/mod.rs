//! Loopback emulators of the real venues, for tests.
//!
//! Each one is a real HTTP server on `127.0.0.1:0` that checks requests the way its venue
//! documents (signatures, headers, parameters per order type, duplicate client ids, filters),
//! keeps an order book in memory, records every request, and can be told to misbehave for the
//! next N order requests ([`Fault`]): 429 with `Retry-After`, 5xx before or after accepting the
//! order, or no answer at all.
//!
//! What they share lives here once: [`Emulator`] serves any [`Venue`] (the server start, request
//! recording, fault queue); each venue module holds only what that venue checks and answers.
//!
//! - [`binance::BinanceEmulator`]: Binance Spot REST (`/api/v3/exchangeInfo`, `/api/v3/order`,
//!   `/api/v3/account`).
//! - [`binance_futures::BinanceFuturesEmulator`]: Binance USDⓈ-M futures REST
//!   (`/fapi/v1/exchangeInfo`, `/fapi/v1/order`, `/fapi/v1/leverage`, `/fapi/v2/positionRisk`),
//!   its signature checks shared with Spot's.
//! - [`alpaca::AlpacaEmulator`]: Alpaca Trading API (`/v2/orders`, `/v2/orders:by_client_order_id`,
//!   `/v2/positions`, `/v2/account`).
//! - [`zerodha::ZerodhaEmulator`]: Kite Connect v3 (`/orders/regular`, `/orders`), no dedupe,
//!   rotating daily access token.
//! - [`betfair::BetfairEmulator`]: Betfair Exchange API-NG (logins, keep-alive, `placeOrders`,
//!   `listCurrentOrders`, `listMarketCatalogue`) on one base URL.
//! - [`oms::OmsEmulator`]: a user's OMS receiving Standard Webhooks-signed orders.
//! - Notification destinations (`[[notify]]`), their "order" being a message:
//!   [`telegram::TelegramEmulator`] (Bot API `sendMessage`), [`discord::DiscordEmulator`] and
//!   [`slack::SlackEmulator`] (incoming webhooks), [`signed_webhook::SignedWebhookEmulator`]
//!   (Standard Webhooks); what they share is in [`chat`].
//!
//! Balances and positions follow the emulated fills, and tests can change them by hand
//! ([`binance::BinanceEmulator::set_balance`], [`alpaca::AlpacaEmulator::set_position`]): a
//! trade made at the venue behind alertgate's back.
//!
//! ```text
//! let venue = BinanceEmulator::start(BinanceEmulatorConfig::hmac("key", "secret", clock)).await?;
//! venue.fail_next_orders(Fault::AcceptThenServerError { status: 503 }, 1);
//! // point [broker.binance] base_url at venue.base_url(), place an order, then:
//! assert_eq!(venue.orders().len(), 1);
//! ```

pub mod alpaca;
pub mod betfair;
pub mod binance;
pub mod binance_futures;
mod binance_signed;
pub mod chat;
pub mod discord;
mod fault;
pub mod oms;
mod request;
pub mod signed_webhook;
pub mod slack;
pub mod telegram;
pub mod zerodha;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use warp::http::{HeaderMap, Method};
use warp::Filter;

pub use self::fault::{Fault, Faults};
pub use self::request::{json_reply, parse_params, percent_decode, Recorded, Reply};

/// One venue's behaviour: its state, what it checks and how it answers. [`Emulator`] does the
/// serving around it.
pub trait Venue: Send + Sync + Sized + 'static {
    /// What the emulator is started with.
    type Config;

    /// The venue's initial state.
    fn new(config: Self::Config) -> std::io::Result<Self>;

    /// Whether `request` is an order placement (what [`Emulator::order_posts`] lists).
    fn places_order(request: &Recorded) -> bool;

    /// Answers one request; `None` never answers. Order placements go through
    /// [`Faults::around`] at the point where the real venue would act on them.
    fn handle(&self, request: &Recorded, faults: &Faults) -> Option<Reply>;
}

/// The state one running emulator shares with its request handler.
#[derive(Debug)]
struct Shared<V> {
    /// The venue's own state (order book, credentials).
    venue: V,
    /// Faults queued for the next order requests.
    faults: Faults,
    /// Every request seen, in order.
    requests: Mutex<Vec<Recorded>>,
}

/// A running emulator of venue `V` on `127.0.0.1:PORT`; stops when dropped.
#[derive(Debug)]
pub struct Emulator<V> {
    /// Where it listens.
    addr: SocketAddr,
    /// Shared with the handler.
    shared: Arc<Shared<V>>,
    /// The server task, aborted on drop.
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<V: Venue> Emulator<V> {
    /// Binds `127.0.0.1:0` and serves every request through the venue, recording it first.
    pub async fn start(config: V::Config) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            venue: V::new(config)?,
            faults: Faults::default(),
            requests: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let handler = Arc::clone(&shared);
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
                    lock(&handler.requests).push(recorded.clone());
                    let answer = if handler.faults.unreachable() {
                        Some(json_reply(
                            warp::http::StatusCode::SERVICE_UNAVAILABLE,
                            &serde_json::json!({"error": "service unavailable"}),
                        ))
                    } else {
                        handler.venue.handle(&recorded, &handler.faults)
                    };
                    async move {
                        match answer {
                            Some(reply) => Ok::<Reply, Infallible>(reply),
                            None => std::future::pending().await,
                        }
                    }
                },
            )
            .map(|r: Result<Reply, Infallible>| match r {
                Ok(reply) => reply,
                Err(never) => match never {},
            });
        let task = tokio::spawn(warp::serve(routes).incoming(listener).run());
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`: the `base_url` to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `times` order requests meet `fault`.
    pub fn fail_next_orders(&self, fault: Fault, times: usize) {
        self.shared.faults.push(fault, times);
    }

    /// Forgets the faults queued for the next order requests (those no request met yet).
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// While `on`, every request is answered 503 without reaching the venue (it is down).
    pub fn set_unreachable(&self, on: bool) {
        self.shared.faults.set_unreachable(on);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Every order placement received (accepted or not).
    pub fn order_posts(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(V::places_order)
            .collect()
    }

    /// The venue's state, for the venue's own inspection methods.
    fn venue(&self) -> &V {
        &self.shared.venue
    }
}

impl<V> Drop for Emulator<V> {
    fn drop(&mut self) {
        self.task.abort();
    }
}
