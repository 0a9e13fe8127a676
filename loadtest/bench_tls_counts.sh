#!/usr/bin/env bash
# The hub's cost per echoed message over ws and wss in counts that a shared, noisy machine does not move
# (issue 30 item 5; bench_tls.sh gives the wall-clock ratio, which needs a quiet machine):
#   instructions  callgrind on the hub (`serve --echo`, one loop, CPU 0) while `loadtest echo` (100
#                 connections, 8 in flight, CPU 1) runs 8 s, minus a run of 0.3 s: start-up, the
#                 handshakes and the stop drop out of the difference;
#   syscalls      `strace -c -f` on the hub for 3 s of `loadtest echo` at 1,000 connections, 8 in flight.
# Messages are counted by the hub itself: its `collabhub_bytes_out_total` over the 102 bytes of an echoed
# 100-byte text frame (the same count of handshake and metrics bytes sits in both callgrind runs).
# Usage: loadtest/bench_tls_counts.sh [BIN] [LOADTEST_BIN] [schemes...]   (default: ws wss)
# Environment: PORT (9291).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build-rel/release/collabhub}; lt=${2:-.build-rel/release/loadtest}
shift $(($# > 2 ? 2 : $#)); schemes=("$@"); [ ${#schemes[@]} -gt 0 ] || schemes=(ws wss)
port=${PORT:-9291}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1
frame=102

bytes_out() { curl -sk "$1://127.0.0.1:$port/metrics" | awk '/^collabhub_bytes_out_total/ {print $2}'; }

stop() {  # a graceful stop (callgrind writes its totals at exit); SIGINT again every 10 s if unanswered
  local pid=$1 waited=0
  kill -INT "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2; waited=$((waited + 1))
    if [ $((waited % 50)) -eq 0 ]; then kill -INT "$pid"; fi
  done
  wait "$pid" 2>/dev/null || true
}

callgrind_run() {  # scheme seconds -> "instructions bytes_out"
  local scheme=$1 secs=$2 proto=http tls=() out="$tmp/cg.out" pid bytes total
  [ "$scheme" = wss ] && { proto=https; tls=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"); }
  rm -f "$out"*
  SWIFT_DETERMINISTIC_HASHING=1 taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
    --port "$port" --threads 1 --echo --max-connections-per-address 0 "${tls[@]}" --data "$(mktemp -d -p "$tmp")" \
    >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -skf "$proto://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  taskset -c 1 "$lt" echo --url "$scheme://127.0.0.1:$port/echo" --connections 100 --pipeline 8 --warmup 0 \
    --duration "$secs" --json >/dev/null
  bytes=$(bytes_out $proto)
  stop $pid
  total=0
  for f in "$out"*; do total=$((total + $(grep -E "^summary:|^totals:" "$f" | head -1 | awk '{print $2}'))); done
  echo "$total $bytes"
}

strace_run() {  # scheme -> one line: syscalls per echoed message, by call
  local scheme=$1 proto=http tls=() pid lpid b1 b2
  [ "$scheme" = wss ] && { proto=https; tls=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"); }
  taskset -c 0 "$bin" serve --port "$port" --threads 1 --echo --max-connections-per-address 0 "${tls[@]}" \
    --data "$(mktemp -d -p "$tmp")" >/dev/null 2>&1 &
  pid=$!
  sleep 0.8
  taskset -c 1 "$lt" echo --url "$scheme://127.0.0.1:$port/echo" --connections 1000 --pipeline 8 --duration 8 \
    --json >/dev/null &
  lpid=$!
  sleep 4
  b1=$(bytes_out $proto)
  timeout -s INT 3 strace -c -f -p $pid -o "$tmp/strace.txt" 2>/dev/null || true
  b2=$(bytes_out $proto)
  wait $lpid || true
  kill $pid; wait $pid 2>/dev/null || true
  python3 - "$scheme" "$b1" "$b2" "$frame" "$tmp/strace.txt" <<'PY'
import sys
scheme, b1, b2, frame = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
msgs = (b2 - b1) / frame
calls = {}
for line in open(sys.argv[5]):
    p = line.split()
    if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
        calls[p[-1]] = (int(p[3]), int(p[4]) if len(p) == 6 else 0)
total = sum(c for c, _ in calls.values())
parts = ", ".join(f"{k} {c / msgs:.3f}" + (f" ({e} failed)" if e else "")
                  for k, (c, e) in sorted(calls.items(), key=lambda kv: -kv[1][0]) if c / msgs >= 0.0005)
print(f"{scheme}: {total / msgs:.3f} syscalls per echoed message ({msgs:,.0f} messages under strace): {parts}")
PY
}

for scheme in "${schemes[@]}"; do
  read -r long_i long_b <<<"$(callgrind_run "$scheme" 8)"
  read -r short_i short_b <<<"$(callgrind_run "$scheme" 0.3)"
  msgs=$(((long_b - short_b) / frame))
  echo "$scheme: $(((long_i - short_i) / msgs)) instructions per echoed message" \
    "(8 s run $long_i, 0.3 s run $short_i; $msgs messages apart)"
  strace_run "$scheme"
done
