#!/usr/bin/env bash
# alertgate quickstart: relay + receiver + paper broker on localhost, with a sample TradingView alert.
#
#   ./deploy/quickstart.sh          build, configure (first run only), start both, send a sample alert,
#                                   then keep running with logs until Ctrl-C
#   ./deploy/quickstart.sh --once   the same, but stop after the sample order is shown (used by tests)
#
# Everything it makes lives under $ALERTGATE_HOME (default: ./data/quickstart). Rerunning keeps the
# key, secrets, journal and spool it made the first time and rewrites the two configs (ports may
# change); delete that folder to start afresh.
# Environment: RELAY_PORT (8080), RECEIVER_PORT (9000), RELAY_METRICS_PORT (9101),
# RECEIVER_METRICS_PORT (9102), ALERTGATE_BIN_DIR (use prebuilt binaries instead of cargo build),
# ALERTGATE_PROFILE (cargo profile: "quickstart" by default, the quickest first build; "release"
# for an optimised one).
set -euo pipefail

once=false
case "${1:-}" in
  --once) once=true ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--once]" >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
home=${ALERTGATE_HOME:-$repo/data/quickstart}
relay_port=${RELAY_PORT:-8080}
receiver_port=${RECEIVER_PORT:-9000}
relay_metrics=${RELAY_METRICS_PORT:-9101}
receiver_metrics=${RECEIVER_METRICS_PORT:-9102}
profile=${ALERTGATE_PROFILE:-quickstart}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is required (apt-get install curl)"

# 1. Binaries.
if [ -n "${ALERTGATE_BIN_DIR:-}" ]; then
  bin=$ALERTGATE_BIN_DIR
else
  command -v cargo >/dev/null || die "cargo is required: install Rust from https://rustup.rs"
  say "building alertgate-relay and alertgate-receiver (profile $profile; a first build compiles about 270 crates, 1-2 minutes on 2 cores; cargo prints each one)"
  started=$SECONDS
  (cd "$repo" && cargo build --profile "$profile" -p alertgate-relay -p alertgate-receiver)
  say "built in $((SECONDS - started)) s"
  target=${CARGO_TARGET_DIR:-$repo/target}
  case "$profile" in dev) bin=$target/debug ;; *) bin=$target/$profile ;; esac
fi
relay=$bin/alertgate-relay
receiver=$bin/alertgate-receiver
[ -x "$relay" ] && [ -x "$receiver" ] || die "binaries not found in $bin"

# 2. Key and secrets (made once; a rerun keeps them), then the configs.
mkdir -p "$home"
chmod 700 "$home"
if [ ! -f "$home/relay-signing.key" ]; then
  say "generating the relay's Ed25519 signing key"
  "$relay" keygen --out "$home/relay-signing"
