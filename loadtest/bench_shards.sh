#!/usr/bin/env bash
# Redis Cluster: does the work per append and per delivery grow with the number of shards? Two hub nodes on
# a Redis Cluster of 1, 2 and 3 masters (no replicas; slots spread evenly with CLUSTER ADDSLOTSRANGE, since
# `redis-cli --cluster create` wants at least three), and on one plain Redis for reference, interleaved. The
# whole server side (the nodes and every redis-server) is pinned to CPU 0, the load generator to CPU 1; a
# 2-core machine cannot show absolute scale-up, only the cost per unit of work, which is what is compared:
# CPU time (utime + stime, from /proc) of the nodes and of Redis per acknowledged chat (durable: 300
# sessions x 2 members on different nodes, 10 chats/s each) and per delivery (fan-out: 100 x 6, members
# spread over both nodes, 10 app events/s each). Redis runs with AOF and `appendfsync everysec`.
# Decomposed (2026-12-06): every figure covers exactly the load generator's measured window (its
# `--window-hook` samples /proc, Redis's INFO and a `perf stat` syscall count at the window's start and
# end; before, connecting, joining and the warm-up were counted too); the same topology is first measured
# idle for as long (no clients: redis cron, cluster bus, the nodes' heartbeats and timers) and that is
# subtracted (net); Redis's time inside commands comes from INFO commandstats (EVALSHA per append,
# SPUBLISH per relayed batch), the rest of its CPU is its event loop, sockets and AOF writes.
# Usage: loadtest/bench_shards.sh [runs=3] [seconds=10]; SHARDS="0 1 2 3" picks the topologies, RATE=10 the
# chats (durable) and events (fan-out) per second per member: RATE=3.33 SHARDS=1 gives one master the load
# each of three masters gets at RATE=10.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; secs=${2:-10}
scratch=${SCRATCH:-.build-rel}
swift build -c release --product collabhub --scratch-path "$scratch" 2>&1 | grep -E "error" || true
swift build -c release --product loadtest --scratch-path "$scratch" 2>&1 | grep -E "error" || true
bin=$scratch/release
out=$(mktemp -d)
base=9400
hz=$(getconf CLK_TCK)

ticks() {  # summed utime and stime (clock ticks) of the given pids: "user sys"
  local u=0 k=0 p a b
  for p in "$@"; do
    read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat" 2>/dev/null || echo 0 0)
    u=$((u + a)); k=$((k + b))
  done
  echo $u $k
}

# The window hook: `hook start|end`, run by the load generator around its measured window. It reads the
# pids and ports from $out/now, writes $out/<run>.<phase> (CPU ticks, Redis INFO) and counts syscalls
# with perf between the two (all of it in the server's own figures: perf costs a little per syscall).
cat > "$out/hook" <<'HOOK'
#!/usr/bin/env bash
. "$(dirname "$0")/now"
f="$dir/$tag.$1"
{
  echo "nodes $(ticks $nodes)"
  echo "redis $(ticks $redis)"
  for port in $ports; do
    redis-cli -p "$port" info commandstats | tr -d '\r' | grep -E '^cmdstat_(evalsha|eval|fcall|spublish|publish):'
    redis-cli -p "$port" info stats | tr -d '\r' | grep -E '^total_(reads|writes)_processed:'
  done
} > "$f"
if [ "$1" = start ]; then
  for g in nodes redis; do
    perf stat -e raw_syscalls:sys_enter -x, -o "$dir/$tag.perf-$g" -p "$(echo ${!g} | tr ' ' ,)" \
      >/dev/null 2>&1 & echo $! > "$dir/$tag.perfpid-$g"
  done
  sleep 0.2
else
  for g in nodes redis; do kill -INT "$(cat "$dir/$tag.perfpid-$g")" 2>/dev/null || true; done
  for g in nodes redis; do
    for _ in $(seq 1 50); do grep -q raw_syscalls "$dir/$tag.perf-$g" 2>/dev/null && break; sleep 0.05; done
  done
