"""What `--redis-wait-replicas 1` costs (scripts/deploy/CLUSTER.md): one hub node on a three-master,
three-replica Redis Cluster made here (Tests/integration/test_redis_cluster.py's `RedisCluster`), each mode
run `rounds` times interleaved. Per run: `sessions` sessions of two members, each member chatting every
`every` s for `secs` s; reports acked chats/s and send->ack p50/p99 (ms), measured by this client.

    /usr/bin/python3 loadtest/bench_redis_wait.py [rounds] [secs]   (after swift build --product collabhub)
"""
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE / "Tests/integration"))
BIN = os.environ.setdefault("COLLABHUB_BIN", str(HERE / ".build/debug/collabhub"))
import websockets  # noqa: E402
from test_redis_cluster import RedisCluster  # noqa: E402

SESSIONS, EVERY = 50, 0.1


async def member(url, code, name, secs, lat, t_end):
    async with websockets.connect(f"{url}/ws?session={code}", subprotocols=["collabhub.v1"]) as ws:
        await ws.send(json.dumps({"type": "join", "name": name}))
        while json.loads(await ws.recv())["type"] != "joined":
            pass
        sent = {}

        async def reader():
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "ack" and m["id"] in sent:
                    lat.append(time.monotonic() - sent.pop(m["id"]))
        r = asyncio.create_task(reader())
        k = 0
        while time.monotonic() < t_end:
            mid = f"{name}-{k}"
            sent[mid] = time.monotonic()
            await ws.send(json.dumps({"type": "chat", "id": mid, "text": mid}))
            k += 1
            await asyncio.sleep(EVERY)
        await asyncio.sleep(1.5)
        r.cancel()


def create(port):
    import urllib.request
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/sessions", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))["code"]


def one(rc, n, secs):
    port = 9261
    hub = subprocess.Popen([BIN, "serve", "--port", str(port), "--host", "127.0.0.1", "--redis", rc.url, "--auth",
                            "open", "--max-connections-per-address", "0", "--limit-chat", "1000",
                            "--redis-wait-replicas", str(n), "--data", tempfile.mkdtemp()],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    try:
        codes = [create(port) for _ in range(SESSIONS)]
        lat = []

        async def main():
            t_end = time.monotonic() + 1 + secs
            await asyncio.gather(*[member(f"ws://127.0.0.1:{port}", c, f"m{i}{j}", secs, lat, t_end)
                                   for i, c in enumerate(codes) for j in range(2)])
        asyncio.run(main())
        lat.sort()
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
        return len(lat) / (1 + secs), pct(0.5), pct(0.99)
    finally:
        hub.terminate()
        hub.wait()


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rc = RedisCluster(pathlib.Path(tempfile.mkdtemp(prefix="bench-wait-"))).start()
    try:
        for r in range(rounds):
            for n in (0, 1):
                acked, p50, p99 = one(rc, n, secs)
                print(f"round {r} --redis-wait-replicas {n}: {acked:.0f} acked chats/s, send->ack p50 {p50:.2f} ms, "
                      f"p99 {p99:.2f} ms", flush=True)
    finally:
        rc.stop()
