#!/usr/bin/env bash
# Dependency audit (SECURITY.md, row 19).
#
#   deploy/audit.sh
#
# 1. `cargo deny check licenses bans sources` against deny.toml: needs no advisory data, so it
#    always runs and fails the build on a disallowed license, a banned crate or an unknown source.
# 2. `cargo audit` against the RustSec advisory database, when one can be had:
#    - ALERTGATE_ADVISORY_DB=DIR: a copy of the database (e.g. brought from a connected machine);
#    - else cargo-audit's own database, fetched by cargo-audit itself when the network allows;
#    - else (an offline machine, such as CI here) it prints
#      "advisory database unavailable offline: skipped" and does not fail.
# cargo-deny is installed from crates.io (`cargo install --locked`) when missing; cargo-audit too,
# but only when there is a database to use or ALERTGATE_AUDIT_INSTALL=1 asks for a fetch.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure() {
    local subcommand=$1 crate=$2
    if ! cargo "$subcommand" --version >/dev/null 2>&1; then
        echo "== installing $crate (cargo install --locked)"
        cargo install --locked "$crate"
    fi
}

ensure deny cargo-deny
echo "== cargo deny check licenses bans sources ($(cargo deny --version))"
cargo deny --log-level error check licenses bans sources

echo "== RustSec advisories"
db="${ALERTGATE_ADVISORY_DB:-}"
if [ -n "$db" ]; then
    if [ ! -d "$db/crates" ]; then
        echo "ALERTGATE_ADVISORY_DB=$db is not an advisory database (no crates/ folder)" >&2
        exit 1
    fi
    ensure audit cargo-audit
    echo "using the advisory database at $db (may be stale)"
    cargo audit --db "$db" --no-fetch --stale
    exit 0
fi

default_db="${CARGO_HOME:-$HOME/.cargo}/advisory-db"
if [ ! -d "$default_db/crates" ] && ! cargo audit --version >/dev/null 2>&1 \
    && [ "${ALERTGATE_AUDIT_INSTALL:-0}" != 1 ]; then
    # Building cargo-audit takes minutes; without a database it could not check anything anyway.
    echo "cargo-audit is not installed and there is no local advisory database"
    echo "(ALERTGATE_AUDIT_INSTALL=1 installs cargo-audit and lets it fetch the database)"
    echo "advisory database unavailable offline: skipped"
    exit 0
fi
ensure audit cargo-audit
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
if timeout 120 cargo audit >"$out" 2>&1; then
    cat "$out"
elif [ -d "$default_db/crates" ] && ! grep -qiE "fetch|network|resolve|connect|timed out" "$out"; then
    # The database is there and was read: this is a finding, not a network problem.
    cat "$out"
    exit 1
elif [ -d "$default_db/crates" ]; then
    echo "could not refresh the advisory database; auditing against the copy in $default_db"
    cargo audit --db "$default_db" --no-fetch --stale
else
    tail -n 3 "$out" | sed 's/^/  cargo audit: /'
    echo "advisory database unavailable offline: skipped"
fi
