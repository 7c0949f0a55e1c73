#!/usr/bin/env bash
# The load harness in one command (issue 7; see BENCHMARKS.md):
#   ./bench/run.sh            full run (about 2 minutes of load after the build)
#   ./bench/run.sh --quick    smoke test, about 10 seconds
# Builds the release binaries, then runs alertgate-load, which starts alertgate-relay,
# alertgate-receiver and bare-server as separate processes with generated configs in a temporary
# folder, drives them over loopback (127.0.0.0/8 only), prints a table and writes
# target/bench-results.json. Extra arguments go to alertgate-load (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p alertgate-relay -p alertgate-receiver -p alertgate-bench
exec target/release/alertgate-load "$@"
