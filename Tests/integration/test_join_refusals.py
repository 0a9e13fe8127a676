"""A refused join is said, then the socket is closed: each refusal's `error` comes first, then the close
code PROTOCOL.md names for it and a reason (the real hub on loopback, Python `websockets`)."""
import base64
import hashlib
import hmac
import json
import time

import pytest
import websockets

from hubclient import Client, api, create_session, run

SECRET = "refusals-secret-0123456789"
ADMIN = "refusals-admin-key-0123456789"


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


async def refused(hub, code, join):
    """Sends `join` on a fresh socket; returns (the first message, close code, close reason), and checks
    that nothing but the close follows the error."""
    c = await Client.connect(hub, code)
    await c.send({"type": "join", **join})
    first = await c.recv()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        extra = await c.recv(5)
        raise AssertionError(f"after the refusal, {extra} instead of the close")
    rcvd = closed.value.rcvd
    assert rcvd is not None, "the hub closed without a close frame"
    return first, rcvd.code, rcvd.reason


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from conftest import Hub
    h = Hub("--threads", "2", "--jwt-secret", SECRET, "--jwt-skew", "1", "--admin-key", ADMIN,
            data_dir=str(tmp_path_factory.mktemp("refusals"))).start()
    yield h
    assert h.alive(), h.output()
    assert h.stop() == 0, h.output()


def test_every_refused_join_gets_its_error_then_its_close_code_and_a_reason(hub):
    open_session = create_session(hub, title="open", guest_policy="allow", max_participants=1)
    closed_session = create_session(hub, title="members only", guest_policy="deny")
    other = create_session(hub, title="another")
    ended = create_session(hub, title="over", guest_policy="allow")
    assert api(hub, "POST", f"/api/sessions/{ended['code']}/end", {"reason": "done"},
               {"X-Host-Key": ended["host_key"]})[0] == 202

    async def main():
        # The one seat of the open session is taken.
        seated = await Client.connect(hub, open_session["code"])
        await seated.join("Seated")
        now = int(time.time())
        cases = [
            # (session code, join, error code, error field, close code, words in the reason)
            ("ZZZZZZZZ", {"name": "x"}, "unknown_session", "session", 4404, "unknown session"),
            # (a session still held in memory answers without a field, one read from the directory names it)
            (ended["code"], {"name": "x"}, "session_ended", "session?", 4004, "session ended"),
            (open_session["code"], {"name": "x"}, "session_full", None, 4006, "session full"),
            (closed_session["code"], {"name": "x"}, "guests_not_allowed", None, 4001, "admits only people with a token"),
            (closed_session["code"], {"name": "x", "token": token(secret="another-secret-0123456789", session="*")},
             "unauthorized", "token", 4003, ""),
            (closed_session["code"], {"name": "x", "token": token(session="*", exp=now - 120, iat=now - 600)},
             "token_expired", "token", 4001, ""),
            (closed_session["code"], {"name": "x", "token": token(session=other["code"], role="editor")},
             "forbidden", "token", 4003, other["code"]),
            (closed_session["code"], {"name": "x", "token": token(session=closed_session["code"], scope="replay")},
             "forbidden", "token", 4003, "playback"),
        ]
        for code, join, error, field, close, words in cases:
            first, got_close, reason = await refused(hub, code, join)
            what = f"{error}: {first}, close {got_close} {reason!r}"
            assert first["type"] == "error" and first["code"] == error, what
            assert first.get("field") == field or (field == "session?" and first.get("field") in (None, "session")), what
            assert got_close == close, what
            assert reason, f"{error}: the close carries no reason"
            assert words in reason, what
        # The seated member is untouched by the refusals around it.
        await seated.send({"type": "chat", "id": "still-here", "text": "still here"})
        assert (await seated.expect("ack"))["id"] == "still-here"
    run(main())
    # Counted under the close codes the hub sent.
    metrics = api(hub, "GET", "/metrics")[1].decode()
    for code in ("4404", "4004", "4006", "4001", "4003"):
        line = next(x for x in metrics.splitlines() if x.startswith(f'collabhub_closes_total{{code="{code}"}}'))
        assert int(line.split()[-1]) >= 1, line


def test_a_malformed_join_and_a_transient_failure_leave_the_socket_open(hub):
    """Only refusals close: a join that names a different session than its URL is a client bug, answered
    with `invalid_field` on a socket that can still join properly."""
    code = create_session(hub, title="fix it", guest_policy="allow")["code"]

    async def main():
        c = await Client.connect(hub, code)
        await c.send({"type": "join", "name": "x", "session": "ZZZZZZZZ"})
        err = await c.recv()
        assert err["code"] == "invalid_field" and err["field"] == "session", err
        joined = await c.join("Fixed")
        assert joined["type"] == "joined"
    run(main())


def test_refusals_keep_counting_toward_the_failed_join_throttle(make_hub):
    """Each unknown code closes its socket with 4404; a fresh socket per guess still meets the per-address
    throttle (4008 after about 20 failures)."""
    hub = make_hub("--threads", "1")

    async def main():
        closes = []
        for i in range(24):
            c = await Client.connect(hub, f"ZZZZZZ{'ABCDEFGH'[i % 8]}{'23456789'[i % 8]}")
            await c.send({"type": "join", "name": "x"})
            codes = []
            try:
                while True:
                    codes.append((await c.recv())["code"])
            except websockets.ConnectionClosed as e:
                closes.append((codes, e.rcvd.code if e.rcvd else None))
        return closes
    closes = run(main())
    unknown = [i for i, (codes, close) in enumerate(closes) if codes == ["unknown_session"] and close == 4404]
    limited = [i for i, (codes, close) in enumerate(closes) if codes == ["rate_limited"] and close == 4008]
    assert 18 <= len(unknown) <= 21 and unknown == list(range(len(unknown))), closes
    assert limited == list(range(len(unknown), 24)), closes


def test_the_close_arrives_even_when_the_client_keeps_talking(hub):
    """A client that sends more after its refused join gets nothing else: the close is on its way."""
    async def main():
        c = await Client.connect(hub, "YYYYYYYY")
        await c.send({"type": "join", "name": "x"})
        for i in range(3):
            try:
                await c.send({"type": "chat", "id": f"c{i}", "text": "anyone?"})
            except websockets.ConnectionClosed:
                break
        got = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                got.append(await c.recv(5))
        assert [m["code"] for m in got] == ["unknown_session"], got
        assert closed.value.rcvd.code == 4404
    run(main())
