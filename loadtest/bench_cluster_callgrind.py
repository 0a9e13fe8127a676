#!/usr/bin/python3
"""Instructions two cluster nodes spend on cross-node delivery, counted by callgrind: a member on node A
sends N chats (pipelined, W in flight), a member on node B receives every one. Node A runs the append
script per chat (the Redis round trip) and publishes; node B reads each publication off its subscriber
link and delivers it. Counting starts after both joined and stops after the last delivery
(`callgrind_control`), so start-up is not counted. Used to compare Redis clients (hiredis against the
project's own RESP client): instructions per message on each node.
Usage: loadtest/bench_cluster_callgrind.py BINARY [messages=3000] [runs=3]"""
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


def start_node(binary, redis_url, out):
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.%p",
           binary, "serve", "--port", "0", "--host", "127.0.0.1", "--threads", "1", "--auth", "open",
           "--limit-chat", "100000", "--redis", redis_url, "--data", tempfile.mkdtemp(dir=out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on [^ ]+:(\d+)", line)
    assert m, line
    return p, int(m.group(1))


def totals(out, pid):
    files = sorted(glob.glob(f"{out}/cg.{pid}.*"), key=os.path.getmtime)
    text = open(files[-1]).read()
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))


async def traffic(a_port, b_port, n, window, pids):
    req = urllib.request.Request(f"http://127.0.0.1:{a_port}/api/sessions", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    code = json.loads(urllib.request.urlopen(req).read())["code"]
    a = await websockets.connect(f"ws://127.0.0.1:{a_port}/ws?session={code}", subprotocols=["collabhub.v1"])
    b = await websockets.connect(f"ws://127.0.0.1:{b_port}/ws?session={code}", subprotocols=["collabhub.v1"])
    for ws, name in ((a, "A"), (b, "B")):
        await ws.send(json.dumps({"type": "join", "name": name, "client_id": name.lower()}))
        while json.loads(await ws.recv())["type"] != "joined":
            pass
    await asyncio.sleep(0.5)
    for pid in pids:
        subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=True)
    started = time.time()

    async def receive():
        got = 0
        while got < n:
            m = json.loads(await b.recv())
            if m["type"] == "chat":
                got += 1

    async def send():
        acked, sent = 0, 0
        while acked < n:
            while sent < n and sent - acked < window:
                await a.send(json.dumps({"type": "chat", "id": f"m{sent}", "text": f"message {sent} " + "x" * 60}))
                sent += 1
            m = json.loads(await a.recv())
            if m["type"] == "ack":
                acked += 1
            assert m["type"] != "error", m

    await asyncio.gather(send(), receive())
    elapsed = time.time() - started
    for pid in pids:
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
    await a.close()
    await b.close()
    return elapsed


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    for r in range(runs):
        out = tempfile.mkdtemp(prefix="bench-cg-")
        rport = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", out], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        nodes = []
        try:
            nodes = [start_node(binary, f"redis://127.0.0.1:{rport}", out) for _ in range(2)]
            elapsed = asyncio.run(traffic(nodes[0][1], nodes[1][1], n, 16, [p.pid for p, _ in nodes]))
            time.sleep(0.5)
            a, b = (totals(out, p.pid) for p, _ in nodes)
            print(f"run {r + 1}: {n} messages in {elapsed:.1f} s under callgrind; instructions per message: "
                  f"sender's node {a / n:,.0f}, receiver's node {b / n:,.0f}", flush=True)
        finally:
            for p, _ in nodes:
                p.terminate()
                p.wait()
            redis.terminate()
            redis.wait()


if __name__ == "__main__":
    main()
