"""The shipped Grafana dashboard (scripts/grafana/collabhub.json) against a real Prometheus (Debian's
`prometheus`): it scrapes a hub under traffic (chat, cursors, resumes, a webhook to a live receiver, HTTP
errors, refused credentials, closes) every second, and every query of every panel, with the dashboard's
variables filled in as Grafana would, must parse and return data. The queries once had `{{...}}` selectors
that Prometheus refused; a test that only compared metric names passed them."""
import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import conftest
from hubclient import Client, api, eventually, run
from test_cluster import free_port

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (scripts/deps.sh test)")


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def traffic(hub, seconds):
    code = api(hub, "POST", "/api/sessions", {"title": "scraped"})[1]["code"]

    async def main():
        deadline = time.time() + seconds
        a, b = await Client.connect(hub, code), await Client.connect(hub, code)
        await a.join("A", client_id="prom-a")
        await b.join("B", client_id="prom-b")
        i = 0
        while time.time() < deadline:
            i += 1
            await a.send({"type": "chat", "id": f"m{i}", "kind": "text", "text": f"hello {i}"})
            await b.send({"type": "cursor", "x": i % 100, "y": 5})
            await asyncio.sleep(0.05)
            if i % 40 == 0:
                # A resume: B goes and comes back a few messages behind.
                await b.ws.close()
                b = await Client.connect(hub, code)
                await b.send({"type": "join", "name": "B", "client_id": "prom-b", "resume_from": max(0, i - 5)})
        await a.close()
        await b.close()
    run(main())


def test_every_grafana_panel_returns_data_from_a_real_prometheus(tmp_path):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hub = conftest.Hub("--webhook-allow-private", data_dir=str(tmp_path / "hub")).start()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: collabhub
    static_configs: [{{targets: ["127.0.0.1:{hub.port}"]}}]
""")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready():
            try:
                return urllib.request.urlopen(base + "/-/ready", timeout=1).status == 200
            except OSError:
                return False
        eventually(ready, timeout=30, what="prometheus to be ready")
        status, hook = api(hub, "POST", "/api/webhooks",
                           {"url": f"http://127.0.0.1:{receiver.server_address[1]}/hook", "events": ["*"]})
        assert status == 201, hook
        api(hub, "GET", "/api/nope")                                          # an HTTP error
        api(hub, "GET", "/api/sessions/ABCDEFGH", headers={"X-Host-Key": "wrong"})  # a refused credential
        traffic(hub, 12)

        def query(expr):
            url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(r.read())

        # Prometheus has what it scraped: the target is up.
        eventually(lambda: query('up{job="collabhub"} == 1')["data"]["result"], timeout=15, what="a scrape")
        dashboard = json.load(open(os.path.join(conftest.ROOT, "scripts", "grafana", "collabhub.json")))
        checked, empty = 0, []
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$instance", ".+").replace("$__rate_interval", "30s")
                answer = query(expr)
                assert answer["status"] == "success", (panel["title"], expr, answer)
                checked += 1
                if not answer["data"]["result"]:
                    empty.append((panel["title"], expr))
        print(f"[prometheus] {checked} queries of {len(dashboard['panels'])} panels, {len(empty)} without data")
        assert checked >= 20
        assert not empty, f"panels with no data: {empty}"
    finally:
        prom.terminate()
        prom.wait(timeout=10)
        hub.stop()
        receiver.shutdown()
