//! Reading fields out of one alert object: alias families, text values and exact decimals.
//!
//! Every value may arrive as a JSON string or a JSON number (TradingView placeholders expand to
//! text, and users quote them or not). `null` and blank strings mean "absent". Decimals are parsed
//! from their text, never through a float, so `"0.1"` and `0.1` are the same `Decimal`.

use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};

use super::Invalid;
use crate::order::Positive;

/// The most significant digits a JSON number (held by serde_json as an `f64`) is trusted to carry.
/// Any decimal with at most 15 significant digits survives the `f64` round trip exactly (its shortest
/// text is the text that was sent); beyond that the sender's text may already be lost, so such
/// numbers must be sent as strings. serde_json's default float parser can be one unit off in the
/// last place for unusual inputs; such a value has more than 15 digits in its shortest text, so it
/// is refused, never silently changed.
const F64_EXACT_DIGITS: usize = 15;

/// The largest scale a `Decimal` holds.
const MAX_SCALE: i64 = 28;

/// One JSON object of the alert (the alert itself or one of its legs), with the path that names
/// its fields in error messages (`""` at the top, `"legs[1]."` inside a leg).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obj<'a> {
    /// The fields.
    pub(crate) map: &'a Map<String, Value>,
    /// Prefix for field names in [`Invalid`], ending with `.` when not empty.
    pub(crate) prefix: &'a str,
}

impl<'a> Obj<'a> {
    /// The full name of `key` in this object, as errors report it.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// An [`Invalid`] for `key` of this object.
    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> Invalid {
        Invalid::new(self.name(key), message)
    }

