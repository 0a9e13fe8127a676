"""Webhooks against real HTTP receivers on loopback, and the backend API into sessions: signatures
checked independently (Standard Webhooks), retries, order, a hub killed with undelivered events,
disabling, the SSRF guard, rotation, HTTPS with certificate checks, and authorization."""
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hubclient import Client, api, create_session, eventually, run

ADMIN = "webhook-test-admin-key-0123456789"


class Receiver:
    """An HTTP server that records every request and answers as `script` says: a function of the
    request number (per webhook-id: how many times this message arrived) returning (status, headers)."""

    def __init__(self, script=None, tls=None):
        self.requests = []
        self.lock = threading.Lock()
        self.script = script or (lambda n, req: (200, {}))
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "path": self.path,
                       "at": time.time()}
                with receiver.lock:
                    n = sum(1 for r in receiver.requests if r["headers"].get("webhook-id") == req["headers"].get("webhook-id"))
                    receiver.requests.append(req)
                status, headers = receiver.script(n, req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook", host="127.0.0.1", scheme="http"):
        return f"{scheme}://{host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def delivered(self, ok=(200,)):
        with self.lock:
            return list(self.requests)

    def bodies(self):
        return [json.loads(r["body"]) for r in self.delivered()]


def verify(secret, req):
    """The Standard Webhooks check, written here from the specification (not the hub's code)."""
    key = base64.b64decode(secret[len("whsec_"):])
    h = req["headers"]
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + req["body"]
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 300
    return expected in h["webhook-signature"].split(" ")


def hub_with_webhooks(make_hub, *extra, data_dir=None):
    return make_hub("--threads", "2", "--admin-key", ADMIN, "--webhook-allow-private", *extra, data_dir=data_dir)


def add_webhook(hub, url, **fields):
    status, body = api(hub, "POST", "/api/webhooks", {"url": url, **fields})
    assert status == 201, body
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) >= 24
    return body


def chat(hub, code, n):
    """Ann joins `code` and sends `n` chats `m0`.. (each acknowledged, so committed)."""
    async def main():
        a = await Client.connect(hub, code)
        await a.join("Ann")
        for i in range(n):
            await a.send({"type": "chat", "id": f"c{i}", "text": f"m{i}"})
            await a.expect("ack")
    run(main())


def deliveries(hub, wid, **q):
    query = "&".join(f"{k}={v}" for k, v in q.items())
    status, body = api(hub, "GET", f"/api/webhooks/{wid}/deliveries?{query}")
    assert status == 200, body
    return body["deliveries"]


def test_session_events_are_signed_ordered_and_complete(make_hub):
    hub = hub_with_webhooks(make_hub)
    rx = Receiver()
    try:
        hook = add_webhook(hub, rx.url(), headers={"X-Tenant": "acme"})
        code = create_session(hub)["code"]

        async def main():
            a = await Client.connect(hub, code)
            await a.join("Ann", client_id="ann")
            for i in range(5):
                await a.send({"type": "chat", "id": f"c{i}", "text": f"hello {i}"})
                await a.expect("ack")
            await a.send({"type": "event", "name": "req.done", "data": {"n": 1}, "durable": True, "id": "e1"})
            await a.expect("ack")
            await a.send({"type": "leave"})
        run(main())
        assert api(hub, "POST", f"/api/sessions/{code}/end", {"reason": "done"})[0] == 202
        expected = ["session.started", "member.joined"] + ["chat.created"] * 5 + ["event.created", "member.left",
                                                                                 "session.ended"]
        eventually(lambda: len(rx.delivered()) >= len(expected), what="every webhook", timeout=20)
        reqs = rx.delivered()
        assert [json.loads(r["body"])["type"] for r in reqs] == expected
        for r in reqs:
            assert verify(hook["secret"], r), r["headers"]
            assert r["headers"]["x-tenant"] == "acme" and r["headers"]["content-type"] == "application/json"
        ids = [r["headers"]["webhook-id"] for r in reqs]
        assert ids[0] == f"{code}:0"
        seqs = [int(i.split(":")[1]) for i in ids[1:]]
        assert seqs == sorted(seqs) and seqs == list(range(seqs[0], seqs[0] + len(seqs))), ids
        chat = json.loads(reqs[2]["body"])
        assert chat["data"]["session"] == code and chat["data"]["text"] == "hello 0" and chat["data"]["seq"] == seqs[1]
        assert chat["timestamp"].endswith("Z") and "T" in chat["timestamp"]
        assert all(d["status"] == "delivered" and d["attempts"] == 1 for d in deliveries(hub, hook["id"]))
    finally:
        rx.close()


