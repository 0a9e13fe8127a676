"""Cluster mode on a Redis Cluster (`--redis redis+cluster://…`): a three-master, three-replica Redis
Cluster made in the test (six real redis-servers with `--cluster-enabled yes` on loopback ports, joined by
`redis-cli --cluster create`), three hub nodes on it. The main behaviours of test_cluster.py run here on the
cluster (their bodies imported, with this file's `cluster` fixture); then what only a cluster has: sessions
spread over the shards, sharded pub/sub, a slot moved under traffic (MOVED, `sunsubscribe`), a shard with
no master (`storage_unavailable` for its sessions only), a master killed and its replica promoted."""
import asyncio
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BINARY, Hub
from hubclient import Client, api, create_session, eventually, run
from test_cluster import free_port, Redis, collect_chat, drain
# The bodies of test_cluster.py's main multi-node tests: collected here, they run with this file's
# `cluster` fixture (a Redis Cluster) as they run there with one Redis.
from test_cluster import (  # noqa: F401
    test_one_seq_order_across_three_nodes,
    test_ephemeral_traffic_crosses_nodes,
    test_node_killed_clients_resume_exactly_elsewhere,
    test_session_created_on_one_node_joins_on_another_and_ends_everywhere,
    test_a_deletion_rewrites_the_message_and_its_edits_in_redis_for_every_node,
    test_idempotency_keys_of_different_members_never_collide,
    test_a_run_published_on_one_node_is_watched_listed_and_resumed_on_the_others,
    test_run_transitions_are_refused_on_every_node_as_on_one,
    test_only_a_node_really_declared_lost_says_so,
)
from test_cluster_control import (  # noqa: F401
    test_run_control_reaches_the_publisher_socket_on_another_node,
    test_a_host_removes_a_member_held_by_other_nodes,
    test_the_members_api_removes_a_member_from_a_node_it_has_no_connection_to,
    test_run_listings_read_their_writes_across_nodes,
)
from test_cluster_members import (  # noqa: F401
    test_colours_are_distinct_session_wide_and_every_node_lists_everyone,
    test_max_participants_holds_across_nodes_under_racing_joins,
)

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None or shutil.which("redis-cli") is None,
                                reason="redis-server is not installed (scripts/deps.sh test installs it)")


def cli(port, *args, follow=False):
    return subprocess.run(["redis-cli", *(["-c"] if follow else []), "-p", str(port), *map(str, args)],
                          capture_output=True, text=True, timeout=10).stdout.strip()


def cluster_port():
    """A free loopback port whose cluster bus port (port + 10000) is free as well."""
    import socket
    while True:
        p = free_port()
        if p + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 10000))
            return p
        except OSError:
            continue


