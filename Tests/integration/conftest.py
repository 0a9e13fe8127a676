"""Starts the real collabhub binary on a free loopback port for the integration tests."""
import os
import re
import signal
import subprocess
import time

import pytest

import contract

# Every HTTP answer a test gets from a hub is checked against Protocol/openapi.json (contract.py).
contract.install()

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("COLLABHUB_BIN", os.path.join(ROOT, ".build", "debug", "collabhub"))
# Set by scripts/sanitize.sh ("address" or "thread") when BINARY is built with that sanitizer.
SANITIZER = os.environ.get("COLLABHUB_SANITIZER", "")


def rss_limit_mib(mib):
    """An RSS bound in MiB for the hub, or none under a sanitizer: its shadow memory and quarantine of
    freed blocks (256 MiB by default) are the sanitizer's bytes, not the hub's."""
    return float("inf") if SANITIZER else mib


def no_sanitizer(why):
    """Skips a test that measures the hub's memory itself (meaningless under a sanitizer)."""
    return pytest.mark.skipif(SANITIZER != "", reason=f"{why}: not measurable under the {SANITIZER} sanitizer")


def cpu_bound_seconds(seconds):
    """A wall-clock bound on work whose pace is the hub's CPU (filling buffers by processing a flood), not a
    timer: 3x under a sanitizer, whose debug build runs the hub several times slower."""
    return seconds * 3 if SANITIZER else seconds


class Hub:
    def __init__(self, *args, data_dir=None):
        self.args = list(args)
        self.data_dir = data_dir
        self.proc = None
        self.port = None
        self.prefix = []   # e.g. ["prlimit", "--fsize=..."]
        # The operator's admin key, when the hub has one (hubclient.api sends it by default).
        self.admin_key = None
        for flag in ("--admin-key", "--publish-key"):
            if flag in self.args and self.args.index(flag) + 1 < len(self.args):
                self.admin_key = self.args[self.args.index(flag) + 1]

    def start(self):
        cmd = self.prefix + [BINARY, "serve", "--port", "0", "--host", "127.0.0.1", *self.args]
        # Tests that measure throughput blast chat faster than a person could; the limit itself is
        # tested with its own setting (test_auth).
        if "--limit-chat" not in self.args:
            cmd += ["--limit-chat", "10000"]
        if "--data" not in self.args:
            # Every hub gets a store of its own: a shared ./data would carry one test's state (its keys, the
            # closed-mode mark) into the next.
            if not self.data_dir:
                import tempfile
                self.data_dir = tempfile.mkdtemp(prefix="collabhub-test-")
            cmd += ["--data", self.data_dir]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on [^ ]+:(\d+)", line)
        if not m:
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"hub did not start: {line}{rest}")
        self.port = int(m.group(1))
        contract.HUB_PORTS.add(self.port)
        contract.LIVENESS[self.port] = self.alive
        return self

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig=signal.SIGTERM, timeout=10):
        contract.HUB_PORTS.discard(self.port)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self):
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stdout.read()[-5000:]

    def alive(self):
        return self.proc.poll() is None


@pytest.fixture(autouse=True)
def http_contract():
    """Fails a test that got an HTTP answer the contract (Protocol/openapi.json) does not allow."""
    with contract._lock:
        contract.VIOLATIONS.clear()
    yield
    with contract._lock:
        problems, contract.VIOLATIONS[:] = list(contract.VIOLATIONS), []
    if problems:
        pytest.fail("HTTP answers outside Protocol/openapi.json:\n  " + "\n  ".join(dict.fromkeys(problems)), pytrace=False)


def localhost_cert(directory):
    """A self-signed certificate for localhost and 127.0.0.1: `cert.pem` and `key.pem` in `directory`."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "key.pem"),
                    "-out", str(directory / "cert.pem"), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def echo_hub():
    hub = Hub("--echo", "--threads", "2").start()
    yield hub
    assert hub.alive(), "hub crashed during the tests:\n" + hub.output()
    rc = hub.stop()
    assert rc == 0, f"hub exited with {rc}:\n" + hub.output()


@pytest.fixture(scope="module")
def session_hub(tmp_path_factory):
    hub = Hub("--threads", "2", data_dir=str(tmp_path_factory.mktemp("data"))).start()
    yield hub
    assert hub.alive(), "hub crashed during the tests:\n" + hub.output()
    rc = hub.stop()
    assert rc == 0, f"hub exited with {rc}:\n" + hub.output()


@pytest.fixture
def make_hub(tmp_path):
    hubs = []

    def make(*args, data_dir=None):
        hub = Hub(*args, data_dir=data_dir or str(tmp_path / f"data{len(hubs)}")).start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.stop()


def run_node(tmp_path, script, url):
    """Runs a Node `ws` client script (Debian's node-ws) against `url`; returns the finished process."""
    import shutil
    path = tmp_path / "client.js"
    path.write_text(script)
    env = {"NODE_PATH": "/usr/share/nodejs:/usr/lib/nodejs", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run([shutil.which("node") or "node", str(path), url], capture_output=True, text=True, timeout=30, env=env)
