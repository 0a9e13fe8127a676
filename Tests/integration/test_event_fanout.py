"""Ephemeral app events on the fan-out path (issue 30: the frame is written in one buffer from the parsed
message, the coalescing key is made only for a recipient that is behind, member names are compared as bytes):
- the others get exactly `{"type","name","from","id","data"}` in that order, `data`'s bytes as the client
  sent them (its whitespace kept), an `id` with a quote, a backslash and non-ASCII text escaped once; the
  sender gets nothing back;
- member names written with escapes still count (`"ty\\u0070e"`), and a longer or shorter name is not `name`;
- a member that stops reading gets, once it reads again, the latest event of a name that was held back for
  it (coalesced), not an older one, and fewer than were sent;
- a member with several tabs gets an event on every tab, once each, and no tab of the sender's member gets
  its own event (the fan-out reads members and their connections in place: the first tab and the rest)."""
import asyncio
import json

from hubclient import Client, create_session, run
from test_auth import auth_hub, claims, token  # noqa: F401 (auth_hub is a fixture)
from test_hostile import joined_raw_member


async def next_event_text(client, timeout=5):
    """The raw text of the next `event` a websockets client receives (other messages skipped)."""
    while True:
        text = await asyncio.wait_for(client.ws.recv(), timeout)
        if json.loads(text)["type"] == "event":
            return text


def test_event_frame_is_exact_and_not_echoed(session_hub):
    code = create_session(session_hub, title="events")["code"]

    async def go():
        a = await Client.connect(session_hub, code)
        b = await Client.connect(session_hub, code)
        ann = await a.join("Ann")
        await b.join("Bob")
        await a.expect("presence")                      # Bob's join reached Ann: both are announced
        data = '{ "x" : [1, 2.5e3, "\\u00e9", {"deep": true}], "y":null }'
        await a.ws.send('{"type":"event","name":"cursor.move-1:x","id":"q\\"b\\\\c\u00e9","data":' + data + '}')
        got = await next_event_text(b)
        you = json.dumps(ann["you"]["id"])
        assert got == ('{"type":"event","name":"cursor.move-1:x","from":' + you
                       + ',"id":"q\\"b\\\\c\u00e9","data":' + data + '}'), got
        assert json.loads(got)["id"] == 'q"b\\c\u00e9'
        # Without an id, and without data: `{}`.
        await a.ws.send('{"type":"event","name":"bare"}')
        got = await next_event_text(b)
        assert got == '{"type":"event","name":"bare","from":' + you + ',"data":{}}', got
        # The sender is not among the recipients: its next message is the pong, not its own events.
        await a.send({"type": "ping", "id": "after"})
        assert (await a.expect("pong"))["id"] == "after"

    run(go())


def test_member_names_are_matched_by_their_decoded_bytes(session_hub):
    code = create_session(session_hub, title="names")["code"]

    async def go():
        a = await Client.connect(session_hub, code)
        b = await Client.connect(session_hub, code)
        await a.join("Ann")
        await b.join("Bob")
        await a.expect("presence")
        # Names spelled with escapes are the same names.
        await a.ws.send('{"ty\\u0070e":"event","n\\u0061me":"esc","d\\u0061ta":{"k":1}}')
        got = json.loads(await next_event_text(b))
        assert (got["name"], got["data"]) == ("esc", {"k": 1})
        # A longer name, a shorter one, and an escaped longer one are not "name".
        for raw in ('{"type":"event","namex":"a","data":{}}', '{"type":"event","nam":"a","data":{}}',
                    '{"type":"event","n\\u0061mes":"a","data":{}}'):
            await a.ws.send(raw)
            err = await a.expect("error")
            assert (err["code"], err.get("field")) == ("missing_field", "name"), (raw, err)
        await a.send({"type": "ping", "id": "alive"})
        await a.expect("pong")

    run(go())


def test_a_member_behind_gets_the_latest_event_of_a_name(make_hub):
    """B (a raw socket with a 4 KiB receive buffer) joins and stops reading; A sends 600 events named `pos`
    of ~20 KB each (12 MB: past every socket buffer and B's 256 KiB soft limit), then one named `done`.
    B then reads everything: the last `pos` it gets is the last one sent (held back for it under the key
    `event:<A>:pos` while it was behind), and it got fewer than 600."""
    hub = make_hub("--threads", "1", "--limit-event", "100000")
    code = create_session(hub, title="coalesce")["code"]
    b = joined_raw_member(hub.port, code)
    n, pad = 600, "p" * 20000

    async def flood():
        a = await Client.connect(hub, code)
        await a.join("Ann")
        for i in range(n):
            await a.ws.send(json.dumps({"type": "event", "name": "pos", "data": {"i": i, "p": pad}}))
        await a.ws.send(json.dumps({"type": "event", "name": "done", "data": {}}))
        await a.send({"type": "ping", "id": "sent"})
        await a.expect("pong", timeout=30)

    run(flood())
    b.sock.settimeout(10)
    seen = []
    while True:
        op, payload = b.recv_message()
        if op != 1:
            continue
        m = json.loads(payload)
        if m["type"] != "event":
            continue
        if m["name"] == "done":
            break
        seen.append(m["data"]["i"])
    b.close()
    assert seen, "B got no pos event at all"
    assert seen[-1] == n - 1, f"the last pos B got is {seen[-1]}, not the latest ({n - 1})"
    assert len(seen) < n, "B never fell behind: nothing was coalesced"
    assert seen == sorted(seen), "pos events arrived out of order"


def test_every_tab_of_a_member_gets_an_event_and_the_senders_tabs_do_not(auth_hub):
    code = create_session(auth_hub, title="tabs")["code"]

    async def go():
        async def tabs(sub, name, n):
            out = []
            for _ in range(n):
                c = await Client.connect(auth_hub, code)
                await c.join("x", token=token(claims(sub=sub, name=name, role="editor")))
                out.append(c)
            return out

        ann = await tabs("ann", "Ann", 3)   # one member, three connections: the first slot and two more
        bob = await tabs("bob", "Bob", 2)
        cy = (await tabs("cy", "Cy", 1))[0]
        everyone = ann + bob + [cy]
        await cy.send({"type": "event", "name": "from-cy", "data": {"n": 1}})
        for c in ann + bob:
            assert json.loads(await next_event_text(c))["name"] == "from-cy"
        await ann[1].send({"type": "event", "name": "from-ann", "data": {"n": 2}})
        for c in bob + [cy]:
            assert json.loads(await next_event_text(c))["name"] == "from-ann"
        # Once each, and not to Ann's tabs: the next event any tab sees is the marker that follows.
        await cy.send({"type": "event", "name": "marker", "data": {}})
        for c in everyone:
            if c is not cy:
                assert json.loads(await next_event_text(c))["name"] == "marker"
        for c in everyone:
            await c.close()

    run(go())
