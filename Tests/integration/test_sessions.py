"""Sessions against the real hub: hand-off between loops, presence, resume, isolation, limits, API."""
import asyncio
import json
import random
import signal
import subprocess
import time

import pytest
import websockets

from hubclient import Client, api, create_session, eventually, run


def test_sessions_on_every_loop_work(session_hub):
    # With two loops, codes hash to either; every session must work whichever loop accepted the socket.
    async def main():
        for _ in range(8):
            code = create_session(session_hub)["code"]
            a, b = await Client.connect(session_hub, code), await Client.connect(session_hub, code)
            await a.join("A")
            await b.join("B")
            await a.send({"type": "chat", "id": "1", "text": "x"})
            assert (await b.expect("chat"))["text"] == "x"
            await a.close(); await b.close()
    run(main())


def test_unknown_session_and_enumeration_is_throttled(make_hub):
    hub = make_hub("--threads", "1")

    async def main():
        c = await Client.connect(hub, "ZZZZZZZZ")
        await c.send({"type": "join", "name": "x"})
        err = await c.recv()
        assert err["code"] == "unknown_session" and err["field"] == "session"
        # A refused join closes its socket (4404); guessing on, a socket a guess, meets the throttle.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await c.recv()
        assert closed.value.rcvd.code == 4404
        for i in range(25):
            c = await Client.connect(hub, f"ZZZZZZ{random.choice('ABCDEFGH')}{'23456789'[i % 8]}")
            await c.send({"type": "join", "name": "x"})
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await c.recv()
            if closed.value.rcvd.code == 4008:
                break
            assert closed.value.rcvd.code == 4404
        assert closed.value.rcvd.code == 4008
        # The address stays throttled for new connections too, even for a real session.
        code = create_session(hub)["code"]
        d = await Client.connect(hub, code)
        await d.send({"type": "join", "name": "y"})
        assert (await d.recv())["code"] == "rate_limited"
    run(main())


def test_session_full_and_api_describe(session_hub):
    async def main():
        code = create_session(session_hub, max_participants=2, title="Pair")["code"]
        a, b, c = [await Client.connect(session_hub, code) for _ in range(3)]
        await a.join("A"); await b.join("B")
        await c.send({"type": "join", "name": "C"})
        assert (await c.recv())["code"] == "session_full"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await c.recv()
        assert closed.value.rcvd.code == 4006 and closed.value.rcvd.reason == "session full"
        await asyncio.sleep(0.4)
        status, info = api(session_hub, "GET", f"/api/sessions/{code.lower()}")
        assert status == 200 and info["title"] == "Pair" and info["members"] == 2 and info["status"] == "live"
    run(main())
    assert api(session_hub, "GET", "/api/sessions/NOSUCHXX")[0] == 404
    assert api(session_hub, "POST", "/api/sessions", {"max_participants": 0})[1]["error"]["code"] == "invalid_field"


def test_reconnect_resumes_exactly_the_missed_events(session_hub):
    async def main():
        code = create_session(session_hub)["code"]
        a = await Client.connect(session_hub, code)
        b = await Client.connect(session_hub, code)
        await a.join("Ann", client_id="ann")
        await b.join("Bob")
        await a.expect("presence")  # bob
        await a.send({"type": "chat", "id": "1", "text": "one"})
        last = (await a.expect("ack"))["seq"]
        await a.ws.close()   # tab closes without leave: grace period
        for i in range(3):
            await b.send({"type": "chat", "id": f"b{i}", "text": f"missed {i}"})
            await b.expect("ack")
        a2 = await Client.connect(session_hub, code)
        await a2.send({"type": "join", "name": "Ann", "client_id": "ann", "resume_from": last})
        replay = [await a2.recv() for _ in range(4)]
        assert [m.get("text") for m in replay[:3]] == ["missed 0", "missed 1", "missed 2"]
        assert [m["seq"] for m in replay[:3]] == [last + 1, last + 2, last + 3]
        assert replay[3]["type"] == "joined" and replay[3]["seq"] == last + 3
        # Bob never saw Ann leave.
        b_msgs = []
        try:
            while True:
                b_msgs.append(await b.recv(timeout=0.3))
        except asyncio.TimeoutError:
            pass
        assert not any(m["type"] == "presence" and m.get("leaves") for m in b_msgs)
    run(main())


