"""The HTTP API as a contract (issue 28, item 1): Protocol/openapi.json validates, the contract checker refuses
what the spec does not list, every list route pages the same way, unknown body fields are refused by name, an
expired credential is told apart from a wrong one, and the client-message schemas cover every client message."""
import asyncio
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import subprocess
import time

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

import contract
from conftest import BINARY
from hubclient import PROTOCOL, Client, api, create_session, run
from wsraw import RawClient

ADMIN = "contract-admin-key-0123456789"
SECRET = "contract-jwt-secret-0123456789"
ROOT = os.path.dirname(PROTOCOL)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from conftest import Hub
    h = Hub("--admin-key", ADMIN, "--jwt-secret", SECRET, "--jwt-skew", "0",
            data_dir=str(tmp_path_factory.mktemp("contract"))).start()
    yield h
    assert h.alive(), h.output()
    h.stop()


def token(claims, secret=SECRET):
    def b64(d):
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    head = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64(claims)
    sig = hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


# --- the spec itself ---

def test_spec_validates_as_openapi_3_1():
    validate_spec(contract.SPEC)
    assert contract.SPEC["openapi"].startswith("3.1")


def test_spec_reuses_the_protocol_schemas():
    """Parts of the spec that Protocol/schemas also define are the same schemas (no second copy drifts)."""
    comp = contract.SPEC["components"]["schemas"]
    load = lambda p: json.load(open(os.path.join(PROTOCOL, "schemas", p)))
    run_event = {k: v for k, v in load("http/run_event.json").items() if k not in ("$schema", "$id", "title")}
    assert comp["RunEventBody"] == run_event
    assert comp["Member"] == load("server/joined.json")["properties"]["members"]["items"]
    assert comp["RunSummary"] == load("server/dashboard.json")["properties"]["runs"]["items"]
    assert comp["RunState"] == load("server/run_snapshot.json")["properties"]["run"]


def test_every_error_in_the_spec_has_the_one_error_shape():
    for path, item in contract.SPEC["paths"].items():
        for method, op in item.items():
            for status, resp in op["responses"].items():
                if int(status) >= 400:
                    assert resp == {"$ref": f"#/components/responses/E{status}"}, (path, method, status)
    for name, resp in contract.SPEC["components"]["responses"].items():
        assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name


def test_every_list_route_pages_with_limit_cursor_and_next():
    lists = {"/api/sessions": "sessions", "/api/sessions/{code}/transcript": "events", "/api/keys": "keys",
             "/api/webhooks": "webhooks", "/api/webhooks/{id}/deliveries": "deliveries", "/api/runs": "runs",
             "/api/activity": "activity", "/api/sessions/{code}/members": "members"}
    for path, name in lists.items():
        op = contract.SPEC["paths"][path]["get"]
        params = {p["name"] for p in op["parameters"]}
        assert {"limit", "cursor"} <= params, path
        schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert {name, "next"} <= set(schema["required"]), path


def test_the_checker_refuses_what_the_spec_does_not_list():
    """Drift cannot pass: an undocumented status, route, content type or body shape is an objection."""
    err = json.dumps({"error": {"code": "x", "message": "y"}}).encode()
    assert contract.check("GET", "/api/sessions", 200, "application/json", b'{"sessions":[],"next":null}') == []
    assert contract.check("GET", "/api/sessions", 418, "application/json", err)           # status not listed
    assert contract.check("GET", "/api/sessions", 200, "application/json", b'{"sessions":[]}')  # no next
    assert contract.check("GET", "/api/sessions", 200, "text/html", b"<p>")                # content type
    assert contract.check("GET", "/api/nothing-here", 200, "application/json", b"{}")      # undocumented route
    assert contract.check("GET", "/api/nothing-here", 404, "application/json", err) == []  # its one answer
    assert contract.check("GET", "/api/sessions", 400, "application/json", b'{"code":"x"}')  # not the error shape
    assert contract.check("PUT", "/api/sessions", 200, "application/json", b"{}")          # undocumented method
    assert contract.check("PUT", "/api/sessions", 405, "application/json", err) == []
    assert contract.check("GET", "/ws", 101, None, b"") == []
    assert contract.check("GET", "/api/sessions", 101, None, b"")


