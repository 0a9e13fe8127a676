"""Trust across nodes, restarts and browsers (issue 26; security review 2026-12-06, N1-N8, N12, N14, N15), each
test written from the finding's reproduction and run against the real binary: the authorization mode as a
decision (single node and a real redis-server cluster), Host/Origin/Content-Type gates, security headers,
/publish metered like HTTP, /watch tokens that expire, keys that grant only what their maker holds, webhooks
that read chat only with transcripts:read, token audience and issuer, the least-privilege role, share links
that show no presence, and secrets read from files."""
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import subprocess
import time

import pytest
import websockets

import conftest
from hubclient import Client, api, eventually, run

SECRET = "trust-secret-0123456789abcdef"
ADMIN = "trust-admin-key-0123456789"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(secret=SECRET, **claims):
    now = int(time.time())
    c = {"sub": "u1", "iat": now, "exp": now + 600, **claims}
    c = {k: v for k, v in c.items() if v is not None}
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(c).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def make_key(data, name, scopes, **limits):
    cmd = [conftest.BINARY, "keys", "create", "--data", data, "--name", name, "--scopes", scopes]
    for k, v in limits.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return re.search(r"key: (\S+)", out).group(1), re.search(r"id:\s+(\S+)", out).group(1)


def serve(*args, data=None, env=None):
    """Starts `collabhub serve` expecting it to refuse: (exit code, output)."""
    cmd = [conftest.BINARY, "serve", "--port", "0", *args] + (["--data", data] if data else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20, env={**os.environ, **(env or {})})
    return p.returncode, p.stdout + p.stderr


def raw(hub, method, path, headers=None, body=None):
    """One request with exactly these headers (http.client adds Host only if not given)."""
    c = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
    h = dict(headers or {})
    c.putrequest(method, path, skip_host="Host" in h, skip_accept_encoding=True)
    for k, v in h.items():
        c.putheader(k, v)
    data = body.encode() if isinstance(body, str) else body
    if data is not None:
        c.putheader("Content-Length", str(len(data)))
    c.endheaders(data)
    r = c.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    c.close()
    return out


# ---------------------------------------------------------------------------------------------------
# N1: the authorization mode is decided once, and never opens by itself


def test_revoking_the_last_key_and_restarting_leaves_the_hub_closed(tmp_path):
    data = str(tmp_path)
    key, key_id = make_key(data, "ops", "sessions:read")
    hub = conftest.Hub(data_dir=data).start()
    try:
        assert api(hub, "GET", "/api/sessions", headers={})[0] == 401
        assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": key})[0] == 200
    finally:
        hub.stop()
    subprocess.run([conftest.BINARY, "keys", "revoke", "--data", data, key_id], check=True, capture_output=True)
    hub = conftest.Hub(data_dir=data).start()
    try:
        # Before: 200 for anyone (the security review's reproduction). Now closed, and it says how to get in.
        status, body = api(hub, "GET", "/api/sessions", headers={})
        assert status == 401, body
        assert raw(hub, "GET", "/healthz")[2].startswith(b"ok\ncollabhub ")
        assert api(hub, "GET", "/api/mode", headers={})[1] == {"open": False}
    finally:
        hub.stop()
    assert "no credential is configured here" in hub.output()


def test_a_hub_that_ran_with_an_admin_key_does_not_open_when_it_is_forgotten(tmp_path):
    data = str(tmp_path)
    hub = conftest.Hub("--admin-key", ADMIN, data_dir=data).start()
    hub.stop()
    hub = conftest.Hub(data_dir=data).start()
    try:
        assert api(hub, "GET", "/api/sessions", headers={})[0] == 401
    finally:
        hub.stop()
    # Said outright, it opens (the operator's choice, not a side effect).
    hub = conftest.Hub("--auth", "open", data_dir=data).start()
    try:
        assert api(hub, "GET", "/api/sessions", headers={})[0] == 200
    finally:
        hub.stop()


def test_a_hub_bound_beyond_loopback_without_a_credential_refuses_to_start(tmp_path):
    code, out = serve("--host", "0.0.0.0", data=str(tmp_path))
    assert code != 0
    assert "not a loopback address" in out and "--auth open" in out, out
    code, out = serve("--host", "0.0.0.0", "--auth", "required", data=str(tmp_path / "b"))
    assert code != 0 and "--auth required" in out, out