class RedisCluster:
    """Six redis-servers (AOF, an fsync before every reply) made one Redis Cluster of three masters, each
    with a replica. `port` is the seed the hubs are given."""
    cluster = True

    def __init__(self, base, masters=3, replicas=1, full_coverage=True):
        self.base = base
        self.ports = [cluster_port() for _ in range(masters * (1 + replicas))]
        self.replicas = replicas
        self.full_coverage = full_coverage
        self.procs = {}

    def start_node(self, port):
        d = self.base / f"r{port}"
        d.mkdir(exist_ok=True)
        cmd = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--cluster-enabled", "yes",
               "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1500", "--appendonly", "yes",
               "--appendfsync", "always", "--save", "", "--daemonize", "no", "--logfile", str(d / "redis.log"),
               "--cluster-require-full-coverage", "yes" if self.full_coverage else "no"]
        self.procs[port] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(lambda: cli(port, "PING") == "PONG", what=f"redis-server {port} to answer")

    def start(self):
        for p in self.ports:
            self.start_node(p)
        out = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                              "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        self.wait_ok()
        # Each replica has its master's data (a replica that never synchronised is not promoted).
        def synced():
            roles = [cli(p, "INFO", "replication") for p in self.ports]
            return sum("role:slave" in r and "master_link_status:up" in r for r in roles) == len(self.ports) // (
                1 + self.replicas) * self.replicas
        eventually(synced, timeout=30, what="every replica synchronised")
        return self

    def wait_ok(self, timeout=30):
        def ok():
            alive = [p for p, proc in self.procs.items() if proc.poll() is None]
            return all("cluster_state:ok" in cli(p, "CLUSTER", "INFO") for p in alive)
        eventually(ok, timeout=timeout, what="cluster_state:ok on every node")

    @property
    def port(self):
        return self.ports[0]

    @property
    def url(self):
        return f"redis+cluster://127.0.0.1:{self.port}"

    def nodes(self, via=None):
        """`CLUSTER NODES` as {port: (id, role, slots)} of the nodes that are up."""
        via = via or next(p for p, proc in self.procs.items() if proc.poll() is None)
        out = {}
        for line in cli(via, "CLUSTER", "NODES").splitlines():
            f = line.split()
            if "fail" in f[2] or "noaddr" in f[2]:
                continue
            port = int(f[1].split("@")[0].rsplit(":", 1)[1])
            out[port] = (f[0], "master" if "master" in f[2] else "replica", f[8:])
        return out

    def masters(self):
        return sorted(p for p, (_, role, _) in self.nodes().items() if role == "master")

    def alive(self):
        return next(p for p, proc in self.procs.items() if proc.poll() is None)

    def slot(self, key):
        return int(cli(self.alive(), "CLUSTER", "KEYSLOT", key))

    def master_of(self, key):
        """The port of the master serving `key`'s slot (the slots CLUSTER NODES lists for each master)."""
        slot = self.slot(key)
        for port, (_, role, slots) in self.nodes().items():
            for r in slots:
                if role != "master" or r.startswith("["):
                    continue
                lo, _, hi = r.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return port
        return None

    def publishes(self):
        """PUBLISH and SPUBLISH calls over every node (INFO commandstats)."""
        n = 0
        for p in self.masters():
            for line in cli(p, "INFO", "commandstats").splitlines():
                if line.startswith(("cmdstat_publish:", "cmdstat_spublish:")):
                    n += int(line.split("calls=")[1].split(",")[0])
        return n

    def calls(self, port, command):
        for line in cli(port, "INFO", "commandstats").splitlines():
            if line.startswith(f"cmdstat_{command}:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def flush(self):
        for p in self.masters():
            cli(p, "FLUSHALL")

    def kill(self, port=None):
        """SIGKILL of one node, or of every node (test_cluster's `redis.kill()`: Redis unreachable)."""
        for p in [port] if port else list(self.procs):
            self.procs[p].send_signal(signal.SIGKILL)
            self.procs[p].wait()

    def heal(self):
        """A cluster a test killed nodes of is made again, fresh (new ports, new directories)."""
        if all(proc.poll() is None for proc in self.procs.values()):
            return
        self.stop()
        self.base = self.base / f"again{time.monotonic_ns()}"
        self.base.mkdir()
        self.ports = [cluster_port() for _ in self.ports]
        self.procs = {}
        self.start()

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    rc = RedisCluster(tmp_path_factory.mktemp("rcluster")).start()
    yield rc
    rc.stop()


def start_nodes(rc, tmp_path, n=3, *extra):
    return [Hub("--redis", rc.url, "--admin-key", "cluster-admin-key-0123", "--webhook-allow-private", *extra,
                data_dir=str(tmp_path / f"node{i}")).start() for i in range(n)]


@pytest.fixture
def cluster(redis_cluster, tmp_path, request):
    """test_cluster.py's fixture on the Redis Cluster: (the cluster, three hub nodes); every test starts
    from empty shards. The imported tests of test_cluster_members.py and test_cluster_control.py get their
    module's `--reconnect-grace 1`."""
    redis_cluster.heal()
    redis_cluster.flush()
    extra = ["--reconnect-grace", "1"] if request.function.__module__ in ("test_cluster_members",
                                                                         "test_cluster_control") else []
    nodes = start_nodes(redis_cluster, tmp_path, 3, *extra)
    yield redis_cluster, nodes
    for n in nodes:
        n.stop()


def sessions_on_every_master(rc, node, per=1):
    """Creates sessions until each master serves `per` of them; {master port: [codes]}."""
    by = {p: [] for p in rc.masters()}
    for _ in range(200):
        if all(len(v) >= per for v in by.values()):
            break
        code = create_session(node)["code"]
        m = rc.master_of("{" + code + "}:m")
        if len(by[m]) < per:
            by[m].append(code)
    assert all(len(v) >= per for v in by.values()), by
    return by


async def members(nodes, code):
    """A sender and a watcher on every node."""
    cs, ws = [], []
    for i, n in enumerate(nodes):
        c = await Client.connect(n, code)
        await c.join(f"S{i}", client_id=f"s{i}")
        w = await Client.connect(n, code)
        await w.join(f"W{i}", client_id=f"w{i}")
        cs.append(c)
        ws.append(w)
    return cs, ws


async def chat_round(senders, watchers, code, tag, count=5):
    """Each sender sends `count` messages; every watcher gets them all, in one seq order. Returns the seqs."""
    for c in watchers:
        await drain(c, 0.1)
    for i, c in enumerate(senders):
        for k in range(count):
            await c.send({"type": "chat", "id": f"{tag}-{i}-{k}", "text": f"{tag} {i} {k}"})
    for c in senders:
        acks = 0
        while acks < count:
            m = await c.recv(timeout=10)
            assert m["type"] != "error", m
            acks += m["type"] == "ack"
    orders = []
    for w in watchers:
        got = await collect_chat(w, count * len(senders))
        orders.append([m["seq"] for m in got])
    assert all(o == orders[0] for o in orders), orders
    assert orders[0] == sorted(orders[0]) and len(set(orders[0])) == count * len(senders), orders[0]
    return orders[0]


def test_sessions_spread_over_the_shards_and_use_sharded_pub_sub(cluster):
    rc, nodes = cluster
    by = sessions_on_every_master(rc, nodes[0])
    before = {p: rc.calls(p, "spublish") for p in by}

    async def main():
        for master, (code,) in by.items():
            cs, ws = await members(nodes, code)
            await chat_round(cs, ws, code, f"s{master}")
            for c in cs + ws:
                await c.close()
    run(main())
    for master, (code,) in by.items():
        # The session's keys are on its own shard only (redis-cli without -c: no redirection followed).
        assert cli(master, "EXISTS", "{" + code + "}:m", "{" + code + "}:log") == "2"
        assert cli(master, "HGET", "{" + code + "}:m", "seq") not in ("", "0")
        for other in by:
            if other != master:
                assert cli(other, "EXISTS", "{" + code + "}:m").startswith("MOVED"), other
        # Its events were published on its shard (SPUBLISH from the append scripts and the relays).
        assert rc.calls(master, "spublish") > before[master], master
    # Each master holds a different set of sessions.
    assert len({tuple(v) for v in by.values()}) == 3


async def send_until_acked(c, mid, timeout=30):
    """Sends a chat message under `mid` until it is acknowledged, again after each `storage_unavailable`
    (as the client's outbox does: the id makes a resend of a stored message a duplicate, never a second
    copy). Returns how many times it was refused."""
    refused, deadline = 0, time.time() + timeout
    while True:
        assert time.time() < deadline, f"{mid} never acknowledged"
        await c.send({"type": "chat", "id": mid, "text": mid})
        while True:
            m = await c.recv(timeout=10)
            assert m["type"] != "reset", m
            if m["type"] == "ack" and m.get("id") == mid:
                return refused
            if m["type"] == "error":
                assert m["code"] == "storage_unavailable", m
                refused += 1
                await asyncio.sleep(0.05)
                break


def move_slot(rc, slot, src, dst):
    """Moves `slot` from master `src` to master `dst` as `redis-cli --cluster reshard` does: IMPORTING,
    MIGRATING, MIGRATE of its keys, then SETSLOT NODE on every master."""
    ids = {p: v[0] for p, v in rc.nodes().items()}
    assert cli(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src]) == "OK"
    assert cli(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst]) == "OK"
    while True:
        keys = cli(src, "CLUSTER", "GETKEYSINSLOT", slot, 100).split()
        if not keys:
            break
        out = cli(src, "MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
        assert out in ("OK", "NOKEY"), out
    for p in rc.masters():
        cli(p, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])