def test_the_hook_sees_urllib_answers(hub):
    """Answers fetched through urllib pass through the checker (a hub port is registered by Hub.start)."""
    assert hub.port in contract.HUB_PORTS
    saved = contract.check
    seen = []
    contract.check = lambda *a: seen.append(a[:3]) or []
    try:
        api(hub, "GET", "/api/sessions?limit=1")
        api(hub, "GET", "/no/such/page")
    finally:
        contract.check = saved
    assert ("GET", "/api/sessions?limit=1", 200) in seen and ("GET", "/no/such/page", 404) in seen


# --- paging ---

def follow(hub, path, name, limit=2):
    """Every item of a list route, a page of `limit` at a time by `next`."""
    items, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        status, page = api(hub, "GET", f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, page
        assert set(page) >= {name, "next"} and len(page[name]) <= limit
        items += page[name]
        pages += 1
        assert pages < 100
        if page["next"] is None:
            return items, pages
        assert isinstance(page["next"], str)
        cursor = page["next"]


def test_every_list_route_pages_the_same_way(hub):
    codes = [create_session(hub, title=f"paging {i}")["code"] for i in range(5)]
    sessions, pages = follow(hub, "/api/sessions", "sessions")
    assert [s["code"] for s in sessions if s["code"] in codes] == codes and pages >= 3
    assert len({s["code"] for s in sessions}) == len(sessions), "a session twice across pages"
    # GET /api/sessions without paging parameters still answers everything (the default is 1000).
    assert {s["code"] for s in api(hub, "GET", "/api/sessions")[1]["sessions"]} >= set(codes)

    for i in range(5):
        status, _ = api(hub, "POST", f"/api/sessions/{codes[0]}/messages", {"kind": "system", "text": f"m{i}"})
        assert status == 201
    events, _ = follow(hub, f"/api/sessions/{codes[0]}/transcript", "events")
    assert [e["seq"] for e in events] == list(range(1, 6))
    # `after` still starts after a seq, and its page says `next` like any other.
    status, page = api(hub, "GET", f"/api/sessions/{codes[0]}/transcript?after=3&limit=1")
    assert [e["seq"] for e in page["events"]] == [4] and isinstance(page["next"], str)
    assert api(hub, "GET", f"/api/sessions/{codes[0]}/transcript?cursor={page['next']}")[1]["events"][0]["seq"] == 5

    for i in range(3):
        assert api(hub, "POST", "/api/keys", {"name": f"k{i}", "scopes": ["sessions:read"]})[0] == 201
    keys, _ = follow(hub, "/api/keys", "keys")
    assert len(keys) >= 3 and len({k["id"] for k in keys}) == len(keys)

    for i in range(3):
        status, _ = api(hub, "POST", "/api/webhooks", {"url": f"https://example.com/hook{i}", "events": ["session.started"]})
        assert status == 201
    hooks, _ = follow(hub, "/api/webhooks", "webhooks")
    assert len(hooks) == 3
    for _ in range(3):
        assert api(hub, "POST", f"/api/webhooks/{hooks[0]['id']}/test")[0] == 202
    deliveries, _ = follow(hub, f"/api/webhooks/{hooks[0]['id']}/deliveries", "deliveries")
    ids = [d["id"] for d in deliveries]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)

    for i in range(5):
        assert api(hub, "POST", f"/api/runs/page-{i}/events", {"type": "started", "owner": "paging"})[0] == 202
    runs, _ = follow(hub, "/api/runs?owner=paging", "runs")
    assert sorted(r["id"] for r in runs) == [f"page-{i}" for i in range(5)]

    activity, _ = follow(hub, f"/api/activity?session={codes[1]}", "activity", limit=1)
    assert activity and [a["id"] for a in activity] == sorted((a["id"] for a in activity), reverse=True)

    members, _ = follow(hub, f"/api/sessions/{codes[0]}/members", "members")
    assert members == []


