#!/usr/bin/env bash
# Instruction counts (valgrind --tool=callgrind) of hub builds on fixed-size workloads: repeatable on a
# noisy shared machine where times are not. Each workload runs against `collabhub serve --threads 1`
# under callgrind (pinned to CPU 0, the load generator on CPU 1); the figure is the hub's total
# instructions (every thread: the loop, the SQLite writer and checkpointer, workers) minus those of an
# idle start-and-stop of the same binary with the same flags.
#
# The workloads are a fixed amount of work, not a duration: the load generator sends one message at a
# time (the next once the last has reached every recipient and its ack is in), so the hub reads, commits
# and writes each message on its own whatever the timing, and ends with close handshakes the hub has
# answered before it is stopped. Two runs of the same build differ by well under 1%.
#   fanout      rooms --sessions 10 --members 10 --rate 1 --messages 2000        per delivery (18,000)
#   durable     rooms --sessions 50 --members 2 --chat-every 1 --no-typing --messages 2000
#                                                                                 per acked chat (2,000)
#   dashboards  dashboards --watchers 200 --owners 10 --runs 100 --events 1000   per run event (1,000;
#                                                                                 20,000 deliveries)
#   idle        idle --sessions 200 --connections 2000                           per joined member (2,000)
# The per-unit figures include each workload's set-up (sessions, connections, joins, leaves).
#
# Usage: loadtest/bench_callgrind.sh OLD_BIN NEW_BIN [LOADTEST_BIN]     two builds side by side
#        loadtest/bench_callgrind.sh --measure BIN [LOADTEST_BIN] [WORKLOAD...]
#            one line per workload: `WORKLOAD UNITS UNIT RUN_INSTRUCTIONS IDLE_INSTRUCTIONS`
#            (loadtest/callgrind_budget.py reads these; REPS=N repeats each workload N times)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${CALLGRIND_PORT:-9291}
admin_key=load-admin-key-0123456789
all_workloads=(fanout durable dashboards idle)

# The load generator's command for a workload (without --url) and its units of work.
workload_cmd() {
  case $1 in
    fanout) echo "rooms --sessions 10 --members 10 --rate 1 --messages 2000 --quiet" ;;
    durable) echo "rooms --sessions 50 --members 2 --rate 0 --chat-every 1 --no-typing --messages 2000 --quiet" ;;
    dashboards) echo "dashboards --watchers 200 --owners 10 --runs 100 --events 1000" ;;
    idle) echo "idle --sessions 200 --connections 2000" ;;
    *) echo "unknown workload: $1" >&2; return 1 ;;
  esac
}
workload_units() {
  case $1 in
    fanout) echo "18000 delivery" ;;
    durable) echo "2000 acked-chat" ;;
    dashboards) echo "1000 run-event" ;;
    idle) echo "2000 member" ;;
  esac
}

measure() {  # bin loadtest workload|idle-ref|idle-ref-key -> instructions
  local bin=$1 lt=$2 workload=$3 data out pid log
  data=$(mktemp -d); out=$(mktemp); log=$(mktemp)
  local key=()
  # Dashboards publish with the admin key (the load generator's default one); the rooms run in open mode.
  if [ "$workload" = dashboards ] || [ "$workload" = idle-ref-key ]; then key=(--admin-key $admin_key); fi
  # Deterministic hashing: a Dictionary's probe sequence is then the same in every run. The chat and
  # event limits are lifted: whether a message is refused must not depend on how fast valgrind runs.
  SWIFT_DETERMINISTIC_HASHING=1 taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
    --port $port --threads 1 --max-connections-per-address 0 --limit-chat 1000000 --limit-event 1000000 \
    "${key[@]}" --data "$data" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  local status=0
  case $workload in
    idle-ref | idle-ref-key) sleep 1 ;;
    idle) taskset -c 1 "$lt" $(workload_cmd idle) --url "ws://127.0.0.1:$port/ws" --pid $pid >"$log" 2>&1 || status=$? ;;
    *) taskset -c 1 "$lt" $(workload_cmd "$workload") --url "ws://127.0.0.1:$port" >"$log" 2>&1 || status=$? ;;
  esac
  # A graceful stop. Under valgrind a SIGINT has been seen to go unanswered now and then (the hub idling on
  # a loaded machine): it is sent again every 10 s, and said on stderr, since the extra idling is counted.
  kill -INT $pid
  local waited=0
  while kill -0 $pid 2>/dev/null; do
    sleep 0.2; waited=$((waited + 1))
    if [ $((waited % 50)) -eq 0 ]; then echo "$workload: SIGINT again after $((waited / 5)) s" >&2; kill -INT $pid; fi
  done
  wait $pid 2>/dev/null || true
  if [ $status -ne 0 ]; then
    echo "$workload: the load generator failed ($status):" >&2
    tail -5 "$log" >&2
    rm -rf "$data" "$out"* "$log"
    return 1
  fi
  local total=0 n
  for f in "$out"*; do
    n=$(grep -E "^summary:|^totals:" "$f" | head -1 | awk '{print $2}')
    total=$((total + ${n:-0}))
  done
  rm -rf "$data" "$out"* "$log"
  [ "$total" -gt 0 ] || { echo "$workload: callgrind wrote no totals" >&2; return 1; }
  echo "$total"
}

min() { if [ "$1" -le "$2" ]; then echo "$1"; else echo "$2"; fi; }

if [ "${1:-}" = --measure ]; then
  bin=$2; lt=${3:-.build-rel/release/loadtest}; shift 2; [ $# -gt 0 ] && shift
  workloads=("$@"); [ ${#workloads[@]} -gt 0 ] || workloads=("${all_workloads[@]}")
  # The smaller of two idle references: a stop that needed a second signal only ever adds instructions.
  idle=$(min "$(measure "$bin" "$lt" idle-ref)" "$(measure "$bin" "$lt" idle-ref)")
  idle_key=$(min "$(measure "$bin" "$lt" idle-ref-key)" "$(measure "$bin" "$lt" idle-ref-key)")
  for w in "${workloads[@]}"; do
    workload_cmd "$w" >/dev/null
    ref=$idle; [ "$w" = dashboards ] && ref=$idle_key
    for _ in $(seq 1 "${REPS:-1}"); do
      run=$(measure "$bin" "$lt" "$w")
      echo "$w $(workload_units "$w") $run $ref"
    done
  done
  exit 0
fi

old=$1; new=$2; lt=${3:-.build-rel/release/loadtest}
for w in "${all_workloads[@]}"; do
  read -r units unit <<<"$(workload_units $w)"
  for bin in "$old" "$new"; do
    if [ $w = dashboards ]; then idle=$(measure "$bin" "$lt" idle-ref-key); else idle=$(measure "$bin" "$lt" idle-ref); fi
    run=$(measure "$bin" "$lt" $w)
    echo "$w $bin: $(( (run - idle) / 1000000 ))M instructions, $(( (run - idle) / units )) per $unit" \
      "(run $((run / 1000000))M, idle $((idle / 1000000))M)"
  done
done
