#!/usr/bin/env bash
# The fault campaign (DESIGN.md section 17): seeded TradingView-like traffic against the real
# alertgate-relay and alertgate-receiver binaries (Binance Spot emulator as the venue) while
# processes are SIGKILLed and SIGSTOPped, links degraded and cut, the venue fails and its clock
# skews; every invariant is checked after each seed. Results go to RELIABILITY.md.
#
#   deploy/chaos.sh              # 10 seeds (what CI runs, as e2e/tests/chaos.rs)
#   deploy/chaos.sh 1000         # the long campaign
#   deploy/chaos.sh --seed 17    # replay one seed
#   deploy/chaos.sh 200 --from 1001 --disk   # full disks too (root: mounts a small tmpfs)
#   deploy/chaos.sh 50 --netns               # partitions too (root: the receiver in a netns)
#
# Other flags: --traffic-ms MS (per seed, default 3000), --keep (keep every seed's folder).
# CHAOS_PROFILE=release (default) or debug picks the build. Exit: 0 all held, 1 a violation,
# 2 a harness error.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${CHAOS_PROFILE:-release}"
case "$profile" in
  debug | dev) cargo_profile=dev; dir=debug ;;
  *) cargo_profile="$profile"; dir="$profile" ;;
esac

cleanup() {
  # A harness killed mid-seed leaves its tmpfs mounted: unmount what it left. Not lazily: a
  # mount still in use (another campaign's live seed) is busy and stays (seed 994, RELIABILITY.md).
  if [ "$(id -u)" = 0 ] && command -v findmnt >/dev/null; then
    findmnt -rn -o TARGET | grep -E '/alertgate-chaos-[0-9]+-[^/]+/(spool|journal)-disk$' |
      while read -r m; do umount "$m" 2>/dev/null || true; done || true
  fi
  # ... and its network namespaces, with their veth pairs (testkit netns: "agns", then this
  # script's pid modulo 100000, ALERTGATE_NETNS_OWNER, and a counter), not another campaign's.
  if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
    ip netns list 2>/dev/null | awk -v p="agns$(($$ % 100000))" \
      '$1 ~ "^" p "[0-9][0-9]$" {print $1}' |
      while read -r ns; do ip netns del "$ns" || true; done || true
  fi
}
trap cleanup EXIT
export ALERTGATE_NETNS_OWNER=$$

cargo build --profile "$cargo_profile" -p alertgate-relay -p alertgate-receiver -p alertgate-e2e \
  --bin alertgate-relay --bin alertgate-receiver --bin alertgate-chaos
exec_status=0
"target/$dir/alertgate-chaos" "$@" || exec_status=$?
exit "$exec_status"