def test_a_bad_cursor_or_limit_is_refused_naming_the_field(hub):
    code = create_session(hub)["code"]
    status, hook = api(hub, "POST", "/api/webhooks", {"url": "https://example.com/bad-cursor", "events": ["session.started"]})
    routes = ["/api/sessions", f"/api/sessions/{code}/transcript", "/api/keys", "/api/webhooks",
              f"/api/webhooks/{hook['id']}/deliveries", "/api/runs", "/api/activity", f"/api/sessions/{code}/members"]
    other = base64.urlsafe_b64encode(b"elsewhere|3").decode()
    for route in routes:
        for q in ("cursor=%25%25%25", "cursor=" + other, "limit=0", "limit=1001", "limit=ten"):
            status, body = api(hub, "GET", f"{route}?{q}")
            assert status == 400, (route, q, body)
            assert body["error"]["field"] == q.split("=")[0], (route, q, body)
    # A cursor of one list is no cursor of another.
    status, page = api(hub, "GET", "/api/sessions?limit=1")
    assert page["next"] and api(hub, "GET", f"/api/keys?cursor={page['next']}")[0] == 400


# --- unknown fields ---

def test_titel_is_refused_naming_the_field_and_the_nearest_known_one(hub):
    before = len(api(hub, "GET", "/api/sessions")[1]["sessions"])
    status, body = api(hub, "POST", "/api/sessions", {"titel": "x"})
    assert status == 400 and body["error"]["code"] == "unknown_field" and body["error"]["field"] == "titel"
    assert "did you mean title?" in body["error"]["message"]
    assert len(api(hub, "GET", "/api/sessions")[1]["sessions"]) == before, "the typo created a session anyway"


def test_every_body_refuses_unknown_fields(hub):
    code = create_session(hub)["code"]
    _, hook = api(hub, "POST", "/api/webhooks", {"url": "https://example.com/unknown", "events": ["session.started"]})
    cases = [
        ("PATCH", f"/api/sessions/{code}", {"title": "t", "guest_polcy": "allow"}, "guest_polcy", "guest_policy"),
        ("POST", f"/api/sessions/{code}/share", {"ttl": 60}, "ttl", "ttl_s"),
        ("POST", f"/api/sessions/{code}/messages", {"kind": "system", "txt": "hi"}, "txt", "text"),
        ("POST", f"/api/sessions/{code}/messages", {"type": "event", "name": "n", "durible": False}, "durible", "durable"),
        ("POST", "/api/keys", {"name": "k", "scopes": ["sessions:read"], "per_minutes": 5}, "per_minutes", "per_minute"),
        ("POST", "/api/webhooks", {"url": "https://example.com/x", "event": ["*"]}, "event", "events"),
        ("PATCH", f"/api/webhooks/{hook['id']}", {"activ": False}, "activ", "active"),
        ("POST", "/api/runs/r-unknown/events", {"type": "started", "ownr": "x"}, "ownr", "owner"),
        ("POST", "/api/runs/r-unknown/events", {"events": [{"type": "started", "owner": "o", "nam": "x"}]},
         "events[0].nam", "name"),
        ("POST", f"/api/sessions/{code}/end", {"reasn": "bye"}, "reasn", "reason"),
    ]
    for method, path, body, field, near in cases:
        status, answer = api(hub, method, path, body)
        assert status == 400 and answer["error"]["code"] == "unknown_field", (path, answer)
        assert answer["error"]["field"] == field and f"did you mean {near}?" in answer["error"]["message"], answer
    # Nothing happened: the session is live and untitled-changed, the run was not started.
    assert api(hub, "GET", f"/api/sessions/{code}")[1]["status"] == "live"
    assert api(hub, "GET", "/api/runs/r-unknown")[0] == 404
    # A name far from every known one gets no guess; a huge one is cut before it is echoed.
    status, answer = api(hub, "POST", "/api/sessions", {"x" * 10000: 1})
    assert status == 400 and "did you mean" not in answer["error"]["message"] and len(answer["error"]["field"]) == 64


# --- key usage ---

