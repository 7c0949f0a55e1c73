//! The Betfair session: logging in, keeping the token alive, and logging in again when Betfair
//! says the token is gone.
//!
//! - With `cert_file`/`key_file`: the non-interactive `POST {identity_url}/api/certlogin`, the
//!   client certificate presented in the TLS handshake, `username`/`password` form-encoded,
//!   header `X-Application`; answer `{"sessionToken","loginStatus":"SUCCESS"}`.
//! - Without: the interactive API login `POST {identity_url}/api/login`, same form and header
//!   plus `Accept: application/json`; answer `{"token","status":"SUCCESS","error"}`.
//! - `POST {identity_url}/api/keepAlive` with `X-Authentication` once the token is older than
//!   [`KEEP_ALIVE_AFTER_SECS`] (checked before each call, on the injected clock: Betfair expires
//!   idle sessions after a few hours and asks for keep-alives no more often than every 15
//!   minutes). A keep-alive that fails means the session is gone: log in again.
//!
//! The token lives behind an async mutex, so concurrent orders share one login.

use std::sync::Arc;

use alertgate_shared::{Clock, Secret};
use tokio::sync::Mutex;

use super::wire::{CertLogin, Identity};
use crate::broker::http::{excerpt, send};
use crate::broker::BrokerError;

/// A token older than this is refreshed with a keep-alive before it is used.
pub const KEEP_ALIVE_AFTER_SECS: i64 = 3600;

/// What logging in needs; the secrets never leave this struct except as request fields.
pub(crate) struct Credentials {
    /// `X-Application`.
    pub app_key: Secret,
    /// The account's username.
    pub username: Secret,
    /// The account's password.
    pub password: Secret,
}

/// A token and when it was last known good (unix seconds, injected clock).
struct Token {
    value: Secret,
    refreshed_at: i64,
}

/// One Betfair login at a time, shared by every call.
pub(crate) struct Session {
    /// Login host without trailing slash.
    identity_url: String,
    /// App key, username, password.
    credentials: Credentials,
    /// The client for the identity host: it carries the client certificate for `certlogin`.
    client: reqwest::Client,
    /// `true`: `certlogin`; `false`: interactive `login`.
    certificate: bool,
    /// Token age.
    clock: Arc<dyn Clock>,
    /// The current token, if logged in.
    token: Mutex<Option<Token>>,
}

fn transient(message: String) -> BrokerError {
    BrokerError::Transient {
        message,
        retry_after: None,
    }
}

impl Session {
    pub(crate) fn new(
        identity_url: String,
        credentials: Credentials,
        client: reqwest::Client,
        certificate: bool,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            identity_url,
            credentials,
            client,
            certificate,
            clock,
            token: Mutex::new(None),
        }
    }

    /// The application key, for `X-Application` on API calls.
    pub(crate) fn app_key(&self) -> &Secret {
        &self.credentials.app_key
    }

    /// A usable token: the current one, kept alive if it is old, or a fresh login.
    pub(crate) async fn token(&self) -> Result<Secret, BrokerError> {
        let mut guard = self.token.lock().await;
        let now = self.clock.now_unix();
        if let Some(token) = guard.as_mut() {
            if now - token.refreshed_at < KEEP_ALIVE_AFTER_SECS {
                return Ok(token.value.clone());
            }
            if self.keep_alive(&token.value).await? {
                token.refreshed_at = now;
                return Ok(token.value.clone());
            }
            tracing::info!("Betfair session expired (keep-alive refused); logging in again");
        }
        let value = self.login().await?;
        *guard = Some(Token {
            value: value.clone(),
            refreshed_at: now,
        });
        Ok(value)
    }

    /// Forgets `used` after Betfair refused it, so the next [`Self::token`] logs in again (unless
    /// another call has already replaced it).
    pub(crate) async fn invalidate(&self, used: &Secret) {
        let mut guard = self.token.lock().await;
        if guard
            .as_ref()
            .is_some_and(|t| t.value.matches(used.expose().as_bytes()))
        {
            tracing::info!("Betfair refused the session token; logging in again");
            *guard = None;
        }
    }

    fn form(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.identity_url))
            .header("X-Application", self.credentials.app_key.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("username", self.credentials.username.expose()),
                ("password", self.credentials.password.expose()),
            ])
    }

    /// `certlogin` or `login`: a new token.
    async fn login(&self) -> Result<Secret, BrokerError> {
        let path = if self.certificate {
            "/api/certlogin"
        } else {
            "/api/login"
        };
        // A login is safe to repeat, so every failure to get an answer is simply transient.
        let answer = send(self.form(path))
            .await
            .map_err(|f| transient(format!("Betfair login: {}", f.message())))?;
        if !answer.status.is_success() {
            return Err(login_failure(
                answer.status.as_u16(),
                &format!("answered {}: {}", answer.status, excerpt(&answer.body)),
            ));
        }
        let (token, status) = if self.certificate {
            let reply: CertLogin = serde_json::from_slice(&answer.body)
                .map_err(|e| transient(format!("Betfair certlogin answer is unreadable ({e})")))?;
            (reply.session_token, reply.login_status)
        } else {
            let reply: Identity = serde_json::from_slice(&answer.body)
                .map_err(|e| transient(format!("Betfair login answer is unreadable ({e})")))?;
            let status = if reply.status == "SUCCESS" {
                reply.status
            } else {
                reply
                    .error
                    .filter(|e| !e.is_empty())
                    .unwrap_or(reply.status)
            };
            (reply.token, status)
        };
        match token {
            Some(token) if status == "SUCCESS" && !token.is_empty() => Ok(Secret::new(token)),
            _ => Err(login_failure(200, &status)),
        }
    }

    /// `keepAlive`: `true` if Betfair extended the session, `false` if the session is gone.
    async fn keep_alive(&self, token: &Secret) -> Result<bool, BrokerError> {
        let request = self
            .client
            .post(format!("{}/api/keepAlive", self.identity_url))
            .header("X-Application", self.credentials.app_key.expose())
            .header("X-Authentication", token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        let answer = send(request)
            .await
            .map_err(|f| transient(format!("Betfair keep-alive: {}", f.message())))?;
        if answer.status.is_server_error() {
            return Err(transient(format!(
                "Betfair keep-alive answered {}",
                answer.status
            )));
        }
        Ok(serde_json::from_slice::<Identity>(&answer.body)
            .is_ok_and(|reply| reply.status == "SUCCESS"))
    }
}

/// A refused login, with what to do about it. `status` is Betfair's `loginStatus`/`error` code
/// (never an echo of the credentials).
fn login_failure(http: u16, status: &str) -> BrokerError {
    if http >= 500 || status.contains("TEMPORARY_BAN_TOO_MANY_REQUESTS") {
        return transient(format!("Betfair login: {status}"));
    }
    let hint = match status {
        "INVALID_USERNAME_OR_PASSWORD" => ": check betfair.username and betfair.password",
        "CERT_AUTH_REQUIRED" => {
            ": the certificate was not accepted; check betfair.cert_file/key_file and that the \
             certificate is linked to the account"
        }
        "INVALID_APP_KEY" | "FORBIDDEN" => ": check betfair.app_key",
        _ => "",
    };
    BrokerError::Rejected {
        message: format!("Betfair refused the login ({status}){hint}"),
    }
}
