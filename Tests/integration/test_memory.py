"""Memory per idle joined member (issue 30). The hub's heap in use (`collabhub_heap_bytes`,
glibc's mallinfo2: exact, unlike RSS, which also counts freed pages) is read before and after members join
sessions of ten and sit idle; the growth per member is what a member costs. Rarely used state (a join
waiting, held-back output, tokens, a compressor, a replay, an HTTP request's state) is allocated on first
use and given back, which the second test checks."""
import asyncio
import json
import os
import time
import urllib.request
import conftest

from hubclient import api

# Heap per idle joined member (debug build; release allocates the same objects). Issue 30 asks for 1 KB
# of RSS per member: not reached yet (2,504 B of heap before the first compaction, ~1,870 B after it,
# 1,450-1,570 B after the second, 1,255-1,275 B after the third: the resume window's frames in one buffer
# per session and deflated once the session is idle, the sockets' timers on a wheel per loop, the member's
# one connection and its membership inline, a smaller rate limiter; 1,056-1,076 B since the fourth: the
# guest key held compactly, the member's and the connection's rare fields in side objects, the protocol
# machine's clocks in one word; 915-1,035 B since the fifth: the machine's HTTP state and inflater in one
# slot, a 112-byte block; 970-975 B since the seventh: a join's frame in the resume window as the bytes between
# a template's pieces, the connection's endpoint a byte, libev's watcher a slot of the loop's pages (measured
# here once packed, where the window's gain is smallest); the rest is listed in loadtest/README.md). This bound
# keeps what was won:
# a field added to every connection or member, or a window that is no longer packed when idle, shows up here.
BUDGET = int(os.environ.get("COLLABHUB_MEMBER_BUDGET", "1025"))
MEMBERS = 1000
PER_SESSION = 10
# An idle session's resume window is deflated once nothing was committed to it for five looks of the
# loop's WindowPacker (one a second): 5-6 s.
PACKED_AFTER = 8


def wait_packed(hub, sessions):
    """Until every session's resume window was packed (idle sessions' windows are deflated after five to
    six quiet seconds): a measurement then sees what an idle member costs, the same each time."""
    for _ in range(200):
        if metric(hub, "collabhub_resume_windows_packed_total") >= sessions:
            return
        time.sleep(0.1)
    raise AssertionError("the idle sessions' resume windows were not packed within 20 s")


def heap(hub):
    with urllib.request.urlopen(hub.http + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("collabhub_heap_bytes "):
                return int(float(line.split()[1]))
    raise AssertionError("no collabhub_heap_bytes in /metrics")


def settled_heap(hub):
    """The heap once it stopped moving (joins are committed and announced off the request path)."""
    last = heap(hub)
    for _ in range(50):
        time.sleep(0.2)
        now = heap(hub)
        if abs(now - last) < 2048:
            return now
        last = now
    return last


async def open_members(hub, codes, count, extra=None, early=None):
    """`count` joined members of the sessions `codes` (round robin), sockets kept open once joined.
    `early(ws)` runs right after the join is sent, before `joined` (the first member of each session
    waits while it wakes up); `extra(ws)` runs after `joined` (what the member does before it idles)."""
    import websockets
    members = []

    async def one(i):
        code = codes[i % len(codes)]
        ws = await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"],
                                      max_size=None, close_timeout=1, ping_interval=None, compression=None)
        await ws.send(json.dumps({"type": "join", "name": f"m{i}", "client_id": f"idle-{i:06d}"}))
        if early:
            await early(ws)
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if msg["type"] == "joined":
                break
        if extra:
            await extra(ws)
        members.append(ws)

    for start in range(0, count, 100):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 100))))
    return members


