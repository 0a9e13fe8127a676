"""The pages in a real browser: headless Chromium driven by Selenium (Debian's chromium, chromium-driver,
python3-selenium). Screenshots go to test-output/screenshots/."""
import json
import os
import shutil
import time

import pytest

import conftest
from hubclient import api, create_session

# The operator's admin key (a hub with one is not in open mode).
WEB_KEY = "web-admin-key-0123456789"

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = os.path.join(conftest.ROOT, "test-output", "screenshots")
pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None, reason="chromium-driver not installed")


def browser():
    opts = webdriver.ChromeOptions()
    # Several windows at once: keep Chromium from throttling timers and rendering in the ones it
    # considers backgrounded or occluded, which would make a live page look stale.
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows"]:
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


@pytest.fixture(scope="module")
def web_hub(tmp_path_factory):
    hub = conftest.Hub("--threads", "2", "--admin-key", WEB_KEY, data_dir=str(tmp_path_factory.mktemp("web"))).start()
    yield hub
    assert hub.alive(), hub.output()
    hub.stop()


@pytest.fixture
def browsers():
    made = []

    def make():
        b = browser()
        made.append(b)
        return b
    yield make
    for b in made:
        b.quit()


def wait(driver, condition, timeout=15):
    # The pages redraw by replacing elements: one found just before a redraw is stale, so look again.
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition(d))


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SHOTS, name))


# Debian packages no axe-core (no node-axe-core or libjs-axe; checked with apt-cache search), so the pages'
# accessibility is checked here by the rules that matter most to them: every input, select and textarea
# has a label (a <label for>, a wrapping <label>, aria-label or aria-labelledby); visible text has a
# contrast of at least 4.5:1 (3:1 for large text) against the backgrounds it sits on, opacity included;
# nothing is wider than the window.
A11Y_JS = r"""
const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const p = m[1].split(',').map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
const over = (top, bottom) => ({ r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
  b: top.b * top.a + bottom.b * (1 - top.a), a: 1 });
const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
const visible = (e) => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
function background(e) {
  const layers = []; let opacity = 1;
  for (let n = e; n && n.nodeType === 1; n = n.parentElement) {
    const s = getComputedStyle(n); opacity *= Number(s.opacity);
    const c = parse(s.backgroundColor); if (c && c.a > 0) layers.push(c);
  }
  let bg = { r: 255, g: 255, b: 255, a: 1 };
  for (const c of layers.reverse()) bg = over(c, bg);
  return { bg, opacity };
}
const unlabelled = [], lowContrast = [];
for (const e of document.querySelectorAll('input, select, textarea')) {
  if (e.type === 'hidden' || !visible(e)) continue;
  const named = e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.closest('label')
    || (e.id && document.querySelector(`label[for="${CSS.escape(e.id)}"]`));
  if (!named) unlabelled.push(e.outerHTML.slice(0, 120));
}
for (const e of document.querySelectorAll('body *')) {
  const text = [...e.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
  if (!text || !visible(e) || e.closest('[aria-hidden="true"]') || e.closest('option') || e.disabled || e.closest(':disabled')) continue;
  const s = getComputedStyle(e);
  const { bg, opacity } = background(e);
  const fg = parse(s.color); fg.a *= opacity;
  const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
  const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
  const r = ratio(over(fg, bg), bg);
  if (r < need) lowContrast.push(`${r.toFixed(2)}:1 ${e.tagName.toLowerCase()}.${e.className} "${text.slice(0, 40)}"`);
}
return { unlabelled, lowContrast, scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth,
  live: [...document.querySelectorAll('[aria-live], [role=log], [role=status], [role=alert]')].map((e) => e.id) };
"""


def a11y(driver):
    """The page's unlabelled inputs, low-contrast text, width and live regions (ids)."""
    return driver.execute_script(A11Y_JS)


def assert_accessible(driver, where, live=()):
    r = a11y(driver)
    assert r["unlabelled"] == [], f"{where}: inputs without a label: {r['unlabelled']}"
    assert r["lowContrast"] == [], f"{where}: text below 4.5:1: {r['lowContrast']}"
    assert r["scrollWidth"] <= r["width"], f"{where}: {r['scrollWidth']} px wide in a {r['width']} px window"
    for region in live:
        assert region in r["live"], f"{where}: #{region} is no live region ({r['live']})"
    return r


