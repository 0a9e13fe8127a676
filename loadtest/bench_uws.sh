#!/usr/bin/env bash
# CollabHub against a uWebSockets rooms server, side by side in the same run (issue 30 item 2): each server
# pinned to CPU 0 (the hub with one loop thread), the load generator on CPU 1, repetitions interleaved,
# medians. The hub is driven through its protocol (created sessions, join, JSON events, sender excluded);
# the uWS peer is a raw rooms server (`--peer raw`: it subscribes each socket to its room's topic and
# publishes every message to it, the sender excluded). It is built outside this tree from uWebSockets'
# public repository, never committed here; give its binary (argument: PORT) in UWS_ROOMS.
#   saturation: 100 sessions x 10 members offering SAT_RATE msg/s each (default 200: 1.8M deliveries/s)
#   fixed:      100 sessions x 10 members at 10 msg/s each (90k deliveries/s): the server's CPU per
#               10k deliveries/s (utime + stime from /proc over the measured seconds), and latency
# Saturation also gives deliveries per second of server CPU time (deliveries/s divided by the server's
# share of a core): on a shared machine the server does not always get its whole core, and that figure
# does not depend on how much of it it got.
# Usage: UWS_ROOMS=/path/to/uws-rooms loadtest/bench_uws.sh [runs=5] [seconds=10] [HUB_BIN] [LOADTEST_BIN]
#        (PORT_BASE=N: the hub listens on N, the peer on N+1; 9241 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}; secs=${2:-10}
hub=${3:-.build-rel/release/collabhub}; lt=${4:-.build-rel/release/loadtest}
sat_rate=${SAT_RATE:-200}
port_base=${PORT_BASE:-9241}
uws=${UWS_ROOMS:?set UWS_ROOMS to the uWebSockets rooms server binary}
for b in "$hub" "$lt" "$uws"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 1; }; done
out=$(mktemp -d)
run() {  # server scenario rate
  local server=$1 scenario=$2 rate=$3 pid port peer data=""
  if [ "$server" = collabhub ]; then
    port=$port_base; peer=collabhub; data=$(mktemp -d)
    # The per-connection event limit lifted (the peer has none): 200 events/s per member is above it.
    taskset -c 0 "$hub" serve --port $port --threads 1 --max-connections-per-address 0 --limit-event 1000000 \
      --data "$data" >/dev/null 2>&1 & pid=$!
  else
    port=$((port_base + 1)); peer=raw
    taskset -c 0 "$uws" $port >/dev/null 2>&1 & pid=$!
  fi
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 "$lt" rooms --peer $peer --url ws://127.0.0.1:$port --sessions 100 --members 10 --rate "$rate" \
    --duration "$secs" --server-pid $pid --quiet --json "$out/$scenario-$server-$i.json" \
    >"$out/$scenario-$server-$i.txt" 2>&1 || true
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
  [ -n "$data" ] && rm -rf "$data"
  grep -E "deliveries|server" "$out/$scenario-$server-$i.txt" | sed "s/^/  $scenario $server run $i: /" || true
}
for i in $(seq 1 "$runs"); do
  # Interleaved, and which server goes first alternates.
  if [ $((i % 2)) -eq 1 ]; then order="collabhub uws"; else order="uws collabhub"; fi
  for server in $order; do run $server fixed 10; done
  for server in $order; do run $server saturation "$sat_rate"; done
done
/usr/bin/python3 - "$out" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
def values(scenario, server, f):
    vals = []
    for p in sorted(glob.glob(os.path.join(out, f"{scenario}-{server}-*.json"))):
        try:
            v = f(json.load(open(p)))
        except (KeyError, TypeError, ZeroDivisionError, ValueError):
            continue
        if v is not None:
            vals.append(v)
    return vals
def med(vals):
    return statistics.median(vals) if vals else float("nan")
dps = lambda d: d["deliveries_per_second"]
cpu = lambda d: d["server_cpu_percent"]
percpu = lambda d: d["deliveries_per_second"] / (d["server_cpu_percent"] / 100)
per10k = lambda d: d["server_cpu_percent"] * 10000 / d["deliveries_per_second"]
p99 = lambda d: d["latency_ms"]["p99"]
p50 = lambda d: d["latency_ms"]["p50"]
print(f"{'scenario':<11}{'server':<10}{'runs':>5}{'deliveries/s':>14}{'srv CPU%':>9}{'CPU%/10k/s':>11}"
      f"{'per CPU-s':>11}{'p50 ms':>8}{'p99 ms':>9}   CPU%/10k/s per run")
for sc in ("fixed", "saturation"):
    for sv in ("collabhub", "uws"):
        runs = values(sc, sv, per10k)
        print(f"{sc:<11}{sv:<10}{len(runs):>5}{med(values(sc, sv, dps)):>14,.0f}{med(values(sc, sv, cpu)):>9.1f}"
              f"{med(runs):>11.2f}{med(values(sc, sv, percpu)):>11,.0f}{med(values(sc, sv, p50)):>8.2f}{med(values(sc, sv, p99)):>9.2f}   "
              + " ".join(f"{v:.2f}" for v in runs))
h, u = med(values("fixed", "collabhub", per10k)), med(values("fixed", "uws", per10k))
print(f"fixed load: CPU per 10k deliveries/s, collabhub / uws = {h / u:.2f}")
h, u = med(values("saturation", "collabhub", dps)), med(values("saturation", "uws", dps))
print(f"saturation: deliveries/s, collabhub / uws = {h / u:.2f}x")
h, u = med(values("saturation", "collabhub", percpu)), med(values("saturation", "uws", percpu))
print(f"saturation: deliveries per server CPU-second, collabhub / uws = {h / u:.2f}x")
PY
echo "raw results: $out"
