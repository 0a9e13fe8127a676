"""Whole-connection hostile-client fuzz over loopback. The hub has no I/O-free connection state machine to
fuzz in process yet, so this stands in for it: for CONNFUZZ_SECONDS (40) several threads (CONNFUZZ_THREADS,
8) run short-lived raw-socket clients, each playing one randomly chosen scenario against one hub:

1. random bytes;
2. a valid HTTP request, then mutated (bit flips, truncation, duplication/pipelining, inserted CR/LF/NUL,
   huge header values, odd Content-Length / Transfer-Encoding / versions / methods / paths);
3. a valid upgrade on /ws?session=CODE, /ws, /watch, /echo or /publish?key=K (with odd
   Sec-WebSocket-Extensions offers now and then), then a random mix of valid masked frames carrying valid
   (and not so valid) protocol JSON, fragmented messages, control frames, frames with bad RSV bits,
   opcodes and lengths, compressed frames (RSV1) with real or random deflate data, bursts, and random
   pauses between writes: 0-300 ms "ticks", sometimes a stall past the hub's 1 s ping interval or 2 s
   handshake timeout so its timers fire mid-exchange. A client reads everything, only the handshake, or
   nothing; it ends with an RST (SO_LINGER 0), a half close, a close frame or a plain close.

What a client reads is checked as it comes (the oracle): status lines are well formed and never 500; a
101 has the right Sec-WebSocket-Accept and a well-formed extension answer; server frames are unmasked,
use known opcodes, RSV1 only on the first frame of a message when deflate was negotiated, control frames
are short and whole, nothing follows a close frame, close codes are ones a server may send, text is
valid UTF-8 (inflated when compressed) and, on the JSON endpoints, a JSON object with a string `type`.

After the fuzz: the hub is alive, /healthz answered 200 all along and still does, a normal join + chat
+ ack round trip works, RSS stayed below RSS_LIMIT_MIB, every connection is gone from the gauges, and the
hub shuts down cleanly (exit 0).

Replay: every client's behaviour follows from its sub-seed (derived from CONNFUZZ_SEED, the thread and the
client's number) and is logged with it. A failure names the seed and the sub-seeds involved;
`CONNFUZZ_SEED=S` replays the whole run (timing differs), `CONNFUZZ_REPLAY=sub1,sub2` runs only those
clients, one after the other, against a fresh hub, with the same checks."""
import asyncio
import base64
import hashlib
import json
import os
import random
import re
import select
import socket
import struct
import threading
import time
import urllib.request
import zlib
import conftest

from test_hostile import (DECLINED, KEY, RSSWatch, all_metrics, create_session, http_get,
                          publish, round_trip, rss_kib, start_hub, stop_hub)

SEED = int(os.environ.get("CONNFUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
SECONDS = float(os.environ.get("CONNFUZZ_SECONDS", "40"))
THREADS = int(os.environ.get("CONNFUZZ_THREADS", "8"))
REPLAY = [int(s) for s in os.environ.get("CONNFUZZ_REPLAY", "").replace(" ", "").split(",") if s]
RSS_LIMIT_MIB = conftest.rss_limit_mib(200)
MAX_MESSAGE = 65536
CLIENT_LIFETIME = 5.0          # a client's own cap, stalls included (seconds)
HUB_ARGS = ("--echo", "--threads", "2", "--publish-key", KEY, "--handshake-timeout", "2", "--ping-interval", "1",
            "--max-message-size", str(MAX_MESSAGE))
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# RFC 7692 §7.1.2: window bits 8-15 (test_hostile's pattern allows 9-15 only: 8 is legal for the client's window).
WELL_FORMED_RESPONSE = re.compile(r"^permessage-deflate(; (server_no_context_takeover|client_no_context_takeover|"
                                  r"server_max_window_bits=([89]|1[0-5])|client_max_window_bits=([89]|1[0-5])))*$")
VALID_CLOSE_FROM_SERVER = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))


class Stop(Exception):
    """Ends a client early (the hub closed, a write blocked, the client's time is up)."""


# ---------------------------------------------------------------------------------------------------
# JSON with deliberate oddities

class Raw(str):
    """JSON text inserted verbatim (non-standard numbers, escaped keys, broken syntax)."""


class Pairs(list):
    """An object as (key, value) pairs: duplicate keys and raw keys allowed."""


def dump(v, ascii_only=True):
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Pairs):
        return "{" + ",".join(dump_key(k, ascii_only) + ":" + dump(x, ascii_only) for k, x in v) + "}"
    if isinstance(v, dict):
        return "{" + ",".join(dump_key(k, ascii_only) + ":" + dump(x, ascii_only) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(dump(x, ascii_only) for x in v) + "]"
    return json.dumps(v, ensure_ascii=ascii_only)


def dump_key(k, ascii_only):
    return str(k) if isinstance(k, Raw) else json.dumps(k, ensure_ascii=ascii_only)


NUMBERS = [0, -0.0, 1, -1, 2 ** 31 - 1, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -2 ** 63, -2 ** 63 - 1,
           10 ** 40, 1e300, -1e300, 5e-324, 1.5, 0.1, 1000, 1001, 0.001, 0.0009]
RAW_NUMBERS = ["1e999", "-1e999", "-0", "1E+2", "0.000000000000000000001", "123456789012345678901234567890",
               "1e-400", "NaN", "Infinity", "01", "1.", ".5", "+1", "0x10", "9223372036854775808"]
IDS = ["m1", "m2", "m3", "c1", "h1", "x"]
CLIENT_IDS = ["c1", "c2", "c3", "c4", "h1", "tab"]
# Valid resume secrets (a client_id with the same one is the same member) and a few the hub refuses.
RESUME_SECRETS = ["secret-one-0123456789", "secret_two_0123456789", "A" * 128, "short", "x" * 129, "bad secret/0123456789"]


def rand_str(r):
    k = r.random()
    if k < 0.25:
        return "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789 _-.:") for _ in range(r.randint(1, 24)))
    if k < 0.32:
        return ""
    if k < 0.42:
        return r.choice("ae") + "\u0301" * r.randint(1, 400)           # one grapheme, many scalars
    if k < 0.52:
        return r.choice(["\u754c", "\U0001F600", "\u202e", "\u00e9", "\u0000", "\n", "\t", "\"", "\\", "\u2028"]) * r.randint(1, 100)
    if k < 0.57:
        return "x" + r.choice(["\ud800", "\udfff", "\ud83d"]) + "y"       # lone surrogates
    if k < 0.67:
        return "y" * r.choice([63, 64, 65, 127, 128, 129, 200, 201, 256, 257, 300, 1024, 1025])
    if k < 0.74:
        return "z" * r.choice([1000, 16384, 16385, 30000, 65000, 65536, 70000])
    if k < 0.85:
        return r.choice(IDS + CLIENT_IDS + ["run:r1", "dashboard:team-a", "r1", "team-a", "start", "stop"])
    return "".join(chr(r.choice([r.randint(0x20, 0x7E), r.randint(0xA0, 0x2FF), r.randint(0x300, 0x36F),
                                r.randint(0x4E00, 0x9FFF), r.randint(0x1F300, 0x1FAFF)])) for _ in range(r.randint(1, 64)))


def rand_any(r, depth=0):
    k = r.random()
    if k < 0.2:
        return r.choice(NUMBERS) if r.random() < 0.8 else r.uniform(-1e6, 1e6)
    if k < 0.28:
        return Raw(r.choice(RAW_NUMBERS))
    if k < 0.55:
        return rand_str(r)
    if k < 0.62:
        return r.choice([True, False, None])
    if k < 0.8 and depth < 3:
        return [rand_any(r, depth + 1) for _ in range(r.randint(0, 4))]
    if depth < 3:
        return {rand_str(r)[:20]: rand_any(r, depth + 1) for _ in range(r.randint(0, 4))}
    return None


