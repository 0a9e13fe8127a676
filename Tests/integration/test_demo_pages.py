"""`collabhub demo` in a real browser: the four URLs it prints each show something worth looking at (the
seeded history, the live run, the playback, the console's sessions), accessible at desktop width. The
screenshots it takes are the README's (scripts/screenshots.sh copies them to Tests/screenshots/)."""
import re
import shutil
import subprocess

import pytest

import conftest
from test_browser import assert_accessible, browser, shot, wait

pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None, reason="chromium-driver not installed")
By = pytest.importorskip("selenium.webdriver.common.by").By


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    proc = subprocess.Popen([conftest.BINARY, "demo", "--port", "0", "--data", str(tmp_path_factory.mktemp("demo"))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert re.search(r"listening on 127\.0\.0\.1:\d+", proc.stdout.readline())
        urls = {}
        for _ in range(4):
            name, url = proc.stdout.readline().split(":", 1)
            urls[name.strip()] = url.strip()
        yield urls
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def page():
    d = browser()
    d.set_window_size(1280, 800)
    yield d
    d.quit()


def test_demo_room_shows_three_peoples_history(demo, page):
    page.get(demo["room"])
    wait(page, lambda x: x.find_element(By.ID, "state").text == "open")
    wait(page, lambda x: all(n in x.find_element(By.ID, "messages").text for n in ("Ann", "Bob", "Cara")))
    text = page.find_element(By.ID, "messages").text
    assert "release candidate" in text, text
    assert_accessible(page, "demo room", ["state", "messages", "typing", "alert"])
    shot(page, "demo-room.png")


def test_demo_dashboard_shows_the_live_run(demo, page):
    page.get(demo["dashboard"])
    wait(page, lambda x: x.find_elements(By.CSS_SELECTOR, "[data-run] .logs"))
    # The card is drawn anew on every event, so it is read in one script call (an element found first and
    # read after could be replaced in between: a stale reference).
    def card(x):
        return x.execute_script("const c = document.querySelector('[data-run]'); return c ? c.innerText : ''")
    first = card(page)
    # The built-in publisher advances it: the card changes without a reload.
    wait(page, lambda x: card(x) not in ("", first), timeout=20)
    assert_accessible(page, "demo dashboard", ["state", "alert"])
    shot(page, "demo-dashboard.png")


def test_demo_replay_plays_the_share_link(demo, page):
    page.get(demo["replay"])
    wait(page, lambda x: x.find_element(By.ID, "state").text in ("playing", "finished", "paused"))
    wait(page, lambda x: "Cara" in x.find_element(By.ID, "messages").text, timeout=30)
    assert_accessible(page, "demo replay", ["state", "messages", "alert"])
    shot(page, "demo-replay.png")


def test_demo_console_lists_the_session(demo, page):
    code = re.search(r"code=([A-Z0-9]+)", demo["room"]).group(1)
    page.get(demo["console"])
    # Open mode: the console says so and signs in with the key left empty.
    wait(page, lambda x: x.find_element(By.ID, "login-open").is_displayed())
    page.find_element(By.ID, "sign-in").click()
    wait(page, lambda x: code in x.find_element(By.ID, "sessions").text)
    assert_accessible(page, "demo console")
    shot(page, "demo-console.png")