def test_key_usage_of_an_unknown_key_is_404_and_of_a_known_one_its_counts(hub):
    admin = {"X-API-Key": ADMIN}
    for unknown in ("nosuchkey0123", "x" * 65, "%3Cscript%3E"):
        status, body = api(hub, "GET", f"/api/keys/{unknown}/usage", headers=admin)
        assert status == 404 and body["error"]["code"] == "unknown_key", (unknown, body)
        assert "<" not in body["error"]["message"] and "x" * 65 not in body["error"]["message"]
    # A key that made no request yet: 200 with zeros; after two, two.
    status, made = api(hub, "POST", "/api/keys", {"name": "usage", "scopes": ["sessions:read"]}, admin)
    assert status == 201, made
    status, usage = api(hub, "GET", f"/api/keys/{made['id']}/usage", headers=admin)
    assert status == 200 and usage == {"id": made["id"], "minute": 0, "hour": 0, "month": 0}, usage
    for _ in range(2):
        assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": made["key"]})[0] == 200
    assert api(hub, "GET", f"/api/keys/{made['id']}/usage", headers=admin)[1]["minute"] == 2
    # A key made by `collabhub keys` in another process is found (one read of the key table), not 404.
    out = subprocess.run([BINARY, "keys", "create", "--data", hub.data_dir, "--name", "cli", "--scopes",
                          "sessions:read"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    cli_id = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("id:"))
    status, usage = api(hub, "GET", f"/api/keys/{cli_id}/usage", headers=admin)
    assert status == 200 and usage["minute"] == 0, usage
    # A revoked key still has its counts; the id is not forgotten.
    assert api(hub, "DELETE", f"/api/keys/{made['id']}", headers=admin)[0] == 200
    assert api(hub, "GET", f"/api/keys/{made['id']}/usage", headers=admin)[0] == 200


# --- expired credentials ---

def test_an_expired_token_is_told_apart_from_a_wrong_one(hub):
    code = create_session(hub)["code"]
    now = int(time.time())
    member = {"sub": "ann", "session": code, "role": "host"}
    good = token({**member, "exp": now + 600})
    expired = token({**member, "exp": now - 120})
    forged = token({**member, "exp": now + 600}, secret="another-secret-0123456789")
    forged_expired = token({**member, "exp": now - 120}, secret="another-secret-0123456789")
    path = f"/api/sessions/{code}"
    assert api(hub, "GET", path, headers={"Authorization": f"Bearer {good}"})[0] == 200
    status, body = api(hub, "GET", path, headers={"Authorization": f"Bearer {expired}"})
    assert status == 401 and body["error"]["code"] == "token_expired", body
    for wrong in (forged, forged_expired, "not.a.token"):
        status, body = api(hub, "GET", path, headers={"Authorization": f"Bearer {wrong}"})
        assert status == 401 and body["error"]["code"] == "unauthorized", body

    # A share link past its expiry: token_expired too (the link's own signature checked first).
    status, link = api(hub, "POST", f"/api/sessions/{code}/share", {"ttl_s": 60})
    assert status == 201
    claims = json.loads(base64.urlsafe_b64decode(link["token"].split(".")[1] + "=="))
    stale = token({**claims, "exp": now - 120})
    transcript = f"/api/sessions/{code}/transcript"
    assert api(hub, "GET", transcript, headers={"Authorization": f"Bearer {link['token']}"})[0] == 200
    status, body = api(hub, "GET", transcript, headers={"Authorization": f"Bearer {stale}"})
    assert status == 401 and body["error"]["code"] == "token_expired", body

    # The WebSocket upgrades say the same: /watch with an expired watcher token.
    watcher = token({"sub": "w", "channels": ["run:r1"], "exp": now - 120})
    raw = RawClient(hub.port, handshake=False)
    status, _, answer = raw.handshake(f"/watch?token={watcher}", {"Sec-WebSocket-Protocol": "collabhub.v1"})
    raw.close()
    assert status == 401 and json.loads(answer)["error"]["code"] == "token_expired"

    # ... and a join with an expired member token (the WebSocket side: error token_expired, close 4001).
    async def join():
        c = await Client.connect(hub, code)
        await c.send({"type": "join", "name": "Ann", "token": expired})
        err = await c.expect("error")
        assert err["code"] == "token_expired"
        await asyncio.wait_for(c.ws.wait_closed(), 5)
        assert c.ws.close_code == 4001
    run(join())


def test_errors_that_say_when_to_retry_carry_retry_after(hub):
    status, key = api(hub, "POST", "/api/keys", {"name": "slow", "scopes": ["sessions:read"], "per_minute": 1})
    assert status == 201
    assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": key["key"]})[0] == 200
    import urllib.request
    req = urllib.request.Request(hub.http + "/api/sessions", headers={"X-API-Key": key["key"]})
    try:
        urllib.request.urlopen(req, timeout=5)
        assert False, "a second request within the minute passed"
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
        assert e.code == 429 and body["error"]["code"] == "rate_limited"
        assert body["error"]["retry_after"] == int(e.headers["Retry-After"]) >= 0


def test_refusals_below_the_routes_have_the_error_shape(hub):
    """The request's framing, size and handshake are refused with the same JSON error as the routes."""
    raw = RawClient(hub.port, handshake=False)
    status, hdrs, body = raw.handshake("/ws?session=NOPE", {"Sec-WebSocket-Version": "7"})
    raw.close()
    assert status >= 400 and hdrs["content-type"].startswith("application/json")
    assert set(json.loads(body)["error"]) >= {"code", "message"}


# --- client-message schemas ---

def test_every_client_message_has_a_schema():
    source = open(os.path.join(ROOT, "Sources", "Hub", "ClientMessage.swift")).read()
    types = {t for case in re.findall(r'\n        case ("[a-z_]+"(?:, "[a-z_]+")*):', source)
             for t in re.findall(r'"([a-z_]+)"', case)}
    assert {"join", "chat", "chat_edit", "presence"} <= types
    schemas = {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(PROTOCOL, "schemas", "client", "*.json"))}
    assert {"chat_edit", "chat_delete", "redact", "presence"} <= schemas
    assert types <= schemas, f"client messages without a schema: {sorted(types - schemas)}"