fi
HOOK
chmod +x "$out/hook"

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
    taskset -c 0 "$bin/collabhub" serve --port $((9451 + n)) --threads 1 --max-connections-per-address 0 \
      --limit-chat 1000 --limit-event 1000 --redis "$url" --auth open --data "$(mktemp -d)" >/dev/null 2>&1 &
    pids+=($!)
  done
  sleep 1.5
  local tag="$scenario-$shards-$i" ports="" n
  for n in $(seq 0 $((${#rpids[@]} - 1))); do ports="$ports $((base + n))"; done
  # Idle: the same topology, no clients, as long as the measured window.
  echo "nodes $(ticks "${pids[@]}")" > "$out/$tag.idle0"; echo "redis $(ticks "${rpids[@]}")" >> "$out/$tag.idle0"
  sleep "$secs"
  echo "nodes $(ticks "${pids[@]}")" > "$out/$tag.idle1"; echo "redis $(ticks "${rpids[@]}")" >> "$out/$tag.idle1"
  { declare -f ticks; echo "dir=$out tag=$tag nodes='${pids[*]}' redis='${rpids[*]}' ports='$ports'"; } > "$out/now"
  taskset -c 1 "$bin/loadtest" run "$@" --url ws://127.0.0.1:9451 --spread ws://127.0.0.1:9452 \
    --duration "$secs" --quiet --json "$out/$tag.json" --window-hook "$out/hook" > "$out/$tag.txt" 2>&1 || true
  kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null || true
  kill "${rpids[@]}" 2>/dev/null; wait "${rpids[@]}" 2>/dev/null || true
  grep -E "deliveries|acks" "$out/$scenario-$shards-$i.txt" | sed "s/^/  $scenario shards=$shards run $i: /" || true
}

rate=${RATE:-10}
every=$(awk -v r="$rate" 'BEGIN { printf "%.4f", 1 / r }')
for i in $(seq 1 "$runs"); do
  for shards in ${SHARDS:-0 1 2 3}; do
    run "$shards" durable loadtest/scenarios/durable.json --sessions 300 --members 2 --chat-every "$every"
    run "$shards" fanout loadtest/scenarios/fanout.json --sessions 100 --members 6 --rate "$rate" --cursor-hz 0 \
      --chat-every 0
  done
done
/usr/bin/python3 - "$out" "$hz" <<'PY'
import json, sys, glob, statistics, os, re
out, hz = sys.argv[1], int(sys.argv[2])
med = lambda xs: statistics.median(xs) if xs else float("nan")
us = 1e6 / hz


def snap(path):
    d = {"calls": {}, "usec": {}, "reads": 0, "writes": 0}
    for line in open(path):
        w = line.split()
        if w[0] in ("nodes", "redis"):
            d[w[0]] = (int(w[1]), int(w[2]))
        elif line.startswith("cmdstat_"):
            name = line.split(":")[0][8:]
            f = dict(kv.split("=") for kv in line.split(":", 1)[1].strip().split(","))
            d["calls"][name] = d["calls"].get(name, 0) + int(f["calls"])
            d["usec"][name] = d["usec"].get(name, 0) + int(f["usec"])
        elif line.startswith("total_reads_processed:"):
            d["reads"] += int(line.split(":")[1])
        elif line.startswith("total_writes_processed:"):
            d["writes"] += int(line.split(":")[1])
    return d


def syscalls(path):
    try:
        for line in open(path):
            if "raw_syscalls" in line:
                return int(line.split(",")[0])
    except (OSError, ValueError):
        pass
    return float("nan")


rows = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    tag = os.path.basename(f)[:-5]
    s, shards, _ = tag.split("-")
    x = json.load(open(f))
    rate = x["acks_per_second"] if s == "durable" else x["deliveries_per_second"]
    work = rate * x["seconds"]
    try:
        a, b = snap(f"{out}/{tag}.start"), snap(f"{out}/{tag}.end")
        i0, i1 = snap(f"{out}/{tag}.idle0"), snap(f"{out}/{tag}.idle1")
    except (OSError, KeyError):
        continue
    if work <= 0:
        continue
    cpu = lambda p, q, g: ((q[g][0] - p[g][0]) * us / work, (q[g][1] - p[g][1]) * us / work)
    nu, ns = cpu(a, b, "nodes")
    ru, rs = cpu(a, b, "redis")
    # Idle CPU over the same length of time, per unit of the loaded run's work.
    idle_n, idle_r = sum(cpu(i0, i1, "nodes")), sum(cpu(i0, i1, "redis"))
    d = lambda k, n: b[k].get(n, 0) - a[k].get(n, 0)
    script_calls, script_usec = d("calls", "evalsha") + d("calls", "eval"), d("usec", "evalsha") + d("usec", "eval")
    pub_calls, pub_usec = d("calls", "spublish") + d("calls", "publish"), d("usec", "spublish") + d("usec", "publish")
    # Durable: the publication runs inside the append script (its time is in the script's); fan-out: the
    # nodes' own (S)PUBLISH per relayed batch.
    in_cmd = (script_usec + (pub_usec if s == "fanout" else 0)) / work
    rows.setdefault((s, shards), []).append(dict(
        rate=rate, nodes=nu + ns, nodes_sys=ns, redis=ru + rs, redis_sys=rs, idle_n=idle_n, idle_r=idle_r,
        in_cmd=in_cmd, script=script_usec / script_calls if script_calls else float("nan"),
        pub=pub_usec / pub_calls if pub_calls else float("nan"), pubs=pub_calls / work,
        reads=(b["reads"] - a["reads"]) / work,
        sys_n=syscalls(f"{out}/{tag}.perf-nodes") / work, sys_r=syscalls(f"{out}/{tag}.perf-redis") / work))

label = {"0": "plain", "1": "1 master", "2": "2 masters", "3": "3 masters"}
print("server CPU in microseconds per acked chat (durable) / per delivery (fan-out), medians of",
      max((len(v) for v in rows.values()), default=0), "runs; over the measured window only")
print("raw = CPU in the window; idle = the same topology idle for as long, per unit; net = raw - idle;")
print("in-cmd = Redis inside commands (INFO commandstats); loop = Redis net - in-cmd (event loop, sockets, AOF)")
hdr = ["scenario", "redis", "done/s", "nodes", "n.sys", "n.idle", "n.net", "redis", "r.sys", "r.idle", "r.net",
       "in-cmd", "loop", "total", "net", "script", "pub/u", "pub us", "r.reads", "n.calls", "r.calls"]
print("".join(f"{h:>9}" if i > 1 else f"{h:<10}" for i, h in enumerate(hdr)))
for s in ["durable", "fanout"]:
    for shards in ["0", "1", "2", "3"]:
        v = rows.get((s, shards))
        if not v:
            continue
        m = {k: med([r[k] for r in v]) for k in v[0]}
        net_n, net_r = m["nodes"] - m["idle_n"], m["redis"] - m["idle_r"]
        cells = [m["rate"], m["nodes"], m["nodes_sys"], m["idle_n"], net_n, m["redis"], m["redis_sys"],
                 m["idle_r"], net_r, m["in_cmd"], net_r - m["in_cmd"], m["nodes"] + m["redis"], net_n + net_r,
                 m["script"], m["pubs"], m["pub"], m["reads"], m["sys_n"], m["sys_r"]]
        print(f"{s:<10}{label[shards]:<10}" + f"{cells[0]:>9,.0f}" + "".join(f"{c:>9.2f}" for c in cells[1:]))
print("script = EVALSHA microseconds per call; pub/u = (S)PUBLISH calls per unit, pub us = per call;")
print("r.reads = Redis socket reads per unit (total_reads_processed); n.calls / r.calls = syscalls per unit")
print("(perf raw_syscalls) of the nodes and of every redis-server")
PY
rm -rf "$out"
