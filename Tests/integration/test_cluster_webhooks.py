"""Cluster webhooks: endpoints registered once for the cluster (in Redis), each committed event delivered
once cluster-wide (the outbox entry written by the append script itself), the delivery log the same on
every node, and a node SIGKILLed with undelivered webhooks: a survivor takes them over. A real
redis-server, three real hub nodes and a real HTTP receiver in this process."""
import asyncio
import collections
import json
import signal
import time

import pytest

from conftest import Hub
from hubclient import Client, api, create_session, eventually, run
from test_cluster import REDIS, Redis, drain
from test_webhooks import Receiver

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")

ADMIN = "cluster-hooks-admin-key-0123"


@pytest.fixture
def cluster(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", ADMIN, "--webhook-allow-private", "--threads", "2",
                 data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(3)]
    yield redis, nodes
    for n in nodes:
        n.stop()
    redis.stop()


def ok_ids(rx):
    """webhook-id -> how many times the receiver answered it with 200."""
    with rx.lock:
        return collections.Counter(r["headers"]["webhook-id"] for r in rx.requests if r.get("ok"))


class Switch:
    """A receiver's answer: 503 while down, 200 when up (each request is marked with what it got)."""

    def __init__(self, up=True):
        self.up = up

    def __call__(self, n, req):
        req["ok"] = self.up
        return (200 if self.up else 503), {}


async def chat_on(node, code, name, n, prefix):
    c = await Client.connect(node, code)
    await c.join(name, client_id=name)
    acks = {}
    for k in range(n):
        await c.send({"type": "chat", "id": f"{prefix}{k}", "text": f"{name} {k}"})
    while len(acks) < n:
        m = await c.recv()
        if m["type"] == "ack":
            acks[m["id"]] = m["seq"]
    return c, acks


def test_registered_once_each_event_once_and_deleted_everywhere(cluster):
    redis, nodes = cluster
    switch = Switch()
    rx = Receiver(switch)
    try:
        status, hook = api(nodes[0], "POST", "/api/webhooks", {"url": rx.url(), "events": ["chat.created"]})
        assert status == 201, hook
        # Every node lists it (one endpoint for the cluster), and its copy follows within a moment.
        for n in nodes:
            status, body = api(n, "GET", "/api/webhooks")
            assert status == 200 and [w["id"] for w in body["webhooks"]] == [hook["id"]], body
        time.sleep(0.3)
        code = create_session(nodes[1])["code"]

        async def main():
            # Members on all three nodes chat at once.
            results = await asyncio.gather(*(chat_on(n, code, f"m{i}", 15, f"{i}-") for i, n in enumerate(nodes)))
            return {k: v for _, acks in results for k, v in acks.items()}

        acks = run(main())
        assert len(acks) == 45
        want = {f"{code}:{seq}" for seq in acks.values()}
        eventually(lambda: want <= set(ok_ids(rx)), timeout=20, what="every chat's webhook")
        time.sleep(1.5)
        got = ok_ids(rx)
        chat_ids = {i: n for i, n in got.items() if i in want}
        assert chat_ids == {i: 1 for i in want}, "each chat once, cluster-wide"
        seqs = sorted(json.loads(r["body"])["data"]["seq"] for r in rx.delivered())
        assert seqs == sorted(acks.values()), "each seq once"

        # The delivery log is the same on every node (Redis), and so is the pending count.
        lists = []
        for n in nodes:
            status, body = api(n, "GET", f"/api/webhooks/{hook['id']}/deliveries?limit=100")
            assert status == 200, body
            lists.append([(d["id"], d["webhook_id"], d["status"]) for d in body["deliveries"]])
            status, one = api(n, "GET", f"/api/webhooks/{hook['id']}")
            assert status == 200 and one["pending"] == 0, one
        assert lists[0] == lists[1] == lists[2]
        assert len(lists[0]) == 45 and {s for _, _, s in lists[0]} == {"delivered"}
        assert {w for _, w, _ in lists[0]} == want
        # Paging by cursor gives the same rows on another node.
        status, page = api(nodes[2], "GET", f"/api/webhooks/{hook['id']}/deliveries?limit=10")
        assert status == 200 and len(page["deliveries"]) == 10 and page["next"]
        status, rest = api(nodes[0], "GET", f"/api/webhooks/{hook['id']}/deliveries?limit=100&cursor={page['next']}")
        assert status == 200, rest
        assert [d["id"] for d in page["deliveries"] + rest["deliveries"]] == [i for i, _, _ in lists[0]]

        # A delivery retried on node 2 goes again (same webhook-id), and every node sees the record.
        first = lists[0][-1]
        status, again = api(nodes[2], "POST", f"/api/webhooks/{hook['id']}/deliveries/{first[0]}/retry")
        assert status == 202, again
        eventually(lambda: ok_ids(rx)[first[1]] == 2, what="the retried delivery")
        eventually(lambda: api(nodes[0], "GET", f"/api/webhooks/{hook['id']}/deliveries?limit=100")[1]
                   ["deliveries"][-1]["attempts"] == 1, what="the retry's record on node 0")

        # Deleted on node 1: no node delivers to it any more.
        status, body = api(nodes[1], "DELETE", f"/api/webhooks/{hook['id']}")
        assert status == 200 and body["deleted"], body
        for n in nodes:
            assert api(n, "GET", "/api/webhooks")[1]["webhooks"] == []
            assert api(n, "GET", f"/api/webhooks/{hook['id']}")[0] == 404
        time.sleep(0.3)
        before = sum(ok_ids(rx).values())

        async def more():
            await asyncio.gather(*(chat_on(n, code, f"m{i}", 5, f"x{i}-") for i, n in enumerate(nodes)))
        run(more())
        time.sleep(1.5)
        assert sum(ok_ids(rx).values()) == before, "a deleted endpoint gets nothing from any node"
    finally:
        rx.close()