def test_isolation_under_load(session_hub):
    """Many sessions chatting at once: nobody ever receives another session's messages."""
    async def member(code, name, out):
        # Without schema validation: 100 clients validating ~12,000 messages in one Python thread took
        # longer than the deadline on a busy machine (schemas are checked by the other tests).
        c = await Client.connect(session_hub, code, validate=False)
        await c.join(name)
        for i in range(20):
            await c.send({"type": "chat", "id": f"{name}-{i}", "text": code})
        seen = []
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                m = await c.recv(timeout=1)
            except asyncio.TimeoutError:
                break
            if m["type"] == "chat":
                seen.append(m)
        out.extend((code, m) for m in seen)
        await c.close()

    async def main():
        codes = [create_session(session_hub)["code"] for _ in range(20)]
        out = []
        await asyncio.gather(*(member(code, f"m{j}", out) for code in codes for j in range(5)))
        assert len(out) > 20 * 5 * 20
        assert all(m["text"] == code for code, m in out), "a message crossed sessions"
    run(main())


def test_transcript_api_pages_and_ndjson(session_hub):
    async def main():
        code = create_session(session_hub)["code"]
        a = await Client.connect(session_hub, code)
        await a.join("Ann")
        for i in range(25):
            await a.send({"type": "chat", "id": str(i), "text": f"m{i}"})
        for _ in range(25):
            await a.expect("ack")
        return code
    code = run(main())
    status, page = api(session_hub, "GET", f"/api/sessions/{code}/transcript?limit=10")
    assert status == 200 and [e["seq"] for e in page["events"]] == list(range(1, 11)) and page["next"]
    status, page2 = api(session_hub, "GET", f"/api/sessions/{code}/transcript?cursor={page['next']}&limit=1000")
    assert [e["seq"] for e in page2["events"]] == list(range(11, 27)) and page2["next"] is None
    status, page3 = api(session_hub, "GET", f"/api/sessions/{code}/transcript?after=10&limit=1000")
    assert page3["events"] == page2["events"]
    status, raw = api(session_hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    lines = [json.loads(l) for l in raw.decode().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 27))
    assert lines[1] == page["events"][1], "export is what clients received"
    assert api(session_hub, "GET", f"/api/sessions/{code}/transcript?limit=0")[0] == 400
    status, listing = api(session_hub, "GET", "/api/sessions")
    assert any(s["code"] == code and s["events"] == 26 for s in listing["sessions"])


def test_host_ends_session_over_http(session_hub):
    async def main():
        created = create_session(session_hub)
        code = created["code"]
        a = await Client.connect(session_hub, code)
        await a.join("Ann")
        assert api(session_hub, "POST", f"/api/sessions/{code}/end", {}, {"X-Host-Key": "wrong"})[0] == 401   # a wrong host key is no credential
        assert api(session_hub, "POST", f"/api/sessions/{code}/end", {"reason": "done"}, {"X-Host-Key": created["host_key"]})[0] == 202
        ended = await a.expect("session_ended", skip=("chat", "presence"))
        assert ended["reason"] == "done"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await a.recv()
        assert closed.value.rcvd.code == 4004
        b = await Client.connect(session_hub, code)
        await b.send({"type": "join", "name": "late"})
        assert (await b.recv())["code"] == "session_ended"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await b.recv()
        assert closed.value.rcvd.code == 4004
        assert api(session_hub, "GET", f"/api/sessions/{code}")[1]["status"] == "ended"
    run(main())


def test_host_keys_are_stored_hashed_and_shown_once(make_hub, tmp_path):
    """The database holds the host key's SHA-256 (`sha256:...`), never the key: a copy of the files makes
    nobody a host. The key, shown once at creation, keeps working across a restart; its stored hash does
    not open anything."""
    import glob
    import sqlite3
    data = str(tmp_path / "hashed")
    hub = make_hub("--threads", "1", data_dir=data)
    created = create_session(hub, title="hashed")
    code, key = created["code"], created["host_key"]
    assert "host_key" not in api(hub, "GET", f"/api/sessions/{code}")[1]
    assert api(hub, "PATCH", f"/api/sessions/{code}", {"title": "renamed"}, {"X-Host-Key": key})[0] == 200
    assert hub.stop() == 0
    for path in glob.glob(data + "/collabhub.sqlite*"):
        with open(path, "rb") as f:
            assert key.encode() not in f.read(), f"the host key is in {path}"
    db = sqlite3.connect(data + "/collabhub.sqlite")
    (stored,) = db.execute("SELECT host_key FROM sessions WHERE code=?", (code,)).fetchone()
    db.close()
    assert stored.startswith("sha256:"), stored
    hub.start()

    async def main():
        host = await Client.connect(hub, code)
        joined = await host.join("Host", host_key=key)
        assert joined["you"]["role"] == "host", joined
        other = await Client.connect(hub, code)
        j = await other.join("Not host", host_key=stored)
        assert j["you"]["role"] != "host", j
    run(main())
    assert api(hub, "PATCH", f"/api/sessions/{code}", {"title": "x"}, {"X-Host-Key": stored})[0] == 401
    assert api(hub, "POST", f"/api/sessions/{code}/end", {}, {"X-Host-Key": key})[0] == 202


