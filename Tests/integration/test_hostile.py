"""Hostile input against the real hub: odd extension offers on every WebSocket path, extreme resume and
replay positions, floods from clients that never read (pipelined HTTP, pings, subscribes, slow headers,
a deferred request followed by junk), a session member that stops reading, the per-address cap on plain
HTTP, and oversized input. Invariants: the hub never crashes, its memory stays bounded, well-behaved
clients keep being served, and abusers get a clear answer or are cut off.

Random choices are seeded; the seed is printed (set HOSTILE_SEED to replay one).
This file doubles as the flood driver: `python3 test_hostile.py flood KIND PORT SECONDS CLIENTS` runs one
flood in its own process (so the latency probe in the test process does not share a GIL with it)."""
import asyncio
import json
import os
import random
import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib

import pytest
import websockets
import conftest
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wsraw import Closed, RawClient, frame

KEY = "hostile-admin-key-0123456789"   # the hubs' admin key (at least 16 bytes)
MiB = 1 << 20
SEED = int(os.environ.get("HOSTILE_SEED", str(random.SystemRandom().randrange(1 << 32))))
PROTO = {"Sec-WebSocket-Protocol": "collabhub.v1"}
EXTREMES = [9223372036854775807, 9223372036854775806, 18446744073709551615, 1e300, -1, 1.5, "5", None]


# ---------------------------------------------------------------------------------------------------
# Helpers

def rss_kib(hub):
    with open(f"/proc/{hub.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RSSWatch:
    """Samples the hub's RSS every 20 ms while in the `with` block: `before`, `peak`, `after` (KiB)."""

    def __init__(self, hub):
        self.hub = hub
        self._stop = threading.Event()

    def __enter__(self):
        self.before = self.peak = rss_kib(self.hub)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_kib(self.hub))
            except (OSError, AssertionError):
                return

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.hub.alive():
            self.after = rss_kib(self.hub)
            self.peak = max(self.peak, self.after)
        else:
            self.after = self.peak

    @property
    def growth_mib(self):
        return (self.peak - self.before) / 1024

    def report(self, what):
        print(f"[{what}] RSS before {self.before / 1024:.1f} MiB, peak {self.peak / 1024:.1f} MiB, "
              f"after {self.after / 1024:.1f} MiB, growth {self.growth_mib:.1f} MiB")


def http_get(hub, path, timeout=10):
    """A GET, with the hub's admin key when it has one (/metrics needs metrics:read on a closed hub)."""
    headers = {"X-API-Key": hub.admin_key} if getattr(hub, "admin_key", None) else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(hub.http + path, headers=headers), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def publish(hub, run_id, body):
    req = urllib.request.Request(f"{hub.http}/api/runs/{run_id}/events", data=json.dumps(body).encode(), method="POST",
                                 headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202
        return json.loads(r.read())


def create_session(hub):
    req = urllib.request.Request(hub.http + "/api/sessions", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"X-API-Key": hub.admin_key} if getattr(hub, "admin_key", None) else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201
        body = json.loads(r.read())
    assert "code" in body and "host_key" in body, body
    return body["code"]


def all_metrics(hub):
    text = http_get(hub, "/metrics")[1].decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(collabhub_\w+) (\S+)$", text, re.M)}


def metric_deltas(before, after, names=("slow_consumer_disconnects_total", "connections_total", "bytes_in_total",
                                        "bytes_out_total", "http_requests_total", "messages_in_total")):
    return {n: after.get("collabhub_" + n, 0) - before.get("collabhub_" + n, 0) for n in names}


def metric(hub, name):
    text = http_get(hub, "/metrics")[1].decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, f"{name} missing from /metrics"
    return float(m.group(1))


def last_close_code(stream):
    """The code of the close frame in a server-to-client byte stream (None if the stream has none)."""
    off = 0
    while off + 2 <= len(stream):
        op, n, head = stream[off] & 0xF, stream[off + 1] & 0x7F, 2
        if n == 126:
            n, head = struct.unpack("!H", stream[off + 2:off + 4])[0], 4
        elif n == 127:
            n, head = struct.unpack("!Q", stream[off + 2:off + 10])[0], 10
        if off + head + n > len(stream):
            return None
        if op == 8:
            return struct.unpack("!H", stream[off + head:off + head + 2])[0] if n >= 2 else 1005
        off += head + n
    return None


def assert_alive(hub):
    """The process is up and still answers HTTP."""
    assert hub.alive(), "hub crashed:\n" + hub.output()
    assert http_get(hub, "/healthz")[0] == 200


def raw_client(port, rcvbuf=None, timeout=5, source=None):
    """A wsraw.RawClient on a socket whose receive buffer is set before connecting (no handshake yet);
    `source` picks the client's loopback address (127.0.0.0/8 is all loopback: several "clients")."""
    c = RawClient.__new__(RawClient)
    c.buf = b""
    c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if source:
        c.sock.bind((source, 0))
    if rcvbuf:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.sock.settimeout(timeout)
    c.sock.connect(("127.0.0.1", port))
    return c


def joined_raw_member(port, code, name="Bee", **kw):
    """A member on a raw socket (a small receive buffer, so it can stop reading), joined: returns the client."""
    b = raw_client(port, rcvbuf=4096, **kw)
    status, _, _ = b.handshake(f"/ws?session={code}", PROTO)
    assert status == 101
    b.send(frame(1, json.dumps({"type": "join", "name": name}).encode()))
    while True:
        op, payload = b.recv_message()
        if op == 1 and json.loads(payload)["type"] == "joined":
            return b


def read_until_eof(sock, timeout):
    """Reads until the peer closes (EOF or reset). Returns (bytes read, True) or (bytes, False) on timeout."""
    end = time.time() + timeout
    data = b""
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


async def ws_connect(hub, path, **kw):
    kw.setdefault("close_timeout", 1)
    kw.setdefault("max_size", None)
    if path != "/echo":
        kw.setdefault("subprotocols", ["collabhub.v1"])
    return await websockets.connect(hub.url + path, **kw)


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws, types, timeout=5):
    """Messages up to and including the first whose type is in `types`."""
    got = []
    while True:
        m = await recv_json(ws, timeout)
        got.append(m)
        if m["type"] in types:
            return got