def client_schema(name):
    return json.load(open(os.path.join(PROTOCOL, "schemas", "client", f"{name}.json")))


def test_the_new_client_schemas_hold_what_the_hub_accepts_and_refuse_what_it_refuses(hub):
    good = [{"type": "chat_edit", "id": "e1", "seq": 2, "text": "fixed"}, {"type": "chat_delete", "id": "d1", "seq": 2},
            {"type": "redact", "id": "r1", "seq": 2, "reason": "a pasted secret"}, {"type": "redact", "id": "r2", "seq": 2},
            {"type": "presence", "state": {"status": "away", "location": {"page": 3}}}]
    bad = [{"type": "chat_edit", "id": "e1", "seq": 0, "text": "x"}, {"type": "chat_edit", "id": "e1", "seq": 2, "text": ""},
           {"type": "chat_delete", "seq": 2}, {"type": "redact", "id": "r", "seq": 2, "reason": "x" * 201},
           {"type": "presence", "state": {"status": "asleep"}}, {"type": "presence"}]
    for m in good:
        jsonschema.validate(m, client_schema(m["type"]))
    for m in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(m, client_schema(m["type"]))
    code = create_session(hub, guest_policy="allow")["code"]

    async def main():
        host = await Client.connect(hub, code)
        await host.join("Host", token=token({"sub": "host", "session": code, "role": "host", "exp": int(time.time()) + 600}))
        await host.send({"type": "chat", "id": "c1", "kind": "text", "text": "oops"})
        seq = (await host.expect("ack"))["seq"]
        for m in good[:3]:
            m = {**m, "seq": seq}
            jsonschema.validate(m, client_schema(m["type"]))
            await host.send(m)
            ack = await host.expect("ack", skip=("cursors", "typing", "presence", "chat_edit", "chat_delete", "redact"))
            assert ack["id"] == m["id"]
            if m["type"] == "chat_delete":   # a deleted message is redacted next: a fresh one for it
                await host.send({"type": "chat", "id": "c2", "kind": "text", "text": "again"})
                seq = (await host.expect("ack"))["seq"]
        await host.send(good[4])
        update = await host.expect("presence", skip=("cursors", "typing"))
        assert update
        for m in bad[:2] + bad[4:5]:
            await host.send(m)
            assert (await host.expect("error"))["code"] in ("invalid_field", "missing_field")
    run(main())


def test_the_protocol_examples_send_what_the_client_schemas_allow():
    for path in glob.glob(os.path.join(PROTOCOL, "examples", "*.json")):
        for step in json.load(open(path)).get("steps", []):
            msg = step.get("send")
            if isinstance(msg, dict) and os.path.exists(os.path.join(PROTOCOL, "schemas", "client", f"{msg.get('type')}.json")):
                if path.endswith("errors.json"):
                    continue   # sends what the hub must refuse
                jsonschema.validate(msg, client_schema(msg["type"]))
