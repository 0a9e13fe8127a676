"""How TLS records reach the socket (issue 30, item 5): where the kernel offers no kernel TLS, the hub's
sessions move their records with recv/send (a BIO of its own, `socket_bio.h`), as plain sockets do;
where it does, OpenSSL's socket BIO (read/write) stays, because `SSL_OP_ENABLE_KTLS` needs it
(`COLLABHUB_TLS_SOCKET_IO=openssl` forces that one here). Both carry handshakes, records bigger than
the socket takes at once (partial writes), TLS 1.2, refused renegotiation and close_notify. The system
calls are seen with strace."""
import asyncio
import os
import re
import signal
import ssl
import subprocess
import time

import pytest
import websockets

import conftest


def kernel_offers_tls():
    try:
        return "tls" in open("/proc/sys/net/ipv4/tcp_available_ulp").read().split()
    except OSError:
        return False


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return conftest.localhost_cert(tmp_path_factory.mktemp("certs"))


class TracedHub:
    """A TLS echo hub under `strace -f` (record-carrying calls only); stopped through the hub's own pid."""

    def __init__(self, certs, tmp_path, env_value=None):
        self.trace = tmp_path / "strace.txt"
        self.hub = conftest.Hub("--threads", "1", "--echo", "--max-connections-per-address", "0",
                                "--tls-cert", str(certs / "cert.pem"), "--tls-key", str(certs / "key.pem"),
                                data_dir=str(tmp_path / "data"))
        self.hub.prefix = ["strace", "-f", "-qq", "-s", "4", "-e", "trace=read,write,recvfrom,sendto",
                           "-o", str(self.trace)]
        self.env_value = env_value

    def __enter__(self):
        old = os.environ.get("COLLABHUB_TLS_SOCKET_IO")
        if self.env_value is not None:
            os.environ["COLLABHUB_TLS_SOCKET_IO"] = self.env_value
        try:
            self.hub.start()
        finally:
            if old is None:
                os.environ.pop("COLLABHUB_TLS_SOCKET_IO", None)
            else:
                os.environ["COLLABHUB_TLS_SOCKET_IO"] = old
        return self

    def stop(self):
        pid = self.hub.proc.pid
        children = open(f"/proc/{pid}/task/{pid}/children").read().split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGTERM)
        assert self.hub.proc.wait(timeout=20) == 0
        return self.hub.proc.stdout.read(), self.trace.read_text()

    def __exit__(self, *exc):
        if self.hub.proc.poll() is None:
            self.hub.proc.kill()
            self.hub.proc.wait()


def record_calls(trace):
    """Per system call name, how many calls carried TLS records: application data (0x17 0x03 0x03) and
    handshake (0x16 0x03)."""
    counts = {}
    for line in trace.splitlines():
        m = re.search(r"\b(read|write|recvfrom|sendto)\(\d+, \"(\\27\\3\\3|\\26\\3)", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def exercise(port, certs):
    """Echo over TLS 1.3 and 1.2, with bursts bigger than the socket takes at once, and close cleanly."""
    ctx = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    ctx12 = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2

    async def go():
        for c in (ctx, ctx12):
            async with websockets.connect(f"wss://localhost:{port}/echo", ssl=c, max_size=None) as ws:
                for i in range(20):
                    await ws.send(f"small {i}")
                    assert await ws.recv() == f"small {i}"
                # ~3 MB sent before reading any: the hub's send() meets a full socket, partial records wait.
                msgs = [f"{i}-" + "y" * (100_000 + 313 * i) for i in range(30)]
                for m in msgs:
                    await ws.send(m)
                for m in msgs:
                    assert await asyncio.wait_for(ws.recv(), 20) == m
                await ws.close()
                assert ws.close_code == 1000
    asyncio.run(go())


def renegotiation_is_refused(port):
    """TLS 1.2 client asks to renegotiate ("R"): refused; the hub goes on serving."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-servername", "localhost"],
                       input=b"R\n", capture_output=True, timeout=20)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert "RENEGOTIATING" in out, out
    assert "no renegotiation" in out or "alert" in out or r.returncode != 0, out


@pytest.mark.skipif(kernel_offers_tls(), reason="this kernel offers kernel TLS: OpenSSL's socket BIO is used")
def test_records_go_through_recv_and_send_without_kernel_tls(certs, tmp_path):
    with TracedHub(certs, tmp_path) as t:
        exercise(t.hub.port, certs)
        renegotiation_is_refused(t.hub.port)
        exercise(t.hub.port, certs)  # still serving
        time.sleep(0.2)
        out, trace = t.stop()
    lines = [l for l in out.splitlines() if "TLS path in use:" in l]
    assert len(lines) == 1 and "record_io=recv/send" in lines[0], out
    calls = record_calls(trace)
    assert calls.get("sendto", 0) >= 40 and calls.get("recvfrom", 0) >= 40, calls
    # Not one record through the file layer's read/write.
    assert calls.get("write", 0) == 0 and calls.get("read", 0) == 0, calls
    # send() never raises SIGPIPE: every record goes out with MSG_NOSIGNAL.
    sends = [l for l in trace.splitlines() if re.search(r"\bsendto\(\d+, \"\\(27|26|25)", l)]
    assert sends and all("MSG_NOSIGNAL" in l for l in sends), sends[:3]


def test_openssl_socket_bio_still_works(certs, tmp_path):
    """OpenSSL's socket BIO (what kernel-TLS kernels use, and a fallback) carries the same traffic."""
    with TracedHub(certs, tmp_path, env_value="openssl") as t:
        exercise(t.hub.port, certs)
        renegotiation_is_refused(t.hub.port)
        time.sleep(0.2)
        out, trace = t.stop()
    lines = [l for l in out.splitlines() if "TLS path in use:" in l]
    assert len(lines) == 1 and "record_io=read/write" in lines[0], out
    calls = record_calls(trace)
    if not kernel_offers_tls():
        assert calls.get("write", 0) >= 40 and calls.get("read", 0) >= 40, calls
        assert calls.get("sendto", 0) == 0 and calls.get("recvfrom", 0) == 0, calls