def pick(r, good, p_good=0.75):
    """`good` (a value or a callable) most of the time, otherwise any value at all."""
    if r.random() < p_good:
        return good() if callable(good) else good
    return rand_any(r)


def type_token(r, name, badness=1.0):
    if r.random() >= 0.15 * badness:
        return name
    if r.random() < 0.5:                                             # escaped: the same string to a parser
        i = r.randrange(len(name))
        return Raw('"' + name[:i] + "\\u%04x" % ord(name[i]) + name[i + 1:] + '"')
    return r.choice([name.upper(), name + "x", name[:-1], "", 7, None, [name]])


class MessageGen:
    """Protocol messages for one endpoint, mostly well formed, with random field values."""

    def __init__(self, r, world, code, host_key, badness):
        self.r, self.world, self.code, self.host_key = r, world, code, host_key
        self.badness = badness          # 0: always well formed ... 1: the full mix of odd values

    def pick(self, good, p_good=0.75):
        return pick(self.r, good, 1 - (1 - p_good) * self.badness)

    def type_token(self, name):
        return type_token(self.r, name, self.badness)

    def join(self):
        r = self.r
        p = Pairs([("type", self.type_token("join")), ("name", self.pick(lambda: r.choice(["Ann", "Bob", "\u754c\u754c", "a\u0301"]), 0.8))])
        if r.random() < 0.7:
            p.append(("client_id", self.pick(lambda: r.choice(CLIENT_IDS))))
            if r.random() < 0.6:
                p.append(("resume_secret", self.pick(lambda: r.choice(RESUME_SECRETS[:3] if r.random() < 0.85 else RESUME_SECRETS))))
        if r.random() < 0.3:
            p.append(("host_key", self.host_key if self.host_key and r.random() < 0.7 else rand_any(r)))
        if r.random() < 0.2:
            p.append(("resume_from", self.pick(lambda: r.choice([0, 1, 5, 50, 2 ** 63 - 1]), 0.5)))
        if r.random() < 0.15:
            p.append(("session", self.pick(lambda: self.code or r.choice(self.world.shared), 0.6)))
        if r.random() < 0.05 * self.badness:
            p.append(("token", self.pick("e30.e30.sig", 0.3)))
        return p

    def chat(self):
        r = self.r
        p = Pairs([("type", self.type_token("chat")), ("id", self.pick(lambda: r.choice(IDS) if r.random() < 0.5 else "f%d" % r.randrange(10 ** 6), 0.85))])
        kind = self.pick(lambda: r.choice(["text", "text", "file", "code", "system"]), 0.85)
        if r.random() < 0.8:
            p.append(("kind", kind))
        if kind in ("text", "system") or r.random() < 0.3:
            p.append(("text", self.pick(lambda: rand_str(r) or "hi", 0.85)))
        if kind == "file" or r.random() < 0.05:
            p.append(("file", self.pick(lambda: {"name": self.pick("a.txt"), "size": self.pick(lambda: r.choice([0, 10, 2 ** 63 - 1])),
                                               "url": self.pick(lambda: r.choice(["https://x/y", "/f", "javascript:1"]))})))
        if kind == "code" or r.random() < 0.05:
            p.append(("code", self.pick(lambda: {"language": self.pick("swift"), "source": self.pick(lambda: rand_str(r))})))
        if r.random() < 0.2:
            p.append(("meta", self.pick(lambda: {"k": rand_any(r)})))
        return p

    def cursor(self):
        r = self.r
        p = Pairs([("type", self.type_token("cursor")), ("x", self.pick(lambda: r.uniform(0, 2000))), ("y", self.pick(lambda: r.uniform(0, 2000)))])
        if r.random() < 0.3:
            p.append(("el", self.pick(lambda: rand_str(r))))
        if r.random() < 0.2:
            p.append(("sel", rand_any(r)))
        return p

    def typing(self):
        return Pairs([("type", type_token(self.r, "typing")), ("state", pick(self.r, lambda: self.r.choice(["start", "stop"])))])

    def event(self):
        r = self.r
        p = Pairs([("type", self.type_token("event")), ("name", self.pick(lambda: r.choice(["env_changed", "n%d" % r.randrange(100), "a.b:c-d_e"]), 0.8)),
                   ("data", self.pick(lambda: {"v": rand_any(r)}, 0.8))])
        if r.random() < 0.4:
            p.append(("durable", self.pick(lambda: r.random() < 0.5, 0.85)))
        if r.random() < 0.6:
            p.append(("id", self.pick(lambda: r.choice(IDS) if r.random() < 0.5 else "e%d" % r.randrange(10 ** 6))))
        return p

    def replay(self):
        r = self.r
        p = Pairs([("type", self.type_token("replay"))])
        if r.random() < 0.6:
            p.append(("session", self.pick(lambda: self.code or r.choice(self.world.shared), 0.7)))
        if r.random() < 0.6:
            p.append(("from", self.pick(lambda: r.choice([0, 1, 3, 10 ** 6]), 0.6)))
        if r.random() < 0.7:
            p.append(("speed", self.pick(lambda: r.choice([0.001, 0.5, 1, 10, 1000, 0, -1, 1001]), 0.7)))
        return p

    def replay_control(self):
        r = self.r
        action = self.pick(lambda: r.choice(["pause", "resume", "seek", "speed"]), 0.85)
        p = Pairs([("type", self.type_token("replay_control")), ("action", action)])
        if action == "seek" or r.random() < 0.2:
            p.append(("seq", self.pick(lambda: r.choice([0, 1, 2, 5, 100, 2 ** 63 - 1]), 0.6)))
        if action == "speed" or r.random() < 0.2:
            p.append(("speed", self.pick(lambda: r.choice([0.001, 1, 1000, 0, 1e308]), 0.6)))
        return p

    def subscribe(self, kind="subscribe"):
        r = self.r
        ch = self.pick(lambda: r.choice(["run:r1", "dashboard:team-a", "run:f%d" % r.randrange(50), "dashboard:o%d" % r.randrange(50),
                                       "run:", "dashboard:", "run:" + "a" * 129, "dashboard:" + "\u0301" * 200]), 0.8)
        p = Pairs([("type", self.type_token(kind)), ("channel", ch)])
        if r.random() < 0.3:
            p.append(("resume_from", self.pick(lambda: r.choice([0, 1, 3, 6, 10 ** 9, 2 ** 63 - 1]), 0.5)))
        return p

    def run_event(self):
        r = self.r
        ev = {"type": self.pick(lambda: r.choice(["started", "log", "step_started", "step_completed", "step_failed", "progress",
                                                 "paused", "resumed", "completed"]), 0.85)}
        for k, good in (("owner", lambda: r.choice(["team-a", "team-b"])), ("step", lambda: r.choice(["build", "test"])),
                        ("line", lambda: rand_str(r)), ("percent", lambda: r.choice([0, 50, 100, 101, -1])),
                        ("outcome", lambda: r.choice(["succeeded", "failed", "cancelled"])), ("session", lambda: r.choice(self.world.shared))):
            if r.random() < 0.4:
                ev[k] = self.pick(good)
        run = self.pick(lambda: r.choice(["r1", "f%d" % r.randrange(20), "p%d" % r.randrange(5)]), 0.85)
        if r.random() < 0.25:
            return Pairs([("type", self.type_token("run_events")), ("run", run), ("events", self.pick(lambda: [ev] * r.randint(0, 5), 0.8))])
        p = Pairs([("type", self.type_token("run_event")), ("run", run), ("event", self.pick(ev, 0.85))])
        if r.random() < 0.3:
            p.append(("id", self.pick(lambda: r.choice(IDS))))
        return p

    def other(self):
        r = self.r
        kind = r.choice(["refresh", "end", "remove", "leave", "ping", "run_control", "unknown", "subscribe"])
        if kind == "refresh":
            return Pairs([("type", self.type_token("refresh")), ("token", self.pick("a.b.c", 0.5))])
        if kind == "end":
            return Pairs([("type", self.type_token("end"))] + ([("reason", self.pick(lambda: rand_str(r)))] if r.random() < 0.5 else []))
        if kind == "remove":
            return Pairs([("type", self.type_token("remove")), ("member", self.pick(lambda: r.choice(["m1", "mAAAAAAAA", ""])))])
        if kind == "run_control":
            return Pairs([("type", self.type_token("run_control")), ("run", self.pick("r1")),
                          ("action", self.pick(lambda: r.choice(["pause", "resume", "cancel"])))])
        if kind == "subscribe":
            return self.subscribe()
        if kind == "unknown":
            return Pairs([("type", rand_str(r)[:30])])
        return Pairs([("type", self.type_token(kind))] + ([("id", self.pick(lambda: rand_str(r)))] if r.random() < 0.5 else []))

    def for_path(self, path):
        r = self.r
        if path.startswith("/ws"):
            return r.choices([self.chat, self.cursor, self.typing, self.event, self.replay, self.replay_control, self.join, self.other],
                             [25, 15, 8, 15, 6, 5, 4, 10])[0]()
        if path.startswith("/watch"):
            return r.choices([self.subscribe, lambda: self.subscribe("unsubscribe"), self.other], [70, 15, 15])[0]()
        if path.startswith("/publish"):
            return r.choices([self.run_event, self.other], [85, 15])[0]()
        return r.choice([self.chat, self.cursor, self.event, self.other])()

    def encode(self, msg):
        """Serializes `msg`, sometimes broken on purpose. Returns bytes (maybe invalid UTF-8)."""
        r = self.r
        k = r.random() / self.badness if self.badness else 1.0
        if k < 0.04 and isinstance(msg, Pairs) and msg:
            msg.pop(r.randrange(len(msg)))                               # a required field missing
        elif k < 0.07 and isinstance(msg, Pairs) and msg:
            msg.append(r.choice(msg))                                    # a duplicate key
        elif k < 0.1 and isinstance(msg, Pairs):
            msg.append((rand_str(r)[:10], rand_any(r)))                  # an unknown field
        ascii_only = r.random() < 0.6
        text = dump(msg, ascii_only)
        if not ascii_only and r.random() >= self.badness and re.search("[\ud800-\udfff]", text):
            text = dump(msg, True)                                       # lone surrogates escaped, not raw (raw: invalid UTF-8)
        k = r.random() / self.badness if self.badness else 1.0
        if k < 0.03:
            text = text[:r.randrange(max(1, len(text)))]                 # truncated JSON
        elif k < 0.05:
            text = text + r.choice(["}", " x", ",", "\u0000", "{}"])     # trailing garbage
        elif k < 0.07:
            text = r.choice(["\ufeff", " ", "\n\t"]) + text              # BOM or whitespace first
        elif k < 0.09:
            n = r.choice([8, 16, 17, 100, 1000, 30000])                  # deep nesting
            inner = r.choice(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n])
            text = '{"type":"chat","id":"deep","text":"x","meta":' + inner + "}" if r.random() < 0.5 else inner
        elif k < 0.1:
            text = dump(r.choice([[], 1, "x", None, True, [msg]]), True)  # not an object
        return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------------
