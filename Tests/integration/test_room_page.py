"""The room page (index.html + client.js) in headless Chromium, against members played by Python clients:
a newcomer sees the recent history; edits, deletions and redactions show up; presence states (idle, away,
stale) dim members and locations are shown; the page reports its own location and activity; an unsent
message survives a reload. Screenshots: test-output/screenshots/room-*.png."""
import asyncio
import json
import threading
import time

import pytest

import conftest
from hubclient import Client, api, create_session, eventually
from test_browser import browser, browsers, pytestmark, shot, wait  # noqa: F401  (pytestmark: skipped without chromedriver)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402  (test_browser skips without selenium)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ADMIN_KEY = "room-admin-key-0123456789"
GRACE = 5   # seconds a dropped member is shown stale before it leaves

# Markup in what members send must show as text, never run.
HOSTILE = '<img src=x onerror="window.pwned=1">first'


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = conftest.Hub("--threads", "2", "--admin-key", ADMIN_KEY, "--reconnect-grace", str(GRACE),
                     data_dir=str(tmp_path_factory.mktemp("room"))).start()
    yield h
    assert h.alive(), h.output()
    h.stop()


class Loop:
    """An asyncio loop on a thread of its own, so Python members stay connected while Selenium drives."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.run(Client.close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


class Member:
    """A member played by a Python client; every message it receives is kept (schema-checked) in `got`."""

    def __init__(self, client, joined):
        self.client, self.joined, self.got = client, joined, []
        self.arrived = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def join(cls, hub, code, name, **fields):
        c = await Client.connect(hub, code)
        return cls(c, await c.join(name, **fields))

    @property
    def id(self):
        return self.joined["you"]["id"]

    async def _read(self):
        try:
            while True:
                self.got.append(await self.client.recv(timeout=3600))
                self.arrived.set()
        except Exception:
            pass

    async def until(self, pred, timeout=15, what="message", since=0):
        """The first message received (from index `since` of `got` on, or later) that satisfies `pred`."""
        async def find():
            seen = since
            while True:
                for m in self.got[seen:]:
                    if pred(m):
                        return m
                seen = len(self.got)
                self.arrived.clear()
                await self.arrived.wait()
        try:
            return await asyncio.wait_for(find(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; got {self.got[-5:]}")

    async def send(self, msg):
        await self.client.send(msg)

    async def acked(self, msg):
        await self.send(msg)
        return (await self.until(lambda m: m["type"] == "ack" and m["id"] == msg["id"], what=f"ack {msg['id']}"))["seq"]

    async def chat(self, id, text):
        return await self.acked({"type": "chat", "id": id, "text": text})


def message(driver, seq):
    return driver.find_element(By.CSS_SELECTOR, f'#messages .msg[data-seq="{seq}"]')


def person(driver, member_id):
    found = driver.find_elements(By.CSS_SELECTOR, f'#avatars .avatar[data-member="{member_id}"]')
    return found[0] if found else None


def member_update(name, **want):
    """A presence update (ephemeral) about the member called `name` carrying the fields in `want`."""
    def match(m):
        return m["type"] == "presence" and any(
            u["name"] == name and all(u.get(k) == v for k, v in want.items()) for u in m.get("updates", []))
    return match


def transcript(hub, code):
    status, raw = api(hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    assert status == 200
    return [json.loads(line) for line in raw.decode().splitlines()]


def test_newcomer_sees_history_edits_deletions_and_presence(hub, loop, browsers):
    code = create_session(hub, title="Room page")["code"]

    async def before():
        ann = await Member.join(hub, code, "Ann", client_id="ann-py")
        seqs = [await ann.chat("h1", HOSTILE), await ann.chat("h2", "second"), await ann.chat("h3", "third")]
        return ann, seqs
    ann, (s1, s2, s3) = loop.run(before())

    # A newcomer's page shows what was said before it came, in order, as text.
    bob = browsers()
    bob.get(f"{hub.http}/?code={code}&name=Bob")
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "open")
    wait(bob, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq]")) == 3)
    texts = [e.text for e in bob.find_elements(By.CSS_SELECTOR, "#messages .msg .body")]
    assert texts == [HOSTILE, "second", "third"]
    assert bob.find_elements(By.CSS_SELECTOR, "#messages img") == [] and bob.execute_script("return window.pwned") is None
    assert "Ann" in message(bob, s1).find_element(By.CSS_SELECTOR, ".who").text
    # Bob may not edit, delete or redact Ann's messages: no buttons.
    assert bob.find_elements(By.CSS_SELECTOR, "#messages .msg button") == []

    # Ann edits one message and deletes another.
    async def change():
        await ann.acked({"type": "chat_edit", "id": "e2", "seq": s2, "text": "second, <b>edited</b>"})
        await ann.acked({"type": "chat_delete", "id": "d3", "seq": s3})
    loop.run(change())
    wait(bob, lambda d: message(d, s2).find_element(By.CSS_SELECTOR, ".body").text == "second, <b>edited</b>")
    assert message(bob, s2).find_element(By.CSS_SELECTOR, ".edited").text == "(edited)"
    wait(bob, lambda d: message(d, s3).find_element(By.CSS_SELECTOR, ".body").text == "message deleted")
    assert "third" not in bob.find_element(By.ID, "messages").text
    assert message(bob, s1).find_element(By.CSS_SELECTOR, ".edited").is_displayed() is False

    # Ann's presence: idle, then away, with a location; each dims her and shows it.
    ann_on_page = lambda d: person(d, ann.id)  # noqa: E731
    assert ann_on_page(bob).get_attribute("data-status") == "active"
    dot = lambda e: e.find_element(By.CSS_SELECTOR, "i")  # noqa: E731  (dimmed: the dot; the text keeps its contrast)
    assert float(dot(ann_on_page(bob)).value_of_css_property("opacity")) == 1
    loop.run(ann.send({"type": "presence", "state": {"status": "idle", "location": {"label": "viewing <i>docs</i>"}}}))
    wait(bob, lambda d: ann_on_page(d).get_attribute("data-status") == "idle")
    assert float(dot(ann_on_page(bob)).value_of_css_property("opacity")) < 1
    meta = wait(bob, lambda d: ann_on_page(d).find_element(By.CSS_SELECTOR, ".meta").text)
    assert "idle" in meta and "viewing <i>docs</i>" in meta
    loop.run(ann.send({"type": "presence", "state": {"status": "away", "location": "reading the spec"}}))
    wait(bob, lambda d: ann_on_page(d).get_attribute("data-status") == "away")
    assert "reading the spec" in ann_on_page(bob).text and "away" in ann_on_page(bob).text
    assert float(dot(ann_on_page(bob)).value_of_css_property("opacity")) < 1

    # Carol's connection drops: stale (dimmed, "connection lost") during the grace, then she leaves.
    carol = loop.run(Member.join(hub, code, "Carol", client_id="carol-py"))
    wait(bob, lambda d: person(d, carol.id) is not None and person(d, carol.id).get_attribute("data-status") == "active")
    loop.run(carol.client.close())
    wait(bob, lambda d: person(d, carol.id).get_attribute("data-status") == "stale")
    assert "connection lost" in person(bob, carol.id).text
    assert float(dot(person(bob, carol.id)).value_of_css_property("opacity")) < 1
    shot(bob, "room-history-presence.png")
    wait(bob, lambda d: person(d, carol.id) is None, timeout=GRACE + 10)

    # Bob's page says where he is: composing (chat), over the board (board wins), back to chat.
    bob.find_element(By.ID, "text").click()
    loop.run(ann.until(member_update("Bob", location={"label": "viewing chat"}), what="Bob viewing chat"))
    ActionChains(bob).move_to_element(bob.find_element(By.ID, "surface")).perform()
    loop.run(ann.until(member_update("Bob", location={"label": "viewing the board"}), what="Bob on the board"))
    n = len(ann.got)
    ActionChains(bob).move_to_element(bob.find_element(By.ID, "text")).perform()
    loop.run(ann.until(member_update("Bob", location={"label": "viewing chat"}), what="Bob back in chat", since=n))

    # And whether he is there: another tab in front hides the page (away); back in front, active.
    room = bob.current_window_handle
    bob.switch_to.new_window("tab")
    loop.run(ann.until(member_update("Bob", status="away"), what="Bob away"))
    n = len(ann.got)
    bob.close()
    bob.switch_to.window(room)
    loop.run(ann.until(member_update("Bob", status="active"), what="Bob active again", since=n))

    # The transcript holds the edit and the deletion as events; the deleted original is a tombstone.
    events = transcript(hub, code)
    assert [e["type"] for e in events if e["type"] in ("chat_edit", "chat_delete")] == ["chat_edit", "chat_delete"]
    tomb = next(e for e in events if e.get("seq") == s3)
    assert tomb["type"] == "chat" and tomb.get("deleted") is True and "text" not in tomb, tomb
    assert not any(e.get("text") == "third" for e in events)


def test_own_messages_edit_delete_and_host_redacts(hub, loop, browsers):
    code_info = create_session(hub, title="Buttons")
    code = code_info["code"]
    ann = loop.run(Member.join(hub, code, "Ann", client_id="ann-py2"))
    ann_seq = loop.run(ann.chat("a1", "ann's secret: hunter2"))

    bob = browsers()
    bob.get(f"{hub.http}/?code={code}&name=Bob")
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "open")
    for text in ["typo here", "delete me"]:
        bob.find_element(By.ID, "text").send_keys(text)
        bob.find_element(By.CSS_SELECTOR, "#compose button").click()
    edited = loop.run(ann.until(lambda m: m["type"] == "chat" and m.get("text") == "typo here"))["seq"]
    deleted = loop.run(ann.until(lambda m: m["type"] == "chat" and m.get("text") == "delete me"))["seq"]
    wait(bob, lambda d: d.execute_script("return window.collab.pending.size") == 0)

    # Own messages have Edit and Delete; Ann's has none (Bob is no host).
    wait(bob, lambda d: message(d, edited).find_elements(By.CSS_SELECTOR, "button[data-action=edit]"))
    assert [b.text for b in message(bob, edited).find_elements(By.CSS_SELECTOR, "button")] == ["Edit", "Delete"]
    assert message(bob, ann_seq).find_elements(By.CSS_SELECTOR, "button") == []

    # Edit in place.
    message(bob, edited).find_element(By.CSS_SELECTOR, "button[data-action=edit]").click()
    box = message(bob, edited).find_element(By.CSS_SELECTOR, "form.edit input")
    box.clear()
    box.send_keys("no typo here\n")
    change = loop.run(ann.until(lambda m: m["type"] == "chat_edit" and m["target"] == edited))
    assert change["text"] == "no typo here"
    wait(bob, lambda d: message(d, edited).find_element(By.CSS_SELECTOR, ".body").text == "no typo here")
    assert message(bob, edited).find_element(By.CSS_SELECTOR, ".edited").is_displayed()

    # Delete.
    message(bob, deleted).find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    loop.run(ann.until(lambda m: m["type"] == "chat_delete" and m["target"] == deleted))
    wait(bob, lambda d: message(d, deleted).find_element(By.CSS_SELECTOR, ".body").text == "message deleted")
    assert message(bob, deleted).find_elements(By.CSS_SELECTOR, "button") == []

    # The host (the session's creator: its host key in the tab's sessionStorage) redacts Ann's message.
    host = browsers()
    host.get(f"{hub.http}/")
    host.execute_script("sessionStorage.setItem(arguments[0], arguments[1])", "collabhub.host." + code, code_info["host_key"])
    host.get(f"{hub.http}/?code={code}&name=Host")
    wait(host, lambda d: d.find_element(By.ID, "state").text == "open")
    wait(host, lambda d: message(d, ann_seq).find_elements(By.CSS_SELECTOR, "button[data-action=redact]"))
    assert [b.text for b in message(host, ann_seq).find_elements(By.CSS_SELECTOR, "button")] == ["Delete", "Redact"]
    message(host, ann_seq).find_element(By.CSS_SELECTOR, "button[data-action=redact]").click()
    WebDriverWait(host, 5).until(EC.alert_is_present())
    host.switch_to.alert.accept()
    loop.run(ann.until(lambda m: m["type"] == "redact" and m["target"] == ann_seq))
    for d in (host, bob):
        wait(d, lambda x: message(x, ann_seq).find_element(By.CSS_SELECTOR, ".body").text == "message redacted")
        assert "hunter2" not in d.find_element(By.ID, "messages").text
    shot(host, "room-host-redacted.png")
    shot(bob, "room-edit-delete.png")

    # A newcomer gets the redacted message as a tombstone, the edit and the deletion applied.
    late = browsers()
    late.get(f"{hub.http}/?code={code}&name=Late")
    wait(late, lambda d: d.find_element(By.ID, "state").text == "open")
    wait(late, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq]")) == 3)
    assert message(late, ann_seq).find_element(By.CSS_SELECTOR, ".body").text == "message redacted"
    assert message(late, edited).find_element(By.CSS_SELECTOR, ".body").text == "no typo here"
    assert message(late, deleted).find_element(By.CSS_SELECTOR, ".body").text == "message deleted"
    assert "hunter2" not in late.find_element(By.ID, "messages").text


def test_unsent_message_survives_a_reload(hub, loop, browsers):
    code = create_session(hub, title="Reload")["code"]
    ann = loop.run(Member.join(hub, code, "Ann", client_id="ann-py3"))
    bob = browsers()
    bob.get(f"{hub.http}/?code={code}&name=Bob")
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "open")
    # The connection drops and the next attempt is 15 s away: what Bob sends now waits in the outbox.
    bob.execute_script("const c = window.collab; c.random = () => 1; c.attempt = 10; c.ws.close(4999);")
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "offline")
    bob.find_element(By.ID, "text").send_keys("written before the reload")
    bob.find_element(By.CSS_SELECTOR, "#compose button").click()
    key = bob.execute_script("return window.collab.pending.key")
    saved = json.loads(bob.execute_script("return localStorage.getItem(arguments[0])", key))
    assert [m["text"] for _, m in saved["items"]] == ["written before the reload"]
    sent_id = saved["items"][0][0]

    bob.refresh()   # the page reloads: same tab, same client id, the outbox read back from localStorage
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "open")
    got = loop.run(ann.until(lambda m: m["type"] == "chat" and m.get("text") == "written before the reload"))
    assert got["id"] == sent_id
    wait(bob, lambda d: d.execute_script("return window.collab.pending.size") == 0)
    assert bob.execute_script("return localStorage.getItem(arguments[0])", key) is None
    wait(bob, lambda d: len(d.find_elements(By.XPATH, "//div[@id='messages']//div[contains(@class,'msg') and @data-seq and not(contains(@class,'pending'))]"
                                                      "//div[@class='text' and text()='written before the reload']")) == 1)
    shot(bob, "room-after-reload.png")
    texts = [e.get("text") for e in transcript(hub, code) if e["type"] == "chat"]
    assert texts.count("written before the reload") == 1


def test_a_refused_own_message_says_not_sent_and_the_room_goes_on(hub, loop, browsers):
    """The room's list is the client package's MessageStore: one's own message the hub refuses for good (a
    code message without its code) stops saying "sending…" and says "not sent", the refusal stays on screen,
    it leaves the outbox, and what is sent next is shown and acknowledged as usual, after the others' in seq
    order."""
    code = create_session(hub, title="Refused")["code"]
    ann = loop.run(Member.join(hub, code, "Ann", client_id="ann-py5"))
    bob = browsers()
    bob.get(f"{hub.http}/?code={code}&name=Bob")
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "open")
    bob.execute_script("window.collab.sendChat({ kind: 'code' })")
    wait(bob, lambda d: d.find_elements(By.CSS_SELECTOR, "#messages .msg.pending .sending")
         and d.find_element(By.CSS_SELECTOR, "#messages .msg.pending .sending").text == "not sent")
    assert "code" in alert_text(bob)
    assert bob.execute_script("return window.collab.pending.size") == 0
    assert bob.execute_script("return window.chat.pending[0].failed") == "missing_field"
    loop.run(ann.chat("a1", "from Ann"))
    bob.find_element(By.ID, "text").send_keys("after the refusal")
    bob.find_element(By.CSS_SELECTOR, "#compose button").click()
    seq = loop.run(ann.until(lambda m: m["type"] == "chat" and m.get("text") == "after the refusal"))["seq"]
    wait(bob, lambda d: "pending" not in message(d, seq).get_attribute("class"))
    texts = [e.text for e in bob.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq] .body")]
    assert texts == ["from Ann", "after the refusal"], texts
    assert len(bob.find_elements(By.CSS_SELECTOR, "#messages .msg.pending")) == 1   # the refused one, said so


def test_a_retention_gap_is_noted_and_the_rest_is_shown(loop, browsers, tmp_path):
    """Retention deletes part of what two offline pages missed, and the in-memory resume window is too
    small to serve the rest: on resume the hub sends `reset` naming the deleted range, then what the
    store still has. Both pages (the host's, with a credential, and a guest's) show it in order, before
    what comes live, with a note where the gap is."""
    hub2 = conftest.Hub("--threads", "2", "--admin-key", ADMIN_KEY, "--retention-events", "6", "--retention-interval", "0.2",
                        "--resume-window", "2", "--reconnect-grace", "120", data_dir=str(tmp_path / "reset")).start()
    try:
        info = create_session(hub2, title="Reset")
        code = info["code"]
        ann = loop.run(Member.join(hub2, code, "Ann", client_id="ann-py4"))
        host, guest = browsers(), browsers()
        host.get(f"{hub2.http}/")
        host.execute_script("sessionStorage.setItem(arguments[0], arguments[1])", "collabhub.host." + code, info["host_key"])
        host.get(f"{hub2.http}/?code={code}&name=Host")
        guest.get(f"{hub2.http}/?code={code}&name=Gus")
        for d in (host, guest):
            wait(d, lambda x: x.find_element(By.ID, "state").text == "open")
        # Both pages go offline; their reconnect waits until the test calls it.
        for d in (host, guest):
            d.execute_script("const c = window.collab; c.schedule = (fn) => { window.reconnect = fn; }; c.ws.close(4999);")
            wait(d, lambda x: x.find_element(By.ID, "state").text == "offline")
        seen = max(d.execute_script("return window.collab.seq") for d in (host, guest))

        async def talk():
            for i in range(10):
                await ann.chat(f"r{i}", f"r{i}")
        loop.run(talk())

        def trimmed():
            events = transcript(hub2, code)
            # Retention deletes in passes: wait for it to be done (the newest 6 kept).
            return events if len(events) == 6 and events[0]["seq"] > seen + 1 else None
        kept = [e["text"] for e in eventually(trimmed, what="retention") if e["type"] == "chat"]
        assert kept == [f"r{i}" for i in range(4, 10)], kept

        for d in (host, guest):
            d.execute_script("window.reconnect()")
            wait(d, lambda x: x.find_element(By.ID, "state").text == "open")
        loop.run(ann.chat("live", "after the reset"))

        # The hub says what retention deleted and sends what the store still has: both pages show the
        # six kept messages and the live one, in order, with a note where the gap is.
        expected = kept + ["after the reset"]
        for d in (host, guest):
            wait(d, lambda x: [e.text for e in x.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq] .body")] == expected)
            assert "deleted by the session's retention" in d.find_element(By.ID, "messages").text
        shot(host, "room-reset-loaded.png")
        assert guest.execute_script("return window.collab.seq") == host.execute_script("return window.collab.seq")
    finally:
        hub2.stop()


# ---------------------------------------------------------------------------------------------------
# Refusals stay on the page with a next step; invite, host End and Remove; viewers and ended sessions.

JWT_SECRET = "room-jwt-secret-0123456789abcdef"


def member_token(secret=JWT_SECRET, **claims):
    import base64
    import hashlib
    import hmac
    import time as _time
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    now = int(_time.time())
    c = {"sub": "u-" + str(now), "name": "Tess", "iat": now, "exp": now + 600, **claims}
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(c).encode())
    return f"{head}.{body}.{b64(hmac.new(secret.encode(), f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


@pytest.fixture(scope="module")
def jwt_hub(tmp_path_factory):
    """A closed hub with token keys: sessions admit only people with a token unless they allow guests."""
    h = conftest.Hub("--threads", "2", "--admin-key", ADMIN_KEY, "--jwt-secret", JWT_SECRET,
                     data_dir=str(tmp_path_factory.mktemp("jwt"))).start()
    yield h
    assert h.alive(), h.output()
    h.stop()


def click(driver, css):
    """Clicks what `css` finds, again if a redraw (the people list's, at every presence change) replaced it."""
    def go(d):
        d.find_element(By.CSS_SELECTOR, css).click()
        return True
    wait(driver, go)


def alert_text(driver):
    box = driver.find_element(By.ID, "alert")
    return box.text if box.is_displayed() else ""


def test_a_wrong_code_stays_said_with_a_way_back(hub, browsers):
    d = browsers()
    d.get(f"{hub.http}/?code=ZZZZZZZZ&name=Bob")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "refused")
    text = alert_text(d)
    assert "No session has the code ZZZZZZZZ" in text and "The hub said" in text, text
    assert not d.find_element(By.ID, "room-main").is_displayed()   # no dead room under it
    shot(d, "room-wrong-code.png")
    time.sleep(7)   # the old notice faded after 6 s: this one stays until acted on
    assert "ZZZZZZZZ" in alert_text(d) and d.find_element(By.ID, "state").text == "refused"
    d.find_element(By.LINK_TEXT, "Back to the lobby").click()
    wait(d, lambda x: x.find_element(By.ID, "lobby").is_displayed())
    assert not d.find_element(By.ID, "room").is_displayed()
    # Not a code at all (letters outside the alphabet): the lobby says so, naming it.
    d.get(f"{hub.http}/?code=WRONG123&name=Bob")
    wait(d, lambda x: "WRONG123" in x.find_element(By.ID, "join-error").text)
    assert "not a session code" in d.find_element(By.ID, "join-error").text
    assert d.find_element(By.ID, "lobby").is_displayed() and d.find_element(By.ID, "code").get_attribute("value") == "WRONG123"