KEYBOARD_JS = r"""
const ok = (e) => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && !e.disabled && !e.closest('[hidden]'); };
// Every control (a tabindex of -1 on one is a failure, not an excuse), and whatever else offers itself to Tab.
const controls = 'a[href], button, input, select, textarea, summary, [data-action], [data-remove], [onclick]';
const all = [...document.querySelectorAll(controls + ', [tabindex]')]
  .filter((e) => ok(e) && (e.matches(controls) || e.tabIndex >= 0));
all.forEach((e, i) => e.dataset.kbd = String(i));
return all.length;
"""


def keyboard_reach(driver):
    """Tabs through the page: the controls that got focus, and those (visible, enabled) that never did."""
    from selenium.webdriver.common.keys import Keys
    n = driver.execute_script(KEYBOARD_JS)
    driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    reached = set()
    for _ in range(n + 5):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        k = driver.execute_script("return document.activeElement && document.activeElement.dataset.kbd")
        if k is not None:
            reached.add(k)
    missed = driver.execute_script(
        "return [...document.querySelectorAll('[data-kbd]')].filter((e) => !arguments[0].includes(e.dataset.kbd))"
        ".map((e) => e.outerHTML.slice(0, 100))", sorted(reached))
    return missed


def test_two_windows_collaborate_and_resume(web_hub, browsers):
    code = create_session(web_hub, title="Bug bash")["code"]
    ann, bob = browsers(), browsers()
    ann.get(f"{web_hub.http}/?code={code}&name=Ann")
    bob.get(f"{web_hub.http}/?code={code}&name=Bob")
    for b in (ann, bob):
        wait(b, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#avatars .avatar")) == 2)
        assert b.find_element(By.ID, "state").text == "open"
        assert b.find_element(By.ID, "room-title").text == "Bug bash"

    # Cursor: Ann moves over the surface; Bob sees her pointer with her name.
    surface = ann.find_element(By.ID, "surface")
    ActionChains(ann).move_to_element_with_offset(surface, -100, -50).move_by_offset(30, 20).perform()
    wait(bob, lambda d: d.find_elements(By.CSS_SELECTOR, "#surface .cursor"))
    assert "Ann" in bob.find_element(By.CSS_SELECTOR, "#surface .cursor").text

    # Typing, then a chat message and a code block.
    ann.find_element(By.ID, "text").send_keys("hello bob")
    wait(bob, lambda d: "Ann is typing" in d.find_element(By.ID, "typing").text)
    ann.find_element(By.CSS_SELECTOR, "#compose button").click()
    wait(bob, lambda d: "hello bob" in d.find_element(By.ID, "messages").text)
    wait(bob, lambda d: d.find_element(By.ID, "typing").text == "")
    ann.find_element(By.ID, "text").send_keys("```swift print(\"hi\")```")
    ann.find_element(By.CSS_SELECTOR, "#compose button").click()
    wait(bob, lambda d: d.find_elements(By.CSS_SELECTOR, "#messages pre"))
    assert bob.find_element(By.CSS_SELECTOR, "#messages pre").text == 'print("hi")'
    ActionChains(bob).move_to_element_with_offset(bob.find_element(By.ID, "surface"), 40, 60).perform()
    wait(ann, lambda d: d.find_elements(By.CSS_SELECTOR, "#surface .cursor"))
    shot(ann, "room.png")

    # Forced disconnect: Bob's socket drops; he sends while offline; Ann writes meanwhile.
    # The first reconnect attempt waits a random time up to 250 ms, so the outage could end before
    # the page is polled: pin the jitter to its maximum at the fourth attempt (2 s) and record states.
    bob.execute_script("const c = window.collab; window.seenStates = [];"
                       "c.addEventListener('state', (e) => window.seenStates.push(e.detail));"
                       "c.random = () => 1; c.attempt = 3; c.ws.close(4999);")
    wait(bob, lambda d: d.find_element(By.ID, "state").text in ("offline", "resuming"))
    bob.find_element(By.ID, "text").send_keys("sent while offline")
    bob.find_element(By.CSS_SELECTOR, "#compose button").click()
    ann.find_element(By.ID, "text").send_keys("written during the outage")
    ann.find_element(By.CSS_SELECTOR, "#compose button").click()
    wait(bob, lambda d: d.find_element(By.ID, "state").text == "open", timeout=20)
    assert bob.execute_script("return window.seenStates") == ["offline", "resuming", "open"]
    wait(bob, lambda d: "written during the outage" in d.find_element(By.ID, "messages").text)
    wait(ann, lambda d: "sent while offline" in d.find_element(By.ID, "messages").text)
    wait(bob, lambda d: d.execute_script("return window.collab.pending.size") == 0)
    # No duplicates, and Ann never saw Bob leave (the reconnect was within the grace period).
    status, raw = api(web_hub, "GET", f"/api/sessions/{code}/transcript?format=ndjson")
    events = [json.loads(l) for l in raw.decode().splitlines()]
    texts = [e.get("text") for e in events if e["type"] == "chat"]
    assert texts.count("sent while offline") == 1 and texts.count("written during the outage") == 1
    assert not any(e["type"] == "presence" and e["leaves"] for e in events)
    assert len(ann.find_elements(By.CSS_SELECTOR, "#avatars .avatar")) == 2
    shot(bob, "room-after-resume.png")


def test_dashboard_updates_live(web_hub, browsers):
    d = browsers()
    d.get(f"{web_hub.http}/dashboard?owner=web-ci#key={WEB_KEY}")   # the page takes its credential from the fragment
    wait(d, lambda x: x.find_element(By.ID, "state").text == "open")
    key = {"X-API-Key": WEB_KEY}
    api(web_hub, "POST", "/api/runs/nightly-42/events", {"type": "started", "owner": "web-ci", "name": "Nightly e2e"}, key)
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, '[data-run="nightly-42"]'))
    for body in [{"type": "step_started", "step": "build"}, {"type": "log", "line": "compiling 214 files"},
                 {"type": "progress", "percent": 35, "message": "building"}, {"type": "step_completed", "step": "build"},
                 {"type": "step_started", "step": "test"}, {"type": "log", "line": "1 failure in checkout.spec"},
                 {"type": "step_failed", "step": "test", "error": "1 failure"}]:
        assert api(web_hub, "POST", "/api/runs/nightly-42/events", body, key)[0] == 202
    api(web_hub, "POST", "/api/runs/deploy-7/events", {"type": "started", "owner": "web-ci", "name": "Deploy"}, key)
    api(web_hub, "POST", "/api/runs/deploy-7/events", {"events": [{"type": "step_started", "step": "migrate"},
        {"type": "step_completed", "step": "migrate"}, {"type": "step_started", "step": "release"},
        {"type": "progress", "percent": 70, "message": "rolling out"}]}, key)
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, '[data-run="nightly-42"] .step')) == 2)
    api(web_hub, "POST", "/api/runs/nightly-42/events", {"type": "completed", "outcome": "failed"}, key)
    wait(d, lambda x: x.find_element(By.CSS_SELECTOR, '[data-run="nightly-42"] .badge').text == "failed")
    # Read inside `wait`: a card drawn anew between finding it and reading it is looked up again.
    card = wait(d, lambda x: x.find_element(By.CSS_SELECTOR, '[data-run="nightly-42"]').text)
    assert "build" in card and "1 failure in checkout.spec" in card
    wait(d, lambda x: "rolling out" in x.find_element(By.CSS_SELECTOR, '[data-run="deploy-7"]').text)
    shot(d, "dashboard.png")


