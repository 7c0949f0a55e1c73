//! The operator's dashboard at `GET /ui` on the receiver's listener (DESIGN.md section 16).
//!
//! Sign-in with the ops token gives a session cookie (`HttpOnly`, `SameSite=Strict`, `Path=/ui`,
//! `Secure` when the listener serves TLS); every POST carries the session's CSRF token. The page
//! is static HTML, CSS and a little vanilla JS embedded in the binary ([`assets`]); it fetches
//! JSON from `/ui/api/...` and renders alert text with `textContent` only, under a
//! `Content-Security-Policy` that allows nothing but this origin's own script and style.
//!
//! - [`session`]: the in-memory session store with expiry (a restart signs everyone out).
//! - [`csrf`]: the token checks.
//! - [`views`]: timeline rows and message details as JSON.
//! - [`sse`]: the live timeline (`GET /ui/api/events`).

pub mod csrf;
pub mod session;
pub mod sse;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;

use alertgate_shared::Clock;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Value};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply as _};

use self::session::{Session, Sessions, SESSION_TTL_MS};
use self::views::Filters;
use crate::routes::{
    error, journal_unavailable, json_reply, percent_decode, position_json, strategy_json,
    switch_strategy, AppState,
};

/// The session cookie.
pub const SESSION_COOKIE: &str = "alertgate_session";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "alertgate_login";
/// Largest sign-in or control body.
const MAX_FORM_BYTES: u64 = 4096;

/// The embedded page.
pub mod assets {
    /// The signed-in page (`{{csrf}}` is replaced by the session's token).
    pub const INDEX_HTML: &str = include_str!("assets/index.html");
    /// The sign-in page (`{{csrf}}`, `{{message}}`).
    pub const LOGIN_HTML: &str = include_str!("assets/login.html");
    /// The page's script.
    pub const APP_JS: &str = include_str!("assets/app.js");
    /// The page's style.
    pub const APP_CSS: &str = include_str!("assets/app.css");
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's state in [`AppState`].
#[derive(Debug)]
pub struct Ui {
    /// Signed-in browsers.
    pub sessions: Sessions,
    /// `true` when the listener serves TLS: cookies get `Secure`.
    pub secure_cookies: bool,
    /// Set at shutdown: live-timeline streams end.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Ui {
    /// Sessions judged by `clock`; `secure_cookies` under TLS.
    pub fn new(clock: Arc<dyn Clock>, secure_cookies: bool) -> Self {
        Self {
            sessions: Sessions::new(clock, SESSION_TTL_MS),
            secure_cookies,
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Ends every live-timeline stream (shutdown has started).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Completes once [`Ui::stop`] was called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

fn with_state(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Arc<AppState>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Every `/ui` route, with the page's security headers on each answer.
pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    let session = warp::cookie::optional::<String>(SESSION_COOKIE);
    let page = warp::path!("ui")
        .and(warp::get())
        .and(session)
        .and(with_state(state.clone()))
        .map(|cookie: Option<String>, state: Arc<AppState>| {
            match cookie.as_deref().and_then(|c| state.ui.sessions.get(c)) {
                Some(s) => html(
                    StatusCode::OK,
                    assets::INDEX_HTML.replace("{{csrf}}", s.csrf.expose()),
                ),
                None => login_page(&state, StatusCode::OK, ""),
            }
        });
    let js = warp::path!("ui" / "app.js")
        .and(warp::get())
        .map(|| asset(assets::APP_JS, "text/javascript; charset=utf-8"));
    let css = warp::path!("ui" / "app.css")
        .and(warp::get())
        .map(|| asset(assets::APP_CSS, "text/css; charset=utf-8"));
    let login = warp::path!("ui" / "login")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_FORM_BYTES))
        .and(warp::cookie::optional::<String>(LOGIN_COOKIE))
        .and(warp::body::form::<HashMap<String, String>>())
        .and(with_state(state.clone()))
        .map(sign_in);
    let logout = warp::path!("ui" / "logout")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_FORM_BYTES))
        .and(session)
        .and(warp::body::form::<HashMap<String, String>>())
        .and(with_state(state.clone()))
        .map(sign_out);
    let api_prefix = warp::path("ui")
        .and(warp::path("api"))
        .and(session)
        .and(warp::header::optional::<String>(csrf::HEADER))
        .and(warp::path::tail())
        .and(warp::query::<HashMap<String, String>>());
    let api_get = api_prefix
        .and(warp::get())
        .and(warp::any().map(|| None::<Bytes>))
        .and(with_state(state.clone()))
        .then(api);
    let api_post = api_prefix
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_FORM_BYTES))
        .and(warp::body::bytes().map(Some))
        .and(with_state(state))
        .then(api);
    page.or(js)
        .unify()
        .or(css)
        .unify()
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .or(api_get)
        .unify()
        .or(api_post)
        .unify()
        .map(secure)
}

