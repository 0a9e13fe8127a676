"""The operator's kit on the real binary: one configuration story (flags > COLLABHUB_* environment >
--config JSON file > defaults, `config check`), structured logs (`--log-format json`, floods summed up),
and the histograms and counters of /metrics moving under real traffic; the Grafana dashboard queries
only metrics that exist."""
import asyncio
import json
import os
import re
import subprocess
import urllib.request

import pytest

import conftest
from conftest import BINARY, Hub
from hubclient import Client, api, create_session, eventually, run

ADMIN = "ops-admin-key-0123456789"


def check(*args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("COLLABHUB_")}
    e.update(env or {})
    return subprocess.run([BINARY, "config", "check", *args], capture_output=True, text=True, env=e, timeout=30)


def setting(output, key):
    """(value, origin) of one line of `config check`."""
    m = re.search(rf"^{re.escape(key)}\s+= (.*?)\s+# (\S+)$", output, re.M)
    assert m, f"{key} not in:\n{output}"
    return m.group(1), m.group(2)


def test_the_same_option_by_flag_environment_and_file(tmp_path):
    cfg = tmp_path / "hub.json"
    cfg.write_text(json.dumps({"max-participants": 3, "code-length": 9, "admin-key": ADMIN, "limit-chat": 7.5}))
    env = {"COLLABHUB_MAX_PARTICIPANTS": "4", "COLLABHUB_CONFIG": str(cfg)}
    flag = check("--max-participants", "5", env=env)
    assert flag.returncode == 0, flag.stderr
    assert setting(flag.stdout, "max-participants") == ("5", "--max-participants")
    both = check(env=env)
    assert setting(both.stdout, "max-participants") == ("4", "COLLABHUB_MAX_PARTICIPANTS")
    assert setting(both.stdout, "code-length") == ("9", "file")
    assert setting(both.stdout, "limit-chat") == ("7.5", "file")
    assert setting(both.stdout, "port") == ("8080", "default")
    file_only = check("--config", str(cfg))
    assert setting(file_only.stdout, "max-participants") == ("3", "file")
    # The secret is masked wherever it came from.
    assert ADMIN not in both.stdout and setting(both.stdout, "admin-key")[0] == '"********"'

    # And the hub really runs with it: the environment's 4 beats the file's 3, the file's code length
    # and admin key hold.
    hub = Hub()
    hub.prefix = ["env", "COLLABHUB_MAX_PARTICIPANTS=4", f"COLLABHUB_CONFIG={cfg}"]
    hub.admin_key = ADMIN
    hub.data_dir = str(tmp_path / "data")
    hub.start()
    try:
        s = create_session(hub)
        assert len(s["code"]) == 9 and s["max_participants"] == 4
        status, _ = api(hub, "GET", "/api/sessions", headers={})
        assert status == 401, "the file's admin key closes the hub"
    finally:
        hub.stop()


def test_ipv6_prefix_is_layered_like_every_option(tmp_path):
    cfg = tmp_path / "hub.json"
    cfg.write_text(json.dumps({"ipv6-prefix": 56}))
    assert setting(check().stdout, "ipv6-prefix") == ("64", "default")
    assert setting(check("--config", str(cfg)).stdout, "ipv6-prefix") == ("56", "file")
    r = check("--config", str(cfg), env={"COLLABHUB_IPV6_PREFIX": "48"})
    assert setting(r.stdout, "ipv6-prefix") == ("48", "COLLABHUB_IPV6_PREFIX")
    assert setting(check("--ipv6-prefix", "128", env={"COLLABHUB_IPV6_PREFIX": "48"}).stdout,
                   "ipv6-prefix") == ("128", "--ipv6-prefix")
    r = check("--ipv6-prefix", "8")
    assert r.returncode == 2 and "--ipv6-prefix must be 32-128" in r.stderr, r.stderr