fi
for f in account-secret ops-token; do
  if [ ! -s "$home/$f" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$home/$f")
  fi
done

say "writing configs to $home (key, secrets, journal and spool are kept across runs)"
cat > "$home/receiver.toml" <<TOML
# Made by deploy/quickstart.sh. Every key is documented in deploy/receiver.example.toml.
[server]
listen = "127.0.0.1:$receiver_port"

[verify]
public_keys = ["file:$home/relay-signing.pub"]
hmac_secrets = []
tolerance_seconds = 300

[store]
path = "$home/receiver.db"

[dedupe]
window_seconds = 300

[broker]
kind = "paper"

[risk]
max_alert_age_seconds = 120
max_quantity = "1000"
max_notional = "1000000"
max_orders_per_minute = 60
allowed_symbols = []
kill_switch_file = "$home/KILL"

[symbols]
"BINANCE:BTCUSDT" = "BTCUSDT"

[ops]
token = "file:$home/ops-token"

[metrics]
listen = "127.0.0.1:$receiver_metrics"
TOML

cat > "$home/relay.toml" <<TOML
# Made by deploy/quickstart.sh. Every key is documented in deploy/relay.example.toml.
# On a real VPS keep the allowlist at TradingView's four addresses (the default).
[server]
listen = "127.0.0.1:$relay_port"
trusted_proxies = []
max_body_bytes = 16384

[allowlist]
cidrs = ["127.0.0.1/32", "::1/128"]

[rate_limit]
per_ip_per_second = 5
per_ip_burst = 20
global_per_second = 50
global_burst = 100
per_account_per_second = 5
per_account_burst = 20

[[accounts]]
id = "main"
secrets = ["file:$home/account-secret"]

[signing]
keys = ["file:$home/relay-signing.key"]
hmac_secrets = []

[forward]
url = "http://127.0.0.1:$receiver_port/v1/alerts"
timeout_ms = 2000
max_age_seconds = 120

[spool]
dir = "$home/relay-spool"

[dedupe]
window_seconds = 300

[metrics]
listen = "127.0.0.1:$relay_metrics"
TOML

"$receiver" check-config --config "$home/receiver.toml" >/dev/null
"$relay" check-config --config "$home/relay.toml" >/dev/null

# 3. Start both, receiver first.
pids=()
cleanup() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 0' INT TERM

wait_ready() { # name url logfile pid
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || { tail -n 30 "$3" >&2; die "$1 exited; its log is above"; }
    sleep 0.1
  done
  tail -n 30 "$3" >&2
  die "$1 did not become ready at $2"
}

say "starting alertgate-receiver on 127.0.0.1:$receiver_port (paper broker, journal $home/receiver.db)"
"$receiver" run --config "$home/receiver.toml" >>"$home/receiver.log" 2>&1 &
pids+=($!)
wait_ready receiver "http://127.0.0.1:$receiver_port/readyz" "$home/receiver.log" "${pids[-1]}"

say "starting alertgate-relay on 127.0.0.1:$relay_port (forwarding to the receiver, signed)"
"$relay" run --config "$home/relay.toml" >>"$home/relay.log" 2>&1 &
pids+=($!)
wait_ready relay "http://127.0.0.1:$relay_port/readyz" "$home/relay.log" "${pids[-1]}"

# 4. A sample alert, as TradingView would send it (text/plain, secret in the body).
secret=$(cat "$home/account-secret")
alert_id="quickstart-$(date +%s%N)-$$"
alert=$(printf '{"secret":"%s","id":"%s","symbol":"BINANCE:BTCUSDT","action":"buy","quantity":"0.01","price":"42000.5"}' "$secret" "$alert_id")
say "sending a sample TradingView alert to the relay"
answer=$(curl -sS -X POST -H 'Content-Type: text/plain' --data "$alert" "http://127.0.0.1:$relay_port/webhook")
echo "relay answered: $answer"
case "$answer" in *'"accepted"'*) ;; *) die "the relay did not accept the sample alert" ;; esac
msg_id=$(printf '%s' "$answer" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')

say "waiting for the paper order"
token=$(cat "$home/ops-token")
found=false
for _ in $(seq 1 100); do
  if curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$receiver_port/v1/orders?limit=100" | grep -q "$msg_id"; then
    found=true
    break
  fi
  sleep 0.1
done
$found || die "no order for $msg_id after 10 s; see $home/relay.log and $home/receiver.log"
"$receiver" orders --config "$home/receiver.toml" --limit 5

if $once; then
  say "done (--once): the sample alert became a paper order"
  exit 0
fi

cat <<EOF

alertgate is running. Send another alert with:

  curl -X POST -H 'Content-Type: text/plain' http://127.0.0.1:$relay_port/webhook \\
    --data "{\"secret\":\"\$(cat $home/account-secret)\",\"symbol\":\"BINANCE:BTCUSDT\",\"action\":\"sell\",\"quantity\":\"0.01\",\"price\":\"42100\"}"

List orders:   $receiver orders --config $home/receiver.toml
Orders API:    curl -H "Authorization: Bearer \$(cat $home/ops-token)" http://127.0.0.1:$receiver_port/v1/orders
Metrics:       curl http://127.0.0.1:$relay_metrics/metrics   and   curl http://127.0.0.1:$receiver_metrics/metrics
Files:         $home (configs, key, secrets, journal, spool, logs)

Logs follow; press Ctrl-C to stop both services.
EOF
tail -n 0 -F "$home/relay.log" "$home/receiver.log" &
pids+=($!)
wait "${pids[0]}" "${pids[1]}"