# Frames

def ws_frame(r, opcode, payload, fin=True, rsv=0, mask=True, length=None, wide=False, mask_key=None):
    """A client frame. `length` overrides the announced length; `wide` uses a longer length encoding
    than needed (non-minimal)."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126 and not wide:
        head = struct.pack("!BB", b0, m | n)
    elif n <= 0xFFFF and not (wide and n < 126 and r.random() < 0.5):
        head = struct.pack("!BBH", b0, m | 126, n)
    else:
        head = struct.pack("!BBQ", b0, m | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else bytes(r.getrandbits(8) for _ in range(4))
    return head + key + mask_bytes(payload, key)


def mask_bytes(payload, key):
    if not payload:
        return b""
    k = int.from_bytes((key * (len(payload) // 4 + 1))[:len(payload)], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(len(payload), "big")


_BOMB = None


def deflate_bomb():
    """~10 KB of deflate that inflates to 10 MB (over the 64 KiB message limit)."""
    global _BOMB
    if _BOMB is None:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        _BOMB = c.compress(b"\x00" * 10_000_000) + c.flush(zlib.Z_SYNC_FLUSH)
        _BOMB = _BOMB[:-4]
    return _BOMB


BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"a\x80b", b"\xf0\x9f\x98"]


# ---------------------------------------------------------------------------------------------------
# What the hub sends, checked as it arrives

class ServerStream:
    """Parses the hub's frames incrementally and records every rule it breaks."""

    def __init__(self, json_path, deflate, server_no_context):
        self.buf = bytearray()
        self.json_path = json_path
        self.deflate = deflate
        self.no_context = server_no_context
        self.inflater = zlib.decompressobj(-15)
        self.violations = []
        self.close_code = None
        self.frag = None                      # (opcode, compressed, [parts]) of a message in progress
        self.pings = []
        self.types = {}
        self.dead = False
        self.compressed = self.pings_seen = 0

    def violation(self, what):
        if len(self.violations) < 10:
            self.violations.append(what)

    def feed(self, data):
        if self.dead:
            return
        self.buf += data
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
                if n < 126:
                    self.violation(f"non-minimal 16-bit length {n}")
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
                if n <= 0xFFFF or n >> 63:
                    self.violation(f"bad 64-bit length {n}")
            if b1 & 0x80:
                self.violation("masked server frame")
                off += 4
            if n > 64 * 1024 * 1024:
                self.violation(f"absurd frame length {n}")
                self.dead = True
                return
            if len(self.buf) < off + n:
                return
            payload = bytes(self.buf[off:off + n])
            del self.buf[:off + n]
            self.frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)

    def frame(self, fin, rsv, op, payload):
        if self.close_code is not None:
            self.violation(f"frame (opcode {op}) after the close frame")
        if op not in (0, 1, 2, 8, 9, 10):
            return self.violation(f"reserved opcode {op}")
        if rsv & 3:
            self.violation(f"RSV2/RSV3 set (rsv={rsv})")
        if rsv & 4 and not (self.deflate and op in (1, 2)):
            self.violation(f"RSV1 on opcode {op} (deflate negotiated: {self.deflate})")
        if op >= 8:
            if not fin or len(payload) > 125:
                self.violation(f"control frame {op} fin={fin} len={len(payload)}")
            if op == 8:
                if len(payload) == 1:
                    self.violation("close frame with a 1-byte payload")
                    self.close_code = 1005
                elif len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                    self.close_code = code
                    if code not in VALID_CLOSE_FROM_SERVER:
                        self.violation(f"close code {code} may not be sent")
                    try:
                        payload[2:].decode("utf-8")
                    except UnicodeDecodeError:
                        self.violation(f"close reason is not UTF-8: {payload[2:]!r}")
                else:
                    self.close_code = 1005
            elif op == 9:
                self.pings.append(payload)
                self.pings_seen += 1
            return
        if op == 0:
            if self.frag is None:
                return self.violation("continuation frame without a message")
            self.frag[2].append(payload)
        else:
            if self.frag is not None:
                self.violation("new data message inside a fragmented one")
            self.frag = (op, bool(rsv & 4), [payload])
        if fin:
            opcode, compressed, parts = self.frag
            self.frag = None
            self.message(opcode, compressed, b"".join(parts))

    def message(self, op, compressed, data):
        if compressed:
            self.compressed += 1
            try:
                d = zlib.decompressobj(-15) if self.no_context else self.inflater
                data = d.decompress(data + b"\x00\x00\xff\xff")
            except zlib.error as e:
                return self.violation(f"compressed message does not inflate: {e}")
        if op != 1:
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self.violation(f"text message is not UTF-8: {data[:80]!r}")
        if not self.json_path:
            return
        try:
            obj = json.loads(text)
        except ValueError:
            return self.violation(f"text message is not JSON: {text[:200]!r}")
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            return self.violation(f"JSON message without a string type: {text[:200]!r}")
        t = obj["type"]
        if t == "error":
            if not isinstance(obj.get("code"), str):
                self.violation(f"error without a code: {text[:200]!r}")
            t = "error:" + str(obj.get("code"))
        self.types[t] = self.types.get(t, 0) + 1