def test_replay_plays_the_transcript(web_hub, browsers):
    import asyncio
    from hubclient import Client

    code = create_session(web_hub, title="Replayed")["code"]

    async def record():
        a = await Client.connect(web_hub, code)
        await a.join("Ann")
        for i, text in enumerate(["first", "second", "third"]):
            await a.send({"type": "chat", "id": str(i), "text": text})
            await a.expect("ack")
            await asyncio.sleep(0.2)
        await a.send({"type": "chat", "id": "c", "kind": "code", "code": {"language": "js", "source": "console.log(1)"}})
        await a.expect("ack")
        await a.send({"type": "chat", "id": "typo", "text": "helo wrold"})
        typo = (await a.expect("ack"))["seq"]
        await a.send({"type": "chat_edit", "id": "e", "seq": typo, "text": "hello world"})
        await a.expect("ack", skip=("presence", "chat_edit"))
        await a.send({"type": "leave"})
        await asyncio.sleep(0.2)
        await Client.close_all()
    asyncio.run(record())
    r = browsers()
    r.get(f"{web_hub.http}/replay/{code}")
    wait(r, lambda d: d.find_element(By.ID, "state").text == "finished", timeout=15)
    text = r.find_element(By.ID, "messages").text
    assert text.index("first") < text.index("second") < text.index("third")
    assert "console.log(1)" in text and "Ann joined" in text
    # Edits show as such (in place, and as a line without seq numbers), and leaves name who left.
    assert "edited their message: hello world" in text and "helo wrold" not in text and "Ann left" in text, text
    assert "#" not in text, text
    shot(r, "replay.png")
    # A finished replay gave up its slot: Play starts a new one from the beginning (not a seek, which the
    # hub would answer replay_finished).
    shown = len(r.execute_script("return window.replay.shown"))
    r.find_element(By.ID, "play").click()
    wait(r, lambda d: len(d.execute_script("return window.replay.shown")) >= 2 * shown
         and d.find_element(By.ID, "state").text == "finished", timeout=15)
    text = r.find_element(By.ID, "messages").text
    assert text.index("first") < text.index("second") < text.index("third"), text


