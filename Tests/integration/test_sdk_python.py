"""The Python server SDK (Sources/Clients/python), as a user gets it: pip-installed into a temporary
directory and imported from there, then driven against the real hub: sessions, messages, transcripts
(paged), tokens, run events (batched, idempotent), webhooks to a real receiver verified with the SDK, API
keys, retries against real 429s and refused connections, `mypy --strict`, and the README's example."""
import ast
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websockets

from conftest import BINARY, ROOT, Hub

SDK_SRC = os.path.join(ROOT, "Sources", "Clients", "python")
ADMIN = "sdk-test-admin-key-0123456789"
SECRET = "sdk-test-jwt-secret-0123456789"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """`pip install` of the SDK's folder (offline, Debian's setuptools) into a temporary target, imported
    from there. The folder is copied first: pip builds in the tree it is given."""
    tmp = tmp_path_factory.mktemp("sdk")
    src, target = tmp / "src", tmp / "site"
    shutil.copytree(SDK_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".mypy_cache"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps",
         "--disable-pip-version-check", "--quiet", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in [m for m in sys.modules if m == "collabhub" or m.startswith("collabhub.")]:
        del sys.modules[name]
    sys.path.insert(0, str(target))
    try:
        import collabhub
        assert os.path.dirname(collabhub.__file__) == str(target / "collabhub"), collabhub.__file__
        yield collabhub, target
    finally:
        sys.path.remove(str(target))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = Hub("--threads", "2", "--admin-key", ADMIN, "--jwt-secret", SECRET, "--webhook-allow-private",
            data_dir=str(tmp_path_factory.mktemp("data"))).start()
    yield h
    assert h.alive(), "hub crashed during the tests:\n" + h.output()
    assert h.stop() == 0, h.output()


def client(sdk, hub, **kw):
    collabhub, _ = sdk
    kw.setdefault("api_key", ADMIN)
    return collabhub.Client(hub.http, jwt_secret=SECRET, **kw)


def wait_for(check, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def readme_blocks():
    text = open(os.path.join(SDK_SRC, "README.md")).read()
    return re.findall(r"```python\n(.*?)```", text, re.S)


# Packaging


def test_pip_installs_a_typed_standard_library_only_package_versioned_with_the_hub(sdk):
    collabhub, target = sdk
    assert (target / "collabhub" / "py.typed").exists()
    hub_version = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=10).stdout
    assert re.match(r"collabhub (\d+\.\d+\.\d+) ", hub_version), hub_version
    assert collabhub.__version__ == hub_version.split()[1] == collabhub.HUB_VERSION
    build = open(os.path.join(ROOT, "Sources", "Server", "Build.swift")).read()
    assert f'version = "{collabhub.__version__}"' in build
    metadata = next(target.glob("collabhub-*.dist-info")) / "METADATA"
    meta = metadata.read_text()
    assert f"Version: {collabhub.__version__}" in meta and "Requires-Dist" not in meta
    # Standard library only: every absolute import of every module names a standard module.
    for path in (target / "collabhub").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top == "__future__" or top in sys.stdlib_module_names, f"{path.name} imports {name}"


def test_mypy_strict_passes_on_the_package_and_on_the_readme_example(sdk, tmp_path):
    _, target = sdk
    mypy = shutil.which("mypy")
    assert mypy, "mypy is missing (Debian: mypy; scripts/deps.sh test installs it)"
    example = tmp_path / "example.py"
    example.write_text("\n\n".join(readme_blocks()))
    done = subprocess.run(
        [mypy, "--strict", "--cache-dir", str(tmp_path / "cache"), str(target / "collabhub"), str(example)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MYPYPATH": str(target)}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout


def test_the_readme_example_runs_against_a_live_hub(sdk, hub, tmp_path):
    _, target = sdk
    blocks = readme_blocks()
    env = {**os.environ, "PYTHONPATH": str(target), "COLLABHUB_URL": hub.http, "COLLABHUB_API_KEY": ADMIN,
           "COLLABHUB_JWT_SECRET": SECRET}
    for i, block in enumerate(blocks[:2]):  # the five-minute example and its asyncio twin
        path = tmp_path / f"block{i}.py"
        path.write_text(block)
        done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60, env=env,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        if i == 0:
            assert re.search(r"^run deploy-41-\w+ succeeded$", done.stdout, re.M), done.stdout
            assert "error 404 unknown_session False" in done.stdout
            assert re.search(r"^1 chat Deploy 41 started$", done.stdout, re.M), done.stdout


# Sessions, messages, transcripts


def test_sessions_are_created_described_updated_listed_and_ended(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    made = [c.create_session(f"s{i}", max_participants=5) for i in range(5)]
    assert all(m["host_key"] and m["code"] for m in made)
    assert c.get_session(made[0]["code"])["title"] == "s0"
    assert c.update_session(made[0]["code"], title="renamed")["title"] == "renamed"
    listed = [s["code"] for s in c.list_sessions(page_size=2)]
    assert len(listed) == len(set(listed)), "a session listed twice"
    assert {m["code"] for m in made} <= set(listed)
    # The host key alone ends a session.
    keyless = collabhub.Client(hub.http)
    assert keyless.end_session(made[1]["code"], reason="done", host_key=made[1]["host_key"])["status"] == "ending"
    wait_for(lambda: c.get_session(made[1]["code"])["status"] == "ended", what="the session to end")
    with pytest.raises(collabhub.ConflictError) as e:
        c.end_session(made[1]["code"])
    assert (e.value.status, e.value.code, e.value.retryable) == (409, "session_ended", False)
    with pytest.raises(collabhub.BadRequestError) as e:
        c.create_session("x", max_participants=0)
    assert (e.value.status, e.value.code, e.value.retryable) == (400, "invalid_field", False)
    with pytest.raises(collabhub.NotFoundError) as e:
        c.get_session("ZZZZZZZZ")
    assert e.value.code == "unknown_session" and e.value.retry_after is None
    with pytest.raises(collabhub.AuthenticationError) as e:
        keyless.get_session(made[0]["code"])
    assert e.value.status == 401 and not e.value.retryable and not e.value.expired


def test_messages_are_idempotent_and_the_transcript_is_read_a_page_at_a_time(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    code = c.create_session("transcript")["code"]
    seqs = [c.post_message(code, f"m{i}", idempotency_key=f"msg-{i}")["seq"] for i in range(25)]
    assert seqs == list(range(1, 26))
    again = c.post_message(code, "m3", idempotency_key="msg-3")
    assert again["seq"] == 4 and again["duplicate"] is True
    assert c.post_event(code, "deployed", {"env": "prod"})["seq"] == 26
    assert c.post_event(code, "ping", {}, durable=False) == {"delivered": True}
    with pytest.raises(collabhub.BadRequestError) as e:
        c.post_event(code, "bad name!", {})
    assert e.value.code == "invalid_field"
    with pytest.raises(ValueError):
        c.post_message(code, "x", idempotency_key="has space")
    events = list(c.transcript(code, page_size=10))
    assert [e["seq"] for e in events] == list(range(1, 27))
    assert [e["text"] for e in events[:25]] == [f"m{i}" for i in range(25)]
    assert events[25]["name"] == "deployed" and events[25]["data"] == {"env": "prod"}
    # Three requests for 26 events at 10 a page: the activity log records each transcript read.
    reads = [a for a in c.activity(session=code, page_size=2) if a["action"] == "transcript_read"]
    assert len(reads) == 3, reads
    assert [e["seq"] for e in c.transcript(code, after=20, page_size=4)] == list(range(21, 27))
    assert list(c.transcript(code, after=26)) == []


def test_share_links_are_made_used_and_revoked(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    made = c.create_session("shared")
    code = made["code"]
    c.post_message(code, "worth replaying")
    link = c.share(code, ttl_s=600)
    assert set(link) >= {"id", "url", "token", "expires_at"} and link["url"].startswith(f"/replay/{code}")
    assert abs(link["expires_at"] - (time.time() + 600)) < 60
    viewer = collabhub.Client(hub.http, token=link["token"])
    assert [e["text"] for e in viewer.transcript(code)] == ["worth replaying"]
    assert c.revoke_share(code, link["id"])["revoked"] is True
    with pytest.raises(collabhub.AuthenticationError) as e:
        viewer.transcript(code).__next__()
    assert e.value.status == 401 and not e.value.expired
    # The host key alone shares and revokes.
    keyless = collabhub.Client(hub.http)
    by_host = keyless.share(code, host_key=made["host_key"])
    assert keyless.revoke_share(code, by_host["id"], host_key=made["host_key"])["revoked"] is True
    with pytest.raises(ValueError):
        c.share(code, ttl_s=10)
    with pytest.raises(collabhub.NotFoundError) as e:
        c.share("ZZZZZZZZ")
    assert e.value.code == "unknown_session"
    with pytest.raises(collabhub.BadRequestError) as e:
        c.revoke_share(code, "not a share id!")
    assert e.value.code == "invalid_field"


def test_the_async_client_has_the_same_methods(sdk, hub):
    collabhub, _ = sdk
    sync_methods = {n for n in dir(collabhub.Client) if not n.startswith("_")}
    async_methods = {n for n in dir(collabhub.AsyncClient) if not n.startswith("_")}
    assert sync_methods == async_methods

    async def main():
        c = collabhub.AsyncClient(hub.http, api_key=ADMIN, jwt_secret=SECRET)
        made = await c.create_session("async")
        code = made["code"]
        posted = await asyncio.gather(*(c.post_message(code, f"a{i}") for i in range(12)))
        assert sorted(p["seq"] for p in posted) == list(range(1, 13))
        seen = [e["seq"] async for e in c.transcript(code, page_size=5)]
        assert seen == list(range(1, 13))
        assert code in [s["code"] async for s in c.list_sessions(page_size=3)]
        async with c.run(f"async-{code.lower()}", batch_size=3) as run:
            await run.started(owner="team-async")
            for i in range(5):
                await run.log(f"line {i}")
            await run.completed("succeeded")
        assert len(run.results) == 3  # 3 + 3 + the last 1
        state = await c.get_run(f"async-{code.lower()}")
        assert state["run"]["status"] == "succeeded" and state["run"]["log_count"] == 5
        with pytest.raises(collabhub.NotFoundError):
            await c.get_session("ZZZZZZZZ")
        assert (await c.end_session(code))["status"] == "ending"

    asyncio.run(main())


# Tokens


def claims_of(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_member_and_watcher_tokens_carry_the_claims_the_hub_checks(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    code = c.create_session("tokens")["code"]
    host = c.member_token("ann", code, role="host", name="Ann")
    assert set(claims_of(host)) == {"sub", "session", "role", "name", "iat", "exp"}
    assert json.loads(base64.urlsafe_b64decode(host.split(".")[0] + "==")) == {"alg": "HS256", "typ": "JWT"}

    async def join(token):
        async with websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"]) as ws:
            await ws.send(json.dumps({"type": "join", "token": token}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg["type"] in ("joined", "error"):
                    return msg

    joined = asyncio.run(join(host))
    assert joined["type"] == "joined" and joined["you"]["role"] == "host" and joined["you"]["name"] == "Ann"
    viewer = collabhub.member_token(SECRET, sub="bob", session=code)
    assert claims_of(viewer)["role"] == "viewer"
    as_viewer = collabhub.Client(hub.http, token=viewer)
    assert as_viewer.get_session(code)["code"] == code
    with pytest.raises(collabhub.PermissionDeniedError) as e:
        as_viewer.post_message(code, "not allowed")
    assert e.value.status == 403 and e.value.code == "forbidden"

    run_id = f"tok-{code.lower()}"
    c.publish_run_events(run_id, [{"type": "started", "owner": "team-t"}])
    watcher = c.watcher_token("wall", [f"run:{run_id}"])
    assert set(claims_of(watcher)) == {"sub", "channels", "iat", "exp"}
    as_watcher = collabhub.Client(hub.http, token=watcher)
    assert as_watcher.get_run(run_id)["run"]["owner"] == "team-t"
    with pytest.raises(collabhub.PermissionDeniedError):
        as_watcher.get_run("some-other-run")

    # An expired token is refused with 401 token_expired, typed as such; a forged one is 401 unauthorized.
    expired = collabhub.member_token(SECRET, sub="old", session=code, ttl=60, now=time.time() - 3600)
    with pytest.raises(collabhub.TokenExpiredError) as e:
        collabhub.Client(hub.http, token=expired).get_session(code)
    assert (e.value.status, e.value.code, e.value.expired, e.value.retryable) == (401, "token_expired", True, False)
    assert isinstance(e.value, collabhub.AuthenticationError)
    forged = collabhub.member_token("another-secret-0123456789", sub="eve", session=code)
    with pytest.raises(collabhub.AuthenticationError) as e:
        collabhub.Client(hub.http, token=forged).get_session(code)
    assert not isinstance(e.value, collabhub.TokenExpiredError)
    assert (e.value.code, e.value.expired) == ("unauthorized", False)
    with pytest.raises(ValueError):
        collabhub.member_token("short", sub="x", session=code)
    with pytest.raises(ValueError):
        collabhub.member_token(SECRET, sub="x", session=code, role="owner")
    with pytest.raises(ValueError):
        collabhub.watcher_token(SECRET, sub="x", channels="run:r1")


def test_errors_are_typed_from_the_hubs_error_body_and_headers(sdk):
    from collabhub import errors
    collabhub, _ = sdk
    e = errors.error_from_response(401, {}, b'{"error":{"code":"token_expired","message":"token expired"}}')
    assert isinstance(e, collabhub.TokenExpiredError) and e.expired and not e.retryable and e.status == 401
    e = errors.error_from_response(
        429, {"Retry-After": "7"}, b'{"error":{"code":"rate_limited","message":"slow down","retry_after":3}}')
    assert isinstance(e, collabhub.RateLimitedError) and e.retryable and e.retry_after == 7.0
    e = errors.error_from_response(503, {}, b'{"error":{"code":"busy","message":"m","retry_after":2}}')
    assert isinstance(e, collabhub.ServerError) and e.retryable and e.retry_after == 2.0
    e = errors.error_from_response(400, {}, b'{"error":{"code":"unknown_field","message":"m","field":"titel"}}')
    assert isinstance(e, collabhub.BadRequestError) and e.field == "titel" and not e.retryable
    e = errors.error_from_response(502, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"<html>bad gateway")
    assert e.code == "http_502" and e.retryable and e.retry_after == 0.0 and "bad gateway" in e.message
    e = errors.error_from_response(404, {}, b"\xff\xfe not json")
    assert isinstance(e, collabhub.NotFoundError) and e.code == "http_404"


def test_the_pager_follows_next_only(sdk):
    from collabhub._http import Call
    from collabhub._paging import next_call
    collabhub, _ = sdk
    call = Call("GET", "/api/sessions/X/transcript", query={"after": "5", "limit": "10"})
    nxt = next_call(call, {"events": [], "next": "opaque=="})
    assert nxt.query == {"limit": "10", "cursor": "opaque=="}
    assert next_call(nxt, {"events": [], "next": None}) is None
    # The fields of hubs from before the paging contract are not read: an answer without `next` is refused.
    for old in ({"events": [], "next_after": 15, "has_more": True}, {"activity": [], "next_before": 9},
                {"runs": [], "next_offset": 20}, {"sessions": []}):
        with pytest.raises(collabhub.CollabHubError) as e:
            next_call(call, old)
        assert e.value.code == "bad_response" and not e.value.retryable
    for bad in ("", 7, ["x"]):
        with pytest.raises(collabhub.CollabHubError) as e:
            next_call(call, {"events": [], "next": bad})
        assert e.value.code == "bad_response"
    with pytest.raises(collabhub.CollabHubError) as e:
        next_call(nxt, {"events": [], "next": "opaque=="})
    assert e.value.code == "paging_stalled"
    import collabhub._paging as paging
    source = open(paging.__file__).read().split('"""', 2)[2]
    assert not re.search(r"next_after|next_before|next_offset|has_more", source), "a legacy paging field is read"


def test_iterators_walk_three_pages_and_more_by_next(sdk, hub):
    """Sessions, a transcript, webhook deliveries and the activity log, a page of one or two at a time: each
    page is one request (counted by the hub against the key that lists), no item twice, none missed."""
    collabhub, _ = sdk
    c = client(sdk, hub)
    made = c.create_key("pager", ["sessions:create", "sessions:read", "sessions:write", "transcripts:read",
                                  "activity:read", "webhooks:admin"], per_minute=100000)
    pager = collabhub.Client(hub.http, api_key=made["key"])

    def requests_for(walk):
        before = c.key_usage(made["id"])["month"]
        items = walk()
        return items, c.key_usage(made["id"])["month"] - before

    codes = [pager.create_session(f"pages {i}")["code"] for i in range(5)]
    sessions, pages = requests_for(lambda: [s["code"] for s in pager.list_sessions(page_size=2)])
    assert set(codes) <= set(sessions) and len(sessions) == len(set(sessions))
    assert pages >= 3 and pages >= len(sessions) // 2, (pages, len(sessions))

    for i in range(7):
        pager.post_message(codes[0], f"p{i}")
    events, pages = requests_for(lambda: [e["seq"] for e in pager.transcript(codes[0], page_size=2)])
    assert events == list(range(1, 8)) and pages == 4, (events, pages)

    hook = pager.create_webhook("http://127.0.0.1:9/never", events=["session.ended"])
    tests = [pager.test_webhook(hook["id"])["id"] for _ in range(3)]
    deliveries, pages = requests_for(lambda: [d["id"] for d in pager.webhook_deliveries(hook["id"], page_size=1)])
    assert sorted(deliveries) == sorted(tests) and pages >= 3, (deliveries, tests, pages)
    pager.delete_webhook(hook["id"])

    first_six, pages = requests_for(lambda: list(itertools.islice(pager.activity(page_size=2), 6)))
    assert len(first_six) == 6 and pages == 3, (first_six, pages)
    ids = [a["id"] for a in first_six]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6, ids  # newest first, none twice


# Runs


def test_run_events_are_batched_idempotent_and_paged(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    made = c.create_key("publisher", ["runs:publish", "runs:read"])
    pub = collabhub.Client(hub.http, api_key=made["key"])
    events = [{"type": "started", "owner": "team-b", "name": "build"}]
    events += [{"type": "log", "line": f"line {i}"} for i in range(2299)]
    events += [{"type": "completed", "outcome": "succeeded"}]
    first = pub.publish_run_events("batch-1", events, idempotency_key="build-77")
    assert [e["seq"] for e in first["events"]] == list(range(1, 2302))
    assert not any(e.get("duplicate") for e in first["events"])
    assert c.key_usage(made["id"])["minute"] == 3, "2,301 events are three requests of at most 1,000"
    # The same call again (a job retried whole): every event is a duplicate, nothing is stored twice.
    again = pub.publish_run_events("batch-1", events, idempotency_key="build-77")
    assert [e["seq"] for e in again["events"]] == list(range(1, 2302))
    assert all(e.get("duplicate") for e in again["events"])
    run = pub.get_run("batch-1")
    assert run["run"]["seq"] == 2301 and run["run"]["status"] == "succeeded" and run["run"]["log_count"] == 2299
    # A publisher sends full batches as they fill and the rest at the end of its block.
    before = c.key_usage(made["id"])["minute"]
    with pub.run("batch-2", batch_size=7, idempotency_key="b2") as r:
        r.started("team-b", name="two")
        for i in range(10):
            r.step_started(f"s{i}")
            r.step_completed(f"s{i}")
        r.completed("succeeded")
    assert len(r.results) == 4 and c.key_usage(made["id"])["minute"] - before == 4  # 22 events, 7 a batch
    assert [s["name"] for s in pub.get_run("batch-2")["run"]["steps"]] == [f"s{i}" for i in range(10)]
    # An illegal transition is the hub's 409, typed.
    with pytest.raises(collabhub.ConflictError) as e:
        pub.publish_run_events("batch-2", [{"type": "log", "line": "after the end"}])
    assert e.value.code == "illegal_transition" and not e.value.retryable
    with pytest.raises(ValueError):
        pub.publish_run_events("batch-3", [{"type": "exploded"}])
    for i in range(3):
        pub.publish_run_events(f"paged-{i}", [{"type": "started", "owner": "team-paged"}])
    listed = [r["id"] for r in c.list_runs(owner="team-paged", page_size=2)]
    assert sorted(listed) == ["paged-0", "paged-1", "paged-2"]


# Retries


def test_a_real_429_is_typed_and_a_long_retry_after_is_not_waited_for(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    made = c.create_key("tiny", ["sessions:read"], per_minute=1)
    code = c.create_session("quota")["code"]
    retries = []
    tiny = collabhub.Client(hub.http, api_key=made["key"], max_retry_after=0.5,
                            on_retry=lambda e, n, wait: retries.append((e, n, wait)))
    if time.time() % 60 > 58:  # both requests in one minute of the key's quota
        time.sleep(60.5 - time.time() % 60)
    assert tiny.get_session(code)["code"] == code
    started = time.time()
    with pytest.raises(collabhub.RateLimitedError) as e:
        tiny.get_session(code)
    assert (e.value.status, e.value.code, e.value.retryable) == (429, "rate_limited", True)
    assert 1 <= e.value.retry_after <= 60 and retries == [] and time.time() - started < 2


def test_retries_wait_out_a_real_429_and_honour_retry_after(sdk, make_hub):
    """A hub that allows two connections per address: two held open make the SDK's request get 429 with
    Retry-After: 10; once they close, the retry goes through."""
    collabhub, _ = sdk
    capped = make_hub("--threads", "1", "--admin-key", ADMIN, "--max-connections-per-address", "2")
    held = [socket.create_connection(("127.0.0.1", capped.port)) for _ in range(2)]
    time.sleep(0.5)  # accepted and counted by the hub's loop
    threading.Timer(2.0, lambda: [s.close() for s in held]).start()
    retries = []
    c = collabhub.Client(capped.http, api_key=ADMIN, on_retry=lambda e, n, wait: retries.append((e, n, wait)))
    started = time.time()
    made = c.create_session("after a 429")
    assert made["code"] and c.get_session(made["code"])["title"] == "after a 429"
    first = retries[0][0]
    assert (first.status, first.retryable, first.retry_after) == (429, True, 10.0), retries
    assert retries[0][2] >= 10.0 and time.time() - started >= 10.0
    assert len(retries) == 1


def test_connection_errors_are_retried_with_backoff_then_raised(sdk):
    collabhub, _ = sdk
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    retries = []
    c = collabhub.Client(f"http://127.0.0.1:{port}", api_key=ADMIN, retries=3, backoff_base=0.05,
                         on_retry=lambda e, n, wait: retries.append((e, n, wait)))
    with pytest.raises(collabhub.ConnectionFailed) as e:
        c.create_session("nobody home")
    assert e.value.status is None and e.value.retryable and e.value.code == "connection_refused"
    assert [n for _, n, _ in retries] == [1, 2, 3]
    assert all(0 <= wait <= 0.05 * 2 ** (n - 1) for _, n, wait in retries)


# Webhooks


class Receiver:
    """A real HTTP receiver that checks each delivery with the SDK and answers 200 only if it verifies."""

    def __init__(self, verify):
        self.got = []
        self.verify = verify
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    payload = receiver.verify(self.headers, body)
                    ok = True
                except Exception as e:  # noqa: BLE001 - recorded for the test to look at
                    payload, ok = e, False
                receiver.got.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                                     "payload": payload, "ok": ok})
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_webhooks_are_managed_delivered_and_verified(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    secrets = []
    receiver = Receiver(lambda headers, body: collabhub.verify_webhook(secrets, headers, body))
    try:
        made = c.create_webhook(receiver.url, events=["chat.created", "event.created"], description="sdk test")
        assert made["secret"].startswith("whsec_")
        secrets.append(made["secret"])
        wid = made["id"]
        assert wid in [w["id"] for w in c.list_webhooks()]
        assert "secret" not in c.get_webhook(wid)
        code = c.create_session("hooks")["code"]
        c.post_message(code, "hello hooks")
        c.post_event(code, "deployed", {"v": 41})
        c.test_webhook(wid)
        wait_for(lambda: len(receiver.got) >= 3, what="three deliveries")
        assert all(g["ok"] for g in receiver.got), [g["payload"] for g in receiver.got]
        types = sorted(g["payload"]["type"] for g in receiver.got)
        assert types == ["chat.created", "event.created", "webhook.test"]
        chat = next(g for g in receiver.got if g["payload"]["type"] == "chat.created")
        # What the SDK refuses: a changed body, a stale or future timestamp, another secret, a missing header.
        h = chat["headers"]
        with pytest.raises(collabhub.WebhookVerificationError) as e:
            collabhub.verify_webhook(made["secret"], h, chat["body"].replace(b"hello", b"HELLO"))
        assert e.value.code == "invalid_signature" and not e.value.retryable
        stamp = int(h["webhook-timestamp"])
        with pytest.raises(collabhub.WebhookVerificationError) as e:
            collabhub.verify_webhook(made["secret"], h, chat["body"], now=stamp + 301)
        assert e.value.code == "timestamp_out_of_tolerance"
        assert collabhub.verify_webhook(made["secret"], h, chat["body"], now=stamp + 299)["type"] == "chat.created"
        other = "whsec_" + base64.b64encode(b"x" * 24).decode()
        with pytest.raises(collabhub.WebhookVerificationError):
            collabhub.verify_webhook(other, h, chat["body"])
        with pytest.raises(collabhub.WebhookVerificationError) as e:
            collabhub.verify_webhook(made["secret"], {k: v for k, v in h.items() if k != "webhook-id"}, chat["body"])
        assert e.value.code == "missing_header"
        # Standard Webhooks from the specification, not the SDK: the signature is what it says it is.
        key = base64.b64decode(made["secret"][6:])
        mac = hmac.new(key, f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + chat["body"], hashlib.sha256)
        assert "v1," + base64.b64encode(mac.digest()).decode() in h["webhook-signature"].split(" ")

        # A rotation: both secrets sign for a day; the receiver verifies with either.
        rotated = c.rotate_webhook_secret(wid)
        assert rotated["secret"] != made["secret"]
        c.test_webhook(wid)
        wait_for(lambda: len(receiver.got) >= 4, what="the delivery after the rotation")
        last = receiver.got[3]
        assert last["ok"] and len(last["headers"]["webhook-signature"].split(" ")) == 2
        for s in (made["secret"], rotated["secret"]):
            assert collabhub.WebhookVerifier(s).verify(last["headers"], last["body"])["type"] == "webhook.test"

        delivered = wait_for(
            lambda: (lambda d: d if len(d) == 4 and all(x["status"] == "delivered" for x in d) else None)(
                list(c.webhook_deliveries(wid, page_size=3))), what="four delivered deliveries")
        assert len({d["id"] for d in delivered}) == 4
        assert [d["id"] for d in c.webhook_deliveries(wid, status="delivered", page_size=1)] == [
            d["id"] for d in delivered]
        assert c.update_webhook(wid, active=False)["active"] is False
        c.delete_webhook(wid)
        with pytest.raises(collabhub.NotFoundError) as e:
            c.get_webhook(wid)
        assert e.value.code == "unknown_webhook"
        with pytest.raises(collabhub.BadRequestError) as e:
            c.create_webhook("ftp://example.com/")
        assert e.value.code == "invalid_field"
    finally:
        receiver.close()


# API keys


def test_api_keys_are_made_listed_counted_and_revoked(sdk, hub):
    collabhub, _ = sdk
    c = client(sdk, hub)
    made = c.create_key("backend", ["sessions:create", "sessions:read"], per_minute=100)
    assert made["key"].startswith("chk_") and made["scopes"] == ["sessions:create", "sessions:read"]
    listed = {k["id"]: k for k in c.list_keys(page_size=1)}
    assert made["id"] in listed and "key" not in listed[made["id"]] and listed[made["id"]]["active"]
    backend = collabhub.Client(hub.http, api_key=made["key"])
    code = backend.create_session("by a key")["code"]
    assert backend.get_session(code)["title"] == "by a key"
    assert c.key_usage(made["key"])["minute"] == 2
    with pytest.raises(collabhub.PermissionDeniedError) as e:
        backend.create_key("escalate", ["keys:admin"])
    assert e.value.status == 403
    assert c.revoke_key(made["id"])["revoked"] is True
    with pytest.raises(collabhub.AuthenticationError) as e:
        backend.get_session(code)
    assert e.value.status == 401 and not e.value.expired
    with pytest.raises(collabhub.BadRequestError) as e:
        c.create_key("bad", ["no:such:scope"])
    assert e.value.code == "invalid_field"
