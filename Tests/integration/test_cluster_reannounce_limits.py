"""Cluster mode, what a node says again of its members (`MemberScripts.reassert`, after it was declared lost or
its subscriptions were made again) is checked as a join is: a session that filled up meanwhile refuses the
members announced last (`session_full`, 4006, as a full session refuses a join), and a member a host removed
while the node did not hear it (`chub:ctl` is heard at most once) is refused (4005) from the removal kept in
`{S}:removed`. Real nodes and a real redis-server (the fixtures of test_cluster_members.py)."""
import json
import os
import signal
import time

import pytest
import websockets

from hubclient import Client, api, create_session, eventually, run
from test_cluster import REDIS, drain, node_ids, redis_cli
from test_cluster_members import cluster, members, names_everywhere, redis_members  # noqa: F401

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")


async def closed_with(c, timeout=10):
    """Every message until the close, and the close code."""
    got = []
    try:
        while True:
            got.append(await c.recv(timeout=timeout))
    except websockets.exceptions.ConnectionClosed:
        pass
    return got, c.ws.close_code, c.ws.close_reason


def local_ports(pid):
    """The local TCP ports of process `pid`'s sockets (its fds' inodes matched in /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].split(":")[1], 16))
    return ports


def kill_subscriptions(redis, node):
    """Redis drops `node`'s subscriber connections (what a broken link does): publications made before the
    node subscribes again never reach it."""
    ports, killed = local_ports(node.proc.pid), 0
    for line in redis_cli(redis, "CLIENT", "LIST").splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if "P" in fields.get("flags", "") and int(fields["addr"].rsplit(":", 1)[1]) in ports:
            redis_cli(redis, "CLIENT", "KILL", "ID", fields["id"])
            killed += 1
    assert killed, "the node has subscriber connections"


def test_members_announced_again_into_a_full_session_are_refused_the_last_first(cluster):  # noqa: F811
    """max_participants 3: A on node 0, P then Q on node 2. Node 2 is declared lost (P and Q buried) and B joins
    on node 1. When node 2 announces P and Q again only one place is left: P (admitted first) gets it, Q is
    refused as a full session refuses a join, and everyone counts three members."""
    redis, nodes = cluster
    code = create_session(nodes[0], title="full again", max_participants=3)["code"]
    eventually(lambda: len(node_ids(redis)) == 3, what="three nodes announced")
    time.sleep(6.5)   # the survivors beat for a TTL and a second before they declare anyone dead

    async def main():
        a = await Client.connect(nodes[0], code)
        await a.join("A", client_id="a")
        p = await Client.connect(nodes[2], code)
        await p.join("P", client_id="p")
        q = await Client.connect(nodes[2], code)
        qid = (await q.join("Q", client_id="q"))["you"]["id"]
        eventually(lambda: all(n == ["A", "P", "Q"] for n in names_everywhere(nodes, code)), what="three listed")
        nodes[2].proc.send_signal(signal.SIGSTOP)
        try:
            eventually(lambda: len(node_ids(redis)) == 2, timeout=20, what="node 2 declared lost")
            eventually(lambda: redis_members(redis, code) == ["A"], timeout=10, what="P and Q buried")
            b = await Client.connect(nodes[1], code)
            await b.join("B", client_id="b")
        finally:
            nodes[2].proc.send_signal(signal.SIGCONT)
        got, close_code, reason = await closed_with(q, timeout=15)
        assert close_code == 4006 and reason == "session full", (close_code, reason)
        errors = [m for m in got if m["type"] == "error"]
        assert errors and errors[-1]["code"] == "session_full", got
        eventually(lambda: all(n == ["A", "B", "P"] for n in names_everywhere(nodes, code)), timeout=15,
                   what="P back, Q not, on every node")
        assert redis_members(redis, code) == ["A", "B", "P"]
        held = [f.split("|", 1)[1] for f in redis_cli(redis, "HKEYS", f"{{{code}}}:conns").split()]
        assert not [i for i in held if i.startswith("c:q:")], held
        # P, on Q's node, is told Q left; the other nodes had its node_lost leave already.
        seen = await drain(p, 1.0)
        leaves = [x["id"] for m in seen if m["type"] == "presence" for x in m.get("leaves", [])]
        assert qid in leaves, seen
        # The session stays at its limit: a newcomer is refused.
        late = await Client.connect(nodes[0], code)
        await late.send({"type": "join", "name": "Late"})
        assert (await late.expect("error"))["code"] == "session_full"
        await b.close()
    run(main())


def test_a_removal_the_node_did_not_hear_sticks(cluster):  # noqa: F811
    """Bob is on node 2 only. Node 2 is paused and Redis drops its subscriber connections; node 0 removes Bob
    (the publication reaches no subscription of node 2's). When node 2 subscribes again it says again who it
    holds; the removal kept in Redis refuses Bob there: closed with 4005, his leave (reason removed) committed,
    and no node lists him."""
    redis, nodes = cluster
    code = create_session(nodes[0], title="removal sticks")["code"]

    async def main():
        obs = await Client.connect(nodes[1], code)
        await obs.join("Obs", client_id="obs")
        bob = await Client.connect(nodes[2], code)
        bob_id = (await bob.join("Bob", client_id="bob"))["you"]["id"]
        eventually(lambda: all(n == ["Bob", "Obs"] for n in names_everywhere(nodes, code)), what="both listed")
        await drain(obs, 0.3)
        nodes[2].proc.send_signal(signal.SIGSTOP)
        try:
            kill_subscriptions(redis, nodes[2])
            status, body = api(nodes[0], "DELETE", f"/api/sessions/{code}/members/{bob_id}")
            assert status == 200 and body == {"removed": bob_id}, body
            assert redis_cli(redis, "HKEYS", f"{{{code}}}:removed").split() == [bob_id]
            ttl = int(redis_cli(redis, "PTTL", f"{{{code}}}:removed"))
            assert 0 < ttl <= 86_400_000, ttl
        finally:
            nodes[2].proc.send_signal(signal.SIGCONT)
        _, close_code, reason = await closed_with(bob, timeout=15)
        assert close_code == 4005 and reason == "removed by the host", (close_code, reason)
        eventually(lambda: all(n == ["Obs"] for n in names_everywhere(nodes, code)), timeout=10,
                   what="Bob gone on every node")
        assert redis_members(redis, code) == ["Obs"]
        leaves = [x for m in await drain(obs, 1.0) if m["type"] == "presence" for x in m.get("leaves", [])
                  if x["id"] == bob_id]
        assert [x["reason"] for x in leaves] == ["removed"], leaves
        # Bob may join again: a new member id, which no removal names.
        again = await Client.connect(nodes[2], code)
        new_id = (await again.join("Bob"))["you"]["id"]
        assert new_id != bob_id
        await drain(again, 1.5)
        assert "Bob" in [m["name"] for m in members(nodes[0], code)]
        await again.close()
    run(main())
