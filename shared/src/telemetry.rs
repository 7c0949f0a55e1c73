//! Log initialisation: plain or JSON lines on stderr, filtered like `RUST_LOG`.
//!
//! The filter is a list of `target=level` directives with an optional bare default level
//! (`info,alertgate_receiver=debug`): tracing-subscriber's `Targets`, which needs no regex
//! engine (`EnvFilter` compiled one into both binaries for span-field filters nobody used).

use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogConfig, LogFormat};

/// The filter `RUST_LOG` (when set and valid) or else `level` describes; `info` if neither parses.
pub fn filter(level: &str) -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|env| Targets::from_str(&env).ok())
        .or_else(|| Targets::from_str(level).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `config.level`. Calling it a
/// second time (as tests do) is harmless.
pub fn init(config: &LogConfig) {
    let filter = filter(&config.level);
    let registry = tracing_subscriber::registry().with(filter);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Plain => registry.with(fmt).try_init(),
        LogFormat::Json => registry
            .with(fmt.json().flatten_event(true).with_current_span(false))
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn a_default_level_and_per_target_levels_are_understood() {
        let f = Targets::from_str("warn,alertgate_receiver=debug").expect("parses");
        assert!(f.would_enable("alertgate_receiver::executor", &Level::DEBUG));
        assert!(!f.would_enable("alertgate_receiver::executor", &Level::TRACE));
        assert!(f.would_enable("hyper", &Level::WARN));
        assert!(!f.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn an_unreadable_level_falls_back_to_info() {
        // `filter` prefers RUST_LOG; only check the fallback when the test runner has none.
        if std::env::var_os("RUST_LOG").is_none() {
            let f = filter("not a=level=at all");
            assert!(f.would_enable("anything", &Level::INFO));
            assert!(!f.would_enable("anything", &Level::DEBUG));
        }
    }
}
