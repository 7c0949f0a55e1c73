//! A client that posts alerts the way TradingView does: from a chosen source address when
//! given (tests use 127.0.0.2, 127.0.0.3, ... as distinct senders), `Content-Type:
//! application/json` when the body is valid JSON and `text/plain` otherwise, no custom headers,
//! and a 3 s timeout after which TradingView gives up.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::HeaderMap;

/// TradingView cancels a webhook request after 3 seconds.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// What the relay answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a response.
    pub async fn read(response: reqwest::Response) -> reqwest::Result<Self> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(Self {
            status,
            headers,
            text,
        })
    }
}

/// A TradingView-like sender.
#[derive(Debug, Clone)]
pub struct TradingView {
    /// Bound to the source address, with TradingView's timeout.
    http: reqwest::Client,
}

impl TradingView {
    /// Sends from whatever address the OS picks (127.0.0.1 for a loopback relay).
    pub fn new() -> Self {
        Self::build(None)
    }

    /// Sends from `source` (a loopback address such as 127.0.0.2).
    pub fn from(source: IpAddr) -> Self {
        Self::build(Some(source))
    }

    fn build(source: Option<IpAddr>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .local_address(source)
            .build()
            .expect("building an HTTP client (TLS backend)");
        Self { http }
    }

    /// POSTs `body` to `url` (e.g. `http://ADDR/webhook`).
    pub async fn post(&self, url: &str, body: impl Into<String>) -> reqwest::Result<Answer> {
        let body = body.into();
        let content_type = if serde_json::from_str::<serde_json::Value>(&body).is_ok() {
            "application/json"
        } else {
            "text/plain"
        };
        let response = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await?;
        Answer::read(response).await
    }
}

impl Default for TradingView {
    fn default() -> Self {
        Self::new()
    }
}
