"""Cluster mode over TLS (`rediss://`): a real redis-server with TLS on loopback, certificates made by
`openssl` in the test (a CA, server certificates, a client certificate). Two nodes deliver chat to each
other through it; a certificate that cannot be trusted, a name that does not match, a Redis that wants a
client certificate not given one, and settings that cannot work are all refused at start-up with a
sentence that does not show the URL's password."""
import asyncio
import shutil
import signal
import ssl
import socket
import subprocess

import pytest

from conftest import BINARY, Hub
from hubclient import Client, create_session, eventually, run
from test_cluster import free_port

REDIS = shutil.which("redis-server")
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(REDIS is None or OPENSSL is None,
                                reason="redis-server and openssl are needed (scripts/deps.sh test installs them)")


def openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_key_and_csr(d, name, cn):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name} test CA", cwd=d)


def sign(d, name, ca, extensions):
    (d / f"{name}.ext").write_text(extensions + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_key_and_csr(d, "server", "localhost")
    sign(d, "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    make_key_and_csr(d, "elsewhere", "elsewhere.example")
    sign(d, "elsewhere", "ca", "subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=serverAuth")
    make_key_and_csr(d, "client", "hub node")
    sign(d, "client", "ca", "extendedKeyUsage=clientAuth")
    return d


class TLSRedis:
    """redis-server with TLS only (`--port 0`), on a free loopback port."""

    def __init__(self, directory, certs, cert="server", auth_clients="no", password=None):
        self.dir, self.certs, self.cert, self.auth_clients = directory, certs, cert, auth_clients
        self.password = password
        self.port = free_port()
        self.proc = None

    def start(self):
        c = self.certs
        cmd = [REDIS, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
               "--tls-cert-file", str(c / f"{self.cert}.crt"), "--tls-key-file", str(c / f"{self.cert}.key"),
               "--tls-ca-cert-file", str(c / "ca.crt"), "--tls-auth-clients", self.auth_clients,
               "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
               "--logfile", str(self.dir / "redis.log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        eventually(self.listening, what="redis-server (TLS) to listen")
        return self

    def listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def url(self, host="127.0.0.1"):
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}{host}:{self.port}"


def refused(tmp_path, *args):
    """Starts a node that must refuse to start; returns its standard error."""
    p = subprocess.run([BINARY, "serve", "--port", "0", "--auth", "open", "--data", str(tmp_path / "refused"), *args],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, f"the node started: {p.stdout[-300:]} {p.stderr[-300:]}"
    return p.stderr


async def chat_between(a_hub, b_hub, code, text):
    a = await Client.connect(a_hub, code); await a.join("A", client_id="a")
    b = await Client.connect(b_hub, code); await b.join("B", client_id="b")
    await a.send({"type": "chat", "id": "1", "text": text})
    ack = await a.expect("ack")
    got = await b.expect("chat")
    assert got["text"] == text and got["seq"] == ack["seq"], (got, ack)
    await b.send({"type": "chat", "id": "2", "text": "and back"})
    back = await a.expect("chat")
    assert back["text"] == "and back" and back["seq"] > ack["seq"]
    await a.close(); await b.close()


def test_two_nodes_deliver_chat_over_rediss(tmp_path, certs):
    redis = TLSRedis(tmp_path, certs, password="tls-s3cret").start()
    ca = str(certs / "ca.crt")
    # One node names Redis by its IP address, the other by name: both are checked against the certificate.
    a = Hub("--redis", redis.url("127.0.0.1"), "--redis-ca", ca, "--auth", "open", data_dir=str(tmp_path / "a"))
    b = Hub("--redis", redis.url("localhost"), "--redis-ca", ca, "--auth", "open", data_dir=str(tmp_path / "b"))
    try:
        a.start(); b.start()
        code = create_session(a)["code"]
        run(chat_between(a, b, code, "across nodes, encrypted"))

        # Redis killed and restarted: the nodes reconnect over TLS, subscribe again and go on.
        redis.kill()
        redis.start()

        async def after_restart():
            x = await Client.connect(a, code); await x.join("X", client_id="x")
            y = await Client.connect(b, code); await y.join("Y", client_id="y")
            for k in range(80):
                await x.send({"type": "chat", "id": f"r{k}", "text": "after the restart"})
                while True:
                    m = await x.recv()
                    if m["type"] in ("ack", "error"):
                        break
                if m["type"] == "ack":
                    break
                assert m["code"] == "storage_unavailable", m
                await asyncio.sleep(0.25)
            assert m["type"] == "ack", m
            while True:
                got = await y.expect("chat")
                if got["seq"] == m["seq"]:
                    break
        run(after_restart())
        assert a.alive() and b.alive()
    finally:
        a.stop(); b.stop(); redis.stop()


def test_an_untrusted_certificate_is_refused_at_start_up(tmp_path, certs):
    redis = TLSRedis(tmp_path, certs, password="tls-s3cret").start()
    try:
        for extra in (["--redis-ca", str(certs / "otherca.crt")], []):   # another CA; the system's CAs
            err = refused(tmp_path, "--redis", redis.url(), *extra)
            # OpenSSL's own reason follows ("self-signed certificate in certificate chain", as Redis sends
            # its CA along).
            assert "the Redis server's certificate was refused (" in err, err[-600:]
            assert "tls-s3cret" not in err, "the password is never printed"
    finally:
        redis.stop()


def test_a_certificate_for_another_name_is_refused(tmp_path, certs):
    redis = TLSRedis(tmp_path, certs, cert="elsewhere").start()
    try:
        ca = str(certs / "ca.crt")
        err = refused(tmp_path, "--redis", redis.url("localhost"), "--redis-ca", ca)
        assert "certificate was refused (hostname mismatch)" in err, err[-600:]
        err = refused(tmp_path, "--redis", redis.url("127.0.0.1"), "--redis-ca", ca)
        assert "certificate was refused (IP address mismatch)" in err, err[-600:]
    finally:
        redis.stop()


def test_a_redis_that_wants_client_certificates(tmp_path, certs):
    redis = TLSRedis(tmp_path, certs, auth_clients="yes").start()
    ca = str(certs / "ca.crt")
    try:
        err = refused(tmp_path, "--redis", redis.url(), "--redis-ca", ca)
        assert "Redis asks for a client certificate" in err and "--redis-cert" in err, err[-600:]
        a = Hub("--redis", redis.url(), "--redis-ca", ca, "--redis-cert", str(certs / "client.crt"),
                "--redis-key", str(certs / "client.key"), "--auth", "open", data_dir=str(tmp_path / "a"))
        b = Hub("--redis", redis.url("localhost"), "--redis-ca", ca, "--redis-cert", str(certs / "client.crt"),
                "--redis-key", str(certs / "client.key"), "--auth", "open", data_dir=str(tmp_path / "b"))
        try:
            a.start(); b.start()
            run(chat_between(a, b, create_session(b)["code"], "with client certificates"))
        finally:
            a.stop(); b.stop()
    finally:
        redis.stop()


def test_settings_that_cannot_work_are_refused_without_the_password(tmp_path, certs):
    ca, crt, key = str(certs / "ca.crt"), str(certs / "client.crt"), str(certs / "client.key")
    port = free_port()
    cases = [
        (["--redis", f"redis://:pw-s3cret@127.0.0.1:{port}", "--redis-ca", ca], "need a rediss:// URL"),
        (["--redis-ca", ca], "--redis-ca needs --redis"),
        (["--redis", f"rediss://:pw-s3cret@127.0.0.1:{port}", "--redis-cert", crt], "needs both --redis-cert and"),
        (["--redis", f"rediss://:pw-s3cret@127.0.0.1:{port}", "--redis-cert", crt, "--redis-key", key + ".missing"],
         "--redis-key cannot be read"),
        (["--redis", f"rediss://:pw-s3cret@127.0.0.1:{port}", "--redis-ca", key], "Redis TLS: cannot load"),
        (["--redis", f"rediss://:pw-s3cret@127.0.0.1:{port}", "--redis-cert", ca, "--redis-key", key],
         "does not match"),
        (["--redis", f"rediss://:pw-s3cret@127.0.0.1:{port}", "--redis-ca", ca], "Connection refused"),
    ]
    for args, says in cases:
        err = refused(tmp_path, *args)
        assert says in err, (args, err[-600:])
        assert "pw-s3cret" not in err, ("the password is never printed", err[-600:])
