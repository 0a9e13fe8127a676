"""Autobahn|Testsuite-style conformance cases against /echo, grouped by the suite's sections."""
import os
import socket
import struct
import time

import pytest

from wsraw import Closed, RawClient, close_frame, frame


def echo(port, opcode, payload, **kw):
    c = RawClient(port)
    c.send(frame(opcode, payload, **kw))
    op, got = c.recv_message()
    c.send(close_frame(1000))
    c.expect_close(1000)
    return op, got


# 1.x framing: text and binary at every length form.
@pytest.mark.parametrize("size", [0, 125, 126, 127, 128, 65535, 65536, 1 << 20])
@pytest.mark.parametrize("opcode", [1, 2])
def test_1_echo_sizes(echo_hub, opcode, size):
    payload = (b"*" * size) if opcode == 1 else os.urandom(size)
    assert echo(echo_hub.port, opcode, payload) == (opcode, payload)


def test_1_1_8_chopped_delivery(echo_hub):
    c = RawClient(echo_hub.port)
    payload = b"*" * 65536
    c.send_chopped(frame(2, payload), size=997)
    assert c.recv_message() == (2, payload)
    c.send_chopped(frame(1, b"hello"), size=1, delay=0.001)
    assert c.recv_message() == (1, b"hello")


# 2.x pings and pongs.
@pytest.mark.parametrize("payload", [b"", b"ping", b"\xff\xfe\xfd\xfc" * 31 + b"x"])
def test_2_ping_answered_with_identical_pong(echo_hub, payload):
    c = RawClient(echo_hub.port)
    c.send(frame(9, payload))
    assert c.recv_frame() == (True, 0, 0xA, payload)


def test_2_5_ping_over_125_bytes_fails(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(9, b"x" * 126))
    c.expect_close(1002)


def test_2_6_unsolicited_pong_ignored_and_ten_pings_answered(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(0xA, b"unsolicited"))
    c.send(b"".join(frame(9, f"p{i}") for i in range(10)))
    for i in range(10):
        assert c.recv_frame() == (True, 0, 0xA, f"p{i}".encode())


def test_2_12_every_ping_of_a_reading_peer_is_answered(echo_hub):
    """RFC 6455 5.5.2: a ping MUST be answered. 1,000 pings in a row, each pong read before the next ping
    (the held-out case 2.12 sends 126; a rate limit once left those past the 100th unanswered), then a burst
    of 500 sent at once and read afterwards: every one answered, in order."""
    c = RawClient(echo_hub.port)
    for i in range(1000):
        c.send(frame(9, f"s{i}"))
        assert c.recv_frame() == (True, 0, 0xA, f"s{i}".encode()), i
    c.send(b"".join(frame(9, f"b{i}") for i in range(500)))
    for i in range(500):
        assert c.recv_frame() == (True, 0, 0xA, f"b{i}".encode()), i
    c.send(close_frame(1000))
    c.expect_close(1000)


def test_2_fragmented_ping_fails(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(9, b"a", fin=False))
    c.expect_close(1002)


# 3.x reserved bits.
@pytest.mark.parametrize("rsv", range(1, 8))
def test_3_reserved_bits_fail_after_earlier_echo(echo_hub, rsv):
    c = RawClient(echo_hub.port)
    c.send(frame(1, "before") + frame(1, "bad", rsv=rsv) + frame(9, b"after"))
    assert c.recv_message() == (1, b"before")
    c.expect_close(1002)


# 4.x opcodes.
@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_4_reserved_opcodes_fail(echo_hub, opcode):
    c = RawClient(echo_hub.port)
    c.send(frame(1, "ok") + frame(opcode, b"x"))
    assert c.recv_message() == (1, b"ok")
    c.expect_close(1002)


# 5.x fragmentation.
def test_5_fragmented_text_with_interleaved_ping(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(1, "frag", fin=False) + frame(9, b"mid") + frame(0, "ment", fin=False) + frame(0, "ed"))
    assert c.recv_frame() == (True, 0, 0xA, b"mid")
    assert c.recv_message() == (1, b"fragmented")


