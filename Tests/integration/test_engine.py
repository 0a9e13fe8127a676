"""Engine behaviour beyond framing: HTTP side, timeouts, keep-alive pings, shutdown, real clients."""
import asyncio
import re
import json
import select
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

import conftest
import websockets

from wsraw import RawClient, close_frame, frame


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_healthz_and_metrics(echo_hub):
    # An open-mode hub (no credential configured) says so on /healthz.
    status, body = get(echo_hub.http + "/healthz")
    assert status == 200 and body.startswith("ok (open mode: anyone who reaches this port can read and write everything)\n")
    assert re.search(r"^collabhub \d+\.\d+\.\d+ \([\w.-]+\)$", body.splitlines()[1]), body
    c = RawClient(echo_hub.port)
    c.send(frame(9, b"") + frame(1, "\xff".encode("latin-1")))   # invalid UTF-8 -> 1007, counted
    c.recv_frame()
    c.expect_close(1007)
    status, text = get(echo_hub.http + "/metrics")
    assert status == 200
    metrics = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            metrics[k] = float(v)
    for name in ["collabhub_connections_open", "collabhub_handshakes_total", "collabhub_messages_in_total",
                 "collabhub_messages_out_total", "collabhub_bytes_in_total", "collabhub_bytes_out_total",
                 "collabhub_loop_lag_seconds", "collabhub_store_checkpoints", "collabhub_cursor_samples_dropped"]:
        assert name in metrics, name
    assert metrics['collabhub_closes_total{code="1007"}'] >= 1
    assert metrics["collabhub_handshakes_total"] >= 1


def test_unknown_path_is_404_json(echo_hub):
    status, body = get(echo_hub.http + "/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_http_keep_alive_serves_several_requests_on_one_connection(echo_hub):
    c = RawClient(echo_hub.port, handshake=False)
    c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert c.read_response()[0] == 200
    assert c.read_response()[0] == 200
    c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert c.read_response()[0] == 200
    c.expect_tcp_close()


def test_slowloris_handshake_times_out(make_hub):
    hub = make_hub("--echo", "--handshake-timeout", "0.5")
    c = RawClient(hub.port, handshake=False)
    c.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    start = time.time()
    status, _, _ = c.read_response()
    assert status == 408
    c.expect_tcp_close()
    assert time.time() - start < 3
    # A connection that sends nothing at all is closed too.
    idle = RawClient(hub.port, handshake=False)
    idle.expect_tcp_close(timeout=3)


def test_keepalive_ping_and_missed_pong_closes(make_hub):
    hub = make_hub("--echo", "--ping-interval", "0.3")
    c = RawClient(hub.port)
    fin, rsv, op, payload = c.recv_frame()
    assert op == 0x9, "idle client is pinged"
    c.send(frame(0xA, payload))
    fin, rsv, op, payload = c.recv_frame()
    assert op == 0x9, "answered pong keeps the connection; it is pinged again"
    # Do not answer: the server gives up after another interval.
    c.expect_close(1001, timeout=3)


def test_many_sockets_time_out_on_the_loop_timer_wheel(make_hub):
    """A socket's timer is an entry on its loop's timer wheel (EventLoop/SocketTimers), not a libev timer
    of its own: 300 silent connections are each closed at the handshake timeout (never early, at most a
    tick or so late), while an upgraded connection whose deadline keeps moving (pings answered) stays."""
    hub = make_hub("--echo", "--threads", "1", "--handshake-timeout", "1", "--ping-interval", "0.4",
                   "--max-connections-per-address", "0")
    kept = RawClient(hub.port)
    opened = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", hub.port))
        s.setblocking(False)
        opened.append((s, time.time()))
    lived, pings = [], 0
    deadline = time.time() + 10
    while opened and time.time() < deadline:
        readable, _, _ = select.select([s for s, _ in opened] + [kept.sock], [], [], 0.02)
        now = time.time()
        for s, t0 in list(opened):
            if s not in readable:
                continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if data == b"":
                lived.append(now - t0)
                opened.remove((s, t0))
                s.close()
        if kept.sock in readable:
            fin, rsv, op, payload = kept.recv_frame()
            assert op == 0x9
            kept.send(frame(0xA, payload))
            pings += 1
    assert pings >= 2
    assert not opened, f"{len(opened)} silent connections still open after 10 s"
    assert min(lived) >= 0.95, f"closed {min(lived):.3f} s after opening, before the 1 s timeout"
    assert sorted(lived)[len(lived) // 2] < 2.5, f"median {sorted(lived)[len(lived) // 2]:.3f} s for a 1 s timeout"
    kept.send(frame(0x1, b"still here"))
    while True:
        fin, rsv, op, payload = kept.recv_frame()
        if op == 0x1:
            assert payload == b"still here"
            break


def test_graceful_shutdown_closes_clients_with_1001(make_hub):
    hub = make_hub("--echo")
    c = RawClient(hub.port)
    hub.proc.send_signal(15)
    c.expect_close(1001, timeout=5)
    assert hub.proc.wait(timeout=10) == 0


def test_python_websockets_client(echo_hub):
    async def run():
        async with websockets.connect(echo_hub.url + "/echo", max_size=None) as ws:
            for msg in ["hello", "ü" * 5000, b"\x00" * 70000, ""]:
                await ws.send(msg)
                assert await ws.recv() == msg
            await ws.ping()
    asyncio.run(run())


def test_many_concurrent_python_clients(echo_hub):
    async def one(i):
        async with websockets.connect(echo_hub.url + "/echo") as ws:
            for j in range(20):
                await ws.send(f"{i}:{j}")
                assert await ws.recv() == f"{i}:{j}"

    async def run():
        await asyncio.gather(*(one(i) for i in range(200)))
    asyncio.run(run())


NODE_CLIENT = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2]);
const msgs = ['hello', 'é'.repeat(3000), Buffer.alloc(100000, 7)];
let i = 0;
ws.on('open', () => ws.send(msgs[0]));
ws.on('message', (data, isBinary) => {
  const want = msgs[i];
  const ok = typeof want === 'string' ? (!isBinary && data.toString() === want) : (isBinary && Buffer.compare(data, want) === 0);
  if (!ok) { console.log('MISMATCH', i); process.exit(1); }
  i++;
  if (i < msgs.length) ws.send(msgs[i]); else ws.close(1000, 'done');
});
ws.on('close', (code) => { console.log('closed', code); process.exit(code === 1000 ? 0 : 1); });
ws.on('error', (e) => { console.log('error', e.message); process.exit(1); });
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_node_ws_client(echo_hub, tmp_path):
    out = conftest.run_node(tmp_path, NODE_CLIENT, echo_hub.url + "/echo")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "closed 1000" in out.stdout


def test_second_hub_on_the_same_port_is_refused(make_hub, tmp_path):
    """The loops share their port with SO_REUSEPORT; a second hub process must not silently join it."""
    hub = make_hub("--threads", "2")
    proc = subprocess.run([conftest.BINARY, "serve", "--port", str(hub.port), "--data", str(tmp_path / "second")],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1 and "address already in use" in proc.stderr
    assert get(hub.http + "/healthz")[0] == 200
