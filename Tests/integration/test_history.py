"""Catch-up from the store, editable chat (edit, delete, redact), presence with state, playback by time
and share links, on the real binary with real clients."""
import asyncio
import glob
import json
import os
import time

import conftest
from hubclient import Client, api, create_session, eventually, run
from test_webhooks import Receiver

ADMIN = "history-admin-key-0123456789"
SECRET = "history-jwt-secret-0123456789"
SKIP = ("cursors", "typing", "presence")


async def collect_until_joined(c, timeout=30):
    """Everything a resuming client gets before `joined`, and `joined`."""
    got = []
    while True:
        m = await c.recv(timeout)
        if m["type"] == "joined":
            return got, m
        got.append(m)


def test_a_member_2550_events_behind_resumes_exactly_with_no_reset(make_hub):
    hub = make_hub()
    code = create_session(hub)["code"]

    async def main():
        # Ann sends 2,550 messages before reading: her library stops reading once its queue of received
        # messages is full, so its keep-alive pong waits behind them and, on a slow machine, its ping timeout
        # would close the connection (seen in CI). This test is about the resume, not keep-alive.
        a = await Client.connect(hub, code, ping_interval=None)
        await a.join("Ann", client_id="ann")
        b = await Client.connect(hub, code)
        seen = (await b.join("Bob", client_id="bob"))["seq"]
        await b.close()
        # 2,550 durable events while Bob is away (the resume window holds 1,000).
        for i in range(2550):
            await a.send({"type": "chat", "id": f"c{i}", "text": f"message {i}"})
        acks = 0
        while acks < 2550:
            m = await a.recv(30)
            acks += m["type"] == "ack"
        b2 = await Client.connect(hub, code)
        await b2.send({"type": "join", "name": "Bob", "client_id": "bob", "resume_from": seen})
        got, joined = await collect_until_joined(b2)
        durable = [m for m in got if "seq" in m]
        assert not [m for m in got if m["type"] == "reset"]
        seqs = [m["seq"] for m in durable]
        assert seqs == list(range(seen + 1, joined["seq"] + 1)), (seqs[:5], seqs[-5:], joined["seq"])
        texts = [m["text"] for m in durable if m["type"] == "chat"]
        assert texts == [f"message {i}" for i in range(2550)]
        assert joined["recovered"] == {"from": seen + 1, "to": joined["seq"], "count": len(seqs)}
        # Live again: exactly the next message, once.
        await a.send({"type": "chat", "id": "after", "text": "after"})
        m = await b2.expect("chat", skip=SKIP)
        assert m["text"] == "after" and m["seq"] == joined["seq"] + 1
    run(main())
    metrics = urllib_get(hub, "/metrics")
    assert 'collabhub_resumes_total{outcome="from_store"} 1' in metrics


def urllib_get(hub, path, headers=None):
    import urllib.request
    return urllib.request.urlopen(urllib.request.Request(hub.http + path, headers=headers or {}), timeout=10).read().decode()