def test_a_fresh_cluster_node_without_a_credential_refuses_to_start(tmp_path):
    from test_cluster import REDIS, Redis
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    redis = Redis(tmp_path).start()
    try:
        code, out = serve("--redis", redis.url, data=str(tmp_path / "n"))
        assert code != 0 and "cluster node" in out and "--auth open" in out, out
    finally:
        redis.stop()


def test_the_cluster_mode_lives_in_redis(tmp_path):
    from test_cluster import REDIS, Redis
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    redis = Redis(tmp_path).start()
    nodes = []
    try:
        # A closed node: the cluster is closed from then on.
        closed = conftest.Hub("--redis", redis.url, "--admin-key", ADMIN, data_dir=str(tmp_path / "n1")).start()
        nodes.append(closed)
        status, s = api(closed, "POST", "/api/sessions", {"title": "confidential", "guest_policy": "deny"})
        assert status == 201, s
        # A node with only --redis (the review's node 3) joins the cluster closed: nothing without a credential.
        third = conftest.Hub("--redis", redis.url, data_dir=str(tmp_path / "n2")).start()
        nodes.append(third)
        assert api(third, "GET", "/api/sessions", headers={})[0] == 401
        assert api(third, "GET", f"/api/sessions/{s['code']}/transcript", headers={})[0] == 401
        assert api(third, "GET", f"/api/sessions/{s['code']}/transcript", headers={"X-API-Key": ADMIN})[0] == 401
        assert "no credential is configured here" in third.proc.stdout.readline()
        # Nor does one that asks for open mode: the cluster is closed.
        code, out = serve("--redis", redis.url, "--auth", "open", data=str(tmp_path / "n3"))
        assert code != 0 and "runs closed" in out, out
    finally:
        for n in nodes:
            n.stop()
        redis.stop()


def test_an_open_cluster_closes_everywhere_when_a_closed_node_joins(tmp_path):
    from test_cluster import REDIS, Redis
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    redis = Redis(tmp_path).start()
    nodes = []
    try:
        a = conftest.Hub("--redis", redis.url, "--auth", "open", data_dir=str(tmp_path / "a")).start()
        nodes.append(a)
        assert api(a, "GET", "/api/sessions", headers={})[0] == 200
        # A node with no credential joins the cluster the way it was opened: on purpose.
        b = conftest.Hub("--redis", redis.url, data_dir=str(tmp_path / "b")).start()
        nodes.append(b)
        assert api(b, "GET", "/api/sessions", headers={})[0] == 200
        c = conftest.Hub("--redis", redis.url, "--admin-key", ADMIN, data_dir=str(tmp_path / "c")).start()
        nodes.append(c)
        # Closing wins, on every node, within seconds; opening never spreads.
        for n in (a, b):
            eventually(lambda: api(n, "GET", "/api/sessions", headers={})[0] == 401, timeout=8,
                       what="the open node to close")
        assert api(c, "GET", "/api/sessions", headers={"X-API-Key": ADMIN})[0] == 200
    finally:
        for n in nodes:
            n.stop()
        redis.stop()


# ---------------------------------------------------------------------------------------------------
# N2, L10, N14: Host, Origin and Content-Type; security headers


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory):
    hub = conftest.Hub("--webhook-allow-private", data_dir=str(tmp_path_factory.mktemp("open"))).start()
    yield hub
    hub.stop()


def webhooks(hub):
    return api(hub, "GET", "/api/webhooks", headers={})[1]["webhooks"]


def test_a_cross_site_simple_request_creates_no_webhook(open_hub):
    body = json.dumps({"url": "http://127.0.0.1:9/hook", "events": ["*"]})
    before = len(webhooks(open_hub))
    # The review's curl: another origin, text/plain (what a no-cors fetch sends).
    status, _, reply = raw(open_hub, "POST", "/api/webhooks",
                           {"Origin": "http://evil.example", "Content-Type": "text/plain"}, body)
    assert status == 403 and b"origin_not_allowed" in reply, reply
    # Same origin but not JSON (a form post from a page of the hub's own would be): 415.
    status, _, reply = raw(open_hub, "POST", "/api/webhooks",
                           {"Origin": f"http://127.0.0.1:{open_hub.port}", "Content-Type": "text/plain"}, body)
    assert status == 415 and b"application/json" in reply, reply
    status, _, reply = raw(open_hub, "POST", "/api/webhooks", {"Content-Type": "application/x-www-form-urlencoded"},
                           body)
    assert status == 415, reply
    assert len(webhooks(open_hub)) == before
    # The hub's own page, or a tool without Origin, with JSON: allowed.
    status, _, reply = raw(open_hub, "POST", "/api/webhooks",
                           {"Origin": f"http://127.0.0.1:{open_hub.port}", "Content-Type": "application/json"}, body)
    assert status == 201, reply
    assert len(webhooks(open_hub)) == before + 1


