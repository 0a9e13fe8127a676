"""Cluster mode, control between the nodes (`chub:ctl`, ClusterControl): a session member's `run_control`
reaches the run's publisher socket on whichever node holds it (the registry `chub:pub:{RUN}`), a host's
removal (`remove`, `DELETE /api/sessions/{code}/members/{id}`) works from any node, and run listings read
their writes across nodes. Real nodes and a real redis-server (the fixtures of test_cluster.py)."""
import asyncio
import json
import signal
import time

import pytest
import websockets

from conftest import Hub
from hubclient import Client, api, create_session, eventually, run
from test_cluster import REDIS, RUN_KEY, Redis, drain, publish_run, redis_cli

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")


@pytest.fixture
def cluster(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", RUN_KEY, "--reconnect-grace", "1",
                 data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(3)]
    yield redis, nodes
    for n in nodes:
        n.stop()
    redis.stop()


async def publisher(node):
    return await websockets.connect(f"{node.url}/publish?key={RUN_KEY}", close_timeout=1)


async def publish_ws(worker, event):
    await worker.send(json.dumps(event))
    answer = json.loads(await asyncio.wait_for(worker.recv(), 5))
    assert answer["type"] == "ack", answer
    return answer


async def control_frame(worker, timeout=5):
    """The next `control` a publisher socket gets (acks of its own publishing skipped)."""
    deadline = time.time() + timeout
    while True:
        m = json.loads(await asyncio.wait_for(worker.recv(), max(0.1, deadline - time.time())))
        if m["type"] == "control":
            return m


async def ask(host, run_id, action, ref):
    await host.send({"type": "run_control", "run": run_id, "action": action, "id": ref})
    while True:
        m = await host.recv(timeout=5)
        if m["type"] in ("run_control_sent", "error") and m.get("id", m.get("ref")) in (ref, None):
            return m


def test_run_control_reaches_the_publisher_socket_on_another_node(cluster):
    redis, nodes = cluster
    created = create_session(nodes[0], title="control")
    code = created["code"]

    async def main():
        host = await Client.connect(nodes[0], code)
        await host.join("Host", host_key=created["host_key"])
        # The worker's publisher socket is on node 1; the host on node 0.
        worker = await publisher(nodes[1])
        await publish_ws(worker, {"run": "x1", "type": "started", "owner": "ci", "session": code})
        await publish_ws(worker, {"run": "x1", "type": "step_started", "step": "build"})
        assert redis_cli(redis, "GET", "chub:pub:{x1}").strip(), "the registry names node 1"

        # Refusals as on one node: decided on node 0's copy once it caught up.
        m = await ask(host, "x1", "resume", "r0")
        assert m["type"] == "error" and m["code"] == "illegal_transition", m
        m = await ask(host, "nope", "pause", "r1")
        assert m["type"] == "error" and m["code"] == "unknown_run", m

        m = await ask(host, "x1", "pause", "p1")
        assert m["type"] == "run_control_sent" and m["id"] == "p1", m
        control = await control_frame(worker)
        assert control["action"] == "pause" and control["by"]["name"] == "Host" and control["session"] == code
        await publish_ws(worker, {"run": "x1", "type": "paused", "by": "Host"})

        # A second worker on node 2 publishes for the run: it speaks for the run now (the last one, as on
        # one node), and node 1's socket gets nothing.
        worker2 = await publisher(nodes[2])
        await publish_ws(worker2, {"run": "x1", "type": "resumed"})
        m = await ask(host, "x1", "cancel", "c1")
        assert m["type"] == "run_control_sent", m
        assert (await control_frame(worker2))["action"] == "cancel"
        with pytest.raises(asyncio.TimeoutError):
            await control_frame(worker, timeout=0.5)

        # Its socket closes: no publisher anywhere, refused as on one node, and soon.
        await worker2.close()
        await worker.close()
        eventually(lambda: redis_cli(redis, "EXISTS", "chub:pub:{x1}").strip() == "0", what="the record dropped")
        started = time.time()
        m = await ask(host, "x1", "pause", "p2")
        assert m["type"] == "error" and m["code"] == "no_publisher", m
        assert time.time() - started < 1.5

        # A run of another session: forbidden, as on one node.
        other = create_session(nodes[1])["code"]
        w3 = await publisher(nodes[2])
        await publish_ws(w3, {"run": "x2", "type": "started", "owner": "ci", "session": other})
        m = await ask(host, "x2", "pause", "f1")
        assert m["type"] == "error" and m["code"] == "forbidden", m

        # The node holding the publisher socket dies (SIGKILL): its record names a dead node, which cannot
        # answer; the request is refused with no_publisher within the reply timeout, not left hanging.
        w4 = await publisher(nodes[1])
        await publish_ws(w4, {"run": "x3", "type": "started", "owner": "ci", "session": code})
        nodes[1].stop(sig=signal.SIGKILL)
        started = time.time()
        m = await ask(host, "x3", "pause", "k1")
        assert m["type"] == "error" and m["code"] == "no_publisher", m
        assert time.time() - started < 3
    run(main())


