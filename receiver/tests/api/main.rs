//! The receiver's HTTP contract (receiver/README.md), end to end through real sockets, real SQLite
//! files and, for restarts, the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod config;
mod controls;
mod copies;
mod dashboard;
mod dashboard_browser;
mod delivery;
mod helpers;
mod lifecycle;
mod lost_answers;
mod notify;
mod ops;
mod positions;
mod process;
mod replay;
mod risk_gates;
mod several;
mod signatures;
mod targets;
mod tls;