def test_dns_rebinding_is_refused_by_the_host_allow_list(open_hub):
    # A page on evil.example whose name now resolves to 127.0.0.1 sends Host: evil.example.
    status, _, reply = raw(open_hub, "GET", "/api/sessions", {"Host": f"evil.example:{open_hub.port}"})
    assert status == 421 and b"unknown_host" in reply, reply
    status, _, _ = raw(open_hub, "GET", "/api/sessions", {"Host": f"127.evil.example:{open_hub.port}"})
    assert status == 421
    for host in ("localhost", f"localhost:{open_hub.port}", f"127.0.0.1:{open_hub.port}", "[::1]"):
        assert raw(open_hub, "GET", "/api/sessions", {"Host": host})[0] == 200, host
    # Health checks from a load balancer name the node's address: /healthz answers whatever the Host.
    assert raw(open_hub, "GET", "/healthz", {"Host": "10.1.2.3:8080"})[0] == 200


def test_websockets_from_another_origin_are_refused(open_hub):
    status, s = api(open_hub, "POST", "/api/sessions", {"title": "x"})
    code = s["code"]

    async def main():
        with pytest.raises(Exception) as e:
            await websockets.connect(f"{open_hub.url}/ws?session={code}", subprotocols=["collabhub.v1"],
                                     origin="http://evil.example")
        assert "403" in str(e.value)
        with pytest.raises(Exception):
            await websockets.connect(f"{open_hub.url}/watch", subprotocols=["collabhub.v1"], origin="null")
        ws = await websockets.connect(f"{open_hub.url}/ws?session={code}", subprotocols=["collabhub.v1"],
                                      origin=f"http://127.0.0.1:{open_hub.port}")
        await ws.close()
    asyncio.run(main())


def test_pages_carry_security_headers(open_hub):
    for path in ("/", "/admin", "/dashboard", "/replay/ABCDEFGH"):
        status, headers, _ = raw(open_hub, "GET", path)
        assert status == 200
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, csp
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0], csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
    assert raw(open_hub, "GET", "/client.js")[1]["X-Content-Type-Options"] == "nosniff"


