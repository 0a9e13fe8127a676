"""Live execution events: publish API, run state, watchers, dashboards, sessions, persistence."""
import asyncio
import json
import time

import pytest
import websockets

from hubclient import Client, api, create_session, run

KEY = {"X-API-Key": "runs-admin-key-0123456789"}


@pytest.fixture(scope="module")
def runs_hub(tmp_path_factory):
    import conftest
    hub = conftest.Hub("--threads", "2", "--admin-key", "runs-admin-key-0123456789", data_dir=str(tmp_path_factory.mktemp("runs"))).start()
    yield hub
    assert hub.alive(), hub.output()
    assert hub.stop() == 0


def publish(hub, run_id, body, headers=None):
    return api(hub, "POST", f"/api/runs/{run_id}/events", body, {**KEY, **(headers or {})})


async def watch(hub, channel, resume_from=None):
    # The hub is closed (it has an admin key): /watch needs runs:read, given here as ?key=.
    url = f"{hub.url}/watch" + (f"?key={hub.admin_key}" if hub.admin_key else "")
    ws = await websockets.connect(url, subprotocols=["collabhub.v1"], close_timeout=1)
    c = Client(ws)
    msg = {"type": "subscribe", "channel": channel}
    if resume_from is not None:
        msg["resume_from"] = resume_from
    await c.send(msg)
    return c


def test_publish_requires_key_and_valid_body(runs_hub):
    assert api(runs_hub, "POST", "/api/runs/r0/events", {"type": "started", "owner": "ci"}, headers={})[0] == 401
    assert api(runs_hub, "POST", "/api/runs/r0/events", {"type": "started", "owner": "ci"}, {"X-API-Key": "nope"})[0] == 401
    status, body = publish(runs_hub, "r0", {"type": "started"})
    assert status == 400 and "owner" in body["error"]["message"]
    status, body = publish(runs_hub, "r0", {"type": "teleported"})
    assert status == 400 and body["error"]["code"] == "invalid_field"
    status, body = publish(runs_hub, "bad%20id!", {"type": "started", "owner": "ci"})
    assert status == 400


def test_state_machine_and_409s(runs_hub):
    status, body = publish(runs_hub, "r1", {"type": "step_started", "step": "build"})
    assert status == 409 and "has not started" in body["error"]["message"]
    status, body = publish(runs_hub, "r1", {"type": "started", "owner": "team-a", "name": "nightly"})
    assert status == 202 and body["seq"] == 1
    status, body = publish(runs_hub, "r1", {"type": "step_completed", "step": "build"})
    assert status == 409 and body["error"]["message"] == "step build completed but never started"
    status, body = publish(runs_hub, "r1", {"events": [
        {"type": "step_started", "step": "build"}, {"type": "log", "line": "compiling"},
        {"type": "progress", "percent": 40}, {"type": "step_completed", "step": "build"},
        {"type": "completed", "outcome": "succeeded"}]})
    assert status == 202 and [e["seq"] for e in body["events"]] == [2, 3, 4, 5, 6]
    status, body = publish(runs_hub, "r1", {"type": "log", "line": "late"})
    assert status == 409 and "already completed (succeeded)" in body["error"]["message"]
    status, state = api(runs_hub, "GET", "/api/runs/r1")
    assert status == 200
    assert state["run"]["status"] == "succeeded" and state["run"]["steps"][0]["status"] == "completed"
    assert state["run"]["steps"][0]["duration_ms"] >= 0 and state["run"]["last_logs"] == ["compiling"]
    assert [e["seq"] for e in state["events"]] == [1, 2, 3, 4, 5, 6]
    # A batch with an illegal event stores nothing.
    publish(runs_hub, "r1b", {"type": "started", "owner": "team-a"})
    status, _ = publish(runs_hub, "r1b", {"events": [{"type": "step_started", "step": "x"}, {"type": "step_completed", "step": "y"}]})
    assert status == 409
    assert [e["seq"] for e in api(runs_hub, "GET", "/api/runs/r1b")[1]["events"]] == [1]


