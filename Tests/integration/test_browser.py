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
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

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
    card = d.find_element(By.CSS_SELECTOR, '[data-run="nightly-42"]').text
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
    # Edits show as such, and leaves name who left.
    assert "edited #" in text and "hello world" in text and "Ann left" in text, text
    shot(r, "replay.png")
    # A finished replay gave up its slot: Play starts a new one from the beginning (not a seek, which the
    # hub would answer replay_finished).
    shown = len(r.execute_script("return window.replay.shown"))
    r.find_element(By.ID, "play").click()
    wait(r, lambda d: len(d.execute_script("return window.replay.shown")) >= 2 * shown
         and d.find_element(By.ID, "state").text == "finished", timeout=15)
    text = r.find_element(By.ID, "messages").text
    assert text.index("first") < text.index("second") < text.index("third"), text
