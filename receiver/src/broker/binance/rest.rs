//! Binance's signed REST plumbing, once for Spot and USDⓈ-M futures: every parameter in the
//! signed query string ([`super::sign`]) with `recvWindow` and `timestamp` from the injected
//! clock, `X-MBX-APIKEY`; the HTTP status and `{"code","msg"}` of an answer sorted into what the
//! caller does next ([`classify`], with each API's own codes in a [`Dialect`]); the order calls
//! every adapter makes alike (send, look up by client id, cancel), and the per-symbol cache of
//! exchange filters.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use alertgate_shared::{Clock, Secret, SecretRef, SigningKey};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::filters::SymbolRules;
use super::sign::{query_string, RequestSigner};
use crate::broker::http::{
    base_url, build_client, excerpt, retry_after, send, Answer, SendFailure,
};
use crate::broker::{BrokerBuildError, BrokerError};

/// How long a symbol's exchange filters are trusted before they are fetched again.
const RULES_TTL_SECS: i64 = 3600;
/// Binance's largest `recvWindow`.
const MAX_RECV_WINDOW_MS: u32 = 60_000;

/// The config key names of one Binance section, for messages that name what to change.
pub(crate) struct KeyNames {
    /// `binance`.
    pub section: &'static str,
    /// `binance.base_url`.
    pub base_url: &'static str,
    /// `binance.api_key`.
    pub api_key: &'static str,
    /// `binance.api_secret`.
    pub api_secret: &'static str,
    /// `binance.private_key`.
    pub private_key: &'static str,
    /// `binance.recv_window_ms`.
    pub recv_window_ms: &'static str,
}

/// What a Binance section configures alike for Spot and USDⓈ-M futures.
pub(crate) struct Section<'a> {
    /// `base_url`.
    pub base_url: &'a str,
    /// `api_key`.
    pub api_key: &'a SecretRef,
    /// `api_secret` (HMAC).
    pub api_secret: Option<&'a SecretRef>,
    /// `private_key` (Ed25519).
    pub private_key: Option<&'a SecretRef>,
    /// `recv_window_ms`.
    pub recv_window_ms: u32,
    /// `timeout_ms`.
    pub timeout_ms: u64,
}

/// Binance's error body.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiError {
    /// `-2010`, ...
    pub code: i64,
    /// Binance's text.
    #[serde(default)]
    pub msg: String,
}

/// The error body of an answer, if it is one.
pub(crate) fn api_error(body: &[u8]) -> Option<ApiError> {
    serde_json::from_slice(body).ok()
}

/// A non-2xx answer, sorted by what the caller must do next.
#[derive(Debug)]
pub(crate) enum Classified {
    /// A final or retryable error to return as is.
    Final(BrokerError),
    /// The client id is already taken by an open order (Spot `-2010 Duplicate order sent.`,
    /// futures `-4116`).
    Duplicate(String),
    /// Binance may have acted on the request (5xx, `-1006`, `-1007`).
    Unknown(String),
}

impl Classified {
    /// For requests that place nothing (lookups, balances, exchangeInfo, leverage): an unknown
    /// outcome is simply a transient failure of `what`.
    pub(crate) fn into_error(self, venue: &str, what: &str) -> BrokerError {
        match self {
            Self::Final(e) => e,
            Self::Duplicate(why) | Self::Unknown(why) => BrokerError::Transient {
                message: format!("{venue} {what}: {why}"),
                retry_after: None,
            },
        }
    }
}

/// What one API (Spot, futures) says in its own words.
pub(crate) struct Dialect {
    /// `Binance`, `Binance futures`: the start of every message.
    pub venue: &'static str,
    /// What to check when Binance refuses the credentials.
    pub credentials_hint: &'static str,
    /// The API's own codes (`code`, `msg`, and `"{code}: {msg}"`), before the shared ones.
    pub codes: fn(i64, &str, &str) -> Option<Classified>,
}