def test_idempotent_retries(runs_hub):
    first = publish(runs_hub, "r2", {"type": "started", "owner": "ci"}, {"Idempotency-Key": "k1"})
    again = publish(runs_hub, "r2", {"type": "started", "owner": "ci"}, {"Idempotency-Key": "k1"})
    assert first[0] == again[0] == 202 and first[1]["seq"] == again[1]["seq"] == 1
    assert again[1]["events"][0].get("duplicate") is True
    a = publish(runs_hub, "r2", {"type": "log", "line": "x", "id": "log-1"})
    b = publish(runs_hub, "r2", {"type": "log", "line": "x", "id": "log-1"})
    assert a[1]["seq"] == b[1]["seq"] == 2
    assert len(api(runs_hub, "GET", "/api/runs/r2")[1]["events"]) == 2


def test_a_batch_sent_again_with_only_its_idempotency_key_is_stored_once(runs_hub):
    """The header names every event of a batch that has no id of its own (event i: `KEY.i`): a batch whose
    answer was lost, sent again with the same key, is answered event by event as duplicates, and a batch
    that starts a run is not refused as a second start (409)."""
    batch = {"events": [{"type": "started", "owner": "ci"}, {"type": "log", "line": "a"},
                        {"type": "log", "line": "b", "id": "own-id"}, {"type": "progress", "percent": 10}]}
    first = publish(runs_hub, "rb1", batch, {"Idempotency-Key": "job-7"})
    assert first[0] == 202 and [e["seq"] for e in first[1]["events"]] == [1, 2, 3, 4], first
    assert not any(e.get("duplicate") for e in first[1]["events"])
    again = publish(runs_hub, "rb1", batch, {"Idempotency-Key": "job-7"})
    assert again[0] == 202, again
    assert again[1]["events"] == [{"seq": s, "duplicate": True} for s in (1, 2, 3, 4)]
    # An event's own id is still its own: the same event in a batch under another key is a duplicate too.
    mixed = publish(runs_hub, "rb1", {"events": [{"type": "log", "line": "b", "id": "own-id"},
                                                 {"type": "log", "line": "c"}]}, {"Idempotency-Key": "job-8"})
    assert mixed[0] == 202 and mixed[1]["events"] == [{"seq": 3, "duplicate": True}, {"seq": 5}], mixed
    # A batch's event ids are KEY.0, KEY.1, ...: what a later single event sends as its id.
    single = publish(runs_hub, "rb1", {"type": "log", "line": "c", "id": "job-8.1"})
    assert single[1]["events"] == [{"seq": 5, "duplicate": True}]
    state = api(runs_hub, "GET", "/api/runs/rb1")[1]
    assert [e["seq"] for e in state["events"]] == [1, 2, 3, 4, 5]
    assert state["run"]["status"] == "running" and state["run"]["log_count"] == 3
    # Without the key, the same batch is new events (and a second start, refused).
    status, body = publish(runs_hub, "rb1", batch)
    assert status == 409 and body["error"]["code"] == "illegal_transition"
    # A key the hub cannot take is refused, naming the header; nothing is stored.
    for bad in ("", "has space", "k" * 129, "caf\u00e9"):
        status, body = publish(runs_hub, "rb1", {"type": "log", "line": "x"},
                               {"Idempotency-Key": bad.encode("utf-8").decode("latin-1")})
        assert status == 400 and body["error"]["field"] == "Idempotency-Key", (bad, body)
    assert len(api(runs_hub, "GET", "/api/runs/rb1")[1]["events"]) == 5


