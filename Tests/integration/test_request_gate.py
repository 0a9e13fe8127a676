"""The per-request gate on its byte-level paths (issue 30 item 4: Host names are read on UTF-8 bytes and
Content-Type's white space is trimmed by hand, no longer by Foundation):
- Host: upper case, a port, IPv6 in brackets with and without a port pass; an empty or non-numeric port, two
  colons, a space, `@` or `/`, an empty bracket pair and an unclosed one are refused (421 unknown_host);
- Content-Type of an API write: spaces and tabs around `application/json` (and a parameter after `;`) pass,
  anything else is 415."""
import json

import pytest

import conftest
from test_trust import raw


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = conftest.Hub(data_dir=str(tmp_path_factory.mktemp("gate"))).start()
    yield h
    h.stop()


def test_host_names_are_parsed_by_bytes(hub):
    p = hub.port
    for host in ("LOCALHOST", f"LocalHost:{p}", f"127.0.0.1:{p}", "[::1]", f"[::1]:{p}", "127.0.0.1"):
        assert raw(hub, "GET", "/api/sessions", {"Host": host})[0] == 200, host
    for host in ("localhost:", "localhost:8o", f"localhost:{p}:{p}", "local host", "user@localhost",
                 "localhost/x", "[]", "[::1", f"[::1]{p}", "[::1]:x", ":80", "évil.example"):
        status, _, reply = raw(hub, "GET", "/api/sessions", {"Host": host})
        assert status == 421 and b"unknown_host" in reply, (host, status, reply)


def test_content_type_white_space_is_trimmed(hub):
    body = json.dumps({"title": "gate"})
    for ctype in ("application/json", " application/json", "application/json\t", "\t application/json ;charset=utf-8",
                  "Application/JSON; charset=utf-8"):
        status, _, reply = raw(hub, "POST", "/api/sessions", {"Content-Type": ctype}, body)
        assert status == 201, (ctype, status, reply)
    for ctype in ("text/plain", "application/json-seq", "application /json", ""):
        status, _, reply = raw(hub, "POST", "/api/sessions", {"Content-Type": ctype}, body)
        assert status == 415 and b"unsupported_media_type" in reply, (ctype, status, reply)
