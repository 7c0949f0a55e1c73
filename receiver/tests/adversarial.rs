//! Adversarial tests of the receiver, one module per threat family of SECURITY.md: replayed
//! deliveries, hostile numbers and bodies from a relay that signs anything, silent connections,
//! secrets in logs, file permissions, and the inputs the fuzzers found (kept as regression tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

#[path = "adversarial/bodies.rs"]
mod bodies;
#[path = "adversarial/connections.rs"]
mod connections;
#[path = "adversarial/fuzz_regressions.rs"]
mod fuzz_regressions;
#[path = "adversarial/logs.rs"]
mod logs;
#[path = "adversarial/numbers.rs"]
mod numbers;
#[path = "adversarial/permissions.rs"]
mod permissions;
#[path = "adversarial/replay.rs"]
mod replay;
