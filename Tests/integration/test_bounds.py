"""Issue 26, every output bounded (review 2026-12-06: N3, N4, H6) against the real hub.

- Transcript exports are streamed as the client reads (chunked, a piece at a time): a dozen sockets that
  never read, each asking for a ~10 MB ndjson export, cost the hub a bounded amount, and the write-progress
  timeout cuts them; at most 4 exports run at once per client address (429 with a JSON error beyond).
- An export read to its end is exactly what was written, in order, with valid chunked framing, for ndjson
  and for JSON pages; HEAD and keep-alive still work around a chunked answer (and HTTP/1.0 gets no chunks).
- Replay reads go to a worker of their own, fair across client addresses, seeks coalesced: a replay seek
  flood leaves admin `GET /api/webhooks` fast; a finished replay gave up its slot and answers a seek with
  `replay_finished` (a new `replay` plays again).

Measured numbers are printed (run with -s to see them).
This file doubles as the seek-flood driver: `python3 test_bounds.py seekflood PORT SECONDS ACTIVE FINISHED`
runs one flood in its own process (so the latency probe in the test process does not share a GIL with it)."""
import asyncio
import http.client
import json
import os
import random
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import conftest

from test_hostile import RSSWatch, all_metrics, assert_alive, raw_client, read_until_eof, stop_hub, ws_connect
from wsraw import frame

KEY = "bounds-admin-key-0123456789"
MiB = 1 << 20
PROTO = {"Sec-WebSocket-Protocol": "collabhub.v1"}
CHATS = 1000              # of ~10 KB each (8,000 characters): a ~10 MB transcript
CHAT_BYTES = 16000


# ---------------------------------------------------------------------------------------------------
# Helpers

