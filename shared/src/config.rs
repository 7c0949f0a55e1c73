//! Loading TOML configuration: unknown keys are errors, and every error names the file, the key
//! and what is wrong. Each service defines its own `deny_unknown_fields` structs; this module reads
//! them and gives the shared pieces (logging).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the key and position.
        message: String,
    },
    /// Parsed, but a value is not acceptable.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `forward.url`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A value that is wrong, before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    /// The dotted key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Attaches the file name.
    pub fn in_file(self, path: &Path) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_owned(),
            key: self.key,
            message: self.message,
        }
    }
}

/// Reads and parses `path`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses TOML text that came from `origin`.
pub fn parse<T: DeserializeOwned>(text: &str, origin: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_owned(),
        message: describe(text, &e),
    })
}

/// The parser's message with the line and dotted key it concerns. The offending source line is
/// deliberately not quoted: it could hold a literal secret.
fn describe(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let Some(span) = err.span() else {
        return message.to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line
        .split_once('=')
        .filter(|(k, _)| line_start + k.len() <= span.start)
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    match (table, key) {
        (Some(t), Some(k)) => format!("line {line_no}, key `{t}.{k}`: {message}"),
        (None, Some(k)) => format!("line {line_no}, key `{k}`: {message}"),
        _ => format!("line {line_no}: {message}"),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line, for log shippers.
    Json,
}

/// `[log]`: shared by both services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `plain` or `json`.
    pub format: LogFormat,
    /// A `RUST_LOG`-style filter; the `RUST_LOG` environment variable overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Plain,
            level: "info".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        server: Server,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Server {
        listen: String,
    }

    #[test]
    fn an_unknown_key_is_named_with_the_file() {
        let err = parse::<Sample>(
            "[server]\nlisten = \"x\"\nlisen = 1\n",
            Path::new("relay.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("relay.toml:"), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn a_literal_secret_in_a_config_is_refused_with_its_key() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct S {
            token: crate::SecretRef,
        }
        let err = parse::<S>("token = \"abc123\"\n", Path::new("r.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("token"), "{err}");
        assert!(err.contains("env:NAME"), "{err}");
        assert!(
            !err.contains("abc123"),
            "the refused literal must not be echoed: {err}"
        );
    }
}
