//! CSRF checks. Signed-in POSTs carry the session's token (header `x-csrf-token`, or form field
//! `csrf` for the sign-out form); the sign-in form is a double submit: the page sets a
//! short-lived `alertgate_login` cookie and the form repeats its value. Comparisons are constant
//! time ([`Secret::matches`]).

use alertgate_shared::Secret;

use super::session::Session;

/// The header JSON POSTs carry the token in.
pub const HEADER: &str = "x-csrf-token";

/// `true` when `presented` is the session's token.
pub fn session_token_ok(session: &Session, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| !p.is_empty() && session.csrf.matches(p.as_bytes()))
}

/// `true` when the sign-in form repeats the `alertgate_login` cookie.
pub fn login_token_ok(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(c), Some(f)) if !c.is_empty() => Secret::new(c).matches(f.as_bytes()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_different_token_is_refused_and_the_right_one_passes() {
        let s = Session {
            csrf: Secret::new("abc"),
            expires_at_ms: 1,
        };
        assert!(session_token_ok(&s, Some("abc")));
        assert!(!session_token_ok(&s, Some("abd")));
        assert!(!session_token_ok(&s, Some("")));
        assert!(!session_token_ok(&s, None));
        assert!(login_token_ok(Some("x1"), Some("x1")));
        assert!(!login_token_ok(Some("x1"), Some("x2")));
        assert!(!login_token_ok(None, Some("")));
        assert!(!login_token_ok(Some(""), Some("")));
    }
}
