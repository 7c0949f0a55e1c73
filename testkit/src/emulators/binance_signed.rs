//! What Binance Spot and USDⓈ-M futures check alike on a signed request, once for both
//! emulators: `X-MBX-APIKEY` (`-2014`/`-2015`, 401); the signature over the exact received
//! parameter string, which must end with `&signature=` (HMAC hex, or percent-encoded base64
//! Ed25519; `-1022`); each parameter once (`-1101`); `timestamp` within `recvWindow` of the
//! emulator's clock and at most 1 s ahead of it (`-1021`). And the error bodies and decimal
//! syntax both APIs share.

use std::collections::HashMap;
use std::sync::Arc;

use alertgate_shared::{Clock, VerifyingKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::Sha256;
use warp::http::StatusCode;

use super::{json_reply, parse_params, percent_decode, Recorded, Reply};

/// How the emulator checks signatures.
#[derive(Debug, Clone)]
pub enum BinanceAuth {
    /// HMAC-SHA256 with this secret key.
    Hmac(String),
    /// Ed25519 with this public key.
    Ed25519(VerifyingKey),
}

/// The credentials and clock a signed request is checked against.
pub(crate) struct SignedCheck<'a> {
    /// The only accepted `X-MBX-APIKEY`.
    pub api_key: &'a str,
    /// How signatures are checked.
    pub auth: &'a BinanceAuth,
    /// The emulator's "server time".
    pub clock: &'a Arc<dyn Clock>,
}

impl SignedCheck<'_> {
    /// The decoded parameters of `request` (without `signature`), or Binance's refusal.
    pub(crate) fn check(&self, request: &Recorded) -> Result<HashMap<String, String>, Box<Reply>> {
        let Some(key) = request.header("x-mbx-apikey") else {
            return Err(Box::new(err(
                StatusCode::UNAUTHORIZED,
                -2014,
                "API-key format invalid.",
            )));
        };
        if key != self.api_key {
            return Err(Box::new(err(
                StatusCode::UNAUTHORIZED,
                -2015,
                "Invalid API-key, IP, or permissions for action.",
            )));
        }
        // totalParams: the query string concatenated with the body, as Binance defines it.
        let total = format!(
            "{}{}",
            request.query,
            String::from_utf8_lossy(&request.body)
        );
        let Some((payload, encoded_signature)) = total.rsplit_once("&signature=") else {
            return Err(Box::new(mandatory("signature")));
        };
        let signature = percent_decode(encoded_signature);
        let valid = match self.auth {
            BinanceAuth::Hmac(secret) => {
                match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
                    Ok(mut mac) => {
                        mac.update(payload.as_bytes());
                        hex::encode(mac.finalize().into_bytes()).eq_ignore_ascii_case(&signature)
                    }
                    Err(_) => false,
                }
            }
            BinanceAuth::Ed25519(key) => B64
                .decode(&signature)
                .ok()
                .and_then(|raw| <[u8; 64]>::try_from(raw.as_slice()).ok())
                .is_some_and(|raw| key.verify_strict(payload.as_bytes(), &raw)),
        };
        if !valid {
            return Err(Box::new(bad(
                -1022,
                "Signature for this request is not valid.",
            )));
        }
        let mut params = HashMap::new();
        for (k, v) in parse_params(payload) {
            if params.insert(k, v).is_some() {
                return Err(Box::new(bad(
                    -1101,
                    "Duplicate values for a parameter detected.",
                )));
            }
        }
        let Some(timestamp) = params.get("timestamp").and_then(|t| t.parse::<i64>().ok()) else {
            return Err(Box::new(mandatory("timestamp")));
        };
        let recv_window = match params.get("recvWindow").map(|w| w.parse::<i64>()) {
            None => 5000,
            Some(Ok(w)) if (1..=60_000).contains(&w) => w,
            Some(_) => return Err(Box::new(bad(-1131, "recvWindow must be less than 60000"))),
        };
        let server_time = self.clock.now_unix_ms();
        if !(timestamp < server_time + 1000 && server_time - timestamp <= recv_window) {
            return Err(Box::new(bad(
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            )));
        }
        Ok(params)
    }
}

/// `{"code","msg"}` with `status`.
pub(crate) fn err(status: StatusCode, code: i64, msg: &str) -> Reply {
    json_reply(status, &json!({"code": code, "msg": msg}))
}

/// `{"code","msg"}` with 400.
pub(crate) fn bad(code: i64, msg: &str) -> Reply {
    err(StatusCode::BAD_REQUEST, code, msg)
}

