"""A deliberately low-level WebSocket client for conformance tests: it sends exactly the bytes a test
asks for (bad frames included) and reports exactly what the server answered."""
import base64
import os
import socket

import contract
import struct
import time


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, m | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code=None, reason=b"", **kw):
    body = b"" if code is None else struct.pack("!H", code) + reason
    return frame(0x8, body, **kw)


class Closed(Exception):
    pass


class RawClient:
    def __init__(self, port, path="/echo", headers=None, handshake=True, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if handshake:
            status, hdrs, _ = self.handshake(path, headers)
            assert status == 101, (status, hdrs)

    def handshake(self, path="/echo", headers=None, raw=None):
        key = base64.b64encode(os.urandom(16)).decode()
        base = {"Host": "127.0.0.1", "Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        if headers:
            base.update(headers)
        request = raw or (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in base.items() if v is not None) + "\r\n")
        self.sock.sendall(request.encode() if isinstance(request, str) else request)
        status, hdrs, body = self.read_response()
        line = (request.encode() if isinstance(request, str) else request).split(b"\r\n", 1)[0].split(b" ")
        if len(line) == 3 and line[0].isalpha():
            contract.observe(self.sock.getpeername()[1], line[0].decode(), line[1].decode("latin-1"), status,
                             hdrs.get("content-type"), body)
        return status, hdrs, body

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("closed before response")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        body = b""
        n = int(hdrs.get("content-length", "0"))
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def send(self, data):
        self.sock.sendall(data)

    def send_chopped(self, data, size=1, delay=0.0):
        for i in range(0, len(data), size):
            self.sock.sendall(data[i:i + size])
            if delay:
                time.sleep(delay)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise Closed("TCP closed")
            self.buf += chunk

    def recv_frame(self):
        """Returns (fin, rsv, opcode, payload). Raises Closed on TCP close."""
        self._fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._fill(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._fill(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        self._fill(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload

    def recv_message(self):
        """Next data message (opcode, payload), answering nothing; control frames are returned as is."""
        fin, rsv, op, payload = self.recv_frame()
        return op, payload

    def expect_close(self, code, timeout=5):
        """Reads until the server's close frame; asserts its code, then that TCP closes."""
        self.sock.settimeout(timeout)
        while True:
            fin, rsv, op, payload = self.recv_frame()
            if op == 0x8:
                got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                assert got == code, f"expected close {code}, got {got} {payload[2:]!r}"
                reason = payload[2:].decode("utf-8")
                break
        # The server closes TCP after its close frame (answer ours or fail the connection).
        try:
            self.send(close_frame(code if code and code not in (1005, 1006) else 1000))
        except OSError:
            pass
        end = time.time() + timeout
        while time.time() < end:
            try:
                if not self.sock.recv(65536):
                    return reason
            except (ConnectionResetError, BrokenPipeError):
                return reason
        raise AssertionError("server did not close TCP")

    def expect_tcp_close(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
        except (ConnectionResetError, BrokenPipeError):
            return

    def close(self):
        self.sock.close()
