#!/usr/bin/env bash
# Cluster benchmark: three hub nodes sharing sessions through one redis-server, against one node (SQLite),
# measured in the same run, interleaved. The whole server side (the three nodes and Redis, or the single
# node) is pinned to CPU 0 and the load generator to CPU 1, so both get the same one core.
#   fanout:  100 sessions x 6 members (member k on node k mod 3), each sending 10 app events/s: every
#            event crosses Redis pub/sub to the two other nodes (6,000 sent/s, 30,000 deliveries/s
#            offered): latency at a load both carry
#   fanmax:  the same at 100 events/s each (300,000 deliveries/s offered): capacity on a busy machine; on
#            a quiet one both sides carry all of it, each on its whole core (then see fancap)
#   fancap:  the same at 300 events/s each (900,000 deliveries/s offered, more than either carries):
#            deliveries/s is each side's capacity on its one core (not in the default set)
#   durable: 300 sessions x 2 members (on different nodes), each chatting 10 times a second (6,000/s
#            offered): latency from send to the other member's copy at a load both carry
#   durmax:  the same at 50 chats/s each (30,000/s offered): acknowledged/s, the capacity
# Redis runs with AOF and `appendfsync everysec` (an acknowledgement can be lost with the last second
# of writes if the Redis machine loses power; `always` closes that, at the cost measured in loadtest/README.md).
# CPU: the server side's CPU time (utime + stime of every hub node, and of Redis) over the load's run, per
# delivery (fan-out) or per acknowledged chat (durable), cluster against single: the cost of sharing.
# Afterwards: Redis memory per stored event (used_memory over the events in the logs).
# Usage: loadtest/bench_cluster.sh [runs=3] [seconds=10] [fsync=everysec]
# Environment: COLLABHUB_BIN and LOADTEST_BIN run given binaries (an old build against a new one; then
# nothing is built), SCENARIOS="fanout fanmax" runs only those, PORT_BASE moves Redis's port (9250) and
# the nodes' (the next three).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}; fsync=${3:-everysec}
bin=${COLLABHUB_BIN:-.build/release/collabhub}; lt=${LOADTEST_BIN:-.build/release/loadtest}
scenarios=${SCENARIOS:-fanout fanmax durable durmax}
if [ -z "${COLLABHUB_BIN:-}" ]; then swift build -c release 2>&1 | grep -E "error" || true; fi
out=$(mktemp -d)
rport=${PORT_BASE:-9250}
start_redis() {
  rm -rf "$out/redis"; mkdir -p "$out/redis"
  taskset -c 0 redis-server --port $rport --bind 127.0.0.1 --dir "$out/redis" --appendonly yes --appendfsync "$fsync" \
    --save "" --daemonize no --logfile "$out/redis/log" & rpid=$!
  until redis-cli -p $rport ping >/dev/null 2>&1; do sleep 0.05; done
}
ticks() {  # summed utime + stime (clock ticks) of the given pids
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo $t
}
run() {  # mode scenario extra-args...
  local mode=$1 scenario=$2; shift 2
  local pids=() urls=() spread=""
  if [ "$mode" = cluster ]; then
    start_redis
    for n in 0 1 2; do
      taskset -c 0 "$bin" serve --port $((rport + 1 + n)) --threads 1 --max-connections-per-address 0 \
        --limit-chat 1000 --limit-event 1000 --redis redis://127.0.0.1:$rport --auth open --data "$(mktemp -d)" \
        >/dev/null 2>&1 &
      pids+=($!); urls+=("ws://127.0.0.1:$((rport + 1 + n))")
    done
    spread="--spread ${urls[1]},${urls[2]}"
  else
    taskset -c 0 "$bin" serve --port $((rport + 1)) --threads 1 --max-connections-per-address 0 \
      --limit-chat 1000 --limit-event 1000 --data "$(mktemp -d)" >/dev/null 2>&1 &
    pids+=($!); urls+=("ws://127.0.0.1:$((rport + 1))")
  fi
  sleep 1
  local rp=""; [ "$mode" = cluster ] && rp=$rpid
  local n0 r0; n0=$(ticks "${pids[@]}"); r0=$(ticks $rp)
  # shellcheck disable=SC2086
  taskset -c 1 "$lt" run "$@" --url "${urls[0]}" $spread --duration "$secs" --quiet \
    --json "$out/$scenario-$mode-$i.json" > "$out/$scenario-$mode-$i.txt" 2>&1 || true
  echo "$(( $(ticks "${pids[@]}") - n0 )) $(( $(ticks $rp) - r0 ))" > "$out/$scenario-$mode-$i.cpu"
  if [ "$mode" = cluster ] && [ "$scenario" = durmax ]; then
    events=$(redis-cli -p $rport --scan --pattern '*:log' | while read -r k; do redis-cli -p $rport hlen "$k"; done | awk '{s+=$1} END {print s+0}')
    mem=$(redis-cli -p $rport info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
    echo "$events $mem" > "$out/memory-$i.txt"
  fi
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
  if [ "$mode" = cluster ]; then kill $rpid; wait $rpid 2>/dev/null || true; fi
  grep -E "deliveries|acks|latency" "$out/$scenario-$mode-$i.txt" | sed "s/^/  $scenario $mode run $i: /" || true
}
for i in $(seq 1 "$runs"); do
  for mode in single cluster; do
    for s in $scenarios; do
      case $s in
        fanout) run $mode fanout loadtest/scenarios/fanout.json --sessions 100 --members 6 --rate 10 --cursor-hz 0 --chat-every 0 ;;
        fanmax) run $mode fanmax loadtest/scenarios/fanout.json --sessions 100 --members 6 --rate 100 --cursor-hz 0 --chat-every 0 ;;
        fancap) run $mode fancap loadtest/scenarios/fanout.json --sessions 100 --members 6 --rate 300 --cursor-hz 0 --chat-every 0 ;;
        durable) run $mode durable loadtest/scenarios/durable.json --sessions 300 --members 2 --chat-every 0.1 ;;
        durmax) run $mode durmax loadtest/scenarios/durable.json --sessions 300 --members 2 --chat-every 0.02 ;;
      esac
    done
  done