STATUS_LINE = re.compile(rb"^HTTP/1\.1 [1-5]\d\d [^\r\n]*\r\n")


def check_status(data, violations):
    """The first response in `data` (bytes from the hub): a well-formed status line, never 500."""
    if not data:
        return None
    if not STATUS_LINE.match(data[:200]) and not (len(data) < 12 and b"HTTP/1.1 ".startswith(data[:9])):
        violations.append(f"malformed response start {data[:80]!r}")
        return None
    status = int(data[9:12]) if len(data) >= 12 else None
    if status == 500:
        violations.append(f"500 answer: {data[:300]!r}")
    return status


# ---------------------------------------------------------------------------------------------------
# One client

class World:
    """What the clients may refer to: shared sessions (host keys never handed out, so they stay live),
    sessions a client may end (host keys known), the hub's port."""

    def __init__(self, hub):
        self.hub = hub
        self.port = hub.port
        self.shared = [create_session(hub) for _ in range(8)]
        self.endable = []
        for _ in range(30):
            req = urllib.request.Request(hub.http + "/api/sessions", data=b'{"max_participants": 50}', method="POST",
                                         headers={"X-API-Key": KEY, "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.loads(resp.read())
            self.endable.append((body["code"], body["host_key"]))


class Client:
    def __init__(self, sub, world, deadline):
        self.sub = sub
        self.r = random.Random(sub)
        self.world = world
        self.deadline = min(deadline, time.time() + self.r.uniform(0.3, CLIENT_LIFETIME))
        self.hard_deadline = deadline + 3.0
        self.actions = []
        self.violations = []
        self.harness_error = None
        self.scenario = None
        self.path = None
        self.sock = None
        self.stream = None
        self.http_in = b""
        self.eof = False
        self.start = self.end = None
        self.outcome = ""

    def log(self, what):
        if len(self.actions) < 400:
            self.actions.append(what)

    # -- socket plumbing ---------------------------------------------------------------------------

    def connect(self):
        r = self.r
        addr = "127.0.0.2" if r.random() < 0.15 else f"127.{r.randint(1, 254)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if r.random() < 0.3:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((addr, 0))
        s.settimeout(3)
        s.connect(("127.0.0.1", self.world.port))
        self.sock = s
        self.log(f"connect from {addr}")

    def time_left(self):
        return self.deadline - time.time()

    def write(self, data, label=None):
        if label:
            self.log(label)
        if self.eof:
            raise Stop("hub closed")
        r = self.r
        mode = r.random()
        try:
            if mode < 0.7 or len(data) < 2:
                self.sock.sendall(data)
            else:
                i = 0
                while i < len(data):
                    n = 1 if (mode > 0.97 and len(data) < 300) else r.randint(1, max(1, len(data) // 3))
                    self.sock.sendall(data[i:i + n])
                    i += n
                    if r.random() < 0.2:
                        time.sleep(r.random() * 0.005)
        except socket.timeout:
            self.log("write blocked 3 s (hub not reading)")
            raise Stop("write blocked")
        except OSError as e:
            self.log(f"write failed: {e.__class__.__name__}")
            raise Stop("write failed")
        if self.reading == "all":
            self.drain()

    def drain(self, wait=0.0):
        """Reads what is there (waiting up to `wait` s for more), feeding the oracle; answers pings."""
        end = time.time() + wait
        while not self.eof:
            timeout = max(0.0, end - time.time())
            try:
                ready, _, _ = select.select([self.sock], [], [], timeout)
            except (OSError, ValueError):
                return
            if not ready:
                return
            try:
                data = self.sock.recv(1 << 18)
            except (BlockingIOError, socket.timeout):
                return
            except OSError as e:
                self.log(f"read failed: {e.__class__.__name__}")
                self.eof = True
                return
            if not data:
                self.log("hub closed TCP")
                self.eof = True
                return
            if self.stream is not None:
                self.stream.feed(data)
                self.answer_pings()
            elif len(self.http_in) < 65536:
                self.http_in += data

    def answer_pings(self):
        while self.stream.pings:
            payload = self.stream.pings.pop(0)
            if self.r.random() < 0.75 and not self.eof and self.stream.close_code is None:
                try:
                    self.sock.sendall(ws_frame(self.r, 0xA, payload))
                    self.log(f"pong {len(payload)}B")
                except OSError:
                    self.eof = True

    def pause(self):
        r = self.r
        k = r.random()
        if k < 0.25:
            return
        if k < 0.93:
            t = r.random() * 0.3
        else:
            t = r.uniform(1.1, 2.6)                                      # past the ping interval / handshake timeout
        t = max(0.0, min(t, self.hard_deadline - time.time()))
        self.log(f"{'stall' if t > 1 else 'sleep'} {t:.2f}")
        if self.reading == "all":
            self.drain(wait=t)
        else:
            time.sleep(t)
        if self.reading == "all" and self.eof:
            raise Stop("hub closed")

    def finish(self):
        r = self.r
        how = r.choices(["rst", "half", "close_frame", "plain"], [30, 20, 20, 30])[0]
        if self.sock is None:
            return
        try:
            if how == "rst":
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif how == "half":
                self.sock.shutdown(socket.SHUT_WR)
                if self.reading != "never":
                    self.drain(wait=min(1.0, max(0.0, self.hard_deadline - time.time())))
            elif how == "close_frame" and self.stream is not None and not self.eof:
                self.sock.sendall(ws_frame(r, 8, struct.pack("!H", 1000)))
                if self.reading != "never":
                    self.drain(wait=min(1.0, max(0.0, self.hard_deadline - time.time())))
        except OSError:
            pass
        self.log(f"end: {how}")
        self.sock.close()

    # -- scenarios ---------------------------------------------------------------------------------

    def run(self):
        self.start = time.time()
        r = self.r
        self.scenario = r.choices(["random_bytes", "mutated_http", "websocket"], [15, 25, 60])[0]
        self.reading = r.choices(["all", "handshake", "never"], [60, 15, 25])[0]
        self.hostility = r.choices(["clean", "mixed", "hostile"], [40, 40, 20])[0]
        self.log(f"scenario {self.scenario}, reading {self.reading}, hostility {self.hostility}")
        try:
            self.connect()
            getattr(self, self.scenario)()
        except Stop as e:
            self.outcome = f"stopped: {e}"
        except (OSError, socket.timeout) as e:
            self.outcome = f"socket: {e.__class__.__name__} {e}"
        except Exception as e:  # noqa: BLE001 - a bug in this harness, reported as such
            import traceback
            self.harness_error = traceback.format_exc()
            self.outcome = f"harness error {e!r}"
        finally:
            try:
                self.finish()
            except Exception:  # noqa: BLE001
                pass
            if self.stream is not None:
                self.violations += self.stream.violations
                if self.stream.close_code is not None:
                    self.outcome += f" close {self.stream.close_code}"
            self.end = time.time()

    def random_bytes(self):
        r = self.r
        kind = r.random()
        n = int(2 ** r.uniform(0, 15))
        if kind < 0.4:
            data = r.randbytes(n)
        elif kind < 0.7:
            data = "".join(r.choice("GET/ HTTP1.\r\n:aZ09%?=&-") for _ in range(n)).encode()
        else:
            data = r.choice([b"GET / HTTP/1.1\r\n", b"POST /api/sessions HTTP/1.1\r\nContent-Length: 10\r\n",
                             b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"]) + r.randbytes(n)
        pieces = r.randint(1, 4)
        for i in range(pieces):
            chunk = data[i * len(data) // pieces:(i + 1) * len(data) // pieces]
            self.write(chunk, f"random {len(chunk)}B")
            if self.time_left() <= 0:
                break
            self.pause()
        if self.reading != "never":
            self.drain(wait=min(0.5, max(0.0, self.time_left())))
            check_status(self.http_in, self.violations)

    def base_request(self):
        r = self.r
        code = r.choice(self.world.shared)
        ecode, hkey = r.choice(self.world.endable)
        key = base64.b64encode(r.randbytes(16)).decode()
        body = r.choice([b'{"title":"t"}', b"{}", b'{"type":"log","line":"x"}', b'{"max_participants": 3}'])
        reqs = [
            f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET /client.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"HEAD /client.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET /api/sessions/{code} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET /api/sessions/{code}/transcript?after=0&limit=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET /api/runs/r1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET /api/runs?owner=team-a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"GET /api/activity?session={code} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            f"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body.decode()}",
            f"POST /api/runs/f{r.randrange(20)}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\nContent-Length: {len(body)}\r\n\r\n{body.decode()}",
            f"PATCH /api/sessions/{ecode} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Host-Key: {hkey}\r\nContent-Length: {len(body)}\r\n\r\n{body.decode()}",
            f"GET /ws?session={code} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: collabhub.v1\r\n\r\n",
            f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        ]
        return bytearray(r.choice(reqs).encode())

    def mutate(self, req):
        r = self.r
        if not req:                     # an earlier mutation truncated it to nothing
            req += b"G"
        how = r.choice(["flip", "truncate", "duplicate", "insert", "huge_header", "content_length", "chunked", "version",
                        "method", "path", "many_headers", "pipeline"])
        if how == "flip":
            for _ in range(r.randint(1, 8)):
                i = r.randrange(len(req))
                req[i] ^= 1 << r.randrange(8)
        elif how == "truncate":
            del req[r.randrange(len(req)):]
        elif how == "duplicate":
            i = r.randrange(len(req))
            j = r.randint(i, len(req))
            req[j:j] = req[i:j] * r.randint(1, 5)
        elif how == "insert":
            i = r.randrange(len(req) + 1)
            req[i:i] = r.choice([b"\r", b"\n", b"\x00", b"\r\n", b"\r\n\r\n", b" ", b":", b"\t", b"\xff", b"\r\n "])
        elif how == "huge_header":
            i = req.find(b"\r\n") + 2
            req[i:i] = b"X-Big: " + b"a" * r.choice([100, 4000, 8000, 8200, 20000, 60000]) + b"\r\n"
        elif how == "content_length":
            i = req.find(b"\r\n") + 2
            v = r.choice([b"-1", b"+5", b"99999999999999999999", b"0x10", b" 5", b"5, 5", b"5\r\nContent-Length: 6", b"", b"1000000000"])
            req[i:i] = b"Content-Length: " + v + b"\r\n"
        elif how == "chunked":
            i = req.find(b"\r\n") + 2
            req[i:i] = b"Transfer-Encoding: " + r.choice([b"chunked", b"gzip, chunked", b"identity", b"chunked\r\nContent-Length: 3"]) + b"\r\n"
            req += r.choice([b"3\r\nabc\r\n0\r\n\r\n", b"ffffffffffffffff\r\n", b"zz\r\n", b""])
        elif how == "version":
            i = req.find(b"HTTP/1.1")
            if i >= 0:
                req[i:i + 8] = r.choice([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"HTTP/9", b"http/1.1", b""])
        elif how == "method":
            i = req.find(b" ")
            req[:i] = r.choice([b"get", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"X" * 5000, b"", b"G\x00T"])
        elif how == "path":
            i = req.find(b" ") + 1
            j = req.find(b" ", i)
            req[i:j] = r.choice([b"/ws?session=%00", b"/" + b"a" * 9000, b"/../../etc/passwd", b"*", b"http://a/healthz",
                                 b"/api/sessions/" + "\u754c".encode() * 10, b"/watch?x=" + b"%" * 100, b"", b"/healthz#x",
                                 b"/api/runs/" + b"r" * 200 + b"/events"])
        elif how == "many_headers":
            i = req.find(b"\r\n") + 2
            req[i:i] = b"".join(b"X-%d: v\r\n" % k for k in range(r.choice([50, 99, 100, 101, 500])))
        else:
            req += bytes(self.base_request()) * r.randint(1, 20)
        return how

    def mutated_http(self):
        r = self.r
        req = self.base_request()
        hows = [self.mutate(req) for _ in range(r.randint(1, 3))] if r.random() < 0.9 else ["none"]
        data = bytes(req)
        if r.random() < 0.3:                                             # sent in pieces, with pauses
            cuts = sorted(r.sample(range(1, max(2, len(data))), min(3, max(1, len(data) - 1))))
            prev = 0
            for c in cuts + [len(data)]:
                self.write(data[prev:c], f"http {'+'.join(hows)} part {c - prev}B")
                prev = c
                self.pause()
        else:
            self.write(data, f"http {'+'.join(hows)} {len(data)}B: {data[:60]!r}")
        if self.reading != "never":
            self.drain(wait=min(1.0, max(0.0, self.time_left() + 0.5)))
            status = check_status(self.http_in, self.violations)
            self.log(f"hub answered {status}")
        if r.random() < 0.3 and self.time_left() > 0:
            self.write(bytes(self.base_request()), "then a valid request")
            if self.reading != "never":
                self.drain(wait=0.3)

    # -- WebSocket scenario --------------------------------------------------------------------------

    def pick_target(self):
        r = self.r
        k = r.random()
        self.code, self.host_key = None, None
        if k < 0.5:
            if r.random() < 0.7:
                self.code = r.choice(self.world.shared)
            else:
                self.code, self.host_key = r.choice(self.world.endable)
            shown = self.code if r.random() < 0.9 else self.code.lower()[:4] + "-" + self.code[4:]
            return f"/ws?session={shown}"
        if k < 0.54:
            return "/ws"
        if k < 0.58:
            return "/ws?session=" + r.choice(["ZZZZZZZZ", "", "%00", "0OIL0OIL", "A" * 40, "\u754c".encode().hex()])
        if k < 0.75:
            return "/watch" + ("?key=" + KEY if r.random() < 0.8 else "")   # the hub is closed: /watch needs runs:read
        if k < 0.9:
            return "/echo"
        return "/publish?key=" + (KEY if r.random() < 0.8 else "wrong")

    def offer(self):
        r = self.r
        k = r.random()
        if k < 0.4:
            return None
        if k < 0.7:
            return "permessage-deflate; client_max_window_bits"
        if k < 0.8:
            return r.choice(["permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                             "permessage-deflate; server_max_window_bits=9; client_max_window_bits=9",
                             "permessage-deflate; client_max_window_bits=8", "x-webkit-deflate-frame, permessage-deflate"])
        if k < 0.9:
            return r.choice(DECLINED)
        printable = "".join(chr(c) for c in range(0x20, 0x7F))
        return "permessage-deflate" + "".join(r.choice(printable + ";=,") for _ in range(r.randint(1, 200)))

    def websocket(self):
        r = self.r
        path = self.path = self.pick_target()
        key = base64.b64encode(r.randbytes(16)).decode()
        headers = [("Host", "127.0.0.1"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                   ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
        offered_proto = path != "/echo" and r.random() < 0.92
        if offered_proto:
            headers.append(("Sec-WebSocket-Protocol", r.choice(["collabhub.v1"] * 8 + ["other", "collabhub.v1, other"])))
        offer = self.offer()
        if offer is not None:
            headers.append(("Sec-WebSocket-Extensions", offer))
        if r.random() < 0.08:
            headers.append(("Origin", r.choice(["http://evil.example", "null", "http://127.0.0.1"])))
        request = (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode()
        label = f"upgrade {path} ext={offer!r}"
        if r.random() < 0.06:                                            # slow handshake, past the 2 s timeout sometimes
            cut = r.randrange(1, len(request))
            self.write(request[:cut], label + f" (first {cut}B)")
            t = r.uniform(0.5, 2.6)
            self.log(f"stall in request {t:.2f}")
            time.sleep(t)
            self.write(request[cut:])
        else:
            self.write(request, label)

        deflate, no_context_in, client_bits, client_no_context = False, False, 15, False
        if self.reading == "never":
            status = None
            deflate = offer is not None and r.random() < 0.5                  # guess
        else:
            status, hdrs = self.read_head(key, offer, offered_proto)
            if status != 101:
                self.log(f"hub answered {status}")
                if status is not None and r.random() < 0.3 and not self.eof:
                    self.write(ws_frame(r, 1, b'{"type":"ping"}'), "frame after a refused upgrade")
                return
            ext = hdrs.get("sec-websocket-extensions")
            if ext:
                deflate = True
                params = [p.strip() for p in ext.split(";")]
                no_context_in = "server_no_context_takeover" in params
                client_no_context = "client_no_context_takeover" in params
                for p in params:
                    if p.startswith("client_max_window_bits="):
                        client_bits = int(p.split("=")[1])
            self.log(f"101 ext={ext!r}")
            self.stream = ServerStream(not path.startswith("/echo"), deflate, no_context_in)
            if self.http_in:
                self.stream.feed(self.http_in)
                self.http_in = b""
            if self.reading == "handshake":
                self.reading = "never"
        self.deflate, self.client_bits, self.client_no_context = deflate, client_bits, client_no_context
        self.compressor = None
        gen = MessageGen(r, self.world, self.code, self.host_key, {"clean": 0.05, "mixed": 0.4, "hostile": 1.0}[self.hostility])
        if path.startswith("/ws") and r.random() < 0.8:
            first = MessageGen(r, self.world, self.code, self.host_key, 0.0 if r.random() < 0.7 else gen.badness)
            self.send_message(first.encode(first.join()), "join")
        elif path.startswith("/watch") and r.random() < 0.7:
            self.send_message(gen.encode(gen.subscribe()), "subscribe")
        for _ in range(r.randint(1, 60)):
            if self.time_left() <= 0:
                break
            self.pause()
            if self.time_left() <= 0:
                break
            self.action(gen, path)
        if self.reading == "all":
            self.drain(wait=min(0.5, max(0.0, self.hard_deadline - time.time())))

    def read_head(self, key, offer, offered_proto):
        end = time.time() + 3
        while b"\r\n\r\n" not in self.http_in and not self.eof and time.time() < end:
            self.drain(wait=min(0.2, end - time.time()))
        if b"\r\n\r\n" not in self.http_in:
            status = check_status(self.http_in, self.violations)
            return status, {}
        head, rest = self.http_in.split(b"\r\n\r\n", 1)
        status = check_status(head + b"\r\n\r\n", self.violations)
        hdrs = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        if status == 101:
            self.http_in = rest
            want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            if hdrs.get("sec-websocket-accept") != want:
                self.violations.append(f"101 with Sec-WebSocket-Accept {hdrs.get('sec-websocket-accept')!r}, expected {want!r}")
            if hdrs.get("upgrade", "").lower() != "websocket" or "upgrade" not in hdrs.get("connection", "").lower():
                self.violations.append(f"101 without Upgrade/Connection headers: {hdrs}")
            proto = hdrs.get("sec-websocket-protocol")
            if proto is not None and (proto != "collabhub.v1" or not offered_proto):
                self.violations.append(f"101 selected subprotocol {proto!r} (offered: {offered_proto})")
            ext = hdrs.get("sec-websocket-extensions")
            if ext is not None:
                if not offer or "permessage-deflate" not in offer:
                    self.violations.append(f"101 with extension {ext!r} that was not offered ({offer!r})")
                elif not WELL_FORMED_RESPONSE.match(ext):
                    self.violations.append(f"101 with malformed extension answer {ext!r} to {offer!r}")
        else:
            self.http_in = b""
        return status, hdrs

    def compress(self, data, persistent_ok=True):
        r = self.r
        bits = max(9, min(15, self.client_bits))
        level = 0 if self.client_bits < 9 else r.choice([1, 6, 9])
        if persistent_ok and not self.client_no_context and r.random() < 0.5:
            if self.compressor is None:
                self.compressor = zlib.compressobj(level, zlib.DEFLATED, -bits)
            c = self.compressor
        else:
            c = zlib.compressobj(level, zlib.DEFLATED, -bits)
            if self.compressor is not None and persistent_ok:
                self.compressor = None                                    # our context is gone: say nothing more with it
        out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if r.random() < 0.9 else out                      # the tail is optional

    def send_message(self, payload, label, opcode=1):
        """One message: plain, or compressed when deflate was negotiated (sometimes), or fragmented."""
        r = self.r
        rsv = 0
        if self.deflate and r.random() < 0.5:
            payload = self.compress(payload)
            rsv = 4
        if r.random() < 0.15 and len(payload) > 1:
            cuts = sorted(set(r.sample(range(1, len(payload)), min(r.randint(1, 5), len(payload) - 1))))
            parts = [payload[a:b] for a, b in zip([0] + cuts, cuts + [len(payload)])]
            data = b""
            for i, part in enumerate(parts):
                data += ws_frame(r, opcode if i == 0 else 0, part, fin=i == len(parts) - 1, rsv=rsv if i == 0 else 0)
                if r.random() < 0.2:
                    data += ws_frame(r, 9, r.randbytes(r.randint(0, 10)))      # a ping between fragments
            self.write(data, f"{label} {len(payload)}B in {len(parts)} fragments{' z' if rsv else ''}")
        else:
            self.write(ws_frame(r, opcode, payload, rsv=rsv, wide=r.random() < 0.03),
                       f"{label} {len(payload)}B{' z' if rsv else ''}")

    def action(self, gen, path):
        r = self.r
        weights = {"clean": [85, 5, 10, 0, 0, 0, 0], "mixed": [75, 8, 10, 2, 2, 2, 1],
                   "hostile": [55, 8, 10, 9, 6, 6, 6]}[self.hostility]
        k = r.choices(["json", "burst", "control", "bad", "compressed", "binary", "big"], weights)[0]
        if k == "json":
            msg = gen.for_path(path)
            t = dict((kk, v) for kk, v in msg if isinstance(kk, str)).get("type") if isinstance(msg, Pairs) else None
            self.send_message(gen.encode(msg), f"json {t if isinstance(t, str) else repr(t)[:30]}")
        elif k == "burst":
            n = r.choice([5, 20, 50, 200])
            kind = r.choice([gen.cursor, gen.chat, gen.typing, gen.event, gen.subscribe, gen.run_event])
            data = b"".join(ws_frame(r, 1, gen.encode(kind())) for _ in range(n))
            self.write(data, f"burst of {n} {kind.__name__} ({len(data)}B)")
        elif k == "control":
            op = r.choice([8, 9, 9, 10, 10] if self.hostility != "clean" else [9, 10])
            if op == 8:
                code = r.choice([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1015, 0, 999, 2999, 3000, 4999, 5000, 65535])
                body = r.choice([b"", struct.pack("!H", code), struct.pack("!H", code) + r.choice([b"bye", b"\xff\xfe", "\u754c".encode(), b"r" * 123]), b"\x03"])
                self.write(ws_frame(r, 8, body), f"close {body[:8]!r}")
            else:
                n = r.choice([0, 1, 10, 125, 126, 200] if self.hostility == "hostile" else [0, 1, 10, 125])
                self.write(ws_frame(r, op, r.randbytes(n)), f"{'ping' if op == 9 else 'pong'} {n}B")
        elif k == "bad":
            self.bad_frame(gen, path)
        elif k == "compressed":
            kind = r.choice(["real", "random", "bomb", "bad_utf8", "rsv1_control", "rsv1_continuation"])
            if kind == "real":
                payload = self.compress(gen.encode(gen.for_path(path)), persistent_ok=False)
                self.write(ws_frame(r, 1, payload, rsv=4), f"compressed json {len(payload)}B")
            elif kind == "random":
                self.write(ws_frame(r, r.choice([1, 2]), r.randbytes(r.randint(1, 3000)), rsv=4), "compressed random bytes")
            elif kind == "bomb":
                self.write(ws_frame(r, 1, deflate_bomb(), rsv=4), "deflate bomb (10 MB inflated)")
            elif kind == "bad_utf8":
                payload = self.compress(b'{"type":"chat","text":"' + r.choice(BAD_UTF8) + b'"}', persistent_ok=False)
                self.write(ws_frame(r, 1, payload, rsv=4), "compressed invalid UTF-8")
            elif kind == "rsv1_control":
                self.write(ws_frame(r, 9, b"x", rsv=4), "RSV1 ping")
            else:
                a = self.compress(b'{"type":"ping"}', persistent_ok=False)
                self.write(ws_frame(r, 1, a[:2], fin=False, rsv=4) + ws_frame(r, 0, a[2:], rsv=4), "RSV1 on a continuation")
        elif k == "binary":
            if r.random() < 0.5:
                self.write(ws_frame(r, 2, r.randbytes(r.randint(0, 5000))), "binary")
            else:
                bad = r.choice(BAD_UTF8)
                if r.random() < 0.5:                                      # split across fragments
                    self.write(ws_frame(r, 1, b'{"type":"ping","id":"' + bad[:1], fin=False) + ws_frame(r, 0, bad[1:] + b'"}'),
                               f"invalid UTF-8 {bad!r} across fragments")
                else:
                    self.write(ws_frame(r, 1, b'{"type":"chat","id":"u","text":"' + bad + b'"}'), f"invalid UTF-8 {bad!r}")
        else:
            n = r.choice([MAX_MESSAGE - 100, MAX_MESSAGE, MAX_MESSAGE + 1, 100000, 1 << 20])
            if r.random() < 0.5:
                msg = Pairs([("type", "chat"), ("id", "big"), ("text", "b" * max(1, n - 40))])
                self.send_message(gen.encode(msg), f"big chat ~{n}B")
            else:                                                        # announced only: the hub should refuse on the header
                self.write(ws_frame(r, 1, b"x" * 100, length=n), f"frame announcing {n}B, 100B sent")

    def bad_frame(self, gen, path):
        r = self.r
        body = gen.encode(gen.for_path(path))
        kind = r.choice(["rsv", "opcode", "unmasked", "orphan_continuation", "fragmented_control", "long_control", "msb_length",
                         "interleaved", "non_minimal", "short_close", "zero_mask"])
        if kind == "rsv":
            frame = ws_frame(r, 1, body, rsv=r.choice([1, 2, 3, 5, 6, 7]))
        elif kind == "opcode":
            frame = ws_frame(r, r.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), body)
        elif kind == "unmasked":
            frame = ws_frame(r, 1, body, mask=False)
        elif kind == "orphan_continuation":
            frame = ws_frame(r, 0, body)
        elif kind == "fragmented_control":
            frame = ws_frame(r, 9, b"ab", fin=False) + ws_frame(r, 0, b"cd")
        elif kind == "long_control":
            frame = ws_frame(r, 9, b"p" * 126)
        elif kind == "msb_length":
            frame = struct.pack("!BBQ", 0x81, 0xFF, (1 << 63) | r.getrandbits(20)) + r.randbytes(4) + b"xx"
        elif kind == "interleaved":
            frame = ws_frame(r, 1, body[:1], fin=False) + ws_frame(r, 1, body)
        elif kind == "non_minimal":
            frame = ws_frame(r, 1, body, wide=True)
        elif kind == "short_close":
            frame = ws_frame(r, 8, b"\x03")
        else:
            frame = ws_frame(r, 1, body, mask_key=b"\x00\x00\x00\x00")    # legal, just unusual
        self.write(frame, f"bad frame: {kind}")


# ---------------------------------------------------------------------------------------------------
# The run

def sub_seed(thread, n):
    return random.Random(f"{SEED}:{thread}:{n}").randrange(1 << 48)


def describe(c):
    took = f"{c.end - c.start:.2f}s" if c.end and c.start else "?"
    lines = [f"  sub-seed {c.sub} (CONNFUZZ_REPLAY={c.sub}): {c.scenario} {c.path or ''} reading={getattr(c, 'reading', '?')} "
             f"hostility={getattr(c, 'hostility', '?')}, "
             f"{took}, outcome {c.outcome!r}"]
    for v in c.violations[:5]:
        lines.append(f"    VIOLATION: {v}")
    if c.harness_error:
        lines.append("    HARNESS ERROR: " + c.harness_error.strip().splitlines()[-1])
    acts = c.actions if len(c.actions) <= 40 else c.actions[:10] + [f"... {len(c.actions) - 30} more ..."] + c.actions[-20:]
    lines += [f"    {a[:160]}" for a in acts]
    return "\n".join(lines)


def test_whole_connection_fuzz(tmp_path_factory):
    """Many short-lived hostile raw-socket clients (random bytes, mutated HTTP, WebSocket sessions with
    valid, odd and broken frames and protocol JSON, pauses that let the hub's timers fire, abrupt ends)
    against one hub for CONNFUZZ_SECONDS: what the hub answers is well formed all along, /healthz keeps
    answering, and afterwards the hub is alive, serves a normal round trip, stayed under RSS_LIMIT_MIB,
    holds no connection or watch channel, and exits 0 on SIGTERM."""
    print(f"\nCONNFUZZ_SEED={SEED} CONNFUZZ_SECONDS={SECONDS} CONNFUZZ_THREADS={THREADS}"
          + (f" CONNFUZZ_REPLAY={','.join(map(str, REPLAY))}" if REPLAY else ""))
    hub = start_hub(tmp_path_factory, "connfuzz", *HUB_ARGS)
    stopped = False
    try:
        publish(hub, "r1", {"type": "started", "owner": "team-a"})
        for _ in range(5):
            publish(hub, "r1", {"type": "log", "line": "x"})
        world = World(hub)
        clients, lock = [], threading.Lock()
        died_at = []
        probes = []                                   # (time, status or exception, seconds)
        done = threading.Event()

        def watch_process():
            while not done.is_set():
                if not hub.alive():
                    died_at.append(time.time())
                    return
                time.sleep(0.02)

        def probe():
            while not done.wait(1.0):
                t = time.time()
                try:
                    status = http_get(hub, "/healthz", timeout=5)[0]
                except Exception as e:  # noqa: BLE001 - reported below
                    status = repr(e)
                probes.append((t, status, time.time() - t))

        deadline = time.time() + SECONDS

        def worker(thread):
            n = 0
            while time.time() < deadline and not died_at:
                c = Client(sub_seed(thread, n), world, deadline)
                with lock:
                    clients.append(c)
                c.run()
                n += 1

        def replay_worker():
            for sub in REPLAY:
                c = Client(sub, world, time.time() + CLIENT_LIFETIME)
                clients.append(c)
                c.run()

        helpers = [threading.Thread(target=watch_process, daemon=True), threading.Thread(target=probe, daemon=True)]
        workers = [threading.Thread(target=replay_worker, daemon=True)] if REPLAY else \
                  [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
        with RSSWatch(hub) as rss:
            for t in helpers + workers:
                t.start()
            for t in workers:
                t.join(timeout=max(1.0, deadline - time.time()) + CLIENT_LIFETIME + 10)
            hung = [t.name for t in workers if t.is_alive()]
            done.set()
            for t in helpers:
                t.join(timeout=10)
        rss.report("connection fuzz")

        # ---- what happened -----------------------------------------------------------------------
        finished = [c for c in clients if c.end is not None]
        by_scenario, outcomes, types = {}, {}, {}
        for c in finished:
            by_scenario[c.scenario] = by_scenario.get(c.scenario, 0) + 1
            if c.stream is not None:
                for t, k in c.stream.types.items():
                    types[t] = types.get(t, 0) + k
                if c.stream.close_code is not None:
                    outcomes[c.stream.close_code] = outcomes.get(c.stream.close_code, 0) + 1
        streams = [c.stream for c in finished if c.stream is not None]
        print(f"clients {len(clients)} ({by_scenario}); WebSocket upgrades read {len(streams)}, of which joined "
              f"{sum(1 for st in streams if 'joined' in st.types)}; hub pings seen {sum(st.pings_seen for st in streams)}; "
              f"compressed messages from the hub {sum(st.compressed for st in streams)}; stalls "
              f"{sum(1 for c in finished for a in c.actions if a.startswith('stall'))}")
        print(f"close codes from the hub {dict(sorted(outcomes.items()))}")
        print(f"hub messages seen {dict(sorted(types.items(), key=lambda kv: -kv[1])[:30])}")
        slow = [p for p in probes if not (p[1] == 200 and p[2] < 5)]
        print(f"/healthz probes {len(probes)}, slowest {max((p[2] for p in probes), default=0):.2f}s, failed {len(slow)}")

        failures = []
        if died_at:
            t = died_at[0]
            suspects = [c for c in clients if c.start and c.start <= t + 0.05 and (c.end is None or c.end >= t - 0.5)]
            failures.append(f"the hub died at +{t - (deadline - SECONDS):.1f}s:\n{hub.output()}\nclients running then:\n"
                            + "\n".join(describe(c) for c in suspects[:12]))
        bad = [c for c in finished if c.violations]
        if bad:
            failures.append(f"{len(bad)} clients saw the hub break a rule:\n" + "\n".join(describe(c) for c in bad[:8]))
        errors = [c for c in finished if c.harness_error]
        if errors:
            failures.append(f"{len(errors)} harness errors (test bugs):\n" + errors[0].harness_error + describe(errors[0]))
        if hung:
            failures.append(f"client threads still running {CLIENT_LIFETIME + 10:.0f}s after the deadline: {hung}")
        if slow:
            at = slow[0][0]
            near = [c for c in clients if c.start and c.start <= at and (c.end is None or c.end >= at - 1)]
            failures.append(f"/healthz failed or took >5 s during the fuzz: {[(round(p[0] - deadline + SECONDS, 1), p[1], round(p[2], 2)) for p in slow[:5]]}\n"
                            "clients running then:\n" + "\n".join(describe(c) for c in near[:8]))
        if failures:
            raise AssertionError(f"CONNFUZZ_SEED={SEED}\n" + "\n\n".join(failures))

        # ---- the hub afterwards ------------------------------------------------------------------
        if not REPLAY:
            assert len(finished) >= 2 * SECONDS, f"only {len(finished)} clients ran in {SECONDS} s"
        assert hub.alive(), "hub crashed:\n" + hub.output()
        assert http_get(hub, "/healthz")[0] == 200
        asyncio.run(round_trip(hub))
        rss_now = rss_kib(hub) / 1024
        assert rss.peak / 1024 < RSS_LIMIT_MIB and rss_now < RSS_LIMIT_MIB, \
            f"CONNFUZZ_SEED={SEED}: hub RSS peak {rss.peak / 1024:.1f} MiB, now {rss_now:.1f} MiB (limit {RSS_LIMIT_MIB})"
        settle = time.time() + 15
        while True:
            m = all_metrics(hub)
            left = {k: m.get("collabhub_" + k) for k in ("connections_open", "watch_channels", "run_publishers")}
            if left["connections_open"] <= 1 and left["watch_channels"] == 0 and left["run_publishers"] == 0:
                break
            assert time.time() < settle, f"CONNFUZZ_SEED={SEED}: 15 s after the last client, the hub still holds {left} " \
                                         "(connections_open counts this /metrics request)"
            time.sleep(0.5)
        print(f"after the fuzz: RSS {rss_now:.1f} MiB, gauges {left}")
        # Whatever the clients did, every session's transcript is still seq 1..N without gaps or repeats.
        for code in world.shared + [c for c, _ in world.endable]:
            req = urllib.request.Request(f"{hub.http}/api/sessions/{code}/transcript?format=ndjson", headers={"X-API-Key": KEY})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    status, raw = resp.status, resp.read()
            except urllib.error.HTTPError as e:
                status, raw = e.code, e.read()
            assert status == 200, (code, status, raw[:200])
            # NDJSON lines end at "\n" only (str.splitlines would also split at U+2028 inside a string).
            seqs = [json.loads(line)["seq"] for line in raw.decode().split("\n") if line.strip()]
            assert seqs == list(range(1, len(seqs) + 1)), f"CONNFUZZ_SEED={SEED}: session {code} transcript seqs {seqs[:20]}..."
        stopped = True
        stop_hub(hub)
    finally:
        if not stopped:
            hub.stop()
