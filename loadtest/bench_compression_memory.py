#!/usr/bin/env python3
"""Server memory per idle connection with permessage-deflate in each --compression mode: opens N
connections with Python websockets (which offers deflate), sends one compressible message on each so
the compressors are really allocated, and reports the hub's RSS growth per connection.
Usage: loadtest/bench_compression_memory.py [N=500]   (needs a release build)"""
import asyncio, os, subprocess, sys, tempfile, time
import websockets

N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".build", "release", "collabhub")


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024


async def measure(port, pid, compression):
    before = rss(pid)
    conns = []
    for _ in range(N):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/echo", compression=compression, max_size=None)
        await ws.send("collab " * 200)
        await ws.recv()
        conns.append(ws)
    await asyncio.sleep(0.5)
    after = rss(pid)
    for ws in conns:
        await ws.close()
    return (after - before) / N


for mode in ["off", "shared", "context"]:
    proc = subprocess.Popen([BIN, "serve", "--port", "0", "--threads", "1", "--echo", "--compression", mode,
                             "--data", tempfile.mkdtemp()], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split(":")[1].split()[0])
    per = asyncio.run(measure(port, proc.pid, "deflate"))
    proc.terminate(); proc.wait()
    print(f"--compression {mode:<8} {per:>9,.0f} bytes per connection (after one compressed message each)")
