"""Cluster mode, members: one member per identity across nodes (`{S}:members` keyed by identity, the nodes
holding it in `{S}:conns`), `max_participants` and colours session-wide, the members API from any node, a leave
that failed while Redis was down, and a node wrongly declared dead. Real nodes and a real redis-server
(the fixtures of test_cluster.py)."""
import asyncio
import json
import signal
import time

import pytest
import websockets

from conftest import Hub
from hubclient import Client, api, create_session, eventually, run
from test_cluster import REDIS, Redis, drain, redis_cli, node_ids

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6"]


@pytest.fixture
def cluster(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", "cluster-admin-key-0123", "--reconnect-grace", "1",
                 data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(3)]
    yield redis, nodes
    for n in nodes:
        assert n.alive(), n.output()
        n.stop()
    redis.stop()


def members(node, code):
    status, body = api(node, "GET", f"/api/sessions/{code}/members")
    assert status == 200, body
    return body["members"]


def names_everywhere(nodes, code):
    return [sorted(m["name"] for m in members(n, code)) for n in nodes]


def redis_members(redis, code):
    out = redis_cli(redis, "HVALS", f"{{{code}}}:members").split("\n")
    return sorted(json.loads(line)["name"] for line in out if line.strip())


def presence_of(msgs, key):
    return [x for m in msgs if m["type"] == "presence" for x in m.get(key, [])]


def test_one_identity_on_two_nodes_is_one_member_until_both_tabs_close(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0], title="tabs")["code"]

    async def main():
        obs = await Client.connect(nodes[2], code)
        await obs.join("Obs", client_id="obs")
        tab1 = await Client.connect(nodes[0], code)
        j1 = await tab1.join("Ann", client_id="ann")
        tab2 = await Client.connect(nodes[1], code)
        j2 = await tab2.join("Ann", client_id="ann")   # the same client_id and resume secret: the same identity
        assert j2["you"]["id"] == j1["you"]["id"] and j2["you"]["color"] == j1["you"]["color"], (j1, j2)
        ann = j1["you"]["id"]
        assert [m["id"] for m in j2["members"]].count(ann) == 1, j2["members"]
        got = await drain(obs, 0.8)
        assert [j["id"] for j in presence_of(got, "joins")] == [ann], "one join, not one per node"
        for n in nodes:
            listed = members(n, code)
            assert sorted(m["name"] for m in listed) == ["Ann", "Obs"], (n.port, listed)
            assert [m["id"] for m in listed].count(ann) == 1
        assert redis_members(redis, code) == ["Ann", "Obs"]
        # A third client on another node sees one Ann.
        late = await Client.connect(nodes[2], code)
        j3 = await late.join("Late")
        assert [m["name"] for m in j3["members"]].count("Ann") == 1, j3["members"]
        # One tab closes (past the 1 s grace): Ann stays, no leave anywhere.
        await tab1.close()
        await asyncio.sleep(2.0)
        got = await drain(obs, 0.3)
        assert ann not in [l["id"] for l in presence_of(got, "leaves")], got
        for n in nodes:
            assert "Ann" in [m["name"] for m in members(n, code)], n.port
        # The other tab closes: one leave, seen on every node.
        await tab2.close()
        leaves, deadline = [], time.time() + 10
        while time.time() < deadline and not leaves:
            leaves = [l for l in presence_of(await drain(obs, 0.5), "leaves") if l["id"] == ann]
        assert len(leaves) == 1 and leaves[0]["reason"] == "left", leaves
        eventually(lambda: all(names == ["Late", "Obs"] for names in names_everywhere(nodes, code)),
                   what="Ann gone from every node's list")
        assert redis_members(redis, code) == ["Late", "Obs"]
    run(main())


def test_max_participants_holds_across_nodes_under_racing_joins(cluster):
    """Two seats, four people joining at once over two nodes, many rounds: exactly two get in; the others
    get `session_full` and close code 4006, as on one node."""
    redis, nodes = cluster

    async def attempt(node, code, name):
        c = await Client.connect(node, code)
        await c.send({"type": "join", "name": name, "client_id": name})
        m = await c.recv(timeout=10)
        while m["type"] not in ("joined", "error"):
            m = await c.recv(timeout=10)
        if m["type"] == "joined":
            return c, None
        assert m["code"] == "session_full", m
        await asyncio.wait_for(c.ws.wait_closed(), 5)
        return c, c.ws.close_code

    async def main():
        for round_ in range(12):
            code = create_session(nodes[round_ % 2], title=f"r{round_}", max_participants=2)["code"]
            results = await asyncio.gather(*(attempt(nodes[k % 2], code, f"p{round_}x{k}") for k in range(4)))
            admitted = [c for c, refused in results if refused is None]
            assert len(admitted) == 2, f"round {round_}: {len(admitted)} admitted"
            assert sorted(r for _, r in results if r is not None) == [4006, 4006]
            for n in nodes:
                assert len(members(n, code)) == 2, (round_, n.port, members(n, code))
            await Client.close_all()
    run(main())