/// The headers every dashboard answer carries.
fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = warp::reply::with_status(warp::reply::html(body), status).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut r = warp::reply::with_header(body, header::CONTENT_TYPE, kind).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The sign-in page with a fresh double-submit token; `message` is one of this module's fixed
/// texts (escaped anyway).
fn login_page(state: &AppState, status: StatusCode, message: &str) -> Response {
    let token = session::random_token();
    let message = if state.ops_token.is_none() {
        "The dashboard is off: set [ops] token in the receiver's config."
    } else {
        message
    };
    let body = assets::LOGIN_HTML
        .replace("{{csrf}}", &token)
        .replace("{{message}}", &escape_html(message));
    let mut r = html(status, body);
    r.headers_mut().append(
        header::SET_COOKIE,
        state.ui.cookie(LOGIN_COOKIE, &token, 3600),
    );
    r
}

/// `<`, `>`, `&`, `"` and `'` as entities.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn sign_in(
    login_cookie: Option<String>,
    form: HashMap<String, String>,
    state: Arc<AppState>,
) -> Response {
    if !csrf::login_token_ok(
        login_cookie.as_deref(),
        form.get("csrf").map(String::as_str),
    ) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            "The sign-in form expired (CSRF token missing or wrong): sign in again.",
        );
    }
    let presented = form.get("token").map(|t| t.trim()).unwrap_or("");
    let ok = state
        .ops_token
        .as_ref()
        .is_some_and(|t| !presented.is_empty() && t.matches(presented.as_bytes()));
    if !ok {
        tracing::warn!("dashboard sign-in refused: wrong ops token");
        return login_page(&state, StatusCode::UNAUTHORIZED, "Wrong token.");
    }
    let (id, _) = state.ui.sessions.create();
    let mut r = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/ui"));
    h.append(
        header::SET_COOKIE,
        state
            .ui
            .cookie(SESSION_COOKIE, &id, state.ui.sessions.ttl_seconds()),
    );
    h.append(header::SET_COOKIE, state.ui.cookie(LOGIN_COOKIE, "", 0));
    tracing::info!("dashboard sign-in");
    r
}

fn sign_out(
    cookie: Option<String>,
    form: HashMap<String, String>,
    state: Arc<AppState>,
) -> Response {
    let Some((id, session)) = live_session(&state, cookie.as_deref()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some("sign in at /ui"),
        );
    };
    if !csrf::session_token_ok(&session, form.get("csrf").map(String::as_str)) {
        return csrf_refused();
    }
    state.ui.sessions.remove(&id);
    let mut r = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui"));
    r.headers_mut()
        .append(header::SET_COOKIE, state.ui.cookie(SESSION_COOKIE, "", 0));
    r
}

/// The cookie's value and its session, while it lives.
fn live_session(state: &AppState, cookie: Option<&str>) -> Option<(String, Session)> {
    let c = cookie?;
    state.ui.sessions.get(c).map(|s| (c.to_owned(), s))
}

fn csrf_refused() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "csrf",
        Some("missing or wrong CSRF token: reload the dashboard"),
    )
}

