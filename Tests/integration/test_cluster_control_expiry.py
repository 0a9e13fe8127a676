"""Cluster mode, what a `run_control` asked of another node promises (ClusterControl, ControlExpiry): the
member's answer is the outcome. `run_control_sent` means the node holding the publisher socket handed it on;
a refusal after that node did not answer in time (1 s) means it was not handed on, and will not be: the
request expires then, and a node that hears it later (here: SIGSTOPped while it was asked, SIGCONTed after
the refusal) drops it. Real nodes and a real redis-server (test_cluster_control.py's fixtures)."""
import asyncio
import signal
import time

import pytest

from hubclient import Client, create_session, eventually, run
from test_cluster import REDIS, redis_cli
from test_cluster_control import ask, cluster, control_frame, publish_ws, publisher  # noqa: F401

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")


def test_a_control_refused_for_no_answer_is_never_handed_on_later(cluster):  # noqa: F811
    redis, nodes = cluster
    created = create_session(nodes[0], title="expiry")
    code = created["code"]

    async def main():
        host = await Client.connect(nodes[0], code)
        await host.join("Host", host_key=created["host_key"])
        worker = await publisher(nodes[1])
        await publish_ws(worker, {"run": "e1", "type": "started", "owner": "ci", "session": code})
        eventually(lambda: redis_cli(redis, "GET", "chub:pub:{e1}").strip(), what="the record names node 1")

        nodes[1].proc.send_signal(signal.SIGSTOP)
        try:
            started = time.time()
            m = await ask(host, "e1", "pause", "p1")
            took = time.time() - started
            assert m["type"] == "error" and m["code"] == "no_publisher", m
            assert "did not answer" in m["message"] and "will not be handed on" in m["message"], m
            assert took < 3, took
            await asyncio.sleep(0.3)
        finally:
            nodes[1].proc.send_signal(signal.SIGCONT)
        # Node 1 now reads the request Redis kept for it: past its deadline, it is dropped.
        with pytest.raises(asyncio.TimeoutError):
            await control_frame(worker, timeout=2)
        # Asked again with node 1 running: handed on, once.
        m = await ask(host, "e1", "pause", "p2")
        assert m["type"] == "run_control_sent", m
        control = await control_frame(worker)
        assert control["action"] == "pause", control
        with pytest.raises(asyncio.TimeoutError):
            await control_frame(worker, timeout=1)
    run(main())
