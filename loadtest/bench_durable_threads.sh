#!/usr/bin/env bash
# Durable chat at a fixed rate, with the hub's CPU per acknowledged chat split by thread (the loop, the SQLite
# writer, the checkpointer) and into user and system time: what `bench_durable.sh` gives (acks/s, p50, p99)
# plus where each ack's CPU goes. Hub (all its threads) on CPU 0 at autogroup nice -10, load on CPU 1; 500
# sessions x 2 (`loadtest/scenarios/durable.json`). Threads' utime + stime from /proc/PID/task/*/stat over
# the measured window (from 4 s in), divided by the commits counted on /metrics. One line per run; the loop
# is the process's first thread, the writer the busiest other one, the checkpointer the small one.
# Usage: loadtest/bench_durable_threads.sh [runs=3] [every=0.04] [seconds=10]
#        every: seconds between one member's chats (0.04: 25,000/s; 0.08: 12,500/s; 0.1: 10,000/s)
# Environment: PORT (9651), DURABILITY (normal), COLLABHUB_BIN and LOADTEST_BIN (default: a release build of
# this tree in .build-rel, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; every=${2:-0.04}; secs=${3:-10}
port=${PORT:-9651}; durability=${DURABILITY:-normal}
hub=${COLLABHUB_BIN:-.build-rel/release/collabhub}; gen=${LOADTEST_BIN:-.build-rel/release/loadtest}
{ [ -n "${COLLABHUB_BIN:-}" ] && [ -n "${LOADTEST_BIN:-}" ]; } \
  || { swift build -c release --scratch-path .build-rel 2>&1 | grep -E "error" || true; }
[ "$secs" -ge 6 ] || { echo "seconds must be at least 6 (4 s of joins and warm-up, then the window)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# name utime stime, per thread
snap() { for t in /proc/$1/task/*; do echo "$(basename "$t"):$(tr ' ' _ < "$t/comm") $(awk '{print $14, $15}' "$t/stat" 2>/dev/null)"; done; }
commits() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^collabhub_commit_latency_seconds_count/{print $2}'; }
for i in $(seq 1 "$runs"); do
  data=$(mktemp -d)
  setsid sh -c "echo -10 > /proc/self/autogroup 2>/dev/null; exec taskset -c 0 '$hub' serve --port $port --threads 1 \
    --max-connections-per-address 0 --limit-chat 1000 --durability $durability --data '$data'" >/dev/null 2>&1 & pid=$!
  sleep 0.7
  taskset -c 1 "$gen" run loadtest/scenarios/durable.json --url "ws://127.0.0.1:$port" --chat-every "$every" \
    --duration "$secs" --server-pid $pid --quiet --json "$out/run.json" > "$out/run.txt" 2>&1 & lpid=$!
  sleep 4
  snap $pid > "$out/s1"; c1=$(commits); t1=$(date +%s.%N)
  sleep $((secs - 3))
  snap $pid > "$out/s2"; c2=$(commits); t2=$(date +%s.%N)
  wait $lpid || true
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf "$data"
  /usr/bin/python3 - "$out" "$c1" "$c2" "$t1" "$t2" "$i" "$pid" <<'PY'
import json, os, sys
out, c1, c2, t1, t2, run = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
pid = sys.argv[7]
hz = os.sysconf("SC_CLK_TCK")
def read(name):
    d = {}
    for line in open(os.path.join(out, name)):
        parts = line.split()
        if len(parts) == 3:
            d[parts[0]] = (int(parts[1]), int(parts[2]))
    return d
a, b = read("s1"), read("s2")
acks = c2 - c1
us = lambda ticks: ticks / hz / acks * 1e6
threads = []
total = 0
for name in sorted(b):
    u0, s0 = a.get(name, (0, 0)); u1, s1 = b[name]
    if (u1 - u0) + (s1 - s0) > 0:
        total += (u1 - u0) + (s1 - s0)
        tid = name.split(":")[0]
        label = "loop" if tid == pid else f"thread {tid}"
        threads.append(f"{label} {us((u1 - u0) + (s1 - s0)):.1f} (user {us(u1 - u0):.1f})")
r = json.load(open(os.path.join(out, "run.json")))
lat = r["latency_ms_by_kind"].get("chat", {})
print(f"run {run}: acked/s {r['acks_per_second']:,.0f}  p50 {lat.get('p50', 0):.2f} ms  p99 {lat.get('p99', 0):.2f} ms  "
      f"hub CPU {r['server_cpu_percent']:.0f}%  | window {acks / (t2 - t1):,.0f} acks/s, us of CPU per ack {us(total):.1f}: "
      + ", ".join(threads))
PY
done
