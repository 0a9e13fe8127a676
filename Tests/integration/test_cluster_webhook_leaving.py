"""Cluster webhooks: a stream leaves `chub:{wh}:streams` in two steps kept in Redis (WebhookStreamPruner): it
moves to `chub:{wh}:leaving` with the last entry id it had, and a pass at least 10 s later, on whichever node
gets there, drops it for good if it is still empty with that last entry, or puts it back in the set. So an
entry written in the instant its stream was taken out, by a node that then dies, is found by a survivor (the
set puts it back, the take-over claims it) instead of waiting for the session's next webhook event. The
instant is made by hand: the writer is SIGKILLed and its stream put in `leaving` as the race leaves it. Real
redis-server, two real hub nodes, a real HTTP receiver."""
import signal
import time

import pytest

from conftest import Hub
from hubclient import api, create_session, eventually, run
from test_cluster import REDIS, Redis, redis_cli
from test_cluster_webhooks import Switch, chat_on, ok_ids
from test_webhooks import Receiver

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")

ADMIN = "cluster-leaving-admin-key-0123"
STREAMS = "chub:{wh}:streams"
LEAVING = "chub:{wh}:leaving"


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


def leaving(redis, code):
    return redis_cli(redis, "HEXISTS", LEAVING, code).strip() == "1"


def last_id(redis, code):
    lines = redis_cli(redis, "XINFO", "STREAM", f"{{{code}}}:wh").splitlines()
    return lines[lines.index("last-generated-id") + 1]


def test_an_entry_written_as_its_stream_left_the_set_is_found_after_its_node_dies(pair):
    redis, nodes = pair
    switch = Switch(up=False)
    rx = Receiver(switch)
    try:
        status, hook = api(nodes[0], "POST", "/api/webhooks",
                           {"url": rx.url(), "events": ["chat.created"], "max_attempts": 20})
        assert status == 201, hook
        time.sleep(0.3)
        orphan, quiet = create_session(nodes[0])["code"], create_session(nodes[0])["code"]

        # quiet: delivered, its stream empty. orphan: an entry node 1 holds, undelivered (503).
        switch.up = True
        run(chat_on(nodes[0], quiet, "q", 1, "q"))
        eventually(lambda: ok_ids(rx) and redis_cli(redis, "XLEN", f"{{{quiet}}}:wh").strip() == "0",
                   what="quiet's webhook delivered and its stream emptied")
        switch.up = False
        acks = run(chat_on(nodes[1], orphan, "o", 1, "o"))[1]
        want = f"{orphan}:{acks['o0']}"
        eventually(lambda: rx.requests and rx.requests[-1]["headers"].get("webhook-id") == want,
                   what="node 1 tried it once")
        nodes[1].stop(signal.SIGKILL)

        # As the race leaves them: each stream out of the set and in `leaving`, long enough ago. The orphan's
        # recorded last id is the one before its entry (the pruner saw it empty); quiet's is its own.
        old = int(time.time() * 1000) - 60_000
        for code, last in ((orphan, "0-0"), (quiet, last_id(redis, quiet))):
            redis_cli(redis, "SREM", STREAMS, code)
            redis_cli(redis, "HSET", LEAVING, code, f"{last}|{old}")
        switch.up = True

        # A pass on node 0 (every 10 s) puts the orphan's stream back; its take-over (entries idle for 30 s)
        # delivers the entry, once.
        eventually(lambda: in_set(redis, orphan) and not leaving(redis, orphan), timeout=20,
                   what="the orphan's stream back in the set")
        eventually(lambda: ok_ids(rx).get(want) == 1, timeout=60, what="the orphaned entry delivered by node 0")
        # The quiet one, still empty with the same last entry, is gone for good.
        assert not in_set(redis, quiet) and not leaving(redis, quiet)
        assert nodes[0].alive()
    finally:
        rx.close()
