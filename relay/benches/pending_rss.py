#!/usr/bin/env python3
"""Resident memory of a relay holding a large backlog.

Starts the relay binary with a receiver that is absent (connection refused, so every alert stays
pending), posts N alerts from loopback over keep-alive connections (rate limits raised), then
prints the relay's VmRSS and VmHWM from /proc/PID/status.

    cargo build -p alertgate-relay --release
    python3 relay/benches/pending_rss.py --relay target/release/alertgate-relay --alerts 100000

Only loopback addresses are used; the run is bounded by --alerts and stops by itself.
"""

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", default="target/release/alertgate-relay")
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--spool-dir", default=None, help="default: a fresh temporary directory")
    ap.add_argument("--no-keys", action="store_true",
                    help="alerts without an idempotency key (no dedupe window entries)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="relay-rss-")
    spool = args.spool_dir or os.path.join(work, "spool")
    subprocess.run([args.relay, "keygen", "--out", os.path.join(work, "signing")],
                   check=True, stdout=subprocess.DEVNULL)
    port, metrics_port, receiver_port = free_port(), free_port(), free_port()
    config = os.path.join(work, "relay.toml")
    with open(config, "w") as f:
        f.write(f"""
[server]
listen = "127.0.0.1:{port}"
[allowlist]
cidrs = ["127.0.0.1/32"]
[rate_limit]
per_ip_per_second = 1000000
per_ip_burst = 1000000
global_per_second = 1000000
global_burst = 1000000
per_account_per_second = 1000000
per_account_burst = 1000000
[[accounts]]
id = "main"
secrets = ["env:RSS_SECRET"]
[signing]
keys = ["file:{work}/signing.key"]
[forward]
url = "http://127.0.0.1:{receiver_port}/v1/alerts"
max_age_seconds = 86400
backoff_initial_ms = 1000
backoff_max_ms = 10000
[spool]
dir = "{spool}"
max_pending = {max(args.alerts * 2, 200_000)}
max_bytes = 4294967296
[metrics]
listen = "127.0.0.1:{metrics_port}"
[log]
level = "warn"
""")
    env = dict(os.environ, RSS_SECRET="rss-secret")
    relay = subprocess.Popen([args.relay, "run", "--config", config], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)
        print(f"relay pid {relay.pid}, idle VmRSS {status_kib(relay.pid, 'VmRSS')} KiB")

        counts = {"200": 0, "other": 0}
        lock = threading.Lock()
        per = args.alerts // args.connections

        def client(n, start):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(start, start + n):
                alert = {
                    "secret": "rss-secret", "symbol": "BINANCE:BTCUSDT",
                    "action": "buy", "quantity": "0.01", "price": "42000.5",
                    "comment": "x" * 200,
                }
                if not args.no_keys:
                    alert["id"] = f"rss-{i}"
                body = json.dumps(alert)
                conn.request("POST", "/webhook", body, {"content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                with lock:
                    counts["200" if resp.status == 200 else "other"] += 1
            conn.close()

        started = time.time()
        threads = [threading.Thread(target=client, args=(per, k * per))
                   for k in range(args.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.time() - started
        time.sleep(2)
        rss = status_kib(relay.pid, "VmRSS")
        hwm = status_kib(relay.pid, "VmHWM")
        print(f"posted {per * args.connections} alerts in {took:.1f} s: {counts}")
        print(f"VmRSS {rss} KiB ({rss / 1024:.1f} MiB), VmHWM {hwm} KiB ({hwm / 1024:.1f} MiB)")
    finally:
        relay.terminate()
        relay.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