def test_watcher_snapshot_live_events_and_resume(runs_hub):
    async def main():
        publish(runs_hub, "r3", {"type": "started", "owner": "ci"})
        w = await watch(runs_hub, "run:r3")
        snap = await w.recv()
        assert snap["type"] == "run_snapshot" and snap["seq"] == 1 and snap["run"]["status"] == "running"
        for i in range(20):
            publish(runs_hub, "r3", {"type": "log", "line": f"line {i}"})
        got = [await w.recv() for _ in range(20)]
        assert [m["seq"] for m in got] == list(range(2, 22))
        assert [m["line"] for m in got] == [f"line {i}" for i in range(20)]
        await w.ws.close()
        for i in range(5):
            publish(runs_hub, "r3", {"type": "log", "line": f"missed {i}"})
        w2 = await watch(runs_hub, "run:r3", resume_from=21)
        missed = [await w2.recv() for _ in range(5)]
        assert [m["seq"] for m in missed] == list(range(22, 27))
        assert (await w2.recv())["type"] == "subscribed"
    run(main())


def test_dashboard_follows_100_concurrent_runs(runs_hub):
    async def main():
        d = await watch(runs_hub, "dashboard:fleet")
        first = await d.recv()
        assert first["type"] == "dashboard" and first["runs"] == []
        for i in range(100):
            publish(runs_hub, f"fleet-{i}", {"type": "started", "owner": "fleet"})
        for i in range(100):
            publish(runs_hub, f"fleet-{i}", {"events": [{"type": "step_started", "step": "s"}, {"type": "progress", "percent": 50},
                                                       {"type": "step_completed", "step": "s"},
                                                       {"type": "completed", "outcome": "failed" if i % 10 == 0 else "succeeded"}]})
        final = {}
        statuses = 0
        while len([r for r in final.values() if r["status"] in ("succeeded", "failed")]) < 100:
            m = await d.recv()
            assert m["type"] in ("run_status", "run_progress")
            if m["type"] == "run_status":
                statuses += 1
            final[m["run"]["id"]] = m["run"]
        assert statuses == 400, "every status change reaches the dashboard"
        assert sum(1 for r in final.values() if r["status"] == "failed") == 10
        d2 = await watch(runs_hub, "dashboard:fleet")
        listing = await d2.recv()
        assert len(listing["runs"]) == 100
    run(main())


def test_run_started_in_a_session_appears_in_its_stream(runs_hub):
    async def main():
        code = create_session(runs_hub)["code"]
        a = await Client.connect(runs_hub, code)
        await a.join("Ann")
        publish(runs_hub, "r5", {"type": "started", "owner": "ci", "name": "e2e", "session": code})
        publish(runs_hub, "r5", {"type": "step_started", "step": "login"})
        m1 = await a.expect("run")
        assert m1["event"] == "started" and m1["run"]["name"] == "e2e" and m1["seq"] >= 2
        m2 = await a.expect("run")
        assert m2["event"] == "step_started" and m2["seq"] == m1["seq"] + 1
    run(main())


def test_publisher_socket(runs_hub):
    async def main():
        with pytest.raises(websockets.InvalidStatusCode):
            await websockets.connect(f"{runs_hub.url}/publish?key=wrong")
        ws = await websockets.connect(f"{runs_hub.url}/publish?key={KEY['X-API-Key']}", close_timeout=1)
        await ws.send(json.dumps({"type": "run_event", "run": "r6", "id": "a", "event": {"type": "started", "owner": "ci"}}))
        ack = json.loads(await ws.recv())
        assert ack == {"type": "ack", "run": "r6", "id": "a", "seqs": [1]}
        await ws.send(json.dumps({"run": "r6", "events": [{"type": "log", "line": "1"}, {"type": "log", "line": "2"}]}))
        assert json.loads(await ws.recv())["seqs"] == [2, 3]
        await ws.send(json.dumps({"run": "r6", "type": "step_completed", "step": "nope"}))
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "illegal_transition"
        await ws.close()
    run(main())


