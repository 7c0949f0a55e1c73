//! alertgate's test kit: the pieces every test suite shares. Dev-only: used by the relay's and
//! the receiver's `[dev-dependencies]` and by the e2e and bench crates, never by a shipped
//! binary.
//!
//! # Layout
//! - [`emulators`]: loopback emulators of Binance, Alpaca and an HTTP OMS, checking requests as
//!   the venues do, with fault injection and request recording.
//! - [`process`]: a built binary as a child process: start with a config, wait until ready,
//!   signals, a log file to read back, restarts on the same data.
//! - [`browser`]: a headless Chromium through chromedriver's W3C WebDriver API.
//! - [`config`]: relay and receiver configs as their own typed settings with test defaults,
//!   written as TOML.
//! - [`tradingview`]: a client that posts alerts as TradingView does.
//! - [`logs`]: what the "no secret in any log line" tests share.
//! - [`wait`]: [`eventually`], polling with a deadline.
//! - [`net`], [`files`]: free loopback ports, temporary folders, secret files.
//! - [`postgres`]: a PostgreSQL schema of its own per test; [`proxy`]: a fault-injecting TCP
//!   proxy (down/up, latency, stalls, resets mid-request, dropped answers), Toxiproxy-style;
//!   [`netns`]: a network namespace joined by veth pairs, for partitions below TCP (root).

pub mod browser;
pub mod config;
pub mod emulators;
pub mod files;
pub mod logs;
pub mod net;
pub mod netns;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod tradingview;
pub mod wait;

pub use files::{secret_file, tempdir};
pub use net::{free_addr, free_port, loopback};
pub use process::{binary, Ready, Service};
pub use tradingview::TradingView;
pub use wait::{eventually, until, TimedOut, WAIT};
