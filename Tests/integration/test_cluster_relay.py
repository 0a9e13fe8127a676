"""Relayed ephemeral traffic between cluster nodes (cross-node fan-out): each relay's PUBLISH goes with
`CLIENT REPLY SKIP` where Redis takes it, and every event still reaches every member on every node once
and in order; where Redis refuses it (an ACL), the node notices on connecting and relays read their
replies as before."""
import asyncio
import subprocess

import pytest

from conftest import Hub
from hubclient import Client, create_session, run
from test_cluster import REDIS, Redis, drain

pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server is not installed (scripts/deps.sh test installs it)")


def commandstats(redis):
    """{command: (calls, rejected_calls)} from INFO commandstats."""
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "info", "commandstats"], capture_output=True,
                         text=True, timeout=5).stdout
    stats = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_"):].split(":", 1)
            kv = dict(f.split("=") for f in fields.split(","))
            stats[name] = (int(kv["calls"]), int(kv.get("rejected_calls", 0)))
    return stats


class RestrictedRedis(Redis):
    """A redis-server whose default user may not run CLIENT REPLY (as an ACL or a proxy may have it)."""

    def start(self):
        acl = self.dir / "users.acl"
        acl.write_text("user default on nopass ~* &* +@all -client|reply\n")
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--appendonly", "no",
               "--save", "", "--daemonize", "no", "--aclfile", str(acl), "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from hubclient import eventually
        eventually(lambda: self.ping(), what="redis-server to answer")
        return self


async def fan_out(nodes, code, n=60):
    """A sender on node 0, a member beside it and one on each other node: each gets every event once, in
    order (the sender's own node reads its own publication too, and must not deliver it again)."""
    sender = await Client.connect(nodes[0], code); await sender.join("S")
    others = [await Client.connect(node, code) for node in [nodes[0]] + nodes[1:]]
    for i, c in enumerate(others):
        await c.join(f"M{i}")
    await asyncio.sleep(0.3)
    for c in [sender] + others:
        await drain(c, 0.2)
    for k in range(n):
        await sender.send({"type": "event", "name": "tick", "data": {"k": k}})
        if k % 10 == 9:
            await asyncio.sleep(0.02)  # several loop iterations, several publications
    for c in others:
        got = await drain(c, 1.0)
        ks = [m["data"]["k"] for m in got if m["type"] == "event" and m.get("name") == "tick"]
        assert ks == list(range(n)), ks
    # The sender is never sent its own events (from its node or back through Redis).
    assert not [m for m in await drain(sender, 0.3) if m["type"] == "event"]


def test_relays_skip_their_replies_and_arrive_once_in_order(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", "cluster-admin-key-0123",
                 data_dir=str(tmp_path / f"node{i}")).start() for i in range(3)]
    try:
        code = create_session(nodes[0])["code"]

        async def main():
            before = commandstats(redis)
            await fan_out(nodes, code)
            after = commandstats(redis)
            skips = after.get("client|reply", (0, 0))[0] - before.get("client|reply", (0, 0))[0]
            publishes = after.get("publish", (0, 0))[0] - before.get("publish", (0, 0))[0]
            # Every relay went with CLIENT REPLY SKIP (the probes of the links count too, made before).
            assert skips >= 3, (skips, publishes)
            assert skips <= publishes, (skips, publishes)
        run(main())
    finally:
        for n in nodes:
            n.stop()
        redis.stop()
    for n in nodes:
        assert "a reply to no command" not in n.output()


def test_relays_read_their_replies_where_redis_refuses_to_skip_them(tmp_path):
    redis = RestrictedRedis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", "cluster-admin-key-0123",
                 data_dir=str(tmp_path / f"node{i}")).start() for i in range(3)]
    try:
        code = create_session(nodes[0])["code"]

        async def main():
            await fan_out(nodes, code)
            stats = commandstats(redis)
            # Refused once per commands link (the probe), never taken.
            calls, rejected = stats.get("client|reply", (0, 0))
            assert calls == 0 and rejected >= 3, stats.get("client|reply")
            # Durable traffic on the same links still answers in step.
            a = await Client.connect(nodes[1], code); await a.join("D")
            await a.send({"type": "chat", "text": "still in step", "id": "d1"})
            assert (await a.expect("ack"))["seq"] > 0
        run(main())
    finally:
        for n in nodes:
            n.stop()
        redis.stop()
    for n in nodes:
        out = n.output()
        assert "a reply to no command" not in out and "redis refused the connection" not in out, out[-2000:]