def test_edit_delete_and_a_redaction_gone_from_transcript_export_playback_and_the_files(make_hub, tmp_path):
    receiver = Receiver()
    data = str(tmp_path / "data")
    hub = make_hub("--admin-key", ADMIN, "--webhook-allow-private", data_dir=data)
    status, hook = api(hub, "POST", "/api/webhooks", {"url": receiver.url(), "events": ["chat.updated", "chat.deleted"]})
    assert status == 201, hook
    session = create_session(hub, title="secrets", guest_policy="allow")
    code, host_key = session["code"], session["host_key"]
    secret = "hunter2-" + os.urandom(6).hex()

    async def main():
        host = await Client.connect(hub, code)
        await host.join("Host", client_id="host", host_key=host_key)
        ann = await Client.connect(hub, code)
        await ann.join("Ann", client_id="ann")
        bob = await Client.connect(hub, code)
        await bob.join("Bob", client_id="bob")
        await ann.send({"type": "chat", "id": "typo", "text": "helo"})
        typo = (await ann.expect("ack"))["seq"]
        await ann.send({"type": "chat", "id": "leak", "text": f"my password is {secret}"})
        leak = (await ann.expect("ack"))["seq"]
        # An edit repeats the secret: the redaction must take it too.
        await ann.send({"type": "chat_edit", "id": "leak2", "seq": leak, "text": f"my password is {secret}!"})
        await ann.expect("ack", skip=SKIP + ("chat_edit",))
        await ann.send({"type": "chat", "id": "oops", "text": "wrong room"})
        oops = (await ann.expect("ack"))["seq"]
        # Only the author edits; the author or a host deletes; only a host redacts.
        await bob.send({"type": "chat_edit", "id": "e0", "seq": typo, "text": "mine"})
        assert (await bob.expect("error", skip=SKIP + ("chat", "chat_edit")))["code"] == "forbidden"
        await ann.send({"type": "chat_edit", "id": "e1", "seq": typo, "text": "hello"})
        assert (await ann.expect("ack", skip=SKIP + ("chat_edit",)))["id"] == "e1"
        edit = await bob.expect("chat_edit", skip=SKIP + ("chat",))
        assert edit["target"] == typo and edit["text"] == "hello" and edit["from"]["name"] == "Ann"
        await ann.send({"type": "chat_delete", "id": "d1", "seq": oops})
        assert (await bob.expect("chat_delete", skip=SKIP + ("chat",)))["target"] == oops
        await ann.send({"type": "redact", "id": "r0", "seq": leak})
        assert (await ann.expect("error", skip=SKIP + ("chat_edit", "chat_delete", "ack")))["code"] == "forbidden"
        await host.send({"type": "redact", "id": "r1", "seq": leak, "reason": "a password"})
        r = await bob.expect("redact", skip=SKIP + ("chat", "chat_edit", "chat_delete"))
        assert r["target"] == leak and r["reason"] == "a password"
        # A newcomer asking for recent history gets the tombstone, not the message.
        carl = await Client.connect(hub, code)
        await carl.send({"type": "join", "name": "Carl", "history": 50})
        got, _ = await collect_until_joined(carl)
        assert secret not in json.dumps(got)
        tomb = next(m for m in got if m.get("seq") == leak)
        assert tomb["redacted"] is True and "text" not in tomb
        assert [m["type"] for m in got if m.get("seq", 0) > oops] == ["chat_edit", "chat_delete", "redact", "presence"]
        assert next(m for m in got if m["type"] == "chat_edit" and m["target"] == leak)["redacted"] is True
        # Playback.
        rp = await Client.connect(hub, code)
        await rp.send({"type": "replay", "speed": 1000, "host_key": host_key})
        played = []
        while (m := await rp.recv(10))["type"] != "replay_finished":
            played.append(m)
        assert secret not in json.dumps(played)
        assert next(m for m in played if m.get("seq") == leak)["redacted"] is True
        return leak
    leak = run(main())
    status, page = api(hub, "GET", f"/api/sessions/{code}/transcript?limit=1000")
    assert status == 200 and secret not in json.dumps(page)
    assert next(e for e in page["events"] if e["seq"] == leak)["redacted"] is True
    status, export = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    text = export.decode() if isinstance(export, bytes) else json.dumps(export)
    assert status == 200 and secret not in text and '"type":"redact"' in text
    # Webhooks: the edit and the two deletions, signed like every delivery.
    eventually(lambda: len(receiver.bodies()) >= 3, what="chat.updated and chat.deleted webhooks")
    types = sorted(b["type"] for b in receiver.bodies())
    # The edit of the redacted message may have gone out before the redaction (it was delivered then);
    # the hub's own copies of it are gone.
    assert types in (["chat.deleted", "chat.deleted", "chat.updated"],
                     ["chat.deleted", "chat.deleted", "chat.updated", "chat.updated"]), types
    receiver.close()
    # Gone from the files, not only from the table: no byte of it in the database or its WAL.
    hub.stop()
    for path in glob.glob(os.path.join(data, "*")):
        with open(path, "rb") as f:
            assert secret.encode() not in f.read(), f"{secret} still in {path}"