def test_lobby_is_a_form_says_what_collabhub_is_and_has_a_favicon(web_hub, browsers):
    import urllib.request
    from selenium.webdriver.common.keys import Keys
    for path in ("/favicon.ico", "/favicon.svg"):
        with urllib.request.urlopen(web_hub.http + path, timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "image/svg+xml" and r.read().startswith(b"<svg")
            assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["X-Frame-Options"] == "DENY"
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    d = browsers()
    d.get(web_hub.http + "/")
    assert "CollabHub is" in d.find_element(By.CSS_SELECTOR, ".intro").text
    hrefs = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "#lobby nav a")]
    assert web_hub.http + "/dashboard" in hrefs and web_hub.http + "/admin" in hrefs
    assert d.find_element(By.CSS_SELECTOR, 'link[rel="icon"]').get_attribute("href") == web_hub.http + "/favicon.svg"
    # Placeholders are examples, in italics, never something that looks typed in.
    for e in d.find_elements(By.CSS_SELECTOR, "#lobby input"):
        assert e.get_attribute("placeholder").startswith("e.g. "), e.get_attribute("id")
    # Creating on a closed hub without a key: what credential, and how to give it to the page.
    d.find_element(By.ID, "title").send_keys("Enter test" + Keys.ENTER)
    wait(d, lambda x: "#key=" in x.find_element(By.ID, "create-error").text)
    assert "sessions:create" in d.find_element(By.ID, "create-error").text
    assert d.find_element(By.ID, "lobby").is_displayed()
    shot(d, "lobby-create-refused.png")
    # With the key in the fragment, Enter in the name field creates the session and enters it as host.
    d.get("about:blank")   # (only the fragment would change: no new page)
    d.get(f"{web_hub.http}/#key={WEB_KEY}")
    d.find_element(By.ID, "title").send_keys("Enter test")
    d.find_element(By.ID, "create-name").send_keys("Ann" + Keys.ENTER)
    wait(d, lambda x: x.find_element(By.ID, "state").text == "open")
    assert d.find_element(By.ID, "room-title").text == "Enter test"
    wait(d, lambda x: "host" in x.find_element(By.CSS_SELECTOR, "#avatars .avatar .role").text)
    # Joining by code: Enter in the name field joins.
    code = create_session(web_hub, title="Joined by Enter")["code"]
    j = browsers()
    j.get(web_hub.http + "/")
    j.find_element(By.ID, "code").send_keys(code[:4] + "-" + code[4:].lower())
    j.find_element(By.ID, "join-name").send_keys("Bob" + Keys.ENTER)
    wait(j, lambda x: x.find_element(By.ID, "state").text == "open")
    assert j.find_element(By.ID, "room-title").text == "Joined by Enter" and j.find_element(By.ID, "room-code").text == code


def record_session(hub, code, cursor_points=0):
    """Ann says three things, edits one and deletes one; Bob joins and leaves. Returns the chat seqs."""
    import asyncio
    from hubclient import Client

    async def record():
        a = await Client.connect(hub, code)
        await a.join("Ann")
        seqs = []
        for i, text in enumerate(["first", "helo wrold", "secret snippet"]):
            await a.send({"type": "chat", "id": str(i), "text": text})
            seqs.append((await a.expect("ack"))["seq"])
            for p in range(cursor_points):
                await a.send({"type": "cursor", "x": 40 + 30 * p, "y": 30 + 20 * p})
                await asyncio.sleep(0.25)
        await a.send({"type": "chat_edit", "id": "e", "seq": seqs[1], "text": "hello world"})
        await a.expect("ack", skip=("presence", "chat_edit", "cursors"))
        await a.send({"type": "chat_delete", "id": "d", "seq": seqs[2]})
        await a.expect("ack", skip=("presence", "chat_delete", "cursors"))
        await a.send({"type": "leave"})
        await asyncio.sleep(0.2)
        await Client.close_all()
        return seqs
    return asyncio.run(record())


@pytest.fixture(scope="module")
def jwt_hub(tmp_path_factory):
    """A closed hub with token keys (sessions admit no guests unless they say so) and cursor recording."""
    hub = conftest.Hub("--threads", "2", "--admin-key", WEB_KEY, "--jwt-secret", "replay-share-secret-0123456789",
                       "--record-cursors", data_dir=str(tmp_path_factory.mktemp("jwt"))).start()
    yield hub
    assert hub.alive(), hub.output()
    hub.stop()