def test_a_slot_moved_under_traffic_is_followed(cluster):
    """The session's slot moves to another master while members chat: the nodes' maps are stale, Redis
    answers MOVED (and ASK during the migration), the subscribers get `sunsubscribe` and subscribe on the
    new shard. Every message is acknowledged once, one seq order, every member gets everything live."""
    rc, nodes = cluster
    code = create_session(nodes[0])["code"]
    key = "{" + code + "}:m"
    slot, src = rc.slot(key), rc.master_of(key)
    dst = next(p for p in rc.masters() if p != src)

    async def main():
        cs, ws = await members(nodes, code)
        first = await chat_round(cs, ws, code, "before")
        # Traffic on its way while the slot moves: senders keep sending, each message resent under its id
        # until acknowledged (as the client's outbox does).
        moving = asyncio.get_running_loop().run_in_executor(None, move_slot, rc, slot, src, dst)
        sent = 0
        while not moving.done() or sent < 30:
            await send_until_acked(cs[sent % 3], f"mid-{sent}")
            sent += 1
        await moving
        assert rc.master_of(key) == dst
        after = await chat_round(cs, ws, code, "after")
        assert min(after) > max(first)
        # The whole log, as every node reads it: one seq order with no gap and each message once.
        for n in nodes:
            status, t = api(n, "GET", f"/api/sessions/{code}/transcript?limit=1000")
            assert status == 200, t
            chats = [e for e in t["events"] if e["type"] == "chat"]
            texts = [e["text"] for e in chats]
            assert len(texts) == len(set(texts)) == 15 + sent + 15, texts
            assert [e["seq"] for e in chats] == sorted(e["seq"] for e in chats)
    run(main())
    # Every node learned the new map (from a MOVED, an ASK or `sunsubscribe`: nothing else told it).
    for n in nodes:
        n.stop()
        out = n.output()
        assert "redis cluster slot" in out and str(dst) in out, out[-3000:]
    # The keys moved: the new shard has them, the old one redirects.
    assert cli(dst, "HGET", key, "seq") not in ("", "0")
    assert cli(src, "EXISTS", key).startswith("MOVED")


