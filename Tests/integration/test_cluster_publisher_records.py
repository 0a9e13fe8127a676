"""Cluster mode, the registry of run publisher sockets (`chub:pub:{RUN}`, RedisControl and
Lua/run_publisher.lua) across a Redis outage: a record Redis lost while it was down, and a record whose
write Redis refused, are written again once Redis is back (when the node's control subscription takes
effect again), without the publisher socket publishing again, so a member's `run_control` on another node
reaches it. Real nodes and a real redis-server (test_cluster.py's fixtures)."""
import asyncio
import json
import time

import pytest

from conftest import Hub
from hubclient import Client, create_session, eventually, run
from test_cluster import REDIS, RUN_KEY, Redis, redis_cli
from test_cluster_control import ask, control_frame, publish_ws, publisher

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")

# Shorter than the records' renewal (every 10 s): what brings a record back this soon is the re-assertion
# when the control subscription takes effect again.
PROMPT = 6.0


@pytest.fixture
def pair(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", RUN_KEY, "--reconnect-grace", "1",
                 data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(2)]
    yield redis, nodes
    for n in nodes:
        n.stop()
    redis.stop()


async def control_reaches(host, worker, run_id, deadline):
    """Asks `pause` until it is handed on (a refusal while the nodes are still reconnecting is asked again);
    the worker's socket gets the control."""
    k = 0
    while True:
        k += 1
        m = await ask(host, run_id, "pause", f"p{k}")
        if m["type"] == "run_control_sent":
            break
        assert m["code"] in ("no_publisher", "storage_unavailable"), m
        assert time.time() < deadline, f"the control never reached the publisher: {m}"
        await asyncio.sleep(0.2)
    control = await control_frame(worker)
    assert control["action"] == "pause" and control["run"] == run_id, control


def test_a_record_redis_lost_while_down_is_written_again_once_it_is_back(pair, tmp_path):
    """The publisher socket on node 1 published; Redis is SIGKILLed and comes back empty (a Redis without
    persistence, or one down past the records' TTL). Node 1 writes its record again once its subscription
    is back, and the host's run_control on node 0 reaches the socket, which published nothing meanwhile."""
    redis, nodes = pair
    created = create_session(nodes[0], title="records")
    code = created["code"]

    async def main():
        host = await Client.connect(nodes[0], code)
        await host.join("Host", host_key=created["host_key"])
        worker = await publisher(nodes[1])
        await publish_ws(worker, {"run": "lost1", "type": "started", "owner": "ci", "session": code})
        await publish_ws(worker, {"run": "lost1", "type": "step_started", "step": "build"})
        holder = redis_cli(redis, "GET", "chub:pub:{lost1}").strip()
        assert holder

        redis.kill()
        # While Redis is down, another publisher socket's events are refused (never acknowledged): it does
        # not become the run's publisher.
        late = await publisher(nodes[1])
        await late.send('{"run": "lost1", "type": "log", "line": "while down"}')
        answer = json.loads(await asyncio.wait_for(late.recv(), 10))
        assert answer["type"] == "error" and answer["code"] == "storage_unavailable", answer
        await late.close()

        redis.dir = tmp_path / "empty"
        redis.dir.mkdir()
        redis.start()
        back = time.time()
        eventually(lambda: redis_cli(redis, "GET", "chub:pub:{lost1}").strip() == holder, timeout=PROMPT,
                   what="node 1's record written again")
        await control_reaches(host, worker, "lost1", back + PROMPT + 4)
    run(main())


def test_a_record_whose_write_redis_refused_is_taken_once_redis_is_back(pair):
    """The run's events are accepted but the record's write is refused (Redis may not write `chub:pub:*`
    keys: an ACL; as when a Redis Cluster's shard of the record is down while the run's shard is up). The
    record is written nowhere. Once Redis takes the write again and the
    node's subscription is made again, the take Redis never answered is made, and the control reaches the
    socket."""
    redis, nodes = pair
    created = create_session(nodes[0], title="refused record")
    code = created["code"]

    async def main():
        host = await Client.connect(nodes[0], code)
        await host.join("Host", host_key=created["host_key"])
        # Every key but chub:pub:* (the hub's keys are `{…}` and `chub:…`; no other starts with chub:p).
        out = redis_cli(redis, "ACL", "SETUSER", "default", "resetkeys", "~{*", "~chub:[^p]*").strip()
        assert out == "OK", out
        worker = await publisher(nodes[1])
        await publish_ws(worker, {"run": "nack1", "type": "started", "owner": "ci", "session": code})
        await publish_ws(worker, {"run": "nack1", "type": "step_started", "step": "build"})
        # The record cannot be read either: the control is refused, never handed on.
        m = await ask(host, "nack1", "pause", "before")
        assert m["type"] == "error" and m["code"] == "storage_unavailable", m

        assert redis_cli(redis, "ACL", "SETUSER", "default", "allkeys").strip() == "OK"
        assert redis_cli(redis, "EXISTS", "chub:pub:{nack1}").strip() == "0", "the take was refused"
        # Redis "back": the nodes' subscriber connections are dropped and made again.
        redis_cli(redis, "CLIENT", "KILL", "TYPE", "pubsub")
        back = time.time()
        eventually(lambda: redis_cli(redis, "EXISTS", "chub:pub:{nack1}").strip() == "1", timeout=PROMPT,
                   what="node 1's record taken")
        await control_reaches(host, worker, "nack1", back + PROMPT + 4)
    run(main())