def test_allowed_origins_must_be_origins(tmp_path):
    code, out = serve("--allowed-origins", "app.example.com", data=str(tmp_path))
    assert code == 2 and "https://app.example.com" in out, out
    out = subprocess.run([conftest.BINARY, "config", "check", "--allowed-origins", "https://app.example.com",
                          "--public-url", "https://chat.example.com"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------------------------------------------
# N5-N8, N12, N15 on a closed hub


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("closed"))
    keys = {
        "publisher": make_key(data, "ci", "runs:publish", per_minute=3, per_hour=100, per_month=1000),
        "keymaker": make_key(data, "keymaker", "keys:admin,sessions:read,runs:read", per_minute=100, per_hour=1000,
                             per_month=5000),
        "hooks": make_key(data, "hooks", "webhooks:admin"),
        "hooks_reader": make_key(data, "hooks and transcripts", "webhooks:admin,transcripts:read"),
    }
    (tmp_path_factory.getbasetemp() / "admin.key").write_text(ADMIN + "\n")
    hub = conftest.Hub("--jwt-secret", SECRET, "--webhook-allow-private", "--jwt-skew", "2", data_dir=data)
    hub.admin_key = ADMIN
    env = {"COLLABHUB_ADMIN_KEY_FILE": str(tmp_path_factory.getbasetemp() / "admin.key")}
    old = dict(os.environ)
    os.environ.update(env)
    try:
        hub.start()
    finally:
        os.environ.clear()
        os.environ.update(old)
    yield hub, keys
    hub.stop()


def test_the_admin_key_can_come_from_a_file(closed):
    hub, _ = closed
    assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": ADMIN})[0] == 200
    assert api(hub, "GET", "/api/sessions", headers={})[0] == 401


def test_secrets_on_the_command_line_are_warned_about(tmp_path):
    hub = conftest.Hub("--admin-key", ADMIN, data_dir=str(tmp_path)).start()
    time.sleep(0.3)
    hub.stop()
    out = hub.output()
    assert "--admin-key on the command line is visible" in out and "COLLABHUB_ADMIN_KEY_FILE" in out, out
    assert ADMIN not in out


def test_publish_sockets_are_metered_like_http(closed):
    hub, keys = closed
    key, key_id = keys["publisher"]

    async def main():
        ws = await websockets.connect(f"{hub.url}/publish", subprotocols=["collabhub.v1"],
                                      extra_headers={"X-API-Key": key})
        answers = []
        for i in range(5):
            await ws.send(json.dumps({"type": "run_event", "run": "ci-1", "id": f"m{i}",
                                      "event": {"type": "log", "line": "x"} if i else
                                      {"type": "started", "owner": "ci"}}))
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        await ws.close()
        return answers
    answers = asyncio.run(main())
    # The upgrade was the first request of the minute; two messages fit, the rest are refused.
    kinds = [a["type"] for a in answers]
    assert kinds[:2] == ["ack", "ack"], answers
    assert all(a["type"] == "error" and a["code"] == "rate_limited" for a in answers[2:]), answers
    status, run_ = api(hub, "GET", "/api/runs/ci-1", headers={"X-API-Key": ADMIN})
    assert status == 200 and len(run_["events"]) == 2, run_
    assert api(hub, "GET", f"/api/keys/{key_id}/usage", headers={"X-API-Key": ADMIN})[1]["minute"] == 3


def test_publish_sockets_that_send_garbage_are_closed(closed):
    hub, _ = closed

    async def main():
        ws = await websockets.connect(f"{hub.url}/publish?key={ADMIN}", subprotocols=["collabhub.v1"])
        for _ in range(200):
            try:
                await ws.send("not json")
            except websockets.exceptions.ConnectionClosed:
                break
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.exceptions.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
    assert asyncio.run(main()) == 4002  # the invalid-message close, as on /ws and /watch


def test_a_watcher_token_stops_working_when_it_expires(closed):
    hub, _ = closed
    api(hub, "POST", "/api/runs/w-1/events", {"type": "started", "owner": "team"}, {"X-API-Key": ADMIN})
    # Valid for 3 more seconds (skew 2 s): subscribed, then cut.
    t = token(exp=int(time.time()) + 1, channels=["run:w-*"], session=None)

    async def main():
        ws = await websockets.connect(f"{hub.url}/watch", subprotocols=["collabhub.v1"])
        await ws.send(json.dumps({"type": "subscribe", "channel": "run:w-1", "token": t}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["type"] == "run_snapshot", first
        got = []
        try:
            while True:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        except websockets.exceptions.ConnectionClosed as e:
            return got, e.rcvd.code if e.rcvd else None
    got, code = asyncio.run(main())
    assert any(m["type"] == "error" and m["code"] == "token_expired" for m in got), got
    assert code == 4001


def test_a_watcher_refreshes_its_token_in_time(closed):
    hub, _ = closed
    api(hub, "POST", "/api/runs/w-2/events", {"type": "started", "owner": "team"}, {"X-API-Key": ADMIN})
    short = token(exp=int(time.time()) + 1, channels=["run:w-*"], session=None)
    fresh = token(exp=int(time.time()) + 600, channels=["run:w-*"], session=None)

    async def main():
        ws = await websockets.connect(f"{hub.url}/watch", subprotocols=["collabhub.v1"])
        await ws.send(json.dumps({"type": "subscribe", "channel": "run:w-2", "token": short}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "run_snapshot"
        await ws.send(json.dumps({"type": "refresh", "token": fresh}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "token_refreshed"
        await asyncio.sleep(5)
        api(hub, "POST", "/api/runs/w-2/events", {"type": "log", "line": "still here"}, {"X-API-Key": ADMIN})
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.close()
        return m
    m = asyncio.run(main())
    assert m["type"] == "run_event", m


def test_a_key_grants_only_what_its_maker_holds(closed):
    hub, keys = closed
    maker = {"X-API-Key": keys["keymaker"][0]}
    # The review's reproduction: a keys:admin key minting everything.
    status, body = api(hub, "POST", "/api/keys", {"name": "escalate", "scopes": [
        "sessions:read", "transcripts:read", "webhooks:admin", "activity:read"], "per_month": 100000000}, maker)
    assert status == 403 and "transcripts:read" in body["error"]["message"], body
    status, body = api(hub, "POST", "/api/keys", {"name": "keys", "scopes": ["keys:admin"]}, maker)
    assert status == 403 and "admin key" in body["error"]["message"], body
    status, body = api(hub, "POST", "/api/keys", {"name": "big", "scopes": ["sessions:read"], "per_month": 6000},
                       maker)
    assert status == 403, body
    status, body = api(hub, "POST", "/api/keys", {"name": "reader", "scopes": ["sessions:read"], "per_minute": 10,
                                                  "per_hour": 100, "per_month": 1000}, maker)
    assert status == 201, body
    # It may revoke what it could make, not a stronger key.
    assert api(hub, "DELETE", f"/api/keys/{body['id']}", None, maker)[0] == 200
    assert api(hub, "DELETE", f"/api/keys/{keys['hooks_reader'][1]}", None, maker)[0] == 403
    # The admin key grants anything.
    assert api(hub, "POST", "/api/keys", {"name": "all", "scopes": ["keys:admin", "transcripts:read"]},
               {"X-API-Key": ADMIN})[0] == 201


def test_a_webhook_on_chat_content_needs_transcripts_read(closed):
    hub, keys = closed
    url = "http://127.0.0.1:9/hook"
    hooks = {"X-API-Key": keys["hooks"][0]}
    for events in (["*"], ["chat.created"], ["event.created"]):
        status, body = api(hub, "POST", "/api/webhooks", {"url": url, "events": events}, hooks)
        assert status == 403 and "transcripts:read" in body["error"]["message"], (events, body)
    status, body = api(hub, "POST", "/api/webhooks", {"url": url, "events": ["run.completed"]}, hooks)
    assert status == 201, body
    # Nor can it widen that endpoint afterwards.
    status, _ = api(hub, "PATCH", f"/api/webhooks/{body['id']}", {"events": ["*"]}, hooks)
    assert status == 403
    status, body = api(hub, "POST", "/api/webhooks", {"url": url, "events": ["*"]},
                       {"X-API-Key": keys["hooks_reader"][0]})
    assert status == 201, body


def test_tokens_for_another_audience_are_refused_and_no_role_is_a_viewer(closed):
    hub, _ = closed
    status, s = api(hub, "POST", "/api/sessions", {"title": "aud"}, {"X-API-Key": ADMIN})
    code = s["code"]
    wrong = token(session=code, role="host", aud="other-app", iss="someone")
    status, body = api(hub, "GET", f"/api/sessions/{code}", headers={"Authorization": "Bearer " + wrong})
    assert status == 401, body

    async def main():
        c = await Client.connect(hub, code)
        await c.send({"type": "join", "name": "no role", "token": token(session=code)})
        joined = await c.expect("joined")
        await c.send({"type": "chat", "id": "c1", "text": "hello"})
        refused = await c.expect("error")
        return joined, refused
    joined, refused = run(main())
    assert joined["you"]["role"] == "viewer", joined
    assert refused["code"] == "forbidden", refused


def test_public_keys_need_an_audience_and_an_issuer(tmp_path):
    pem = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                    str(tmp_path / "priv.pem")], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "priv.pem"), "-pubout", "-out", str(pem)], check=True,
                   capture_output=True)
    code, out = serve("--jwt-public-key", str(pem), data=str(tmp_path / "d"))
    assert code == 2 and "--jwt-audience" in out, out
    code, out = serve("--jwt-public-key", str(pem), "--jwt-audience", "hub", data=str(tmp_path / "d"))
    assert code == 2 and "--jwt-issuer" in out, out


def test_a_share_link_plays_back_and_shows_no_presence(closed):
    hub, _ = closed
    status, s = api(hub, "POST", "/api/sessions", {"title": "shared"}, {"X-API-Key": ADMIN})
    code = s["code"]
    status, share = api(hub, "POST", f"/api/sessions/{code}/share", {}, {"X-API-Key": ADMIN})
    assert status == 201, share
    bearer = {"Authorization": "Bearer " + share["token"]}
    assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers=bearer)[0] == 200
    assert api(hub, "GET", f"/api/sessions/{code}", headers=bearer)[0] == 403
    assert api(hub, "GET", f"/api/sessions/{code}/members", headers=bearer)[0] == 403


def test_a_share_link_can_be_revoked_and_stays_revoked_after_a_restart(tmp_path):
    data = str(tmp_path)
    # With an audience and an issuer required, the hub's own share links carry them.
    flags = ("--jwt-secret", SECRET, "--admin-key", ADMIN, "--jwt-audience", "hub", "--jwt-issuer", "me")
    hub = conftest.Hub(*flags, data_dir=data).start()
    admin = {"X-API-Key": ADMIN}
    try:
        created = api(hub, "POST", "/api/sessions", {"title": "leaky"}, admin)[1]
        code = created["code"]
        first = api(hub, "POST", f"/api/sessions/{code}/share", {}, admin)[1]
        second = api(hub, "POST", f"/api/sessions/{code}/share", {}, admin)[1]
        status, body = api(hub, "DELETE", f"/api/sessions/{code}/share/{first['id']}", None, admin)
        assert status == 200 and body == {"id": first["id"], "revoked": True}, body
        bearer = lambda s: {"Authorization": "Bearer " + s["token"]}
        assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers=bearer(first))[0] == 401
        assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers=bearer(second))[0] == 200

        async def replay(token):
            c = await Client.connect(hub, code)
            await c.send({"type": "replay", "token": token})
            return await c.recv()
        m = run(replay(first["token"]))
        assert m["type"] == "error" and m["code"] == "unauthorized" and "revoked" in m["message"], m
        # Only who may share may revoke.
        assert api(hub, "DELETE", f"/api/sessions/{code}/share/{second['id']}", None, bearer(second))[0] == 403

        # A live session ending writes its row from the copy it started with: the revocation survives it.
        async def live_then_end():
            c = await Client.connect(hub, code)
            await c.join("host", host_key=created["host_key"])
            return api(hub, "POST", f"/api/sessions/{code}/end", {}, admin)[0]
        assert run(live_then_end()) == 202   # ending a live session is accepted, then carried out
        eventually(lambda: api(hub, "GET", f"/api/sessions/{code}", headers=admin)[1].get("ended_at"),
                   what="the session to end")
        assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers=bearer(first))[0] == 401
    finally:
        hub.stop()
    hub = conftest.Hub(*flags, data_dir=data).start()
    try:
        assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers=bearer(first))[0] == 401
        assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers=bearer(second))[0] == 200
    finally:
        hub.stop()


