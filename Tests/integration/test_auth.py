"""Tokens, roles, guests, limits and API keys against the real hub. Tokens are made here with Python's
hmac (an independent HS256 implementation), so the hub's verifier is checked against another one."""
import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import time

import pytest
import websockets

import conftest
from hubclient import Client, api, create_session, run


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, secret=b"secret-two-0123456789", kid="k2", alg="HS256", sign=True):
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest()) if sign else ""
    return signing + "." + sig


def claims(**kw):
    now = int(time.time())
    c = {"sub": "u1", "name": "Ann", "session": "*", "role": "editor", "iat": now, "exp": now + 600}
    c.update(kw)
    return c


@pytest.fixture(scope="module")
def auth_hub(tmp_path_factory):
    hub = conftest.Hub("--threads", "2", "--jwt-secret", "k1=secret-one-0123456789", "--jwt-secret", "k2=secret-two-0123456789", "--jwt-skew", "1",
                       "--admin-key", "auth-admin-key-0123456789",
                       "--max-connections-per-address", "40", "--limit-cursor", "60",
                       data_dir=str(tmp_path_factory.mktemp("auth"))).start()
    yield hub
    assert hub.alive(), hub.output()
    assert hub.stop() == 0


async def join_expect_close(hub, code, msg, close_code):
    c = await Client.connect(hub, code)
    await c.send(msg)
    err = await c.recv()
    assert err["type"] == "error", err
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await c.recv()
    assert closed.value.rcvd.code == close_code, closed.value.rcvd
    return err


def test_valid_tokens_with_rotated_keys_and_roles(auth_hub):
    async def main():
        code = create_session(auth_hub)["code"]
        a = await Client.connect(auth_hub, code)
        j = await a.join("ignored", token=token(claims(sub="u1", name="Ann", role="host"), secret=b"secret-one-0123456789", kid="k1"))
        assert j["you"]["name"] == "Ann" and j["you"]["role"] == "host"
        b = await Client.connect(auth_hub, code)
        jb = await b.join("x", token=token(claims(sub="u2", name="Vic", role="viewer", session=code)))
        assert jb["you"]["role"] == "viewer"
        # Two tabs of one user are one member.
        a2 = await Client.connect(auth_hub, code)
        j2 = await a2.join("x", token=token(claims(sub="u1", name="Ann", role="host"), secret=b"secret-one-0123456789", kid="k1"))
        assert j2["you"]["id"] == j["you"]["id"] and j2["you"]["connections"] == 2
        # A viewer reads but cannot send anything that would broadcast.
        for m in [{"type": "chat", "id": "v", "text": "hi"}, {"type": "cursor", "x": 1, "y": 1}, {"type": "typing", "state": "start"},
                  {"type": "event", "name": "x", "data": {}}]:
            await b.send(m)
            assert (await b.expect("error"))["code"] == "forbidden"
        await a.send({"type": "chat", "id": "h", "text": "from host"})
        assert (await b.expect("chat"))["text"] == "from host"
    run(main())


@pytest.mark.parametrize("make,code,kind", [
    (lambda: token(claims(), secret=b"wrong"), 4003, "unauthorized"),
    (lambda: token(claims(), alg="none", sign=False), 4003, "unauthorized"),
    (lambda: token(claims(), alg="HS512"), 4003, "unauthorized"),
    (lambda: token(claims(), kid="k9"), 4003, "unauthorized"),
    (lambda: "not.a.jwt", 4003, "unauthorized"),
    (lambda: token(claims(exp=int(time.time()) - 120)), 4001, "token_expired"),
    (lambda: token(claims(nbf=int(time.time()) + 600)), 4001, "token_expired"),
    (lambda: token(claims(role="admin")), 4003, "unauthorized"),
])
def test_bad_tokens_are_refused(auth_hub, make, code, kind):
    async def main():
        session = create_session(auth_hub)["code"]
        err = await join_expect_close(auth_hub, session, {"type": "join", "token": make()}, code)
        assert err["code"] == kind and err["field"] == "token"
    run(main())


def test_token_for_another_session_and_tampered_payload(auth_hub):
    async def main():
        s1, s2 = create_session(auth_hub)["code"], create_session(auth_hub)["code"]
        err = await join_expect_close(auth_hub, s2, {"type": "join", "token": token(claims(session=s1))}, 4003)
        assert err["code"] == "forbidden"
        good = token(claims(role="viewer")).split(".")
        forged_payload = b64(json.dumps(claims(role="host")).encode())
        await join_expect_close(auth_hub, s1, {"type": "join", "token": ".".join([good[0], forged_payload, good[2]])}, 4003)
    run(main())


def test_guests_only_when_the_session_allows(auth_hub):
    async def main():
        closed = create_session(auth_hub)["code"]   # default with tokens configured: guests denied
        err = await join_expect_close(auth_hub, closed, {"type": "join", "name": "Guest"}, 4001)
        assert err["code"] == "guests_not_allowed"
        assert api(auth_hub, "GET", f"/api/sessions/{closed}")[1]["guest_policy"] == "deny"
        open_ = create_session(auth_hub, guest_policy="allow")["code"]
        g = await Client.connect(auth_hub, open_)
        assert (await g.join("Guest"))["you"]["role"] == "editor"
    run(main())