def api(hub, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(hub.http + path, data=data, method=method,
                                 headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def chat_text(i):
    """Distinct, deterministic, with characters JSON must escape and multi-byte ones."""
    rng = random.Random(i)
    alphabet = "abcdefghijklmnopqrstuvwxyz \"\\\u00e9\u4e16\U0001F600\t"
    return f"{i:05d} " + "".join(rng.choice(alphabet) for _ in range(CHAT_BYTES // 2))[:CHAT_BYTES // 2]


async def populate(hub, code, n):
    """Joins and sends `n` chats (at most 64 unacknowledged); returns {seq: the chat frame as received live}."""
    ws = await ws_connect(hub, f"/ws?session={code}")
    await ws.send(json.dumps({"type": "join", "name": "Author"}))
    while json.loads(await ws.recv())["type"] != "joined":
        pass
    frames, sent, acked = {}, 0, 0
    while acked < n:
        while sent < n and sent - acked < 64:
            await ws.send(json.dumps({"type": "chat", "id": f"c{sent}", "kind": "text", "text": chat_text(sent)}))
            sent += 1
        raw = await asyncio.wait_for(ws.recv(), 15)
        m = json.loads(raw)
        if m["type"] == "chat":
            frames[m["seq"]] = raw.encode()
        elif m["type"] == "ack":
            acked += 1
        elif m["type"] == "error":
            raise AssertionError(m)
    # Left for good (not after the reconnect grace, mid-test): the transcript stops changing.
    await ws.send(json.dumps({"type": "leave"}))
    await asyncio.sleep(0.2)
    await ws.close()
    return frames


def parse_chunked(data):
    """Strictly parses one chunked body at the start of `data`: (body, chunk sizes, bytes after the body)."""
    body, sizes, off = bytearray(), [], 0
    while True:
        end = data.index(b"\r\n", off)
        line = data[off:end]
        assert line and all(c in b"0123456789abcdef" for c in line), f"bad chunk size line {line[:40]!r}"
        size = int(line, 16)
        off = end + 2
        if size == 0:
            assert data[off:off + 2] == b"\r\n", f"no CRLF after the last chunk: {data[off:off + 20]!r}"
            return bytes(body), sizes, data[off + 2:]
        assert data[off + size:off + size + 2] == b"\r\n", "a chunk does not end with CRLF"
        body += data[off:off + size]
        sizes.append(size)
        off += size + 2


def split_head(data):
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


def read_all(sock, timeout=30):
    data, closed = read_until_eof(sock, timeout)
    assert closed, f"the hub did not close within {timeout} s ({len(data)} bytes read)"
    return data


def export_request(code, query="format=ndjson", method="GET", extra=""):
    return (f"{method} /api/sessions/{code}/transcript?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n"
            f"{extra}\r\n").encode()


def api_latencies(hub, path="/api/webhooks", n=40):
    """Sequential admin GETs on fresh connections: their times in seconds."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _, _ = api(hub, "GET", path)
        out.append(time.perf_counter() - t)
        assert status == 200, status
        time.sleep(0.02)
    return out


# ---------------------------------------------------------------------------------------------------
# The hub: closed (admin key), a guest-allow session with ~10 MB of chats, and a small one to replay to its end

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    import conftest
    hub = conftest.Hub("--threads", "2", "--admin-key", KEY, "--handshake-timeout", "3",
                       data_dir=str(tmp_path_factory.mktemp("bounds"))).start()
    status, _, raw = api(hub, "POST", "/api/sessions", {"guest_policy": "allow"})
    assert status == 201, raw
    code = json.loads(raw)["code"]
    t = time.time()
    frames = asyncio.run(populate(hub, code, CHATS))
    deadline = time.time() + 10
    while True:                 # the leave is committed: nothing is appended to the transcript mid-test
        tail = json.loads(api(hub, "GET", f"/api/sessions/{code}/transcript?after={max(frames)}")[2])["events"]
        if [e["type"] for e in tail] == ["presence"] or time.time() > deadline:
            break
        time.sleep(0.05)
    assert [e["type"] for e in tail] == ["presence"] and tail[0]["leaves"], tail
    status, _, raw = api(hub, "POST", "/api/sessions", {"guest_policy": "allow"})
    small = json.loads(raw)["code"]
    asyncio.run(populate(hub, small, 5))
    print(f"\n[bounds] session {code}: {CHATS} chats of {CHAT_BYTES // 2} characters in {time.time() - t:.1f} s")
    yield hub, code, small, frames
    stop_hub(hub)


# ---------------------------------------------------------------------------------------------------
# 1. Non-reading export clients

def test_exports_to_non_readers_keep_memory_bounded(big):
    """12 sockets (SO_RCVBUF 4 KiB, from 3 addresses, 4 each) ask for the ~10 MB ndjson export and never
    read: RSS grows by less than 64 MiB (before: the whole export, several times over, per socket), every
    one got a 200, a fifth export from one of those addresses gets 429 with a JSON error, the hub stays up
    and serves others meanwhile, and the write-progress timeout (3 s here) cuts the readers off (their
    export slots are given back: the addresses may export again)."""
    hub, code, _, _ = big
    socks = []
    m0 = all_metrics(hub)
    with RSSWatch(hub) as rss:
        for i in range(12):
            c = raw_client(hub.port, rcvbuf=4096, source=f"127.0.3.{1 + i % 3}")
            c.sock.sendall(export_request(code))
            socks.append(c.sock)
        start = time.time()
        time.sleep(0.5)
        heads = [s.recv(12, socket.MSG_PEEK) for s in socks]     # peeked: nothing is taken from the buffer
        fifth = raw_client(hub.port, source="127.0.3.1")
        fifth.sock.sendall(export_request(code, extra="Connection: close\r\n"))
        refused = read_all(fifth.sock, 10)
        t = time.perf_counter()
        assert urllib.request.urlopen(hub.http + "/healthz", timeout=5).status == 200
        healthz_ms = (time.perf_counter() - t) * 1000
        during = all_metrics(hub)
        # Nothing is read: once no byte moved for 3 s the hub closes them, and gives their slots back.
        while all_metrics(hub).get("collabhub_export_addresses", 0) > 0 and time.time() - start < 15:
            time.sleep(0.2)
        cut_after = time.time() - start
    after = all_metrics(hub)
    for s in socks:
        s.close()
    rss.report("12 non-reading ndjson exports")
    status, headers, body = split_head(refused)
    written = after["collabhub_bytes_out_total"] - m0["collabhub_bytes_out_total"]
    size = CHATS * CHAT_BYTES * 0.8
    print(f"[exports] heads {set(heads)}; fifth from one address: {status} {body[:120]!r}; healthz under load "
          f"{healthz_ms:.1f} ms; export_addresses {during.get('collabhub_export_addresses')} -> "
          f"{after.get('collabhub_export_addresses')} after {cut_after:.1f} s; written to the 12: "
          f"{written / MiB:.1f} MiB (of ~{12 * size / MiB:.0f} MiB asked)")
    assert hub.alive(), "hub crashed:\n" + hub.output()
    assert all(h == b"HTTP/1.1 200" for h in heads), heads
    assert status == 429 and headers["content-type"] == "application/json", (status, headers)
    assert json.loads(body)["error"]["code"] == "too_many_exports", body
    assert rss.growth_mib < conftest.rss_limit_mib(64), f"RSS grew {rss.growth_mib:.1f} MiB under 12 non-reading exports"
    assert during.get("collabhub_export_addresses") == 3, during.get("collabhub_export_addresses")
    assert after.get("collabhub_export_addresses", 0) == 0, "the stalled exports were not cut off"
    assert written < 12 * size / 2, "non-readers were sent most of the export"
    # The slots were given back when the connections closed mid-stream.
    for a in range(1, 4):
        c = raw_client(hub.port, source=f"127.0.3.{a}")
        c.sock.sendall(export_request(code, "limit=1", extra="Connection: close\r\n"))
        assert split_head(read_all(c.sock, 10))[0] == 200
        c.sock.close()
    assert_alive(hub)


# ---------------------------------------------------------------------------------------------------
# 2. Exports read completely

def test_exports_are_complete_in_order_and_framed(big):
    """The ndjson export, read with http.client and with a strict chunked parser, is every event from 1 to
    the last, in order, each chat line byte-identical to the frame members received live; JSON pages walked
    with next (limit 1000, and 37 from after=5) hold the same events; pipelined on one keep-alive
    socket, ndjson + HEAD + a page + /healthz answer in order; HTTP/1.0 gets the body unchunked."""
    hub, code, _, frames = big
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    conn.request("GET", f"/api/sessions/{code}/transcript?format=ndjson", headers={"X-API-Key": KEY})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked", r.getheaders()
    assert r.getheader("Content-Type") == "application/x-ndjson"
    ndjson = r.read()
    conn.close()
    lines = ndjson.split(b"\n")
    assert lines[-1] == b"", "the export does not end with a newline"
    lines = lines[:-1]
    events = [json.loads(l) for l in lines]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(events) + 1)), f"seqs {seqs[:3]}..{seqs[-3:]} are not 1..n"
    chats = [(l, e) for l, e in zip(lines, events) if e["type"] == "chat"]
    assert [e["id"] for _, e in chats] == [f"c{i}" for i in range(CHATS)]
    assert [e["text"] for _, e in chats] == [chat_text(i) for i in range(CHATS)]
    assert all(frames[e["seq"]] == l for l, e in chats), "an exported chat differs from the frame sent live"

    # The same on a raw socket, framing checked strictly, pipelined with HEAD, a page and /healthz.
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=30)
    s.sendall(export_request(code) + export_request(code, "limit=2", method="HEAD")
              + export_request(code, "limit=2") + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = read_all(s, 30)
    s.close()
    status, headers, rest = split_head(data)
    assert status == 200 and headers.get("transfer-encoding") == "chunked" and "content-length" not in headers
    body, sizes, rest = parse_chunked(rest)
    assert body == ndjson, "the raw chunked body differs from http.client's"
    status, headers, rest = split_head(rest)        # HEAD: the head a GET gets, no body
    assert status == 200 and headers.get("transfer-encoding") == "chunked", headers
    assert rest.startswith(b"HTTP/1.1 "), f"a body followed the HEAD answer: {rest[:60]!r}"
    status, headers, rest = split_head(rest)
    page_body, _, rest = parse_chunked(rest)
    page = json.loads(page_body)
    assert status == 200 and page["events"] == events[:2] and isinstance(page["next"], str)
    status, _, rest = split_head(rest)
    assert status == 200 and rest.startswith(b"ok"), rest[:40]
    print(f"[exports] ndjson {len(ndjson) / MiB:.1f} MiB, {len(events)} events in {len(sizes)} chunks "
          f"(largest {max(sizes) // 1024} KiB)")
    assert max(sizes) < 512 * 1024, "a chunk bigger than a piece: the export was not streamed"

    # JSON pages hold the same events.
    for limit, after in ((1000, 0), (37, 5)):
        walked, cursor, pages = [], None, 0
        while True:
            where = f"after={after}" if cursor is None else f"cursor={cursor}"
            status, headers, raw = api(hub, "GET", f"/api/sessions/{code}/transcript?limit={limit}&{where}")
            assert status == 200, raw
            p = json.loads(raw)
            assert p["session"] == code and len(p["events"]) <= limit
            walked += p["events"]
            pages += 1
            cursor = p["next"]
            if cursor is None:
                break
        assert walked == events[after:], f"pages of {limit} from {after} differ from the ndjson export"
        print(f"[exports] {pages} JSON pages of {limit} from after={after}: {len(walked)} events, identical")

    # HTTP/1.0 knows no chunked coding: the body ends with the connection.
    s = socket.create_connection(("127.0.0.1", hub.port), timeout=10)
    s.sendall(f"GET /api/sessions/{code}/transcript?limit=3 HTTP/1.0\r\nX-API-Key: {KEY}\r\n\r\n".encode())
    status, headers, rest = split_head(read_all(s, 10))
    s.close()
    assert status == 200 and "transfer-encoding" not in headers and headers.get("connection") == "close"
    assert json.loads(rest)["events"] == events[:3]


# ---------------------------------------------------------------------------------------------------
# 3. Replay seek flood

def seekflood_main(port, seconds, active, finished):
    """`active` replays (speed 0.001, from 8 addresses, 4 each) of the big session each send a seek by a
    random ts every 55 ms for `seconds`; `finished` ones (one address, each played to the end first, from
    3 events before the end) send a seek every 55 ms too, by a random ts or seq in turn (a seek by seq far
    back is a page read: the expensive kind). What comes back is read. Prints JSON stats."""
    port, seconds, active, finished = int(port), float(seconds), int(active), int(finished)
    code, first_ts, last_ts, last_seq = sys.stdin.readline().split()
    first_ts, last_ts, last_seq = int(first_ts), int(last_ts), int(last_seq)
    stats = {"replay_started": 0, "replay_state": 0, "replay_finished_errors": 0, "other_errors": {},
             "closed_by_hub": 0, "seeks": 0}

    class Slot:
        def __init__(self, source, speed, start=0):
            self.c = raw_client(port, source=source)
            status, _, _ = self.c.handshake(f"/ws?session={code}", PROTO)
            assert status == 101
            self.c.sock.sendall(frame(1, json.dumps({"type": "replay", "speed": speed, "from": start}).encode()))
            self.finished = start > 0
            self.buf = self.c.buf
            self.open = True

        def messages(self):
            while len(self.buf) >= 2:
                n, head = self.buf[1] & 0x7F, 2
                if n == 126:
                    n, head = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127:
                    n, head = struct.unpack("!Q", self.buf[2:10])[0], 10
                if len(self.buf) < head + n:
                    return
                op, payload = self.buf[0] & 0xF, self.buf[head:head + n]
                self.buf = self.buf[head + n:]
                if op == 8:
                    self.open = False
                    stats["closed_by_hub"] += 1
                    return
                if op == 1:
                    yield json.loads(payload)

        def pump(self, wait_for=None):
            try:
                chunk = self.c.sock.recv(1 << 20)
            except (BlockingIOError, socket.timeout):
                return None
            except OSError:
                chunk = b""
            if not chunk:
                if self.open:
                    stats["closed_by_hub"] += 1
                self.open = False
                return None
            self.buf += chunk
            found = None
            for m in self.messages():
                t = m["type"]
                if t in ("replay_started", "replay_state"):
                    stats[t] += 1
                elif t == "error":
                    if m["code"] == "replay_finished":
                        stats["replay_finished_errors"] += 1
                    else:
                        stats["other_errors"][m["code"]] = stats["other_errors"].get(m["code"], 0) + 1
                if t == wait_for:
                    found = m
            return found

    # Finished replays first, a few at a time (one address: a finished replay frees its slot).
    done = []
    for i in range(finished):
        s = Slot("127.0.4.1", 1000, start=last_seq - 2)
        while s.open and s.pump("replay_finished") is None:
            pass
        done.append(s)
    slots = [Slot(f"127.0.5.{1 + i % 8}", 0.001) for i in range(active)]
    for s in slots:             # seeks from here on: a seek before the replay began would be not_replaying
        while s.open and s.pump("replay_started") is None:
            pass
    slots += done
    for s in slots:
        s.c.sock.setblocking(False)
    rng = random.Random(26)
    print("flooding", flush=True)
    deadline = time.time() + seconds
    next_seek = time.time()
    while time.time() < deadline:
        now = time.time()
        if now >= next_seek:
            for s in slots:
                if s.open:
                    if s.finished and stats["seeks"] % 2:
                        seek = {"seq": rng.randint(1, last_seq)}
                    else:
                        seek = {"ts": rng.randint(first_ts, last_ts)}
                    try:
                        s.c.sock.send(frame(1, json.dumps({"type": "replay_control", "action": "seek", **seek})))
                        stats["seeks"] += 1
                    except (BlockingIOError, OSError):
                        pass
            next_seek = now + 0.055
        readable, _, _ = select.select([s.c.sock for s in slots if s.open], [], [], 0.01)
        for s in slots:
            if s.c.sock in readable:
                s.pump()
    for s in slots:
        s.c.sock.close()
    print(json.dumps(stats))


def test_replay_seek_flood_leaves_api_reads_fast(big):
    """32 replays of the big session (speed 0.001: the limit of 4 per address and 32 per thread, from 8
    addresses) seek by a random ts every 55 ms for 8 s, and 120 finished replays (one address: a finished
    replay frees its slot) seek every 55 ms by ts or seq. Admin `GET /api/webhooks` keeps a median under
    20 ms and a p90 under 100 ms (before: p90 0.75 s, max 4.8 s, the seeks' binary searches and page reads
    queued on the API worker, finished replays reading without a slot), RSS grows by less than 64 MiB, the
    active replays' seeks are answered, and every finished replay's are answered `replay_finished` (then
    4002 after 20, like any invalid message); after finishing, a new `replay` of a small session plays
    again."""
    hub, code, small, _ = big
    status, _, raw = api(hub, "GET", f"/api/sessions/{code}/transcript?limit=1000")
    events = json.loads(raw)["events"]
    first_ts, last_ts, last_seq = events[0]["ts"], events[-1]["ts"], events[-1]["seq"]

    unloaded = api_latencies(hub)
    peak_queued = [0]
    stop = threading.Event()

    def sample():
        while not stop.wait(0.2):
            try:
                peak_queued[0] = max(peak_queued[0], all_metrics(hub).get("collabhub_transcript_reads_queued", 0))
            except OSError:
                pass

    with RSSWatch(hub) as rss:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "seekflood", str(hub.port),
                                 "8", "32", "120"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdin.write(f"{code} {first_ts} {last_ts} {last_seq}\n")
        proc.stdin.flush()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            # The finished replays play first, then everyone seeks.
            assert proc.stdout.readline().strip() == "flooding", proc.stderr.read()
            time.sleep(1.0)
            loaded = api_latencies(hub)
            out, err = proc.communicate(timeout=60)
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    rss.report("replay seek flood")
    q = lambda xs, p: sorted(xs)[int(p * (len(xs) - 1))] * 1000
    print(f"[seek flood] stats {stats}; transcript_reads_queued peak {peak_queued[0]:.0f}")
    print(f"[seek flood] GET /api/webhooks median {statistics.median(unloaded) * 1000:.1f} ms "
          f"(p90 {q(unloaded, 0.9):.1f}) unloaded, {statistics.median(loaded) * 1000:.1f} ms "
          f"(p90 {q(loaded, 0.9):.1f}, max {max(loaded) * 1000:.1f}) under the flood")
    assert hub.alive(), "hub crashed:\n" + hub.output()
    assert stats["replay_started"] == 152, stats
    assert stats["replay_state"] > 100, f"the active replays' seeks were not answered: {stats}"
    assert stats["replay_finished_errors"] >= 120, stats
    assert not stats["other_errors"].keys() - {"rate_limited"}, stats
    assert statistics.median(loaded) < 0.020, f"admin reads took {statistics.median(loaded) * 1000:.0f} ms (median)"
    assert q(loaded, 0.9) < 100, f"admin reads took {q(loaded, 0.9):.0f} ms (p90)"
    assert rss.growth_mib < conftest.rss_limit_mib(64), f"RSS grew {rss.growth_mib:.1f} MiB under the seek flood"

    async def finished_then_again():
        ws = await ws_connect(hub, f"/ws?session={small}")
        await ws.send(json.dumps({"type": "replay", "speed": 1000}))
        while json.loads(await ws.recv())["type"] != "replay_finished":
            pass
        await ws.send(json.dumps({"type": "replay_control", "action": "seek", "seq": 1}))
        err = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(json.dumps({"type": "replay", "from": 2, "speed": 1000}))
        again = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.close()
        return err, again
    err, again = asyncio.run(finished_then_again())
    print(f"[seek flood] seek after replay_finished: {err}; a new replay: {again['type']} from {again.get('from')}")
    assert err["type"] == "error" and err["code"] == "replay_finished", err
    assert again["type"] == "replay_started" and again["from"] == 2, again
    assert_alive(hub)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "seekflood":
    seekflood_main(*sys.argv[2:6])