async def round_trip(hub):
    """A normal client is still served: two members join, one chats, the other receives it, the author gets its ack."""
    code = create_session(hub)
    a, b = await ws_connect(hub, f"/ws?session={code}"), await ws_connect(hub, f"/ws?session={code}")
    try:
        await a.send(json.dumps({"type": "join", "name": "Ann"}))
        await until(a, ("joined",))
        await b.send(json.dumps({"type": "join", "name": "Bob"}))
        await until(b, ("joined",))
        await a.send(json.dumps({"type": "chat", "id": "rt", "kind": "text", "text": "still here"}))
        chat = (await until(b, ("chat",)))[-1]
        ack = (await until(a, ("ack",)))[-1]
        assert chat["text"] == "still here" and ack["id"] == "rt" and ack["seq"] == chat["seq"]
    finally:
        await asyncio.gather(a.close(), b.close())


def start_hub(tmp_path_factory, name, *args):
    import conftest
    return conftest.Hub(*args, data_dir=str(tmp_path_factory.mktemp(name))).start()


def stop_hub(hub):
    assert hub.alive(), "hub crashed during the tests:\n" + hub.output()
    rc = hub.stop()
    assert rc == 0, f"hub exited with {rc}:\n" + hub.output()


# ---------------------------------------------------------------------------------------------------
# Hubs

