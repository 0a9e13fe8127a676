#!/usr/bin/env bash
# Durable chat: acknowledged messages per second and delivery latency for --durability normal and full,
# hub on CPU 0 (its SQLite writer thread included), load on CPU 1. Three runs each; medians.
#   capacity: 500 sessions x 2 members chatting 60/s each (60,000 msg/s offered, above the 50,000 bar,
#             so what is acknowledged per second is the hub's capacity, not the offer)
#   half:     the same at 25/s each (25,000 msg/s), latency percentiles
# Usage: loadtest/bench_durable.sh [runs=3] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
swift build -c release 2>&1 | grep -E "error" || true
out=$(mktemp -d)
for i in $(seq 1 "$runs"); do
  for mode in normal full; do
    for load in capacity half; do
      every=$([ $load = capacity ] && echo 0.0167 || echo 0.04)
      taskset -c 0 .build/release/collabhub serve --port 9241 --threads 1 --max-connections-per-address 0 --limit-chat 1000 --durability $mode --data "$(mktemp -d)" >/dev/null 2>&1 & pid=$!
      sleep 0.7
      taskset -c 1 .build/release/loadtest run loadtest/scenarios/durable.json --url ws://127.0.0.1:9241 --chat-every $every \
        --duration "$secs" --server-pid $pid --quiet --json "$out/$mode-$load-$i.json" > "$out/$mode-$load-$i.txt" 2>&1 || true
      kill $pid; wait $pid 2>/dev/null || true
      echo "run $i $mode $load: $(grep -E 'acks' "$out/$mode-$load-$i.txt" | sed 's/^ *//')"
    done
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, statistics, os
out = sys.argv[1]
print(f"{'durability':<11}{'load':<10}{'acked/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU%':>9}")
for mode in ["normal", "full"]:
    for load in ["capacity", "half"]:
        runs = [json.load(open(f)) for f in glob.glob(os.path.join(out, f"{mode}-{load}-*.json"))]
        if not runs: continue
        m = lambda f: statistics.median(f(r) for r in runs)
        print(f"{mode:<11}{load:<10}{m(lambda r: r['acks_per_second']):>10,.0f}{m(lambda r: r['latency_ms_by_kind'].get('chat', {}).get('p50', 0)):>9.2f}"
              f"{m(lambda r: r['latency_ms_by_kind'].get('chat', {}).get('p99', 0)):>9.2f}{m(lambda r: r['server_cpu_percent']):>9.0f}")
PY
