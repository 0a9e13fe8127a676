#!/usr/bin/env bash
# Echo benchmark: CollabHub (/echo, one loop thread) vs Node `ws`, each server pinned to CPU 0 and the
# load generator to CPU 1; runs interleaved, medians and the ratio printed at the end.
# Usage: loadtest/bench_echo.sh [runs=3] [connections=1000] [pipeline=1] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; conns=${2:-1000}; pipeline=${3:-1}; secs=${4:-10}
swift build -c release 2>&1 | grep -E "error|Compiling" || true
export NODE_PATH=/usr/share/nodejs:/usr/lib/nodejs
ulimit -n 65536 2>/dev/null || true
hub_port=9201; node_port=9202
results=$(mktemp)
start_server() {  # name -> pid
  case $1 in
    collabhub) taskset -c 0 .build/release/collabhub serve --port $hub_port --threads 1 --echo --max-connections-per-address 0 --data "$(mktemp -d)" >/dev/null & echo $! ;;
    node-ws) taskset -c 0 node loadtest/peers/node-ws/echo.js $node_port >/dev/null & echo $! ;;
  esac
}
for i in $(seq 1 "$runs"); do
  for server in collabhub node-ws; do
    pid=$(start_server $server); sleep 1
    port=$([ $server = collabhub ] && echo $hub_port || echo $node_port)
    out=$(taskset -c 1 .build/release/loadtest echo --url ws://127.0.0.1:$port/echo --connections "$conns" \
          --pipeline "$pipeline" --duration "$secs" --server-pid "$pid" --json)
    kill $pid; wait $pid 2>/dev/null || true
    rate=$(echo "$out" | sed -E 's/.*"messages_per_second": ([0-9]+).*/\1/')
    echo "run $i $server: $out"
    echo "$server $rate" >> "$results"
  done
done
python3 - "$results" <<'PY'
import sys, statistics
rates = {}
for line in open(sys.argv[1]):
    name, rate = line.split(); rates.setdefault(name, []).append(int(rate))
hub, node = statistics.median(rates["collabhub"]), statistics.median(rates["node-ws"])
print(f"median collabhub {hub:,.0f} msg/s, node-ws {node:,.0f} msg/s, ratio {hub/node:.2f}x")
PY
