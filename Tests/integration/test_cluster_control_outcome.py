"""Cluster mode, a `run_control` whose answer the asking node does not hear (`chub:ctl` publications are heard
at most once): the outcome is settled in Redis (`chub:ctl:outcome:ID`: the first of the asked node's `sent`,
written before it hands the control on, and the asker's `refused`, written when no answer came within 1 s), so
the member hears `run_control_sent` for a control that was handed on, never a refusal. Made deterministic with
signals: the publisher's node is paused while asked, then the asking node is paused and Redis drops its
subscriber connections, the publisher's node resumes (hands the control on and answers, unheard), and the asking
node resumes. Real nodes and a real redis-server (test_cluster_control.py's fixtures)."""
import asyncio
import signal
import time

import pytest

from hubclient import Client, create_session, eventually, run
from test_cluster import REDIS, redis_cli
from test_cluster_control import ask, cluster, control_frame, publish_ws, publisher  # noqa: F401
from test_cluster_reannounce_limits import kill_subscriptions

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")


def test_a_control_handed_on_is_answered_sent_though_its_answer_was_not_heard(cluster):  # noqa: F811
    redis, nodes = cluster
    created = create_session(nodes[0], title="outcome")
    code = created["code"]

    async def main():
        host = await Client.connect(nodes[0], code)
        await host.join("Host", host_key=created["host_key"])
        worker = await publisher(nodes[1])
        await publish_ws(worker, {"run": "o1", "type": "started", "owner": "ci", "session": code})
        eventually(lambda: redis_cli(redis, "GET", "chub:pub:{o1}").strip(), what="the record names node 1")
        await asyncio.sleep(0.3)

        nodes[1].proc.send_signal(signal.SIGSTOP)
        stopped = [nodes[1]]
        try:
            await host.send({"type": "run_control", "run": "o1", "action": "pause", "id": "p1"})
            await asyncio.sleep(0.25)                  # node 0 has asked node 1 (its request waits in Redis)
            nodes[0].proc.send_signal(signal.SIGSTOP)
            stopped.append(nodes[0])
            kill_subscriptions(redis, nodes[0])         # node 0 will not hear node 1's answer
            nodes[1].proc.send_signal(signal.SIGCONT)
            stopped.remove(nodes[1])
            control = await control_frame(worker, timeout=3)   # handed on, within the request's deadline
            assert control["action"] == "pause", control
        finally:
            for n in stopped:
                n.proc.send_signal(signal.SIGCONT)
        nodes[0].proc.send_signal(signal.SIGCONT)
        while True:
            m = await host.recv(timeout=5)
            if m["type"] in ("run_control_sent", "error"):
                break
        assert m["type"] == "run_control_sent", m
        with pytest.raises(asyncio.TimeoutError):
            await control_frame(worker, timeout=1)
        outcomes = [k for k in redis_cli(redis, "KEYS", "chub:ctl:outcome:*").split() if k]
        assert outcomes and all(redis_cli(redis, "GET", k).strip() == "sent" for k in outcomes), outcomes
        # Subscriptions back: asked again, handed on once, answered at once.
        started = time.time()
        m = await ask(host, "o1", "pause", "p2")
        assert m["type"] == "run_control_sent" and time.time() - started < 1, m
        assert (await control_frame(worker))["action"] == "pause"
    run(main())
