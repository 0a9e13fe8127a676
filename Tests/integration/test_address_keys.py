"""Per-address limits count an IPv6 client by its network (`--ipv6-prefix`, a /64 by default) and an IPv4
client, IPv4-mapped ones included, by its address. Loopback has one IPv6 address, so the hub and its
clients run in a network namespace of their own (`unshare -rn`), whose loopback holds addresses in two /64s;
skipped where namespaces cannot be made."""
import json
import shutil
import subprocess
import sys

import pytest

from conftest import BINARY

# Runs inside the namespace: argv = binary, data directory. Prints {probe: HTTP status} per hub.
PROBE = r'''
import json, re, socket, subprocess, sys, time
binary, data = sys.argv[1], sys.argv[2]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for a in ["2001:db8:1::2", "2001:db8:1::3", "2001:db8:1::4", "2001:db8:2::1", "2001:db8:ff::1"]:
    subprocess.run(["ip", "-6", "addr", "add", a + "/64", "dev", "lo", "nodad"], check=True)

def status(src, port, held):
    """Connects from `src`, asks for /healthz; returns the status and keeps the socket open (it holds
    its address's slot)."""
    v6 = ":" in src
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("2001:db8:ff::1" if v6 else "127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    held.append(s)
    head = s.recv(4096)
    return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else head.decode(errors="replace")

out = {}
for prefix in ["64", "128"]:
    hub = subprocess.Popen([binary, "serve", "--host", "::", "--port", "0", "--threads", "1", "--data", data + prefix,
                            "--max-connections-per-address", "2", "--ipv6-prefix", prefix, "--auth", "open",
                            "--allowed-hosts", "localhost"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = int(re.search(r"listening on \S+:(\d+)", hub.stdout.readline()).group(1))
    held, got = [], {}
    try:
        for name, src in [("a1", "2001:db8:1::2"), ("a2", "2001:db8:1::3"), ("a3", "2001:db8:1::4"),
                          ("b1", "2001:db8:2::1"), ("v4a", "127.0.0.2"), ("v4b", "127.0.0.2"), ("v4c", "127.0.0.3"),
                          ("v4d", "127.0.0.2")]:
            got[name] = status(src, port, held)
            time.sleep(0.05)
    finally:
        for s in held:
            s.close()
        hub.terminate()
        hub.wait(10)
    out[prefix] = got
print(json.dumps(out))
'''


def test_ipv6_clients_count_per_network_and_ipv4_per_address(tmp_path):
    unshare = shutil.which("unshare")
    if not unshare or not shutil.which("ip") or subprocess.run([unshare, "-rn", "true"]).returncode != 0:
        pytest.skip("cannot make a network namespace here (unshare -rn)")
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    done = subprocess.run([unshare, "-rn", sys.executable, str(script), BINARY, str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    # Cap 2 per address. With /64: a1, a2 and a3 share 2001:db8:1::/64, so a3 is refused; 2001:db8:2::/64 is
    # another network. IPv4 clients reach the dual-stack listener as ::ffff:127.0.0.x, each its own address.
    v4 = {"v4a": 200, "v4b": 200, "v4c": 200, "v4d": 429}
    assert got["64"] == {"a1": 200, "a2": 200, "a3": 429, "b1": 200, **v4}, got
    # --ipv6-prefix 128: every IPv6 address on its own again.
    assert got["128"] == {"a1": 200, "a2": 200, "a3": 200, "b1": 200, **v4}, got
