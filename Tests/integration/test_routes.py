"""The HTTP API's route table (`collabhub routes`): printed, served as printed, every route authorized
against its surface, 405 with `Allow` for a path that other methods have, and the table and
Protocol/openapi.json naming the same routes."""
import http.client
import json
import os
import re
import subprocess

import pytest

from conftest import BINARY, ROOT, Hub

ADMIN = "routes-admin-key-0123456789"
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
SPEC = os.path.join(ROOT, "Protocol", "openapi.json")


def table():
    out = subprocess.run([BINARY, "routes"], capture_output=True, text=True, timeout=30, check=True).stdout
    rows = [line.split(" ") for line in out.splitlines()]
    return rows


def request(hub, method, path, body=None, headers=None):
    """Status, headers and the parsed JSON body (None when there is none)."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=10)
    data = None if body is None else json.dumps(body).encode()
    h = dict(headers or {})
    if data is not None:
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    parsed = json.loads(raw) if raw and r.getheader("Content-Type", "").startswith("application/json") else None
    return r.status, r, parsed


@pytest.fixture(scope="module")
def hub():
    h = Hub("--admin-key", ADMIN, "--auth", "required").start()
    yield h
    assert h.alive(), "hub crashed:\n" + h.output()
    h.stop()


def concrete(path):
    """A path of the table with its parameters filled in: a well-formed session code nobody has, ids
    nobody has (every handler then answers for itself, with its own 4xx)."""
    values = {"code": "ZZZZZZZZ", "id": "nobody", "delivery": "12345"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), path)


def test_table_is_printed_one_route_a_line():
    rows = table()
    assert len(rows) >= 30, rows
    seen = set()
    for row in rows:
        assert len(row) == 3, row
        method, path, surface = row
        assert method in METHODS, row
        assert path.startswith("/api/") and "//" not in path, row
        assert re.fullmatch(r"[A-Za-z]+(\(\{\w+\}\))?(\|ownKey\(\{\w+\}\))?", surface), row
        assert (method, path) not in seen, f"{method} {path} twice"
        seen.add((method, path))
    # The routes of the authorization table in Protocol/PROTOCOL.md, with their surfaces.
    by_route = {(m, p): s for m, p, s in rows}
    assert by_route[("GET", "/api/mode")] == "anyone"
    assert by_route[("POST", "/api/sessions")] == "createSession"
    assert by_route[("GET", "/api/sessions/{code}/transcript")] == "readTranscript({code})"
    assert by_route[("POST", "/api/sessions/{code}/end")] == "endSession({code})"
    assert by_route[("GET", "/api/keys/{id}/usage")] == "manageKeys|ownKey({id})"
    assert by_route[("POST", "/api/runs/{id}/events")] == "publishRun({id})"


def test_every_route_is_served_and_authorized(hub):
    """Each printed route reaches a handler (never 404 `not_found` nor 405), and refuses a request with
    no credential (401) unless it is for anyone."""
    for method, path, surface in table():
        url = concrete(path)
        status, r, body = request(hub, method, url)
        if surface == "anyone":
            assert status == 200, (method, path, status, body)
        else:
            assert status == 401, (method, path, status, body)
            if method != "HEAD":
                assert body["error"]["code"] == "unauthorized", (method, path, body)
        payload = {} if method in ("POST", "PATCH") else None
        status, r, body = request(hub, method, url, payload, {"X-API-Key": ADMIN})
        assert status not in (401, 403, 405), (method, path, status, body)
        if method != "HEAD" and status == 404:
            assert body["error"]["code"] != "not_found", (method, path, body)


def test_405_names_the_methods_a_path_has(hub):
    key = {"X-API-Key": ADMIN}
    cases = [
        ("PUT", "/api/sessions", {"POST", "GET"}),
        ("DELETE", "/api/activity", {"GET"}),
        ("POST", "/api/runs/r1", {"GET"}),  # was 404 before the table
        ("GET", "/api/runs/r1/events", {"POST"}),
        ("POST", "/api/keys/k1", {"DELETE"}),
        ("PUT", "/api/webhooks/wh_1", {"GET", "PATCH", "DELETE"}),
        ("POST", "/api/mode", {"GET"}),
        ("POST", "/api/sessions/ZZZZZZZZ/transcript", {"GET", "HEAD"}),
    ]
    for method, path, allow in cases:
        status, r, body = request(hub, method, path, None, key)
        assert status == 405, (method, path, status, body)
        assert body["error"]["code"] == "method_not_allowed", body
        assert {m.strip() for m in r.getheader("Allow").split(",")} == allow, (path, r.getheader("Allow"))


def test_404_for_paths_no_route_has(hub):
    key = {"X-API-Key": ADMIN}
    for path in ["/api/nothing", "/api/sessions/ZZZZZZZZ/nothing", "/api/keys/k1/usage/more", "/api"]:
        status, r, body = request(hub, "GET", path, None, key)
        assert status == 404, (path, status, body)
        assert r.getheader("Allow") is None
        if body is not None:
            assert body["error"]["code"] == "not_found", (path, body)
    # A path of a route's shape whose code cannot be a session code.
    status, _, body = request(hub, "GET", "/api/sessions/no!such!code/members", None, key)
    assert status == 404 and body["error"]["code"] == "unknown_session", body
    # Without a credential too: the path decides before the credential is asked for.
    status, _, body = request(hub, "GET", "/api/nothing", None, {})
    assert status == 404, body


def test_routes_keep_their_answers(hub):
    """Dispatch through the table reaches the same handlers with the same parameters as before."""
    key = {"X-API-Key": ADMIN}
    status, _, created = request(hub, "POST", "/api/sessions", {"title": "Routes"}, key)
    assert status == 201, created
    code = created["code"]
    # The code is normalized (lower case works), and a trailing slash is the same path.
    status, _, body = request(hub, "GET", f"/api/sessions/{code.lower()}/", None, key)
    assert status == 200 and body["code"] == code and body["title"] == "Routes", body
    # The host key in the body of /end is a credential for that route.
    status, _, body = request(hub, "POST", f"/api/sessions/{code}/end", {"host_key": created["host_key"]}, {})
    assert status == 202 and body == {"code": code, "status": "ending"}, body
    # A key reads its own usage without keys:admin.
    status, _, made = request(hub, "POST", "/api/keys", {"name": "reader", "scopes": ["sessions:read"]}, key)
    assert status == 201, made
    status, _, usage = request(hub, "GET", f"/api/keys/{made['id']}/usage", None, {"X-API-Key": made["key"]})
    assert status == 200 and usage["id"] == made["id"], usage
    status, _, body = request(hub, "GET", "/api/keys/someone-else/usage", None, {"X-API-Key": made["key"]})
    assert status == 403 and body["error"]["code"] == "forbidden", body


def openapi_routes(spec):
    routes = set()
    for path, item in spec.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method in item:
            if method.upper() in METHODS or method.upper() == "TRACE":
                routes.add((method.upper(), re.sub(r"\{[^}]*\}", "{}", path)))
    return routes


def test_openapi_names_the_routes_of_the_table():
    """Every route of the table is in Protocol/openapi.json, and every /api path and method of the spec
    is in the table (parameter names aside). A HEAD route needs no entry of its own where the spec has
    the path's GET (HEAD is GET without the body, RFC 9110 §9.3.2)."""
    if not os.path.exists(SPEC):
        pytest.skip("Protocol/openapi.json is not in this tree yet")
    with open(SPEC) as f:
        spec = openapi_routes(json.load(f))
    rows = {(m, re.sub(r"\{[^}]*\}", "{}", p)) for m, p, _ in table()}
    missing_in_spec = {
        (m, p) for m, p in rows - spec if not (m == "HEAD" and ("GET", p) in spec)
    }
    # CORS preflights (OPTIONS) are answered by the router for every API path before the table is asked:
    # the spec lists one per path, and each must be a path the table serves.
    paths = {p for _, p in rows}
    missing_in_table = {(m, p) for m, p in spec - rows if not (m == "OPTIONS" and p in paths)}
    assert not missing_in_spec, f"routes served but not in Protocol/openapi.json: {sorted(missing_in_spec)}"
    assert not missing_in_table, f"routes in Protocol/openapi.json the hub does not serve: {sorted(missing_in_table)}"