def test_a_subscription_refused_during_a_move_is_asked_again(cluster):
    """The old master has let the slot go (SETSLOT NODE there: it unsubscribes every node from the session's
    channel) while the new one still imports it and refuses SSUBSCRIBE with MOVED. Each node asks again (after
    reading the slot map again, at most ten times a second) until the new master serves the slot. The bug this
    catches: a refusal from the master the node's map named left the channel counted as placed, never asked for
    again, and that node's members got none of the session's events from other nodes."""
    rc, nodes = cluster
    # A session on the master of slot 0: the nodes read the slot map from that master first, and once it has
    # let the slot go it names the new master, which still refuses.
    first_master = next(p for p, (_, role, slots) in rc.nodes().items()
                        if role == "master" and any(r.split("-")[0] == "0" for r in slots))
    code = next(c for c in (create_session(nodes[0])["code"] for _ in range(100))
                if rc.master_of("{" + c + "}:m") == first_master)
    key = "{" + code + "}:m"
    slot, src = rc.slot(key), first_master
    dst = next(p for p in rc.masters() if p != src)
    ids = {p: v[0] for p, v in rc.nodes().items()}

    async def main():
        cs, ws = await members(nodes, code)
        first = await chat_round(cs, ws, code, "before")
        assert cli(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src]) == "OK"
        assert cli(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst]) == "OK"
        while keys := cli(src, "CLUSTER", "GETKEYSINSLOT", slot, 100).split():
            assert cli(src, "MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys) in ("OK", "NOKEY")
        assert cli(src, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst]) == "OK"
        # Every node was told to leave; wherever it asks now, it is refused. Held long enough for each to be.
        await asyncio.sleep(2)
        for p in rc.masters():
            if p != src:
                cli(p, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
        after = await chat_round(cs, ws, code, "after")
        assert min(after) > max(first)
    run(main())


def test_bad_cluster_urls_are_refused_without_the_password(redis_cluster, tmp_path):
    single = Redis(tmp_path).start()
    try:
        for bad, says in [
            (f"redis+cluster://127.0.0.1:{redis_cluster.port}/3", "only database 0"),
            (f"redis+cluster://:hunter2secret@127.0.0.1:{single.port}", "AUTH"),
            (f"redis+cluster://127.0.0.1:{single.port}", "not a Redis Cluster node"),
            (f"redis+cluster://127.0.0.1:{free_port()}", "Connection refused"),
        ]:
            p = subprocess.run([BINARY, "serve", "--port", "0", "--redis", bad, "--data", str(tmp_path / "d")],
                               capture_output=True, text=True, timeout=20)
            out = p.stdout + p.stderr
            assert p.returncode != 0 and says in out, (bad, out)
            assert "hunter2secret" not in out, out
    finally:
        single.stop()


@pytest.fixture
def own_cluster(tmp_path):
    """A Redis Cluster for one test that breaks it (masters killed), slots served by the live masters
    only (`cluster-require-full-coverage no`, as a deployment that wants the other shards to go on sets)."""
    rc = RedisCluster(tmp_path, full_coverage=False).start()
    nodes = start_nodes(rc, tmp_path)
    yield rc, nodes
    for n in nodes:
        n.stop()
    rc.stop()


def test_a_shard_without_a_master_is_storage_unavailable_for_its_sessions_only(own_cluster):
    """A master and its replica killed: that shard's slots are served by nobody. Its session's messages are
    refused with `storage_unavailable` (never acknowledged); the sessions on the other shards go on, on
    every node."""
    rc, nodes = own_cluster
    by = sessions_on_every_master(rc, nodes[0])
    down = next(p for p in by if p != rc.port)
    replica = next(p for p, (_, role, _) in rc.nodes().items()
                   if role == "replica" and cli(p, "INFO", "replication").find(f"master_port:{down}") >= 0)
    rc.kill(replica)
    rc.kill(down)

    async def main():
        for master, (code,) in by.items():
            cs, ws = await members(nodes, code) if master != down else (None, None)
            if master == down:
                # The join (its member is written in the shard) or, if the node had it, the message.
                c = await Client.connect(nodes[1], code)
                await c.send({"type": "join", "name": "Lost", "client_id": "lost"})
                while True:
                    m = await c.recv(timeout=10)
                    assert m["type"] != "ack", m
                    if m["type"] == "joined":
                        await c.send({"type": "chat", "id": "x", "text": "into the void"})
                    if m["type"] == "error":
                        assert m["code"] == "storage_unavailable", m
                        break
                await c.close()
            else:
                await chat_round(cs, ws, code, f"up{master}")
                for c in cs + ws:
                    await c.close()
    run(main())
    for n in nodes:
        assert n.alive(), n.output()
        assert api(n, "GET", "/healthz")[0] == 200


def test_a_master_killed_mid_traffic_its_replica_promoted_and_followed(own_cluster):
    """SIGKILL of the master of a session's shard while members on three nodes chat: its replica is
    promoted (the cluster's own failover), the nodes read the new map (their connections to the dead
    master failed), subscribe on the new master and go on. Messages refused meanwhile are resent under
    their ids; every acknowledged message is in the log once, in one seq order, and no client sees a reset
    (nothing acknowledged was lost: replication on loopback kept up; CLUSTER.md says what an
    acknowledgement promises across a failover)."""
    rc, nodes = own_cluster
    # A session of the seed's shard: the node-wide subscribers (the directory, runs, keys) were on the seed
    # too, and follow to another node.
    code = None
    for _ in range(100):
        code = create_session(nodes[0])["code"]
        if rc.master_of("{" + code + "}:m") == rc.port:
            break
    key = "{" + code + "}:m"
    victim = rc.master_of(key)

    async def main():
        cs, ws = await members(nodes, code)
        first = await chat_round(cs, ws, code, "before")
        acked = []
        refused = 0
        for k in range(60):
            if k == 10:
                rc.kill(victim)
            refused += await send_until_acked(cs[k % 3], f"mid-{k}", timeout=40)
            acked.append(f"mid-{k}")
        assert refused > 0, "the kill was not noticed"
        promoted = rc.master_of(key)
        assert promoted not in (None, victim)
        after = await chat_round(cs, ws, code, "after")
        assert min(after) > max(first)
        for w in ws:
            rest = await drain(w, 0.3)
            assert not [m for m in rest if m["type"] == "reset"], rest
        # Node-wide pub/sub goes on: a run published on node 1 is watched live on node 2 (`chub:runs`).
        from test_cluster import publish_run, watch, run_events
        w = await watch(nodes[1], "run:after-failover")
        assert (await w.recv())["type"] == "run_snapshot"
        status, body = publish_run(nodes[0], "after-failover", {"type": "started", "owner": "team-f"})
        assert status == 202, body
        for i in range(3):
            assert publish_run(nodes[2], "after-failover", {"type": "log", "line": f"l{i}"})[0] == 202
        assert [m["seq"] for m in await run_events(w, 4)] == [1, 2, 3, 4]
        for n in nodes:
            status, t = api(n, "GET", f"/api/sessions/{code}/transcript?limit=1000")
            assert status == 200, t
            texts = [e["text"] for e in t["events"] if e["type"] == "chat"]
            assert len(texts) == len(set(texts)), texts
            assert set(acked) <= set(texts)
    run(main())


def test_messages_a_failover_lost_are_told_as_history_lost_and_seqs_never_repeat(own_cluster):
    """What an acknowledgement does not promise: the replica is cut off from its master while five messages
    are acknowledged by it, the master is SIGKILLed and the replica promoted without them.
    The loss is not silent: the next append finds the log behind what the nodes saw, starts a new epoch
    above it, and every member is sent `reset {history_lost}`; no seq is given twice."""
    rc, nodes = own_cluster
    code = None
    for _ in range(100):
        code = create_session(nodes[0])["code"]
        if rc.master_of("{" + code + "}:m") != rc.port:
            break
    key = "{" + code + "}:m"
    victim = rc.master_of(key)
    replica = next(p for p, (_, role, _) in rc.nodes().items()
                   if role == "replica" and f"master_port:{victim}" in cli(p, "INFO", "replication"))

    async def main():
        cs, ws = await members(nodes, code)
        first = await chat_round(cs, ws, code, "before")
        # The replica is cut off: the master wants a password it does not have (the hubs' connections are
        # authenticated already) and drops its link; the replica cannot connect again.
        cli(victim, "CONFIG", "SET", "requirepass", "lockout")
        cli(victim, "--no-auth-warning", "-a", "lockout", "CLIENT", "KILL", "TYPE", "replica")
        eventually(lambda: "master_link_status:down" in cli(replica, "INFO", "replication"), what="the link cut")
        lost = await chat_round(cs[:1], ws, code, "lost")
        rc.kill(victim)
        assert max(lost) > max(first)
        # The first append after the promotion: refused until then, then acknowledged under a new epoch.
        seqs = []
        for k in range(5):
            deadline = time.time() + 40
            while True:
                assert time.time() < deadline, "never acknowledged after the failover"
                await cs[1].send({"type": "chat", "id": f"next-{k}", "text": f"next-{k}"})
                m = await cs[1].recv(timeout=10)
                while m["type"] not in ("ack", "error"):
                    m = await cs[1].recv(timeout=10)
                if m["type"] == "ack":
                    seqs.append(m["seq"])
                    break
                assert m["code"] == "storage_unavailable", m
                await asyncio.sleep(0.05)
        assert min(seqs) > max(lost), (seqs, lost)
        # Nodes without senders notice the promotion when their subscriber's reconnect reads the map again;
        # once subscribed on the new master, the next publication carries the new epoch to them.
        promoted = rc.master_of(key)

        def subscribed():
            out = cli(promoted, "PUBSUB", "SHARDNUMSUB", "{" + code + "}:ch").split()
            return len(out) == 2 and int(out[1]) >= 3
        eventually(subscribed, timeout=20, what="every node subscribed on the promoted master")
        await send_until_acked(cs[1], "last")
        for w in ws:
            got = await drain(w, 1.0)
            resets = [m for m in got if m["type"] == "reset"]
            assert resets and resets[0]["reason"] == "history_lost" and resets[0]["seq"] >= max(lost), got
            later = [m["seq"] for m in got if m["type"] == "chat"]
            assert later and min(later) > max(lost), got
    run(main())