def test_a_node_killed_with_undelivered_webhooks_a_survivor_delivers_them(cluster):
    redis, nodes = cluster
    switch = Switch(up=False)
    rx = Receiver(switch)
    try:
        status, hook = api(nodes[2], "POST", "/api/webhooks",
                           {"url": rx.url(), "events": ["chat.created"], "max_attempts": 20})
        assert status == 201, hook
        time.sleep(0.3)
        code = create_session(nodes[0])["code"]

        async def main():
            c, acks = await chat_on(nodes[1], code, "victim", 20, "v")
            # The receiver is down (503): node 1 has tried some of them at least once.
            eventually(lambda: len(rx.delivered()) > 0, what="a first attempt")
            nodes[1].stop(signal.SIGKILL)
            return acks

        acks = run(main())
        killed = time.time()
        want = {f"{code}:{seq}" for seq in acks.values()}
        switch.up = True
        # node 1's heartbeat expires (5 s), a survivor buries it and takes its pending entries over.
        eventually(lambda: want <= set(ok_ids(rx)), timeout=40, what="every acknowledged chat's webhook")
        time.sleep(2)
        got = ok_ids(rx)
        assert {i: got[i] for i in want} == {i: 1 for i in want}, "each one delivered once, by a survivor"
        with rx.lock:
            assert all(r["at"] >= killed for r in rx.requests if r.get("ok")), "after the kill: by a survivor"
        # The survivors' records say so.
        for n in (nodes[0], nodes[2]):
            status, body = api(n, "GET", f"/api/webhooks/{hook['id']}/deliveries?limit=100")
            assert status == 200, body
            rows = {d["webhook_id"]: d for d in body["deliveries"]}
            assert set(rows) == want and all(d["status"] == "delivered" for d in rows.values()), rows
    finally:
        rx.close()


