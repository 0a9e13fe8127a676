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


class Client:
    """Tracks every open client so `close_all` can end them (an unclosed websockets client costs its
    10 s close timeout when the event loop ends)."""
    open = []

    def __init__(self, ws, validate=True):
        self.ws = ws
        self.validate = validate
        Client.open.append(self)

    @classmethod
    async def close_all(cls):
        clients, cls.open = cls.open, []
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)

    @classmethod
    async def connect(cls, hub, code, validate=True, **kw):
        ws = await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"], max_size=None,
                                      close_timeout=1, **kw)
        return cls(ws, validate)

    async def send(self, msg):
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout=5):
        msg = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if self.validate:
            validate(msg)
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
