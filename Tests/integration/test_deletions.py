"""A deleted message shows as deleted, never in full: after a `chat_delete` the original's text (and its
edits' texts) is gone from a late joiner's history, the transcript (JSON and NDJSON), and a replay from the
start, which shows the tombstone at the message's seq from its first frame; also after a restart (read
from SQLite, not the resume window). A redaction of a deleted message and a deletion of a redacted one
are refused with `invalid_field`. The real hub on loopback, Python `websockets`; every message is checked
against its schema by hubclient."""
import json
import os

from hubclient import Client, api, create_session, run

ADMIN = "deletions-admin-key-0123456789"
SKIP = ("cursors", "typing", "presence", "chat", "chat_edit", "chat_delete", "redact")


async def history(hub, code, name="Late"):
    """A newcomer's history: every message before its `joined` (from the resume window or, further
    back, the store)."""
    c = await Client.connect(hub, code)
    await c.send({"type": "join", "name": name, "history": 100})
    got = []
    while (m := await c.recv(10))["type"] != "joined":
        got.append(m)
    await c.close()
    return got


async def replay(hub, code, host_key):
    """A replay from the start, fast: every event played, in order."""
    c = await Client.connect(hub, code)
    await c.send({"type": "replay", "from": 0, "speed": 1000, "host_key": host_key})
    played = []
    while (m := await c.recv(10))["type"] != "replay_finished":
        played.append(m)
    await c.close()
    return played


def check_everywhere(hub, code, host_key, secrets, deleted):
    """`deleted`: seq -> who deleted it ("author" or "host"). No secret anywhere; each deleted message a
    tombstone wherever it shows."""
    def tombstones(events, where):
        for seq, by in deleted.items():
            first = next(e for e in events if e.get("seq") == seq)
            assert first["type"] == "chat" and first.get("deleted") is True and first.get("deleted_by") == by, \
                f"{where}: seq {seq} shows as {first}"
            assert not {"text", "code", "file", "meta"} & set(first), f"{where}: {first}"

    async def main():
        got = await history(hub, code)
        played = await replay(hub, code, host_key)
        return got, played
    got, played = run(main())
    for where, events in (("late joiner's history", got), ("replay", played)):
        blob = json.dumps(events)
        for s in secrets:
            assert s not in blob, f"{s} in the {where}"
    tombstones(got, "history")
    tombstones(played, "replay")
    assert [m["type"] for m in played[:1]] == ["replay_started"], played[:1]
    edits = [m for m in played if m["type"] == "chat_edit" and m["target"] in deleted]
    assert edits and all(m.get("deleted") is True and "text" not in m for m in edits), edits

    status, page = api(hub, "GET", f"/api/sessions/{code}/transcript?limit=1000")
    assert status == 200
    for s in secrets:
        assert s not in json.dumps(page), f"{s} in the transcript"
    tombstones(page["events"], "transcript")
    status, export = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    assert status == 200
    lines = [json.loads(x) for x in export.decode().splitlines() if x.strip()]
    for s in secrets:
        assert s not in export.decode(), f"{s} in the NDJSON export"
    tombstones(lines, "NDJSON export")
    assert {e["type"] for e in lines} >= {"chat", "chat_edit", "chat_delete", "redact"}


def test_a_deleted_message_is_a_tombstone_in_history_transcript_export_and_replay(make_hub, tmp_path):
    data = str(tmp_path / "data")
    hub = make_hub("--admin-key", ADMIN, data_dir=data)
    session = create_session(hub, title="deletions", guest_policy="allow")
    code, host_key = session["code"], session["host_key"]
    own, edited, hosts = ("own-" + os.urandom(5).hex(), "edited-" + os.urandom(5).hex(),
                          "hosts-" + os.urandom(5).hex())
    leak = "leak-" + os.urandom(5).hex()

    async def main():
        host = await Client.connect(hub, code)
        await host.join("Host", client_id="host", host_key=host_key)
        ann = await Client.connect(hub, code)
        await ann.join("Ann", client_id="ann")
        bob = await Client.connect(hub, code)
        await bob.join("Bob", client_id="bob")

        async def say(c, cid, text):
            await c.send({"type": "chat", "id": cid, "text": text})
            return (await c.expect("ack", skip=SKIP))["seq"]

        async def change(c, msg):
            await c.send(msg)
            return await c.expect("ack", skip=SKIP)
        await say(ann, "keep", "this one stays")
        mine = await say(ann, "own", f"I regret {own}")
        await change(ann, {"type": "chat_edit", "id": "own-e", "seq": mine, "text": f"I regret {edited}"})
        theirs = await say(bob, "b1", f"off topic {hosts}")
        secret = await say(bob, "b2", f"password {leak}")
        # The author deletes its own message; a host deletes Bob's; a host redacts another.
        await change(ann, {"type": "chat_delete", "id": "own-d", "seq": mine})
        await change(host, {"type": "chat_delete", "id": "host-d", "seq": theirs})
        await change(host, {"type": "redact", "id": "host-r", "seq": secret, "reason": "a password"})
        # Nothing is left to change: a redaction of a deleted message, a deletion of a redacted one.
        await host.send({"type": "redact", "id": "r-again", "seq": mine})
        err = await host.expect("error", skip=SKIP)
        assert err["code"] == "invalid_field" and err["field"] == "seq" and "was deleted" in err["message"], err
        await bob.send({"type": "chat_delete", "id": "d-again", "seq": secret})
        err = await bob.expect("error", skip=SKIP)
        assert err["code"] == "invalid_field" and "was redacted" in err["message"], err
        await ann.send({"type": "chat_edit", "id": "e-again", "seq": mine, "text": "back from the dead"})
        err = await ann.expect("error", skip=SKIP)
        assert err["code"] == "invalid_field" and "was deleted" in err["message"], err
        return mine, theirs
    mine, theirs = run(main())
    secrets = [own, edited, hosts, leak, "back from the dead"]
    deleted = {mine: "author", theirs: "host"}
    # From the running hub (the resume window, the store's pages) ...
    check_everywhere(hub, code, host_key, secrets, deleted)
    # ... and from SQLite alone, after a restart.
    hub.stop()
    again = make_hub("--admin-key", ADMIN, data_dir=data)
    check_everywhere(again, code, host_key, secrets, deleted)
    status, page = api(again, "GET", f"/api/sessions/{code}/transcript?limit=1000")
    assert any(e.get("text") == "this one stays" for e in page["events"])