def test_a_page_on_another_site_cannot_write_to_an_open_hub_from_chromium(open_hub, tmp_path):
    """The review's N2 reproduction in a real browser: a page served from another origin (another port of
    127.0.0.1) runs a no-cors fetch that creates a webhook, and opens a WebSocket to the hub. Neither works,
    while the hub's own page, in the same browser, can still create a session."""
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    if shutil.which("chromedriver") is None:
        pytest.skip("chromium-driver not installed")
    from test_browser import browser
    (tmp_path / "evil.html").write_text(f"""<!doctype html><script>
      window.result = "pending";
      fetch("http://127.0.0.1:{open_hub.port}/api/webhooks", {{method: "POST", mode: "no-cors",
        body: '{{"url": "http://127.0.0.1:9/exfil", "events": ["*"]}}'}})
        .then(() => window.fetched = "sent", () => window.fetched = "failed");
      const ws = new WebSocket("ws://127.0.0.1:{open_hub.port}/watch", "collabhub.v1");
      ws.onopen = () => window.ws = "open"; ws.onerror = () => window.ws = "refused";
    </script>""")
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)
    site = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    before = len(webhooks(open_hub))
    d = browser()
    try:
        d.get(f"http://127.0.0.1:{site.server_address[1]}/evil.html")
        eventually(lambda: d.execute_script("return window.fetched && window.ws"), what="the page's requests")
        assert d.execute_script("return window.ws") == "refused"
        assert len(webhooks(open_hub)) == before, "a cross-site page created a webhook"
        # The hub's own page (its origin) still writes: create a session from the lobby's script.
        d.get(f"http://127.0.0.1:{open_hub.port}/")
        status = d.execute_script("""return fetch("/api/sessions", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: "{}"}).then(r => r.status)""")
        assert status == 201
    finally:
        d.quit()
        site.shutdown()


