//! Every refusal the relay answers with, and the one function that turns them into a status code
//! and a JSON body `{"error": ..., "message"?: ...}`.

use http::{HeaderValue, StatusCode};
use serde_json::json;
use warp::reply::Response;

/// A request the relay refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Not in the allowlist, or TLS client certificate required and absent (403).
    #[error("forbidden")]
    Forbidden,
    /// Over a rate limit (429, with `Retry-After`).
    #[error("rate limited")]
    RateLimited {
        /// Whole seconds to wait.
        retry_after_secs: u64,
    },
    /// Body larger than `server.max_body_bytes` (413).
    #[error("body too large")]
    PayloadTooLarge {
        /// The limit, for the message.
        limit: u64,
    },
    /// Body not received within `server.body_timeout_ms` (408).
    #[error("body read timed out")]
    BodyTimeout,
    /// Not a UTF-8 JSON object (400).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// Unknown account, missing or wrong secret: one answer for all (401).
    #[error("unauthorized")]
    Unauthorized,
    /// Same account and idempotency key within the window (409).
    #[error("duplicate key")]
    Duplicate {
        /// The repeated key.
        key: String,
    },
    /// The alert could not be stored durably; TradingView resends on 5xx (503).
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// No such route (404).
    #[error("not found")]
    NotFound,
    /// Route exists, method does not (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Anything unexpected (500); details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Duplicate { .. } => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout => "request_timeout",
            Self::InvalidJson(_) => "invalid_json",
            Self::Unauthorized => "unauthorized",
            Self::Duplicate { .. } => "duplicate",
            Self::Unavailable(_) => "unavailable",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal => "internal",
        }
    }

    /// The response.
    pub fn into_response(self) -> Response {
        let body = match &self {
            Self::InvalidJson(message) => json!({"error": self.code(), "message": message}),
            Self::Duplicate { key } => json!({"error": self.code(), "key": key}),
            Self::PayloadTooLarge { limit } => {
                json!({"error": self.code(), "message": format!("the body may be at most {limit} bytes")})
            }
            Self::Unavailable(message) => json!({"error": self.code(), "message": message}),
            Self::RateLimited { retry_after_secs } => {
                json!({"error": self.code(), "message": format!("retry after {retry_after_secs} s")})
            }
            _ => json!({"error": self.code()}),
        };
        let mut response = json_response(self.status(), &body);
        if let Self::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs),
            );
        }
        response
    }
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(body.to_string().into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Turns warp's own rejections (no route, wrong method, ...) into the same JSON shape.
pub async fn handle_rejection(
    rejection: warp::Rejection,
) -> Result<Response, std::convert::Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::NotFound
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::Internal
    };
    Ok(error.into_response())
}

impl warp::reject::Reject for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_answer_carries_retry_after() {
        let r = ApiError::RateLimited {
            retry_after_secs: 3,
        }
        .into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "3");
    }
}
