"""Ephemeral relays travel per destination loop (`chub:e:<node>.<loop>`), only to the loops that follow the
session (`{S}:eph`): a session whose members are all on one node publishes no relay at all, a node that
gains its first member of a session gets the events sent right after that member's join (both ways), a
node without members of a session hears none of its relays, and a loop that stops following (the session ended, or evicted) leaves the set."""
import asyncio
import signal
import subprocess
import time

import pytest

from conftest import Hub
from hubclient import Client, create_session, eventually, run
from test_cluster import REDIS, Redis, drain
from test_cluster_relay import commandstats

pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed (scripts/deps.sh test installs it)")


def cli(redis, *args):
    return subprocess.run(["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True,
                          timeout=5).stdout.split()


def publishes(redis):
    return commandstats(redis).get("publish", (0, 0))[0]


def ticks(got, name="tick"):
    return [m["data"]["k"] for m in got if m["type"] == "event" and m.get("name") == name]


@pytest.fixture
def three(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", "cluster-admin-key-0123",
                 data_dir=str(tmp_path / f"node{i}")).start() for i in range(3)]
    yield redis, nodes
    for n in nodes:
        n.stop()
    redis.stop()


def test_a_session_on_one_node_publishes_no_relays(three):
    redis, nodes = three
    code = create_session(nodes[0])["code"]

    async def main():
        a = await Client.connect(nodes[0], code); await a.join("A")
        b = await Client.connect(nodes[0], code); await b.join("B")
        await asyncio.sleep(0.3)
        await drain(b, 0.2)
        before = publishes(redis)
        for k in range(40):
            await a.send({"type": "event", "name": "tick", "data": {"k": k}})
        assert ticks(await drain(b, 0.8)) == list(range(40))
        # Nobody else follows the session: its ephemeral traffic never reaches Redis.
        assert publishes(redis) == before
        # The set of the session's followers holds this node's loop only.
        assert len(cli(redis, "SMEMBERS", "{" + code + "}:eph")) == 1
    run(main())


def test_a_nodes_first_member_gets_events_sent_right_after_its_join(three):
    _, nodes = three

    async def main():
        for attempt in range(5):
            code = create_session(nodes[0])["code"]
            a = await Client.connect(nodes[0], code); await a.join("A")
            # The first member of the session on node 1: no waiting for anything but its own join.
            b = await Client.connect(nodes[1], code); await b.join("B")
            for k in range(5):
                await a.send({"type": "event", "name": "ab", "data": {"k": k}})
                await b.send({"type": "event", "name": "ba", "data": {"k": k}})
            got_b, got_a = await drain(b, 0.8), await drain(a, 0.3)
            assert ticks(got_b, "ab") == list(range(5)), (attempt, got_b)
            assert ticks(got_a, "ba") == list(range(5)), (attempt, got_a)
            await a.close(); await b.close()
    run(main())


def test_relays_reach_only_the_nodes_that_follow_and_never_come_back(three):
    redis, nodes = three
    info = create_session(nodes[0])
    code = info["code"]

    async def main():
        a = await Client.connect(nodes[0], code); await a.join("A")
        b = await Client.connect(nodes[1], code); await b.join("B", host_key=info["host_key"])
        await asyncio.sleep(0.3)
        await drain(a, 0.2); await drain(b, 0.2)
        assert len(cli(redis, "SMEMBERS", "{" + code + "}:eph")) == 2
        before = publishes(redis)
        for k in range(30):
            await a.send({"type": "event", "name": "tick", "data": {"k": k}})
            if k % 10 == 9:
                await asyncio.sleep(0.05)
        assert ticks(await drain(b, 0.8)) == list(range(30))
        assert not ticks(await drain(a, 0.2))
        sent = publishes(redis) - before
        # One publication per loop iteration to node 1's loop: at most one per event, none back to node 0,
        # none to node 2.
        assert 1 <= sent <= 30, sent
        # The session ends: every node lets it go, and each loop leaves the set of its followers.
        await b.send({"type": "end", "reason": "done"})
        eventually(lambda: not cli(redis, "SMEMBERS", "{" + code + "}:eph"), what="the followers to leave")
    run(main())


def node_ids(redis):
    return cli(redis, "SMEMBERS", "chub:nodes")


def test_a_lost_nodes_loops_leave_the_followers_and_a_revived_one_follows_again(three):
    """A node declared lost (here SIGSTOPped past its heartbeat's TTL) has its loops taken out of the
    followers of its sessions by the survivor that buries it (each node id is new at start, so without
    that every restart would leave ids behind, published to for as long as the session lives); when it
    turns out alive it says again that it follows them, and relays reach its members again. A node
    killed for good leaves no id behind."""
    redis, nodes = three
    code = create_session(nodes[0])["code"]
    eph = "{" + code + "}:eph"
    eventually(lambda: len(node_ids(redis)) == 3, what="three nodes announced")
    time.sleep(6.5)   # the survivors beat for a TTL and a second before they declare anyone dead

    async def main():
        a = await Client.connect(nodes[0], code); await a.join("A")
        b = await Client.connect(nodes[1], code); await b.join("B")
        c = await Client.connect(nodes[2], code); await c.join("C")
        eventually(lambda: len(cli(redis, "SMEMBERS", eph)) == 3, what="three followers")
        before = set(cli(redis, "SMEMBERS", eph))
        nodes[2].proc.send_signal(signal.SIGSTOP)
        try:
            eventually(lambda: len(node_ids(redis)) == 2, timeout=20, what="node 2 declared lost")
            eventually(lambda: len(cli(redis, "SMEMBERS", eph)) == 2, timeout=10,
                       what="node 2's loop out of the followers")
        finally:
            nodes[2].proc.send_signal(signal.SIGCONT)
        eventually(lambda: set(cli(redis, "SMEMBERS", eph)) == before, timeout=15,
                   what="node 2 following again")
        await asyncio.sleep(0.5)
        await drain(c, 0.5)
        for k in range(10):
            await a.send({"type": "event", "name": "tick", "data": {"k": k}})
        assert ticks(await drain(c, 1.0)) == list(range(10))
        # Node 1 killed for good: a survivor buries it and its loop leaves the followers.
        nodes[1].stop(signal.SIGKILL)
        eventually(lambda: len(node_ids(redis)) == 2, timeout=20, what="node 1 declared lost")
        eventually(lambda: len(cli(redis, "SMEMBERS", eph)) == 2, timeout=10,
                   what="node 1's loop out of the followers")
        for k in range(10):
            await a.send({"type": "event", "name": "tick", "data": {"k": 100 + k}})
        assert ticks(await drain(c, 1.0)) == [100 + k for k in range(10)]
    run(main())