def test_presence_state_stale_and_named_leaves(make_hub):
    hub = make_hub("--reconnect-grace", "30")
    code = create_session(hub)["code"]

    async def main():
        a = await Client.connect(hub, code)
        await a.join("Ann", client_id="ann")
        b = await Client.connect(hub, code)
        joined = await b.join("Bob", client_id="bob")
        assert all(m["status"] == "active" for m in joined["members"])
        await a.send({"type": "presence", "state": {"status": "idle", "location": {"label": "viewing request 42"}}})

        async def update(client, name, status):
            while True:
                m = await client.expect("presence", skip=("cursors", "typing"))
                for u in m.get("updates", []):
                    if u["name"] == name and u["status"] == status:
                        return u
        u = await update(b, "Ann", "idle")
        assert u["location"] == {"label": "viewing request 42"}
        status, members = api(hub, "GET", f"/api/sessions/{code}/members")
        assert {m["name"]: m["status"] for m in members["members"]}["Ann"] == "idle"
        await a.send({"type": "presence", "state": {"status": "sleeping"}})
        assert (await a.expect("error", skip=SKIP))["field"] == "state.status"
        # Ann's connection drops: stale to the others during the grace, live again when she is back.
        a.ws.transport.abort()
        await update(b, "Ann", "stale")
        a2 = await Client.connect(hub, code)
        await a2.join("Ann", client_id="ann")
        await update(b, "Ann", "idle")
        await a2.send({"type": "leave"})
        while True:
            m = await b.expect("presence", skip=("cursors", "typing"))
            if m.get("leaves"):
                assert m["leaves"][0]["name"] == "Ann" and m["leaves"][0]["reason"] == "left"
                break
    run(main())


def test_playback_seeks_by_time_and_a_share_link_replays_but_joins_nothing(make_hub):
    hub = make_hub("--jwt-secret", SECRET, "--admin-key", ADMIN)
    session = create_session(hub, guest_policy="deny")
    code, host_key = session["code"], session["host_key"]

    async def main():
        h = await Client.connect(hub, code)
        await h.join("Host", host_key=host_key)
        stamps = []
        for i in range(3):
            await h.send({"type": "chat", "id": f"t{i}", "text": f"at {i}"})
            stamps.append(await h.expect("ack"))
            await asyncio.sleep(0.3)
        return stamps
    stamps = run(main())
    status, share = api(hub, "POST", f"/api/sessions/{code}/share", {"ttl_s": 600})
    assert status == 201 and share["url"] == f"/replay/{code}#token={share['token']}"
    assert share["expires_at"] - time.time() > 590
    assert api(hub, "POST", f"/api/sessions/{code}/share", {}, headers={})[0] == 401
    # A link's token cannot make another (it would renew itself forever).
    assert api(hub, "POST", f"/api/sessions/{code}/share", {}, headers={"Authorization": "Bearer " + share["token"]})[0] == 403

    async def replay():
        r = await Client.connect(hub, code)
        await r.send({"type": "replay", "speed": 0.001, "token": share["token"]})
        assert (await r.recv())["type"] == "replay_started"
        await r.send({"type": "replay_control", "action": "pause"})
        # By time: the first event committed at or after the second chat's time is that chat.
        await r.send({"type": "replay_control", "action": "seek", "ts": stamps[1]["ts"]})
        while True:
            m = await r.recv()
            if m["type"] == "replay_state" and m["seq"] == stamps[1]["seq"]:
                break
        await r.send({"type": "replay_control", "action": "seek", "ts": -5})
        assert (await r.expect("error", skip=("replay_state", "chat", "presence")))["field"] == "ts"
        # The link's token joins nothing, and reads only its own session.
        j = await Client.connect(hub, code)
        await j.send({"type": "join", "name": "Eve", "token": share["token"]})
        assert (await j.expect("error"))["code"] == "forbidden"
    run(replay())
    other = create_session(hub)["code"]
    assert api(hub, "GET", f"/api/sessions/{code}/transcript", headers={"Authorization": "Bearer " + share["token"]})[0] == 200
    assert api(hub, "GET", f"/api/sessions/{other}/transcript", headers={"Authorization": "Bearer " + share["token"]})[0] == 403
