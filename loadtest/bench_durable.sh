#!/usr/bin/env bash
# Durable chat: acknowledged messages per second and delivery latency for --durability normal and full,
# hub on CPU 0 (its SQLite writer thread included), load on CPU 1. Three runs each; medians.
#   capacity: 500 sessions x 2 members chatting 60/s each (60,000 msg/s offered, above the 50,000 bar,
#             so what is acknowledged per second is the hub's capacity, not the offer)
#   half:     the same at 25/s each (25,000 msg/s), latency percentiles
# Usage: loadtest/bench_durable.sh [runs=3] [seconds=10]
# Environment: PORT (9241), MODES ("normal full"), LOADS ("capacity half"), COLLABHUB_BIN and LOADTEST_BIN
# (default: a release build of this tree, built first); each run's line ends with the `uptime` load.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
port=${PORT:-9241}; modes=${MODES:-normal full}; loads=${LOADS:-capacity half}
hub=${COLLABHUB_BIN:-.build/release/collabhub}; gen=${LOADTEST_BIN:-.build/release/loadtest}
{ [ -n "${COLLABHUB_BIN:-}" ] && [ -n "${LOADTEST_BIN:-}" ]; } || { swift build -c release 2>&1 | grep -E "error" || true; }
out=$(mktemp -d)
for i in $(seq 1 "$runs"); do
  for mode in $modes; do
    for load in $loads; do
      every=$([ $load = capacity ] && echo 0.0167 || echo 0.04)
      data=$(mktemp -d)
      taskset -c 0 "$hub" serve --port "$port" --threads 1 --max-connections-per-address 0 --limit-chat 1000 --durability $mode --data "$data" >/dev/null 2>&1 & pid=$!
      sleep 0.7
      taskset -c 1 "$gen" run loadtest/scenarios/durable.json --url "ws://127.0.0.1:$port" --chat-every $every \
        --duration "$secs" --server-pid $pid --quiet --json "$out/$mode-$load-$i.json" > "$out/$mode-$load-$i.txt" 2>&1 || true
      kill $pid; wait $pid 2>/dev/null || true
      rm -rf "$data"
      echo "run $i $mode $load: $(grep -E 'acks' "$out/$mode-$load-$i.txt" | sed 's/^ *//') (load:$(uptime | sed 's/.*average://'))"
    done
  done
done
/usr/bin/python3 - "$out" <<'PY'
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
