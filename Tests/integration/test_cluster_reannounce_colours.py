"""Cluster mode, a node wrongly declared dead announces its members again (`MemberScripts.reassert`): a
member whose colour another member took meanwhile comes back under a colour no member has, the same on every
node, its own node's included (what it sends says so). Real nodes and a real redis-server (the fixtures of
test_cluster_members.py)."""
import json
import signal
import time

import pytest

from hubclient import Client, create_session, eventually, run
from test_cluster import REDIS, drain, node_ids, redis_cli
from test_cluster_members import cluster, members, names_everywhere  # noqa: F401

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")


def colours_everywhere(nodes, code):
    return [{m["name"]: m["color"] for m in members(n, code)} for n in nodes]


def test_a_member_announced_again_never_shares_a_colour(cluster):  # noqa: F811
    redis, nodes = cluster
    code = create_session(nodes[0], title="colours again")["code"]
    eventually(lambda: len(node_ids(redis)) == 3, what="three nodes announced")
    time.sleep(6.5)   # the survivors beat for a TTL and a second before they declare anyone dead

    async def main():
        a = await Client.connect(nodes[0], code)
        a_colour = (await a.join("A", client_id="a"))["you"]["color"]
        p = await Client.connect(nodes[2], code)
        you = (await p.join("Paused", client_id="paused"))["you"]
        pid, old = you["id"], you["color"]
        eventually(lambda: all(names == ["A", "Paused"] for names in names_everywhere(nodes, code)),
                   what="both listed everywhere")
        nodes[2].proc.send_signal(signal.SIGSTOP)
        try:
            eventually(lambda: len(node_ids(redis)) == 2, timeout=20, what="node 2 declared lost")
            eventually(lambda: [m["name"] for m in members(nodes[0], code)] == ["A"], timeout=10,
                       what="its member buried (node_lost)")
            # A newcomer takes the colour the buried member had (the first one no member has).
            b = await Client.connect(nodes[1], code)
            assert (await b.join("B", client_id="b"))["you"]["color"] == old
        finally:
            nodes[2].proc.send_signal(signal.SIGCONT)
        eventually(lambda: all(names == ["A", "B", "Paused"] for names in names_everywhere(nodes, code)),
                   timeout=15, what="its member announced again on every node")
        # Every node, node 2 included, shows one colour per member, and the same ones.
        eventually(lambda: all(c == colours_everywhere(nodes, code)[0] for c in colours_everywhere(nodes, code)),
                   timeout=5, what="the same colours on every node")
        colours = colours_everywhere(nodes, code)[0]
        assert colours["A"] == a_colour and colours["B"] == old, colours
        assert len(set(colours.values())) == 3, colours
        stored = [json.loads(v) for v in redis_cli(redis, "HVALS", f"{{{code}}}:members").split("\n") if v.strip()]
        assert sorted(m["color"] for m in stored) == sorted(colours.values()), stored
        assert pid in [m["id"] for m in members(nodes[1], code)], "the same member id"
        # The member's own client hears its join again under the new colour, and what it sends carries it.
        got = await drain(p, 1.0)
        joins = [j for m in got if m["type"] == "presence" for j in m.get("joins", []) if j["id"] == pid]
        assert joins and joins[-1]["color"] == colours["Paused"], got
        await drain(a, 0.3)
        await p.send({"type": "chat", "id": "back", "text": "still here"})
        chats = [m for m in await drain(a, 1.0) if m["type"] == "chat" and m.get("text") == "still here"]
        assert chats and chats[0]["from"]["color"] == colours["Paused"], chats
        await b.close()
    run(main())