def test_retries_until_success_and_4xx_is_final_and_order_holds_under_failures(make_hub):
    hub = hub_with_webhooks(make_hub)
    # The first message fails twice (500, then 503 with Retry-After: 1), then succeeds; the rest wait for it.
    def script(n, req):
        if req["headers"]["webhook-id"].endswith(":1") and n < 2:
            return (500, {}) if n == 0 else (503, {"Retry-After": "1"})
        return 200, {}
    rx = Receiver(script)
    gone = Receiver(lambda n, req: (410, {}))
    try:
        hook = add_webhook(hub, rx.url(), events=["chat.created", "member.joined"])
        final = add_webhook(hub, gone.url(), events=["member.joined"], max_attempts=5)
        code = create_session(hub)["code"]
        chat(hub, code, 3)
        eventually(lambda: len([r for r in rx.delivered()]) >= 6, what="retries and the rest", timeout=20)
        reqs = rx.delivered()
        ids = [r["headers"]["webhook-id"] for r in reqs]
        assert ids[:3] == [f"{code}:1"] * 3, ids
        assert ids[3:] == [f"{code}:{s}" for s in (2, 3, 4)], "the session's later events waited, in order"
        first = deliveries(hub, hook["id"], status="delivered")[-1]
        assert first["attempts"] == 3 and first["response_status"] == 200, first
        eventually(lambda: deliveries(hub, final["id"], status="failed"), what="a final 410")
        failed = deliveries(hub, final["id"])[0]
        assert failed["attempts"] == 1 and failed["response_status"] == 410 and failed["status"] == "failed"
        # A failed delivery can be sent again by hand.
        status, body = api(hub, "POST", f"/api/webhooks/{final['id']}/deliveries/{failed['id']}/retry")
        assert status == 202 and body["status"] == "pending"
        eventually(lambda: len(gone.delivered()) == 2, what="the retried delivery")
    finally:
        rx.close()
        gone.close()


def test_a_killed_hub_delivers_what_it_committed_after_restart(make_hub, tmp_path):
    data = str(tmp_path / "kill")
    hub = hub_with_webhooks(make_hub, data_dir=data)
    rx = Receiver(lambda n, req: (503, {}))   # the receiver is down: nothing is delivered before the kill
    try:
        hook = add_webhook(hub, rx.url(), events=["chat.created"], max_attempts=20)
        code = create_session(hub)["code"]
        chat(hub, code, 20)
        hub.stop(sig=signal.SIGKILL)
        rx.script = lambda n, req: (200, {})
        again = hub_with_webhooks(make_hub, data_dir=data)

        def all_arrived():
            ok = {r["headers"]["webhook-id"] for r in rx.delivered()}
            return len(ok) >= 20
        eventually(all_arrived, what="every committed chat after the restart", timeout=30)
        delivered = {}
        for r in rx.delivered():
            assert verify(hook["secret"], r)
            delivered.setdefault(r["headers"]["webhook-id"], json.loads(r["body"]))
        texts = sorted(int(b["data"]["text"][1:]) for b in delivered.values())
        assert texts == list(range(20)), texts
        assert again.alive()
    finally:
        rx.close()


def test_an_endpoint_that_keeps_failing_is_disabled_and_logged(make_hub):
    hub = hub_with_webhooks(make_hub, "--webhook-disable-after", "1")
    rx = Receiver(lambda n, req: (500, {}))
    try:
        hook = add_webhook(hub, rx.url(), events=["chat.created"], max_attempts=20)
        code = create_session(hub)["code"]
        chat(hub, code, 1)
        info = eventually(lambda: (lambda b: b if not b["active"] else None)(api(hub, "GET", f"/api/webhooks/{hook['id']}")[1]),
                          what="the endpoint disabled", timeout=20)
        assert "no successful delivery" in info["disabled_reason"] and info["pending"] >= 1
        actions = [e["action"] for e in api(hub, "GET", "/api/activity")[1]["activity"]]
        assert "webhook_disabled" in actions
        # Enabled again by hand, with a receiver that works: what was pending goes out.
        rx.script = lambda n, req: (200, {})
        assert api(hub, "PATCH", f"/api/webhooks/{hook['id']}", {"active": True})[1]["active"] is True
        eventually(lambda: any(r for r in rx.delivered() if r["headers"]["webhook-id"].endswith(":2")), what="redelivery")
    finally:
        rx.close()


