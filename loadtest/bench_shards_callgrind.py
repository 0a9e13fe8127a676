#!/usr/bin/python3
"""Instructions per acknowledged chat as Redis Cluster shards are added, counted by callgrind (repeatable,
unlike CPU time on a shared machine), for the hub nodes and for Redis: two nodes (`--threads 1`) and
every redis-server under callgrind, on one plain Redis (shards 0) and on a Redis Cluster of 1, 2 and 3
masters made here (no replicas, slots spread evenly with CLUSTER ADDSLOTSRANGE). S sessions, each with a
member on node A and one on node B; the A members send N chats in all, 2 in flight per session; every B
member receives its session's chats (so per chat: one append on A's Redis link, one publication read
by each node, one delivery on B). Counting starts after everyone joined and stops after the last
delivery (`callgrind_control`), so start-up is not counted. Instructions are user space only; the
kernel's share is hinted at by the syscalls (`perf stat -e raw_syscalls:sys_enter` over the same window;
valgrind adds syscalls of its own, so compare them across shard counts only; `bench_shards.sh` counts
them at full speed). The callgrind files are left in the printed folder for `callgrind_annotate`.
Usage: loadtest/bench_shards_callgrind.py BINARY [messages=2000] [runs=1] [shards=0,1,2,3] [sessions=24]"""
import asyncio
import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port():
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 >= 65536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def start_redis(shards, out):
    """`shards` redis-servers (0: one plain Redis); returns (processes, url)."""
    procs, ports = [], []
    for n in range(max(shards, 1)):
        port = free_cluster_port()
        d = os.path.join(out, f"r{port}")
        os.makedirs(d)
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.%p",
               "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", d, "--logfile", os.path.join(d, "log")]
        if shards:
            cmd += ["--cluster-enabled", "yes", "--cluster-config-file", os.path.join(d, "nodes.conf")]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        ports.append(port)
    for port in ports:
        for _ in range(2400):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"redis-server on port {port} did not start (see {out})")
    if not shards:
        return procs, f"redis://127.0.0.1:{ports[0]}"
    per = 16384 // shards
    for n, port in enumerate(ports):
        hi = 16383 if n == shards - 1 else (n + 1) * per - 1
        subprocess.run(["redis-cli", "-p", str(port), "cluster", "addslotsrange", str(n * per), str(hi)],
                       capture_output=True, check=True)
        if n:
            subprocess.run(["redis-cli", "-p", str(port), "cluster", "meet", "127.0.0.1", str(ports[0])],
                           capture_output=True, check=True)
    for _ in range(300):
        ok = all("cluster_state:ok" in subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"],
                                                      capture_output=True, text=True).stdout
                 and len(subprocess.run(["redis-cli", "-p", str(p), "cluster", "nodes"], capture_output=True,
                                        text=True).stdout.strip().splitlines()) == shards for p in ports)
        if ok:
            break
        time.sleep(0.1)
    return procs, f"redis+cluster://127.0.0.1:{ports[0]}"


def start_node(binary, redis_url, out):
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.%p",
           binary, "serve", "--port", "0", "--host", "127.0.0.1", "--threads", "1", "--auth", "open",
           "--limit-chat", "100000", "--max-connections-per-address", "0", "--redis", redis_url,
           "--data", tempfile.mkdtemp(dir=out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on [^ ]+:(\d+)", line)
    assert m, line
    return p, int(m.group(1))


IDLE = 5.0


def totals(out, pid):
    """The instructions of each dump of `pid`, in order (1: idle, 2: traffic)."""
    files = sorted(glob.glob(f"{out}/cg.{pid}.*"), key=lambda f: int(f.rsplit(".", 1)[1]))
    return [int(re.search(r"^(?:summary|totals): (\d+)", open(f).read(), re.M).group(1)) for f in files]


async def join(port, code, name):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?session={code}", subprotocols=["collabhub.v1"],
                                  max_size=None)
    await ws.send(json.dumps({"type": "join", "name": name, "client_id": name}))
    while json.loads(await ws.recv())["type"] != "joined":
        pass
    return ws


