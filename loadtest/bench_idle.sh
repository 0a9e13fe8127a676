#!/usr/bin/env bash
# Server RSS per idle open WebSocket connection: CollabHub vs Node `ws`, server on CPU 0, clients on CPU 1;
# then per idle joined member (members of sessions of ten, joined through the hub's protocol).
# Usage: loadtest/bench_idle.sh [connections=15000] [members=19500]   (the hard open-file limit bounds both)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-15000}
members=${2:-19500}
swift build -c release 2>&1 | grep -E "error" || true
export NODE_PATH=/usr/share/nodejs:/usr/lib/nodejs
taskset -c 0 .build/release/collabhub serve --port 9211 --threads 1 --echo --max-connections-per-address 0 --data "$(mktemp -d)" >/dev/null & pid=$!
sleep 0.5
echo -n "collabhub: "; taskset -c 1 .build/release/loadtest idle --url ws://127.0.0.1:9211/echo --connections "$n" --pid $pid
kill $pid; wait $pid 2>/dev/null || true
taskset -c 0 node loadtest/peers/node-ws/echo.js 9212 >/dev/null & pid=$!
sleep 1
echo -n "node-ws:   "; taskset -c 1 .build/release/loadtest idle --url ws://127.0.0.1:9212/echo --connections "$n" --pid $pid
kill $pid; wait $pid 2>/dev/null || true
d=$(mktemp -d)
taskset -c 0 .build/release/collabhub serve --port 9213 --threads 1 --auth open --max-connections-per-address 0 --data "$d" >/dev/null & pid=$!
sleep 0.5
echo -n "collabhub: "; taskset -c 1 .build/release/loadtest idle --url ws://127.0.0.1:9213/ws --connections "$members" --sessions $((members / 10)) --pid $pid
kill $pid; wait $pid 2>/dev/null || true
rm -rf "$d"