@pytest.fixture(scope="module", autouse=True)
def seed():
    print(f"\nHOSTILE_SEED={SEED}")
    return SEED


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Echo, sessions and runs (run r1 owned by team-a: started, then five logs, seq 6)."""
    h = start_hub(tmp_path_factory, "hostile", "--echo", "--threads", "2", "--publish-key", KEY)
    publish(h, "r1", {"type": "started", "owner": "team-a"})
    for i in range(5):
        publish(h, "r1", {"type": "log", "line": "x"})
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def flood_hub(tmp_path_factory):
    h = start_hub(tmp_path_factory, "flood", "--echo", "--threads", "2", "--publish-key", KEY, "--handshake-timeout", "3")
    publish(h, "r1", {"type": "started", "owner": "team-a"})
    for i in range(5):
        publish(h, "r1", {"type": "log", "line": "x" * 200})
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def slow_member_hub(tmp_path_factory):
    # At debug, a cut writes a line naming its session (read from the output once the hub stops).
    h = start_hub(tmp_path_factory, "slowmember", "--threads", "2", "--log-level", "debug", "--log-format", "json")
    yield h
    if h.alive():
        stop_hub(h)


@pytest.fixture(scope="module")
def capped_hub(tmp_path_factory):
    h = start_hub(tmp_path_factory, "capped", "--threads", "2", "--max-connections-per-address", "5")
    yield h
    stop_hub(h)


@pytest.fixture(scope="module")
def session_code(hub):
    return create_session(hub)


# ---------------------------------------------------------------------------------------------------
# 1. Extension negotiation (RFC 7692) with odd offers on every WebSocket path

DECLINED = [
    "permessage-deflate;=",
    "permessage-deflate; ;x",
    "permessage-deflate;",
    "permessage-deflate; =1",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits=+9",
    "permessage-deflate; client_max_window_bits=08",
    "permessage-deflate; " + "x" * 4000,                    # long junk (an unknown parameter)
    "permessage-deflate" + ";" * 3000,                       # many semicolons (empty parameters)
    "permessage-deflate" + "; " * 1500 + "server_max_window_bits=10",
]
ACCEPTED = {
    "permessage-deflate; server_max_window_bits=10": "server_max_window_bits=10",
    "permessage-deflate; server_max_window_bits=15": "server_max_window_bits=15",
}
QUOTED_10 = 'permessage-deflate; server_max_window_bits="10"'    # legal RFC 6455 quoted value: declined or 10
WELL_FORMED_RESPONSE = re.compile(r"^permessage-deflate(; (server_no_context_takeover|client_no_context_takeover|"
                                  r"server_max_window_bits=(9|1[0-5])|client_max_window_bits=(9|1[0-5])))*$")


def random_offers(rng):
    printable = "".join(chr(c) for c in range(0x20, 0x7F))
    out = [QUOTED_10]
    for _ in range(10):
        out.append("".join(rng.choice(printable) for _ in range(rng.randint(1, 300))).strip() or "x")
        out.append("permessage-deflate; " + "".join(rng.choice(printable) for _ in range(rng.randint(1, 300))).strip())
        out.append("permessage-deflate" + "".join(rng.choice(";= ,x\"9") for _ in range(rng.randint(1, 60))))
    return out


@pytest.mark.parametrize("path", ["/echo", "/ws", "/watch"])
def test_odd_extension_offers_never_break_the_handshake(hub, session_code, path):
    """Every odd `Sec-WebSocket-Extensions` offer still gets 101 on every path: malformed ones (empty or
    valueless parameters, leading zeros, signs) are declined (no extension header), `server_max_window_bits=10`
    and `=15` are accepted and echoed, and anything accepted is a well-formed permessage-deflate response."""
    rng = random.Random(SEED)
    target = f"/ws?session={session_code}" if path == "/ws" else path
    headers = {} if path == "/echo" else dict(PROTO)
    offers = [(o, "declined") for o in DECLINED] + list(ACCEPTED.items()) + [(o, "either") for o in random_offers(rng)]
    failures = []
    for offer, expect in offers:
        label = offer if len(offer) < 80 else offer[:60] + f"...({len(offer)} chars)"
        try:
            c = RawClient(hub.port, handshake=False)
            status, hdrs, _ = c.handshake(target, {**headers, "Sec-WebSocket-Extensions": offer})
        except (OSError, Closed) as e:
            failures.append(f"{label!r}: {e!r}")
            if not hub.alive():
                break
            continue
        ext = hdrs.get("sec-websocket-extensions")
        if status != 101:
            failures.append(f"{label!r}: status {status}")
        elif expect == "declined" and ext is not None:
            failures.append(f"{label!r}: accepted as {ext!r}, expected declined")
        elif expect not in ("declined", "either") and (ext is None or expect not in [p.strip() for p in ext.split(";")]):
            failures.append(f"{label!r}: answered {ext!r}, expected it to echo {expect}")
        elif ext is not None and not WELL_FORMED_RESPONSE.match(ext):
            failures.append(f"{label!r}: malformed response {ext!r}")
        elif ext is not None and offer == QUOTED_10 and "server_max_window_bits=10" not in ext:
            failures.append(f"{label!r}: quoted 10 accepted as {ext!r}")
        elif path == "/echo":
            try:
                c.send(frame(1, b"hi"))
                fin, rsv, op, payload = c.recv_frame()
                got = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff") if rsv == 4 else payload
                if (op, got) != (1, b"hi"):
                    failures.append(f"{label!r}: echo came back as {(op, rsv, payload)!r}")
            except (OSError, Closed, AssertionError) as e:
                failures.append(f"{label!r}: echo failed: {e!r}")
        c.close()
        if not hub.alive():
            failures.append(f"{label!r}: the hub died")
            break
    print(f"{path}: {len(offers)} offers, {len(failures)} failures (HOSTILE_SEED={SEED})")
    assert not failures, f"HOSTILE_SEED={SEED}\n" + "\n".join(failures)
    assert_alive(hub)


def test_small_server_window_round_trips_in_shared_mode(hub):
    """With `server_max_window_bits=9` accepted in the default shared mode, messages over 2 KB whose repeats
    are further apart than 512 bytes round-trip through a real client that decompresses with a 9-bit
    window: on /echo, and as a session broadcast received by 9-bit and 15-bit clients alike."""
    print(f"HOSTILE_SEED={SEED}")
    rng = random.Random(SEED)

    def payload():
        block = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(1024))
        return block * 4                                    # back-references 1 KiB away: too far for a 9-bit window

    def small():
        return [ClientPerMessageDeflateFactory(server_max_window_bits=9)]

    async def main():
        ws = await ws_connect(hub, "/echo", extensions=small())
        try:
            assert ws.extensions and ws.extensions[0].remote_max_window_bits == 9, ws.extensions
            for _ in range(5):
                text = payload()
                await ws.send(text)
                assert await asyncio.wait_for(ws.recv(), 5) == text
        finally:
            await ws.close()

        code = create_session(hub)
        a = await ws_connect(hub, f"/ws?session={code}", extensions=small())
        b = await ws_connect(hub, f"/ws?session={code}", extensions=small())
        c = await ws_connect(hub, f"/ws?session={code}")    # default offer: 15-bit window
        try:
            for ws, name in ((a, "A"), (b, "B"), (c, "C")):
                await ws.send(json.dumps({"type": "join", "name": name}))
                await until(ws, ("joined",))
            for i in range(6):
                sender = (a, c)[i % 2]
                text = payload()
                await sender.send(json.dumps({"type": "chat", "id": f"w{i}", "kind": "text", "text": text}))
                for ws in (a, b, c):
                    got = [m for m in await until(ws, ("chat",)) if m["type"] == "chat"]
                    assert got[-1]["text"] == text
                ack = (await until(sender, ("ack",)))[-1]
                assert ack["id"] == f"w{i}"
        finally:
            await asyncio.gather(a.close(), b.close(), c.close())

    asyncio.run(main())
    assert_alive(hub)


# ---------------------------------------------------------------------------------------------------
# 2. Extreme resume and replay positions

def test_watch_resume_from_extremes(hub):
    """`subscribe run:r1` with an extreme or ill-typed `resume_from` gets a clear error or a snapshot (never a
    crash, a bogus replay or silence); afterwards an ordinary resume and a normal session round trip work."""
    async def main():
        failures, outcomes = [], {}
        for n in EXTREMES:
            try:
                ws = await ws_connect(hub, "/watch?key=" + KEY)   # the hub is closed: /watch needs runs:read
                await ws.send(json.dumps({"type": "subscribe", "channel": "run:r1", "resume_from": n}))
                first = await recv_json(ws)
                outcomes[repr(n)] = first["type"] + (f" {first.get('code')}" if first["type"] == "error" else f" seq {first.get('seq')}")
                if first["type"] not in ("error", "run_snapshot", "reset"):
                    failures.append(f"resume_from {n!r}: first answer {first}")
                elif first["type"] == "run_snapshot" and first["seq"] != 6:
                    failures.append(f"resume_from {n!r}: snapshot at seq {first['seq']}")
                try:
                    extra = await recv_json(ws, timeout=0.3)
                    failures.append(f"resume_from {n!r}: unexpected follow-up {extra}")
                except asyncio.TimeoutError:
                    pass
                await ws.close()
            except Exception as e:  # noqa: BLE001 - each value's outcome is reported
                failures.append(f"resume_from {n!r}: {e!r}")
                if not hub.alive():
                    failures.append("the hub died")
                    break
        print("watch resume outcomes:", outcomes)
        assert not failures, "\n".join(failures)
        ws = await ws_connect(hub, "/watch?key=" + KEY)   # the hub is closed: /watch needs runs:read
        await ws.send(json.dumps({"type": "subscribe", "channel": "run:r1", "resume_from": 2}))
        got = await until(ws, ("subscribed",))
        assert [m.get("seq") for m in got] == [3, 4, 5, 6, 6], got
        await ws.close()
        await round_trip(hub)

    asyncio.run(main())
    assert_alive(hub)


def test_join_resume_from_extremes(hub):
    """`join` with an extreme or ill-typed `resume_from` (for a member that was there, and for a new one)
    ends in `joined` (after nothing, or a `reset`, or only real missed events) or a clear error; then a normal
    client is still served."""
    async def main():
        code, code2 = create_session(hub), create_session(hub)
        a = await ws_connect(hub, f"/ws?session={code}")
        await a.send(json.dumps({"type": "join", "name": "Res", "client_id": "res"}))
        secret = (await until(a, ("joined",)))[-1]["resume_secret"]   # "res" is this member again only with it
        for i in range(3):
            await a.send(json.dumps({"type": "chat", "id": f"c{i}", "kind": "text", "text": "hi"}))
            last = (await until(a, ("ack",)))[-1]["seq"]
        await a.close()
        failures, outcomes = [], {}
        for n in EXTREMES:
            for where, cid in ((code, "res"), (code2, f"new{EXTREMES.index(n)}")):
                try:
                    ws = await ws_connect(hub, f"/ws?session={where}")
                    await ws.send(json.dumps({"type": "join", "name": "Res", "client_id": cid, "resume_from": n,
                                             **({"resume_secret": secret} if cid == "res" else {})}))
                    got = await until(ws, ("joined", "error"))
                    kinds = [m["type"] for m in got]
                    outcomes[f"{cid} {n!r}"] = kinds[-1] + (f" {got[-1].get('code')}" if kinds[-1] == "error" else "") + \
                        (f" (+{len(kinds) - 1} before)" if len(kinds) > 1 else "")
                    before = got[:-1]
                    if any(m["type"] not in ("reset", "chat", "presence") for m in before):
                        failures.append(f"{cid} resume_from {n!r}: unexpected {kinds}")
                    seqs = [m["seq"] for m in before if "seq" in m and m["type"] != "reset"]
                    if seqs != sorted(set(seqs)) or any(s < 1 or s > last + 2 for s in seqs):
                        failures.append(f"{cid} resume_from {n!r}: bogus replay {seqs}")
                    await ws.close()
                except Exception as e:  # noqa: BLE001
                    failures.append(f"{cid} resume_from {n!r}: {e!r}")
                    if not hub.alive():
                        failures.append("the hub died")
                        return failures, outcomes
        return failures, outcomes

    failures, outcomes = asyncio.run(main())
    print("join resume outcomes:", outcomes)
    assert not failures, "\n".join(failures)
    asyncio.run(round_trip(hub))
    assert_alive(hub)


def test_replay_from_and_speed_extremes(hub):
    """`replay` (on a connection that did not join) with every extreme `from` and `speed` 0, -1, 1e308,
    1e-308 or 1 gets `replay_started` or a clear error, and a replay that started does not take the hub
    down (gaps divided by a tiny speed); `replay_control` seek/speed with extreme values is answered with
    `replay_state` or an error. Afterwards a normal client is still served."""
    async def main():
        code = create_session(hub)
        a = await ws_connect(hub, f"/ws?session={code}")
        await a.send(json.dumps({"type": "join", "name": "Rec"}))
        await until(a, ("joined",))
        for i in range(3):                                   # real time gaps between the events
            await a.send(json.dumps({"type": "chat", "id": f"p{i}", "kind": "text", "text": "hi"}))
            await until(a, ("ack",))
            await asyncio.sleep(0.1)
        await a.close()

        failures, outcomes = [], {}
        for n in EXTREMES + [0]:
            for speed in (0, -1, 1e308, 1e-308, 1):
                try:
                    ws = await ws_connect(hub, f"/ws?session={code}")
                    await ws.send(json.dumps({"type": "replay", "session": code, "from": n, "speed": speed}))
                    first = await recv_json(ws)
                    outcomes[f"from={n!r} speed={speed!r}"] = first["type"]
                    if first["type"] not in ("error", "replay_started"):
                        failures.append(f"from {n!r} speed {speed!r}: first answer {first}")
                    elif first["type"] == "error" and not first.get("code"):
                        failures.append(f"from {n!r} speed {speed!r}: error without a code {first}")
                    if first["type"] == "replay_started":
                        try:
                            while True:                       # let a few timers fire
                                await recv_json(ws, timeout=0.15)
                        except asyncio.TimeoutError:
                            pass
                    await ws.close()
                except Exception as e:  # noqa: BLE001
                    failures.append(f"from {n!r} speed {speed!r}: {e!r}")
                if not hub.alive():
                    failures.append("the hub died")
                    return failures, outcomes

        # Control of a running replay with extreme values (a fresh, slow replay for each).
        controls = [{"action": "speed", "speed": s} for s in (0, -1, 1e308, 1e-308, 1000)] + \
                   [{"action": "seek", "seq": n} for n in EXTREMES]
        for ctl in controls:
            try:
                ws = await ws_connect(hub, f"/ws?session={code}")
                await ws.send(json.dumps({"type": "replay", "session": code, "from": 0, "speed": 0.001}))
                await until(ws, ("replay_started",))
                await ws.send(json.dumps({"type": "replay_control", **ctl}))
                answer = (await until(ws, ("replay_state", "error")))[-1]
                outcomes[f"control {ctl}"] = answer["type"] + (f" {answer.get('code')}" if answer["type"] == "error" else
                                                               f" {answer.get('state')} seq {answer.get('seq')}")
                await ws.close()
            except Exception as e:  # noqa: BLE001
                failures.append(f"replay_control {ctl}: {e!r}")
            if not hub.alive():
                failures.append("the hub died")
                break
        return failures, outcomes

    failures, outcomes = asyncio.run(main())
    print("replay outcomes:", outcomes)
    assert hub.alive(), "hub crashed:\n" + hub.output()
    assert not failures, "\n".join(failures)
    asyncio.run(round_trip(hub))
    assert_alive(hub)


# ---------------------------------------------------------------------------------------------------
# 3. Floods from clients that never read

FLOOD_SECONDS = 5.0
FLOOD_CLIENTS = 20


def flood_main(kind, port, seconds, clients):
    """One flood: `clients` sockets (4 KiB receive buffers, never read after the handshake) send as fast as
    the hub takes it for `seconds`, reconnecting when the hub closes them. Prints JSON stats."""
    junk = os.urandom(65536)
    units = {
        "pipeline": b"GET /client.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 200,
        "ping": b"\x89\x80\x00\x00\x00\x00" * 2000,
        "subscribe": b"".join(frame(1, json.dumps({"type": "subscribe", "channel": ch}).encode())
                              for _ in range(100) for ch in ("run:r1", "dashboard:team-a")),
    }
    path = {"ping": "/echo", "subscribe": "/watch?key=" + KEY}.get(kind)
    stats = {"sent": 0, "connects": 0, "dropped_by_hub": 0, "refused": 0}
    deadline = time.time() + seconds

    class Slot:
        def __init__(self):
            self.sock = None
            self.budget = 50 * MiB      # the junk flood: at most 50 MB per client

        def connect(self):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(3)
            try:
                s.connect(("127.0.0.1", port))
                self.out = bytearray()
                if path:
                    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                               f"Sec-WebSocket-Protocol: collabhub.v1\r\n\r\n").encode())
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = s.recv(4096)
                        if not chunk:
                            raise ConnectionResetError("closed during handshake")
                        head += chunk
                    if not head.startswith(b"HTTP/1.1 101"):
                        stats["refused"] += 1
                        s.close()
                        return
                elif kind == "junk":
                    self.out += b"GET /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " + KEY.encode() + b"\r\n\r\n"
            except OSError:
                stats["refused"] += 1
                s.close()
                return
            s.setblocking(False)
            self.sock = s
            stats["connects"] += 1

        def pump(self):
            if len(self.out) < 65536:
                if kind == "junk":
                    if self.budget > 0:
                        self.out += junk
                        self.budget -= len(junk)
                else:
                    self.out += units[kind]
            if not self.out:
                return
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                stats["dropped_by_hub"] += 1
                self.sock.close()
                self.sock = None
                return
            del self.out[:n]
            stats["sent"] += n

    slots = [Slot() for _ in range(clients)]
    while time.time() < deadline:
        for s in slots:
            if s.sock is None and time.time() < deadline and (kind != "junk" or s.budget > 0):
                s.connect()
        active = [s for s in slots if s.sock is not None]
        if not active:
            time.sleep(0.05)
            continue
        _, writable, _ = select.select([], [s.sock for s in active], [], 0.05)
        for s in active:
            if s.sock in writable:
                s.pump()
    for s in slots:
        if s.sock is not None:
            s.sock.close()
    print(json.dumps(stats))


def echo_latencies(hub, n=50):
    async def main():
        ws = await websockets.connect(hub.url + "/echo", compression=None, close_timeout=1)
        try:
            for i in range(5):
                await ws.send(f"warm {i}")
                await asyncio.wait_for(ws.recv(), 5)
            out = []
            for i in range(n):
                t = time.perf_counter()
                await ws.send(f"probe {i:04d} " + "x" * 32)
                assert await asyncio.wait_for(ws.recv(), 5) == f"probe {i:04d} " + "x" * 32
                out.append(time.perf_counter() - t)
            return out
        finally:
            await ws.close()
    return asyncio.run(main())


def run_flood(hub, kind, probe_latency=True):
    """Runs one flood in a child process; returns (rss watch, flood stats, unloaded median, loaded median)."""
    unloaded = statistics.median(echo_latencies(hub)) if probe_latency else None
    loaded = None
    m0 = all_metrics(hub)
    with RSSWatch(hub) as rss:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "flood", kind, str(hub.port),
                                 str(FLOOD_SECONDS), str(FLOOD_CLIENTS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)
            if probe_latency:
                try:
                    loaded = statistics.median(echo_latencies(hub))
                except Exception as e:  # noqa: BLE001 - reported as the latency failure below
                    loaded = e
            out, err = proc.communicate(timeout=FLOOD_SECONDS + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        time.sleep(0.5)
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    rss.report(kind)
    print(f"[{kind}] flood stats {stats}")
    if hub.alive():
        print(f"[{kind}] hub metric deltas {metric_deltas(m0, all_metrics(hub))}")
    if probe_latency:
        shown = f"{loaded * 1000:.2f} ms" if isinstance(loaded, float) else repr(loaded)
        print(f"[{kind}] echo median unloaded {unloaded * 1000:.2f} ms, under flood {shown}")
    return rss, stats, unloaded, loaded


def check_flood(hub, kind, rss, stats, unloaded, loaded):
    assert hub.alive(), "hub crashed:\n" + hub.output()
    assert stats["connects"] >= FLOOD_CLIENTS, stats
    assert rss.growth_mib < conftest.rss_limit_mib(64), f"RSS grew {rss.growth_mib:.1f} MiB under the {kind} flood"
    if unloaded is not None:
        assert isinstance(loaded, float), f"the echo probe failed under the {kind} flood: {loaded!r}"
        assert loaded <= 2 * unloaded + 0.005, \
            f"echo median {loaded * 1000:.2f} ms under the {kind} flood vs {unloaded * 1000:.2f} ms unloaded"
    assert_alive(hub)


def test_flood_pipelined_http_requests_from_non_readers(flood_hub):
    """20 clients pipelining `GET /client.js` without ever reading the answers: the hub's memory stays bounded
    (it stops reading instead of queueing answers) and an echo client keeps its latency."""
    check_flood(flood_hub, "pipeline", *run_flood(flood_hub, "pipeline"))


def test_flood_pings_from_non_readers(flood_hub):
    """20 WebSocket clients sending empty masked pings without reading the pongs: memory stays bounded (they
    are cut off at the output limit) and an echo client keeps its latency."""
    check_flood(flood_hub, "ping", *run_flood(flood_hub, "ping"))


def test_flood_subscribes_from_non_readers(flood_hub):
    """20 watchers repeating `subscribe run:r1` / `dashboard:team-a` without reading the snapshots: memory
    stays bounded and an echo client keeps its latency."""
    check_flood(flood_hub, "subscribe", *run_flood(flood_hub, "subscribe"))


def test_flood_deferred_request_then_junk(flood_hub):
    """20 clients each sending a request answered off the loop (`GET /api/sessions`) and then streaming up to
    50 MB of junk: the hub does not buffer the junk while the answer is pending (memory stays bounded), and
    the hub still answers."""
    check_flood(flood_hub, "junk", *run_flood(flood_hub, "junk", probe_latency=False))


def test_flooders_that_keep_sending_are_disconnected(flood_hub):
    """A non-reading ping flooder (/echo) and subscribe flooder (/watch) that keep sending after the hub has
    given up on them are not drained forever: the hub drops the TCP connection (sends start failing)
    within ~15 s."""
    units = {"/echo": b"\x89\x80\x00\x00\x00\x00" * 2000,
             "/watch?key=" + KEY: b"".join(frame(1, json.dumps({"type": "subscribe", "channel": "run:r1"}).encode()) for _ in range(200))}
    socks = {}
    for path in units:
        c = raw_client(flood_hub.port, rcvbuf=4096)
        status, _, _ = c.handshake(path, PROTO)
        assert status == 101
        c.sock.setblocking(False)
        socks[c.sock] = path
    bound = conftest.cpu_bound_seconds(15)  # how soon depends on how fast the hub fills its output limit
    start, dropped, sent = time.time(), {}, {path: 0 for path in units}
    while len(dropped) < len(socks) and time.time() < start + bound + 5:
        _, writable, _ = select.select([], [s for s in socks if socks[s] not in dropped], [], 0.05)
        for s in writable:
            try:
                sent[socks[s]] += s.send(units[socks[s]])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                dropped[socks[s]] = (round(time.time() - start, 1), e.__class__.__name__)
    for s in socks:
        s.close()
    print(f"[keep sending] dropped {dropped}; bytes sent {sent}")
    assert flood_hub.alive(), "hub crashed:\n" + flood_hub.output()
    assert set(dropped) == set(units), f"still connected after {bound + 5} s of sending: {set(units) - set(dropped)}"
    assert all(t < bound for t, _ in dropped.values()), dropped
    assert_alive(flood_hub)


def test_slow_headers_are_cut_off_within_the_handshake_timeout(flood_hub):
    """200 sockets each dribbling one byte of a request head per second (slowloris): the hub (handshake timeout
    3 s) answers 408 or closes every one of them within ~6 s of its first byte, although bytes keep arriving,
    keeps its memory bounded, and serves /healthz meanwhile."""
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    socks, opened, pos, closed_at, answers = [], {}, {}, {}, {}
    health = None
    with RSSWatch(flood_hub) as rss:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect(("127.0.0.1", flood_hub.port))
            s.setblocking(False)
            socks.append(s)
            opened[s], pos[s] = time.time(), 0
        start = time.time()
        next_send = start
        while len(closed_at) < len(socks) and time.time() < start + 9:
            now = time.time()
            if now >= next_send:
                next_send += 1.0
                for s in socks:
                    if s in closed_at:
                        continue
                    try:
                        s.send(head[pos[s]:pos[s] + 1])
                        pos[s] += 1
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        closed_at[s] = now
            if health is None and now > start + 1.5:
                t = time.perf_counter()
                health = (http_get(flood_hub, "/healthz", timeout=5)[0], time.perf_counter() - t)
            readable, _, _ = select.select([s for s in socks if s not in closed_at], [], [], 0.1)
            for s in readable:
                try:
                    data = s.recv(4096)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                except (BlockingIOError, InterruptedError):
                    continue
                if data:
                    answers[s] = answers.get(s, b"") + data
                else:
                    closed_at[s] = time.time()
    for s in socks:
        s.close()
    rss.report("slow headers")
    lifetimes = sorted(closed_at[s] - opened[s] for s in closed_at)
    statuses = {}                                          # status line -> how many sockets got it
    for data in answers.values():
        line = data.split(b"\r\n", 1)[0].decode(errors="replace")
        statuses[line] = statuses.get(line, 0) + 1
    print(f"[slow headers] closed {len(closed_at)}/200; lifetimes min {lifetimes[0] if lifetimes else None}, "
          f"max {lifetimes[-1] if lifetimes else None}; answers {statuses}; bytes dribbled up to {max(pos.values())}; "
          f"healthz meanwhile {health}")
    assert flood_hub.alive(), "hub crashed:\n" + flood_hub.output()
    assert len(closed_at) == 200, f"only {len(closed_at)} of 200 slow sockets were closed within 9 s"
    assert lifetimes[-1] < 6.5, f"a slow socket lived {lifetimes[-1]:.1f} s (handshake timeout 3 s)"
    assert all(line.startswith("HTTP/1.1 408") for line in statuses), statuses
    assert health and health[0] == 200 and health[1] < 2, health
    assert rss.growth_mib < conftest.rss_limit_mib(64)
    assert_alive(flood_hub)


# ---------------------------------------------------------------------------------------------------
# 4. A session member that stops reading

def test_member_that_stops_reading_is_cut_off(slow_member_hub):
    """Member B joins over a raw socket with a 4 KiB receive buffer and stops reading while member A sends
    ~20 MB of chat: the hub's memory stays bounded, it counts exactly one slow-consumer disconnect, and B's
    socket is closed by the hub (reading it to the end finishes, with far less than 20 MB in it)."""
    hub = slow_member_hub
    code = create_session(hub)
    b = joined_raw_member(hub.port, code, timeout=5)
    text = "".join(random.Random(SEED).choice("abcdefghij") for _ in range(16000))
    total, window = 1280, 16                                   # 1280 x 16 KB = ~20 MB

    async def flood():
        a = await ws_connect(hub, f"/ws?session={code}")
        try:
            await a.send(json.dumps({"type": "join", "name": "Ann"}))
            await until(a, ("joined",))
            sent = acked = 0
            while acked < total:
                while sent < total and sent - acked < window:
                    await a.send(json.dumps({"type": "chat", "id": f"m{sent}", "kind": "text", "text": text}))
                    sent += 1
                m = await recv_json(a, timeout=10)
                if m["type"] == "ack":
                    acked += 1
                elif m["type"] == "error":
                    raise AssertionError(f"A got {m}")
        finally:
            await a.close()

    t0 = time.time()
    with RSSWatch(hub) as rss:
        asyncio.run(flood())
    flood_s = time.time() - t0
    drops = metric(hub, "collabhub_slow_consumer_disconnects_total")
    t1 = time.time()
    data, ended = read_until_eof(b.sock, 15)
    b.close()
    close_code = last_close_code(b.buf + data)
    rss.report("slow member")
    print(f"[slow member] flood {flood_s:.1f} s; slow_consumer_disconnects_total {drops}; B read {len(data)} bytes, "
          f"ended {ended} after {time.time() - t1:.1f} s; close frame received: {close_code}")
    assert hub.alive(), "hub crashed:\n" + hub.output()
    assert rss.growth_mib < conftest.rss_limit_mib(64), f"RSS grew {rss.growth_mib:.1f} MiB"
    assert drops == 1, f"slow_consumer_disconnects_total is {drops}, expected exactly 1"
    assert ended, f"B's socket was not closed by the hub within 15 s ({len(data)} bytes read)"
    assert len(data) < 10 * MiB, f"B could still read {len(data)} bytes"
    assert_alive(hub)
    stop_hub(hub)
    lines = [json.loads(l) for l in hub.proc.stdout.read().splitlines() if l.startswith("{")]
    cuts = [l for l in lines if l.get("msg") == "slow consumer cut"]
    assert len(cuts) == 1 and cuts[0].get("session") == code, f"one debug line naming session {code}: {cuts}"


# ---------------------------------------------------------------------------------------------------
# 5. The per-address connection cap covers plain HTTP

def test_per_address_cap_covers_plain_http(capped_hub):
    """With `--max-connections-per-address 5`, five idle plain TCP connections use up the address: a sixth
    is answered 429 and closed; once one of the five closes, a new connection is served again (and the
    cap still holds after that)."""
    hub = capped_hub
    idle = [socket.create_connection(("127.0.0.1", hub.port), timeout=5) for _ in range(5)]
    try:
        time.sleep(0.3)
        sixth = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
        data, ended = read_until_eof(sixth, 5)
        sixth.close()
        print(f"[cap] sixth connection got {data[:60]!r}, closed {ended}")
        assert data.startswith(b"HTTP/1.1 429"), f"sixth connection got {data[:200]!r}"
        assert ended
        idle.pop().close()
        deadline, served = time.time() + 3, None
        while time.time() < deadline:
            s = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.settimeout(5)
            served = s.recv(4096)
            if served.startswith(b"HTTP/1.1 200"):
                idle.append(s)                                 # it holds its slot (keep-alive)
                break
            s.close()
            time.sleep(0.1)
        assert served and served.startswith(b"HTTP/1.1 200"), f"after a close, a new connection got {served[:200]!r}"
        again = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
        data, _ = read_until_eof(again, 5)
        again.close()
        assert data.startswith(b"HTTP/1.1 429"), f"the cap no longer holds: {data[:200]!r}"
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    assert_alive(hub)


# ---------------------------------------------------------------------------------------------------
# 6. Oversized and partial input

def test_http_body_over_the_limit_gets_413_and_close(hub):
    """A request announcing a 2 MB body (`Content-Length: 2000000`, limit 1 MiB) while streaming it is answered
    413 and the connection is closed; the hub stays up."""
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=5)
    s.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n")

    def stream_body():
        try:
            for _ in range(2000000 // 65536 + 1):
                s.sendall(b"{" * 65536)
        except OSError:
            pass
    t = threading.Thread(target=stream_body, daemon=True)
    t.start()
    data, ended = read_until_eof(s, 10)
    t.join(5)
    s.close()
    print(f"[413] answer {data[:80]!r}, closed {ended}")
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    assert ended, "connection not closed after 413"
    assert_alive(hub)


def test_partial_frame_header_is_held_and_oversized_length_is_refused(hub):
    """A WebSocket frame header sent in pieces is held until complete (the echo then works); a header that
    announces a 2 MB frame (over the 1 MiB message limit), sent in pieces, gets close 1009 and TCP close."""
    c = RawClient(hub.port)
    whole = frame(1, b"hello")
    c.send(whole[:1])
    time.sleep(0.3)
    c.send(whole[1:3])
    time.sleep(0.3)
    c.send(whole[3:])
    c.sock.settimeout(5)
    assert c.recv_message() == (1, b"hello")
    header = struct.pack("!BBQ", 0x82, 0xFF, 2_000_000) + b"\x01\x02\x03\x04"
    c.send(header[:4])
    time.sleep(0.3)
    c.send(header[4:])
    c.expect_close(1009)
    c.close()
    assert_alive(hub)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "flood":
        flood_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("usage: test_hostile.py flood KIND PORT SECONDS CLIENTS")
