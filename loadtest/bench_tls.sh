#!/usr/bin/env bash
# wss:// against ws://: echo (1,000 connections, 8 messages in flight, 100 bytes) and fan-out (100 x 10
# at 100 msg/s), interleaved pairs, hub on CPU 0 (one loop), load generator on CPU 1. Medians.
# The load generator does the same TLS work as the hub (it encrypts and decrypts every message too), so
# over wss it can be the bottleneck; the table shows both sides' CPU and, besides the raw ratio, the
# ratio of messages per second of the hub's CPU (what TLS costs the hub itself).
# Usage: loadtest/bench_tls.sh [pairs=3] [seconds=8]
# Environment: COLLABHUB_BIN and LOADTEST_BIN run given binaries (nothing is built then), PORT (9291).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}; secs=${2:-8}
hub=${COLLABHUB_BIN:-.build/release/collabhub}; lt=${LOADTEST_BIN:-.build/release/loadtest}
if [ -z "${COLLABHUB_BIN:-}" ]; then swift build -c release 2>&1 | grep -E "error" || true; fi
ulimit -n 65536 2>/dev/null || true
tmp=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1
port=${PORT:-9291}
results="$tmp/results"
for i in $(seq 1 "$pairs"); do
  for scheme in ws wss; do
    tls=(); [ $scheme = wss ] && tls=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem")
    taskset -c 0 "$hub" serve --port $port --threads 1 --echo --max-connections-per-address 0 \
      "${tls[@]}" --data "$(mktemp -d)" >/dev/null 2>&1 & pid=$!
    sleep 0.8
    echo_json=$(taskset -c 1 "$lt" echo --url $scheme://127.0.0.1:$port/echo --connections 1000 --pipeline 8 \
      --duration "$secs" --server-pid $pid --json | tail -1)
    kill $pid; wait $pid 2>/dev/null || true
    taskset -c 0 "$hub" serve --port $port --threads 1 --max-connections-per-address 0 \
      "${tls[@]}" --data "$(mktemp -d)" >/dev/null 2>&1 & pid=$!
    sleep 0.8
    taskset -c 1 "$lt" rooms --url $scheme://127.0.0.1:$port --sessions 100 --members 10 --rate 100 \
      --duration "$secs" --server-pid $pid --quiet --json "$tmp/rooms.json" >/dev/null 2>&1 || true
    kill $pid; wait $pid 2>/dev/null || true
    python3 - "$scheme" "$echo_json" "$tmp/rooms.json" >> "$results" <<'PY'
import json, sys
e = json.loads(sys.argv[2]); r = json.load(open(sys.argv[3]))
print(json.dumps({"scheme": sys.argv[1], "echo": e["messages_per_second"], "echo_srv": e["server_cpu_percent"],
                  "echo_cli": e["client_cpu_percent"], "rooms": r["deliveries_per_second"], "rooms_srv": r["server_cpu_percent"],
                  "rooms_cli": r.get("client_cpu_percent", 0)}))
PY
    echo "pair $i $scheme: $(tail -1 "$results")"
  done
done
python3 - "$results" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda scheme, k: statistics.median(r[k] for r in rows if r["scheme"] == scheme)
print(f"{'test':<8}{'scheme':<8}{'msg/s':>12}{'hub CPU%':>10}{'client CPU%':>13}{'per hub core':>14}")
for test, unit in (("echo", "echo"), ("rooms", "rooms")):
    for s in ("ws", "wss"):
        print(f"{test:<8}{s:<8}{med(s, unit):>12,.0f}{med(s, unit + '_srv'):>10.0f}{med(s, unit + '_cli'):>13.0f}"
              f"{med(s, unit) / max(med(s, unit + '_srv'), 1) * 100:>14,.0f}")
    raw = med("wss", unit) / med("ws", unit)
    per_core = (med("wss", unit) / max(med("wss", unit + "_srv"), 1)) / (med("ws", unit) / max(med("ws", unit + "_srv"), 1))
    print(f"{test}: wss/ws {raw:.2f} raw, {per_core:.2f} per hub core")
PY
rm -rf "$tmp"