/// Every `/ui/api/...` call (GET with an empty body, or POST): a live session first, the CSRF
/// token for POSTs, then the route.
async fn api(
    cookie: Option<String>,
    csrf_header: Option<String>,
    tail: warp::path::Tail,
    query: HashMap<String, String>,
    body: Option<Bytes>,
    state: Arc<AppState>,
) -> Response {
    let is_post = body.is_some();
    let body = body.unwrap_or_default();
    let Some((id, session)) = live_session(&state, cookie.as_deref()) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some("sign in at /ui"),
        );
    };
    let segments: Vec<&str> = tail.as_str().split('/').filter(|s| !s.is_empty()).collect();
    if is_post {
        if !csrf::session_token_ok(&session, csrf_header.as_deref()) {
            return csrf_refused();
        }
        return match segments.as_slice() {
            ["kill-switch"] => set_kill_switch(&state, &body),
            ["strategies", name, verb] => switch_strategy(&state, name, verb).await,
            _ => error(StatusCode::NOT_FOUND, "not_found", None),
        };
    }
    match segments.as_slice() {
        ["messages"] => timeline(&state, &query).await,
        ["messages", mid] => detail(&state, &percent_decode(mid)).await,
        ["positions"] => positions(&state).await,
        ["strategies"] => {
            let list = state.ingest.executor.risk().strategies().list();
            let rows: Vec<Value> = list.iter().map(strategy_json).collect();
            data_reply(StatusCode::OK, &json!({ "strategies": rows }))
        }
        ["kill-switch"] => json_reply(StatusCode::OK, &kill_switch_json(&state)),
        ["events"] => {
            let events = sse::events(state.clone(), id, Filters::from_query(&query));
            warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", None),
    }
}

/// A JSON answer with alert text escaped ([`views::safe_json`]).
fn data_reply(status: StatusCode, body: &Value) -> Response {
    let mut r = warp::reply::with_status(views::safe_json(body), status).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn timeline(state: &AppState, query: &HashMap<String, String>) -> Response {
    let filters = Filters::from_query(query);
    match state.journal.recent_messages(sse::WINDOW).await {
        Ok(messages) => {
            let rows: Vec<Value> = messages
                .iter()
                .map(|m| views::timeline_row(m, &state.ingest.interpreter))
                .filter(|r| filters.admits(r))
                .collect();
            data_reply(StatusCode::OK, &json!({ "messages": rows }))
        }
        Err(e) => journal_unavailable(&e),
    }
}

async fn detail(state: &AppState, id: &str) -> Response {
    match state.journal.message(id).await {
        Ok(Some(m)) => data_reply(
            StatusCode::OK,
            &views::detail(&m, &state.ingest.interpreter),
        ),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            Some("no message with this id"),
        ),
        Err(e) => journal_unavailable(&e),
    }
}

async fn positions(state: &AppState) -> Response {
    match crate::reconcile::position_rows(state.journal.as_ref(), &state.venues).await {
        Ok(rows) => {
            let rows: Vec<Value> = rows.iter().map(position_json).collect();
            data_reply(StatusCode::OK, &json!({ "positions": rows }))
        }
        Err(e) => journal_unavailable(&e),
    }
}

fn kill_switch_json(state: &AppState) -> Value {
    let risk = state.ingest.executor.risk();
    json!({
        "configured": risk.kill_switch_file().is_some(),
        "on": risk.kill_switch_on(),
    })
}

/// `{"on": true}` creates the kill-switch file, `{"on": false}` removes it.
fn set_kill_switch(state: &AppState, body: &[u8]) -> Response {
    let on = match serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("on").and_then(Value::as_bool))
    {
        Some(on) => on,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                Some("expected {\"on\": true} or {\"on\": false}"),
            )
        }
    };
    let Some(path) = state.ingest.executor.risk().kill_switch_file() else {
        return error(
            StatusCode::CONFLICT,
            "kill_switch_not_configured",
            Some("set [risk] kill_switch_file in the receiver's config"),
        );
    };
    let result = if on {
        std::fs::write(path, "set from the dashboard\n")
    } else {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, path = %path.display(), "dashboard: cannot change the kill switch");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "kill_switch_io",
            Some("cannot create or remove risk.kill_switch_file; see the receiver's log"),
        );
    }
    tracing::warn!(on, "kill switch changed from the dashboard");
    json_reply(StatusCode::OK, &kill_switch_json(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alertgate_shared::ManualClock;

    #[test]
    fn cookies_are_httponly_strict_scoped_to_ui_and_secure_only_under_tls() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix(1));
        let tls = Ui::new(clock.clone(), true).cookie(SESSION_COOKIE, "abc", 60);
        assert_eq!(
            tls,
            "alertgate_session=abc; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        let plain = Ui::new(clock, false).cookie(SESSION_COOKIE, "abc", 60);
        assert!(!plain.to_str().unwrap_or_default().contains("Secure"));
    }

    #[test]
    fn escape_html_leaves_no_markup() {
        assert_eq!(
            escape_html("<img src=x onerror='a(\"1\")'>&"),
            "&lt;img src=x onerror=&#39;a(&quot;1&quot;)&#39;&gt;&amp;"
        );
    }
}