    /// The aliases that are present with a value (neither `null` nor a blank string), in alias order.
    pub(crate) fn present(&self, aliases: &[&'static str]) -> Vec<(&'static str, &'a Value)> {
        aliases
            .iter()
            .filter_map(|&key| {
                self.map
                    .get(key)
                    .filter(|v| !is_absent(v))
                    .map(|v| (key, v))
            })
            .collect()
    }

    /// The value of a field known under several aliases, parsed with `parse`.
    ///
    /// Two aliases that are both present must mean the same thing (compared after parsing, so
    /// `"side":"BUY"` agrees with `"action":"buy"`); otherwise the alert is invalid, naming both.
    /// Returns the alias that was used with the value.
    pub(crate) fn one<T: PartialEq>(
        &self,
        aliases: &[&'static str],
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Option<(&'static str, T)>, Invalid> {
        let mut found: Option<(&'static str, T)> = None;
        for (key, raw) in self.present(aliases) {
            let value = parse(raw).map_err(|message| self.invalid(key, message))?;
            match &found {
                None => found = Some((key, value)),
                Some((first, earlier)) if *earlier != value => {
                    return Err(Invalid::new(
                        format!("{}, {}", self.name(first), self.name(key)),
                        format!("`{first}` and `{key}` are the same field and disagree; give one of them"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(found)
    }

    /// Like [`Obj::one`] without the alias that was used.
    pub(crate) fn value<T: PartialEq>(
        &self,
        aliases: &[&'static str],
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, Invalid> {
        Ok(self.one(aliases, parse)?.map(|(_, v)| v))
    }

    /// Like [`Obj::value`], but a missing field is invalid, named by its first alias.
    pub(crate) fn required<T: PartialEq>(
        &self,
        aliases: &[&'static str],
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<T, Invalid> {
        self.value(aliases, parse)?
            .ok_or_else(|| self.invalid(aliases.first().copied().unwrap_or("?"), "is missing"))
    }
}

/// `null` or a string of only whitespace: treated as if the field were not there.
pub(crate) fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// A text value: a string (trimmed) or a number written as text.
pub(crate) fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(_) => Err("must be a string, not true/false".into()),
        Value::Array(_) => Err("must be a string, not an array".into()),
        Value::Object(_) => Err("must be a string, not an object".into()),
        Value::Null => Err("is missing".into()),
    }
}

/// A text value of at most `max` characters (ids, account and strategy names).
pub(crate) fn short_text(v: &Value, max: usize) -> Result<String, String> {
    let s = text(v)?;
    if s.chars().count() > max {
        return Err(format!("is longer than {max} characters"));
    }
    Ok(s)
}

/// An exact decimal from a JSON string or number.
/// An RFC 3339 instant (`2026-03-09T13:35:00Z`, what TradingView's `{{timenow}}` writes), as
/// unix milliseconds.
pub(crate) fn instant_ms(v: &Value) -> Result<i64, String> {
    let expected = || {
        "expected an RFC 3339 time such as \"2026-03-09T13:35:00Z\" (TradingView's {{timenow}})"
            .to_owned()
    };
    let Value::String(s) = v else {
        return Err(expected());
    };
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| expected())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| expected())
}

pub(crate) fn decimal(v: &Value) -> Result<Decimal, String> {
    match v {
        Value::String(s) => parse_decimal(s).map_err(|e| e.describe(s)),
        Value::Number(n) => number(n),
        Value::Bool(_) => Err("must be a number (or a string holding one), not true/false".into()),
        Value::Array(_) => Err("must be a number (or a string holding one), not an array".into()),
        Value::Object(_) => Err("must be a number (or a string holding one), not an object".into()),
        Value::Null => Err("is missing".into()),
    }
}

/// A strictly positive decimal (a quantity or a price).
pub(crate) fn positive(v: &Value) -> Result<Positive, String> {
    let d = decimal(v)?;
    Positive::new(d).map_err(|_| format!("must be greater than zero (got {})", shown(d)))
}

/// A decimal that is zero or more.
pub(crate) fn non_negative(v: &Value) -> Result<Decimal, String> {
    let d = decimal(v)?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("must not be negative (got {})", shown(d)));
    }
    Ok(d)
}

fn shown(d: Decimal) -> String {
    d.normalize().to_string()
}

/// A JSON number. Integers are exact; other numbers are `f64` inside serde_json (this workspace
/// does not enable `arbitrary_precision`), whose shortest text is exact up to 15 significant digits.
fn number(n: &Number) -> Result<Decimal, String> {
    let s = n.to_string();
    if n.is_f64() {
        let parts = Parts::parse(&s).map_err(|e| e.describe(&s))?;
        if parts.digits.len() > F64_EXACT_DIGITS {
            return Err(format!(
                "has more than {F64_EXACT_DIGITS} significant digits, more than a JSON number carries \
                 exactly; send it as a string (\"…\")"
            ));
        }
    }
    parse_decimal(&s).map_err(|e| e.describe(&s))
}

/// Why a text is not an acceptable decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalError {
    /// Not decimal notation at all (`NaN`, `inf`, `1,5`, `0x10`, ...).
    Syntax,
    /// Beyond what a `Decimal` holds (`1e400`).
    OutOfRange,
    /// More than 28 digits after the decimal point (`1e-30`).
    TooPrecise,
}

impl DecimalError {
    fn describe(self, text: &str) -> String {
        let text: String = text.trim().chars().take(40).collect();
        match self {
            Self::Syntax => format!("is not a decimal number (got `{text}`)"),
            Self::OutOfRange => format!("is out of range (got `{text}`)"),
            Self::TooPrecise => format!("has more than 28 decimal places (got `{text}`)"),
        }
    }
}

/// Significant digits and a power of ten: the value is `±digits × 10^exponent`, with no leading or
/// trailing zeros in `digits` (empty for zero).
struct Parts {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Parts {
    /// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`, nothing else (no `_`, no spaces
    /// inside, no `NaN`/`inf`).
    fn parse(s: &str) -> Result<Self, DecimalError> {
        let s = s.trim().as_bytes();
        let mut i = 0;
        let negative = match s.first() {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let mut digits = Vec::new();
        let mut mantissa_digits = 0usize;
        let mut fraction_len: i64 = 0;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            digits.push(c - b'0');
            mantissa_digits += 1;
            i += 1;
        }
        if s.get(i) == Some(&b'.') {
            i += 1;
            while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
                digits.push(c - b'0');
                mantissa_digits += 1;
                fraction_len += 1;
                i += 1;
            }
        }
        if mantissa_digits == 0 {
            return Err(DecimalError::Syntax);
        }
        let mut exponent: i64 = 0;
        if matches!(s.get(i), Some(b'e' | b'E')) {
            i += 1;
            let exp_negative = match s.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let start = i;
            while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
                // Saturate: anything this large is out of range (or zero) anyway.
                exponent = exponent
                    .saturating_mul(10)
                    .saturating_add(i64::from(c - b'0'));
                exponent = exponent.min(1_000_000);
                i += 1;
            }
            if i == start {
                return Err(DecimalError::Syntax);
            }
            if exp_negative {
                exponent = -exponent;
            }
        }
        if i != s.len() {
            return Err(DecimalError::Syntax);
        }
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        let mut exponent = exponent - fraction_len;
        while digits.last() == Some(&0) {
            digits.pop();
            exponent += 1;
        }
        Ok(Self {
            negative,
            digits,
            exponent,
        })
    }
}

/// Parses decimal text exactly: plain (`42000.50`) or scientific (`1e-5`, `4.2E+4`) notation.
/// Zero in any form (`-0`, `0e9`) is `Decimal::ZERO`. Never rounds: a value a `Decimal` cannot hold
/// exactly is an error.
pub fn parse_decimal(s: &str) -> Result<Decimal, DecimalError> {
    let parts = Parts::parse(s)?;
    if parts.digits.is_empty() {
        return Ok(Decimal::ZERO);
    }
    // Decimal's mantissa is 96 bits: at most 29 digits.
    if parts.digits.len() > 29 {
        return Err(
            if parts.exponent < 0 && parts.digits.len() as i64 + parts.exponent <= 29 {
                DecimalError::TooPrecise
            } else {
                DecimalError::OutOfRange
            },
        );
    }
    let mantissa = parts
        .digits
        .iter()
        .fold(0i128, |acc, &d| acc * 10 + i128::from(d));
    let value = if parts.exponent >= 0 {
        if parts.exponent > MAX_SCALE {
            return Err(DecimalError::OutOfRange);
        }
        let scaled = u32::try_from(parts.exponent)
            .ok()
            .and_then(|e| 10i128.checked_pow(e))
            .and_then(|p| mantissa.checked_mul(p))
            .ok_or(DecimalError::OutOfRange)?;
        Decimal::try_from_i128_with_scale(scaled, 0).map_err(|_| DecimalError::OutOfRange)?
    } else {
        let scale = -parts.exponent;
        if scale > MAX_SCALE {
            return Err(DecimalError::TooPrecise);
        }
        let scale = u32::try_from(scale).map_err(|_| DecimalError::TooPrecise)?;
        Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| DecimalError::OutOfRange)?
    };
    Ok(if parts.negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn plain_and_scientific_notation_parse_exactly() {
        assert_eq!(parse_decimal("42000.00"), Ok(d("42000")));
        assert_eq!(parse_decimal(" 0.1 "), Ok(d("0.1")));
        assert_eq!(parse_decimal("1e-5"), Ok(d("0.00001")));
        assert_eq!(parse_decimal("4.2E+4"), Ok(d("42000")));
        assert_eq!(parse_decimal("1.5e1"), Ok(d("15")));
        assert_eq!(parse_decimal(".5"), Ok(d("0.5")));
        assert_eq!(parse_decimal("5."), Ok(d("5")));
        assert_eq!(parse_decimal("+3"), Ok(d("3")));
        assert_eq!(parse_decimal("-2.50"), Ok(d("-2.5")));
        assert_eq!(parse_decimal("-0"), Ok(Decimal::ZERO));
        assert_eq!(parse_decimal("0e999999999999"), Ok(Decimal::ZERO));
        assert_eq!(
            parse_decimal("1000e-31"),
            Ok(d("0.0000000000000000000000000001"))
        );
        assert_eq!(
            parse_decimal("79228162514264337593543950335"),
            Ok(Decimal::MAX)
        );
    }

    #[test]
    fn text_that_is_not_a_finite_decimal_is_refused() {
        for bad in [
            "NaN",
            "nan",
            "inf",
            "-Infinity",
            "",
            ".",
            "1,5",
            "1_000",
            "0x10",
            "1e",
            "1e+",
            "--1",
            "1 2",
            "e5",
        ] {
            assert_eq!(parse_decimal(bad), Err(DecimalError::Syntax), "{bad}");
        }
        assert_eq!(parse_decimal("1e400"), Err(DecimalError::OutOfRange));
        assert_eq!(
            parse_decimal("79228162514264337593543950336"),
            Err(DecimalError::OutOfRange)
        );
        assert_eq!(parse_decimal("1e29"), Err(DecimalError::OutOfRange));
        assert_eq!(parse_decimal("1e-29"), Err(DecimalError::TooPrecise));
        assert_eq!(parse_decimal("1e-400"), Err(DecimalError::TooPrecise));
    }

    #[test]
    fn json_floats_beyond_fifteen_significant_digits_must_be_strings() {
        let v: Value = serde_json::from_str("0.12345678901234567").unwrap();
        assert!(decimal(&v).unwrap_err().contains("send it as a string"));
        let v: Value = serde_json::from_str("123456789012345678901").unwrap();
        assert!(decimal(&v).is_err());
        let v: Value = serde_json::from_str("0.0000000001").unwrap();
        assert_eq!(decimal(&v), Ok(d("0.0000000001")));
        let v: Value = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(decimal(&v), Ok(d("18446744073709551615")));
    }
}
