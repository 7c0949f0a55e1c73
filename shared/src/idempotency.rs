//! The alert's idempotency key: the one rule the relay's duplicate window and the receiver's
//! dedupe both apply, so that a key the relay accepts is never refused by the receiver.
//!
//! The key is the value of the first of [`KEY_FIELDS`] present in the alert object (`null` and
//! blank strings count as absent). Strings are trimmed; numbers are written as their JSON text.
//! The fields are aliases of one field, so when several are present they must agree. A key that
//! is not text, is longer than [`MAX_KEY_CHARS`] characters, or disagrees with an alias is a
//! [`KeyError`] naming the field: the relay answers it with a 400, before anything is accepted.

use serde_json::{Map, Value};

/// The alert fields that carry the idempotency key, in order of preference.
pub const KEY_FIELDS: [&str; 4] = ["id", "idempotency_key", "client_ref", "client_order_id"];

/// The longest key accepted, in characters (`char`s, after trimming).
pub const MAX_KEY_CHARS: usize = 128;

/// Why an alert's idempotency key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct KeyError {
    /// The field at fault (`id`), or both fields when two aliases disagree (`id, client_ref`).
    pub field: String,
    /// What is wrong, for the person who wrote the alert template.
    pub message: String,
}

/// The alert's idempotency key, `None` when it has none.
pub fn idempotency_key(alert: &Map<String, Value>) -> Result<Option<String>, KeyError> {
    let mut found: Option<(&str, String)> = None;
    for field in KEY_FIELDS {
        let Some(raw) = alert.get(field).filter(|v| !is_absent(v)) else {
            continue;
        };
        let key = key_text(raw).map_err(|message| KeyError {
            field: field.to_owned(),
            message,
        })?;
        match &found {
            None => found = Some((field, key)),
            Some((first, earlier)) if *earlier != key => {
                return Err(KeyError {
                    field: format!("{first}, {field}"),
                    message: format!(
                        "`{first}` and `{field}` are the same field and disagree; give one of them"
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(found.map(|(_, key)| key))
}

/// `null` or a string of only whitespace: as if the field were not there.
fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn key_text(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(_) => return Err("must be a string, not true/false".into()),
        Value::Array(_) => return Err("must be a string, not an array".into()),
        Value::Object(_) => return Err("must be a string, not an object".into()),
        Value::Null => return Err("is missing".into()),
    };
    if text.chars().count() > MAX_KEY_CHARS {
        return Err(format!("is longer than {MAX_KEY_CHARS} characters"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).expect("test alert is a JSON object")
    }

    fn key(json: &str) -> Result<Option<String>, KeyError> {
        idempotency_key(&alert(json))
    }

    #[test]
    fn the_first_present_field_gives_the_key_and_numbers_are_their_text() {
        assert_eq!(key(r#"{"id":" a ","symbol":"x"}"#), Ok(Some("a".into())));
        assert_eq!(key(r#"{"client_order_id":42}"#), Ok(Some("42".into())));
        assert_eq!(key(r#"{"id":"","client_ref":"c"}"#), Ok(Some("c".into())));
        assert_eq!(
            key(r#"{"id":null,"idempotency_key":7.5}"#),
            Ok(Some("7.5".into()))
        );
        assert_eq!(key(r#"{"symbol":"x"}"#), Ok(None));
    }

    #[test]
    fn aliases_that_agree_are_one_key_and_aliases_that_disagree_are_refused() {
        assert_eq!(key(r#"{"id":"a","client_ref":"a"}"#), Ok(Some("a".into())));
        assert_eq!(key(r#"{"id":"7","client_ref":7}"#), Ok(Some("7".into())));
        let err = key(r#"{"idempotency_key":"a","client_ref":"b"}"#).unwrap_err();
        assert_eq!(err.field, "idempotency_key, client_ref");
    }

    #[test]
    fn a_key_of_128_characters_is_accepted_and_129_is_refused_naming_the_field() {
        let ok = "é".repeat(MAX_KEY_CHARS);
        assert_eq!(key(&format!(r#"{{"id":"{ok}"}}"#)), Ok(Some(ok)));
        let long = "x".repeat(MAX_KEY_CHARS + 1);
        let err = key(&format!(r#"{{"client_ref":"{long}"}}"#)).unwrap_err();
        assert_eq!(err.field, "client_ref");
        assert!(err.message.contains("128"), "{}", err.message);
    }

    #[test]
    fn a_key_that_is_not_text_is_refused() {
        for bad in [r#"{"id":true}"#, r#"{"id":[1]}"#, r#"{"id":{"a":1}}"#] {
            assert_eq!(key(bad).unwrap_err().field, "id", "{bad}");
        }
    }
}