def measure(hub, members=MEMBERS, **hooks):
    codes = []
    for _ in range(members // PER_SESSION):
        status, body = api(hub, "POST", "/api/sessions", {})
        assert status == 201, body
        codes.append(body["code"])
    before = settled_heap(hub)

    async def go():
        opened = await open_members(hub, codes, members, **hooks)
        # Everyone's presence traffic is read, so nothing is left queued for a member; the store's writer,
        # idle for half a second, gives back the pages the joins' events left in its cache.
        await asyncio.sleep(1.0)
        await asyncio.get_running_loop().run_in_executor(None, wait_packed, hub, len(codes))
        for ws in opened:
            while True:
                try:
                    await asyncio.wait_for(ws.recv(), 0.001)
                except (asyncio.TimeoutError, Exception):
                    break
        after = settled_heap(hub)
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
        return after

    after = asyncio.run(go())
    return (after - before) / members


def hub_for(make_hub):
    return make_hub("--auth", "open", "--threads", "1", "--max-connections-per-address", "0")


@conftest.no_sanitizer("memory per member")
def test_idle_joined_member_costs_under_the_budget(make_hub):
    per_member = measure(hub_for(make_hub))
    print(f"heap per idle joined member: {per_member:.0f} B")
    assert 0 < per_member <= BUDGET, f"{per_member:.0f} B per idle joined member (budget {BUDGET})"


def raw_members(hub, codes, count, http_first):
    """`count` members joined over raw sockets (read until `joined`, then left unread). With
    `http_first`, each socket first serves a plain HTTP request (keep-alive) and then upgrades: the
    request's state is the connection's rare state, which its WebSocket life must give back."""
    from wsraw import RawClient, frame
    clients = []
    for i in range(count):
        c = RawClient(hub.port, handshake=False, timeout=10)
        if http_first:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert c.read_response()[0] == 200
        status, _, _ = c.handshake(f"/ws?session={codes[i % len(codes)]}", {"Sec-WebSocket-Protocol": "collabhub.v1"})
        assert status == 101
        join = {"type": "join", "name": f"m{i}", "client_id": f"raw-{i:06d}"}
        c.send(frame(1, json.dumps(join).encode()))
        while True:
            op, payload = c.recv_message()
            if op == 1 and json.loads(payload)["type"] == "joined":
                break
        clients.append(c)
    return clients


def raw_measure(hub, count, http_first):
    codes = []
    for _ in range(count // PER_SESSION):
        status, body = api(hub, "POST", "/api/sessions", {})
        assert status == 201, body
        codes.append(body["code"])
    before = settled_heap(hub)
    clients = raw_members(hub, codes, count, http_first)
    wait_packed(hub, len(codes))
    after = settled_heap(hub)
    for c in clients:
        c.close()
    return (after - before) / count


def test_rare_state_is_given_back(make_hub):
    """A connection that served an HTTP request before its upgrade had rare state (the request's timing
    and CORS headers, in the side object most connections never have); once it is a WebSocket whose
    output drained, it costs what a connection that never had any does."""
    plain = raw_measure(hub_for(make_hub), 300, http_first=False)
    used = raw_measure(hub_for(make_hub), 300, http_first=True)
    print(f"heap per joined member: upgraded at once {plain:.0f} B, after an HTTP request {used:.0f} B")
    assert used <= plain + 48, f"{used:.0f} B per member after an HTTP request, {plain:.0f} B without"


def metric(hub, name):
    with urllib.request.urlopen(hub.http + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def test_a_packed_resume_window_resumes_exactly(make_hub):
    """An idle session's resume window is deflated (`WindowPacker`); a resume from it still gets exactly
    the events it missed, from the window (not the store), and the next event unpacks it and follows in
    order; the window is packed again once it is quiet."""
    from hubclient import Client, create_session
    hub = hub_for(make_hub)
    code = create_session(hub)["code"]

    async def collect_until_joined(c):
        got = []
        while True:
            m = await c.recv(10)
            if m["type"] == "joined":
                return got, m
            got.append(m)

    async def main():
        a = await Client.connect(hub, code)
        await a.join("Ann", client_id="ann")
        b = await Client.connect(hub, code)
        seen = (await b.join("Bob", client_id="bob"))["seq"]
        await b.send({"type": "leave"})
        await b.close()
        for i in range(40):
            await a.send({"type": "chat", "id": f"c{i}", "text": f"message {i} " + "x" * (i % 7) * 10})
            await a.expect("ack", skip=("presence", "chat"))
        packed = metric(hub, "collabhub_resume_windows_packed_total")
        await asyncio.sleep(PACKED_AFTER)
        assert metric(hub, "collabhub_resume_windows_packed_total") == packed + 1, "the window was not packed"
        for round_ in range(2):
            c = await Client.connect(hub, code)
            await c.send({"type": "join", "name": "Bob", "client_id": "bob", "resume_from": seen})
            got, joined = await collect_until_joined(c)
            durable = [m for m in got if "seq" in m]
            assert [m["seq"] for m in durable] == list(range(seen + 1, joined["seq"] + 1))
            texts = [m["text"] for m in durable if m["type"] == "chat"]
            assert texts[:40] == [f"message {i} " + "x" * (i % 7) * 10 for i in range(40)]
            assert joined["recovered"]["count"] == len(durable)
            # Live again: the next event (it unpacks the window) follows in order.
            await a.send({"type": "chat", "id": f"after{round_}", "text": "after"})
            m = await c.expect("chat", skip=("presence", "typing", "cursors"))
            assert m["text"] == "after" and m["seq"] == joined["seq"] + 1
            await c.send({"type": "leave"})
            await c.close()
            await asyncio.sleep(PACKED_AFTER)  # packed again
        assert metric(hub, "collabhub_resume_windows_packed_total") >= packed + 3
        await a.close()

    asyncio.run(main())
    assert metric(hub, 'collabhub_resumes_total{outcome="exact"}') == 2
    assert metric(hub, 'collabhub_resumes_total{outcome="from_store"}') == 0
