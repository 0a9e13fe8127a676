"""Lifecycle fuzzing of the real hub: many clients join, leave, resume, disconnect abruptly and send
random valid and invalid messages (broken JSON, wrong types, oversized values, random bytes) in random
order for a bounded time. Invariants: the hub stays up and answers, every connection receives durable
events in strictly increasing seq order without duplicates, every session's stored seq is contiguous,
and nothing crosses sessions."""
import asyncio
import json
import os
import random
import time

import websockets

from hubclient import api, create_session

SECONDS = float(os.environ.get("LIFECYCLE_FUZZ_SECONDS", "12"))


def junk(rng):
    choices = [
        lambda: "{",
        lambda: json.dumps({"type": rng.choice(["chat", "cursor", "typing", "event", "join", "leave", "remove", "run_control", "zzz"])}),
        lambda: json.dumps({"type": "chat", "id": rng.choice(["", "x" * 300, 5]), "text": rng.choice(["", None, "t", "x" * 70000])}),
        lambda: json.dumps({"type": "cursor", "x": rng.choice(["a", None, 1e400 if False else 1.5]), "y": []}),
        lambda: json.dumps({"type": "event", "name": rng.choice(["bad name", "", "ok", "x" * 80]), "data": rng.choice([[], {}, "s", {"d": {"e": {"f": [[[[]]]]}}}])}),
        lambda: "[" * 50 + "]" * 50,
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))),
        lambda: json.dumps({"type": "typing", "state": rng.choice(["start", "stop", "maybe"])}),
        lambda: json.dumps({"type": "join", "name": "again"}),
        lambda: json.dumps({"type": "replay_control", "action": "seek", "seq": -1}),
    ]
    return rng.choice(choices)()


async def member(hub, codes, rng, deadline, report, secrets):
    """`secrets`: the resume secret each (session, client_id) got, shared by the members, so a client_id
    resumes its member (another coroutine with the same id is another tab); now and then a join sends none
    or a wrong one (a new member) instead."""
    client_id = f"c{rng.randint(0, 30)}"
    while time.time() < deadline:
        code = rng.choice(codes)
        try:
            ws = await websockets.connect(f"{hub.url}/ws?session={code}", subprotocols=["collabhub.v1"], close_timeout=0.5, max_size=None)
        except Exception:
            await asyncio.sleep(0.05)
            continue
        last_seq = 0
        seen = []

        async def reader():
            nonlocal last_seq
            try:
                async for raw in ws:
                    m = json.loads(raw)
                    if m.get("type") == "joined" and m.get("resume_secret") and sent_secret is None:
                        secrets[(code, client_id)] = m["resume_secret"]
                    if m.get("type") in ("chat", "presence", "event", "run") and "seq" in m:
                        seen.append(m["seq"])
                    if m.get("type") == "chat" and m.get("text") not in (None, code) and m.get("kind") != "system":
                        report["leaks"] += 1
            except Exception:
                pass
        r = rng.random()
        sent_secret = secrets.get((code, client_id)) if r < 0.85 else None if r < 0.93 else "wrong-secret-0123456789"
        task = asyncio.create_task(reader())
        try:
            await ws.send(json.dumps({"type": "join", "name": client_id, "client_id": client_id,
                                      **({"resume_secret": sent_secret} if sent_secret else {}),
                                      **({"resume_from": rng.randint(0, 50)} if rng.random() < 0.3 else {})}))
            for _ in range(rng.randint(1, 40)):
                r = rng.random()
                if r < 0.35:
                    await ws.send(json.dumps({"type": "chat", "id": f"{client_id}-{rng.randint(0, 10**6)}", "text": code}))
                elif r < 0.5:
                    await ws.send(json.dumps({"type": "cursor", "x": rng.random(), "y": rng.random()}))
                elif r < 0.6:
                    await ws.send(json.dumps({"type": "typing", "state": rng.choice(["start", "stop"])}))
                elif r < 0.65:
                    await ws.send(json.dumps({"type": "event", "name": "fz", "data": {"v": rng.random()}, "durable": rng.random() < 0.5, "id": str(rng.random())}))
                elif r < 0.9:
                    await ws.send(junk(rng))
                elif r < 0.95:
                    await ws.send(json.dumps({"type": "leave"}))
                else:
                    break
                if rng.random() < 0.2:
                    await asyncio.sleep(rng.random() * 0.02)
        except (websockets.ConnectionClosed, OSError):
            pass
        try:
            if rng.random() < 0.5:
                ws.transport.abort()        # abrupt: no close handshake
            else:
                await ws.close()
        except websockets.ConnectionClosed:
            pass                            # the hub may have closed it first (4002, 4008): allowed
        await asyncio.wait_for(task, 5)
        report["connections"] += 1
        # Per connection: strictly increasing, no duplicates (a resume may start anywhere).
        if any(b <= a for a, b in zip(seen, seen[1:])):
            report["order"] += 1


def test_lifecycle_fuzz(make_hub):
    hub = make_hub("--threads", "2", "--reconnect-grace", "0.5")
    codes = [create_session(hub, max_participants=20)["code"] for _ in range(4)]
    report = {"connections": 0, "order": 0, "leaks": 0}
    seed = int(os.environ.get("LIFECYCLE_FUZZ_SEED", str(int(time.time()))))
    print(f"lifecycle fuzz seed {seed} (replay: LIFECYCLE_FUZZ_SEED={seed})")
    rng = random.Random(seed)

    async def main():
        deadline = time.time() + SECONDS
        secrets = {}
        await asyncio.gather(*(member(hub, codes, random.Random(rng.random()), deadline, report, secrets)
                               for _ in range(24)))
    asyncio.run(main())
    assert hub.alive(), hub.output()
    assert api(hub, "GET", "/healthz")[0] == 200
    assert report["connections"] > 50, report
    assert report["order"] == 0, report
    assert report["leaks"] == 0, report
    for code in codes:
        status, raw = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
        seqs = [json.loads(l)["seq"] for l in raw.decode().splitlines()]
        assert seqs == list(range(1, len(seqs) + 1)), f"{code}: seq not contiguous"