def test_token_expiry_warning_refresh_and_close(auth_hub):
    async def main():
        code = create_session(auth_hub)["code"]
        exp = int(time.time()) + 31   # inside the 30 s warning window within a second or two
        a = await Client.connect(auth_hub, code)
        await a.join("x", token=token(claims(sub="ref", exp=exp)))
        b = await Client.connect(auth_hub, code)
        await b.join("x", token=token(claims(sub="norefresh", exp=int(time.time()) + 2)))
        warn = await a.expect("token_expiring", timeout=5)
        assert warn["exp"] == exp
        await a.send({"type": "refresh", "token": token(claims(sub="ref", exp=int(time.time()) + 600))})
        assert (await a.expect("token_refreshed"))["exp"] > exp
        await b.send({"type": "refresh", "token": token(claims(sub="someone-else"))})
        assert (await b.expect("error", skip=("token_expiring", "presence")))["code"] == "forbidden"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await b.recv(timeout=10)
        assert closed.value.rcvd.code == 4001
        await a.send({"type": "ping", "id": "still"})
        assert (await a.expect("pong", skip=("presence", "token_expiring")))["id"] == "still"
    run(main())


def test_flood_is_rate_limited_without_hurting_others(auth_hub):
    async def main():
        code = create_session(auth_hub, guest_policy="allow")["code"]
        flood, calm, watcher = [await Client.connect(auth_hub, code) for _ in range(3)]
        await flood.join("Flood"); await calm.join("Calm"); await watcher.join("W")
        for i in range(600):
            await flood.send({"type": "cursor", "x": i, "y": i})
        assert (await flood.expect("error", skip=("presence", "cursors")))["code"] == "rate_limited"
        t = time.time()
        await calm.send({"type": "chat", "id": "c", "text": "still fast"})
        assert (await watcher.expect("chat", skip=("presence", "cursors")))["text"] == "still fast"
        assert time.time() - t < 0.5
        for i in range(3000):
            await flood.send({"type": "cursor", "x": i, "y": i})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await flood.recv()
        assert closed.value.rcvd.code == 4008
    run(main())


def test_connections_per_address_limited(make_hub):
    hub = make_hub("--threads", "1", "--echo", "--max-connections-per-address", "3")

    async def main():
        socks = [await websockets.connect(f"{hub.url}/echo", close_timeout=1) for _ in range(3)]
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(f"{hub.url}/echo")
        assert e.value.status_code == 429
        await socks[0].close()
        await asyncio.sleep(0.1)
        extra = await websockets.connect(f"{hub.url}/echo", close_timeout=1)
        await extra.close()
        for s in socks[1:]:
            await s.close()
    asyncio.run(main())


def test_cross_origin_websocket_refused(make_hub):
    hub = make_hub("--threads", "1", "--allowed-origins", "https://app.example")

    async def main():
        code = create_session(hub)["code"]
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"], origin="https://evil.example")
        assert e.value.status_code == 403
        ok = await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"], origin="https://app.example", close_timeout=1)
        await ok.close()
    asyncio.run(main())


def start_run(hub, key, run):
    """POSTs a run's `started` event with an API key: (status, headers, body)."""
    import urllib.request
    req = urllib.request.Request(f"{hub.http}/api/runs/{run}/events", data=json.dumps({"type": "started", "owner": "ci"}).encode(),
                                 method="POST", headers={"X-API-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_api_keys_limits_and_revocation(make_hub):
    # (With an admin key, to read the activity log at the end: a hub that had an API key is never in open
    # mode again, revoked or not.)
    hub = make_hub("--threads", "1", "--key-refresh", "0.2", "--admin-key", "admin-key-for-the-key-test")
    out = subprocess.run([conftest.BINARY, "keys", "create", "--data", hub.data_dir, "--name", "ci", "--per-minute", "3"],
                         capture_output=True, text=True, check=True).stdout
    key = next(l.split()[1] for l in out.splitlines() if l.startswith("key:"))
    key_id = next(l.split()[1] for l in out.splitlines() if l.startswith("id:"))

    def post(k, i):
        status, headers, _ = start_run(hub, k, f"k{i}")
        return status, headers
    statuses = [post(key, i) for i in range(4)]
    assert [s for s, _ in statuses[:3]] == [202, 202, 202]
    assert statuses[0][1]["X-RateLimit-Limit"] == "3" and statuses[2][1]["X-RateLimit-Remaining"] == "0"
    status, headers = statuses[3]
    assert status == 429 and int(headers["Retry-After"]) > 0 and headers["X-RateLimit-Remaining"] == "0"
    assert post("chk_nope_nope", 9)[0] == 401
    assert post(key[:-2] + "xx", 9)[0] == 401
    subprocess.run([conftest.BINARY, "keys", "revoke", "--data", hub.data_dir, key_id], check=True, capture_output=True)
    # The hub reads the key table every --key-refresh seconds: the revocation lands within that.
    deadline = time.time() + 5
    while post(key, 10)[0] != 401:
        assert time.time() < deadline, "the revoked key still works"
        time.sleep(0.1)
    listing = subprocess.run([conftest.BINARY, "keys", "list", "--data", hub.data_dir], capture_output=True, text=True).stdout
    assert "revoked" in listing and key.split("_")[2] not in listing
    actions = [e["action"] for e in api(hub, "GET", "/api/activity")[1]["activity"]]
    assert "api_key_created" in actions and "api_key_revoked" in actions


def test_api_key_monthly_quota_survives_a_restart(make_hub):
    hub = make_hub("--threads", "1")
    out = subprocess.run([conftest.BINARY, "keys", "create", "--data", hub.data_dir, "--name", "q", "--per-month", "3"],
                         capture_output=True, text=True, check=True).stdout
    key = next(l.split()[1] for l in out.splitlines() if l.startswith("key:"))

    def post(h, i):
        status, _, body = start_run(h, key, f"q{i}")
        return status, body
    assert [post(hub, i)[0] for i in range(2)] == [202, 202]
    assert hub.stop() == 0
    again = make_hub("--threads", "1", data_dir=hub.data_dir)
    assert post(again, 2)[0] == 202, "one request of the month's three is left"
    status, body = post(again, 3)
    assert status == 429 and "monthly quota of 3" in body, body