/// `-1102` naming the missing parameter.
pub(crate) fn mandatory(name: &str) -> Reply {
    bad(
        -1102,
        &format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

/// Binance's decimal syntax: plain digits, at most one point, no sign or exponent.
pub(crate) fn plain_decimal(value: &str) -> Option<Decimal> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    let ok = !int.is_empty()
        && int.len() <= 20
        && frac.len() <= 20
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| value.parse().ok()).flatten()
}

impl SignedCheck<'_> {
    /// Binance's refusal of `request`, or `then`'s answer to its decoded parameters.
    pub(crate) fn answer(
        &self,
        request: &Recorded,
        then: impl FnOnce(&HashMap<String, String>) -> Reply,
    ) -> Reply {
        match self.check(request) {
            Ok(params) => then(&params),
            Err(refusal) => *refusal,
        }
    }
}

/// The body of an injected fault: `rate_limited` (the API's own `-1003` text) for 429, else
/// `-1007` (status unknown).
pub(crate) fn fault_body(status: u16, rate_limited: &str) -> Value {
    match status {
        429 => json!({"code": -1003, "msg": rate_limited}),
        _ => {
            json!({"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown; execution status unknown."})
        }
    }
}

/// A client id of 1 to 36 characters from ASCII letters, digits and `also`.
pub(crate) fn valid_client_id(id: &str, also: &[u8]) -> bool {
    (1..=36).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || also.contains(&b))
}

/// The non-empty parameter `name`.
pub(crate) fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a String> {
    params.get(name).filter(|v| !v.is_empty())
}

/// Each `(name, needed)`: `-1102` when a needed one is missing, `-1106` when one not needed
/// was sent.
pub(crate) fn check_presence(
    params: &HashMap<String, String>,
    names: &[(&str, bool)],
) -> Result<(), Box<Reply>> {
    for (name, needed) in names {
        match (needed, param(params, name)) {
            (true, None) => return Err(Box::new(mandatory(name))),
            (false, Some(_)) => {
                return Err(Box::new(bad(
                    -1106,
                    &format!("Parameter '{name}' sent when not required."),
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The decimal parameter `name` (plain notation), `-1100` when it is malformed.
pub(crate) fn decimal_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Decimal>, Box<Reply>> {
    param(params, name)
        .map(|v| {
            plain_decimal(v).ok_or_else(|| {
                Box::new(bad(-1100, &format!("Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.")))
            })
        })
        .transpose()
}

/// Which order a query or cancel names: `symbol` and `orderId` or `origClientOrderId` (`-1102`
/// when both are missing).
pub(crate) struct OrderKey {
    /// `symbol`.
    pub symbol: String,
    /// `origClientOrderId`.
    pub client_order_id: Option<String>,
    /// `orderId`.
    pub order_id: Option<i64>,
}

impl OrderKey {
    /// The key `params` give, or Binance's refusal (`-1102`; `-1121` for a symbol `known`
    /// refuses).
    pub(crate) fn from_params(
        params: &HashMap<String, String>,
        known: impl FnOnce(&str) -> bool,
    ) -> Result<Self, Box<Reply>> {
        let Some(symbol) = params.get("symbol").cloned() else {
            return Err(Box::new(mandatory("symbol")));
        };
        if !known(&symbol) {
            return Err(Box::new(bad(-1121, "Invalid symbol.")));
        }
        let client_order_id = params.get("origClientOrderId").cloned();
        let order_id = params.get("orderId").and_then(|i| i.parse::<i64>().ok());
        if client_order_id.is_none() && order_id.is_none() {
            return Err(Box::new(bad(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )));
        }
        Ok(Self {
            symbol,
            client_order_id,
            order_id,
        })
    }

    /// `true` for the order (symbol, client id, order id) this key names.
    pub(crate) fn names(&self, symbol: &str, client_order_id: &str, order_id: i64) -> bool {
        self.symbol == symbol
            && self
                .client_order_id
                .as_deref()
                .is_none_or(|c| c == client_order_id)
            && self.order_id.is_none_or(|i| i == order_id)
    }
}

/// `-1104` naming the first parameter of `params` not in `known`.
pub(crate) fn check_known(
    params: &HashMap<String, String>,
    known: &[&str],
) -> Result<(), Box<Reply>> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(Box::new(bad(
            -1104,
            &format!("Not all sent parameters were read; '{unknown}' was not."),
        ))),
        None => Ok(()),
    }
}
