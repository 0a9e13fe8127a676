"""L5 (security review 2026-12-06): a guest's identity is its client_id together with the resume secret its
first join got back, so a guest who learns another guest's client_id is another member. It cannot edit or
delete that member's messages, and its resends are not taken for that member's. The member itself resumes
with its secret: within the grace, after it, and after a restart."""
import asyncio
import json

import pytest

from hubclient import SECRETS, Client, api, create_session
from test_cluster import REDIS, cluster  # noqa: F401  (the fixture)

# A client id no random member id or secret could contain by chance.
CID = "guest-client-id-for-identity-tests"


async def error_for(c, ref):
    """The `error` answering the message with id `ref` (skipping what else arrives)."""
    while True:
        m = await c.recv()
        if m["type"] == "error" and m.get("ref") == ref:
            return m
        assert not (m["type"] == "ack" and m.get("id") == ref), f"{ref} was accepted: {m}"


async def ack_for(c, ref):
    while True:
        m = await c.recv()
        assert not (m["type"] == "error" and m.get("ref") == ref), f"{ref} refused: {m}"
        if m["type"] == "ack" and m.get("id") == ref:
            return m


def test_a_guest_who_knows_another_guests_client_id_cannot_act_as_it(make_hub):
    hub = make_hub("--threads", "2", "--reconnect-grace", "1")
    code = create_session(hub, title="identity")["code"]
    state = {}

    async def first():
        a = await Client.connect(hub, code)
        ja = await a.join("Ann", client_id=CID)
        secret = ja.get("resume_secret")
        assert isinstance(secret, str) and 16 <= len(secret) <= 128, ja
        assert CID not in ja["you"]["id"] and ja["you"]["id"].startswith("m"), ja["you"]
        await a.send({"type": "chat", "id": "a1", "text": "Ann's words"})
        seq = (await ack_for(a, "a1"))["seq"]

        # B knows the client_id, not the secret: with none, or a wrong one, it is another member.
        for i, extra in enumerate(({"resume_secret": None}, {"resume_secret": "wrong-secret-0123456789"})):
            b = await Client.connect(hub, code)
            jb = await b.join("Bob", client_id=CID, **extra)
            assert jb["you"]["id"] != ja["you"]["id"], (ja["you"], jb["you"])
            assert jb.get("resume_secret") != secret, jb
            assert (jb.get("resume_secret") is not None) == (extra["resume_secret"] is None), jb
            assert ja["you"]["id"] in [m["id"] for m in jb["members"]]
            await b.send({"type": "chat_edit", "id": f"e{i}", "seq": seq, "text": "taken over"})
            assert (await error_for(b, f"e{i}"))["code"] == "forbidden"
            await b.send({"type": "chat_delete", "id": f"d{i}", "seq": seq})
            assert (await error_for(b, f"d{i}"))["code"] == "forbidden"
            await b.send({"type": "chat", "id": "a1", "text": "not a resend of Ann's"})
            own = await ack_for(b, "a1")
            assert not own.get("duplicate") and own["seq"] > seq, own
            await b.close()

        # A bad secret is refused, naming the field.
        bad = await Client.connect(hub, code)
        await bad.send({"type": "join", "name": "Eve", "client_id": CID, "resume_secret": "short/"})
        err = await bad.expect("error")
        assert err["code"] == "invalid_field" and err.get("field") == "resume_secret", err
        await bad.close()

        # A, reconnecting with its secret (hubclient sends it), is the same member; its resend is a duplicate.
        await a.close()
        a2 = await Client.connect(hub, code)
        j2 = await a2.join("Ann", client_id=CID)
        assert j2["you"]["id"] == ja["you"]["id"], (ja["you"], j2["you"])
        assert "resume_secret" not in j2, "a secret the client sent is not sent back"
        await a2.send({"type": "chat", "id": "a1", "text": "Ann's words"})
        dup = await ack_for(a2, "a1")
        assert dup.get("duplicate") is True and dup["seq"] == seq, dup
        await a2.close()
        state.update(secret=secret, seq=seq, member=ja["you"]["id"])

    asyncio.run(first())
    secret, seq = state["secret"], state["seq"]
    assert SECRETS[(code, CID)] == secret

    # Nothing that leaves the hub carries the key or the secret: the transcript, the export, the activity.
    status, body = api(hub, "GET", f"/api/sessions/{code}/transcript?limit=1000")
    assert status == 200
    events = body["events"]
    assert [e["type"] for e in events if e.get("seq") == seq] == ["chat"]
    assert not [e for e in events if e["type"] in ("chat_edit", "chat_delete")], "B changed Ann's message"
    status, export = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    status2, activity = api(hub, "GET", f"/api/activity?session={code}")
    assert status2 == 200, activity
    for what, text in (("transcript", json.dumps(body)), ("export", export.decode()),
                       ("activity", json.dumps(activity))):
        assert secret not in text and "c:" + CID not in text and CID not in text, f"the {what} shows the key or the secret"

    # After a restart on the same data (the member has left): the secret is still Ann, and only Ann.
    assert hub.stop() == 0
    assert secret not in hub.output(), "the log shows the secret"
    hub2 = make_hub("--threads", "2", "--reconnect-grace", "1", data_dir=hub.data_dir)

    async def after_restart():
        b = await Client.connect(hub2, code)
        await b.join("Bob", client_id=CID, resume_secret=None)
        await b.send({"type": "chat_delete", "id": "d9", "seq": seq})
        assert (await error_for(b, "d9"))["code"] == "forbidden"
        a = await Client.connect(hub2, code)
        await a.join("Ann", client_id=CID)
        await a.send({"type": "chat", "id": "a1", "text": "Ann's words"})
        dup = await ack_for(a, "a1")
        assert dup.get("duplicate") is True and dup["seq"] == seq, dup
        await a.send({"type": "chat_edit", "id": "e9", "seq": seq, "text": "Ann's better words"})
        assert not (await ack_for(a, "e9")).get("duplicate")
        await Client.close_all()

    asyncio.run(after_restart())
    assert hub2.stop() == 0
    assert secret not in hub2.output(), "the log shows the secret"


