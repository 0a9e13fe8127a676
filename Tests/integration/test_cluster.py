"""Cluster mode: three hub nodes sharing sessions through a real redis-server (AOF on, appendfsync
always), driven by real clients connected to different nodes; nodes and Redis killed with SIGKILL."""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import BINARY, Hub
from hubclient import Client, api, create_session, eventually, run

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A redis-server of the test's own: loopback, a free port, a temporary directory, AOF with an
    fsync before every reply."""

    def __init__(self, directory, password=None):
        self.dir = directory
        self.port = free_port()
        self.password = password
        self.proc = None

    def start(self):
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--appendonly", "yes",
               "--appendfsync", "always", "--save", "", "--daemonize", "no", "--logfile", str(self.dir / "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(lambda: self.ping(), what="redis-server to answer")
        return self

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode()); s.recv(100)
                s.sendall(b"PING\r\n")
                return s.recv(100).startswith(b"+PONG")
        except OSError:
            return False

    def publishes(self):
        """How many PUBLISH commands Redis has run (INFO commandstats)."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "info", "commandstats"], capture_output=True,
                             text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("cmdstat_publish:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    @property
    def url(self):
        return f"redis://{':' + self.password + '@' if self.password else ''}127.0.0.1:{self.port}"


@pytest.fixture
def cluster(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", "cluster-admin-key-0123", "--webhook-allow-private",
                 data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(3)]
    yield redis, nodes
    for n in nodes:
        n.stop()
    redis.stop()


async def drain(c, seconds=0.3):
    """Everything a client gets within `seconds`."""
    import websockets
    out = []
    try:
        while True:
            out.append(await c.recv(timeout=seconds))
    except (asyncio.TimeoutError, websockets.exceptions.ConnectionClosed):
        return out


async def collect_chat(c, want, timeout=10):
    """Chat messages until `want` distinct seqs arrived; returns them in arrival order."""
    got, deadline = [], time.time() + timeout
    while len({m["seq"] for m in got}) < want:
        m = await c.recv(timeout=max(0.1, deadline - time.time()))
        if m["type"] == "chat":
            got.append(m)
    return got


def test_one_seq_order_across_three_nodes(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0], title="cluster")["code"]

    async def main():
        clients = []
        for i, n in enumerate(nodes):
            c = await Client.connect(n, code)
            j = await c.join(f"N{i}", client_id=f"n{i}")
            clients.append(c)
        # Everyone on every node sees the others' joins.
        await asyncio.sleep(0.3)
        late = await Client.connect(nodes[2], code)
        j = await late.join("Late")
        assert {m["name"] for m in j["members"]} >= {"N0", "N1", "N2", "Late"}, j["members"]
        for c in clients + [late]:
            await drain(c, 0.2)
        # 30 messages from each node, sent concurrently.
        async def send(c, i):
            acks = []
            for k in range(30):
                await c.send({"type": "chat", "id": f"{i}-{k}", "text": f"from {i} #{k}"})
            while len(acks) < 30:
                m = await c.recv()
                if m["type"] == "ack":
                    acks.append(m)
            return acks
        seen = [asyncio.create_task(collect_chat(late, 90))]
        acks = await asyncio.gather(*(send(c, i) for i, c in enumerate(clients)))
        order = await seen[0]
        seqs = [m["seq"] for m in order]
        assert seqs == sorted(seqs) and len(set(seqs)) == 90, seqs
        acked = sorted(a["seq"] for group in acks for a in group)
        assert acked == sorted(seqs), "every ack names a seq everyone received"
        assert seqs == list(range(seqs[0], seqs[0] + 90)), "no gaps"
        # A resend of the same id on another node is the same message.
        # The same id from another member is another message.
        await clients[1].send({"type": "chat", "id": "0-5", "text": "again"})
        other_member = await clients[1].expect("ack")
        assert not other_member.get("duplicate")
        other = await Client.connect(nodes[2], code)
        await other.join("N0 again", client_id="n0")
        await drain(other, 0.2)
        await other.send({"type": "chat", "id": "0-5", "text": "resent after moving"})
        d = await other.expect("ack")
        first = next(a for a in acks[0] if a["id"] == "0-5")
        assert d.get("duplicate") is True and d["seq"] == first["seq"], (d, first)
        return seqs

    seqs = run(main())
    # The transcript on every node is the same, from Redis.
    bodies = []
    for n in nodes:
        status, raw = api(n, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
        assert status == 200, raw
        events = [json.loads(l) for l in raw.decode().splitlines()]
        bodies.append([(e["seq"], e.get("text")) for e in events if e["type"] == "chat"])
    assert bodies[0] == bodies[1] == bodies[2]
    assert [s for s, _ in bodies[0]][:90] == seqs


def test_ephemeral_traffic_crosses_nodes(cluster):
    redis, nodes = cluster
    code = create_session(nodes[1])["code"]

    async def main():
        a = await Client.connect(nodes[0], code); await a.join("A")
        b = await Client.connect(nodes[1], code); await b.join("B")
        await drain(a, 0.3); await drain(b, 0.3)
        await a.send({"type": "cursor", "x": 10, "y": 20})
        await a.send({"type": "typing", "state": "start"})
        got = await drain(b, 0.5)
        types = [m["type"] for m in got]
        assert "cursors" in types and "typing" in types, got
        cur = next(m for m in got if m["type"] == "cursors")
        assert cur["updates"][0]["x"] == 10
        # A burst of 40 app events and 40 presence changes in one TCP write, so one loop iteration of
        # node 0 reads them all: one publish for the session, not one per message (nor per recipient);
        # every event still arrives, in order.
        from wsraw import RawClient, frame
        raw = RawClient(nodes[0].port, path=f"/ws?session={code}", headers={"Sec-WebSocket-Protocol": "collabhub.v1"})
        raw.sock.sendall(frame(0x1, json.dumps({"type": "join", "name": "Burst"}).encode()))
        while json.loads(raw.recv_message()[1])["type"] != "joined":
            pass
        await drain(b, 0.3)
        burst = []
        for k in range(40):
            burst.append(frame(0x1, json.dumps({"type": "event", "name": "burst", "data": {"k": k}}).encode()))
            burst.append(frame(0x1, json.dumps({"type": "presence", "state": {"status": "idle"}}).encode()))
        before = redis.publishes()
        raw.sock.sendall(b"".join(burst))
        got = await drain(b, 0.5)
        raw.close()
        ks = [m["data"]["k"] for m in got if m["type"] == "event" and m.get("name") == "burst"]
        assert ks == list(range(40)), ks
        sent = redis.publishes() - before
        assert sent <= 3, f"{sent} publishes for 80 messages"
    run(main())


def test_node_killed_clients_resume_exactly_elsewhere(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0])["code"]

    async def main():
        writer = await Client.connect(nodes[0], code); await writer.join("W", client_id="w")
        reader = await Client.connect(nodes[1], code)
        rid = (await reader.join("R", client_id="r"))["you"]["id"]
        # A member of node 1 that does not come back (R does, on node 2: the same identity, the same member).
        gone = await Client.connect(nodes[1], code)
        gid = (await gone.join("G", client_id="g"))["you"]["id"]
        await drain(reader, 0.3)
        for k in range(10):
            await writer.send({"type": "chat", "id": f"a{k}", "text": f"a{k}"})
        first = await collect_chat(reader, 10)
        last = first[-1]["seq"]
        for _ in range(10):
            await writer.expect("ack")
        nodes[1].stop(signal.SIGKILL)
        # Sent while the reader has no node; acknowledged by node 0.
        for k in range(20):
            await writer.send({"type": "chat", "id": f"b{k}", "text": f"b{k}"})
        acks = []
        while len(acks) < 20:
            m = await writer.recv()
            if m["type"] == "ack":
                acks.append(m["seq"])
        back = await Client.connect(nodes[2], code)
        await back.send({"type": "join", "name": "R", "client_id": "r", "resume_from": last})
        missed = []
        while True:
            m = await back.recv()
            if m["type"] == "joined":
                break
            if m["type"] == "chat":
                missed.append(m["seq"])
        assert missed == sorted(acks), (missed, acks)
        assert m["you"]["id"] == rid, "the same identity on another node is the same member"
        # node_lost: node 1's member that did not come back leaves once, emitted by one survivor, after the
        # node's TTL (5 s); R, held by node 2 now, does not leave.
        leaves, deadline = [], time.time() + 15
        while time.time() < deadline and not leaves:
            m = await writer.recv(timeout=15)
            if m["type"] == "presence":
                leaves += [l for l in m.get("leaves", []) if l["id"] in (gid, rid)]
        assert [(l["id"], l["reason"]) for l in leaves] == [(gid, "node_lost")], leaves
        await asyncio.sleep(2.5)
        more = [m for m in await drain(writer, 0.5) if m["type"] == "presence"
                and any(l["id"] in (gid, rid) for l in m.get("leaves", []))]
        assert not more, "one leave, from one survivor"
        late = await Client.connect(nodes[0], code)
        j = await late.join("Late")
        assert gid not in [m["id"] for m in j["members"]] and rid in [m["id"] for m in j["members"]]
    run(main())