def test_bad_values_are_named_as_given(tmp_path):
    r = check(env={"COLLABHUB_PORT": "eighty"})
    assert r.returncode == 2 and "COLLABHUB_PORT must be an integer" in r.stderr, r.stderr
    r = check("--code-length", "3")
    assert r.returncode == 2 and "--code-length must be 6-32" in r.stderr, r.stderr
    cfg = tmp_path / "typo.json"
    cfg.write_text('{"max-mesage-size": 100}')
    r = check("--config", str(cfg))
    assert r.returncode == 2 and '"max-mesage-size"' in r.stderr and 'did you mean "max-message-size"' in r.stderr
    cfg.write_text('{"durability": "sometimes"}')
    r = check("--config", str(cfg))
    assert r.returncode == 2 and f'"durability" in {cfg} must be normal or full' in r.stderr, r.stderr
    cfg.write_text('{"port": 80')
    r = check("--config", str(cfg))
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    # serve refuses the same way, before it listens.
    p = subprocess.run([BINARY, "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "not valid JSON" in p.stderr


def test_json_logs_one_object_per_line_and_floods_summed_up(tmp_path):
    hub = Hub("--admin-key", ADMIN, "--log-format", "json", "--log-summary-interval", "1",
              data_dir=str(tmp_path / "data")).start()
    try:
        for _ in range(25):
            status, _ = api(hub, "GET", "/api/sessions", headers={"X-API-Key": "wrong-key-wrong-key-0"})
            assert status == 401
        # The refusals are counted by reason on /metrics at once ...
        text = urllib.request.urlopen(urllib.request.Request(
            hub.http + "/metrics", headers={"X-API-Key": ADMIN}), timeout=5).read().decode()
        assert int(re.search(r'^collabhub_auth_refusals_total\{reason="unauthorized"\} (\d+)$', text, re.M)
                   .group(1)) >= 25
        # ... and written to the log as one line per interval, not one per refusal.
        import time
        time.sleep(2.5)
    finally:
        hub.stop()
    lines = [line for line in hub.proc.stdout.read().splitlines() if line.startswith("{")]
    objects = [json.loads(line) for line in lines]
    for o in objects:
        assert {"ts", "level", "logger", "msg"} <= o.keys()
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", o["ts"])
    started = next(o for o in objects if o["msg"] == "started")
    assert started["config"]["admin-key"] == "********" and ADMIN not in json.dumps(objects)
    assert started["config"]["log-format"] == "json" and started["port"] == hub.port
    # Summed up: a line per interval (the 25 may straddle one), never a line per refusal.
    refusals = [o for o in objects if o["msg"] == "auth refusals"]
    assert 1 <= len(refusals) <= 3, lines
    assert sum(o["total"] for o in refusals) == 25 and sum(o["by"]["unauthorized"] for o in refusals) == 25
    assert any(o["msg"] == "stopped" for o in objects)


def scrape(hub):
    text = urllib.request.urlopen(hub.http + "/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out, text


def test_histograms_and_counters_move_under_traffic(make_hub):
    hub = make_hub("--resume-window", "5", "--threads", "2")
    before, _ = scrape(hub)
    code = create_session(hub)["code"]

    async def scenario():
        a = await Client.connect(hub, code)
        b = await Client.connect(hub, code)
        await a.join("Ann", client_id="ann")
        joined_b = await b.join("Bob", client_id="bob")
        for i in range(12):
            await a.send({"type": "chat", "id": f"m{i}", "text": f"hello {i}"})
            await a.expect("ack")
        # Bob resumes from the window (4 behind, inside the window of 5), then from further back than
        # the window reaches (from the store).
        await b.close()
        c = await Client.connect(hub, code)
        await c.send({"type": "join", "name": "Bob", "client_id": "bob", "resume_from": 10})
        await c.expect("joined", skip=("cursors", "typing", "presence", "chat", "presence_update"))
        d = await Client.connect(hub, code)
        await d.send({"type": "join", "name": "Bob", "client_id": "bob2", "resume_from": joined_b["seq"]})
        joined = await d.expect("joined", skip=("cursors", "typing", "presence", "chat"))
        assert joined["recovered"]["from"] == joined_b["seq"] + 1 and joined["recovered"]["count"] >= 12
    run(scenario())
    after, text = scrape(hub)

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)
    assert delta("collabhub_commit_latency_seconds_count") >= 12
    assert delta("collabhub_commit_latency_seconds_sum") > 0
    # Every chat reached two clients; each write that emptied a client's output is one observation.
    assert delta("collabhub_delivery_latency_seconds_count") >= 12
    assert delta("collabhub_loop_iteration_seconds_count") > 0
    assert delta('collabhub_http_request_duration_seconds_count{route="sessions"}') == 1
    assert delta('collabhub_http_request_duration_seconds_count{route="metrics"}') >= 1
    assert delta('collabhub_resumes_total{outcome="exact"}') == 1
    assert delta('collabhub_resumes_total{outcome="from_store"}') == 1
    assert delta('collabhub_resumes_total{outcome="reset"}') == 0
    # Closes by the client's code: the clients above closed with 1000; one that vanishes is a 1006.
    async def vanish():
        v = await Client.connect(hub, code)
        v.ws.transport.abort()
    run(vanish())

    def closes(c):
        return scrape(hub)[0].get(f'collabhub_client_closes_total{{code="{c}"}}', 0) - before.get(
            f'collabhub_client_closes_total{{code="{c}"}}', 0)
    eventually(lambda: closes("1000") >= 3 and closes("1006") == 1, what="client closes by code")
    # Histograms are cumulative and end at +Inf == _count.
    for family in ("commit_latency_seconds", "delivery_latency_seconds", "loop_iteration_seconds"):
        buckets = [(float(le.replace("+Inf", "inf")), v) for le, v in re.findall(
            rf'^collabhub_{family}_bucket\{{le="([^"]+)"\}} (\d+)$', text, re.M)]
        values = [int(v) for _, v in buckets]
        assert values == sorted(values) and buckets[-1][0] == float("inf")
        assert values[-1] == after[f"collabhub_{family}_count"]


def test_grafana_dashboard_queries_only_metrics_that_exist(make_hub):
    path = os.path.join(conftest.ROOT, "scripts", "grafana", "collabhub.json")
    dashboard = json.load(open(path))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    names = set()
    for e in exprs:
        names |= set(re.findall(r"\b(collabhub_[a-z_]+)", e))
    hub = make_hub("--webhook-allow-private")
    _, text = scrape(hub)
    exposed = set(re.findall(r"^# TYPE (collabhub_[a-z_]+) (\w+)", text, re.M))
    families = {n for n, _ in exposed}
    histograms = {n for n, t in exposed if t == "histogram"}
    for n in sorted(names):
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        assert n in families or (base in histograms and base != n), f"the dashboard queries {n}, which /metrics lacks"
    # Every histogram of the hub has a panel.
    for h in histograms:
        assert any(h in e for e in exprs), f"no panel for {h}"


def test_sessions_and_refusals_each_write_a_line_with_the_session(tmp_path):
    """Issue 27: at debug, one JSON line per refused join or credential and per slow consumer cut, each naming
    the session and the reason; at info, sessions created and ended. (Slow consumers cut also get a debug line
    naming the session; the cut itself is tested in test_hostile.py.)"""
    hub = Hub("--log-format", "json", "--log-level", "debug", "--jwt-secret", "ops-secret-0123456789abcdef",
              "--admin-key", ADMIN, data_dir=str(tmp_path)).start()
    try:
        created = api(hub, "POST", "/api/sessions", {"title": "logged"})[1]
        code = created["code"]

        async def main():
            # A guest where only tokens are admitted, then a forged token.
            c = await Client.connect(hub, code)
            await c.send({"type": "join", "name": "guest"})
            assert (await c.recv())["code"] == "guests_not_allowed"
            c = await Client.connect(hub, code)
            await c.send({"type": "join", "name": "forged", "token": "a.b.c"})
            assert (await c.recv())["code"] == "unauthorized"
        run(main())
        assert api(hub, "GET", "/api/sessions", headers={"X-API-Key": "chk_nope_nope"})[0] == 401
        assert api(hub, "POST", f"/api/sessions/{code}/end", {}, {"X-API-Key": ADMIN})[0] in (200, 202)
        eventually(lambda: api(hub, "GET", f"/api/sessions/{code}", headers={"X-API-Key": ADMIN})[1].get("ended_at"),
                   what="the end")
    finally:
        hub.stop()
    lines = [json.loads(l) for l in hub.output().splitlines() if l.startswith("{")]
    def find(msg, **fields):
        return [l for l in lines if l.get("msg") == msg and all(l.get(k) == v for k, v in fields.items())]
    assert find("session created", session=code, level="info"), lines[-10:]
    assert find("session ended", session=code, level="info"), lines[-10:]
    assert find("refused", session=code, reason="guests_not_allowed", level="debug")
    assert find("refused", session=code, reason="unauthorized", level="debug")
    assert any(l.get("msg") == "refused" and str(l.get("status")) == "401" and "sessions" in l.get("route", "")
               for l in lines), [l for l in lines if l.get("msg") == "refused"]


def test_the_cli_refuses_what_the_hub_would_and_creates_nothing_by_mistake(tmp_path):
    """`keys list` / `keys revoke` in a folder without a hub's data say so and create nothing; `token` refuses
    a short secret and an unknown role (the hub would refuse both later); a key's default limits fit a CI
    job that publishes a run."""
    empty = tmp_path / "not-a-hub"
    for args in (["keys", "list"], ["keys", "revoke", "abc"]):
        p = subprocess.run([BINARY, *args, "--data", str(empty)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and "no hub data" in p.stderr, p.stderr
        assert not empty.exists(), "a listing created the folder"
    p = subprocess.run([BINARY, "token", "--secret", "short", "--sub", "u"], capture_output=True, text=True)
    assert p.returncode != 0 and "at least 16 bytes" in p.stderr
    p = subprocess.run([BINARY, "token", "--secret", "0123456789abcdef", "--sub", "u", "--role", "admin"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "host, editor, viewer, publisher" in p.stderr
    data = tmp_path / "hub"
    p = subprocess.run([BINARY, "keys", "create", "--data", str(data), "--name", "ci"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and "limits: 600/min, 10000/h, 500000/month" in p.stdout, p.stdout
    p = subprocess.run([BINARY, "keys", "list", "--data", str(data)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and " ci " in p.stdout