def members(node, code):
    status, body = api(node, "GET", f"/api/sessions/{code}/members")
    assert status == 200, body
    return body["members"]


async def closed_with(c, timeout=5):
    try:
        while True:
            await c.recv(timeout=timeout)
    except websockets.exceptions.ConnectionClosed:
        pass
    return c.ws.close_code


def test_a_host_removes_a_member_held_by_other_nodes(cluster):
    """Ann has a tab on node 1 and one on node 2; the host on node 0 removes her: both tabs are closed
    with 4005 (removed), one leave (reason removed) is committed, and no node lists her any more."""
    redis, nodes = cluster
    created = create_session(nodes[0], title="remove")
    code = created["code"]

    async def main():
        host = await Client.connect(nodes[0], code)
        await host.join("Host", host_key=created["host_key"])
        tab1 = await Client.connect(nodes[1], code)
        ann = (await tab1.join("Ann", client_id="ann"))["you"]["id"]
        tab2 = await Client.connect(nodes[2], code)
        assert (await tab2.join("Ann", client_id="ann"))["you"]["id"] == ann
        eventually(lambda: "Ann" in [m["name"] for m in members(nodes[0], code)], what="Ann listed on node 0")
        await drain(host, 0.3)

        # An id no member has: refused as on one node.
        await host.send({"type": "remove", "member": "no-such-member"})
        err = await host.expect("error")
        assert err["code"] == "invalid_field" and err["field"] == "member", err

        await host.send({"type": "remove", "member": ann})
        assert await closed_with(tab1) == 4005
        assert await closed_with(tab2) == 4005
        leaves, deadline = [], time.time() + 10
        while time.time() < deadline and not leaves:
            leaves = [x for m in await drain(host, 0.5) if m["type"] == "presence" for x in m.get("leaves", [])
                      if x["id"] == ann]
        assert len(leaves) == 1 and leaves[0]["reason"] == "removed", leaves
        for n in nodes:
            eventually(lambda: [m["name"] for m in members(n, code)] == ["Host"], what=f"Ann gone on {n.port}")
        assert "ann" not in redis_cli(redis, "HKEYS", f"{{{code}}}:members")
        log = api(nodes[1], "GET", f"/api/activity?session={code}")[1]["activity"]
        assert any(e["action"] == "member_removed" and e["target"] == ann for e in log), log
    run(main())


def test_the_members_api_removes_a_member_from_a_node_it_has_no_connection_to(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0], title="api remove")["code"]

    async def main():
        obs = await Client.connect(nodes[2], code)
        await obs.join("Obs", client_id="obs")
        bob = await Client.connect(nodes[1], code)
        bob_id = (await bob.join("Bob", client_id="bob"))["you"]["id"]
        eventually(lambda: "Bob" in [m["name"] for m in members(nodes[0], code)], what="Bob listed on node 0")
        # Node 0 holds no connection of Bob's: it removes him all the same.
        status, body = api(nodes[0], "DELETE", f"/api/sessions/{code}/members/{bob_id}")
        assert status == 200 and body == {"removed": bob_id}, body
        assert await closed_with(bob) == 4005
        for n in nodes:
            eventually(lambda: [m["name"] for m in members(n, code)] == ["Obs"], what=f"Bob gone on {n.port}")
        # Unknown on every node now: 404, as on one node.
        status, body = api(nodes[2], "DELETE", f"/api/sessions/{code}/members/{bob_id}")
        assert status == 404 and body["error"]["code"] == "unknown_member", body
    run(main())


def test_run_listings_read_their_writes_across_nodes(cluster):
    """Each event POSTed on one node is in the next listing asked of another node, every time (the
    listing waits until that node has heard every run event appended before it)."""
    redis, nodes = cluster
    took = []
    for i in range(60):
        run_id, owner = f"ryw{i}", f"team{i % 3}"
        a, b = nodes[i % 3], nodes[(i + 1) % 3]
        status, body = publish_run(a, run_id, {"type": "started", "owner": owner})
        assert status == 202, body
        started = time.perf_counter()
        status, listing = api(b, "GET", f"/api/runs?owner={owner}&status=running")
        took.append(time.perf_counter() - started)
        assert status == 200, listing
        assert run_id in [r["id"] for r in listing["runs"]], (i, listing)
        status, _ = publish_run(b, run_id, {"type": "completed", "outcome": "succeeded"})
        assert status == 202
        status, listing = api(a, "GET", f"/api/runs?owner={owner}&status=running")
        assert run_id not in [r["id"] for r in listing["runs"]], (i, listing)
    took.sort()
    print(f"listing on another node right after a write: p50 {took[len(took) // 2] * 1000:.2f} ms, "
          f"max {took[-1] * 1000:.2f} ms")

    # Redis unreachable: the listing cannot promise the cluster's state and says so.
    redis.kill()
    status, body = api(nodes[0], "GET", "/api/runs?owner=team0")
    assert status == 503 and body["error"]["code"] == "storage_unavailable", body
