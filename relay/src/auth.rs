//! Step 6 of the pipeline: which account an alert is for, and whether its `secret` is right.
//!
//! The account comes from the path (`/webhook/{account}`), else the body's `account` (alias
//! `fund_id`), else the only configured account. The secret is compared in constant time with
//! every secret of that account (two during a rotation). An unknown account, a missing secret and
//! a wrong one are indistinguishable to the caller, so accounts cannot be enumerated.

use alertgate_shared::Secret;
use serde_json::{Map, Value};

/// One configured account with its resolved secrets.
#[derive(Debug, Clone)]
pub struct Account {
    /// The account name, as used in paths and envelopes.
    pub id: String,
    /// Every accepted secret; all are compared, none short-circuits.
    secrets: Vec<Secret>,
}

impl Account {
    /// An account with its secrets.
    pub fn new(id: impl Into<String>, secrets: Vec<Secret>) -> Self {
        Self {
            id: id.into(),
            secrets,
        }
    }
}

/// Why an alert was not authenticated (kept for logs and metrics; the caller sees only 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The alert names no account and several are configured.
    NoAccount,
    /// The named account is not configured.
    UnknownAccount,
    /// The body has no string `secret`.
    MissingSecret,
    /// The secret matches none of the account's secrets.
    WrongSecret,
}

impl AuthFailure {
    /// A stable label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAccount => "no_account",
            Self::UnknownAccount => "unknown_account",
            Self::MissingSecret => "missing_secret",
            Self::WrongSecret => "wrong_secret",
        }
    }
}

/// All configured accounts.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// A few entries; looked up by linear scan.
    accounts: Vec<Account>,
}

/// A secret compared against when the account is unknown, so that path costs the same.
const DECOY: &str = "alertgate-decoy-secret-for-constant-work";

impl Accounts {
    /// The configured accounts.
    pub fn new(accounts: Vec<Account>) -> Self {
        Self { accounts }
    }

    /// The account name the alert asks for (before authentication), if one can be determined.
    pub fn requested<'a>(
        &'a self,
        path_account: Option<&'a str>,
        alert: &'a Map<String, Value>,
    ) -> Option<&'a str> {
        path_account
            .or_else(|| alert.get("account").and_then(Value::as_str))
            .or_else(|| alert.get("fund_id").and_then(Value::as_str))
            .or(match self.accounts.as_slice() {
                [only] => Some(only.id.as_str()),
                _ => None,
            })
    }

    /// Authenticates the alert, returning its account.
    pub fn authenticate(
        &self,
        path_account: Option<&str>,
        alert: &Map<String, Value>,
    ) -> Result<&Account, AuthFailure> {
        let presented = alert
            .get("secret")
            .and_then(Value::as_str)
            .map(str::as_bytes);
        let Some(name) = self.requested(path_account, alert) else {
            return Err(AuthFailure::NoAccount);
        };
        let Some(account) = self.accounts.iter().find(|a| a.id == name) else {
            let _ = Secret::new(DECOY).matches(presented.unwrap_or_default());
            return Err(AuthFailure::UnknownAccount);
        };
        let Some(presented) = presented else {
            return Err(AuthFailure::MissingSecret);
        };
        // Every secret is compared: no early exit reveals which one matched.
        let matched = account
            .secrets
            .iter()
            .fold(false, |acc, s| s.matches(presented) | acc);
        if matched {
            Ok(account)
        } else {
            Err(AuthFailure::WrongSecret)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        Accounts::new(vec![
            Account::new("main", vec![Secret::new("old"), Secret::new("new")]),
            Account::new("alt", vec![Secret::new("alt-secret")]),
        ])
    }

    fn alert(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn either_secret_of_a_rotation_is_accepted() {
        let a = accounts();
        assert_eq!(
            a.authenticate(Some("main"), &alert(r#"{"secret":"old"}"#))
                .unwrap()
                .id,
            "main"
        );
        assert_eq!(
            a.authenticate(Some("main"), &alert(r#"{"secret":"new"}"#))
                .unwrap()
                .id,
            "main"
        );
    }

    #[test]
    fn the_path_wins_then_the_body_account_then_fund_id() {
        let a = accounts();
        let body = alert(r#"{"secret":"alt-secret","account":"main"}"#);
        assert_eq!(a.authenticate(Some("alt"), &body).unwrap().id, "alt");
        assert_eq!(
            a.authenticate(None, &alert(r#"{"secret":"alt-secret","fund_id":"alt"}"#))
                .unwrap()
                .id,
            "alt"
        );
    }

    #[test]
    fn with_several_accounts_an_alert_must_name_one() {
        assert_eq!(
            accounts()
                .authenticate(None, &alert(r#"{"secret":"old"}"#))
                .unwrap_err(),
            AuthFailure::NoAccount
        );
    }

    #[test]
    fn the_only_account_is_assumed() {
        let a = Accounts::new(vec![Account::new("solo", vec![Secret::new("s")])]);
        assert_eq!(
            a.authenticate(None, &alert(r#"{"secret":"s"}"#))
                .unwrap()
                .id,
            "solo"
        );
    }

    #[test]
    fn failures_are_classified_for_the_log() {
        let a = accounts();
        assert_eq!(
            a.authenticate(Some("nope"), &alert(r#"{"secret":"old"}"#))
                .unwrap_err(),
            AuthFailure::UnknownAccount
        );
        assert_eq!(
            a.authenticate(Some("main"), &alert(r#"{}"#)).unwrap_err(),
            AuthFailure::MissingSecret
        );
        assert_eq!(
            a.authenticate(Some("main"), &alert(r#"{"secret":"alt-secret"}"#))
                .unwrap_err(),
            AuthFailure::WrongSecret
        );
        assert_eq!(
            a.authenticate(Some("main"), &alert(r#"{"secret":123}"#))
                .unwrap_err(),
            AuthFailure::MissingSecret
        );
    }
}
