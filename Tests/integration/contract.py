"""The HTTP API's contract, Protocol/openapi.json, checked against every answer the tests get from a hub.

`install()` wraps `http.client` (which `urllib` uses too) so that every response from a hub's port (`HUB_PORTS`,
filled by conftest's `Hub.start`) is checked: its status must be one the spec lists for that route and method
(a path no route serves: 404; a method a path lacks: 404 or 405, the spec's `x-unmatched`), and its body must
match the schema for that status and content type. `wsraw.RawClient` reports its handshake answers too.
Problems are collected in `VIOLATIONS`; conftest's autouse fixture fails the test that caused them."""
import http.client
import io
import json
import os
import re
import threading
from urllib.parse import urlsplit

import jsonschema

SPEC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "Protocol", "openapi.json")
SPEC = json.load(open(SPEC_PATH))
HUB_PORTS = set()
# Whether the hub on a port still runs (port -> callable): a port is checked only while its hub is alive, so
# that another server that later takes a dead hub's port (chromedriver, a test's receiver) is not checked.
LIVENESS = {}


def is_hub(port):
    return port in HUB_PORTS and LIVENESS.get(port, lambda: True)()
VIOLATIONS = []
_lock = threading.Lock()


def _route_regex(template):
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p) + "$")


# Literal paths before templated ones (`/replay` before `/replay/{code}`; fewer parameters first).
ROUTES = sorted(((t, _route_regex(t)) for t in SPEC["paths"]), key=lambda r: (r[0].count("{"), r[0]))


def route_of(path):
    """The spec's path template that serves `path` (no query), or None. The hub's API reads a path by its
    non-empty segments (the route table splits on "/"), so `/api/sessions/CODE/` is `/api/sessions/CODE`:
    match the same way."""
    if path.startswith("/api/"):
        path = "/" + "/".join(p for p in path.split("/") if p)
    for template, rx in ROUTES:
        if rx.match(path):
            return template
    return None


def _schema(s):
    """A schema with the spec's components reachable for `$ref`s."""
    return {**s, "components": SPEC["components"]}


def _resolve(response):
    while "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[1]
        response = SPEC["components"]["responses"][name]
    return response


def check(method, target, status, content_type, body):
    """The contract's objections to one answer (a list of strings; empty when it conforms)."""
    path = urlsplit(target).path or "/"
    method = method.upper()
    where = f"{method} {path} -> {status}"
    template = route_of(path)
    item = SPEC["paths"].get(template) if template else None
    op = None
    if item is not None:
        op = item.get(method.lower()) or (item.get("get") if method == "HEAD" else None)
    if op is None:
        # No route (or no such method on it): the spec's x-unmatched answers.
        allowed = SPEC["x-unmatched"] if item is None else {k: v for k, v in SPEC["x-unmatched"].items()}
        if str(status) not in allowed:
            what = "no route in the spec" if item is None else f"{method} is not in the spec for {template}"
            return [f"{where}: {what}, and {status} is not an unmatched route's answer ({', '.join(allowed)})"]
        response = _resolve(allowed[str(status)])
    else:
        responses = op["responses"]
        if str(status) not in responses:
            return [f"{where}: status {status} is not listed for {method} {template} ({', '.join(responses)})"]
        response = _resolve(responses[str(status)])
    content = response.get("content")
    media = (content_type or "").split(";")[0].strip().lower()
    if method == "HEAD" or status in (101, 204, 304):
        return []
    if not body:
        # Empty is a body only of a type that can be empty (an export of no events); JSON never is.
        if content and (media not in content or media == "application/json"):
            return [f"{where}: an empty body ({media or 'no type'}) where the spec has {', '.join(content)}"]
        return []
    if not content:
        return [f"{where}: a body ({content_type}) where the spec has none"]
    if media not in content:
        return [f"{where}: content type {media!r} is not one of {', '.join(content)}"]
    schema = content[media].get("schema")
    if media != "application/json" or schema is None:
        return []
    try:
        doc = json.loads(body)
    except ValueError as e:
        return [f"{where}: the body is not JSON ({e}): {body[:200]!r}"]
    try:
        jsonschema.validate(doc, _schema(schema))
    except jsonschema.ValidationError as e:
        path_in = "/".join(str(p) for p in e.absolute_path)
        return [f"{where}: the body does not match the spec at /{path_in}: {e.message[:300]}"]
    return []


def observe(port, method, target, status, content_type, body):
    """Checks an answer from `port` if a hub listens there; problems go to `VIOLATIONS`."""
    if not is_hub(port):
        return
    problems = check(method, target, status, content_type, body)
    if problems:
        with _lock:
            VIOLATIONS.extend(problems)


_installed = False


def install():
    """Wraps http.client once: every response from a hub is read whole, checked, and handed on unchanged."""
    global _installed
    if _installed:
        return
    _installed = True
    original_putrequest = http.client.HTTPConnection.putrequest
    original_getresponse = http.client.HTTPConnection.getresponse

    def putrequest(self, method, url, *args, **kwargs):
        self._contract_request = (method, url)
        return original_putrequest(self, method, url, *args, **kwargs)

    def getresponse(self):
        response = original_getresponse(self)
        method, url = getattr(self, "_contract_request", (None, None))
        if method is None or not is_hub(self.port):
            return response
        if response.status == 101:
            observe(self.port, method, url, 101, None, b"")
            return response
        body = response.read()   # the whole answer (a streamed export too), then given back as it came
        response.fp = io.BufferedReader(io.BytesIO(body))
        response.length = len(body)
        response.chunked = False
        response.will_close = True
        observe(self.port, method, url, response.status, response.getheader("Content-Type"), body)
        return response

    http.client.HTTPConnection.putrequest = putrequest
    http.client.HTTPConnection.getresponse = getresponse