def test_private_targets_are_refused_without_the_flag(make_hub):
    hub = make_hub("--threads", "1", "--admin-key", ADMIN)
    rx = Receiver()
    try:
        for url in [rx.url(), "http://10.1.2.3/x", "http://[::1]:9/x", "http://localhost/x", "http://169.254.169.254/"]:
            status, body = api(hub, "POST", "/api/webhooks", {"url": url})
            assert status == 400 and body["error"]["code"] == "invalid_field" and "private" in body["error"]["message"], (url, body)
        # A name that resolves to loopback is refused when the delivery resolves it.
        status, hook = api(hub, "POST", "/api/webhooks", {"url": f"http://127.0.0.1.nip.invalid:{rx.port}/x"})
        assert status == 201
        assert api(hub, "POST", "/api/webhooks", {"url": "ftp://example.com/"})[0] == 400
        assert api(hub, "POST", "/api/webhooks", {"url": "https://example.com/", "events": ["nope"]})[1]["error"]["message"].startswith('"events"')
        assert api(hub, "POST", "/api/webhooks", {"url": "https://example.com/", "headers": {"Host": "x"}})[0] == 400
        assert api(hub, "POST", "/api/webhooks", {"url": "https://example.com/", "timeout_s": 0})[0] == 400
        assert rx.delivered() == []
    finally:
        rx.close()