def test_a_closed_hubs_refusals_are_shown_with_what_to_ask_for(jwt_hub, browsers):
    code = create_session(jwt_hub, title="Invite only")["code"]   # guest_policy deny: the hub has token keys
    d = browsers()
    cases = [
        ("", "admits only invited people", "#token="),
        ("#token=" + member_token(session=code, role="editor", exp=int(time.time()) - 600), "expired", "new invite link"),
        ("#token=" + member_token(secret="another-secret-0123456789abcdef", session=code, role="editor"),
         "not accepted", "new invite link"),
    ]
    for fragment, what, next_step in cases:
        d.get("about:blank")
        d.get(f"{jwt_hub.http}/?code={code}&name=Gus{fragment}")
        wait(d, lambda x: x.find_element(By.ID, "state").text == "refused")
        text = alert_text(d)
        assert what in text and next_step in text and "The hub said" in text, text
        time.sleep(0.5)
        assert d.find_element(By.ID, "state").text == "refused" and what in alert_text(d)
        shot(d, f"room-refused-{what.split()[0]}.png")
    # A valid token gets in.
    d.get("about:blank")
    d.get(f"{jwt_hub.http}/?code={code}&name=Tess#token={member_token(session=code, role='editor')}")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "open")
    assert alert_text(d) == ""


