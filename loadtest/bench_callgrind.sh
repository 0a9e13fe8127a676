#!/usr/bin/env bash
# Instruction counts (valgrind --tool=callgrind) of two hub builds on the same workloads: repeatable on a
# noisy shared machine where times are not. Each workload runs against `collabhub serve --threads 1`
# under callgrind (pinned to CPU 0, the load generator on CPU 1); the figure is the hub's total
# instructions minus those of an idle start-and-stop of the same binary.
#   fan-out:    loadtest rooms --sessions 10 --members 10 --rate 1 --duration 20 (19,800 deliveries)
#   durable:    loadtest rooms --sessions 50 --members 2 --rate 0 --chat-every 0.5 --duration 20 (chat, acked)
#   dashboards: loadtest dashboards --watchers 200 --owners 10 --rate 200 --duration 20
# Usage: loadtest/bench_callgrind.sh OLD_BIN NEW_BIN [LOADTEST_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1; new=$2; lt=${3:-.build/release/loadtest}
port=9291
measure() {  # bin workload -> instructions
  local bin=$1 workload=$2 data out pid
  data=$(mktemp -d); out=$(mktemp)
  local key=()
  # Dashboards publish with the admin key (the load generator's default one); the rooms run in open mode.
  if [ "$workload" = dashboards ] || [ "$workload" = idle-key ]; then key=(--admin-key load-admin-key-0123456789); fi
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve --port $port --threads 1 \
    --max-connections-per-address 0 "${key[@]}" --data "$data" >/dev/null 2>&1 & pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  case $workload in
    idle|idle-key) sleep 1 ;;
    fanout) taskset -c 1 "$lt" rooms --url ws://127.0.0.1:$port --sessions 10 --members 10 --rate 1 --duration 20 --quiet >/dev/null 2>&1 ;;
    durable) taskset -c 1 "$lt" rooms --url ws://127.0.0.1:$port --sessions 50 --members 2 --rate 0 --chat-every 0.5 \
               --duration 20 --quiet >/dev/null 2>&1 ;;
    dashboards) taskset -c 1 "$lt" dashboards --url ws://127.0.0.1:$port --watchers 200 --owners 10 --rate 200 \
               --duration 20 >/dev/null 2>&1 ;;
  esac
  kill -INT $pid; wait $pid 2>/dev/null || true
  # Every thread's total (the loop, the SQLite writer and checkpointer, workers).
  local total=0
  for f in "$out"*; do
    n=$(grep -E "^summary:|^totals:" "$f" | head -1 | awk '{print $2}'); total=$((total + ${n:-0}))
  done
  rm -rf "$data" "$out"*
  echo "$total"
}
for w in fanout durable dashboards; do
  for bin in "$old" "$new"; do
    if [ $w = dashboards ]; then idle=$(measure "$bin" idle-key); else idle=$(measure "$bin" idle); fi
    run=$(measure "$bin" $w)
    echo "$w $bin: $(( (run - idle) / 1000000 ))M instructions (run $((run / 1000000))M, idle $((idle / 1000000))M)"
  done
done
