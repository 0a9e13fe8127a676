"""Cluster mode on a Redis Cluster over TLS (`--redis rediss+cluster://…`): three redis-servers with TLS only
(`--port 0 --tls-port P`), their cluster bus in TLS as well (`--tls-cluster yes`), joined by
`redis-cli --tls --cluster create`; certificates made by `openssl` in the test (test_cluster_tls.py's
helpers). Two hub nodes deliver chat to each other on every shard; each node's certificate is checked
against the address the cluster announces for it (an IP address), so a node certificate that names the
seed's host name only is refused at start-up, in a sentence that does not show the password."""
import shutil
import signal
import subprocess

import pytest

from conftest import Hub
from hubclient import create_session, eventually, run
from test_cluster_tls import OPENSSL, chat_between, make_ca, make_key_and_csr, refused, sign
from test_redis_cluster import cluster_port

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None or OPENSSL is None or shutil.which("redis-cli") is None,
                                reason="redis-server, redis-cli and openssl are needed (scripts/deps.sh test)")

PASSWORD = "cl-tls-s3cret"


@pytest.fixture(scope="module")
def ccerts(tmp_path_factory):
    """A CA; node certificates for the addresses the cluster announces (127.0.0.1) and for the name only
    (localhost). The cluster bus uses the same certificate both ways, so each may serve and be a client."""
    d = tmp_path_factory.mktemp("ccerts")
    make_ca(d, "ca")
    both = "extendedKeyUsage=serverAuth,clientAuth"
    make_key_and_csr(d, "node", "redis cluster node")
    sign(d, "node", "ca", f"subjectAltName=DNS:localhost,IP:127.0.0.1\n{both}")
    make_key_and_csr(d, "byname", "localhost")
    sign(d, "byname", "ca", f"subjectAltName=DNS:localhost\n{both}")
    return d


class TLSRedisCluster:
    """`masters` redis-servers with TLS only, one Redis Cluster (no replicas: small; the slots and TLS are
    what is tested here). `port` is the seed."""

    def __init__(self, base, certs, cert="node"):
        self.base, self.certs, self.cert = base, certs, cert
        self.ports = [cluster_port() for _ in range(3)]
        self.procs = {}

    def cli(self, port, *args):
        c = self.certs
        return subprocess.run(["redis-cli", "--tls", "--cacert", str(c / "ca.crt"), "-p", str(port),
                               "--no-auth-warning", "-a", PASSWORD, *map(str, args)],
                              capture_output=True, text=True, timeout=10).stdout.strip()

    def start(self):
        c = self.certs
        for p in self.ports:
            d = self.base / f"t{p}"
            d.mkdir()
            cmd = [REDIS, "--port", "0", "--tls-port", str(p), "--bind", "127.0.0.1", "--dir", str(d),
                   "--tls-cert-file", str(c / f"{self.cert}.crt"), "--tls-key-file", str(c / f"{self.cert}.key"),
                   "--tls-ca-cert-file", str(c / "ca.crt"), "--tls-auth-clients", "no", "--tls-cluster", "yes",
                   "--tls-replication", "yes", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                   "--cluster-node-timeout", "1500", "--requirepass", PASSWORD, "--masterauth", PASSWORD,
                   "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                   "--logfile", str(d / "redis.log")]
            self.procs[p] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            eventually(lambda p=p: self.cli(p, "PING") == "PONG", what=f"redis-server (TLS) {p} to answer")
        c = self.certs
        out = subprocess.run(["redis-cli", "--tls", "--cacert", str(c / "ca.crt"), "--no-auth-warning", "-a",
                              PASSWORD, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                              "--cluster-replicas", "0", "--cluster-yes"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        eventually(lambda: all("cluster_state:ok" in self.cli(p, "CLUSTER", "INFO") for p in self.ports),
                   timeout=30, what="cluster_state:ok on every node")
        return self

    def master_of(self, key):
        slot = int(self.cli(self.ports[0], "CLUSTER", "KEYSLOT", key))
        for line in self.cli(self.ports[0], "CLUSTER", "NODES").splitlines():
            f = line.split()
            for r in f[8:]:
                lo, _, hi = r.partition("-")
                if not r.startswith("[") and int(lo) <= slot <= int(hi or lo):
                    return int(f[1].split("@")[0].rsplit(":", 1)[1])
        return None

    def calls(self, port, command):
        for line in self.cli(port, "INFO", "commandstats").splitlines():
            if line.startswith(f"cmdstat_{command}:"):
                return int(line.split("calls=")[1].split(",")[0])
        return 0

    def url(self, host="127.0.0.1"):
        return f"rediss+cluster://:{PASSWORD}@{host}:{self.ports[0]}"

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)


def test_two_nodes_chat_on_every_shard_of_a_tls_redis_cluster(tmp_path, ccerts):
    rc = TLSRedisCluster(tmp_path, ccerts).start()
    ca = str(ccerts / "ca.crt")
    # One node is given the seed by IP address, the other by name: the seed is checked against the name
    # given, every other node against the address the cluster announces.
    a = Hub("--redis", rc.url("127.0.0.1"), "--redis-ca", ca, "--auth", "open", data_dir=str(tmp_path / "a"))
    b = Hub("--redis", rc.url("localhost"), "--redis-ca", ca, "--auth", "open", data_dir=str(tmp_path / "b"))
    try:
        a.start(); b.start()
        by = {}
        for _ in range(200):
            code = create_session(a if len(by) % 2 else b)["code"]
            by.setdefault(rc.master_of("{" + code + "}:m"), code)
            if len(by) == 3:
                break
        assert sorted(by) == sorted(rc.ports), by
        before = {p: rc.calls(p, "spublish") for p in by}
        for master, code in by.items():
            run(chat_between(a, b, code, f"over TLS on shard {master}"))
            # The session's keys and its sharded channel are on its own shard.
            assert rc.cli(master, "HGET", "{" + code + "}:m", "seq") not in ("", "0")
            assert rc.calls(master, "spublish") > before[master], master
        assert a.alive() and b.alive()
    finally:
        a.stop(); b.stop(); rc.stop()
    # Nothing on the way printed the password.
    for n in (a, b):
        assert PASSWORD not in n.output()


def test_node_certificates_must_name_the_address_the_cluster_announces(tmp_path, ccerts):
    """Certificates for `localhost` only: the seed (`localhost`) passes, but the cluster announces its nodes
    as 127.0.0.1, which those certificates do not name, so the node refuses to start and says why."""
    rc = TLSRedisCluster(tmp_path, ccerts, cert="byname").start()
    try:
        err = refused(tmp_path, "--redis", rc.url("localhost"), "--redis-ca", str(ccerts / "ca.crt"))
        assert "certificate was refused (IP address mismatch)" in err, err[-800:]
        assert "127.0.0.1" in err, err[-800:]
        assert PASSWORD not in err, err[-800:]
    finally:
        rc.stop()
