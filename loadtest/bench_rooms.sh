#!/usr/bin/env bash
# Fan-out benchmark: CollabHub (one loop thread) vs the Node `ws` rooms server and the Hummingbird
# WebSocket rooms server (loadtest/peers/hummingbird-rooms, built here into .build-peer on first use), each
# pinned to CPU 0 with the load generator on CPU 1; interleaved repetitions; medians and ratios.
#   saturation: 100 sessions x 10 members offering 100 msg/s each (900k deliveries/s offered)
#   fixed:      100 sessions x 10 members at 10 msg/s each (90k deliveries/s), latency percentiles
#   big rooms:  10 sessions x 200 members at 2 msg/s each (~800k deliveries/s)
# Usage: loadtest/bench_rooms.sh [runs=3] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
swift build -c release 2>&1 | grep -E "error" || true
servers="collabhub node-ws"
if swift build -c release --package-path loadtest/peers/hummingbird-rooms --scratch-path .build-peer 2>&1 | grep -E "error:"; then
  echo "the Hummingbird peer did not build: measured without it"
else
  servers="$servers hummingbird"
fi
export NODE_PATH=/usr/share/nodejs:/usr/lib/nodejs
out=$(mktemp -d)
run() {  # server scenario sessions members rate
  local server=$1 scenario=$2 sessions=$3 members=$4 rate=$5 pid port peer
  if [ "$server" = collabhub ]; then
    port=9231; peer=collabhub
    taskset -c 0 .build/release/collabhub serve --port $port --threads 1 --max-connections-per-address 0 --data "$(mktemp -d)" >/dev/null 2>&1 & pid=$!
  elif [ "$server" = node-ws ]; then
    port=9232; peer=rooms
    taskset -c 0 node loadtest/peers/node-ws/rooms.js $port >/dev/null 2>&1 & pid=$!
  else
    port=9233; peer=rooms
    taskset -c 0 .build-peer/release/HBRooms $port >/dev/null 2>&1 & pid=$!
  fi
  sleep 1
  taskset -c 1 .build/release/loadtest rooms --peer $peer --url ws://127.0.0.1:$port --sessions "$sessions" --members "$members" \
    --rate "$rate" --duration "$secs" --server-pid $pid --quiet --json "$out/$scenario-$server-$i.json" > "$out/$scenario-$server-$i.txt" 2>&1 || true
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
  grep -E "deliveries|latency" "$out/$scenario-$server-$i.txt" | sed "s/^/  $scenario $server run $i: /"
}
for i in $(seq 1 "$runs"); do
  for server in $servers; do
    run $server saturation 100 10 100
    run $server fixed 100 10 10
    run $server bigrooms 10 200 2
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, statistics, os
out = sys.argv[1]
def med(scenario, server, key, sub=None):
    vals = []
    for f in glob.glob(os.path.join(out, f"{scenario}-{server}-*.json")):
        d = json.load(open(f)); v = d[key] if sub is None else d[key].get(sub)
        if v is not None: vals.append(v)
    return statistics.median(vals) if vals else float("nan")
print(f"{'scenario':<12}{'server':<11}{'deliveries/s':>14}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}{'srv CPU%':>9}")
servers = [s for s in ["collabhub", "node-ws", "hummingbird"] if glob.glob(os.path.join(out, f"*-{s}-*.json"))]
for sc in ["saturation", "fixed", "bigrooms"]:
    for sv in servers:
        print(f"{sc:<12}{sv:<11}{med(sc, sv, 'deliveries_per_second'):>14,.0f}{med(sc, sv, 'latency_ms', 'p50'):>9.2f}"
              f"{med(sc, sv, 'latency_ms', 'p99'):>9.2f}{med(sc, sv, 'latency_ms', 'p99.9'):>10.2f}{med(sc, sv, 'server_cpu_percent'):>9.0f}")
for peer in servers[1:]:
    r = med("saturation", "collabhub", "deliveries_per_second") / med("saturation", peer, "deliveries_per_second")
    print(f"saturation ratio collabhub / {peer}: {r:.2f}x")
PY
