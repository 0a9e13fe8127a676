"""The operator's admin console (/admin) in headless Chromium: signing in (a wrong key is refused), and every
section showing what the hub really holds (sessions with their members' presence, a transcript, playback
with the key, runs and their steps, API keys with usage, created and revoked, webhooks with a failed delivery
redelivered to a real receiver, the activity log, live metrics charts). Screenshots of every section go to
test-output/screenshots/admin-*.png."""
import asyncio
import json
import re
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import conftest
from hubclient import Client, api, create_session, eventually

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from test_browser import browser, shot, wait  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None, reason="chromium-driver not installed")

ADMIN = "console-admin-key-0123456789"
KEY = {"X-API-Key": ADMIN}
# Markup in a chat message: the console must show it as text, never as HTML.
CHAT = 'rollback at noon <b class="injected">not bold</b>'


class Receiver:
    """A webhook receiver on loopback: answers 500 to the very first request, 200 to every later one."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    first = not receiver.requests
                    receiver.requests.append({"id": self.headers.get("webhook-id"), "body": json.loads(body)})
                self.send_response(500 if first else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, webhook_id):
        with self.lock:
            return sum(1 for r in self.requests if r["id"] == webhook_id)

    def types(self):
        with self.lock:
            return [r["body"]["type"] for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Members:
    """Real WebSocket members, held open on an asyncio loop in a thread while the browser looks."""

    def __init__(self):
        self.clients = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def connect(self, hub, code, name, client_id):
        c = await Client.connect(hub, code)
        self.clients.append(c)
        await c.join(name, client_id=client_id)
        return c

    def do(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        # Only this loop's clients (Client.open is shared by every test module).
        async def close_mine():
            await asyncio.gather(*(c.ws.close() for c in self.clients), return_exceptions=True)
        self.do(close_mine())
        Client.open = [c for c in Client.open if c not in self.clients]
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def publish(hub, run_id, body):
    status, answer = api(hub, "POST", f"/api/runs/{run_id}/events", body, KEY)
    assert status == 202, answer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    rx = Receiver()
    hub = conftest.Hub("--threads", "2", "--admin-key", ADMIN, "--webhook-allow-private",
                       data_dir=str(tmp_path_factory.mktemp("admin"))).start()
    members = Members()
    try:
        # The webhook first, so the chats below are queued for it; one attempt each, so the receiver's
        # first answer (500) leaves a failed delivery.
        status, hook = api(hub, "POST", "/api/webhooks", {"url": rx.url, "events": ["chat.created"], "max_attempts": 1,
                                                          "description": "ops receiver"})
        assert status == 201, hook
        live = create_session(hub, title="Incident review")["code"]
        # Guests may not replay this one: the playback link must carry the key.
        ended = create_session(hub, title="Old retro", guest_policy="deny")["code"]
        scratch = create_session(hub, title="Scratch")["code"]
        status, body = api(hub, "POST", f"/api/sessions/{ended}/messages", {"kind": "system", "text": "Retro notes archived"},
                           {**KEY, "Idempotency-Key": "retro-1"})
        assert status == 201, body
        assert api(hub, "POST", f"/api/sessions/{ended}/end", {"reason": "retro done"})[0] == 202

        async def populate():
            ann = await members.connect(hub, live, "Ann", "ann-1")
            bob = await members.connect(hub, live, "Bob", "bob-1")
            await members.connect(hub, live, "Bob", "bob-1")   # a second tab: one member, two connections
            await ann.send({"type": "chat", "id": "c1", "text": CHAT})
            await ann.expect("ack")
            await bob.send({"type": "chat", "id": "c2", "kind": "code", "code": {"language": "python", "source": 'print("hi")'}})
            await bob.expect("ack")
            return ann
        ann = members.do(populate())
        status, body = api(hub, "POST", f"/api/sessions/{live}/messages", {"kind": "system", "text": "Deploy 41 started"},
                           {**KEY, "Idempotency-Key": "deploy-41"})
        assert status == 201, body

        publish(hub, "nightly-7", {"type": "started", "owner": "web-ci", "name": "Nightly e2e"})
        publish(hub, "nightly-7", {"events": [
            {"type": "step_started", "step": "build"}, {"type": "log", "line": "compiling 214 files"},
            {"type": "step_completed", "step": "build"}, {"type": "step_started", "step": "test"},
            {"type": "progress", "percent": 60, "message": "testing"},
            {"type": "step_failed", "step": "test", "error": "2 failures in checkout.spec"},
            {"type": "completed", "outcome": "failed"}]})
        publish(hub, "deploy-3", {"type": "started", "owner": "web-ci", "name": "Deploy"})
        publish(hub, "deploy-3", {"events": [{"type": "step_started", "step": "migrate"},
                                             {"type": "progress", "percent": 30, "message": "migrating"}]})

        status, made = api(hub, "POST", "/api/keys", {"name": "ci-publisher", "scopes": ["runs:publish", "runs:read"],
                                                      "per_minute": 100})
        assert status == 201, made
        for _ in range(3):   # three requests made with it: its usage
            assert api(hub, "GET", "/api/runs", headers={"X-API-Key": made["key"]})[0] == 200

        def failed():
            status, body = api(hub, "GET", f"/api/webhooks/{hook['id']}/deliveries?status=failed")
            return status == 200 and body["deliveries"]
        failed_delivery = eventually(failed, what="a failed delivery")[0]
        assert failed_delivery["response_status"] == 500
        yield {"hub": hub, "rx": rx, "hook": hook, "live": live, "ended": ended, "scratch": scratch,
               "key": made, "failed": failed_delivery, "members": members, "ann": ann}
    finally:
        members.close()
        alive = hub.alive()
        hub.stop()
        rx.close()
    assert alive, hub.output()


def sign_in(d, key):
    d.find_element(By.ID, "key").clear()
    d.find_element(By.ID, "key").send_keys(key)
    d.find_element(By.ID, "sign-in").click()


@pytest.fixture(scope="module")
def console(world):
    d = browser()
    d.get(world["hub"].http + "/admin")
    wait(d, lambda x: x.find_element(By.ID, "login").is_displayed())
    sign_in(d, ADMIN)
    wait(d, lambda x: x.find_element(By.ID, "app").is_displayed())
    yield d
    d.quit()


def open_section(d, name):
    d.find_element(By.ID, "nav-" + name).click()
    wait(d, lambda x: x.find_element(By.ID, name).is_displayed())


def accept_confirm(d):
    WebDriverWait(d, 5).until(expected_conditions.alert_is_present())
    d.switch_to.alert.accept()


def cells(row):
    return [td.text for td in row.find_elements(By.TAG_NAME, "td")]


def test_sign_in_refuses_a_wrong_key_and_signs_out(world):
    d = browser()
    try:
        hub = world["hub"]
        d.get(hub.http + "/admin")
        wait(d, lambda x: x.find_element(By.ID, "login").is_displayed())
        assert not d.find_element(By.ID, "app").is_displayed()
        sign_in(d, "not-the-admin-key-000000")
        wait(d, lambda x: "Wrong key" in x.find_element(By.ID, "login-error").text)
        assert not d.find_element(By.ID, "app").is_displayed()
        assert d.execute_script("return sessionStorage.getItem('collabhub.admin.key')") is None
        shot(d, "admin-login.png")

        sign_in(d, ADMIN)
        wait(d, lambda x: x.find_element(By.ID, "app").is_displayed())
        assert d.find_element(By.ID, "who").text == "operator key"
        assert d.execute_script("return sessionStorage.getItem('collabhub.admin.key')") == ADMIN
        # A reload keeps the tab signed in; the key is never put in the page's URL.
        d.refresh()
        wait(d, lambda x: x.find_element(By.ID, "app").is_displayed())
        wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, f'#sessions-rows tr[data-code="{world["live"]}"]'))
        assert ADMIN not in d.current_url
        d.find_element(By.ID, "sign-out").click()
        wait(d, lambda x: x.find_element(By.ID, "login").is_displayed())
        assert d.execute_script("return sessionStorage.getItem('collabhub.admin.key')") is None
        assert not d.find_elements(By.CSS_SELECTOR, "#sessions-rows tr")

        # An API key with fewer scopes: the sections it may not read say so; once revoked, the console
        # signs out by itself.
        status, limited = api(hub, "POST", "/api/keys", {"name": "reader", "scopes": ["sessions:read"]})
        assert status == 201, limited
        sign_in(d, limited["key"])
        wait(d, lambda x: x.find_element(By.ID, "app").is_displayed())
        assert d.find_element(By.ID, "who").text == f"API key {limited['id']}"
        wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, f'#sessions-rows tr[data-code="{world["live"]}"]'))
        open_section(d, "activity")
        wait(d, lambda x: "This key may not read the activity log" in x.find_element(By.ID, "activity-error").text)
        assert api(hub, "DELETE", f"/api/keys/{limited['id']}")[0] == 200
        # A section it may not read is not polled (every poll would be a refusal in the log); the next
        # request, here the sessions list, finds the key revoked.
        d.find_element(By.ID, "nav-sessions").click()
        wait(d, lambda x: x.find_element(By.ID, "login").is_displayed())
        assert "no longer accepts this key" in d.find_element(By.ID, "login-error").text
        assert d.execute_script("return sessionStorage.getItem('collabhub.admin.key')") is None
    finally:
        d.quit()


def test_sessions_members_transcript_playback_and_end(world, console):
    d, hub, live, ended, scratch = console, world["hub"], world["live"], world["ended"], world["scratch"]
    open_section(d, "sessions")
    row = lambda code: f'#sessions-rows tr[data-code="{code}"]'  # noqa: E731
    wait(d, lambda x: all(x.find_elements(By.CSS_SELECTOR, row(c)) for c in (live, ended, scratch)))
    assert cells(d.find_element(By.CSS_SELECTOR, row(live)))[1:3] == ["Incident review", "live"]
    ended_cells = cells(d.find_element(By.CSS_SELECTOR, row(ended)))
    assert ended_cells[1] == "Old retro" and ended_cells[2].startswith("ended") and "retro done" in ended_cells[2]
    # Presence: Ann with one connection, Bob with two (one member, two tabs).
    wait(d, lambda x: sorted(e.text for e in x.find_elements(By.CSS_SELECTOR, row(live) + " .chip .name")) == ["Ann", "Bob"])
    bob = d.find_element(By.CSS_SELECTOR, row(live) + ' .chip[title^="Bob"]')
    assert "×2" in bob.text and "2 connections" in bob.get_attribute("title")
    assert not d.find_elements(By.CSS_SELECTOR, row(ended) + " .end-session")
    assert d.find_element(By.CSS_SELECTOR, row(live) + " a.replay-link").get_attribute("href") == f"{hub.http}/replay/{live}#key={ADMIN}"
    shot(d, "admin-sessions.png")

    # The auto-refresh updates rows in place: text the operator selected stays selected.
    d.execute_script("""const cell = document.querySelector(arguments[0]).children[1], range = document.createRange();
        range.selectNodeContents(cell); getSelection().removeAllRanges(); getSelection().addRange(range);
        document.querySelector(arguments[0]).dataset.marked = "yes";""", row(live))
    before = d.find_element(By.ID, "state").text
    wait(d, lambda x: x.find_element(By.ID, "state").text not in (before, "error"))   # a refresh went by
    assert d.execute_script("return getSelection().toString()") == "Incident review"
    assert d.find_element(By.CSS_SELECTOR, row(live)).get_attribute("data-marked") == "yes"

    # The transcript: one row per event, exactly the API's, markup shown as text.
    d.find_element(By.CSS_SELECTOR, row(live) + " .open-transcript").click()
    wait(d, lambda x: "Deploy 41 started" in x.find_element(By.ID, "transcript").text)
    status, transcript = api(hub, "GET", f"/api/sessions/{live}/transcript?limit=1000")
    rows = d.find_elements(By.CSS_SELECTOR, "#transcript-rows tr")
    assert [r.get_attribute("data-seq") for r in rows] == [str(e["seq"]) for e in transcript["events"]]
    by_seq = {r.get_attribute("data-seq"): cells(r) for r in rows}
    chat = next(e for e in transcript["events"] if e.get("id") == "c1")
    assert by_seq[str(chat["seq"])][2:] == ["chat", "Ann", CHAT]
    code = next(e for e in transcript["events"] if e.get("id") == "c2")
    assert by_seq[str(code["seq"])][2:] == ["chat · code", "Bob", 'print("hi")']
    assert any(c[2] == "presence" and "Ann joined" in c[4] for c in by_seq.values())
    assert not d.find_elements(By.CSS_SELECTOR, "#transcript .injected")
    shot(d, "admin-transcript.png")

    # End a session from the console (after a confirm).
    end = d.find_element(By.CSS_SELECTOR, row(scratch) + " .end-session")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", end)   # not under the sticky header
    end.click()
    accept_confirm(d)
    wait(d, lambda x: cells(x.find_element(By.CSS_SELECTOR, row(scratch)))[2].startswith("ended"))
    sessions = {s["code"]: s for s in api(hub, "GET", "/api/sessions")[1]["sessions"]}
    assert sessions[scratch]["status"] == "ended" and sessions[live]["status"] == "live"

    # Playback of a session guests may not replay: the link hands the replay page the key.
    d.get(d.find_element(By.CSS_SELECTOR, row(ended) + " a.replay-link").get_attribute("href"))
    wait(d, lambda x: x.find_element(By.ID, "state").text == "finished")
    assert "Retro notes archived" in d.find_element(By.ID, "messages").text
    d.get(hub.http + "/admin#sessions")   # still signed in: the key is in this tab's sessionStorage
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, row(live)))


def test_runs_and_their_steps(world, console):
    d, hub = console, world["hub"]
    open_section(d, "runs")
    row = lambda run: f'#runs-rows tr[data-run="{run}"]'  # noqa: E731
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, row("nightly-7")) and x.find_elements(By.CSS_SELECTOR, row("deploy-3")))
    nightly = cells(d.find_element(By.CSS_SELECTOR, row("nightly-7")))
    assert nightly[:5] == ["nightly-7", "Nightly e2e", "web-ci", "failed", "1/2 done, 1 failed"]
    assert cells(d.find_element(By.CSS_SELECTOR, row("deploy-3")))[3] == "running"
    assert d.find_element(By.CSS_SELECTOR, row("nightly-7") + " a.dashboard-link").get_attribute("href") == \
        f"{hub.http}/dashboard?owner=web-ci"  # never the operator's key: the dashboard puts it in a URL
    # The list follows the hub.
    publish(hub, "deploy-3", {"type": "progress", "percent": 90, "message": "almost there"})
    wait(d, lambda x: cells(x.find_element(By.CSS_SELECTOR, row("deploy-3")))[5] == "90% · almost there")

    d.find_element(By.CSS_SELECTOR, row("nightly-7") + " .open-run").click()
    wait(d, lambda x: len(x.find_elements(By.CSS_SELECTOR, "#run-steps tr")) == 2)
    assert d.find_element(By.ID, "run-detail-status").text == "failed"
    steps = {r.get_attribute("data-step"): cells(r) for r in d.find_elements(By.CSS_SELECTOR, "#run-steps tr")}
    assert steps["build"][1] == "completed" and steps["test"][1] == "failed"
    assert steps["test"][4] == "2 failures in checkout.spec"
    assert "compiling 214 files" in d.find_element(By.ID, "run-logs").text
    shot(d, "admin-runs.png")


def test_api_keys_usage_create_and_revoke(world, console):
    d, hub, made = console, world["hub"], world["key"]
    open_section(d, "keys")
    row = lambda key_id: f'#keys-rows tr[data-key-id="{key_id}"]'  # noqa: E731
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, row(made["id"])))
    r = d.find_element(By.CSS_SELECTOR, row(made["id"]))
    assert "ci-publisher" in r.text and "runs:publish" in r.text and "active" in r.text
    wait(d, lambda x: x.find_element(By.CSS_SELECTOR, row(made["id"]) + " .usage-month").text == "3")
    assert api(hub, "GET", "/api/runs", headers={"X-API-Key": made["key"]})[0] == 200
    wait(d, lambda x: x.find_element(By.CSS_SELECTOR, row(made["id"]) + " .usage-month").text == "4")

    # Create one: the secret is shown once, and works.
    d.find_element(By.ID, "key-name").send_keys("temp-ui")
    d.find_element(By.CSS_SELECTOR, '#key-scopes input[value="sessions:read"]').click()
    d.find_element(By.ID, "key-per-minute").send_keys("30")
    d.find_element(By.ID, "key-owners").send_keys("team-a, ci-*")
    d.find_element(By.ID, "key-create").click()
    wait(d, lambda x: x.find_element(By.ID, "new-key").is_displayed())
    secret, new_id = d.find_element(By.ID, "new-key-secret").text, d.find_element(By.ID, "new-key-id").text
    assert re.fullmatch(r"chk_[^_]+_.+", secret) and secret.startswith(f"chk_{new_id}_")
    assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": secret})[0] == 200
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, row(new_id)))
    assert "temp-ui" in d.find_element(By.CSS_SELECTOR, row(new_id)).text
    assert "owners: team-a, ci-*" in d.find_element(By.CSS_SELECTOR, row(new_id)).text
    listed = api(hub, "GET", "/api/keys")[1]["keys"]
    assert next(k for k in listed if k["id"] == new_id)["owners"] == ["team-a", "ci-*"]
    shot(d, "admin-keys.png")

    # Revoke it (after a confirm): refused at once.
    d.find_element(By.CSS_SELECTOR, row(new_id) + " .revoke").click()
    accept_confirm(d)
    wait(d, lambda x: "revoked" in cells(x.find_element(By.CSS_SELECTOR, row(new_id)))[5])
    assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": secret})[0] == 401
    d.find_element(By.ID, "new-key-done").click()
    assert not d.find_element(By.ID, "new-key").is_displayed()


def test_webhooks_redeliver_and_test(world, console):
    d, rx, hook, failed = console, world["rx"], world["hook"], world["failed"]
    open_section(d, "webhooks")
    card = f'.wh[data-webhook="{hook["id"]}"]'
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, f'{card} tr[data-delivery="{failed["id"]}"]'))
    assert d.find_element(By.CSS_SELECTOR, card + " .url").text == rx.url
    assert "ops receiver" in d.find_element(By.CSS_SELECTOR, card + " .meta").text
    delivery = f'{card} tr[data-delivery="{failed["id"]}"]'
    c = cells(d.find_element(By.CSS_SELECTOR, delivery))
    assert c[1:6] == ["chat.created", failed["webhook_id"], "failed", "1", "500"]
    assert rx.count(failed["webhook_id"]) == 1
    shot(d, "admin-webhooks.png")

    d.find_element(By.CSS_SELECTOR, delivery + " .redeliver").click()
    eventually(lambda: rx.count(failed["webhook_id"]) == 2, what="the redelivery at the receiver")
    wait(d, lambda x: cells(x.find_element(By.CSS_SELECTOR, delivery))[3] == "delivered")
    assert cells(d.find_element(By.CSS_SELECTOR, delivery))[5] == "200"
    wait(d, lambda x: re.search(r"pending\s+0\b", x.find_element(By.CSS_SELECTOR, card + " .meta").text, re.I))

    d.find_element(By.CSS_SELECTOR, card + " .send-test").click()
    eventually(lambda: "webhook.test" in rx.types(), what="the test delivery at the receiver")
    wait(d, lambda x: any(cells(r)[1] == "webhook.test" and cells(r)[3] == "delivered"
                          for r in x.find_elements(By.CSS_SELECTOR, card + " tbody tr")))
    shot(d, "admin-webhooks-redelivered.png")


def test_activity_log(world, console):
    d, ended = console, world["ended"]
    open_section(d, "activity")
    actions = lambda x: {r.get_attribute("data-action") for r in x.find_elements(By.CSS_SELECTOR, "#activity-rows tr")}  # noqa: E731
    wait(d, lambda x: {"session_created", "session_ended", "webhook_created", "api_key_created"} <= actions(x))
    shot(d, "admin-activity.png")
    d.find_element(By.ID, "activity-session").send_keys(ended)
    wait(d, lambda x: actions(x) and all(cells(r)[4] == ended for r in x.find_elements(By.CSS_SELECTOR, "#activity-rows tr")))
    assert {"session_created", "session_ended"} <= actions(d)
    d.find_element(By.ID, "activity-session").clear()


def test_metrics_charts(world, console):
    d = console
    open_section(d, "metrics")
    number = lambda el_id: d.find_element(By.ID, el_id).get_attribute("data-value")  # noqa: E731
    wait(d, lambda x: number("reading-connections") is not None and float(number("reading-connections")) >= 1)
    # Rates need two scrapes (2 s apart).
    wait(d, lambda x: int(x.find_element(By.ID, "canvas-messages").get_attribute("data-points") or 0) >= 2, timeout=20)
    assert re.search(r"in [\d.]+.*/s · out [\d.]+", d.find_element(By.ID, "reading-messages").text)

    # Traffic while the page watches: durable events per second above zero in the next scrape.
    ann = world["ann"]

    async def chatter():
        for i in range(10):
            await ann.send({"type": "chat", "id": f"load-{i}", "text": f"load {i}"})
            await ann.expect("ack")
    world["members"].do(chatter())
    wait(d, lambda x: float(number("reading-durable") or 0) > 0)
    assert re.fullmatch(r"[\d.]+/s", d.find_element(By.CSS_SELECTOR, "#reading-durable b").text)
    # Webhook deliveries happened: their latency has a reading (this window's or since the start).
    wait(d, lambda x: number("reading-webhook") is not None and "p99" in x.find_element(By.ID, "reading-webhook").text)
    # Every latency histogram has moved by now (chats committed and delivered, loops turned, HTTP served).
    for chart in ("commit", "delivery", "loop", "http"):
        wait(d, lambda x, chart=chart: "p50" in x.find_element(By.ID, "reading-" + chart).text)
    painted = d.execute_script("""
        const c = document.getElementById('canvas-connections'), px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i]) n++; return n;""")
    assert painted > 500
    assert "HTTP requests" in d.find_element(By.ID, "counters").text
    # The estimator: Prometheus' histogram_quantile, summed over labels other than le.
    got = d.execute_script("""
        const a = window.adminConsole, text = [
          'h_bucket{route="a",le="0.1"} 30', 'h_bucket{route="a",le="0.5"} 50', 'h_bucket{route="a",le="1"} 60', 'h_bucket{route="a",le="+Inf"} 60',
          'h_bucket{route="b\\\\"x",le="0.1"} 20', 'h_bucket{route="b\\\\"x",le="0.5"} 40', 'h_bucket{route="b\\\\"x",le="1"} 40', 'h_bucket{route="b\\\\"x",le="+Inf"} 40',
          'h_sum{route="a"} 3', 'h_count{route="a"} 60'].join('\\n');
        const h = a.histogram(a.parsePrometheus(text), 'h');
        return [h.count, a.quantile(0.5, h.buckets), a.quantile(0.99, h.buckets), a.histogram(a.parsePrometheus(text), 'nope')];""")
    assert got[0] == 100 and abs(got[1] - 0.1) < 1e-9 and abs(got[2] - 0.95) < 1e-9 and got[3] is None
    shot(d, "admin-metrics.png")
    d.execute_script("document.getElementById('chart-webhook').scrollIntoView({block: 'end'})")
    shot(d, "admin-metrics-latency.png")


# MARK: - The console as an inspector: a session's live tail, its members (removed), share links, redactions,
# webhook creation. A hub with a --jwt-secret (share links need one), sessions that admit guests.

SHARE_SECRET = "inspector-share-secret-0123456789"


@pytest.fixture(scope="module")
def inspect_hub(tmp_path_factory):
    hub = conftest.Hub("--threads", "2", "--admin-key", ADMIN, "--jwt-secret", SHARE_SECRET,
                       data_dir=str(tmp_path_factory.mktemp("inspect"))).start()
    members = Members()
    try:
        yield hub, members
    finally:
        members.close()
        alive = hub.alive()
        hub.stop()
    assert alive, hub.output()


def signed_in(hub, key=ADMIN):
    d = browser()
    d.get(hub.http + "/admin")
    wait(d, lambda x: x.find_element(By.ID, "login").is_displayed())
    sign_in(d, key)
    wait(d, lambda x: x.find_element(By.ID, "app").is_displayed())
    return d


def open_detail(d, code):
    open_section(d, "sessions")
    row = f'#sessions-rows tr[data-code="{code}"]'
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, row))
    d.find_element(By.CSS_SELECTOR, row + " .open-transcript").click()
    wait(d, lambda x: x.find_element(By.ID, "transcript").is_displayed() and x.find_element(By.ID, "transcript-code").text == code)


def member_names(d):
    return sorted(r.find_element(By.CSS_SELECTOR, ".name").text for r in d.find_elements(By.CSS_SELECTOR, "#members-rows tr"))


async def chat(c, id_, text):
    await c.send({"type": "chat", "id": id_, "text": text})
    return (await c.expect("ack"))["seq"]


async def close_code(c, timeout=10):
    await asyncio.wait_for(c.ws.wait_closed(), timeout)
    return c.ws.close_code


def test_live_tail_redactions_and_remove_member(inspect_hub):
    hub, members = inspect_hub
    made = create_session(hub, title="Inspector", guest_policy="allow")
    code = made["code"]

    async def populate():
        host = await Client.connect(hub, code)
        members.clients.append(host)
        await host.join("Hana", client_id="hana-1", host_key=made["host_key"])
        carl = await members.connect(hub, code, "Carl", "carl-1")
        return host, carl, await chat(carl, "t1", "said before the console looked")
    host, carl, s1 = members.do(populate())
    d = signed_in(hub)
    try:
        open_detail(d, code)
        wait(d, lambda x: "said before the console looked" in x.find_element(By.ID, "transcript-rows").text)
        # Followed without a click: the toggle is on and says so.
        assert d.find_element(By.ID, "transcript-live").get_attribute("aria-pressed") == "true"
        assert d.find_element(By.ID, "live-state").text == "live"

        # Said after the view opened: it appears by itself, within a few seconds.
        s2 = members.do(chat(carl, "t2", "said while the console watched"))
        wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, f'#transcript-rows tr[data-seq="{s2}"]'), timeout=6)
        assert "said while the console watched" in d.find_element(By.CSS_SELECTOR, f'#transcript-rows tr[data-seq="{s2}"]').text

        # A redaction, an edit and a deletion, also live: the rows say what happened, not raw JSON.
        async def change():
            s3 = await chat(carl, "t3", "a message to delete")
            await carl.send({"type": "chat_edit", "id": "e2", "seq": s2, "text": "said while watching (fixed)"})
            await carl.expect("ack", skip=("cursors", "typing", "presence", "chat_edit"))
            await carl.send({"type": "chat_delete", "id": "d3", "seq": s3})
            await host.send({"type": "redact", "id": "r1", "seq": s1, "reason": "pasted a password"})
            return s3
        s3 = members.do(change())
        row = lambda seq: d.find_element(By.CSS_SELECTOR, f'#transcript-rows tr[data-seq="{seq}"]')  # noqa: E731
        wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, '#transcript-rows tr[data-type="redact"]'), timeout=6)
        redact = d.find_element(By.CSS_SELECTOR, '#transcript-rows tr[data-type="redact"]')
        assert "redacted by host: pasted a password" in redact.text and f"#{s1}" in redact.text
        wait(d, lambda x: cells(row(s1))[4] == "[redacted]")
        assert "redacted" in row(s1).get_attribute("class")
        assert cells(row(s2))[4] == "said while watching (fixed) edited"
        assert cells(row(s3))[4].startswith("deleted")
        assert "edit of #%d" % s2 in d.find_element(By.CSS_SELECTOR, '#transcript-rows tr[data-type="chat_edit"]').text
        assert f"deleted message #{s3}" in d.find_element(By.CSS_SELECTOR, '#transcript-rows tr[data-type="chat_delete"]').text
        # Read again from the store (a tombstone there): still redacted, the original text nowhere.
        d.find_element(By.ID, "transcript-reload").click()
        wait(d, lambda x: cells(row(s1))[4] == "[redacted]" and "pasted a password" in x.find_element(By.ID, "transcript-rows").text)
        assert "said before the console looked" not in d.find_element(By.ID, "transcript").text

        # The members, each with a Remove button.
        wait(d, lambda x: member_names(x) == ["Carl", "Hana"])
        shot(d, "admin-inspector-1280.png")
        d.set_window_size(375, 812)
        d.execute_script("document.getElementById('transcript').scrollIntoView()")
        assert d.execute_script("return document.documentElement.scrollWidth") <= 375
        shot(d, "admin-inspector-375.png")
        d.set_window_size(1280, 800)

        carl_row = '#members-rows tr[data-member] .remove-member[aria-label="Remove Carl"]'
        d.find_element(By.CSS_SELECTOR, carl_row).click()
        accept_confirm(d)
        assert members.do(close_code(carl)) == 4005
        wait(d, lambda x: member_names(x) == ["Hana"])
        assert [m["name"] for m in api(hub, "GET", f"/api/sessions/{code}/members")[1]["members"]] == ["Hana"]

        # Live off: nothing more is fetched; on again: it catches up.
        d.find_element(By.ID, "transcript-live").click()
        assert d.find_element(By.ID, "transcript-live").get_attribute("aria-pressed") == "false"
        assert d.find_element(By.ID, "live-state").text == ""
    finally:
        d.quit()

    # A key that may read but not remove: the refusal is shown with the hub's own words.
    status, reader = api(hub, "POST", "/api/keys", {"name": "reader", "scopes": ["sessions:read", "transcripts:read"]})
    assert status == 201, reader
    d = signed_in(hub, reader["key"])
    try:
        open_detail(d, code)
        wait(d, lambda x: member_names(x) == ["Hana"])
        d.find_element(By.CSS_SELECTOR, '.remove-member[aria-label="Remove Hana"]').click()
        accept_confirm(d)
        wait(d, lambda x: "This key may not remove Hana:" in x.find_element(By.ID, "member-action-error").text)
        time.sleep(2.5)   # a live refresh of the list goes by: the refusal stays
        assert "This key may not remove Hana:" in d.find_element(By.ID, "member-action-error").text
        assert member_names(d) == ["Hana"]
    finally:
        d.quit()


def test_share_link_plays(inspect_hub):
    hub, _ = inspect_hub
    code = create_session(hub, title="Shared")["code"]
    assert api(hub, "POST", f"/api/sessions/{code}/messages", {"kind": "system", "text": "for the record"},
               {**KEY, "Idempotency-Key": "share-1"})[0] == 201
    d = signed_in(hub)
    try:
        open_detail(d, code)
        d.find_element(By.ID, "share-ttl").send_keys("1 day")
        d.find_element(By.ID, "share-create").click()
        wait(d, lambda x: x.find_element(By.ID, "share-result").is_displayed())
        url = d.find_element(By.ID, "share-url").text
        assert url.startswith(f"{hub.http}/replay/{code}#token=")
        assert "1970" not in d.find_element(By.ID, "share-expires").text   # seconds read as milliseconds
        token = url.split("#token=", 1)[1]
        status, body = api(hub, "GET", f"/api/sessions/{code}/transcript", headers={"Authorization": "Bearer " + token})
        assert status == 200 and any(e.get("text") == "for the record" for e in body["events"])
        shot(d, "admin-share.png")
    finally:
        d.quit()


def test_share_unavailable_is_explained(world, console):
    # The world hub has no --jwt-secret: 409 share_unavailable, with its message.
    d = console
    open_detail(d, world["live"])
    d.find_element(By.ID, "share-create").click()
    wait(d, lambda x: "409 share_unavailable" in x.find_element(By.ID, "share-error").text)
    assert not d.find_element(By.ID, "share-result").is_displayed()
    d.find_element(By.ID, "transcript-close").click()


def test_webhook_creation_shows_the_secret(world, console):
    d, hub, rx = console, world["hub"], world["rx"]
    open_section(d, "webhooks")
    # Refused by the hub: its message, naming the field.
    d.find_element(By.ID, "webhook-url").send_keys("ftp://example.com/hook")
    d.find_element(By.CSS_SELECTOR, '#webhook-events input[value="chat.created"]').click()
    d.find_element(By.ID, "webhook-create").click()
    wait(d, lambda x: "Could not create the endpoint (400" in x.find_element(By.ID, "webhook-form-error").text)
    assert not d.find_element(By.ID, "new-webhook").is_displayed()

    d.find_element(By.ID, "webhook-url").clear()
    d.find_element(By.ID, "webhook-url").send_keys(rx.url + "/second")
    d.find_element(By.ID, "webhook-description").send_keys("second receiver")
    d.find_element(By.CSS_SELECTOR, '#webhook-events input[value="session.ended"]').click()
    d.find_element(By.ID, "webhook-create").click()
    wait(d, lambda x: x.find_element(By.ID, "new-webhook").is_displayed())
    secret, new_id = d.find_element(By.ID, "new-webhook-secret").text, d.find_element(By.ID, "new-webhook-id").text
    assert secret.startswith("whsec_")
    assert d.find_element(By.ID, "webhook-form-error").text == ""
    wait(d, lambda x: x.find_elements(By.CSS_SELECTOR, f'.wh[data-webhook="{new_id}"]'))
    card = d.find_element(By.CSS_SELECTOR, f'.wh[data-webhook="{new_id}"]')
    assert card.find_element(By.CSS_SELECTOR, ".url").text == rx.url + "/second"
    assert "second receiver" in card.text
    made = api(hub, "GET", f"/api/webhooks/{new_id}")[1]
    assert sorted(made["events"]) == ["chat.created", "session.ended"] and "secret" not in made
    shot(d, "admin-webhook-created.png")
    d.find_element(By.ID, "new-webhook-done").click()
    assert not d.find_element(By.ID, "new-webhook").is_displayed()
