#!/usr/bin/env bash
# Runs every cargo-fuzz target of shared/, relay/ and receiver/ for a fixed time each, then prints
# one line per target: executions, corpus size, and findings (crash/leak/timeout/oom artifacts).
#
#   shared/fuzz/run-all.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). No nightly toolchain is required: the script sets
# RUSTC_BOOTSTRAP=1 so the stable compiler accepts the sanitizer flags. Environment:
#   FUZZ_TARGET_DIR   shared build directory (default: target/fuzz at the repository root)
#   FUZZ_SANITIZER    address (default) or none (faster builds and runs, no ASan)
#   FUZZ_NICE         nice level of the fuzzers (default 10; the machine is shared)
# Inputs: <crate>/fuzz/seeds/<target>/ (committed) and <crate>/fuzz/corpus/<target>/ (grows, ignored
# by git). A crashing input lands in <crate>/fuzz/artifacts/<target>/; turn it into a regression test
# in <crate>/tests/adversarial/ and fix the cause. Exit status: 1 if any target found something.
set -euo pipefail

secs="${1:-60}"
shift || true
only=("$@")
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target_dir="${FUZZ_TARGET_DIR:-$repo/target/fuzz}"
sanitizer="${FUZZ_SANITIZER:-address}"
niceness="${FUZZ_NICE:-10}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

wanted() {
    [ "${#only[@]}" -eq 0 ] && return 0
    local t
    for t in "${only[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

results=()
found=0
for crate in shared relay receiver; do
    dir="$repo/$crate"
    targets=$(cd "$dir" && cargo fuzz list)
    todo=()
    for t in $targets; do wanted "$t" && todo+=("$t"); done
    [ "${#todo[@]}" -eq 0 ] && continue
    echo "== building $crate/fuzz (${todo[*]})" >&2
    (cd "$dir" && nice -n "$niceness" cargo fuzz build --sanitizer "$sanitizer" \
        --target-dir "$target_dir" >&2)
    for t in "${todo[@]}"; do
        bin="$target_dir/$triple/release/$t"
        corpus="$dir/fuzz/corpus/$t"
        seeds="$dir/fuzz/seeds/$t"
        artifacts="$dir/fuzz/artifacts/$t"
        mkdir -p "$corpus" "$artifacts"
        inputs=("$corpus")
        [ -d "$seeds" ] && inputs+=("$seeds")
        before=$(find "$artifacts" -type f | sort)
        log="$dir/fuzz/artifacts/$t.log"
        echo "== fuzzing $crate/$t for ${secs}s" >&2
        set +e
        nice -n "$niceness" "$bin" -max_total_time="$secs" -print_final_stats=1 \
            -artifact_prefix="$artifacts/" -rss_limit_mb=2048 "${inputs[@]}" >"$log" 2>&1
        status=$?
        set -e
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        [ -z "$execs" ] && execs=$(grep -oE '^Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -n1)
        corpus_size=$(find "$corpus" -type f | wc -l)
        new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | grep -v '^$' || true)
        if [ "$status" -ne 0 ] || [ -n "$new" ]; then
            found=1
            finding="FOUND (exit $status) ${new:-see $log}"
            grep -m1 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" >&2 || true
        else
            finding="none"
        fi
        results+=("$(printf '%-9s %-18s %12s execs  %6s corpus  findings: %s' \
            "$crate" "$t" "${execs:-?}" "$corpus_size" "$finding")")
    done
done

echo
echo "fuzzing summary (${secs}s per target, sanitizer: $sanitizer)"
printf '%s\n' "${results[@]}"
exit "$found"