/// Maps Binance's HTTP status and `{"code","msg"}` to what a user can act on: the codes both
/// APIs share here, the rest from `dialect`.
pub(crate) fn classify(answer: &Answer, dialect: &Dialect) -> Classified {
    let venue = dialect.venue;
    let status = answer.status;
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::IM_A_TEAPOT {
        let what = if status == StatusCode::IM_A_TEAPOT {
            "has banned this IP for a while (418)"
        } else {
            "rate limit (429)"
        };
        return Classified::Final(BrokerError::Transient {
            message: format!("{venue} {what}: {}", excerpt(&answer.body)),
            retry_after: retry_after(&answer.headers),
        });
    }
    let Some(ApiError { code, msg }) = api_error(&answer.body) else {
        if status.is_server_error() {
            return Classified::Unknown(format!("{venue} answered {status}"));
        }
        return Classified::Final(BrokerError::Rejected {
            message: format!("{venue} answered {status}: {}", excerpt(&answer.body)),
        });
    };
    let seen = format!("{code}: {msg}");
    if matches!(code, -1006 | -1007) {
        return Classified::Unknown(format!("{venue} {seen}"));
    }
    if status.is_server_error() {
        return Classified::Unknown(format!("{venue} answered {status} ({seen})"));
    }
    if let Some(own) = (dialect.codes)(code, &msg, &seen) {
        return own;
    }
    let rejected = |message: String| Classified::Final(BrokerError::Rejected { message });
    match code {
        -1003 | -1008 | -1015 | -1016 => Classified::Final(BrokerError::Transient {
            message: format!("{venue} is busy ({seen})"),
            retry_after: retry_after(&answer.headers),
        }),
        -1121 => rejected(format!("{venue} does not know this symbol ({seen})")),
        -2014 | -2015 | -1022 | -1002 => rejected(format!(
            "{venue} refused the credentials ({seen}): {}",
            dialect.credentials_hint
        )),
        -1021 => rejected(format!(
            "{venue} says the request time is outside recvWindow ({msg}): check the system clock \
             (NTP)"
        )),
        _ => rejected(format!("{venue} refused the order ({seen})")),
    }
}

/// What one order send produced.
pub(crate) enum Sent {
    /// Binance answered with the order.
    Placed(Answer),
    /// The client id is already taken by an open order.
    Duplicate,
    /// The outcome is unknown: it may or may not have been placed.
    Unknown(String),
}

/// One signed Binance REST API: where, as whom, and how its answers read.
pub(crate) struct SignedRest {
    /// REST base URL without trailing slash.
    pub base_url: String,
    /// `X-MBX-APIKEY`.
    pub api_key: Secret,
    /// HMAC secret or Ed25519 key.
    pub signer: RequestSigner,
    /// `recvWindow` sent with every signed request.
    pub recv_window_ms: u32,
    /// Shared client with the configured timeout.
    pub client: reqwest::Client,
    /// `timestamp` source, and the rules cache's age.
    pub clock: Arc<dyn Clock>,
    /// The API's words and codes.
    pub dialect: &'static Dialect,
}

impl fmt::Debug for SignedRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRest")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("signer", &self.signer)
            .field("recv_window_ms", &self.recv_window_ms)
            .finish_non_exhaustive()
    }
}

impl SignedRest {
    /// Resolves a section's `api_key` and exactly one of `api_secret` (HMAC) and `private_key`
    /// (Ed25519), checks `recv_window_ms` and `base_url`, and builds the client.
    pub(crate) fn from_section(
        names: &KeyNames,
        section: &Section<'_>,
        clock: Arc<dyn Clock>,
        dialect: &'static Dialect,
    ) -> Result<Self, BrokerBuildError> {
        let api_key = section
            .api_key
            .resolve()
            .map_err(|source| BrokerBuildError::Secret {
                key: names.api_key,
                source,
            })?;
        let signer = match (section.api_secret, section.private_key) {
            (Some(secret), None) => RequestSigner::Hmac(secret.resolve().map_err(|source| {
                BrokerBuildError::Secret {
                    key: names.api_secret,
                    source,
                }
            })?),
            (None, Some(key)) => {
                RequestSigner::Ed25519(SigningKey::load(key).map_err(|source| {
                    BrokerBuildError::Key {
                        key: names.private_key,
                        source,
                    }
                })?)
            }
            _ => {
                return Err(BrokerBuildError::Invalid {
                    key: names.section,
                    message:
                        "set exactly one of api_secret (HMAC key) or private_key (Ed25519 key)"
                            .into(),
                })
            }
        };
        let recv_window_ms = section.recv_window_ms;
        if recv_window_ms == 0 || recv_window_ms > MAX_RECV_WINDOW_MS {
            return Err(BrokerBuildError::Invalid {
                key: names.recv_window_ms,
                message: format!("must be between 1 and {MAX_RECV_WINDOW_MS} (Binance's maximum)"),
            });
        }
        Ok(Self {
            base_url: base_url(names.base_url, section.base_url)?,
            api_key,
            signer,
            recv_window_ms,
            client: build_client(names.section, section.timeout_ms)?,
            clock,
            dialect,
        })
    }

