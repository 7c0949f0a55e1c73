//! alertgate's load harness (issue 7): starts the real `alertgate-relay` and `alertgate-receiver`
//! binaries (and `bare-server`, the ceiling) as separate processes from generated configs, drives
//! them with real HTTP over loopback, prints a table and writes JSON. `BENCHMARKS.md` at the repo
//! root explains how to run it and what the numbers mean.
//!
//! # Layout
//! - [`http`]: a minimal keep-alive HTTP/1.1 client that can bind a chosen source address.
//! - [`load`]: closed-loop and paced traffic, latency histograms (HdrHistogram, µs).
//! - [`procs`]: where the binaries are, the bare server, memory, CPU time and `perf` profiles.
//! - [`stack`]: a receiver (paper broker) and a relay forwarding to it, configured from their
//!   typed settings and run under the kit's process harness (`alertgate-testkit`).
//! - [`scenarios`]: the five measurements (reject, accept, end to end, flood, memory).
//! - [`report`]: the machine, the JSON results and the table.

pub mod http;
pub mod load;
pub mod procs;
pub mod report;
pub mod scenarios;
pub mod stack;
