"""Cluster mode, shared configuration and accounting: API keys, their quotas, the activity log and the
failed-join throttle kept in a real redis-server, so that a key made on one node works (and is revoked)
on every node, quotas and throttles count the cluster's requests, and a node started without credentials
in a closed cluster stays closed."""
import asyncio
import json
import time

import pytest
import websockets

from conftest import BINARY, Hub
from hubclient import Client, api, create_session, eventually, run
from test_cluster import REDIS, Redis, redis_cli

pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")

ADMIN = "cluster-admin-key-0123"


@pytest.fixture
def cluster(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = [Hub("--redis", redis.url, "--admin-key", ADMIN, data_dir=str(tmp_path / f"node{i}")).start()
             for i in range(3)]
    yield redis, nodes
    for n in nodes:
        n.stop()
    redis.stop()


def make_key(node, **fields):
    status, body = api(node, "POST", "/api/keys", {"name": "k", "scopes": ["sessions:read"], **fields})
    assert status == 201, body
    return body


def with_key(key):
    return {"X-API-Key": key}


def test_a_key_made_on_one_node_works_on_every_node_and_a_revocation_on_one_holds_on_all(cluster):
    redis, (a, b, c) = cluster
    made = make_key(a, scopes=["sessions:read", "runs:read"])
    # At once on the other nodes: the request waits for nothing but the key's publication or a read.
    for node in (b, c):
        status, body = api(node, "GET", "/api/sessions", headers=with_key(made["key"]))
        assert status == 200, (node.port, body)
    # Listed alike on every node, and stored in Redis as a hash of the secret (never the secret).
    for node in (a, b, c):
        status, body = api(node, "GET", "/api/keys")
        assert status == 200 and [k["id"] for k in body["keys"]] == [made["id"]], body
    stored = redis_cli(redis, "HGET", "chub:{keys}", made["id"])
    assert json.loads(stored)["id"] == made["id"]
    assert made["key"].split("_")[2] not in stored
    # A key the nodes' copies were told of is used the first time with no wait on any node.
    status, _ = api(c, "GET", "/api/runs", headers=with_key(made["key"]))
    assert status == 200

    status, body = api(b, "DELETE", f"/api/keys/{made['id']}")
    assert status == 200 and body["revoked"] is True, body
    t = time.time()
    for node in (a, c):
        eventually(lambda: api(node, "GET", "/api/sessions", headers=with_key(made["key"]))[0] == 401,
                   timeout=1.0, interval=0.02, what=f"the revoked key refused on :{node.port}")
    assert time.time() - t < 1.0
    # Revoked once: a second revocation, on any node, finds no active key.
    status, body = api(c, "DELETE", f"/api/keys/{made['id']}")
    assert status == 404 and body["error"]["code"] == "unknown_key", body
    for node in (a, b, c):
        listed = api(node, "GET", "/api/keys")[1]["keys"]
        assert listed[0]["active"] is False and listed[0]["revoked_at"] > 0, listed


def test_the_keys_command_makes_a_key_for_the_cluster(cluster):
    import subprocess
    redis, (a, b, _) = cluster
    out = subprocess.run([BINARY, "keys", "create", "--redis", redis.url, "--name", "ci", "--scopes",
                          "sessions:read"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    key = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("key:"))
    key_id = key.split("_")[1]
    assert api(b, "GET", "/api/sessions", headers=with_key(key))[0] == 200
    listed = subprocess.run([BINARY, "keys", "list", "--redis", redis.url], capture_output=True, text=True,
                            timeout=20)
    assert key_id in listed.stdout and "active" in listed.stdout, listed.stdout
    out = subprocess.run([BINARY, "keys", "revoke", "--redis", redis.url, key_id], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    eventually(lambda: api(a, "GET", "/api/sessions", headers=with_key(key))[0] == 401, timeout=1.0,
               what="the key revoked by the command refused")


def wait_for_fresh_minute(margin=15):
    """Quotas count in fixed minutes: start a test early enough in one that it does not straddle two."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def test_a_quota_holds_for_the_cluster_not_per_node(cluster):
    _, (a, b, c) = cluster
    made = make_key(a, per_minute=6, scopes=["runs:publish"])
    wait_for_fresh_minute()
    answers = []
    import urllib.request
    for i in range(8):
        node = (a, b)[i % 2]
        # A CI job's requests, spread by a load balancer over two nodes.
        event = {"type": "log", "line": f"line {i}"} if i else {"type": "started", "owner": "ci", "name": "build"}
        req = urllib.request.Request(node.http + "/api/runs/q1/events", data=json.dumps(event).encode(),
                                     headers={**with_key(made["key"]), "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                answers.append((r.status, dict(r.headers), None))
        except urllib.error.HTTPError as e:
            answers.append((e.code, dict(e.headers), json.loads(e.read())))
    statuses = [s for s, _, _ in answers]
    # Six requests, three on each node, then refused: the seventh is the first over, whichever node.
    assert statuses == [202] * 6 + [429, 429], (statuses, answers)
    assert [h["X-RateLimit-Remaining"] for _, h, _ in answers[:6]] == ["5", "4", "3", "2", "1", "0"]
    status, headers, body = answers[6]
    assert body["error"]["code"] == "rate_limited" and "6 requests per minute" in body["error"]["message"], body
    assert 0 < int(headers["Retry-After"]) <= 60 and body["error"]["retry_after"] == int(headers["Retry-After"])
    # The usage is the cluster's, read on a third node.
    status, usage = api(c, "GET", f"/api/keys/{made['id']}/usage")
    assert status == 200 and usage["minute"] == 6 and usage["hour"] == 6 and usage["month"] == 6, usage


def test_the_activity_log_is_the_clusters(cluster):
    redis, (a, b, c) = cluster
    code = create_session(a, title="made on A")["code"]
    made = make_key(b)
    api(b, "DELETE", f"/api/keys/{made['id']}")

    def listed():
        status, body = api(c, "GET", "/api/activity?limit=100")
        assert status == 200, body
        return body["activity"]
    entries = eventually(lambda: (lambda e: e if {"api_key_created", "api_key_revoked"} <= {x["action"] for x in e}
                                  and any(x.get("session") == code for x in e) else None)(listed()),
                         what="entries of two nodes listed on a third")
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), ids
    # The same on every node, paged as on one node.
    assert api(a, "GET", "/api/activity?limit=100")[1]["activity"] == entries
    first = api(a, "GET", "/api/activity?limit=1")[1]
    assert first["activity"] == entries[:1] and first["next"]
    second = api(b, "GET", f"/api/activity?limit=1&cursor={first['next']}")[1]
    assert second["activity"] == entries[1:2]
    assert [e["action"] for e in api(c, "GET", f"/api/activity?session={code}")[1]["activity"]] \
        == [e["action"] for e in entries if e.get("session") == code]
    # Kept in Redis, trimmed (capped list).
    assert int(redis_cli(redis, "LLEN", "chub:{activity}")) == len(entries)


async def failed_join(node, addr):
    """One join of an unknown code from `addr`: the error codes answered and the close code (None: open)."""
    ws = await websockets.connect(f"{node.url}/ws?session=ZZZZZZZZ", subprotocols=["collabhub.v1"],
                                  close_timeout=1, local_addr=(addr, 0))
    await ws.send(json.dumps({"type": "join", "name": "guess"}))
    codes, close = [], None
    try:
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 3))
            codes.append(m.get("code", m["type"]))
    except websockets.ConnectionClosed as e:
        close = e.rcvd.code if e.rcvd else None
    except asyncio.TimeoutError:
        pass
    await ws.close()
    return codes, close


def test_failed_joins_are_throttled_across_nodes_at_the_count_of_one(cluster):
    _, (a, b, c) = cluster

    async def main(nodes, addr):
        return [await failed_join(nodes[i % len(nodes)], addr) for i in range(24)]

    def first_throttled(results):
        return next(i for i, (_, close) in enumerate(results) if close == 4008)

    spread = asyncio.run(main([a, b], "127.0.8.1"))
    alone = asyncio.run(main([c], "127.0.8.2"))
    # The limit (20 a minute) counts failures on every node together: the 21st attempt is closed 4008
    # whichever node gets it, as on one node; every later one on any node too.
    assert first_throttled(alone) == 20, alone
    assert first_throttled(spread) == 20, spread
    assert all(close == 4008 for _, close in spread[20:]), spread
    assert all("unknown_session" in codes for codes, _ in spread[:20]), spread
    # The third node already knows the address is over its budget (it counted nothing of it itself).
    late = asyncio.run(main([c], "127.0.8.1"))
    assert all(codes == ["rate_limited"] or close == 4008 for codes, close in late[:1]), late
    assert "unknown_session" not in late[1][0], late


def test_a_node_without_credentials_joining_a_closed_cluster_stays_closed(tmp_path):
    redis = Redis(tmp_path).start()
    nodes = []
    try:
        a = Hub("--redis", redis.url, "--admin-key", ADMIN, data_dir=str(tmp_path / "a")).start()
        nodes.append(a)
        made = make_key(a, scopes=["sessions:read", "transcripts:read"])
        code = create_session(a, title="closed", guest_policy="deny")["code"]
        # B: the same Redis and nothing else (no --admin-key, no token key, an empty data folder).
        b = Hub("--redis", redis.url, data_dir=str(tmp_path / "b")).start()
        nodes.append(b)
        assert "open mode" not in b.proc.stdout.readline()
        assert api(b, "GET", "/api/mode", headers={}) == (200, {"open": False})
        for path in ("/api/sessions", f"/api/sessions/{code}", f"/api/sessions/{code}/transcript", "/api/activity",
                     "/api/keys"):
            status, body = api(b, "GET", path, headers={})
            assert status == 401 and body["error"]["code"] == "unauthorized", (path, body)
        status, body = api(b, "POST", "/api/sessions", {"title": "x"}, headers={})
        assert status == 401, body
        # The key made on A opens on B what it opens on A.
        for node in (a, b):
            assert api(node, "GET", f"/api/sessions/{code}/transcript", headers=with_key(made["key"]))[0] == 200

        async def guest_join(node):
            c = await Client.connect(node, code)
            await c.send({"type": "join", "name": "Anon"})
            m = await c.recv()
            return m["type"], m.get("code")
        # A join without a credential is refused on B exactly as on A.
        on_a = run(guest_join(a))
        on_b = run(guest_join(b))
        assert on_a == on_b and on_a[0] == "error", (on_a, on_b)
    finally:
        for n in nodes:
            n.stop()
        redis.stop()


def test_without_redis_keys_cannot_change_but_known_keys_still_authenticate(cluster):
    redis, (a, b, _) = cluster
    made = make_key(a, scopes=["runs:read"])
    assert api(b, "GET", "/api/runs", headers=with_key(made["key"]))[0] == 200
    redis.kill()
    try:
        status, body = api(a, "POST", "/api/keys", {"name": "k2", "scopes": ["runs:read"]})
        assert status == 503 and body["error"]["code"] == "storage_unavailable", body
        status, body = api(b, "DELETE", f"/api/keys/{made['id']}")
        assert status == 503 and body["error"]["code"] == "storage_unavailable", body
        # Each node goes on with its own copy of the keys (and counts the quota itself meanwhile): the key
        # is accepted (the listing itself then needs Redis for read-your-writes: 503, not 401 or 403), and a
        # key that is no key is still refused.
        for node in (a, b):
            status, body = api(node, "GET", "/api/runs", headers=with_key(made["key"]))
            assert status in (200, 503), body
            if status == 503:
                assert body["error"]["code"] == "storage_unavailable", body
            status, body = api(node, "GET", "/api/runs", headers=with_key(made["key"] + "x"))
            assert status == 401, body
    finally:
        redis.start()
    # Back: the key is still the cluster's, and still active.
    eventually(lambda: api(a, "GET", "/api/keys")[0] == 200, what="the key table readable again")
    assert api(a, "GET", f"/api/keys/{made['id']}/usage")[0] == 200
