#!/usr/bin/env bash
# Abuse resistance: the fan-out load (100 sessions of 10 at 10 events/s) alone, then with 100 abusive
# clients in the same sessions flooding chat at 10x the per-connection limit; the well-behaved
# members' event latency is compared. Interleaved runs; hub on CPU 0, load generator on CPU 1.
# Usage: loadtest/bench_abuse.sh [runs=3] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
swift build -c release 2>&1 | grep -E "error" || true
out=$(mktemp -d)
for i in $(seq 1 "$runs"); do
  for scenario in fanout abuse; do
    taskset -c 0 .build/release/collabhub serve --port 9282 --threads 1 --max-connections-per-address 0 --data "$(mktemp -d)" >/dev/null 2>&1 & pid=$!
    sleep 0.8
    taskset -c 1 .build/release/loadtest run loadtest/scenarios/$scenario.json --url ws://127.0.0.1:9282 --duration "$secs" \
      --server-pid $pid --quiet --json "$out/$scenario-$i.json" > "$out/$scenario-$i.txt" 2>&1 || true
    kill $pid; wait $pid 2>/dev/null || true
    echo "run $i $scenario: $(grep -E 'latency ms, event' "$out/$scenario-$i.txt" | sed 's/^ *//')"
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, statistics, os
out = sys.argv[1]
def p99(s): return statistics.median(json.load(open(f))["latency_ms_by_kind"]["event"]["p99"] for f in glob.glob(os.path.join(out, f"{s}-*.json")))
a, f = p99("abuse"), p99("fanout")
print(f"well-behaved event p99, medians: unloaded {f:.2f} ms, under the flood {a:.2f} ms ({a / f:.2f}x; bar 2x)")
PY
