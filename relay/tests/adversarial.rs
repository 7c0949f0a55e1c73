//! Adversarial tests of the relay, one module per threat family of SECURITY.md: header floods,
//! hostile bodies, slow clients, connection floods, secret guessing, secrets in logs, SSRF, file
//! permissions, and the inputs the fuzzers found (kept as regression tests).
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
#[path = "adversarial/guessing.rs"]
mod guessing;
#[path = "adversarial/headers.rs"]
mod headers;
#[path = "adversarial/logs.rs"]
mod logs;
#[path = "adversarial/permissions.rs"]
mod permissions;
#[path = "adversarial/raw.rs"]
mod raw;
#[path = "adversarial/ssrf.rs"]
mod ssrf;
