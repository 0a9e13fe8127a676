"""Cluster webhooks: the set of outbox streams (`chub:{wh}:streams`, which take-overs and the idle sweep look
through) is pruned (WebhookStreamPruner): a session's stream leaves it once it is empty and had no new entry
for 30 s, a stream with an undelivered entry (its receiver answering 503) never does, and a session whose stream was pruned has it back with
its next event, delivered as before. A real redis-server, two real hub nodes and a real HTTP receiver."""
import asyncio
import json
import time

import pytest

from conftest import Hub
from hubclient import Client, api, create_session, eventually, run
from test_cluster import REDIS, Redis, redis_cli
from test_webhooks import Receiver

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")

ADMIN = "cluster-hooks-admin-key-0123"
STREAMS = "chub:{wh}:streams"


@pytest.fixture
def pair(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", ADMIN, "--webhook-allow-private",
                 data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(2)]
    yield redis, nodes
    for n in nodes:
        n.stop()
    redis.stop()


def in_set(redis, code):
    return redis_cli(redis, "SISMEMBER", STREAMS, code).strip() == "1"


def stream_length(redis, code):
    return int(redis_cli(redis, "XLEN", f"{{{code}}}:wh").strip() or 0)


async def chat(node, code, name, texts):
    c = await Client.connect(node, code)
    await c.join(name, client_id=name)
    for i, t in enumerate(texts):
        await c.send({"type": "chat", "id": f"{name}{i}", "text": t})
        while (await c.recv())["type"] != "ack":
            pass
    await c.close()


def test_empty_idle_streams_leave_the_set_and_undelivered_ones_stay(pair):
    redis, nodes = pair
    blocked = set()   # sessions whose webhooks the receiver refuses (503: kept, retried)

    def answer(n, req):
        session = json.loads(req["body"]).get("data", {}).get("session")
        req["ok"] = session not in blocked
        return (200 if req["ok"] else 503), {}

    rx = Receiver(answer)
    try:
        status, hook = api(nodes[0], "POST", "/api/webhooks", {"url": rx.url(), "events": ["chat.created"],
                                                         "max_attempts": 20})
        assert status == 201, hook
        time.sleep(0.3)
        done, stuck = create_session(nodes[0])["code"], create_session(nodes[1])["code"]
        blocked.add(stuck)

        def delivered(code):
            with rx.lock:
                return [r for r in rx.requests if r.get("ok") and json.loads(r["body"])["data"]["session"] == code]

        run(chat(nodes[0], done, "d", ["one", "two"]))
        run(chat(nodes[1], stuck, "s", ["held back"]))
        eventually(lambda: len(delivered(done)) == 2, what="the first session's webhooks delivered")
        eventually(lambda: stream_length(redis, done) == 0, what="its stream emptied (XDEL once delivered)")
        assert in_set(redis, done) and in_set(redis, stuck)
        assert stream_length(redis, stuck) == 1

        # Empty and idle for 30 s: out of the set (a pass every 10 s). The undelivered one stays.
        started = time.time()
        eventually(lambda: not in_set(redis, done), timeout=60, what="the empty idle stream pruned")
        assert time.time() - started > 20, "pruned before it was idle"
        assert in_set(redis, stuck) and stream_length(redis, stuck) == 1

        # The session's next event puts its stream back and is delivered as before.
        run(chat(nodes[1], done, "d2", ["three"]))
        assert in_set(redis, done)
        eventually(lambda: len(delivered(done)) == 3, what="the next webhook delivered")

        # The held-back one (retried with backoff, 20 attempts) is still undelivered, and still findable.
        assert not delivered(stuck)
        assert in_set(redis, stuck) and stream_length(redis, stuck) == 1
        for n in nodes:
            assert n.alive()
    finally:
        rx.close()
