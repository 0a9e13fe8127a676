"""Helpers for talking the collabhub.v1 protocol to a running hub with Python `websockets`."""
import asyncio
import glob
import json
import os
import urllib.request

import jsonschema
import websockets

PROTOCOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "Protocol")
SCHEMAS = {os.path.basename(p)[:-5]: json.load(open(p)) for p in glob.glob(os.path.join(PROTOCOL, "schemas", "server", "*.json"))}


def validate(msg):
    """Every message the hub sends must match its schema."""
    schema = SCHEMAS.get(msg.get("type"))
    assert schema is not None, f"no schema for server message type {msg.get('type')!r}"
    jsonschema.validate(msg, schema)


def api(hub, method, path, body=None, headers=None):
    """One API request. Without `headers`, a hub started with an admin key is sent it (tests of
    authorization pass their own headers, `{}` for none)."""
    data = None if body is None else json.dumps(body).encode()
    if headers is None:
        headers = {"X-API-Key": hub.admin_key} if getattr(hub, "admin_key", None) else {}
    if data is not None and not any(k.lower() == "content-type" for k in headers):
        headers = {**headers, "Content-Type": "application/json"}
    req = urllib.request.Request(hub.http + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and r.headers.get("Content-Type", "").startswith("application/json") else raw)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


def create_session(hub, **fields):
    status, body = api(hub, "POST", "/api/sessions", fields)
    assert status == 201, body
    return body


# A guest's `client_id` is the same member again only with the `resume_secret` its first `joined` brought:
# the secrets those joins got, by (session code, client_id). Keyed by session, not by hub port, so that a
# reconnect to a restarted hub (a new port) or to another cluster node still resumes the same member.
# A secret sent where the hub never issued it is harmless: it only names a (new) member.
SECRETS = {}


def with_secret(msg, code):
    """`msg` with the remembered `resume_secret` added, if it is a join with a client_id, no token and no
    resume_secret of its own (a test that passes `resume_secret`, even None, decides for itself)."""
    if not isinstance(msg, dict) or msg.get("type") != "join" or not isinstance(msg.get("client_id"), str):
        return msg
    if "resume_secret" in msg:
        return {k: v for k, v in msg.items() if not (k == "resume_secret" and v is None)}
    secret = SECRETS.get((str(msg.get("session") or code or "").upper(), msg["client_id"]))
    return {**msg, "resume_secret": secret} if secret and "token" not in msg else msg


def remember_secret(join, joined, code):
    """Keeps the secret `joined` brought for the client_id of `join` (the join that it answers, as the test
    gave it: one that named its own `resume_secret`, even None, is a deliberate other identity, not kept)."""
    if not isinstance(join, dict) or "resume_secret" in join:
        return
    if join and isinstance(joined, dict) and joined.get("type") == "joined" and joined.get("resume_secret"):
        key = (str(join.get("session") or code or joined.get("session") or "").upper(), join.get("client_id"))
        SECRETS[key] = joined["resume_secret"]


def session_of(path):
    """The session code in a `/ws?session=CODE` path (None without one)."""
    from urllib.parse import parse_qs, urlparse
    return (parse_qs(urlparse(path).query).get("session") or [None])[0]


class Client:
    """Tracks every open client so `close_all` can end them (an unclosed websockets client costs its
    10 s close timeout when the event loop ends). A join with a client_id carries the resume secret an
    earlier join of that client_id in that session got (see `SECRETS`), unless it names its own."""
    open = []

    def __init__(self, ws, validate=True, code=None):
        self.ws = ws
        self.validate = validate
        self.code = code
        self.last_join = None
        Client.open.append(self)

    @classmethod
    async def close_all(cls):
        clients, cls.open = cls.open, []
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)

    @classmethod
    async def connect(cls, hub, code, validate=True, **kw):
        ws = await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"], max_size=None,
                                      close_timeout=1, **kw)
        return cls(ws, validate, code)

    async def send(self, msg):
        if isinstance(msg, dict) and msg.get("type") == "join":
            self.last_join = msg
            msg = with_secret(msg, self.code)
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout=5):
        msg = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if self.validate:
            validate(msg)
        if msg.get("type") == "joined":
            remember_secret(self.last_join, msg, self.code)
        return msg

    async def expect(self, type_, timeout=5, skip=("cursors", "typing", "presence")):
        """Next message of `type_`, skipping ephemeral noise of the kinds in `skip` (and, when waiting for
        an ack, the author's own copy of the message, which comes first)."""
        if type_ == "ack":
            skip = tuple(skip) + ("chat", "event")
        while True:
            msg = await self.recv(timeout)
            if msg["type"] == type_:
                return msg
            assert msg["type"] in skip, f"expected {type_}, got {msg}"

    async def join(self, name, **fields):
        await self.send({"type": "join", "name": name, **fields})
        return await self.expect("joined")

    async def close(self):
        await self.ws.close()


def eventually(check, timeout=10.0, interval=0.05, what="condition"):
    """Polls `check` until it returns something truthy (returned), or fails after `timeout` seconds:
    tests wait for a condition, not for a fixed time."""
    import time
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def run(coro):
    """Runs a test coroutine, then closes every client it opened."""
    async def wrapped():
        try:
            return await coro
        finally:
            await Client.close_all()
    return asyncio.run(wrapped())