def perf_start(pids, path):
    return subprocess.Popen(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "-o", path, "-p",
                             ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(p, path):
    p.send_signal(2)
    p.wait()
    for line in open(path):
        if "raw_syscalls" in line:
            return int(line.split(",")[0])
    return 0


async def traffic(a_port, b_port, n, sessions, window, pids, redis_pids, out):
    pairs = []
    for s in range(sessions):
        req = urllib.request.Request(f"http://127.0.0.1:{a_port}/api/sessions", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        code = json.loads(urllib.request.urlopen(req).read())["code"]
        pairs.append((await join(a_port, code, f"a{s}"), await join(b_port, code, f"b{s}")))
    await asyncio.sleep(1.0)
    for pid in pids + redis_pids:
        subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=True)
    # Idle first, as long as IDLE seconds: what the topology costs with nothing to do (dump 1).
    idle_started = time.time()
    await asyncio.sleep(IDLE)
    for pid in pids + redis_pids:
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
    idle = time.time() - idle_started
    perfs = [perf_start(pids[:1], f"{out}/perf-a"), perf_start(pids[1:], f"{out}/perf-b"),
             perf_start(redis_pids, f"{out}/perf-r")]
    started = time.time()
    share = [n // sessions + (1 if s < n % sessions else 0) for s in range(sessions)]

    async def receive(ws, count):
        got = 0
        while got < count:
            if json.loads(await ws.recv())["type"] == "chat":
                got += 1

    async def send(ws, count, s):
        acked, sent = 0, 0
        while acked < count:
            while sent < count and sent - acked < window:
                await ws.send(json.dumps({"type": "chat", "id": f"m{s}.{sent}", "text": f"message {sent} " + "x" * 60}))
                sent += 1
            m = json.loads(await ws.recv())
            assert m["type"] != "error", m
            if m["type"] == "ack":
                acked += 1

    await asyncio.gather(*[send(a, share[s], s) for s, (a, _) in enumerate(pairs)],
                         *[receive(b, share[s]) for s, (_, b) in enumerate(pairs)])
    elapsed = time.time() - started
    calls = [perf_stop(p, f"{out}/perf-{g}") for p, g in zip(perfs, "abr")]
    for pid in pids + redis_pids:
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
    for a, b in pairs:
        await a.close()
        await b.close()
    return elapsed, calls, idle


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    counts = [int(x) for x in (sys.argv[4] if len(sys.argv) > 4 else "0,1,2,3").split(",")]
    sessions = int(sys.argv[5]) if len(sys.argv) > 5 else 24
    for r in range(runs):
        for shards in counts:
            out = tempfile.mkdtemp(prefix="bench-shards-cg-")
            redis, url = start_redis(shards, out)
            nodes = []
            try:
                nodes = [start_node(binary, url, out) for _ in range(2)]
                elapsed, calls, idle = asyncio.run(traffic(nodes[0][1], nodes[1][1], n, sessions, 2,
                                                     [p.pid for p, _ in nodes], [p.pid for p in redis], out))
                time.sleep(0.5)
                # Raw: the traffic dump; net: less the idle rate over the traffic's duration.
                ta, tb = (totals(out, p.pid) for p, _ in nodes)
                tr = [totals(out, p.pid) for p in redis]
                k = elapsed / idle
                a, b, rd = ta[1], tb[1], sum(t[1] for t in tr)
                na, nb, nr = a - ta[0] * k, b - tb[0] * k, rd - sum(t[0] for t in tr) * k
                print(f"run {r + 1} shards {shards}: {n} chats in {elapsed:.1f} s; instructions per chat raw (net of "
                      f"idle): node A {a / n:,.0f} ({na / n:,.0f}), node B {b / n:,.0f} ({nb / n:,.0f}), Redis "
                      f"{rd / n:,.0f} ({nr / n:,.0f}); syscalls per chat: node A {calls[0] / n:.2f}, node B "
                      f"{calls[1] / n:.2f}, Redis {calls[2] / n:.2f} (callgrind files: {out})", flush=True)
            finally:
                for p, _ in nodes:
                    p.terminate()
                    p.wait()
                for p in redis:
                    p.terminate()
                    p.wait()


if __name__ == "__main__":
    main()
