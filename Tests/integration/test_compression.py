"""permessage-deflate (RFC 7692): negotiation, compressed frames both ways (raw zlib on our side of the
test), fragmentation, RSV1 misuse, a zip bomb, and real clients (Python websockets, Node ws) in both modes."""
import asyncio
import os
import shutil
import subprocess
import zlib

import pytest
import websockets

import conftest
from wsraw import RawClient, frame


def compress(data, wbits=15):
    c = zlib.compressobj(wbits=-wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def decompress(data):
    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


@pytest.fixture(scope="module")
def deflate_hub(tmp_path_factory):
    hub = conftest.Hub("--threads", "2", "--echo", data_dir=str(tmp_path_factory.mktemp("deflate"))).start()
    yield hub
    assert hub.alive(), hub.output()
    assert hub.stop() == 0


def negotiate(port, offer):
    c = RawClient(port, handshake=False)
    status, headers, _ = c.handshake(headers={"Sec-WebSocket-Extensions": offer} if offer else {})
    assert status == 101
    return c, headers.get("sec-websocket-extensions")


@pytest.mark.parametrize("offer,expected", [
    ("permessage-deflate", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits=10", "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
    ("permessage-deflate; server_max_window_bits=12", "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
    ("permessage-deflate; client_no_context_takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=8", None),                      # zlib cannot honour 8
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate", "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; mystery_param", None),
    ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
    ("x-webkit-deflate-frame", None),
    (None, None),
])
def test_negotiation(deflate_hub, offer, expected):
    c, ext = negotiate(deflate_hub.port, offer)
    assert ext == expected
    c.close()


@pytest.mark.parametrize("size", [0, 1, 64, 125, 126, 65535, 65536, 500_000])
def test_compressed_echo_both_ways(deflate_hub, size):
    c, ext = negotiate(deflate_hub.port, "permessage-deflate; client_no_context_takeover")
    payload = (b"collab " * (size // 7 + 1))[:size]
    c.send(frame(1, compress(payload), rsv=4))
    fin, rsv, op, data = c.recv_frame()
    assert op == 1 and fin
    got = decompress(data) if rsv == 4 else data
    assert rsv in (0, 4) and got == payload
    if size >= 64:
        assert rsv == 4 and len(data) < len(payload), "large messages come back compressed"


def test_fragmented_compressed_message_and_context_takeover(deflate_hub):
    c, _ = negotiate(deflate_hub.port, "permessage-deflate")
    comp = zlib.compressobj(wbits=-15)
    for text in [b"first message " * 20, b"second message " * 20]:     # client context takeover
        body = comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH)
        body = body[:-4]
        half = len(body) // 2
        c.send(frame(1, body[:half], fin=False, rsv=4) + frame(9, b"ping") + frame(0, body[half:]))
        assert c.recv_frame()[2] == 0xA
        fin, rsv, op, data = c.recv_frame()
        assert decompress(data) == text


@pytest.mark.parametrize("bad", [
    lambda: frame(1, compress(b"abc" * 30), fin=False, rsv=4) + frame(0, compress(b"x"), rsv=4),   # RSV1 on a continuation
    lambda: frame(9, b"p", rsv=4),                                                                  # RSV1 on a control frame
    lambda: frame(1, b"a", rsv=2),                                                                  # RSV2 is never negotiated
])
def test_rsv_misuse_is_a_protocol_error(deflate_hub, bad):
    c, _ = negotiate(deflate_hub.port, "permessage-deflate")
    c.send(bad())
    c.expect_close(1002)


def test_zip_bomb_closes_with_1009_before_the_memory_is_spent(deflate_hub):
    c, _ = negotiate(deflate_hub.port, "permessage-deflate")
    bomb = compress(b"\x00" * (64 << 20))      # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    c.send(frame(2, bomb, rsv=4))
    c.expect_close(1009)


def test_corrupt_compressed_data(deflate_hub):
    c, _ = negotiate(deflate_hub.port, "permessage-deflate")
    c.send(frame(2, b"\xff\xff\xff\xff garbage", rsv=4))
    c.expect_close(1007)


def test_invalid_utf8_inside_compressed_text(deflate_hub):
    c, _ = negotiate(deflate_hub.port, "permessage-deflate")
    c.send(frame(1, compress(b"ok \xc0\xaf"), rsv=4))
    c.expect_close(1007)


@pytest.mark.parametrize("mode", ["shared", "context"])
def test_python_websockets_with_compression(make_hub, mode):
    hub = make_hub("--threads", "1", "--echo", "--compression", mode)

    async def main():
        async with websockets.connect(f"{hub.url}/echo", max_size=None) as ws:
            ext = ws.response_headers["Sec-WebSocket-Extensions"]
            assert ext.startswith("permessage-deflate")
            assert ("server_no_context_takeover" in ext) == (mode == "shared")
            for i in range(20):
                m = f"message {i} " * (i * 50)
                await ws.send(m)
                assert await ws.recv() == m
    asyncio.run(main())


def test_compression_off(make_hub):
    hub = make_hub("--threads", "1", "--echo", "--compression", "off")
    c, ext = negotiate(hub.port, "permessage-deflate")
    assert ext is None
    c.send(frame(1, compress(b"x" * 100), rsv=4))
    c.expect_close(1002)


NODE = r"""
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[2], { perMessageDeflate: true });
const big = 'collab '.repeat(20000);
ws.on('open', () => ws.send(big));
ws.on('upgrade', (res) => console.log('ext', res.headers['sec-websocket-extensions']));
ws.on('message', (d) => { if (d.toString() !== big) { console.log('MISMATCH'); process.exit(1); } ws.close(1000); });
ws.on('close', (c) => { console.log('closed', c); process.exit(c === 1000 ? 0 : 1); });
ws.on('error', (e) => { console.log('error', e.message); process.exit(1); });
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_node_ws_with_compression(deflate_hub, tmp_path):
    out = conftest.run_node(tmp_path, NODE, deflate_hub.url + "/echo")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ext permessage-deflate" in out.stdout


def test_shared_compressed_broadcast_reaches_everyone(deflate_hub):
    """A broadcast is compressed once and the same compressed frame goes to every compressing member;
    a member without compression gets it plain."""
    import json
    from hubclient import create_session

    async def main():
        code = create_session(deflate_hub)["code"]
        url = f"{deflate_hub.url}/ws?session={code}"
        a = await websockets.connect(url, subprotocols=["collabhub.v1"])
        b = await websockets.connect(url, subprotocols=["collabhub.v1"])
        plain = await websockets.connect(url, subprotocols=["collabhub.v1"], compression=None)
        for i, ws in enumerate([a, b, plain]):
            await ws.send(json.dumps({"type": "join", "name": f"m{i}"}))
            while json.loads(await ws.recv())["type"] != "joined":
                pass
        text = "long chat " * 200
        await a.send(json.dumps({"type": "chat", "id": "1", "text": text}))
        for ws in [b, plain]:
            while (m := json.loads(await ws.recv()))["type"] != "chat":
                pass
            assert m["text"] == text
        for ws in [a, b, plain]:
            await ws.close()
    asyncio.run(main())
