//! Binance USDⓈ-M futures answers that are not the order: the HTTP status and `{"code","msg"}`
//! sorted into what the caller does next, with a reason a user can act on. The codes are the
//! futures API's own list (Error Codes, "USDⓈ-M Futures"); the ones an alert can meet are named
//! here, the rest are refusals carrying Binance's code and message.

#[cfg(test)]
use reqwest::StatusCode;

use crate::broker::binance::rest::{Classified, Dialect};
#[cfg(test)]
use crate::broker::http::Answer;
use crate::broker::BrokerError;

/// Futures' words and its own codes.
pub(super) static FUTURES: Dialect = Dialect {
    venue: "Binance futures",
    credentials_hint: "check api_key and api_secret/private_key, that the key has futures \
                       trading enabled and its IP restrictions; testnet keys only work on \
                       testnet.binancefuture.com",
    codes: futures_codes,
};

/// Maps Binance futures' HTTP status and `{"code","msg"}` to what a user can act on.
#[cfg(test)]
fn classify(answer: &Answer) -> Classified {
    crate::broker::binance::rest::classify(answer, &FUTURES)
}

/// The futures codes an alert can meet beyond those both APIs share.
fn futures_codes(code: i64, msg: &str, seen: &str) -> Option<Classified> {
    let rejected = |message: String| Some(Classified::Final(BrokerError::Rejected { message }));
    let invalid = |message: String| Some(Classified::Final(BrokerError::Invalid { message }));
    match code {
        -4116 => Some(Classified::Duplicate(msg.to_owned())),
        -2019 => rejected(format!(
            "margin insufficient at Binance futures for this order ({seen}): add margin to the \
             futures wallet, lower the quantity or raise the leverage"
        )),
        -2018 => rejected(format!(
            "balance insufficient at Binance futures for this order ({seen})"
        )),
        -2022 => rejected(format!(
            "Binance futures refused the reduce-only order ({seen}): there is no position (or a \
             smaller one) on that side to reduce; it may have been closed at the venue"
        )),
        -2021 => rejected(format!(
            "the order would trigger at once at Binance futures ({seen}): the stop price is \
             already crossed"
        )),
        -2027 => rejected(format!(
            "the position would exceed Binance futures' maximum at the current leverage ({seen}): \
             lower the quantity or the leverage"
        )),
        -4164 => invalid(format!(
            "the order's value is below Binance futures' minimum notional ({seen}): raise the \
             quantity"
        )),
        -1111 => invalid(format!(
            "quantity or price has more decimals than Binance futures allows for the symbol \
             ({seen})"
        )),
        -4003 => invalid(format!(
            "the quantity must be above zero after rounding to the symbol's step ({seen})"
        )),
        -4001 | -4002 | -4004 | -4005 | -4006 | -4007 | -4013 | -4014 | -4023 | -4024 | -4016 => {
            invalid(format!(
                "Binance futures refused the order's size or price ({seen})"
            ))
        }
        -4120 => invalid(format!(
            "Binance futures takes stop orders only through its Algo Order API ({seen}); send \
             market or limit orders"
        )),
        -4061 | -4062 => rejected(format!(
            "the Binance futures account is in Hedge Mode ({seen}); alertgate trades in One-way \
             Mode: switch Position Mode to One-way"
        )),
        -4028 | -4161 | -4202 | -4203 | -4205 | -4206 | -4208 | -4209 | -4403 => rejected(format!(
            "Binance futures refused the leverage ({seen}): change [broker.binance_futures] \
             leverage"
        )),
        -4087 | -4088 | -4400 | -4401 => rejected(format!(
            "Binance futures allows this account only reduce-only orders right now ({seen})"
        )),
        -2023 => rejected(format!(
            "the Binance futures account is being liquidated ({seen})"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    fn final_of(status: u16, code: i64, msg: &str) -> BrokerError {
        match classify(&answer(
            status,
            &format!(r#"{{"code":{code},"msg":"{msg}"}}"#),
        )) {
            Classified::Final(e) => e,
            other => panic!("{code}: {other:?}"),
        }
    }

    #[test]
    fn the_futures_codes_that_matter_become_readable_rejections_or_invalid_orders() {
        let BrokerError::Rejected { message } = final_of(400, -2019, "Margin is insufficient.")
        else {
            panic!()
        };
        assert!(message.contains("margin insufficient") && message.contains("-2019"));
        let BrokerError::Rejected { message } =
            final_of(400, -2022, "ReduceOnly Order is rejected.")
        else {
            panic!()
        };
        assert!(message.contains("reduce-only"), "{message}");
        for (code, msg) in [
            (
                -4164,
                "Order's notional must be no smaller than 5 (unless you choose reduce only).",
            ),
            (
                -1111,
                "Precision is over the maximum defined for this asset.",
            ),
            (-4003, "Quantity less than or equal to zero."),
        ] {
            assert!(
                matches!(final_of(400, code, msg), BrokerError::Invalid { .. }),
                "{code}"
            );
        }
        for (code, msg) in [
            (-2021, "Order would immediately trigger."),
            (
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ),
            (
                -4061,
                "Order's position side does not match user's setting.",
            ),
        ] {
            assert!(
                matches!(final_of(400, code, msg), BrokerError::Rejected { .. }),
                "{code}"
            );
        }
    }

    #[test]
    fn rate_limits_are_transient_with_the_venues_retry_after_and_5xx_are_unknown() {
        let mut limited = answer(429, r#"{"code":-1003,"msg":"Too many requests."}"#);
        limited
            .headers
            .insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let Classified::Final(BrokerError::Transient { retry_after, .. }) = classify(&limited)
        else {
            panic!()
        };
        assert_eq!(retry_after, Some(std::time::Duration::from_secs(7)));
        assert!(matches!(
            classify(&answer(418, "")),
            Classified::Final(BrokerError::Transient { .. })
        ));
        assert!(matches!(classify(&answer(503, "")), Classified::Unknown(_)));
        assert!(matches!(
            classify(&answer(
                400,
                r#"{"code":-1007,"msg":"Timeout waiting for response from backend server."}"#
            )),
            Classified::Unknown(_)
        ));
        assert!(matches!(
            classify(&answer(
                400,
                r#"{"code":-4116,"msg":"ClientOrderId is duplicated."}"#
            )),
            Classified::Duplicate(_)
        ));
    }
}