def test_redis_killed_loses_no_acknowledged_message(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0])["code"]

    async def main():
        a = await Client.connect(nodes[0], code); await a.join("A", client_id="a")
        b = await Client.connect(nodes[2], code); await b.join("B", client_id="b")
        await drain(a, 0.2)
        acked, refused = {}, 0
        for k in range(40):
            if k == 20:
                redis.kill()
            await a.send({"type": "chat", "id": f"m{k}", "text": f"m{k}"})
            while True:
                m = await a.recv()
                if m["type"] == "ack":
                    acked[m["id"]] = m["seq"]; break
                if m["type"] == "error":
                    assert m["code"] == "storage_unavailable", m
                    refused += 1; break
        assert refused >= 1 and len(acked) >= 20
        redis.start()
        # The node reconnects with backoff; a refused message sent again is stored.
        async def resend():
            await a.send({"type": "chat", "id": "after", "text": "after the restart"})
            while True:
                m = await a.recv()
                if m["type"] in ("ack", "error"):
                    return m
        for _ in range(60):
            m = await resend()
            if m["type"] == "ack":
                acked["after"] = m["seq"]; break
            await asyncio.sleep(0.25)
        assert "after" in acked
        return acked

    acked = run(main())
    status, raw = api(nodes[1], "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    assert status == 200, raw
    stored = {e["id"]: e["seq"] for e in map(json.loads, raw.decode().splitlines()) if e["type"] == "chat"}
    for mid, seq in acked.items():
        assert stored.get(mid) == seq, f"acknowledged {mid} (seq {seq}) is missing after Redis was killed"


def test_session_created_on_one_node_joins_on_another_and_ends_everywhere(cluster):
    redis, nodes = cluster
    info = create_session(nodes[2], title="made on 2")
    code = info["code"]

    async def main():
        a = await Client.connect(nodes[0], code)
        j = await a.join("A")
        assert j["title"] == "made on 2"
        b = await Client.connect(nodes[1], code); await b.join("Host", host_key=info["host_key"])
        await drain(a, 0.3)
        await b.send({"type": "end", "reason": "done"})
        got = await drain(a, 1.0)
        assert any(m["type"] == "session_ended" for m in got), got
    run(main())
    eventually(lambda: api(nodes[0], "GET", f"/api/sessions/{code}")[1].get("ended_at"), what="the end on node 0")
    # Redis's session row (also published on chub:dir) holds the host key's hash, never the key, which
    # still made node 1's member the host above.
    row = redis_cli(redis, "GET", "{" + code + "}:info")
    assert '"host_key":"sha256:' in row and info["host_key"] not in row, row


def test_a_deletion_rewrites_the_message_and_its_edits_in_redis_for_every_node(cluster):
    """Deleted on node 0: the append script replaces the original with its tombstone and cuts its edits'
    text (flagged `deleted`) in the same call, so node 1's late joiner, node 2's transcript and export and
    node 1's replay from the start show only the tombstone; a redaction of it is refused on node 2."""
    redis, nodes = cluster
    info = create_session(nodes[0], title="deletions", guest_policy="allow")
    code, host_key = info["code"], info["host_key"]
    secret = "regret-" + os.urandom(5).hex()

    async def main():
        ann = await Client.connect(nodes[0], code)
        await ann.join("Ann", client_id="ann")
        await ann.send({"type": "chat", "id": "c1", "text": f"I said {secret}"})
        seq = (await ann.expect("ack"))["seq"]
        await ann.send({"type": "chat_edit", "id": "e1", "seq": seq, "text": f"I said {secret}!"})
        await ann.expect("ack", skip=("cursors", "typing", "presence", "chat_edit"))
        await ann.send({"type": "chat_delete", "id": "d1", "seq": seq})
        await ann.expect("ack", skip=("cursors", "typing", "presence", "chat_edit", "chat_delete"))
        late = await Client.connect(nodes[1], code)
        await late.send({"type": "join", "name": "Late", "history": 50})
        got = []
        while (m := await late.recv(10))["type"] != "joined":
            got.append(m)
        rp = await Client.connect(nodes[1], code)
        await rp.send({"type": "replay", "speed": 1000, "host_key": host_key})
        played = []
        while (m := await rp.recv(10))["type"] != "replay_finished":
            played.append(m)
        host = await Client.connect(nodes[2], code)
        await host.join("Host", host_key=host_key)
        await host.send({"type": "redact", "id": "r1", "seq": seq})
        err = await host.expect("error", skip=("cursors", "typing", "presence", "chat"))
        assert err["code"] == "invalid_field" and "was deleted" in err["message"], err
        return seq, got, played
    seq, got, played = run(main())
    status, page = api(nodes[2], "GET", f"/api/sessions/{code}/transcript?limit=100")
    status2, export = api(nodes[2], "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    assert status == 200 and status2 == 200
    events = page["events"]
    for where, blob in (("history", json.dumps(got)), ("replay", json.dumps(played)),
                        ("transcript", json.dumps(page)), ("export", export.decode()),
                        ("redis", redis_cli(redis, "HGETALL", "{" + code + "}:log"))):
        assert secret not in blob, f"the deleted text is in the {where}"
    for where, list_ in (("history", got), ("replay", played), ("transcript", events)):
        first = next(m for m in list_ if m.get("seq") == seq)
        assert first.get("deleted") is True and first.get("deleted_by") == "author" and "text" not in first, \
            f"{where}: {first}"
        edit = next(m for m in list_ if m["type"] == "chat_edit")
        assert edit.get("deleted") is True and "text" not in edit, f"{where}: {edit}"


def redis_cli(redis, *args):
    # `-c`: a Redis Cluster (test_redis_cluster.py runs these tests on one) follows MOVED to the key's shard.
    follow = ["-c"] if getattr(redis, "cluster", False) else []
    return subprocess.run(["redis-cli", *follow, "-p", str(redis.port), *args], capture_output=True, text=True,
                          timeout=5).stdout


def test_idempotency_keys_of_different_members_never_collide(cluster):
    """The idempotency key is the member and the message id, length-prefixed: `c:a|b` sending `x` and `c:a`
    sending `b|x` made the same `member|id` before, so the second was acknowledged as a duplicate of the
    first and never stored. And a resend is still recognised."""
    redis, nodes = cluster
    code = create_session(nodes[0], title="ids")["code"]

    async def main():
        one = await Client.connect(nodes[0], code); await one.join("One", client_id="a|b")
        two = await Client.connect(nodes[1], code); await two.join("Two", client_id="a")
        await drain(one, 0.3); await drain(two, 0.3)
        await one.send({"type": "chat", "id": "x", "text": "from one"})
        first = await one.expect("ack")
        await two.send({"type": "chat", "id": "b|x", "text": "from two"})
        second = await two.expect("ack")
        assert not first.get("duplicate") and not second.get("duplicate"), (first, second)
        assert first["seq"] != second["seq"], (first, second)
        await two.send({"type": "chat", "id": "b|x", "text": "from two, resent"})
        again = await two.expect("ack")
        assert again.get("duplicate") is True and again["seq"] == second["seq"], again
        return first["seq"], second["seq"]

    seqs = run(main())
    # Read from the third node, where nobody joined: it knows the session from the directory (a row
    # published before its subscription took effect is read when it does).
    status, raw = api(nodes[2], "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    assert status == 200, raw
    chats = {e["seq"]: e.get("text") for e in map(json.loads, raw.decode().splitlines()) if e["type"] == "chat"}
    assert chats == {seqs[0]: "from one", seqs[1]: "from two"}, chats


class Writer:
    """A member that chats through failures like the browser client's outbox: a refused or unanswered
    message is sent again with the same id; a lost node means reconnecting to another one with
    `resume_from` the last seq seen."""

    def __init__(self, name, nodes, first):
        self.name, self.nodes, self.node = name, nodes, first
        self.acked, self.chats, self.last, self.c, self.joined_at = {}, [], 0, None, None

    async def connect(self, code):
        import websockets
        for attempt in range(100):
            node = self.nodes[(self.node + attempt) % len(self.nodes)]
            if not node.alive():
                continue
            try:
                self.c = await Client.connect(node, code)
                await self.c.send({"type": "join", "name": self.name, "client_id": self.name,
                                   **({"resume_from": self.last} if self.last else {})})
                while True:
                    m = await self.c.recv(timeout=5)
                    if m["type"] == "joined":
                        self.joined_at = self.joined_at or m["seq"]
                        self.last = max(self.last, m["seq"])
                        return
                    self.see(m)
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} could not reconnect")

    def see(self, m):
        if m["type"] == "chat":
            self.chats.append((m["seq"], m["id"]))
        if "seq" in m and m["type"] not in ("ack", "joined", "reset", "error"):
            self.last = max(self.last, m["seq"])

    async def say(self, code, mid):
        import websockets
        while True:
            try:
                await self.c.send({"type": "chat", "id": mid, "text": f"{self.name} {mid}"})
                while True:
                    m = await self.c.recv(timeout=3)
                    if m["type"] == "ack" and m["id"] == mid:
                        self.acked[mid] = m["seq"]
                        return
                    if m["type"] == "error" and m.get("ref") == mid:
                        assert m["code"] == "storage_unavailable", m
                        await asyncio.sleep(0.2)
                        break
                    self.see(m)
            except asyncio.TimeoutError:
                continue
            except (OSError, websockets.exceptions.WebSocketException):
                await self.connect(code)


def test_chaos_a_node_then_redis_killed_mid_traffic(cluster):
    """The issue's bar: clients of one session on three nodes; a node and then Redis killed with
    SIGKILL in the middle of traffic; every acknowledged message present once, in one seq order, on
    every node, and every client resumed exactly."""
    redis, nodes = cluster
    code = create_session(nodes[0])["code"]
    writers = [Writer(f"w{i}", nodes, i) for i in range(3)]

    async def main():
        for w in writers:
            await w.connect(code)
        async def chat(w):
            for k in range(60):
                await w.say(code, f"{w.name}-{k}")
                await asyncio.sleep(0.01)
        async def chaos():
            await asyncio.sleep(0.4)
            nodes[1].stop(signal.SIGKILL)
            await asyncio.sleep(0.6)
            redis.kill()
            await asyncio.sleep(1.0)
            redis.start()
        await asyncio.gather(chaos(), *(chat(w) for w in writers))
        # Let the last publications arrive, then read whatever is left.
        for w in writers:
            try:
                for m in await drain(w.c, 0.5):
                    w.see(m)
            except Exception:
                pass
    run(main())
    acked = {mid: seq for w in writers for mid, seq in w.acked.items()}
    assert len(acked) == 180
    assert len(set(acked.values())) == 180, "one seq per acknowledged message"
    for n in (nodes[0], nodes[2]):
        status, raw = api(n, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
        assert status == 200, raw
        chats = [e for e in map(json.loads, raw.decode().splitlines()) if e["type"] == "chat"]
        ids = [e["id"] for e in chats]
        assert len(ids) == len(set(ids)), "no message stored twice"
        assert {e["id"]: e["seq"] for e in chats} == acked
        seqs = [e["seq"] for e in chats]
        assert seqs == sorted(seqs)
    for w in writers:
        seqs = [s for s, _ in w.chats]
        assert seqs == sorted(set(seqs)), f"{w.name} got a chat twice or out of order"
        want = sorted(s for s in acked.values() if s > w.joined_at)
        assert sorted(set(seqs)) == want, f"{w.name} missed {sorted(set(want) - set(seqs))[:10]}"


def test_password_and_bad_urls(tmp_path):
    redis = Redis(tmp_path, password="s3cret@pw").start()
    try:
        url = f"redis://:s3cret%40pw@127.0.0.1:{redis.port}/2"
        a = Hub("--redis", url, "--auth", "open", data_dir=str(tmp_path / "a")).start()
        b = Hub(data_dir=str(tmp_path / "b"))
        b.args = ["--redis", url, "--auth", "open"]
        b.start()
        try:
            code = create_session(a)["code"]

            async def main():
                x = await Client.connect(b, code); await x.join("X", client_id="x")
                await x.send({"type": "chat", "id": "1", "text": "through AUTH and SELECT 2"})
                assert (await x.expect("ack"))["seq"] >= 1
            run(main())
        finally:
            a.stop(); b.stop()
        for bad, says in [(f"redis://:wrong@127.0.0.1:{redis.port}", "WRONGPASS"),
                          (f"rediss://127.0.0.1:{redis.port}", "TLS"), ("http://x", "redis://"),
                          (f"redis://127.0.0.1:{free_port()}", "Connection refused")]:
            p = subprocess.run([BINARY, "serve", "--port", "0", "--redis", bad,
                                "--data", str(tmp_path / "c")], capture_output=True, text=True, timeout=20)
            assert p.returncode != 0 and says in p.stderr, (bad, p.returncode, p.stderr[-500:])
            assert "wrong" not in p.stderr.replace("WRONGPASS", ""), "the password is never printed"
    finally:
        redis.stop()


def test_each_event_makes_its_webhook_once_across_the_cluster(cluster):
    """Webhook endpoints are the cluster's (registered once, on any node); each event's webhook goes out
    from the node whose append stored it, so the receiver gets it once (more: test_cluster_webhooks)."""
    from test_webhooks import Receiver
    redis, nodes = cluster
    rx = Receiver()
    try:
        status, _ = api(nodes[2], "POST", "/api/webhooks", {"url": rx.url(), "events": ["chat.created", "session.started"]})
        assert status == 201
        time.sleep(0.3)
        code = create_session(nodes[1])["code"]

        async def main():
            acks = {}
            for i, n in enumerate(nodes):
                c = await Client.connect(n, code)
                await c.join(f"W{i}", client_id=f"w{i}")
                for k in range(5):
                    await c.send({"type": "chat", "id": f"{i}-{k}", "text": "hook"})
                    acks[f"{i}-{k}"] = (await c.expect("ack"))["seq"]
            return acks
        acks = run(main())
        want = {f"{code}:{seq}" for seq in acks.values()}
        eventually(lambda: want <= {r["headers"]["webhook-id"] for r in rx.delivered()}, what="every chat webhook")
        time.sleep(1.0)
        ids = [r["headers"]["webhook-id"] for r in rx.delivered()]
        chat_ids = [i for i in ids if i in want]
        assert sorted(chat_ids) == sorted(want), "each chat once, from one node"
        assert sum(1 for r in rx.bodies() if r["type"] == "session.started") == 1
    finally:
        rx.close()


def test_a_redis_that_stops_answering_is_given_up_on_and_rejoined(cluster):
    """SIGSTOP: the socket stays open and nothing answers (a partition, a hung host). hiredis has no
    timeouts: the node's watchdog drops the link after 3 s, refuses durable messages meanwhile, and
    takes them again once Redis answers."""
    redis, nodes = cluster
    code = create_session(nodes[0])["code"]

    async def main():
        a = await Client.connect(nodes[0], code); await a.join("A", client_id="a")
        await drain(a, 0.2)
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.time()
            await a.send({"type": "chat", "id": "stalled", "text": "no answer"})
            m = await a.expect("error", timeout=15)
            assert m["code"] == "storage_unavailable" and m["ref"] == "stalled", m
            assert time.time() - started < 10, "given up on within the watchdog's time"
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        for attempt in range(40):
            await a.send({"type": "chat", "id": f"back{attempt}", "text": "answered again"})
            m = await a.recv(timeout=10)
            while m["type"] not in ("ack", "error"):
                m = await a.recv(timeout=10)
            if m["type"] == "ack":
                break
            await asyncio.sleep(0.25)
        assert m["type"] == "ack", m
    run(main())


# Runs across the cluster: the append script checks each event's transition and numbers it; every
# node's board applies every run event it hears (chub:runs) and reads up what it missed.

RUN_KEY = "cluster-admin-key-0123"


def publish_run(node, run_id, body, headers=None):
    return api(node, "POST", f"/api/runs/{run_id}/events", body, {"X-API-Key": RUN_KEY, **(headers or {})})


async def watch(node, channel, resume_from=None):
    import websockets
    ws = await websockets.connect(f"{node.url}/watch?key={RUN_KEY}", subprotocols=["collabhub.v1"], close_timeout=1)
    c = Client(ws)
    msg = {"type": "subscribe", "channel": channel}
    if resume_from is not None:
        msg["resume_from"] = resume_from
    await c.send(msg)
    return c


async def run_events(w, want, timeout=10):
    """The next `want` run_event messages a watcher gets (anything else is a failure)."""
    got = []
    while len(got) < want:
        m = await w.recv(timeout=timeout)
        assert m["type"] == "run_event", m
        got.append(m)
    return got


def test_a_run_published_on_one_node_is_watched_listed_and_resumed_on_the_others(cluster):
    redis, nodes = cluster
    code = create_session(nodes[0], title="runs")["code"]

    async def main():
        # Watchers on nodes 2 and 3 before the run exists: a pending snapshot, then every event.
        w1, w2 = await watch(nodes[1], "run:c1"), await watch(nodes[2], "run:c1")
        for w in (w1, w2):
            snap = await w.recv()
            assert snap["type"] == "run_snapshot" and snap["seq"] == 0 and snap["run"]["status"] == "pending"
        dash = await watch(nodes[2], "dashboard:team-c")
        assert (await dash.recv())["type"] == "dashboard"
        # A member of the run's session on node 3: each status change reaches the session once.
        member = await Client.connect(nodes[2], code)
        await member.join("Ann", client_id="ann")
        status, body = publish_run(nodes[0], "c1", {"type": "started", "owner": "team-c", "name": "deploy",
                                                     "session": code})
        assert status == 202 and body["seq"] == 1, body
        for i in range(10):
            status, body = publish_run(nodes[i % 3], "c1", {"type": "log", "line": f"line {i}"})
            assert status == 202 and body["seq"] == i + 2, body
        for w in (w1, w2):
            got = await run_events(w, 11)
            assert [m["seq"] for m in got] == list(range(1, 12))
            assert [m.get("line") for m in got[1:]] == [f"line {i}" for i in range(10)]
        started = await dash.recv()
        assert started["type"] == "run_status" and started["run"]["id"] == "c1" and started["run"]["status"] == "running"
        m = await member.expect("run")
        assert m["event"] == "started" and m["run"]["id"] == "c1"
        # Every node answers for the run, at once (the log in Redis is the run).
        publish_run(nodes[1], "c1", {"type": "step_started", "step": "build"})
        for n in nodes:
            status, state = api(n, "GET", "/api/runs/c1")
            assert status == 200, state
            assert state["run"]["status"] == "running" and state["run"]["owner"] == "team-c"
            assert state["run"]["steps"] == [dict(state["run"]["steps"][0], name="build", status="running")]
            assert [e["seq"] for e in state["events"]] == list(range(1, 13))
        for n in nodes:
            listing = eventually(lambda: (lambda r: r[1]["runs"] and r[1]["runs"][0]["seq"] == 12 and r[1])(
                api(n, "GET", "/api/runs?owner=team-c")), what="the run listed on every node")
            assert [r["id"] for r in listing["runs"]] == ["c1"] and listing["runs"][0]["status"] == "running"
            running = api(n, "GET", "/api/runs?owner=team-c&status=running")[1]
            assert [r["id"] for r in running["runs"]] == ["c1"]
            assert api(n, "GET", "/api/runs?owner=team-c&status=succeeded")[1]["runs"] == []
        assert (await run_events(w1, 1))[0]["seq"] == 12
        # The watcher of node 2 goes; events are published on nodes 1 and 3 meanwhile; it comes back on
        # node 3 and resumes from its last seq: exactly what it missed, then `subscribed`.
        await w1.ws.close()
        for i in range(4):
            publish_run(nodes[0 if i % 2 else 2], "c1", {"type": "log", "line": f"missed {i}"})
        publish_run(nodes[2], "c1", {"events": [{"type": "step_completed", "step": "build"},
                                                {"type": "completed", "outcome": "succeeded"}]})
        again = await watch(nodes[2], "run:c1", resume_from=12)
        missed = await run_events(again, 6)
        assert [m["seq"] for m in missed] == list(range(13, 19))
        assert [m.get("line") for m in missed[:4]] == [f"missed {i}" for i in range(4)]
        assert (await again.recv())["type"] == "subscribed"
        # A snapshot on a node that never watched the run shows its final state.
        fresh = await watch(nodes[1], "run:c1")
        snap = await fresh.recv()
        assert snap["type"] == "run_snapshot" and snap["seq"] == 18 and snap["run"]["status"] == "succeeded"
        # The dashboard saw each status change once; the session got its run messages once each.
        statuses = [m for m in await drain(dash, 0.5) if m["type"] == "run_status"]
        assert [m["run"]["status"] for m in statuses] == ["running", "running", "succeeded"], statuses
        runs_seen = [m for m in await drain(member, 0.5) if m["type"] == "run"]
        assert [m["event"] for m in runs_seen] == ["step_started", "step_completed", "completed"], runs_seen
    run(main())


TRANSITIONS = [
    [{"type": "step_started", "step": "a"}],
    [{"type": "started", "owner": "o"}, {"type": "started", "owner": "o"}],
    [{"type": "started", "owner": "o"}, {"type": "step_completed", "step": "a"}],
    [{"type": "started", "owner": "o"}, {"type": "step_started", "step": "a"}, {"type": "step_started", "step": "a"}],
    [{"type": "started", "owner": "o"}, {"type": "step_started", "step": "a"},
     {"type": "completed", "outcome": "succeeded"}],
    [{"type": "started", "owner": "o"}, {"type": "paused"}, {"type": "step_started", "step": "a"}],
    [{"type": "started", "owner": "o"}, {"type": "paused"}, {"type": "completed", "outcome": "succeeded"}],
    [{"type": "started", "owner": "o"}, {"type": "resumed"}],
    [{"type": "started", "owner": "o"}, {"type": "step_started", "step": "a"}, {"type": "step_failed", "step": "a"},
     {"type": "step_failed", "step": "a"}],
    [{"type": "started", "owner": "o"}, {"type": "paused"}, {"type": "log", "line": "x"}, {"type": "resumed"},
     {"type": "completed", "outcome": "cancelled"}, {"type": "log", "line": "late"}],
    [{"type": "started", "owner": "o"}, {"type": "step_started", "step": "a"}, {"type": "step_started", "step": "b"},
     {"type": "step_completed", "step": "a"}, {"type": "completed", "outcome": "succeeded"}],
]


def test_run_transitions_are_refused_on_every_node_as_on_one(cluster, tmp_path):
    """Each sequence, one event per request from the three nodes in turn, gets the same answers (status,
    code, message, seq) as on a single node; a refused batch stores nothing."""
    redis, nodes = cluster
    single = Hub("--admin-key", RUN_KEY, data_dir=str(tmp_path / "single")).start()
    try:
        for i, events in enumerate(TRANSITIONS):
            for k, e in enumerate(events):
                one = publish_run(single, f"t{i}", e)
                many = publish_run(nodes[k % 3], f"t{i}", e)
                assert one[0] == many[0], (i, k, one, many)
                if one[0] == 409:
                    assert many[1]["error"] == one[1]["error"], (i, k, one, many)
                    assert one[1]["error"]["code"] == "illegal_transition"
                else:
                    assert one[1] == many[1], (i, k, one, many)
            def shape(r):
                return (r["status"], r["owner"], r["seq"], r["log_count"], [(s["name"], s["status"]) for s in r["steps"]])
            status, body = api(single, "GET", f"/api/runs/t{i}")
            for n in nodes:
                got = api(n, "GET", f"/api/runs/t{i}")
                assert got[0] == status, (i, got)
                if status == 200:
                    assert shape(got[1]["run"]) == shape(body["run"]), (i, n.port)
                else:
                    assert got[1]["error"]["code"] == body["error"]["code"] == "unknown_run"
        # A batch with an illegal event stores nothing, from any node; a retried id is a duplicate.
        publish_run(nodes[0], "tb", {"type": "started", "owner": "o"}, {"Idempotency-Key": "s1"})
        status, body = publish_run(nodes[1], "tb", {"events": [{"type": "step_started", "step": "x"},
                                                               {"type": "step_completed", "step": "y"}]})
        assert status == 409 and body["error"]["message"] == "step y completed but never started"
        status, body = publish_run(nodes[2], "tb", {"type": "started", "owner": "o"}, {"Idempotency-Key": "s1"})
        assert status == 202 and body["events"] == [{"seq": 1, "duplicate": True}]
        for n in nodes:
            assert [e["seq"] for e in api(n, "GET", "/api/runs/tb")[1]["events"]] == [1]
    finally:
        single.stop()


def test_runs_survive_redis_killed_and_restarted(cluster):
    """Redis SIGKILLed mid-run (AOF, fsync always): publishing answers storage_unavailable, never success;
    after the restart every acknowledged event is there under its seq, the numbering goes on, and the
    watchers on other nodes got every acknowledged event once, in order."""
    redis, nodes = cluster

    async def main():
        w = await watch(nodes[1], "run:k1")
        assert (await w.recv())["type"] == "run_snapshot"
        assert publish_run(nodes[0], "k1", {"type": "started", "owner": "team-k"})[0] == 202
        acked = {1: "started"}
        refused = 0
        for i in range(30):
            if i == 15:
                redis.kill()
            status, body = publish_run(nodes[0], "k1", {"type": "log", "line": f"l{i}", "id": f"l{i}"})
            if status == 202:
                acked[body["seq"]] = f"l{i}"
            else:
                assert status == 503 and body["error"]["code"] == "storage_unavailable", body
                refused += 1
        assert refused >= 1 and len(acked) >= 15
        redis.start()
        # Sent again until Redis is back: stored once (ids), numbered after what was acknowledged.
        def resend():
            status, body = publish_run(nodes[2], "k1", {"type": "log", "line": "after", "id": "after"})
            return body if status == 202 else None
        body = eventually(resend, timeout=20, interval=0.25, what="publishing after Redis restarted")
        assert body["seq"] == max(acked) + 1
        acked[body["seq"]] = "after"
        state = api(nodes[1], "GET", "/api/runs/k1")[1]
        stored = {e["seq"]: e.get("line", e.get("event")) for e in state["events"]}
        for seq, what in acked.items():
            assert stored.get(seq) == what, f"acknowledged {what} (seq {seq}) is missing after Redis was killed"
        assert state["run"]["status"] == "running"
        got = await run_events(w, len(acked), timeout=20)
        assert [m["seq"] for m in got] == sorted(acked)
    run(main())


def test_a_run_goes_on_when_redis_loses_its_data(cluster):
    """Redis restarted without its data: the run's state machine and numbering go on from what the
    nodes knew (the appending node seeds the new log), and watchers elsewhere get the next seq."""
    redis, nodes = cluster

    async def main():
        publish_run(nodes[0], "d1", {"events": [{"type": "started", "owner": "team-d"},
                                                {"type": "step_started", "step": "s"}]})
        w = await watch(nodes[2], "run:d1")
        snap = await w.recv()
        assert snap["seq"] == 2 and snap["run"]["steps"][0]["status"] == "running"
        redis.kill()
        for f in redis.dir.glob("appendonly*"):
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        redis.start()
        def again():
            status, body = publish_run(nodes[0], "d1", {"type": "step_completed", "step": "s"})
            return (status, body) if status != 503 else None
        status, body = eventually(again, timeout=20, interval=0.25, what="publishing after Redis lost its data")
        assert status == 202 and body["seq"] == 3, body
        m = await w.recv(timeout=10)
        assert m["type"] == "run_event" and m["seq"] == 3 and m["event"] == "step_completed"
        status, body = publish_run(nodes[1], "d1", {"type": "step_completed", "step": "s"})
        assert status == 409 and body["error"]["message"] == "step s completed but never started"
        status, body = publish_run(nodes[1], "d1", {"type": "completed", "outcome": "succeeded"})
        assert status == 202 and body["seq"] == 4
        assert (await w.recv(timeout=10))["seq"] == 4
    run(main())


# Smaller gaps of issue 29.

def node_ids(redis):
    return set(redis_cli(redis, "SMEMBERS", "chub:nodes").split())


def test_only_a_node_really_declared_lost_says_so(cluster):
    """A fresh node's first SADD to chub:nodes adds it: that is its announcement, not a return from the
    dead. A node stopped past the heartbeat TTL is buried by a survivor; when it runs again it says so."""
    redis, nodes = cluster
    eventually(lambda: len(node_ids(redis)) == 3, what="three nodes announced")
    before = node_ids(redis)
    # The survivors must have beaten for a TTL and a second before they declare anyone dead.
    time.sleep(6.5)
    nodes[2].proc.send_signal(signal.SIGSTOP)
    try:
        eventually(lambda: len(node_ids(redis)) == 2, timeout=20, what="node 2 declared lost")
    finally:
        nodes[2].proc.send_signal(signal.SIGCONT)
    eventually(lambda: node_ids(redis) == before, timeout=10, what="node 2 back in chub:nodes")
    logs = []
    for n in nodes:
        n.stop()
        logs.append(n.proc.stdout.read())
    assert "was declared lost" not in logs[0] and "was declared lost" not in logs[1], logs[:2]
    assert "was declared lost" in logs[2], logs[2][-3000:]


def test_the_redis_host_as_a_name_and_a_reconnect_resolved_off_the_loop(tmp_path):
    """`--redis redis://localhost:PORT`: the name is resolved at start-up and, after Redis drops every
    connection, again on a worker thread (a debug build asserts it is not a loop thread): chat crosses
    nodes before and after."""
    redis = Redis(tmp_path).start()
    url = f"redis://localhost:{redis.port}"
    nodes = [Hub("--redis", url, "--admin-key", "cluster-admin-key-0123", data_dir=str(tmp_path / f"node{i}")).start() for i in range(2)]
    try:
        code = create_session(nodes[0], title="by name")["code"]

        async def chat_crosses(tag):
            a = await Client.connect(nodes[0], code); await a.join("A", client_id="a")
            b = await Client.connect(nodes[1], code); await b.join("B", client_id="b")
            await drain(a, 0.3)
            await b.send({"type": "chat", "id": tag, "text": tag})
            got = await collect_chat(a, 1)
            assert got[0]["text"] == tag, got
            await a.close(); await b.close()

        run(chat_crosses("before"))
        redis.kill()
        time.sleep(0.5)
        redis.start()
        time.sleep(0.5)

        async def again():
            for attempt in range(40):
                try:
                    return await chat_crosses(f"after{attempt}")
                except (AssertionError, asyncio.TimeoutError):
                    await asyncio.sleep(0.25)
            raise AssertionError("chat did not cross after the reconnect")
        run(again())
        for n in nodes:
            assert n.alive(), n.output()
    finally:
        for n in nodes:
            n.stop()
        redis.stop()
    for n in nodes:
        out = n.proc.stdout.read()
        assert "resolved on a loop thread" not in out and "redis connection back" in out, out[-3000:]


def test_directory_publications_missed_while_the_subscription_was_down_are_read_again(cluster):
    """Node 2 is stopped, Redis drops every subscriber connection, and a session is created on node 0
    meanwhile: node 2 never got its publication. After it resubscribes it reads the directory again, so
    it knows the session (the API answers for it) without anyone joining it there."""
    redis, nodes = cluster
    known = create_session(nodes[0], title="before")["code"]
    eventually(lambda: api(nodes[2], "GET", f"/api/sessions/{known}")[0] == 200, what="node 2 to know a session")
    nodes[2].proc.send_signal(signal.SIGSTOP)
    try:
        redis_cli(redis, "CLIENT", "KILL", "TYPE", "pubsub")
        missed = create_session(nodes[0], title="made while node 2 was away")["code"]
        ended = known
        status, body = api(nodes[0], "POST", f"/api/sessions/{ended}/end", {"reason": "done"})
        assert status == 202, body
    finally:
        nodes[2].proc.send_signal(signal.SIGCONT)
    status, body = eventually(lambda: (r := api(nodes[2], "GET", f"/api/sessions/{missed}"))[0] == 200 and r,
                              what="node 2 to read the missed session")
    assert body["title"] == "made while node 2 was away", body
    eventually(lambda: api(nodes[2], "GET", f"/api/sessions/{ended}")[1].get("ended_at"),
               what="node 2 to read the missed end")
