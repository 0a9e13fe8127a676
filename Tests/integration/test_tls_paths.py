"""What a TLS session costs and which path it takes (issue 30, item 5): the hub asks OpenSSL for kernel TLS
(`SSL_OP_ENABLE_KTLS`) and logs, once, which record path its sessions use; AES-128-GCM is preferred; a busy
session keeps its record buffers, and an idle one gives them back (`TLSBuffers`), which the heap shows."""
import asyncio
import json
import re
import ssl
import time
import urllib.request

import pytest
import websockets

import conftest


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return conftest.localhost_cert(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_hub(certs, tmp_path):
    hub = conftest.Hub("--threads", "1", "--echo", "--max-connections-per-address", "0",
                       "--tls-cert", str(certs / "cert.pem"), "--tls-key", str(certs / "key.pem"),
                       data_dir=str(tmp_path / "data")).start()
    yield hub
    if hub.proc.poll() is None:  # (the first test stops it to read its whole log)
        assert hub.alive(), hub.output()
        assert hub.stop() == 0


def kernel_offers_tls():
    try:
        return "tls" in open("/proc/sys/net/ipv4/tcp_available_ulp").read().split()
    except OSError:
        return False


def context(certs, **kw):
    ctx = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


async def echo_once(port, ctx, text="hello"):
    async with websockets.connect(f"wss://localhost:{port}/echo", ssl=ctx) as ws:
        await ws.send(text)
        assert await ws.recv() == text
        return ws.transport.get_extra_info("ssl_object").cipher()[0]


def test_the_tls_path_in_use_is_logged_once(tls_hub, certs):
    for _ in range(3):
        asyncio.run(echo_once(tls_hub.port, context(certs)))
    time.sleep(0.2)
    assert tls_hub.stop() == 0
    out = tls_hub.output()
    lines = [l for l in out.splitlines() if "TLS path in use:" in l]
    assert len(lines) == 1, out  # once per path, however many sessions took it
    offered = kernel_offers_tls()
    assert f"ktls_offered={str(offered).lower()}" in lines[0], lines[0]
    if not offered:
        # This kernel has no tls ULP: OpenSSL keeps the record layer, and the log says why.
        assert "OpenSSL in user space" in lines[0] and "no tls ULP" in lines[0], lines[0]
        assert "ktls_send=false" in lines[0] and "ktls_receive=false" in lines[0], lines[0]
    else:
        assert re.search(r"ktls_send=(true|false)", lines[0]), lines[0]


def test_aes_128_gcm_is_preferred(tls_hub, certs):
    # TLS 1.3: a client that offers AES-256 first still gets AES-128-GCM (server preference).
    assert asyncio.run(echo_once(tls_hub.port, context(certs))) == "TLS_AES_128_GCM_SHA256"
    # TLS 1.2 (ECDHE with the RSA certificate).
    ctx12 = context(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert asyncio.run(echo_once(tls_hub.port, ctx12)) == "ECDHE-RSA-AES128-GCM-SHA256"
    # A TLS 1.2 client without AES-GCM still gets ChaCha20.
    chacha = context(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    chacha.set_ciphers("ECDHE+CHACHA20")
    assert asyncio.run(echo_once(tls_hub.port, chacha)) == "ECDHE-RSA-CHACHA20-POLY1305"


def heap(hub, ctx):
    with urllib.request.urlopen(f"https://localhost:{hub.port}/metrics", context=ctx, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("collabhub_heap_bytes "):
                return int(float(line.split()[1]))
    raise AssertionError("no collabhub_heap_bytes")


@conftest.no_sanitizer("heap given back")
def test_idle_sessions_give_their_record_buffers_back(tls_hub, certs):
    """Busy sessions keep their ~17 KB read and write buffers (no allocation per record); a session that
    moved nothing for a second frees them: the heap falls by about that much per session."""
    ctx = context(certs)
    count = 100

    async def go():
        conns = [await websockets.connect(f"wss://localhost:{tls_hub.port}/echo", ssl=ctx) for _ in range(count)]
        for ws in conns:  # every session reads and writes a record: both buffers exist
            await ws.send("x" * 100)
        for ws in conns:
            assert await ws.recv() == "x" * 100
        busy = heap(tls_hub, ctx)
        await asyncio.sleep(3.0)  # idle: the sweep (every second) frees what moved nothing for a second
        idle = heap(tls_hub, ctx)
        # Still open and working after giving the buffers back.
        for ws in conns:
            await ws.send("again")
        for ws in conns:
            assert await ws.recv() == "again"
        for ws in conns:
            await ws.close()
        return busy, idle

    busy, idle = asyncio.run(go())
    freed = (busy - idle) / count
    print(f"heap per TLS session: {freed:.0f} B given back once idle")
    assert freed > 16 * 1024, f"only {freed:.0f} B per idle session given back (busy {busy}, idle {idle})"
