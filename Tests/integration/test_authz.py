"""The authorization table (Protocol/PROTOCOL.md, "Authorization"), probed on the real binary: every
HTTP surface and the WebSocket ones (/watch, /publish, replay) with every kind of credential, against
the status or close code the table names. Plus open mode, `--auth required`, secrets that are refused,
roles that follow the current token, and runs that may not attach themselves to strangers' sessions."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest
import websockets
import websockets.exceptions

import conftest
from hubclient import Client, api, eventually, run

SECRET = b"authz-secret-0123456789abcdef"
ADMIN = "authz-admin-key-0123456789"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(**claims):
    now = int(time.time())
    c = {"sub": "u1", "iat": now, "exp": now + 600, **claims}
    c = {k: v for k, v in c.items() if v is not None}
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(c).encode())
    sig = b64(hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def refused_status(exc_info):
    """The HTTP status of a refused WebSocket upgrade (the websockets library names its exception
    differently across versions)."""
    e = exc_info.value
    return getattr(e, "status_code", None) or e.response.status_code


REFUSED = tuple(getattr(websockets.exceptions, n) for n in ("InvalidStatus", "InvalidStatusCode") if hasattr(websockets.exceptions, n))


def make_key(data, name, scopes, runs=None, owners=None):
    cmd = [conftest.BINARY, "keys", "create", "--data", data, "--name", name, "--scopes", scopes]
    if runs:
        cmd += ["--runs", runs]
    if owners:
        cmd += ["--owners", owners]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return re.search(r"key: (\S+)", out).group(1)


ALL_SCOPES = "sessions:create,sessions:read,sessions:write,transcripts:read,runs:publish,runs:read,activity:read,metrics:read"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = str(tmp_path_factory.mktemp("authz"))
    os.makedirs(data, exist_ok=True)
    keys = {
        "key_unrelated": make_key(data, "unrelated", "webhooks:admin"),
        "key_scoped": make_key(data, "everything", ALL_SCOPES),
        "key_r1_only": make_key(data, "r1 only", "runs:publish", runs="r1"),
        "key_acme_owners": make_key(data, "acme runs", "runs:publish", owners="acme,team-*"),
    }
    hub = conftest.Hub("--threads", "2", "--jwt-secret", "k1=" + SECRET.decode(), "--admin-key", ADMIN,
                       data_dir=data).start()
    admin = {"X-API-Key": ADMIN}
    status, s = api(hub, "POST", "/api/sessions", {"title": "secret plans"}, admin)
    assert status == 201, s
    status, other = api(hub, "POST", "/api/sessions", {"title": "other"}, admin)
    assert status == 201
    assert api(hub, "POST", "/api/runs/r1/events", {"type": "started", "owner": "acme"}, admin)[0] == 202
    code = s["code"]
    creds = {
        "none": {},
        "malformed": {"Authorization": "Bearer not-a-credential"},
        "expired": {"Authorization": "Bearer " + token(session=code, role="editor", exp=int(time.time()) - 3600)},
        "other_session": {"Authorization": "Bearer " + token(session=other["code"], role="host")},
        "viewer": {"Authorization": "Bearer " + token(session=code, role="viewer")},
        "editor": {"Authorization": "Bearer " + token(session=code, role="editor")},
        "host": {"Authorization": "Bearer " + token(session=code, role="host")},
        "watcher": {"Authorization": "Bearer " + token(channels=["run:r1", "dashboard:acme"])},
        "host_key": {"X-Host-Key": s["host_key"]},
        "key_unrelated": {"X-API-Key": keys["key_unrelated"]},
        "key_scoped": {"X-API-Key": keys["key_scoped"]},
        "admin": admin,
    }
    yield {"hub": hub, "code": code, "host_key": s["host_key"], "creds": creds, "keys": keys}
    assert hub.alive(), hub.output()
    hub.stop()


# Who may do what (the table); anything else gets 401 without a valid credential, 403 with one.
UNAUTHENTICATED = {"none", "malformed", "expired"}
MATRIX = [
    ("POST", "/api/sessions", {"title": "x"}, {"key_scoped", "admin"}, 201),
    ("GET", "/api/sessions", None, {"key_scoped", "admin"}, 200),
    ("GET", "/api/sessions/{code}", None, {"viewer", "editor", "host", "host_key", "key_scoped", "admin"}, 200),
    ("GET", "/api/sessions/{code}/transcript", None, {"viewer", "editor", "host", "host_key", "key_scoped", "admin"}, 200),
    ("GET", "/api/sessions/{code}/transcript?format=ndjson", None, {"viewer", "editor", "host", "host_key", "key_scoped", "admin"}, 200),
    ("PATCH", "/api/sessions/{code}", {"title": "renamed"}, {"host", "host_key", "key_scoped", "admin"}, 200),
    ("GET", "/api/activity", None, {"key_scoped", "admin"}, 200),
    ("GET", "/metrics", None, {"key_scoped", "admin"}, 200),
    ("GET", "/api/runs", None, {"key_scoped", "admin"}, 200),
    ("GET", "/api/runs/r1", None, {"watcher", "key_scoped", "admin"}, 200),
    ("POST", "/api/runs/r1/events", {"type": "log", "line": "x"}, {"key_scoped", "admin"}, 202),
]


@pytest.mark.parametrize("method,path,body,allowed,ok", MATRIX, ids=[f"{m} {p}" for m, p, *_ in MATRIX])
def test_every_http_surface_with_every_credential(world, method, path, body, allowed, ok):
    hub, code = world["hub"], world["code"]
    wrong = []
    for name, headers in world["creds"].items():
        status, answer = api(hub, method, path.format(code=code), body, headers)
        want = ok if name in allowed else (401 if name in UNAUTHENTICATED else 403)
        if status != want:
            wrong.append(f"{name}: {status} (expected {want}) {answer}")
        if status in (401, 403):
            # An expired token is told apart from a wrong one (issue 28): a client knows to fetch a fresh one.
            codes = ("token_expired",) if name == "expired" else ("unauthorized", "forbidden")
            assert answer["error"]["code"] in codes, answer
    assert not wrong, "\n".join(wrong)


def test_ending_a_session_needs_its_host(world):
    hub = world["hub"]
    admin = {"X-API-Key": ADMIN}
    status, s = api(hub, "POST", "/api/sessions", {}, admin)
    code = s["code"]
    for name, headers in world["creds"].items():
        if name in ("host", "host_key", "key_scoped", "admin"):
            continue
        status, _ = api(hub, "POST", f"/api/sessions/{code}/end", {}, headers)
        assert status in (401, 403), f"{name} ended a session: {status}"
    assert api(hub, "POST", f"/api/sessions/{code}/end", {}, {"X-Host-Key": s["host_key"]})[0] == 202


def test_watch_needs_a_token_covering_the_channel_or_runs_read(world):
    hub, keys = world["hub"], world["keys"]

    async def subscribe(url, channel, tok=None):
        async with websockets.connect(url, subprotocols=["collabhub.v1"]) as ws:
            msg = {"type": "subscribe", "channel": channel}
            if tok:
                msg["token"] = tok
            await ws.send(json.dumps(msg))
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    async def main():
        base = f"{hub.url}/watch"
        # Nothing, a member token, a key without runs:read: refused.
        for url, tok in [(base, None), (base, token(session=world["code"], role="host")),
                         (f"{base}?key={keys['key_unrelated']}", None)]:
            m = await subscribe(url, "run:r1", tok)
            assert m["type"] == "error" and m["code"] in ("forbidden", "unauthorized"), m
        # A watcher token covers run:r1 and dashboard:acme, not run:r2 or dashboard:other.
        w = token(channels=["run:r1", "dashboard:acme"])
        assert (await subscribe(base, "run:r1", w))["type"] == "run_snapshot"
        assert (await subscribe(base, "dashboard:acme", w))["type"] == "dashboard"
        assert (await subscribe(base, "run:r2", w))["code"] == "forbidden"
        assert (await subscribe(base, "dashboard:other", w))["code"] == "forbidden"
        prefix = token(channels=["run:r*"])
        assert (await subscribe(base, "run:r1", prefix))["type"] == "run_snapshot"
        # Keys on the upgrade: runs:read or the admin key.
        assert (await subscribe(f"{base}?key={keys['key_scoped']}", "dashboard:anyone"))["type"] == "dashboard"
        assert (await subscribe(f"{base}?key={ADMIN}", "run:r1"))["type"] == "run_snapshot"
        # An unknown key is refused at the upgrade.
        with pytest.raises(REFUSED) as e:
            await subscribe(f"{base}?key=chk_nope_nope", "run:r1")
        assert refused_status(e) == 401
    run(main())


def test_publish_socket_and_run_limits(world):
    hub, keys, code = world["hub"], world["keys"], world["code"]

    async def main():
        with pytest.raises(REFUSED) as e:
            await websockets.connect(f"{hub.url}/publish", subprotocols=["collabhub.v1"])
        assert refused_status(e) == 401
        with pytest.raises(REFUSED) as e:
            await websockets.connect(f"{hub.url}/publish?key={keys['key_unrelated']}", subprotocols=["collabhub.v1"])
        assert refused_status(e) == 403
        async with websockets.connect(f"{hub.url}/publish?key={keys['key_r1_only']}", subprotocols=["collabhub.v1"]) as ws:
            await ws.send(json.dumps({"type": "run_event", "run": "r2", "event": {"type": "started", "owner": "acme"}}))
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m["type"] == "error" and m["code"] == "forbidden", m
            await ws.send(json.dumps({"type": "run_event", "run": "r1", "event": {"type": "log", "line": "from r1 key"}}))
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m["type"] == "ack", m
    run(main())
    # HTTP: the r1-only key may not publish to r2; no key without sessions:write may attach a run to a session.
    r1 = {"X-API-Key": keys["key_r1_only"]}
    assert api(hub, "POST", "/api/runs/r2/events", {"type": "started", "owner": "acme"}, r1)[0] == 403
    status, body = api(hub, "POST", "/api/runs/r1b/events", {"type": "started", "owner": "acme", "session": code}, r1)
    assert status == 403, body
    status, body = api(hub, "POST", "/api/runs/r1c/events", {"type": "started", "owner": "acme", "session": code},
                       {"X-API-Key": keys["key_scoped"]})
    assert status == 202, body


def test_a_key_with_owners_starts_runs_for_those_owners_only(world):
    """A run's owner decides whose dashboards show it: a key with `owners` may not start runs for anyone
    else, over HTTP (single events and batches) and on /publish; its other events are not affected."""
    hub, keys = world["hub"], world["keys"]
    acme = {"X-API-Key": keys["key_acme_owners"]}
    status, body = api(hub, "POST", "/api/runs/own-1/events", {"type": "started", "owner": "globex"}, acme)
    assert status == 403 and body["error"]["code"] == "forbidden" and body["error"]["field"] == "owner", body
    assert "globex" in body["error"]["message"], body
    status, body = api(hub, "POST", "/api/runs/own-1/events",
                       {"events": [{"type": "started", "owner": "acme"}, {"type": "started", "owner": "acme-x"}]}, acme)
    assert status == 403 and body["error"]["field"] == "events[1].owner", body
    assert api(hub, "GET", "/api/runs/own-1")[0] == 404, "nothing of the refused batch was stored"
    assert api(hub, "POST", "/api/runs/own-1/events", {"type": "started", "owner": "acme"}, acme)[0] == 202
    assert api(hub, "POST", "/api/runs/own-2/events", {"type": "started", "owner": "team-blue"}, acme)[0] == 202
    assert api(hub, "POST", "/api/runs/own-1/events", {"type": "log", "line": "still mine"}, acme)[0] == 202
    # A key without owners starts runs for anyone, as before.
    assert api(hub, "POST", "/api/runs/own-3/events", {"type": "started", "owner": "globex"},
               {"X-API-Key": keys["key_scoped"]})[0] == 202

    async def main():
        async with websockets.connect(f"{hub.url}/publish?key={keys['key_acme_owners']}",
                                      subprotocols=["collabhub.v1"]) as ws:
            await ws.send(json.dumps({"type": "run_event", "run": "own-4", "id": "s1",
                                      "event": {"type": "started", "owner": "globex"}}))
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m["type"] == "error" and m["code"] == "forbidden" and m["field"] == "owner", m
            await ws.send(json.dumps({"type": "run_event", "run": "own-4", "event": {"type": "started", "owner": "team-a"}}))
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m["type"] == "ack", m
    run(main())
    # Over HTTP with keys:admin: the list is stored with the key, shown with it, and enforced.
    admin = {"X-API-Key": ADMIN}
    for bad in [[""], "acme", [1], ["x" * 129]]:
        status, body = api(hub, "POST", "/api/keys", {"name": "bad", "scopes": ["runs:publish"], "owners": bad}, admin)
        assert status == 400 and "owners" in body["error"]["message"], (bad, body)
    status, made = api(hub, "POST", "/api/keys",
                       {"name": "globex runs", "scopes": ["runs:publish"], "owners": ["globex, inc."]}, admin)
    assert status == 201 and made["owners"] == ["globex, inc."], made
    listed = api(hub, "GET", "/api/keys", headers=admin)[1]["keys"]
    assert next(k for k in listed if k["id"] == made["id"])["owners"] == ["globex, inc."]
    globex = {"X-API-Key": made["key"]}
    assert api(hub, "POST", "/api/runs/own-5/events", {"type": "started", "owner": "acme"}, globex)[0] == 403
    assert api(hub, "POST", "/api/runs/own-5/events", {"type": "started", "owner": "globex, inc."}, globex)[0] == 202


def test_replay_goes_through_the_same_admission_as_join(world):
    hub, code, keys = world["hub"], world["code"], world["keys"]

    async def replay(**fields):
        async with websockets.connect(f"{hub.url}/ws", subprotocols=["collabhub.v1"]) as ws:
            await ws.send(json.dumps({"type": "replay", "session": code, "speed": 1000, **fields}))
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    async def main():
        for fields in [{}, {"token": token(session="ZZZZZZZZ", role="host")}, {"key": keys["key_unrelated"]},
                       {"host_key": "wrong"}, {"token": token(channels=["run:*"])}]:
            m = await replay(**fields)
            assert m["type"] == "error" and m["code"] in ("unauthorized", "forbidden"), (fields, m)
        for fields in [{"token": token(session=code, role="viewer")}, {"host_key": world["host_key"]},
                       {"key": keys["key_scoped"]}, {"key": ADMIN}]:
            m = await replay(**fields)
            assert m["type"] == "replay_started", (fields, m)
    run(main())


def test_roles_follow_the_current_token(world):
    hub, code = world["hub"], world["code"]

    async def main():
        c = await Client.connect(hub, code, validate=False)
        await c.join("Ann", token=token(sub="ann", session=code, role="editor"))
        await c.send({"type": "chat", "id": "c1", "text": "as editor"})
        assert (await c.expect("ack"))["id"] == "c1"
        await c.send({"type": "refresh", "token": token(sub="ann", session=code, role="viewer")})
        m = await c.expect("token_refreshed", skip=("presence", "chat", "cursors", "typing"))
        await c.send({"type": "chat", "id": "c2", "text": "as viewer"})
        while True:
            m = await c.recv()
            if m["type"] == "error":
                assert m["code"] == "forbidden", m
                break
            assert m["type"] in ("presence", "cursors", "typing"), m
        # A second tab with an editor token makes the member an editor again.
        d = await Client.connect(hub, code, validate=False)
        joined = await d.join("Ann", token=token(sub="ann", session=code, role="editor"))
        assert joined["you"]["role"] == "editor", joined
    run(main())


def test_open_mode_says_so_and_auth_required_refuses_to_start(tmp_path):
    hub = conftest.Hub(data_dir=str(tmp_path / "open")).start()
    try:
        status, body = api(hub, "GET", "/api/mode", headers={})
        assert status == 200 and body["open"] is True and "anyone" in body["notice"]
        with urllib.request.urlopen(hub.http + "/healthz", timeout=5) as r:
            assert "open mode" in r.read().decode()
        assert api(hub, "GET", "/api/sessions", headers={})[0] == 200   # open: no credential needed
    finally:
        hub.stop()
    closed = conftest.Hub("--admin-key", ADMIN, data_dir=str(tmp_path / "closed")).start()
    try:
        assert api(closed, "GET", "/api/mode", headers={})[1]["open"] is False
        with urllib.request.urlopen(closed.http + "/healthz", timeout=5) as r:
            assert r.read().decode().splitlines()[0] == "ok"   # then the version line
    finally:
        closed.stop()
    proc = subprocess.run([conftest.BINARY, "serve", "--port", "0", "--auth", "required", "--data", str(tmp_path / "req")],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0 and "no credential" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--jwt-secret", ""], "at least 16 bytes"),
    (["--jwt-secret", "short"], "at least 16 bytes"),
    (["--jwt-secret", "k1="], "at least 16 bytes"),
    (["--admin-key", ""], "at least 16 bytes"),
    (["--publish-key", "K"], "at least 16 bytes"),
])
def test_empty_or_short_secrets_are_refused(tmp_path, args, needle):
    proc = subprocess.run([conftest.BINARY, "serve", "--port", "0", "--data", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0 and needle in proc.stderr, (proc.returncode, proc.stderr)


def test_a_base64_secret_with_padding_is_taken_whole(tmp_path):
    secret = base64.b64encode(b"0123456789abcdef").decode()   # ends in "=="
    assert secret.endswith("=")
    hub = conftest.Hub("--jwt-secret", secret, "--admin-key", ADMIN, data_dir=str(tmp_path)).start()
    try:
        now = int(time.time())
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"sub": "u", "session": "*", "role": "viewer", "exp": now + 60}).encode())
        sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
        status, s = api(hub, "POST", "/api/sessions", {}, {"X-API-Key": ADMIN})
        status, _ = api(hub, "GET", f"/api/sessions/{s['code']}", headers={"Authorization": f"Bearer {head}.{body}.{sig}"})
        assert status == 200
    finally:
        hub.stop()


def test_keys_are_managed_over_http_with_keys_admin(world):
    hub = world["hub"]
    admin = {"X-API-Key": ADMIN}
    # Without keys:admin: refused.
    assert api(hub, "POST", "/api/keys", {"name": "x", "scopes": ["sessions:read"]}, {"X-API-Key": world["keys"]["key_scoped"]})[0] == 403
    assert api(hub, "GET", "/api/keys", headers={})[0] == 401
    status, bad = api(hub, "POST", "/api/keys", {"name": "x", "scopes": ["root"]}, admin)
    assert status == 400 and "root" in bad["error"]["message"]
    status, made = api(hub, "POST", "/api/keys", {"name": "reader", "scopes": ["sessions:read"], "per_minute": 5}, admin)
    assert status == 201 and made["key"].startswith("chk_") and made["scopes"] == ["sessions:read"], made
    reader = {"X-API-Key": made["key"]}
    assert api(hub, "GET", "/api/sessions", headers=reader)[0] == 200
    assert api(hub, "GET", "/api/activity", headers=reader)[0] == 403       # not its scope
    # Every request made with a key counts toward its quota (5 a minute here), refused ones included.
    status, usage = api(hub, "GET", f"/api/keys/{made['id']}/usage", headers=reader)
    assert status == 200 and usage["minute"] == 3, usage
    statuses = [api(hub, "GET", "/api/sessions", headers=reader)[0] for _ in range(5)]
    assert statuses.count(429) >= 2, statuses
    listed = api(hub, "GET", "/api/keys", headers=admin)[1]["keys"]
    assert any(k["id"] == made["id"] and k["active"] for k in listed) and all("key" not in k for k in listed)
    # Revoked: refused at once, not after a cache's lifetime.
    assert api(hub, "DELETE", f"/api/keys/{made['id']}", headers=admin)[0] == 200
    assert api(hub, "GET", "/api/sessions", headers=reader)[0] == 401
    assert api(hub, "DELETE", f"/api/keys/{made['id']}", headers=admin)[0] == 404
    # Key changes are in the activity log.
    log = api(hub, "GET", "/api/activity?limit=200", headers=admin)[1]
    actions = [e["action"] for e in log["activity"]]
    assert "api_key_created" in actions and "api_key_revoked" in actions and "access_refused" in actions


def test_auth_failures_are_logged_once_a_minute_per_address_and_proxies_only_when_trusted(tmp_path):
    hub = conftest.Hub("--admin-key", ADMIN, "--trusted-proxies", "127.0.0.1", data_dir=str(tmp_path)).start()
    try:
        for _ in range(50):
            assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": "chk_nope_nope"})[0] == 401
        log = api(hub, "GET", "/api/activity?limit=500")[1]["activity"]
        failed = [e for e in log if e["action"] == "auth_failed"]
        assert len(failed) == 1, failed    # 50 failures, one entry (the rest are summed up when the minute ends)
        # The loopback peer is a trusted proxy here: its X-Forwarded-For (last hop) names the client.
        api(hub, "GET", "/api/sessions", headers={"X-API-Key": "chk_bad_bad", "X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
        log = api(hub, "GET", "/api/activity?limit=500")[1]["activity"]
        assert any(e["action"] == "auth_failed" and e.get("address") == "203.0.113.9" for e in log), log[:5]
    finally:
        hub.stop()
    untrusted = conftest.Hub("--admin-key", ADMIN, data_dir=str(tmp_path / "u")).start()
    try:
        api(untrusted, "GET", "/api/sessions", headers={"X-API-Key": "chk_bad_bad", "X-Forwarded-For": "203.0.113.9"})
        # The activity log is written with the next group commit: wait for the entry, not a fixed time.
        log = eventually(lambda: [e for e in api(untrusted, "GET", "/api/activity?limit=500")[1]["activity"]
                                  if e["action"] == "auth_failed"], what="the auth_failed entry")
        assert all(e.get("address") != "203.0.113.9" for e in log)
        assert any(e.get("address") == "127.0.0.1" for e in log), log[:5]
    finally:
        untrusted.stop()


def test_a_resume_with_a_fresh_token_keeps_the_member(world):
    """A client whose token expired reconnects within the grace with a fresh token for the same person
    (as the browser client's getToken does): the same member resumes, nobody sees it leave and rejoin."""
    hub, code = world["hub"], world["code"]

    async def main():
        watcher = await Client.connect(hub, code, validate=False)
        await watcher.join("Host", host_key=world["host_key"])
        c = await Client.connect(hub, code, validate=False)
        first = await c.join("Ann", token=token(sub="grace", session=code, role="editor", exp=int(time.time()) + 60))
        await c.ws.close()
        await asyncio.sleep(0.3)
        d = await Client.connect(hub, code, validate=False)
        again = await d.join("Ann", token=token(sub="grace", session=code, role="editor", exp=int(time.time()) + 3600),
                             resume_from=first["seq"])
        assert again["you"]["id"] == first["you"]["id"], (first["you"], again["you"])
        seen = []
        try:
            while True:
                seen.append(await watcher.recv(timeout=1))
        except asyncio.TimeoutError:
            pass
        # Only Ann's own leave counts: members of earlier tests in this module's session may reach the end
        # of their reconnect grace (10 s) while this test watches, and leave then, as they should.
        mine = first["you"]["id"]
        leaves = [m for m in seen if m["type"] == "presence" and any(x["id"] == mine for x in m.get("leaves", []))]
        assert not leaves, leaves
    run(main())


def test_revocation_reaches_open_sockets_and_odd_credentials_open_nothing(world):
    hub, code = world["hub"], world["code"]
    admin = {"X-API-Key": ADMIN}
    made = api(hub, "POST", "/api/keys", {"name": "worker", "scopes": ["runs:publish"]}, admin)[1]

    async def main():
        async with websockets.connect(f"{hub.url}/publish?key={made['key']}", subprotocols=["collabhub.v1"]) as ws:
            await ws.send(json.dumps({"type": "run_event", "run": "rv", "event": {"type": "started", "owner": "acme"}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "ack"
            assert api(hub, "DELETE", f"/api/keys/{made['id']}", headers=admin)[0] == 200
            await ws.send(json.dumps({"type": "run_event", "run": "rv", "event": {"type": "log", "line": "after revocation"}}))
            m = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert m["type"] == "error" and m["code"] == "forbidden", m
    run(main())
    # A publisher token names a backend: it reads no transcript. A wrong host key is no credential (401).
    publisher = {"Authorization": "Bearer " + token(session="*", role="publisher")}
    assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers=publisher)[0] == 403
    assert api(hub, "GET", f"/api/sessions/{code}", headers={"X-Host-Key": "junk"})[0] == 401
    # Another Authorization scheme (a proxy's Basic auth) is not ours: the API key beside it still counts.
    assert api(hub, "GET", "/api/sessions", headers={"Authorization": "Basic dTpw", "X-API-Key": ADMIN})[0] == 200
    assert api(hub, "GET", "/api/sessions", headers={"Authorization": "bearer " + ADMIN})[0] == 200