def test_colours_are_distinct_session_wide_and_every_node_lists_everyone(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0], title="colours")["code"]

    async def main():
        you = []
        for k in range(6):
            c = await Client.connect(nodes[k % 3], code)
            you.append((await c.join(f"M{k}", client_id=f"m{k}"))["you"])
        colours = [y["color"] for y in you]
        assert sorted(colours) == sorted(PALETTE[:6]), colours
        # A colour freed by a leave is the next newcomer's.
        await Client.open[1].send({"type": "leave"})
        eventually(lambda: all(len(members(n, code)) == 5 for n in nodes), what="the leave everywhere")
        c = await Client.connect(nodes[2], code)
        assert (await c.join("M6", client_id="m6"))["you"]["color"] == colours[1]
        for n in nodes:
            listed = members(n, code)
            assert sorted(m["name"] for m in listed) == ["M0", "M2", "M3", "M4", "M5", "M6"], (n.port, listed)
            assert len({m["color"] for m in listed}) == 6
        # The session's member count (refreshed a few times a second) is the session's, on every node.
        eventually(lambda: all(api(n, "GET", f"/api/sessions/{code}")[1]["members"] == 6 for n in nodes),
                   what="six members counted on every node")
    run(main())


def test_a_leave_that_failed_while_redis_was_down_is_committed_when_it_is_back(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0], title="ghost")["code"]

    async def main():
        obs = await Client.connect(nodes[0], code)
        await obs.join("Obs", client_id="obs")
        ghost = await Client.connect(nodes[1], code)
        gid = (await ghost.join("Ghost", client_id="ghost"))["you"]["id"]
        eventually(lambda: all(names == ["Ghost", "Obs"] for names in names_everywhere(nodes, code)),
                   what="both members listed everywhere")
        redis.kill()
        await ghost.close()
        await asyncio.sleep(2.5)   # the 1 s grace passes; the leave finds no Redis
        redis.start()
        eventually(lambda: redis_members(redis, code) == ["Obs"], timeout=15, what="the ghost gone from Redis")
        eventually(lambda: all(names == ["Obs"] for names in names_everywhere(nodes, code)), timeout=10,
                   what="the ghost gone from every node's list")
        late = await Client.connect(nodes[2], code)
        assert gid not in [m["id"] for m in (await late.join("Late"))["members"]]
    run(main())


def test_a_node_wrongly_declared_dead_announces_its_members_again(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0], title="paused")["code"]
    eventually(lambda: len(node_ids(redis)) == 3, what="three nodes announced")
    time.sleep(6.5)   # the survivors beat for a TTL and a second before they declare anyone dead

    async def main():
        a = await Client.connect(nodes[0], code)
        await a.join("A", client_id="a")
        p = await Client.connect(nodes[2], code)
        pid = (await p.join("Paused", client_id="paused"))["you"]["id"]
        eventually(lambda: all(names == ["A", "Paused"] for names in names_everywhere(nodes, code)),
                   what="both listed everywhere")
        nodes[2].proc.send_signal(signal.SIGSTOP)
        try:
            eventually(lambda: len(node_ids(redis)) == 2, timeout=20, what="node 2 declared lost")
            eventually(lambda: [m["name"] for m in members(nodes[0], code)] == ["A"], timeout=10,
                       what="its member buried (node_lost)")
            assert redis_members(redis, code) == ["A"]
        finally:
            nodes[2].proc.send_signal(signal.SIGCONT)
        eventually(lambda: all(names == ["A", "Paused"] for names in names_everywhere(nodes, code)), timeout=15,
                   what="its member announced again on every node")
        assert redis_members(redis, code) == ["A", "Paused"]
        assert pid in [m["id"] for m in members(nodes[1], code)], "the same member id"
        # It is a member as before: its chat reaches the others, and it leaves once when it goes.
        await drain(a, 0.3)
        await p.send({"type": "chat", "id": "back", "text": "still here"})
        got = await drain(a, 1.0)
        assert any(m["type"] == "chat" and m.get("text") == "still here" for m in got), got
        await p.close()
        eventually(lambda: all(names == ["A"] for names in names_everywhere(nodes, code)), timeout=10,
                   what="its leave everywhere")
    run(main())


def test_member_counts_are_the_sessions_on_a_node_where_it_sleeps(cluster):
    """A node that never woke the session (nobody joined there) counts its members on every node: the
    session's description and the listing read the counts in Redis."""
    redis, nodes = cluster
    code = create_session(nodes[0], title="counts")["code"]

    async def main():
        a = await Client.connect(nodes[0], code)
        await a.join("Ann", client_id="ann")
        a2 = await Client.connect(nodes[1], code)
        await a2.join("Ann", client_id="ann")  # the same member, a second connection
        b = await Client.connect(nodes[1], code)
        await b.join("Bob", client_id="bob")
        await asyncio.sleep(0.5)
        status, one = api(nodes[2], "GET", f"/api/sessions/{code}")
        assert status == 200 and (one["members"], one["connections"]) == (2, 3), one
        status, listing = api(nodes[2], "GET", "/api/sessions")
        row = next(s for s in listing["sessions"] if s["code"] == code)
        assert (row["members"], row["connections"]) == (2, 3), row
        await b.close()
        await asyncio.sleep(1.6)  # past the 1 s grace
        eventually(lambda: api(nodes[2], "GET", f"/api/sessions/{code}")[1]["members"] == 1,
                   what="Bob's leave counted on the sleeping node")
        for c in (a, a2):
            await c.close()

    run(main())