def test_the_hubs_own_pages_still_connect_when_other_origins_are_allowed(tmp_path):
    hub = conftest.Hub("--allowed-origins", "https://app.example.com", data_dir=str(tmp_path)).start()
    try:
        code = api(hub, "POST", "/api/sessions", {})[1]["code"]

        async def main():
            for origin in (f"http://127.0.0.1:{hub.port}", "https://app.example.com"):
                ws = await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"],
                                              origin=origin)
                await ws.close()
            with pytest.raises(Exception):
                await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"],
                                         origin="https://other.example.com")
        asyncio.run(main())
    finally:
        hub.stop()


def test_open_mode_is_refused_where_loopback_says_nothing(tmp_path):
    # Behind a proxy (a public URL, trusted proxies): loopback is not "only me".
    for flags in (["--public-url", "https://chat.example.com"], ["--trusted-proxies", "127.0.0.1"]):
        code, out = serve(*flags, data=str(tmp_path / flags[0][2:]))
        assert code != 0 and "proxy" in out, (flags, out)
    # Open on purpose beyond loopback needs a Host allow-list (else DNS rebinding reaches it).
    code, out = serve("--host", "0.0.0.0", "--auth", "open", data=str(tmp_path / "open"))
    assert code != 0 and "--allowed-hosts" in out, out