def test_invite_host_end_and_remove_and_an_ended_room(hub, loop, browsers):
    info = create_session(hub, title="Retro")
    code = info["code"]
    host = browsers()
    host.get(f"{hub.http}/")
    host.execute_script("sessionStorage.setItem(arguments[0], arguments[1])", "collabhub.host." + code, info["host_key"])
    host.get(f"{hub.http}/?code={code}&name=Hana")
    wait(host, lambda d: d.find_element(By.ID, "state").text == "open")

    # Invite: the room's link (no name, no credential) is shown and copied.
    host.find_element(By.ID, "invite").click()
    wait(host, lambda d: d.find_element(By.ID, "invite-link").is_displayed())
    link = host.find_element(By.ID, "invite-link").get_attribute("value")
    assert link == f"{hub.http}/?code={code}"
    wait(host, lambda d: d.find_element(By.ID, "invite-status").text)
    # Whoever opens it lands in the lobby with the code filled in, names themselves, presses Enter.
    bob = browsers()
    bob.get(link)
    assert bob.find_element(By.ID, "code").get_attribute("value") == code
    assert code in bob.find_element(By.ID, "invited").text
    from selenium.webdriver.common.keys import Keys
    bob.find_element(By.ID, "join-name").send_keys("Bob" + Keys.ENTER)
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "open")
    ann = loop.run(Member.join(hub, code, "Ann", client_id="ann-end"))

    # Roles beside names; the host has Remove beside the others, the others have none.
    wait(host, lambda d: person(d, ann.id) is not None and len(d.find_elements(By.CSS_SELECTOR, "#avatars .avatar")) == 3)
    assert host.find_element(By.XPATH, "//li[contains(@class,'avatar')][.//span[contains(.,'Hana (you)')]]//span[contains(@class,'role')]").text == "host"
    assert person(host, ann.id).find_element(By.CSS_SELECTOR, ".role").text == "editor"
    assert person(host, ann.id).find_element(By.CSS_SELECTOR, "button[data-remove]").get_attribute("aria-label") == "Remove Ann from the session"
    wait(bob, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#avatars .avatar")) == 3)
    assert bob.find_elements(By.CSS_SELECTOR, "#avatars button[data-remove]") == []
    assert not bob.find_element(By.ID, "end").is_displayed() and host.find_element(By.ID, "end").is_displayed()

    # One's own message has its time at once.
    host.find_element(By.ID, "text").send_keys("welcome" + Keys.ENTER)
    own = host.find_element(By.XPATH, "//div[@id='messages']//div[contains(@class,'msg')][.//div[@class='text' and text()='welcome']]")
    assert own.find_element(By.CSS_SELECTOR, ".time").text
    wait(host, lambda d: d.execute_script("return window.collab.pending.size") == 0)
    wait(host, lambda d: d.find_elements(By.CSS_SELECTOR, "#messages button[data-action=edit]"))
    # Delete and Redact are explained.
    help_text = host.execute_script("return document.querySelector('details.help').textContent")
    assert "Delete" in help_text and "Redact" in help_text and "for good" in help_text
    assert "shows as deleted" in host.find_element(By.CSS_SELECTOR, "#messages button[data-action=delete]").get_attribute("title")
    assert "gone from the record" not in help_text and "message deleted" in help_text

    # Remove Bob: his page says so, for good, and his composer is off.
    bob_id = bob.execute_script("return window.collab.you.id")
    click(host, f'#avatars button[data-remove="{bob_id}"]')
    WebDriverWait(host, 5).until(EC.alert_is_present())
    host.switch_to.alert.accept()
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "removed")
    assert "removed you" in alert_text(bob) and not bob.find_element(By.ID, "text").is_enabled()
    wait(host, lambda d: person(d, bob_id) is None)
    shot(bob, "room-removed.png")

    # End: everyone hears it; the host's composer and Edit/Delete buttons are off.
    host.find_element(By.ID, "end").click()
    WebDriverWait(host, 5).until(EC.alert_is_present())
    host.switch_to.alert.accept()
    loop.run(ann.until(lambda m: m["type"] == "session_ended", what="session_ended"))
    wait(host, lambda d: d.find_element(By.ID, "state").text == "ended")
    assert "has ended" in alert_text(host) and "Play it back" in alert_text(host)
    assert not host.find_element(By.ID, "text").is_enabled() and not host.find_element(By.ID, "send").is_enabled()
    assert "ended" in host.find_element(By.ID, "compose-reason").text
    assert host.find_elements(By.CSS_SELECTOR, "#messages button") == []
    assert host.find_elements(By.CSS_SELECTOR, "#avatars button") == []
    assert not host.find_element(By.ID, "end").is_displayed()
    shot(host, "room-ended.png")
    leaves = [l for e in transcript(hub, code) if e["type"] == "presence" for l in e["leaves"]]
    assert any(l["id"] == bob_id and l["reason"] == "removed" for l in leaves), leaves


def test_a_viewer_cannot_write_and_is_told_why(jwt_hub, browsers):
    code = create_session(jwt_hub, title="Watch only")["code"]
    d = browsers()
    d.get(f"{jwt_hub.http}/?code={code}&name=Vic#token={member_token(session=code, role='viewer', name='Vic')}")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "open")
    wait(d, lambda x: not x.find_element(By.ID, "text").is_enabled())
    assert not d.find_element(By.ID, "send").is_enabled()
    reason = d.find_element(By.ID, "compose-reason")
    assert reason.is_displayed() and "viewer" in reason.text
    wait(d, lambda x: "viewer" in x.find_element(By.CSS_SELECTOR, "#avatars .role").text)
    # Moving over the board sends nothing a viewer may not send: no refusal comes back.
    ActionChains(d).move_to_element(d.find_element(By.ID, "surface")).move_by_offset(20, 10).perform()
    time.sleep(1)
    assert alert_text(d) == ""
    shot(d, "room-viewer.png")