def test_redis_down_refuses_endpoint_changes(cluster):
    redis, nodes = cluster
    status, hook = api(nodes[0], "POST", "/api/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["member.joined"]})
    assert status == 201, hook
    redis.kill()
    for method, path, body in [("POST", "/api/webhooks", {"url": "http://127.0.0.1:9/x"}),
                               ("PATCH", f"/api/webhooks/{hook['id']}", {"active": False}),
                               ("DELETE", f"/api/webhooks/{hook['id']}", None),
                               ("GET", "/api/webhooks", None)]:
        status, answer = api(nodes[1], method, path, body)
        assert status == 503 and answer["error"]["code"] == "storage_unavailable", (method, path, status, answer)


def test_session_started_and_run_events_once_from_their_node(cluster):
    """`session.started` is written with the session's row, run events with the run append script:
    each is delivered once, whichever node stored it."""
    redis, nodes = cluster
    rx = Receiver()
    try:
        status, hook = api(nodes[0], "POST", "/api/webhooks",
                           {"url": rx.url(), "events": ["session.started", "run.started", "run.completed"]})
        assert status == 201, hook
        time.sleep(0.3)
        code = create_session(nodes[2])["code"]
        for body in ({"type": "started", "owner": "team-w", "id": "w1"}, {"type": "log", "line": "x"},
                     {"type": "completed", "outcome": "succeeded", "id": "w2"}):
            status, answer = api(nodes[1], "POST", "/api/runs/wr1/events", body)
            assert status in (200, 201, 202), answer
        # A resend of an event already stored makes no second webhook.
        status, _ = api(nodes[0], "POST", "/api/runs/wr1/events", {"type": "started", "owner": "team-w", "id": "w1"})
        assert status in (200, 201, 202, 409)
        want = {f"{code}:0", "run:wr1:1", "run:wr1:3"}
        eventually(lambda: want <= {r["headers"]["webhook-id"] for r in rx.delivered()}, what="the three webhooks")
        time.sleep(1.0)
        got = collections.Counter(r["headers"]["webhook-id"] for r in rx.delivered())
        assert dict(got) == {i: 1 for i in want}, got
        types = sorted(json.loads(r["body"])["type"] for r in rx.delivered())
        assert types == ["run.completed", "run.started", "session.started"]
    finally:
        rx.close()


def test_a_message_deleted_before_its_webhook_went_is_not_sent(cluster):
    redis, nodes = cluster
    switch = Switch(up=False)
    rx = Receiver(switch)
    try:
        status, hook = api(nodes[1], "POST", "/api/webhooks",
                           {"url": rx.url(), "events": ["chat.created"], "max_attempts": 20})
        assert status == 201, hook
        time.sleep(0.3)
        code = create_session(nodes[0])["code"]

        async def main():
            c, acks = await chat_on(nodes[0], code, "ann", 2, "d")
            await c.send({"type": "chat_delete", "id": "del1", "seq": acks["d0"]})
            await c.expect("ack", skip=("chat_delete",))
            return acks

        acks = run(main())
        switch.up = True
        kept, gone = f"{code}:{acks['d1']}", f"{code}:{acks['d0']}"
        eventually(lambda: kept in ok_ids(rx), timeout=20, what="the kept message's webhook")
        time.sleep(2)
        assert gone not in ok_ids(rx), "a deleted message's chat.created is not sent"
        status, body = api(nodes[2], "GET", f"/api/webhooks/{hook['id']}/deliveries")
        rows = {d["webhook_id"]: d for d in body["deliveries"]}
        assert rows[gone]["status"] == "failed" and "deleted" in rows[gone]["last_error"], rows[gone]
        assert rows[kept]["status"] == "delivered"
        assert api(nodes[2], "GET", f"/api/webhooks/{hook['id']}")[1]["pending"] == 0
    finally:
        rx.close()


def test_member_webhooks_once_per_member_cluster_wide(tmp_path):
    """member.joined and member.left come from the member scripts (one member per identity across nodes):
    their outbox entries are written by those scripts too, so a member with tabs on two nodes is one
    member.joined and one member.left, and a dead node's member leaves (node_lost) with one webhook sent by
    the survivor that buried it."""
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", ADMIN, "--webhook-allow-private", "--reconnect-grace", "1",
                 data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(3)]
    rx = Receiver(Switch())
    try:
        status, hook = api(nodes[0], "POST", "/api/webhooks",
                           {"url": rx.url(), "events": ["member.joined", "member.left"]})
        assert status == 201, hook
        time.sleep(0.3)
        code = create_session(nodes[1])["code"]

        def member_hooks():
            return [(b["type"], b["data"]) for b in rx.bodies()]

        async def main():
            tab1 = await Client.connect(nodes[0], code)
            j1 = await tab1.join("Ann", client_id="ann")
            tab2 = await Client.connect(nodes[1], code)
            j2 = await tab2.join("Ann", client_id="ann")  # the same identity: the same member
            assert j2["you"]["id"] == j1["you"]["id"]
            bob = await Client.connect(nodes[2], code)
            await bob.join("Bob", client_id="bob")
            eventually(lambda: sorted(t for t, _ in member_hooks()) == ["member.joined"] * 2,
                       timeout=10, what="one member.joined per member")
            await tab1.close()
            await asyncio.sleep(2)  # past the grace: Ann is still on node 1, so no leave
            assert [t for t, _ in member_hooks()].count("member.left") == 0, member_hooks()
            await tab2.close()
            eventually(lambda: [t for t, _ in member_hooks()].count("member.left") == 1,
                       timeout=10, what="Ann's one member.left")
            # Bob's node dies: the survivor that buries it commits his leave, and sends its webhook once.
            nodes[2].proc.send_signal(signal.SIGKILL)
            nodes[2].proc.wait()
            eventually(lambda: [t for t, _ in member_hooks()].count("member.left") == 2,
                       timeout=25, what="Bob's node_lost member.left")
            await asyncio.sleep(1.5)

        run(main())
        got = member_hooks()
        assert sorted(t for t, _ in got) == ["member.joined"] * 2 + ["member.left"] * 2, got
        ids = ok_ids(rx)
        assert set(ids.values()) == {1}, ids
    finally:
        rx.close()
        for n in nodes[:2]:
            n.stop()
        redis.stop()
