//! Secret values and the config syntax that points at them.
//!
//! A secret is never written literally in a config file: it is `env:NAME` (an environment variable)
//! or `file:PATH` (a file, trailing newline trimmed). [`Secret`] holds the resolved value, prints as
//! `[redacted]` and is zeroized when dropped.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret value: compared in constant time, never printed, wiped on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The value itself. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with `candidate` (the length difference alone may leak, which is
    /// unavoidable and harmless for random secrets).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret reference could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A literal value where a reference was expected.
    #[error(
        "secrets are never written literally in a config file: write \"env:NAME\" to read the \
         environment variable NAME, or \"file:PATH\" to read a file"
    )]
    Literal,
    /// `env:` with nothing after it, or `file:` with no path.
    #[error("empty secret reference {0:?}: name the environment variable or file")]
    Empty(String),
    /// The environment variable is not set (or not UTF-8).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The environment variable or file is empty.
    #[error("{0} is empty")]
    EmptyValue(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    File {
        /// The file named by the reference.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Where a secret comes from: `env:NAME` or `file:PATH`. Deserializing a literal value fails with
/// an error that says how to write it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file; relative paths are relative to the working directory.
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:PATH`.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() {
                return Err(SecretError::Empty(s.to_owned()));
            }
            Ok(Self::Env(name.to_owned()))
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(SecretError::Empty(s.to_owned()));
            }
            Ok(Self::File(PathBuf::from(path)))
        } else {
            Err(SecretError::Literal)
        }
    }

    /// Reads the secret now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            Self::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))?
            }
            Self::File(path) => read_secret_file(path)?,
        };
        let trimmed = value.trim_end_matches(['\n', '\r']);
        if trimmed.is_empty() {
            return Err(SecretError::EmptyValue(self.to_string()));
        }
        Ok(Secret::new(trimmed))
    }

    /// The file this reference reads, if any (used to check permissions).
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::File(p) => Some(p),
            Self::Env(_) => None,
        }
    }
}

fn read_secret_file(path: &Path) -> Result<String, SecretError> {
    std::fs::read_to_string(path).map_err(|source| SecretError::File {
        path: path.to_owned(),
        source,
    })
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "env:{name}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Wrapped so a literal secret is wiped from memory even when it is refused.
        let raw = Zeroizing::new(String::deserialize(d)?);
        SecretRef::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_secret_is_refused_with_advice() {
        let err = SecretRef::parse("hunter2").unwrap_err().to_string();
        assert!(err.contains("env:NAME"), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn a_file_secret_has_its_trailing_newline_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "abc\n").unwrap();
        let r = SecretRef::parse(&format!("file:{}", path.display())).unwrap();
        assert_eq!(r.resolve().unwrap().expose(), "abc");
    }

    #[test]
    fn a_missing_env_var_is_named() {
        let r = SecretRef::parse("env:ALERTGATE_TEST_SURELY_UNSET_VAR").unwrap();
        let err = r.resolve().unwrap_err().to_string();
        assert!(err.contains("ALERTGATE_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("topsecret");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert!(s.matches(b"topsecret"));
        assert!(!s.matches(b"topsecreT"));
        assert!(!s.matches(b"topsecre"));
    }
}
