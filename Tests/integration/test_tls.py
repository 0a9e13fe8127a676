"""wss:// and https:// with OpenSSL on the hub's own loops: real clients over TLS, protocol versions,
ALPN, non-TLS input, stalled handshakes, bad certificates."""
import asyncio
import json
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
import websockets

import conftest


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "other-key.pem"), "-out", str(d / "other.pem"),
                    "-days", "2", "-subj", "/CN=other"], check=True, capture_output=True)
    return d


@pytest.fixture(scope="module")
def tls_hub(certs, tmp_path_factory):
    hub = conftest.Hub("--threads", "2", "--echo", "--handshake-timeout", "1", "--tls-cert", str(certs / "cert.pem"),
                       "--tls-key", str(certs / "key.pem"), data_dir=str(tmp_path_factory.mktemp("tlsdata"))).start()
    yield hub
    assert hub.alive(), hub.output()
    assert hub.stop() == 0


def context(certs):
    return ssl.create_default_context(cafile=str(certs / "cert.pem"))


def test_wss_echo_and_https_api(tls_hub, certs):
    ctx = context(certs)

    async def main():
        async with websockets.connect(f"wss://localhost:{tls_hub.port}/echo", ssl=ctx, max_size=None) as ws:
            for m in ["hello", "ü" * 40000, bytes(range(256)) * 1000, ""]:
                await ws.send(m)
                assert await ws.recv() == m
        req = urllib.request.Request(f"https://localhost:{tls_hub.port}/api/sessions", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
        code = json.load(urllib.request.urlopen(req, context=ctx))["code"]
        clients = []
        for i in range(4):   # sessions hash to either loop: the TLS session moves with the socket
            c = await websockets.connect(f"wss://localhost:{tls_hub.port}/ws?session={code}", ssl=ctx, subprotocols=["collabhub.v1"])
            await c.send(json.dumps({"type": "join", "name": f"n{i}"}))
            while json.loads(await c.recv())["type"] != "joined":
                pass
            clients.append(c)
        await clients[0].send(json.dumps({"type": "chat", "id": "1", "text": "over tls"}))
        for c in clients[1:]:
            while (m := json.loads(await c.recv()))["type"] != "chat":
                pass
            assert m["text"] == "over tls"
        for c in clients:
            await c.close()
    asyncio.run(main())
    with urllib.request.urlopen(f"https://localhost:{tls_hub.port}/healthz", context=ctx) as r:
        assert r.read().startswith(b"ok")


def test_wss_bursts_larger_than_the_read_buffer(tls_hub, certs):
    """Read-ahead takes every record a read() finds; a burst bigger than the loop's 256 KiB read buffer
    leaves records inside OpenSSL that the socket will not announce again: none may be stranded."""
    ctx = context(certs)

    async def main():
        async with websockets.connect(f"wss://localhost:{tls_hub.port}/echo", ssl=ctx, max_size=None) as ws:
            for round in range(3):
                msgs = [f"{round}-{i}-" + "x" * (20000 + 997 * i) for i in range(60)]   # ~2 MB in one go
                for m in msgs:
                    await ws.send(m)
                for m in msgs:
                    assert await asyncio.wait_for(ws.recv(), 10) == m
    asyncio.run(main())


def s_client(port, *args, stdin=b"Q\n"):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args],
                          input=stdin, capture_output=True, timeout=20)


def test_openssl_s_client_alpn_and_versions(tls_hub):
    out = s_client(tls_hub.port, "-alpn", "h2,http/1.1").stdout.decode()
    assert "ALPN protocol: http/1.1" in out
    assert "Protocol  : TLSv1.3" in out or "TLSv1.3" in out
    out12 = s_client(tls_hub.port, "-tls1_2").stdout.decode()
    assert "TLSv1.2" in out12 and "Cipher is" in out12
    old = s_client(tls_hub.port, "-tls1_1")
    assert b"Cipher is (NONE)" in old.stdout or old.returncode != 0


def test_plain_http_and_garbage_to_tls_port_are_closed(tls_hub, certs):
    for payload in [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"\x00\xff" * 300]:
        s = socket.create_connection(("127.0.0.1", tls_hub.port), timeout=5)
        s.sendall(payload)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
        assert b"HTTP/1.1 200" not in data
        s.close()
    # Others are unaffected.
    with urllib.request.urlopen(f"https://localhost:{tls_hub.port}/healthz", context=context(certs)) as r:
        assert r.status == 200


def test_stalled_tls_handshake_is_closed(tls_hub):
    s = socket.create_connection(("127.0.0.1", tls_hub.port), timeout=5)
    start = time.time()
    assert s.recv(10) == b""       # the hub gives up after --handshake-timeout
    assert time.time() - start < 4
    s.close()


def test_raw_frames_over_tls(tls_hub, certs):
    """A few conformance cases through TLS: fragmentation with interleaved ping, a protocol error."""
    from wsraw import RawClient, frame
    raw = socket.create_connection(("127.0.0.1", tls_hub.port), timeout=5)
    tls = context(certs).wrap_socket(raw, server_hostname="localhost")
    c = RawClient.__new__(RawClient)
    c.sock, c.buf = tls, b""
    status, _, _ = c.handshake()
    assert status == 101
    c.send(frame(1, "frag", fin=False) + frame(9, b"p") + frame(0, "ment"))
    assert c.recv_frame() == (True, 0, 0xA, b"p")
    assert c.recv_message() == (1, b"fragment")
    c.send(frame(1, "x", rsv=2))
    c.expect_close(1002)


@pytest.mark.parametrize("cert,key,message", [
    ("missing.pem", "key.pem", "cannot read TLS certificate"),
    ("cert.pem", "missing.pem", "cannot read TLS key"),
    ("cert.pem", "other-key.pem", "mismatch"),
    ("key.pem", "key.pem", "cannot load TLS certificate"),
])
def test_bad_certificate_or_key_stops_startup(certs, tmp_path, cert, key, message):
    proc = subprocess.run([conftest.BINARY, "serve", "--port", "0", "--data", str(tmp_path), "--tls-cert", str(certs / cert),
                           "--tls-key", str(certs / key)], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1
    assert message in proc.stderr and (cert in proc.stderr or key in proc.stderr), proc.stderr