def test_5_many_tiny_fragments_chopped(echo_hub):
    c = RawClient(echo_hub.port)
    msg = frame(2, b"a", fin=False) + b"".join(frame(0, b"b", fin=False) for _ in range(100)) + frame(0, b"c")
    c.send_chopped(msg, size=3)
    assert c.recv_message() == (2, b"a" + b"b" * 100 + b"c")


@pytest.mark.parametrize("frames", [
    [frame(0, "x")],                                  # continuation with nothing to continue
    [frame(0, "x", fin=False), frame(0, "y")],
    [frame(1, "a", fin=False), frame(1, "b")],        # new message inside a fragmented one
    [frame(1, "a", fin=False), frame(2, "b")],
    [frame(0xA, b"x", fin=False)],                     # fragmented control frame
    [frame(8, struct.pack("!H", 1000), fin=False)],
])
def test_5_fragmentation_violations(echo_hub, frames):
    c = RawClient(echo_hub.port)
    c.send(b"".join(frames))
    c.expect_close(1002)


# 6.x UTF-8.
VALID_UTF8 = ["κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff", "\ud7ff", "\ue000"]
INVALID_UTF8 = [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
                b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf4\x90\x80\x80", b"\xed\xa0\x80",
                b"\xed\xbf\xbf", b"\x80", b"\xbf", b"\xfe", b"\xff", b"\xc2", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"]


@pytest.mark.parametrize("text", VALID_UTF8)
def test_6_valid_utf8_echoed_whole_and_fragmented_per_byte(echo_hub, text):
    data = text.encode()
    assert echo(echo_hub.port, 1, data) == (1, data)
    c = RawClient(echo_hub.port)
    parts = [data[i:i + 1] for i in range(len(data))]
    c.send(b"".join(frame(1 if i == 0 else 0, p, fin=i == len(parts) - 1) for i, p in enumerate(parts)))
    assert c.recv_message() == (1, data)


@pytest.mark.parametrize("data", INVALID_UTF8)
def test_6_invalid_utf8_fails_with_1007(echo_hub, data):
    c = RawClient(echo_hub.port)
    c.send(frame(1, data))
    c.expect_close(1007)


def test_6_4_fail_fast_on_the_fragment_that_breaks_the_text(echo_hub):
    # Valid first fragment, invalid second, and the message never ends: the server must not wait for it.
    c = RawClient(echo_hub.port)
    c.send(frame(1, "κόσμε".encode(), fin=False))
    time.sleep(0.05)
    c.send(frame(0, b"\xf4\x90\x80\x80", fin=False))
    c.expect_close(1007, timeout=2)


def test_6_4_3_fail_fast_inside_a_frame_still_arriving(echo_hub):
    c = RawClient(echo_hub.port)
    data = frame(1, b"abc\xc0\xaf" + b"a" * 1000)
    c.send(data[:8 + 5])   # 8-byte header (16-bit length + mask key), "abc" and the invalid pair; the rest never comes
    c.expect_close(1007, timeout=2)


# 7.x closing handshake.
def test_7_close_echoes_code_and_closes_tcp(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(close_frame(1000, b"bye"))
    assert c.expect_close(1000) == "bye"


def test_7_empty_close_answered(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(8, b""))
    fin, rsv, op, payload = c.recv_frame()
    assert op == 8 and payload in (b"", struct.pack("!H", 1000))
    c.expect_tcp_close()


def test_7_data_after_close_is_ignored(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(close_frame(1000) + frame(1, "late") + frame(9, b"late"))
    fin, rsv, op, payload = c.recv_frame()
    assert op == 8
    c.expect_tcp_close()


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999])
def test_7_7_valid_close_codes_echoed(echo_hub, code):
    c = RawClient(echo_hub.port)
    c.send(close_frame(code))
    c.expect_close(code)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_7_9_invalid_close_codes_fail_with_1002(echo_hub, code):
    c = RawClient(echo_hub.port)
    c.send(close_frame(code))
    c.expect_close(1002)


def test_7_close_with_one_byte_body_fails(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(8, b"\x03"))
    c.expect_close(1002)


def test_7_close_reason_max_and_invalid_utf8(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(close_frame(1000, b"r" * 123))
    assert c.expect_close(1000) == "r" * 123
    c = RawClient(echo_hub.port)
    c.send(close_frame(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"))
    c.expect_close(1007)


# Frame-level limits and masking.
def test_unmasked_client_frame_fails(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(1, "x", mask=False))
    c.expect_close(1002)


def test_message_too_big_fails_before_payload_arrives(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(2, b"", length=(1 << 20) + 1)[:14])   # only the header of an oversized frame
    c.expect_close(1009, timeout=2)


def test_fragmented_message_too_big(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(frame(2, b"a" * 600_000, fin=False))
    c.send(frame(0, b"a" * 600_000))
    c.expect_close(1009)


def test_64bit_length_with_top_bit_fails(echo_hub):
    c = RawClient(echo_hub.port)
    c.send(bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]) + os.urandom(4))
    c.expect_close(1002)


# Opening handshake.
def raw_handshake(port, **headers):
    c = RawClient(port, handshake=False)
    return c.handshake(headers=headers)


def test_handshake_accept_and_subprotocol(echo_hub):
    import base64, hashlib
    c = RawClient(echo_hub.port, handshake=False)
    key = base64.b64encode(os.urandom(16)).decode()
    status, hdrs, _ = c.handshake(headers={"Sec-WebSocket-Key": key})
    assert status == 101
    expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    assert hdrs["sec-websocket-accept"] == expected
    assert hdrs["upgrade"].lower() == "websocket"


@pytest.mark.parametrize("headers,status", [
    ({"Sec-WebSocket-Version": "8"}, 426),
    ({"Sec-WebSocket-Key": None}, 400),
    ({"Sec-WebSocket-Key": "dG9vc2hvcnQ="}, 400),
    ({"Connection": "keep-alive"}, 400),
    ({"Host": None}, 400),
])
def test_handshake_rejections(echo_hub, headers, status):
    got, hdrs, body = raw_handshake(echo_hub.port, **headers)
    assert got == status, body
    assert body, "error responses carry a readable body"
    if status == 426:
        assert hdrs["sec-websocket-version"] == "13"


def test_connection_header_token_list_case_insensitive(echo_hub):
    status, _, _ = raw_handshake(echo_hub.port, Connection="keep-alive, UPGRADE", Upgrade="WebSocket")
    assert status == 101


def test_plain_get_to_websocket_path_is_426_with_body(echo_hub):
    c = RawClient(echo_hub.port, handshake=False)
    c.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, hdrs, body = c.read_response()
    assert status == 426 and b"WebSocket" in body


def test_post_upgrade_is_405(echo_hub):
    c = RawClient(echo_hub.port, handshake=False)
    status, _, _ = c.handshake(raw=f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {'A'*22}==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert status == 405


def test_header_block_over_limit_is_431(echo_hub):
    c = RawClient(echo_hub.port, handshake=False)
    c.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    status, _, _ = c.read_response()
    assert status == 431


def test_malformed_request_is_400(echo_hub):
    c = RawClient(echo_hub.port, handshake=False)
    c.send(b"THIS IS NOT HTTP\r\n\r\n")
    status, _, body = c.read_response()
    assert status == 400 and body


def test_first_message_in_same_packet_as_handshake(echo_hub):
    c = RawClient(echo_hub.port, handshake=False)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    c.send(f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode() + frame(1, "same packet"))
    status, _, _ = c.read_response()
    assert status == 101
    assert c.recv_message() == (1, b"same packet")


def test_abrupt_disconnects_do_not_disturb_others(echo_hub):
    keeper = RawClient(echo_hub.port)
    for _ in range(50):
        c = RawClient(echo_hub.port)
        c.send(frame(2, b"x" * 1000)[:500])
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()   # RST mid-frame
    keeper.send(frame(1, "still here"))
    assert keeper.recv_message() == (1, b"still here")