def test_crash_loses_no_acknowledged_message(make_hub, tmp_path):
    """Clients chat with ids; the hub is SIGKILLed mid-stream and restarted on the same data. Every
    acknowledged message is stored exactly once, seq is contiguous, and resuming clients see no gap
    and no duplicate."""
    data = str(tmp_path / "crash")
    hub = make_hub("--threads", "2", data_dir=data)
    code = create_session(hub)["code"]
    acked, seen = {}, {}

    async def writer(name):
        c = await Client.connect(hub, code, validate=False)
        j = await c.join(name, client_id=name)
        seen[name] = j["seq"]
        i = 0
        try:
            while True:
                await c.send({"type": "chat", "id": f"{name}-{i}", "text": "x"})
                i += 1
                while True:
                    m = await c.recv(timeout=5)
                    if m.get("seq"):
                        seen[name] = max(seen[name], m["seq"]) if m["type"] != "ack" else seen[name]
                    if m["type"] == "ack":
                        acked[m["id"]] = m["seq"]
                        break
        except (websockets.ConnectionClosed, asyncio.TimeoutError, OSError):
            return

    async def main():
        tasks = [asyncio.create_task(writer(f"w{i}")) for i in range(8)]
        await asyncio.sleep(3)
        hub.proc.send_signal(signal.SIGKILL)
        await asyncio.gather(*tasks)
    run(main())
    hub.proc.wait()
    assert len(acked) > 50, f"only {len(acked)} acks before the kill"

    hub2 = make_hub("--threads", "2", data_dir=data)
    status, raw = api(hub2, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    events = [json.loads(l) for l in raw.decode().splitlines()]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "seq must be contiguous"
    chats = [e for e in events if e["type"] == "chat"]
    ids = [e["id"] for e in chats]
    assert len(ids) == len(set(ids)), "a message was stored twice"
    by_id = {e["id"]: e["seq"] for e in chats}
    for mid, seq in acked.items():
        assert by_id.get(mid) == seq, f"acknowledged {mid} (seq {seq}) is missing or moved"

    async def resume():
        for name, last in list(seen.items())[:4]:
            c = await Client.connect(hub2, code)
            await c.send({"type": "join", "name": name, "client_id": name, "resume_from": last})
            got = []
            while True:
                m = await c.recv()
                if m["type"] == "joined":
                    break
                got.append(m["seq"])
            expected = list(range(last + 1, m["seq"] + 1))
            # Events after the member's resume point, up to the new snapshot: none missing, none twice.
            assert got == expected[:len(got)] and (got == expected or got[-1:] == expected[-1:]), (name, last, got[:5], expected[:5])
            await c.close()
    run(resume())


def test_disk_full_rejects_durable_keeps_ephemeral(tmp_path):
    """With the store unable to grow (RLIMIT_FSIZE), chat is refused with an error, never acked, while
    cursors and typing keep flowing and the hub stays up."""
    import conftest
    hub = conftest.Hub("--threads", "1", data_dir=str(tmp_path / "full"))
    hub.prefix = ["prlimit", f"--fsize={200 * 1024}"]   # the store cannot grow past 200 KiB
    hub.start()
    try:
        async def main():
            code = create_session(hub)["code"]
            a, b = await Client.connect(hub, code), await Client.connect(hub, code)
            await a.join("A", client_id="a"); await b.join("B")
            refused = acked = 0
            for i in range(400):
                await a.send({"type": "chat", "id": str(i), "text": "y" * 2000})
                while True:
                    m = await a.recv()
                    if m["type"] == "ack":
                        acked += 1; break
                    if m["type"] == "error":
                        assert m["code"] == "storage_unavailable" and m["ref"] == str(i)
                        refused += 1; break
                if refused >= 3:
                    break
            assert refused >= 3, "the store never filled up"
            await a.send({"type": "typing", "state": "start"})
            assert (await b.expect("typing", skip=("chat", "presence")))["state"] == "start"
            status, page = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
            stored = [json.loads(l) for l in page.decode().splitlines() if l]
            assert len([e for e in stored if e["type"] == "chat"]) == acked, "only acknowledged messages are stored"
        run(main())
        assert hub.alive()
    finally:
        hub.stop()


def test_idle_session_ends_after_ttl(make_hub):
    hub = make_hub("--threads", "2", "--session-idle-ttl", "0.6")

    async def main():
        busy = create_session(hub)["code"]
        idle = create_session(hub)["code"]
        a = await Client.connect(hub, busy)
        await a.join("Ann")
        # The idle one ends (the sweep runs every ttl/4); then the busy one is still live.
        info = await asyncio.to_thread(eventually, lambda: (lambda i: i if i["status"] == "ended" else None)(
            api(hub, "GET", f"/api/sessions/{idle}")[1]), what="the idle session to end")
        assert info["end_reason"].startswith("idle"), info
        await asyncio.sleep(1.0)   # well past the TTL: a session with a member is not idle
        assert api(hub, "GET", f"/api/sessions/{busy}")[1]["status"] == "live", "a session with members stays"
        await a.send({"type": "leave"})
        await asyncio.to_thread(eventually, lambda: api(hub, "GET", f"/api/sessions/{busy}")[1]["status"] == "ended",
                                what="the emptied session to end")
    run(main())


def test_store_locked_by_another_process_rejects_then_recovers(make_hub, tmp_path):
    """Another process holds the database's write lock: durable messages are refused with an error
    (after SQLite's busy timeout), ephemeral traffic flows, and once the lock goes seq continues."""
    import sqlite3
    data = str(tmp_path / "locked")
    hub = make_hub("--threads", "1", data_dir=data)

    async def main():
        code = create_session(hub)["code"]
        a, b = await Client.connect(hub, code), await Client.connect(hub, code)
        await a.join("A"); await b.join("B")
        await a.send({"type": "chat", "id": "before", "text": "x"})
        seq = (await a.expect("ack"))["seq"]
        lock = sqlite3.connect(data + "/collabhub.sqlite", timeout=1)
        lock.execute("BEGIN IMMEDIATE")
        await a.send({"type": "chat", "id": "during", "text": "x"})
        await a.send({"type": "typing", "state": "start"})
        assert (await b.expect("typing", skip=("chat", "presence")))["state"] == "start"
        err = await a.expect("error", timeout=15, skip=("chat", "presence", "typing"))
        assert err["code"] == "storage_unavailable" and err["ref"] == "during"
        lock.rollback(); lock.close()
        await a.send({"type": "chat", "id": "after", "text": "x"})
        assert (await a.expect("ack", timeout=10))["seq"] == seq + 1, "no gap after the failure"
    run(main())


def test_corrupt_database_stops_startup_with_a_clear_message(tmp_path):
    import conftest
    data = tmp_path / "corrupt"
    data.mkdir()
    (data / "collabhub.sqlite").write_bytes(b"this is not a database" * 100)
    proc = subprocess.run([conftest.BINARY, "serve", "--port", "0", "--data", str(data)], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    assert "collabhub.sqlite" in proc.stderr or str(data) in proc.stderr
    assert "not a database" in proc.stderr


def test_out_of_descriptors_does_not_spin_or_crash(tmp_path):
    """With the descriptor limit nearly reached (EMFILE), excess connections are closed at once and the
    hub keeps serving the ones it has, without burning CPU."""
    import conftest, socket
    hub = conftest.Hub("--threads", "1", "--echo", data_dir=str(tmp_path / "fd"))
    hub.prefix = ["prlimit", "--nofile=64"]
    hub.start()
    try:
        socks = []
        for _ in range(80):
            try:
                socks.append(socket.create_connection(("127.0.0.1", hub.port), timeout=2))
            except OSError:
                break
        time.sleep(1.0)
        pid = hub.proc.pid
        cpu = lambda: sum(int(x) for x in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
        c0 = cpu(); time.sleep(1.0); c1 = cpu()
        assert c1 - c0 < 30, f"hub used {c1 - c0} ticks in a second while out of descriptors"
        for s in socks:
            s.close()
        time.sleep(0.5)
        status, body = api(hub, "GET", "/healthz")
        assert status == 200
        assert hub.alive()
    finally:
        hub.stop()


def test_upgrade_pipelined_behind_a_request_does_not_crash_the_hub(session_hub):
    """A plain request and a /ws upgrade in one packet: the upgrade may need to move to another loop while
    the first response is still queued. The hub must answer sensibly and stay up, whatever the loop."""
    import socket
    for _ in range(8):   # codes hash to both loops
        code = create_session(session_hub)["code"]
        s = socket.create_connection(("127.0.0.1", session_hub.port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                  + f"GET /ws?session={code} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: collabhub.v1\r\n\r\n".encode())
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"101 Switching" in data or data.count(b"HTTP/1.1") >= 2:
                    break
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        assert data.startswith(b"HTTP/1.1 200")
        assert b"HTTP/1.1 101" in data or b"HTTP/1.1 400" in data
    assert session_hub.alive()
    assert api(session_hub, "GET", "/healthz")[0] == 200