def test_replay_refusals_are_shown_not_loading(jwt_hub, browsers):
    web_hub = jwt_hub
    code = create_session(web_hub, title="Refused replay", guest_policy="allow")["code"]
    record_session(web_hub, code)
    api(web_hub, "PATCH", f"/api/sessions/{code}", {"guest_policy": "deny"})
    d = browsers()
    # A malformed share token: the hub's words and what to ask for, not "loading".
    d.get(f"{web_hub.http}/replay/{code}#token=not-a-token")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "refused")
    alert = d.find_element(By.ID, "alert").text
    assert "not valid" in alert and "new share link" in alert and "The hub said" in alert, alert
    shot(d, "replay-bad-token.png")
    # No credential on a closed hub: which credentials a replay takes.
    d.get(f"{web_hub.http}/replay/{code}")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "refused")
    alert = d.find_element(By.ID, "alert").text
    assert "needs a credential" in alert and "share link" in alert and "transcripts:read" in alert, alert
    # An unknown code.
    d.get(f"{web_hub.http}/replay/ZZZZZZZZ#key={WEB_KEY}")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "refused")
    assert "No session has the code ZZZZZZZZ" in d.find_element(By.ID, "alert").text
    time.sleep(1)
    assert d.find_element(By.ID, "alert").is_displayed()


def test_replay_cursors_seek_while_paused_deleted_and_share(jwt_hub, tmp_path, browsers):
    hub = jwt_hub
    code = create_session(hub, title="Played back", guest_policy="allow")["code"]
    seqs = record_session(hub, code, cursor_points=3)
    d = browsers()
    d.get(f"{hub.http}/replay/{code}#key={WEB_KEY}")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "finished", timeout=20)
    # The cursor panel has room, and the recorded pointers were drawn in it.
    assert d.find_element(By.ID, "surface").size["height"] > 50
    assert d.execute_script("return window.replay.cursors || 0") > 0
    # Edited in place and said without seq numbers; the deleted message shows as deleted.
    text = d.find_element(By.ID, "messages").text
    assert "hello world" in text and "edited their message" in text and "#" not in text, text
    assert "secret snippet" not in text and "message deleted" in text, text
    deleted = d.find_element(By.CSS_SELECTOR, f'#messages .msg[data-seq="{seqs[2]}"]')
    assert deleted.find_element(By.CSS_SELECTOR, ".body").text == "message deleted"
    shot(d, "replay-finished.png")

    # Seek while paused: the transcript as it stood there, and the position; Play goes on from there.
    Select(d.find_element(By.ID, "speed")).select_by_value("1")
    d.find_element(By.ID, "play").click()   # a new replay from the start, at the original pace
    wait(d, lambda x: x.find_element(By.ID, "state").text == "playing")
    d.find_element(By.ID, "play").click()   # pause
    wait(d, lambda x: x.find_element(By.ID, "state").text == "paused")
    d.execute_script("const t = document.getElementById('timeline'); t.value = arguments[0];"
                     "t.dispatchEvent(new Event('change'))", seqs[2])
    wait(d, lambda x: x.find_element(By.ID, "position").text.startswith(f"{seqs[2]} / "))
    shown = [int(e.get_attribute("data-seq")) for e in d.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq]")]
    assert shown and max(shown) < seqs[2] and seqs[0] in shown, shown
    time.sleep(0.5)
    assert d.find_element(By.ID, "state").text == "paused"
    assert d.find_element(By.ID, "position").text.startswith(f"{seqs[2]} / ")
    shot(d, "replay-seek-paused.png")
    Select(d.find_element(By.ID, "speed")).select_by_value("20")
    d.find_element(By.ID, "play").click()   # resume from the seek
    wait(d, lambda x: x.find_element(By.ID, "state").text == "finished", timeout=20)
    shown = [int(e.get_attribute("data-seq")) for e in d.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq]")]
    assert shown == sorted(set(shown)) and seqs[2] in shown, shown

    # Ahead of what the page has received (as if it had just opened): the skipped events come from the
    # transcript, so the transcript up to the position is whole.
    Select(d.find_element(By.ID, "speed")).select_by_value("1")
    d.find_element(By.ID, "play").click()
    wait(d, lambda x: x.find_element(By.ID, "state").text == "playing")
    d.find_element(By.ID, "play").click()
    wait(d, lambda x: x.find_element(By.ID, "state").text == "paused")
    d.execute_script("window.replay.events.clear(); const t = document.getElementById('timeline');"
                     "t.value = t.max; t.dispatchEvent(new Event('change'))")
    last = int(d.find_element(By.ID, "timeline").get_attribute("max"))
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#messages .msg[data-seq]")) == last - 1)
    text = d.find_element(By.ID, "messages").text
    assert "Ann joined" in text and "first" in text and "hello world" in text and "message deleted" in text, text
    Select(d.find_element(By.ID, "speed")).select_by_value("20")
    d.find_element(By.ID, "play").click()
    wait(d, lambda x: x.find_element(By.ID, "state").text == "finished", timeout=20)

    # A share link: made with the page's credential, shown with a copy button, and it plays.
    d.find_element(By.ID, "share").click()
    wait(d, lambda x: x.find_element(By.ID, "share-url").get_attribute("value"))
    link = d.find_element(By.ID, "share-url").get_attribute("value")
    assert link.startswith(f"{hub.http}/replay/{code}#token="), link
    assert d.find_element(By.ID, "share-copy").is_displayed() and d.find_element(By.ID, "share-status").text
    shot(d, "replay-share-link.png")
    v = browsers()
    v.get(link)
    wait(v, lambda x: x.find_element(By.ID, "state").text == "finished", timeout=20)
    assert "hello world" in v.find_element(By.ID, "messages").text
    assert not v.find_element(By.ID, "share").is_displayed()   # a share link makes no share links

    # A hub without --jwt-secret cannot sign links: its 409 is shown with its message.
    d2 = browsers()
    plain = conftest.Hub("--threads", "2", "--admin-key", WEB_KEY, data_dir=str(tmp_path / "noshare")).start()
    try:
        code2 = create_session(plain, title="x")["code"]
        d2.get(f"{plain.http}/replay/{code2}#key={WEB_KEY}")
        wait(d2, lambda x: x.find_element(By.ID, "state").text in ("playing", "finished"))
        d2.find_element(By.ID, "share").click()
        wait(d2, lambda x: x.find_element(By.ID, "share-error").text)
        assert "cannot make share links" in d2.find_element(By.ID, "share-error").text
        assert "jwt-secret" in d2.find_element(By.ID, "share-error").text
    finally:
        plain.stop()