def test_a_name_resolving_to_loopback_is_refused_at_delivery(make_hub):
    import ipaddress
    import socket

    def private_name():
        # A name (not a literal address) that resolves to a loopback or private address on this machine.
        for name in [socket.gethostname(), "ip6-localhost", "localhost.localdomain"]:
            try:
                addr = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
            except OSError:
                continue
            if ipaddress.ip_address(addr).is_private and name != "localhost":
                return name
        pytest.skip("no host name here resolves to a private address")
    name = private_name()
    hub = make_hub("--threads", "1", "--admin-key", ADMIN)
    rx = Receiver()
    try:
        status, hook = api(hub, "POST", "/api/webhooks", {"url": f"http://{name}:{rx.port}/x", "max_attempts": 1})
        assert status == 201, hook
        assert api(hub, "POST", f"/api/webhooks/{hook['id']}/test")[0] == 202
        failed = eventually(lambda: deliveries(hub, hook["id"], status="failed"), what="the refused delivery")
        assert "private or reserved address" in failed[0]["last_error"], failed
        addresses = {a[4][0] for a in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
        assert not any(a in failed[0]["last_error"] for a in addresses), ("names what the name resolved to", failed)
        assert rx.delivered() == []
    finally:
        rx.close()


def test_ipv6_transition_prefixes_are_private_and_refusals_do_not_say_what_a_name_resolved_to(make_hub):
    """IPv6 forms that embed an IPv4 address (IPv4-compatible, SIIT, 6to4, Teredo, local-use NAT64) reach
    the internal network behind a gateway: refused like private addresses. And a refused name's error
    does not name what it resolved to (else webhooks:admin reads the hub's internal DNS)."""
    hub = make_hub("--threads", "1", "--admin-key", ADMIN)
    rx = Receiver()
    try:
        for host in ["[::127.0.0.1]", "[::ffff:0:7f00:1]", "[2002:7f00:1::1]", "[2002:808:808::1]", "[2001::1]",
                     "[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "[64:ff9b:1::a00:1]"]:
            status, body = api(hub, "POST", "/api/webhooks", {"url": f"http://{host}:{rx.port}/x"})
            assert status == 400 and "private" in body["error"]["message"], (host, status, body)
        # 2130706433 is a name to the hub (not a literal), which the resolver reads as 127.0.0.1.
        status, hook = api(hub, "POST", "/api/webhooks", {"url": f"http://2130706433:{rx.port}/x", "max_attempts": 1})
        assert status == 201, hook
        assert api(hub, "POST", f"/api/webhooks/{hook['id']}/test")[0] == 202
        failed = eventually(lambda: deliveries(hub, hook["id"], status="failed"), what="the refused delivery")
        error = failed[0]["last_error"]
        assert "2130706433 resolves to a private or reserved address" in error, error
        assert "127.0.0.1" not in error and "7f00" not in error, error
        assert rx.delivered() == []
    finally:
        rx.close()


def test_the_activity_log_names_a_webhook_receiver_without_its_path_or_query(make_hub):
    """A receiver's URL may carry its credential in the path or query; the activity log (readable with
    activity:read) shows scheme, host and port only."""
    hub = make_hub("--threads", "1", "--admin-key", ADMIN)
    status, hook = api(hub, "POST", "/api/webhooks",
                       {"url": "https://hooks.example.com:8443/t/PATHSECRET42?token=QUERYSECRET42"})
    assert status == 201, hook
    assert api(hub, "PATCH", f"/api/webhooks/{hook['id']}", {"description": "changed"})[0] == 200
    status, log = api(hub, "GET", "/api/activity?limit=200")
    assert status == 200
    entries = [e for e in log["activity"] if e.get("target") == hook["id"]]
    assert {e["action"] for e in entries} >= {"webhook_created"}, entries
    assert all(e.get("details") == "https://hooks.example.com:8443" for e in entries), entries
    assert "SECRET42" not in json.dumps(log)


def test_rotation_signs_with_both_secrets_and_test_deliveries(make_hub):
    hub = hub_with_webhooks(make_hub)
    rx = Receiver()
    try:
        hook = add_webhook(hub, rx.url())
        status, rotated = api(hub, "POST", f"/api/webhooks/{hook['id']}/rotate-secret")
        assert status == 200 and rotated["secret"] != hook["secret"]
        assert api(hub, "POST", f"/api/webhooks/{hook['id']}/test")[0] == 202
        req = eventually(lambda: rx.delivered(), what="the test delivery")[0]
        assert json.loads(req["body"])["type"] == "webhook.test"
        assert len(req["headers"]["webhook-signature"].split(" ")) == 2
        assert verify(hook["secret"], req) and verify(rotated["secret"], req)
        listed = api(hub, "GET", "/api/webhooks")[1]["webhooks"]
        assert [w["id"] for w in listed] == [hook["id"]] and "secret" not in listed[0]
        assert api(hub, "DELETE", f"/api/webhooks/{hook['id']}")[0] == 200
        assert api(hub, "GET", f"/api/webhooks/{hook['id']}")[0] == 404
    finally:
        rx.close()


def test_https_receivers_are_verified(make_hub, tmp_path):
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    trusted = hub_with_webhooks(make_hub, "--webhook-ca", cert)
    untrusted = hub_with_webhooks(make_hub)
    rx = Receiver(tls=(cert, key))
    try:
        ok = add_webhook(trusted, rx.url(scheme="https", host="localhost"), max_attempts=1)
        bad = add_webhook(untrusted, rx.url(scheme="https", host="localhost"), max_attempts=1)
        assert api(trusted, "POST", f"/api/webhooks/{ok['id']}/test")[0] == 202
        assert api(untrusted, "POST", f"/api/webhooks/{bad['id']}/test")[0] == 202
        eventually(lambda: deliveries(trusted, ok["id"], status="delivered"), what="the verified delivery")
        failed = eventually(lambda: deliveries(untrusted, bad["id"], status="failed"), what="the unverified one refused")
        assert failed[0]["attempts"] == 1
        assert len(rx.delivered()) == 1 and verify(ok["secret"], rx.delivered()[0])
    finally:
        rx.close()


def test_every_webhook_route_needs_the_scope(make_hub):
    hub = make_hub("--threads", "1", "--admin-key", ADMIN)
    out = subprocess.run([os.environ.get("COLLABHUB_BIN") or __import__("conftest").BINARY, "keys", "create",
                          "--data", hub.data_dir, "--name", "reader", "--scopes", "sessions:read"],
                         capture_output=True, text=True, check=True).stdout
    reader = next(l.split()[1] for l in out.splitlines() if l.startswith("key:"))
    routes = [("POST", "/api/webhooks", {"url": "https://example.com/"}), ("GET", "/api/webhooks", None),
              ("GET", "/api/webhooks/wh_x", None), ("PATCH", "/api/webhooks/wh_x", {"active": False}),
              ("DELETE", "/api/webhooks/wh_x", None), ("POST", "/api/webhooks/wh_x/rotate-secret", None),
              ("POST", "/api/webhooks/wh_x/test", None), ("GET", "/api/webhooks/wh_x/deliveries", None),
              ("POST", "/api/webhooks/wh_x/deliveries/1/retry", None)]
    for method, path, body in routes:
        assert api(hub, method, path, body, headers={})[0] == 401, (method, path)
        assert api(hub, method, path, body, headers={"X-API-Key": reader})[0] == 403, (method, path)
        assert api(hub, method, path, body)[0] not in (401, 403), (method, path)
    # The backend API into sessions: reading presence is sessions:read; speaking and removing, sessions:write.
    code = create_session(hub)["code"]
    assert api(hub, "GET", f"/api/sessions/{code}/members", headers={"X-API-Key": reader})[0] == 200
    assert api(hub, "GET", f"/api/sessions/{code}/members", headers={})[0] == 401
    for method, path, body in [("POST", f"/api/sessions/{code}/messages", {"kind": "system", "text": "x"}),
                               ("DELETE", f"/api/sessions/{code}/members/m1", None)]:
        assert api(hub, method, path, body, headers={})[0] == 401, path
        assert api(hub, method, path, body, headers={"X-API-Key": reader})[0] == 403, path


def test_backends_post_into_sessions_and_manage_members(make_hub):
    hub = hub_with_webhooks(make_hub)
    code = create_session(hub)["code"]

    async def main():
        a = await Client.connect(hub, code)
        await a.join("Ann")
        b = await Client.connect(hub, code)
        await b.join("Bob")
        await a.expect("presence")
        status, posted = api(hub, "POST", f"/api/sessions/{code}/messages", {"kind": "system", "text": "Deploy started"},
                             headers={"X-API-Key": ADMIN, "Idempotency-Key": "deploy-1"})
        assert status == 201 and posted["seq"] > 0, posted
        chat = await a.expect("chat")
        assert chat["kind"] == "system" and chat["text"] == "Deploy started" and chat["seq"] == posted["seq"]
        again = api(hub, "POST", f"/api/sessions/{code}/messages", {"kind": "system", "text": "Deploy started"},
                    headers={"X-API-Key": ADMIN, "Idempotency-Key": "deploy-1"})[1]
        assert again["seq"] == posted["seq"] and again["duplicate"] is True
        status, ev = api(hub, "POST", f"/api/sessions/{code}/messages",
                         {"type": "event", "name": "api.response", "data": {"status": 200}},
                         headers={"X-API-Key": ADMIN, "Idempotency-Key": "req-7"})
        assert status == 201
        got = await a.expect("event")
        assert got["name"] == "api.response" and got["data"] == {"status": 200} and got["seq"] == ev["seq"]
        status, _ = api(hub, "POST", f"/api/sessions/{code}/messages",
                        {"type": "event", "name": "cursor.hint", "data": {}, "durable": False})
        assert status == 202
        assert (await a.expect("event"))["name"] == "cursor.hint"
        members = api(hub, "GET", f"/api/sessions/{code}/members")[1]["members"]
        assert sorted(m["name"] for m in members) == ["Ann", "Bob"]
        bob = next(m for m in members if m["name"] == "Bob")
        assert api(hub, "DELETE", f"/api/sessions/{code}/members/{bob['id']}")[0] == 200
        assert api(hub, "DELETE", f"/api/sessions/{code}/members/{bob['id']}")[0] == 404
        presence = await a.expect("presence")
        assert presence["leaves"][0]["id"] == bob["id"]
        assert api(hub, "POST", f"/api/sessions/{code}/messages", {"kind": "text", "text": "x"})[0] == 400
        assert api(hub, "POST", f"/api/sessions/{code}/messages", {"type": "event", "name": "x"})[1]["error"]["code"] == "missing_field"
        assert api(hub, "POST", f"/api/sessions/{code}/messages", {"kind": "system", "text": "x"}, headers={})[0] == 401
    run(main())