    /// `method path?params&recvWindow&timestamp&signature` with `X-MBX-APIKEY`.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        mut params: Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        params.push(("recvWindow", self.recv_window_ms.to_string()));
        params.push(("timestamp", self.clock.now_unix_ms().to_string()));
        let query = self.signer.sign_query(&query_string(&params));
        self.client
            .request(method, format!("{}{path}?{query}", self.base_url))
            .header("X-MBX-APIKEY", self.api_key.expose())
    }

    /// `GET path?params`, unsigned (exchangeInfo).
    pub(crate) fn public(
        &self,
        path: &str,
        params: &[(&'static str, String)],
    ) -> reqwest::RequestBuilder {
        let url = if params.is_empty() {
            format!("{}{path}", self.base_url)
        } else {
            format!("{}{path}?{}", self.base_url, query_string(params))
        };
        self.client.get(url)
    }

    /// The answer's classification in this API's words.
    pub(crate) fn classify(&self, answer: &Answer) -> Classified {
        classify(answer, self.dialect)
    }

    /// A transient failure of `what`.
    pub(crate) fn transient(&self, what: &str, why: impl fmt::Display) -> BrokerError {
        BrokerError::Transient {
            message: format!("{} {what}: {why}", self.dialect.venue),
            retry_after: None,
        }
    }

    /// `body` read as `T`, or a transient error naming `what`.
    pub(crate) fn parse<T: DeserializeOwned>(
        &self,
        body: &[u8],
        what: &str,
    ) -> Result<T, BrokerError> {
        serde_json::from_slice(body).map_err(|e| BrokerError::Transient {
            message: format!(
                "{} sent {what} this receiver cannot read ({e}): {}",
                self.dialect.venue,
                excerpt(body)
            ),
            retry_after: None,
        })
    }

    /// Sends a request that places nothing and reads its 2xx body as JSON; `what` names it in
    /// errors.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, BrokerError> {
        let answer = send(request)
            .await
            .map_err(|failure| self.transient(what, failure.message()))?;
        if !answer.status.is_success() {
            return Err(self.classify(&answer).into_error(self.dialect.venue, what));
        }
        self.parse(&answer.body, &format!("a {what} answer"))
    }

    /// Sends a request that may place something (`POST` of an order or an order list): the
    /// answer, the duplicate-id refusal, or an unknown outcome.
    pub(crate) async fn send_placing(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Sent, BrokerError> {
        let answer = match send(request).await {
            Ok(answer) => answer,
            Err(SendFailure::NotSent(why)) => {
                return Err(BrokerError::Transient {
                    message: format!("{}: {why}", self.dialect.venue),
                    retry_after: None,
                })
            }
            Err(SendFailure::Unknown(why)) => return Ok(Sent::Unknown(why)),
        };
        if answer.status.is_success() {
            return Ok(Sent::Placed(answer));
        }
        match self.classify(&answer) {
            Classified::Final(e) => Err(e),
            Classified::Duplicate(_) => Ok(Sent::Duplicate),
            Classified::Unknown(why) => Ok(Sent::Unknown(why)),
        }
    }

    /// Sends a placing `request` for `symbol` and settles what it produced
    /// ([`Self::settle_sent`]). A filter refusal (`invalid`) makes `rules` fetch the symbol's
    /// filters afresh next time, as Binance's disagree with the cached ones.
    pub(crate) async fn place<T, F, Fut>(
        &self,
        request: reqwest::RequestBuilder,
        rules: &RulesCache,
        symbol: &str,
        client_order_id: &str,
        placed: impl FnOnce(&Answer) -> Result<T, BrokerError>,
        query: F,
    ) -> Result<T, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, BrokerError>>,
    {
        let sent = self.send_placing(request).await;
        if matches!(sent, Err(BrokerError::Invalid { .. })) {
            rules.forget(symbol);
        }
        self.settle_sent(sent?, client_order_id, placed, query)
            .await
    }

    /// A signed lookup (`GET`) whose "does not exist" code is `missing` (`-2013` for an order):
    /// the answer's body, `None` when Binance has no such thing.
    pub(crate) async fn lookup(
        &self,
        path: &str,
        params: Vec<(&'static str, String)>,
        missing: i64,
        what: &str,
    ) -> Result<Option<bytes::Bytes>, BrokerError> {
        let answer = send(self.request(Method::GET, path, params))
            .await
            .map_err(|failure| self.transient(what, failure.message()))?;
        if answer.status.is_success() {
            return Ok(Some(answer.body));
        }
        if api_error(&answer.body).is_some_and(|e| e.code == missing) {
            return Ok(None);
        }
        Err(self.classify(&answer).into_error(self.dialect.venue, what))
    }

    /// A signed `DELETE path?params`: the answer's body, `None` on `-2011 Unknown order sent.`
    /// (already cancelled or filled, or never there), which the caller answers by a lookup.
    pub(crate) async fn delete(
        &self,
        path: &str,
        params: Vec<(&'static str, String)>,
    ) -> Result<Option<bytes::Bytes>, BrokerError> {
        let answer = send(self.request(Method::DELETE, path, params))
            .await
            .map_err(|failure| self.transient("cancel", failure.message()))?;
        if answer.status.is_success() {
            return Ok(Some(answer.body));
        }
        if api_error(&answer.body).is_some_and(|e| e.code == -2011) {
            return Ok(None);
        }
        Err(self
            .classify(&answer)
            .into_error(self.dialect.venue, "cancel"))
    }

    /// What a send produced, once the order (or order list) is known: a placed answer read by
    /// `placed`; a duplicate or an unknown outcome answered by looking `client_order_id` up
    /// again with `query`, and transient when it is not there (the retry looks again before
    /// any resend).
    pub(crate) async fn settle_sent<T, F, Fut>(
        &self,
        sent: Sent,
        client_order_id: &str,
        placed: impl FnOnce(&Answer) -> Result<T, BrokerError>,
        query: F,
    ) -> Result<T, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, BrokerError>>,
    {
        let venue = self.dialect.venue;
        let transient = |message: String| BrokerError::Transient {
            message,
            retry_after: None,
        };
        match sent {
            Sent::Placed(answer) => placed(&answer),
            Sent::Duplicate => match query().await? {
                Some(existing) => Ok(existing),
                None => Err(transient(format!(
                    "{venue} reports {client_order_id} as a duplicate but cannot find it yet"
                ))),
            },
            Sent::Unknown(why) => match query().await {
                Ok(Some(existing)) => Ok(existing),
                Ok(None) => Err(transient(format!(
                    "{venue}: {why}; the order is not there, it will be looked up again before \
                     any resend"
                ))),
                Err(e) => Err(transient(format!(
                    "{venue}: {why}; looking the order up failed too ({e})"
                ))),
            },
        }
    }
}

/// Exchange filters per symbol, with the unix second they were fetched.
#[derive(Debug, Default)]
pub(crate) struct RulesCache(Mutex<HashMap<String, (i64, Arc<SymbolRules>)>>);

impl RulesCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (i64, Arc<SymbolRules>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rules of `symbol` fetched less than an hour before `now`.
    pub(crate) fn fresh(&self, symbol: &str, now: i64) -> Option<Arc<SymbolRules>> {
        self.lock()
            .get(symbol)
            .filter(|(fetched, _)| now - fetched < RULES_TTL_SECS)
            .map(|(_, rules)| rules.clone())
    }

    /// Remembers the rules of `symbol` fetched at `now`.
    pub(crate) fn insert(&self, symbol: &str, now: i64, rules: Arc<SymbolRules>) {
        self.lock().insert(symbol.to_owned(), (now, rules));
    }

    /// Forgets `symbol`'s rules: Binance disagreed with them, so they are fetched afresh.
    pub(crate) fn forget(&self, symbol: &str) {
        self.lock().remove(symbol);
    }
}
