"""`--redis-wait-replicas N` (scripts/deploy/CLUSTER.md, "What an acknowledgement promises"): on a
three-master, three-replica Redis Cluster made in the test (test_redis_cluster.py's `RedisCluster`), a
durable append is acknowledged only after `WAIT N` on its slot's master counted N replicas. Acknowledged
messages survive the master's SIGKILL and its replica's promotion; with the replica stopped (SIGSTOP) a
chat gets `storage_unavailable` saying it may be stored, never an ack, and once the replica is back a
resend under the same id is acknowledged as a duplicate with its seq. Mode 0 is test_redis_cluster.py's."""
import asyncio
import signal
import subprocess
import time

import pytest

from conftest import BINARY, Hub
from hubclient import Client, api, create_session, eventually, run
from test_redis_cluster import REDIS, RedisCluster, cli, pytestmark  # noqa: F401


def hubs(rc, tmp_path, n, *extra):
    return [Hub("--redis", rc.url, "--admin-key", "cluster-admin-key-0123", "--redis-wait-replicas", "1",
                *extra, data_dir=str(tmp_path / f"node{i}")).start() for i in range(n)]


@pytest.fixture
def waiting(tmp_path):
    """A Redis Cluster for one test (it kills or stops nodes) and two hub nodes in waiting mode."""
    rc = RedisCluster(tmp_path, full_coverage=False).start()
    nodes = hubs(rc, tmp_path, 2, "--redis-wait-timeout-ms", "300")
    yield rc, nodes
    for p in rc.procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
    for n in nodes:
        n.stop()
    rc.stop()


def session_off_the_seed(rc, node):
    """A session whose shard is not the seed's (the nodes' node-wide subscriptions stay where they are)."""
    for _ in range(100):
        code = create_session(node)["code"]
        if rc.master_of("{" + code + "}:m") != rc.port:
            return code
    raise AssertionError("no session off the seed's shard")


def replica_of(rc, master):
    return next(p for p, (_, role, _) in rc.nodes().items()
                if role == "replica" and f"master_port:{master}" in cli(p, "INFO", "replication"))


def test_acknowledged_messages_survive_the_masters_death_right_after_their_acks(waiting):
    """Forty chats sent at once; the moment the last ack arrives the shard's master is SIGKILLed and the
    cluster promotes its replica. Every acknowledged message is in the history read after the failover,
    on both nodes, and each ack came after a WAIT on that master."""
    rc, nodes = waiting
    code = session_off_the_seed(rc, nodes[0])
    key = "{" + code + "}:m"
    victim = rc.master_of(key)

    async def main():
        c = await Client.connect(nodes[0], code)
        await c.join("Sender", client_id="sender")
        waits = rc.calls(victim, "wait")
        ids = [f"w-{k}" for k in range(40)]
        for mid in ids:
            await c.send({"type": "chat", "id": mid, "text": mid})
        acked = {}
        while len(acked) < len(ids):
            m = await c.recv(timeout=10)
            assert m["type"] != "error", m
            if m["type"] == "ack":
                acked[m["id"]] = m["seq"]
        waited = rc.calls(victim, "wait") - waits
        rc.kill(victim)
        # Each ack followed a WAIT on the master that ran the script (one per append, the join's too).
        assert waited >= len(ids), waited
        return acked

    acked = run(main())
    eventually(lambda: rc.master_of(key) not in (None, victim), timeout=30, what="the replica promoted")

    def history(n):
        status, t = api(n, "GET", f"/api/sessions/{code}/transcript?limit=1000")
        if status != 200:
            return None
        return {e["text"]: e["seq"] for e in t["events"] if e["type"] == "chat"}

    for n in nodes:
        eventually(lambda: history(n) is not None, timeout=30, what="the transcript readable after the failover")
        got = history(n)
        missing = sorted(set(acked) - set(got))
        assert not missing, f"acknowledged but lost in the failover: {missing}"
        assert all(got[mid] == seq for mid, seq in acked.items())


def test_with_the_replica_stopped_a_chat_is_refused_as_maybe_stored_and_a_resend_is_its_duplicate(waiting):
    """SIGSTOP of the shard's replica: WAIT counts 0 within the 300 ms timeout, so the chat is answered
    `storage_unavailable` ("not acknowledged ... may be stored"), never with an ack. It IS on the master:
    after SIGCONT the resend under the same id is acknowledged as a duplicate with the seq it was given,
    and the transcript has it once."""
    rc, nodes = waiting
    code = session_off_the_seed(rc, nodes[0])
    master = rc.master_of("{" + code + "}:m")
    replica = replica_of(rc, master)

    async def main():
        c = await Client.connect(nodes[0], code)
        await c.join("Sender", client_id="sender")
        await c.send({"type": "chat", "id": "before", "text": "before"})
        first = await c.expect("ack")
        rc.procs[replica].send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            await c.send({"type": "chat", "id": "unconfirmed", "text": "unconfirmed"})
            while True:
                m = await c.recv(timeout=10)
                assert m["type"] != "ack", m
                if m["type"] == "error":
                    break
            assert m["code"] == "storage_unavailable" and m.get("ref") == "unconfirmed", m
            assert "not acknowledged" in m["message"] and "may be stored" in m["message"], m
            assert time.monotonic() - t0 >= 0.25, "refused before the WAIT timeout"
        finally:
            rc.procs[replica].send_signal(signal.SIGCONT)
        # On the master all along: the resend is a duplicate, acknowledged once the replica caught up.
        eventually(lambda: "master_link_status:up" in cli(replica, "INFO", "replication"), timeout=20,
                   what="the replica's link up again")
        deadline = time.time() + 20
        while True:
            assert time.time() < deadline, "the resend was never acknowledged"
            await c.send({"type": "chat", "id": "unconfirmed", "text": "unconfirmed"})
            m = await c.recv(timeout=10)
            while m["type"] not in ("ack", "error"):
                m = await c.recv(timeout=10)
            if m["type"] == "ack":
                break
            await asyncio.sleep(0.1)
        assert m["duplicate"] is True and m["seq"] == first["seq"] + 1, m
    run(main())
    status, t = api(nodes[1], "GET", f"/api/sessions/{code}/transcript?limit=100")
    assert status == 200, t
    assert [e["text"] for e in t["events"] if e["type"] == "chat"] == ["before", "unconfirmed"]


def test_wait_settings_that_cannot_work_are_refused(tmp_path):
    for args, says in [
        (["--redis-wait-replicas", "17"], "must be 0-16"),
        (["--redis-wait-replicas", "1", "--redis-wait-timeout-ms", "5000"], "must be 1-2000"),
        (["--redis-wait-timeout-ms", "0"], "must be 1-2000"),
    ]:
        p = subprocess.run([BINARY, "serve", "--port", "0", "--data", str(tmp_path / "d"), *args],
                           capture_output=True, text=True, timeout=20)
        out = p.stdout + p.stderr
        assert p.returncode != 0 and says in out, (args, out)