def test_replay_shows_a_deleted_message_as_deleted_from_the_start(jwt_hub, browsers):
    """The deletion comes seconds after the message, yet playback never shows its text: the row is drawn
    "message deleted" when it first appears, before the deletion is played (every row the page adds is
    logged as it is added, from before the page's own script runs)."""
    import asyncio
    from hubclient import Client
    hub = jwt_hub
    code = create_session(hub, title="Deleted in playback", guest_policy="allow")["code"]
    secret = "doomed-" + os.urandom(5).hex()

    async def record():
        a = await Client.connect(hub, code)
        await a.join("Ann")
        await a.send({"type": "chat", "id": "1", "text": "kept"})
        await a.expect("ack")
        await a.send({"type": "chat", "id": "2", "text": f"I should not have said {secret}"})
        seq = (await a.expect("ack"))["seq"]
        await a.send({"type": "chat_edit", "id": "e", "seq": seq, "text": f"nor {secret} again"})
        await a.expect("ack", skip=("presence", "chat_edit", "cursors"))
        await asyncio.sleep(4)   # 0.2 s of playback at 20x: the row is on screen well before the deletion
        await a.send({"type": "chat_delete", "id": "d", "seq": seq})
        await a.expect("ack", skip=("presence", "chat_delete", "cursors"))
        await Client.close_all()
        return seq
    seq = asyncio.run(record())
    d = browsers()
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
        window.__added = [];
        new MutationObserver((list) => { for (const m of list) for (const n of m.addedNodes)
            if (n.nodeType === 1) window.__added.push([n.dataset?.seq || "", n.dataset?.type || "", n.textContent]);
        }).observe(document, { childList: true, subtree: true });"""})
    d.get(f"{hub.http}/replay/{code}#key={WEB_KEY}")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "finished", timeout=20)
    added = d.execute_script("return window.__added")
    assert not [a for a in added if secret in a[2]], [a for a in added if secret in a[2]]
    rows = [a for a in added if a[0] == str(seq)]
    assert rows and "message deleted" in rows[0][2], rows
    order = [(a[0], a[1]) for a in added if a[0]]
    first_row = order.index((str(seq), "chat"))
    deletion = next(i for i, a in enumerate(order) if a[1] == "chat_delete")
    assert first_row < deletion, order
    row = d.find_element(By.CSS_SELECTOR, f'#messages .msg[data-seq="{seq}"]')
    assert row.find_element(By.CSS_SELECTOR, ".body").text == "message deleted"
    assert "deleted" in row.get_attribute("class")
    text = d.find_element(By.ID, "messages").text
    assert secret not in text and "kept" in text and "deleted their message" in text, text
    shot(d, "replay-deleted-from-the-start.png")


def test_dashboard_needs_credential_lists_owners_and_finishes(web_hub, browsers):
    key = {"X-API-Key": WEB_KEY}
    # Without a credential on a closed hub: which credential, not a blank page under "open".
    d = browsers()
    d.get(f"{web_hub.http}/dashboard?owner=payments")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "refused")
    alert = d.find_element(By.ID, "alert").text
    assert "needs a credential" in alert and "watcher token" in alert and "runs:read" in alert, alert
    shot(d, "dashboard-no-credential.png")

    for run, owner in [("own-a1", "team-alpha"), ("own-b1", "team-beta")]:
        assert api(web_hub, "POST", f"/api/runs/{run}/events", {"type": "started", "owner": owner, "name": run}, key)[0] == 202
    # With a key: the owners it can watch are listed; picking one shows its runs.
    d.get(f"{web_hub.http}/dashboard#key={WEB_KEY}")
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, '#owners button[data-owner="team-beta"]'))
    owners = [b.get_attribute("data-owner") for b in d.find_elements(By.CSS_SELECTOR, "#owners button")]
    assert "team-alpha" in owners and "team-beta" in owners, owners
    d.find_element(By.CSS_SELECTOR, '#owners button[data-owner="team-beta"]').click()
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, '[data-run="own-b1"]'))
    assert not d.find_elements(By.CSS_SELECTOR, '[data-run="own-a1"]')

    # A run that fails a step and one that succeeds: final state, full bar, the error, the newest log line.
    events = [{"type": "step_started", "step": "unit tests"}, {"type": "step_failed", "step": "unit tests", "error": "3 tests failed"},
              {"type": "completed", "outcome": "failed"}]
    ok = [{"type": "step_started", "step": "package"}, {"type": "progress", "percent": 85, "message": "package in progress"}]
    ok += [{"type": "log", "line": f"package: line {i} ok"} for i in range(12)]
    ok += [{"type": "step_completed", "step": "package"}, {"type": "completed", "outcome": "succeeded"}]
    for run, batch in [("ci-901", events), ("deploy-41", ok)]:
        assert api(web_hub, "POST", f"/api/runs/{run}/events", {"type": "started", "owner": "team-beta", "name": run}, key)[0] == 202
        assert api(web_hub, "POST", f"/api/runs/{run}/events", {"events": batch}, key)[0] == 202
    wait(d, lambda x: x.find_element(By.CSS_SELECTOR, '[data-run="deploy-41"] .badge').text == "succeeded")
    wait(d, lambda x: x.find_element(By.CSS_SELECTOR, '[data-run="ci-901"] .badge').text == "failed")
    for run in ("deploy-41", "ci-901"):
        card = d.find_element(By.CSS_SELECTOR, f'[data-run="{run}"]')
        bar = card.find_element(By.CSS_SELECTOR, ".bar")
        assert bar.get_attribute("aria-valuenow") == "100"
        assert abs(bar.find_element(By.CSS_SELECTOR, "div").size["width"] - bar.size["width"]) <= 1
    deploy = d.find_element(By.CSS_SELECTOR, '[data-run="deploy-41"]')
    assert deploy.find_element(By.CSS_SELECTOR, ".summary").text.startswith("succeeded")
    assert "in progress" not in deploy.text
    assert "unit tests failed: 3 tests failed" in d.find_element(By.CSS_SELECTOR, '[data-run="ci-901"] .step-error').text
    # The newest log line is inside the log box's visible area.
    inside = d.execute_script("""const box = document.querySelector('[data-run="deploy-41"] .logs');
        const last = box.lastElementChild, b = box.getBoundingClientRect(), l = last.getBoundingClientRect();
        return [last.textContent, l.top >= b.top - 1 && l.bottom <= b.bottom + 1];""")
    assert inside == ["package: line 11 ok", True], inside
    shot(d, "dashboard-finished.png")


def hs256(secret, claims):
    import base64
    import hashlib
    import hmac
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    head, body = b64(b'{"alg":"HS256","typ":"JWT"}'), b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(hmac.new(secret.encode(), f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def test_dashboard_with_a_watcher_token_lists_its_owners(jwt_hub, browsers):
    key = {"X-API-Key": WEB_KEY}
    for run in ("tok-1", "tok-2"):
        assert api(jwt_hub, "POST", f"/api/runs/{run}/events", {"type": "started", "owner": "tok-team", "name": run}, key)[0] == 202
    api(jwt_hub, "POST", "/api/runs/other-1/events", {"type": "started", "owner": "other-team", "name": "other"}, key)
    now = int(time.time())
    # The token covers the dashboard and one run's channel: the page asks for no channel it does not cover
    # (20 refused subscribes would close the socket).
    tok = hs256("replay-share-secret-0123456789", {"sub": "w", "iat": now, "exp": now + 600,
                                                    "channels": ["dashboard:tok-team", "run:tok-1"]})
    d = browsers()
    d.get(f"{jwt_hub.http}/dashboard#token={tok}")
    wait(d, lambda x: [b.get_attribute("data-owner") for b in x.find_elements(By.CSS_SELECTOR, "#owners button")] == ["tok-team"])
    # The only owner it may watch is watched at once; its runs show, nobody else's.
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, ".run")) == 2)
    assert not d.find_elements(By.CSS_SELECTOR, '[data-run="other-1"]')
    api(jwt_hub, "POST", "/api/runs/tok-1/events", {"type": "log", "line": "from the run channel"}, key)
    wait(d, lambda x: "from the run channel" in x.find_element(By.CSS_SELECTOR, '[data-run="tok-1"]').text)
    assert d.find_element(By.ID, "state").text == "open" and not d.find_element(By.ID, "alert").is_displayed()
    # Another owner: refused by the token, and said so.
    d.find_element(By.ID, "owner").clear()
    d.find_element(By.ID, "owner").send_keys("other-team\n")
    wait(d, lambda x: x.find_element(By.ID, "state").text == "refused")
    assert "does not let it watch" in d.find_element(By.ID, "alert").text


PAGES_375 = ["lobby", "room", "replay", "dashboard", "admin"]


@pytest.mark.parametrize("width,height", [(375, 812), (1280, 800)])
def test_pages_fit_are_labelled_have_contrast_and_live_regions(web_hub, browsers, width, height):
    """Every page at phone and desktop width: nothing wider than the window, every input labelled, text at
    4.5:1, the live regions there, every control reachable with Tab (at desktop width)."""
    import asyncio
    from hubclient import Client
    code = create_session(web_hub, title="A room with a rather long title for a phone")["code"]
    for run in ("w-1",):
        api(web_hub, "POST", f"/api/runs/{run}/events", {"type": "started", "owner": "widths", "name": "Nightly build"})
        api(web_hub, "POST", f"/api/runs/{run}/events", {"events": [{"type": "step_started", "step": "build"},
            {"type": "log", "line": "a long log line " * 8}, {"type": "progress", "percent": 40, "message": "building"}]})
    d = browsers()
    d.set_window_size(width, height)

    async def ann_says():
        a = await Client.connect(web_hub, code)
        await a.join("Ann with a long name")
        await a.send({"type": "chat", "id": "1", "text": "https://example.com/a/very/long/address/that/does/not/break/easily/at/all"})
        await a.expect("ack")
        await a.send({"type": "presence", "state": {"status": "idle", "location": {"label": "viewing the board"}}})
        return a
    loop = asyncio.new_event_loop()
    ann = loop.run_until_complete(ann_says())
    try:
        urls = {"lobby": "/", "room": f"/?code={code}&name=Bob", "replay": f"/replay/{code}#key={WEB_KEY}",
                "dashboard": f"/dashboard?owner=widths#key={WEB_KEY}", "admin": "/admin"}
        live = {"room": ["state", "messages", "typing", "alert"], "replay": ["state", "messages", "alert"],
                "dashboard": ["state", "alert"]}
        for page in PAGES_375:
            d.get(web_hub.http + urls[page])
            if page == "room":
                wait(d, lambda x: x.find_element(By.ID, "state").text == "open")
                d.find_element(By.ID, "text").send_keys("my own message\n")
                wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, "#messages .msg button[data-action=edit]"))
                wait(d, lambda x: "idle" in x.find_element(By.ID, "avatars").text)
            elif page == "replay":
                wait(d, lambda x: x.find_element(By.ID, "state").text == "finished")
            elif page == "dashboard":
                wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, '[data-run="w-1"] .logs'))
            elif page == "admin":   # signed in: the sections and the sessions table
                d.find_element(By.ID, "key").send_keys(WEB_KEY)
                d.find_element(By.ID, "sign-in").click()
                wait(d, lambda x: code in x.find_element(By.ID, "sessions").text)
            else:
                time.sleep(0.5)
            assert_accessible(d, f"{page} at {width}px", live.get(page, ()))
            shot(d, f"{page}-{width}.png")
            if width > 400 and page != "admin":
                missed = keyboard_reach(d)
                assert missed == [], f"{page}: not reachable with Tab: {missed}"
    finally:
        loop.run_until_complete(Client.close_all())
        loop.close()
