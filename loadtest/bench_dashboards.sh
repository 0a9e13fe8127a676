#!/usr/bin/env bash
# Run-status dashboards: 1,000 watchers over 10 owners (each event reaches 100 dashboards) while run
# events are published over HTTP at 1,000/s; publish-to-watcher latency. Hub pinned to CPU 0 (one
# loop thread, its SQLite threads included), load generator on CPU 1; medians of the runs.
# Usage: loadtest/bench_dashboards.sh [runs=5] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; secs=${2:-10}
swift build -c release 2>&1 | grep -E "error" || true
out=$(mktemp -d)
for i in $(seq 1 "$runs"); do
  taskset -c 0 .build/release/collabhub serve --port 9281 --threads 1 --max-connections-per-address 0 --admin-key load-admin-key-0123456789 \
    --data "$(mktemp -d)" >/dev/null 2>&1 & pid=$!
  sleep 0.8
  taskset -c 1 .build/release/loadtest dashboards --url ws://127.0.0.1:9281 --watchers 1000 --owners 10 --rate 1000 \
    --duration "$secs" --server-pid $pid --json "$out/$i.json" | sed "s/^/run $i: /"
  kill $pid; wait $pid 2>/dev/null || true
done
python3 - "$out" <<'PY'
import json, sys, glob, statistics, os
runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json")))]
m = lambda k: statistics.median(r["latency_ms"][k] for r in runs)
print(f"median of {len(runs)}: deliveries {statistics.median(r['deliveries_per_second'] for r in runs):,.0f}/s, "
      f"p50 {m('p50'):.2f} ms, p99 {m('p99'):.2f} ms, p99.9 {m('p99.9'):.2f} ms; p99 per run: {[round(r['latency_ms']['p99'], 2) for r in runs]}")
PY