def test_anonymous_guests_get_no_secret(session_hub):
    """Only a join with a client_id and no secret is given one; a join without client_id is an anonymous
    guest as before, and a secret sent without a client_id names nobody."""
    async def main():
        code = create_session(session_hub)["code"]
        anon = await Client.connect(session_hub, code)
        j = await anon.join("Anon")
        assert "resume_secret" not in j
        lone = await Client.connect(session_hub, code)
        j2 = await lone.join("Lone", resume_secret="0123456789abcdef")
        assert "resume_secret" not in j2 and j2["you"]["id"] != j["you"]["id"]
        await Client.close_all()
    asyncio.run(main())


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (scripts/deps.sh test installs it)")
def test_in_a_cluster_the_secret_is_the_member_on_every_node(cluster):
    """Each node derives the key at admission, so Ann with her secret is Ann on any node (her resend is a
    duplicate, her edit is hers), and Bob with her client_id alone is Bob on any node."""
    redis, nodes = cluster
    code = create_session(nodes[0], title="cluster identity")["code"]

    async def main():
        a = await Client.connect(nodes[0], code)
        await a.join("Ann", client_id=CID)
        await a.send({"type": "chat", "id": "a1", "text": "Ann's words"})
        seq = (await ack_for(a, "a1"))["seq"]
        b = await Client.connect(nodes[1], code)
        await b.join("Bob", client_id=CID, resume_secret=None)
        await b.send({"type": "chat_edit", "id": "e1", "seq": seq, "text": "taken over"})
        assert (await error_for(b, "e1"))["code"] == "forbidden"
        await b.send({"type": "chat_delete", "id": "d1", "seq": seq})
        assert (await error_for(b, "d1"))["code"] == "forbidden"
        await b.send({"type": "chat", "id": "a1", "text": "Bob's own"})
        assert not (await ack_for(b, "a1")).get("duplicate")
        a2 = await Client.connect(nodes[2], code)
        await a2.join("Ann", client_id=CID)
        await a2.send({"type": "chat", "id": "a1", "text": "Ann's words"})
        dup = await ack_for(a2, "a1")
        assert dup.get("duplicate") is True and dup["seq"] == seq, dup
        await a2.send({"type": "chat_edit", "id": "e2", "seq": seq, "text": "Ann's better words"})
        await ack_for(a2, "e2")
        await Client.close_all()

    asyncio.run(main())
