"""Transcript playback (replay mode) and retention against the real hub."""
import asyncio
import json
import time

from hubclient import Client, api, create_session, eventually, run


async def record(hub, code, gaps):
    """Joins and sends chats separated by the given gaps (seconds); returns the acks' seqs."""
    a = await Client.connect(hub, code)
    await a.join("Ann")
    seqs = []
    for i, gap in enumerate(gaps):
        await asyncio.sleep(gap)
        await a.send({"type": "chat", "id": str(i), "text": f"m{i}"})
        seqs.append((await a.expect("ack"))["seq"])
    await a.send({"type": "leave"})
    return seqs


def test_replay_keeps_relative_timing_scaled_by_speed(session_hub):
    async def main():
        code = create_session(session_hub)["code"]
        await record(session_hub, code, [0, 0.4, 0.4])     # chats ~400 ms apart
        r = await Client.connect(session_hub, code)
        await r.send({"type": "replay", "speed": 2})
        started = await r.recv()
        assert started["type"] == "replay_started" and started["speed"] == 2 and started["count"] >= 4
        times, msgs = [], []
        while True:
            m = await r.recv()
            if m["type"] == "replay_finished":
                break
            msgs.append(m); times.append(time.monotonic())
        chats = [i for i, m in enumerate(msgs) if m["type"] == "chat"]
        assert [msgs[i]["text"] for i in chats] == ["m0", "m1", "m2"]
        assert [m["seq"] for m in msgs] == sorted(m["seq"] for m in msgs)
        gap = times[chats[2]] - times[chats[1]]
        assert 0.12 < gap < 0.35, f"a 400 ms gap at speed 2 took {gap:.3f}s"
    run(main())


def test_replay_pause_seek_and_speed(session_hub):
    async def main():
        code = create_session(session_hub)["code"]
        seqs = await record(session_hub, code, [0, 0.3, 0.3, 0.3])
        r = await Client.connect(session_hub, code)
        await r.send({"type": "replay", "speed": 1})
        assert (await r.recv())["type"] == "replay_started"
        await r.send({"type": "replay_control", "action": "pause"})
        while (m := await r.recv())["type"] != "replay_state":
            pass
        assert m["state"] == "paused"
        # Nothing arrives while paused.
        try:
            extra = await r.recv(timeout=0.5)
            assert False, f"got {extra} while paused"
        except asyncio.TimeoutError:
            pass
        await r.send({"type": "replay_control", "action": "seek", "seq": seqs[3]})
        assert (await r.recv())["state"] == "paused"
        await r.send({"type": "replay_control", "action": "speed", "speed": 50})
        await r.recv()
        await r.send({"type": "replay_control", "action": "resume"})
        assert (await r.recv())["state"] == "playing"
        rest = []
        while (m := await r.recv())["type"] != "replay_finished":
            rest.append(m)
        assert rest[0]["seq"] == seqs[3] and rest[0]["text"] == "m3"
        await r.send({"type": "replay_control", "action": "warp"})
        assert (await r.recv())["field"] == "action"
    run(main())


def test_retention_by_count_and_age(make_hub):
    hub = make_hub("--threads", "1", "--retention-events", "5", "--retention-interval", "0.2")

    async def main():
        code = create_session(hub)["code"]
        await record(hub, code, [0] * 12)
        return code
    code = run(main())

    def trimmed():
        # Retention runs every 0.2 s: poll until it has trimmed the session to its newest five.
        raw = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")[1]
        seqs = [json.loads(l)["seq"] for l in raw.decode().splitlines()]
        return seqs if len(seqs) == 5 else None
    seqs = eventually(trimmed, what="retention by count")
    assert len(seqs) == 5 and seqs == list(range(seqs[0], seqs[0] + 5)) and seqs[-1] >= 13, seqs

    aged = make_hub("--threads", "1", "--retention-age", "0.5", "--retention-interval", "0.2")
    async def more():
        code = create_session(aged)["code"]
        await record(aged, code, [0, 0])
        await asyncio.sleep(1.0)
        await record(aged, code, [0])
        return code
    code = run(more())

    def aged_out():
        raw = api(aged, "GET", f"/api/sessions/{code}/transcript?format=ndjson")[1]
        events = [json.loads(l) for l in raw.decode().splitlines()]
        return events if [e.get("text") for e in events if e["type"] == "chat"] == ["m0"] else None
    events = eventually(aged_out, what="retention by age")   # only the newest chat is young enough
    assert all(e["seq"] > 4 for e in events)


def test_record_cursors_plays_sampled_positions_between_events(make_hub):
    hub = make_hub("--threads", "1", "--record-cursors", "--cursor-sample-ms", "100")

    async def main():
        code = create_session(hub)["code"]
        a = await Client.connect(hub, code)
        await a.join("Ann")
        b = await Client.connect(hub, code)
        await b.join("Bob")
        await a.send({"type": "chat", "id": "1", "text": "before"})
        await a.expect("ack")
        for x in range(20):                   # 20 moves over ~0.6 s: sampled at most every 100 ms
            await a.send({"type": "cursor", "x": x, "y": 2 * x})
            await asyncio.sleep(0.03)
        await asyncio.sleep(0.15)
        await a.send({"type": "chat", "id": "2", "text": "after"})
        await a.expect("ack")
        r = await Client.connect(hub, code)
        await r.send({"type": "replay", "speed": 20})
        started = await r.recv()
        assert started["type"] == "replay_started"
        msgs = []
        while (m := await r.recv())["type"] != "replay_finished":
            msgs.append(m)
        kinds = [m["type"] for m in msgs]
        samples = [m for m in msgs if m["type"] == "cursors"]
        assert 3 <= len(samples) <= 9, f"{len(samples)} samples of 20 moves in ~0.6 s at 100 ms"
        assert all(m["replayed"] is True and m["updates"][0]["id"] == samples[0]["updates"][0]["id"] for m in samples)
        xs = [m["updates"][0]["x"] for m in samples]
        assert xs == sorted(xs) and xs[0] == 0, xs
        first, last = kinds.index("chat"), len(kinds) - 1 - kinds[::-1].index("chat")
        assert first < kinds.index("cursors") and max(i for i, k in enumerate(kinds) if k == "cursors") < last, kinds
        assert [m["ts"] for m in msgs] == sorted(m["ts"] for m in msgs)
        assert started["count"] == len([m for m in msgs if "seq" in m]), "count is events only"
        status, raw = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
        assert all(json.loads(l)["type"] != "cursors" for l in raw.decode().splitlines()), "samples are not transcript events"
    run(main())


def test_cursors_are_not_recorded_by_default(session_hub):
    async def main():
        code = create_session(session_hub)["code"]
        a = await Client.connect(session_hub, code)
        await a.join("Ann")
        await a.send({"type": "cursor", "x": 5, "y": 5})
        await asyncio.sleep(0.1)
        await a.send({"type": "chat", "id": "1", "text": "hi"})
        await a.expect("ack")
        r = await Client.connect(session_hub, code)
        await r.send({"type": "replay", "speed": 50})
        assert (await r.recv())["type"] == "replay_started"
        msgs = []
        while (m := await r.recv())["type"] != "replay_finished":
            msgs.append(m)
        assert msgs and all(m["type"] != "cursors" for m in msgs)
    run(main())