def test_a_store_of_unknown_past_is_not_opened_by_itself(tmp_path):
    data = tmp_path / "d"
    hub = conftest.Hub(data_dir=str(data)).start()
    try:
        assert api(hub, "POST", "/api/sessions", {"title": "from before"})[0] == 201
    finally:
        hub.stop()
    # As a store written before the marks existed (it may have run closed with a flag now forgotten).
    os.remove(data / "auth-open")
    hub = conftest.Hub(data_dir=str(data)).start()
    try:
        assert api(hub, "GET", "/api/sessions", headers={})[0] == 401
    finally:
        hub.stop()


def test_a_second_key_lends_its_scopes_to_no_grant(closed):
    hub, keys = closed
    # keymaker (keys:admin, sessions:read, runs:read) beside a transcripts:read key: the grant is still
    # bounded by keymaker alone.
    status, reader = api(hub, "POST", "/api/keys", {"name": "reader", "scopes": ["transcripts:read"]},
                         {"X-API-Key": ADMIN})
    assert status == 201, reader
    both = {"X-API-Key": keys["keymaker"][0], "Authorization": "Bearer " + reader["key"]}
    status, body = api(hub, "POST", "/api/keys", {"name": "laundered", "scopes": ["transcripts:read"]}, both)
    assert status == 403, body


def test_cors_origins_let_a_browser_app_elsewhere_call_the_api(tmp_path):
    """`--cors-origins`: a page served from another origin reads the API's answers and writes through it (a
    preflighted JSON POST) in Chromium; a page on an origin not listed gets neither."""
    import shutil
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    if shutil.which("chromedriver") is None:
        pytest.skip("chromium-driver not installed")
    from test_browser import browser
    (tmp_path / "app.html").write_text("<!doctype html><title>app</title>")
    handler = lambda *a, **k: SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)
    sites = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for s in sites:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    app, other = (f"http://127.0.0.1:{s.server_address[1]}" for s in sites)
    hub = conftest.Hub("--cors-origins", app, "--admin-key", ADMIN, data_dir=str(tmp_path / "hub")).start()
    script = f"""return fetch("http://127.0.0.1:{hub.port}/api/sessions", {{method: "POST",
        headers: {{"Content-Type": "application/json", "X-API-Key": "{ADMIN}"}}, body: '{{"title": "from the app"}}'}})
        .then(r => r.json().then(b => r.status + " " + b.code + " " + r.headers.get("Location")), e => "blocked " + e)"""
    d = browser()
    try:
        d.get(app + "/app.html")
        answer = d.execute_script(script)
        assert answer.startswith("201 ") and "/api/sessions/" in answer, answer
        code = answer.split()[1]
        d.get(other + "/app.html")
        assert d.execute_script(script).startswith("blocked"), "an origin not listed read the answer"
        sessions = api(hub, "GET", "/api/sessions", headers={"X-API-Key": ADMIN})[1]["sessions"]
        assert [s["title"] for s in sessions].count("from the app") == 1, sessions
        assert any(s["code"] == code for s in sessions)
    finally:
        d.quit()
        hub.stop()
        for s in sites:
            s.shutdown()