def test_runs_listing_and_persistence(make_hub):
    hub = make_hub("--threads", "2", "--admin-key", "runs-admin-key-0123456789")
    for i in range(5):
        publish(hub, f"p{i}", {"type": "started", "owner": "o1" if i < 3 else "o2"})
    publish(hub, "p0", {"type": "completed", "outcome": "failed"})
    status, page = api(hub, "GET", "/api/runs?owner=o1&limit=2")
    assert status == 200 and page["total"] == 3 and len(page["runs"]) == 2 and isinstance(page["next"], str)
    rest = api(hub, "GET", f"/api/runs?owner=o1&limit=2&cursor={page['next']}")[1]
    assert len(rest["runs"]) == 1 and rest["next"] is None
    assert api(hub, "GET", "/api/runs?owner=o1&limit=2&offset=2")[1]["runs"] == rest["runs"]  # the older way
    assert api(hub, "GET", "/api/runs?status=failed")[1]["total"] == 1
    assert api(hub, "GET", "/api/runs?status=exploded")[0] == 400
    assert api(hub, "GET", "/api/runs/none")[0] == 404
    data = hub.data_dir
    hub.stop()
    hub2 = make_hub("--threads", "2", "--admin-key", "runs-admin-key-0123456789", data_dir=data)
    state = api(hub2, "GET", "/api/runs/p0")[1]
    assert state["run"]["status"] == "failed"
    status, body = publish(hub2, "p1", {"type": "log", "line": "after restart"})
    assert status == 202 and body["seq"] == 2
    status, body = publish(hub2, "p0", {"type": "log", "line": "x"})
    assert status == 409


def test_slow_dashboard_gets_the_latest_progress_and_every_status_change(runs_hub):
    # A dashboard that stops reading (a 4 KiB receive buffer, nothing read): the hub's queue for it passes
    # the soft limit, so progress is held back, latest per run, instead of queued or lost.
    import socket
    from wsraw import RawClient, frame
    slow = RawClient(runs_hub.port, handshake=False)
    slow.sock.close()
    slow.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sock.settimeout(10)
    slow.sock.connect(("127.0.0.1", runs_hub.port))
    status, _, _ = slow.handshake("/watch?key=" + KEY["X-API-Key"], {"Sec-WebSocket-Protocol": "collabhub.v1"})
    assert status == 101
    slow.send(frame(1, json.dumps({"type": "subscribe", "channel": "dashboard:slowpoke"}).encode()))
    assert json.loads(slow.recv_message()[1])["type"] == "dashboard"

    assert publish(runs_hub, "slow-1", {"type": "started", "owner": "slowpoke"})[0] == 202
    pad = "x" * 900
    published = 0
    for batch in range(25):
        events = [{"type": "progress", "percent": (batch * 200 + i) % 100, "message": pad} for i in range(200)]
        status, body = publish(runs_hub, "slow-1", {"events": events})
        assert status == 202, body
        published += len(events)
    assert publish(runs_hub, "slow-1", {"type": "progress", "percent": 77, "message": "the latest"})[0] == 202
    assert publish(runs_hub, "slow-2", {"type": "started", "owner": "slowpoke"})[0] == 202
    assert publish(runs_hub, "slow-2", {"type": "progress", "percent": 5, "message": "stale once completed"})[0] == 202
    assert publish(runs_hub, "slow-2", {"type": "completed", "outcome": "succeeded"})[0] == 202

    seen = []
    while not (any(m["run"]["id"] == "slow-1" and m["run"].get("message") == "the latest" for m in seen)
               and any(m["type"] == "run_status" and m["run"]["status"] == "succeeded" for m in seen)):
        seen.append(json.loads(slow.recv_message()[1]))
    progress = [m for m in seen if m["type"] == "run_progress" and m["run"]["id"] == "slow-1"]
    assert len(progress) < published, "progress was held back while the dashboard was behind"
    assert [m["run"]["status"] for m in seen if m["type"] == "run_status"] == ["running", "running", "succeeded"]
    done = next(i for i, m in enumerate(seen) if m["type"] == "run_status" and m["run"]["status"] == "succeeded")
    assert not any(m["type"] == "run_progress" and m["run"]["id"] == "slow-2" for m in seen[done:]), \
        "held progress never arrives after the status change that overtook it"
    slow.close()
