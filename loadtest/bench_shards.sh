#!/usr/bin/env bash
# Redis Cluster: does the work per append and per delivery grow with the number of shards? Two hub nodes on
# a Redis Cluster of 1, 2 and 3 masters (no replicas; slots spread evenly with CLUSTER ADDSLOTSRANGE, since
# `redis-cli --cluster create` wants at least three), and on one plain Redis for reference, interleaved. The
# whole server side (the nodes and every redis-server) is pinned to CPU 0, the load generator to CPU 1; a
# 2-core machine cannot show absolute scale-up, only the cost per unit of work, which is what is compared:
# CPU time (utime + stime, from /proc) of the nodes and of Redis per acknowledged chat (durable: 300
# sessions x 2 members on different nodes, 10 chats/s each) and per delivery (fan-out: 100 x 6, members
# spread over both nodes, 10 app events/s each). Redis runs with AOF and `appendfsync everysec`.
# Usage: loadtest/bench_shards.sh [runs=3] [seconds=10]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
swift build -c release --product collabhub 2>&1 | grep -E "error" || true
swift build -c release --product loadtest 2>&1 | grep -E "error" || true
out=$(mktemp -d)
base=9400
hz=$(getconf CLK_TCK)

ticks() {  # summed utime + stime (clock ticks) of the given pids
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo $t
}

start_redis() {  # shards (0: one plain Redis) -> sets rpids, url
  local shards=$1 n port
  rpids=()
  local count=$shards; [ "$shards" = 0 ] && count=1
  for n in $(seq 0 $((count - 1))); do
    port=$((base + n)); mkdir -p "$out/r$port"; rm -rf "$out/r$port"/*
    local extra=(); [ "$shards" != 0 ] && extra=(--cluster-enabled yes --cluster-config-file "$out/r$port/nodes.conf")
    taskset -c 0 redis-server --port $port --bind 127.0.0.1 --dir "$out/r$port" --appendonly yes \
      --appendfsync everysec --save "" --daemonize no --logfile "$out/r$port/log" "${extra[@]}" & rpids+=($!)
    until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.05; done
  done
  if [ "$shards" = 0 ]; then url="redis://127.0.0.1:$base"; return; fi
  local per=$((16384 / shards))
  for n in $(seq 0 $((shards - 1))); do
    local lo=$((n * per)) hi=$(((n + 1) * per - 1))
    [ $n = $((shards - 1)) ] && hi=16383
    redis-cli -p $((base + n)) cluster addslotsrange $lo $hi >/dev/null
    [ $n -gt 0 ] && redis-cli -p $((base + n)) cluster meet 127.0.0.1 $base >/dev/null
  done
  for _ in $(seq 1 200); do
    local ok=1
    for n in $(seq 0 $((shards - 1))); do
      redis-cli -p $((base + n)) cluster info | grep -q "cluster_state:ok" || ok=0
      [ "$(redis-cli -p $((base + n)) cluster nodes | wc -l)" = "$shards" ] || ok=0
    done
    [ $ok = 1 ] && break
    sleep 0.1
  done
  url="redis+cluster://127.0.0.1:$base"
}

run() {  # shards scenario loadtest-args...
  local shards=$1 scenario=$2; shift 2
  start_redis "$shards"
  local pids=()
  for n in 0 1; do
    taskset -c 0 .build/release/collabhub serve --port $((9451 + n)) --threads 1 --max-connections-per-address 0 \
      --limit-chat 1000 --limit-event 1000 --redis "$url" --auth open --data "$(mktemp -d)" >/dev/null 2>&1 &
    pids+=($!)
  done
  sleep 1.5
  local n0 r0; n0=$(ticks "${pids[@]}"); r0=$(ticks "${rpids[@]}")
  taskset -c 1 .build/release/loadtest run "$@" --url ws://127.0.0.1:9451 --spread ws://127.0.0.1:9452 \
    --duration "$secs" --quiet --json "$out/$scenario-$shards-$i.json" > "$out/$scenario-$shards-$i.txt" 2>&1 || true
  echo "$(($(ticks "${pids[@]}") - n0)) $(($(ticks "${rpids[@]}") - r0))" > "$out/$scenario-$shards-$i.cpu"
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
  kill "${rpids[@]}" 2>/dev/null; wait "${rpids[@]}" 2>/dev/null || true
  grep -E "deliveries|acks" "$out/$scenario-$shards-$i.txt" | sed "s/^/  $scenario shards=$shards run $i: /" || true
}

for i in $(seq 1 "$runs"); do
  for shards in 0 1 2 3; do
    run $shards durable loadtest/scenarios/durable.json --sessions 300 --members 2 --chat-every 0.1
    run $shards fanout loadtest/scenarios/fanout.json --sessions 100 --members 6 --rate 10 --cursor-hz 0 --chat-every 0
  done
done
python3 - "$out" "$hz" <<'PY'
import json, sys, glob, statistics, os
out, hz = sys.argv[1], int(sys.argv[2])
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("server CPU, microseconds per acked chat (durable) and per delivery (fan-out), medians; shards 0 = one plain Redis")
print(f"{'scenario':<9}{'shards':>7}{'done/s':>10}{'nodes':>9}{'redis':>9}{'total':>9}")
for s in ["durable", "fanout"]:
    for shards in ["0", "1", "2", "3"]:
        rows = []
        for f in glob.glob(os.path.join(out, f"{s}-{shards}-*.json")):
            x = json.load(open(f))
            nodes, redis = map(int, open(f[:-5] + ".cpu").read().split())
            rate = x["acks_per_second"] if s == "durable" else x["deliveries_per_second"]
            work = rate * x["seconds"]
            if work > 0:
                rows.append((rate, nodes * 1e6 / hz / work, redis * 1e6 / hz / work))
        if rows:
            r, n, d = med([a for a, _, _ in rows]), med([b for _, b, _ in rows]), med([c for _, _, c in rows])
            print(f"{s:<9}{shards:>7}{r:>10,.0f}{n:>9.2f}{d:>9.2f}{n + d:>9.2f}")
PY
rm -rf "$out"