done
python3 - "$out" "$(getconf CLK_TCK)" <<'PY'
import json, sys, glob, statistics, os
out, hz = sys.argv[1], int(sys.argv[2])
med = lambda xs: statistics.median(xs) if xs else float("nan")
def load(s, m): return [json.load(open(f)) for f in glob.glob(os.path.join(out, f"{s}-{m}-*.json"))]
def cpu(s, m):  # per run: (CPU microseconds of the nodes, of Redis) per delivery (fan) or acked chat (durable)
    res = []
    for f in glob.glob(os.path.join(out, f"{s}-{m}-*.json")):
        x = json.load(open(f))
        nodes, redis = map(int, open(f[:-5] + ".cpu").read().split())
        work = (x["deliveries_per_second"] if s.startswith("fan") else x["acks_per_second"]) * x["seconds"]
        if work > 0:
            res.append((nodes * 1e6 / hz / work, redis * 1e6 / hz / work))
    return res
print(f"{'scenario':<9}{'mode':<9}{'deliveries/s':>13}{'acked/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
ratio = {}
for s in ["fanout", "fanmax", "fancap", "durable", "durmax"]:
    for m in ["single", "cluster"]:
        r = load(s, m)
        kind = "event" if s.startswith("fan") else "chat"
        d, a = med([x["deliveries_per_second"] for x in r]), med([x["acks_per_second"] for x in r])
        p50 = med([x["latency_ms_by_kind"].get(kind, {}).get("p50", 0) for x in r])
        p99 = med([x["latency_ms_by_kind"].get(kind, {}).get("p99", 0) for x in r])
        ratio[(s, m)] = d if s.startswith("fan") else a
        print(f"{s:<9}{m:<9}{d:>13,.0f}{a:>10,.0f}{p50:>9.2f}{p99:>9.2f}")
for s in ["fanout", "fanmax", "fancap", "durable", "durmax"]:
    if ratio.get((s, "single")):
        print(f"{s}: cluster / single = {ratio[(s, 'cluster')] / ratio[(s, 'single')]:.2f}")
print("server CPU per delivery (fan-out) or per acked chat (durable), microseconds, medians:")
for s in ["fanout", "fanmax", "fancap", "durable", "durmax"]:
    one, many = cpu(s, "single"), cpu(s, "cluster")
    if one and many:
        o = med([a + b for a, b in one])
        n, r = med([a for a, _ in many]), med([b for _, b in many])
        print(f"  {s:<8} single {o:7.2f}   cluster {n + r:7.2f} (nodes {n:.2f} + redis {r:.2f})   "
              f"cluster / single = {(n + r) / o:.2f}")
mem = [tuple(map(int, open(f).read().split())) for f in glob.glob(os.path.join(out, "memory-*.txt"))]
mem = [m for m in mem if m[0] > 0]
if mem:
    print(f"redis memory per stored event (median over runs, ~{mem[0][0]:,} events): "
          f"{med([m[1] / m[0] for m in mem]):.0f} bytes")
PY
