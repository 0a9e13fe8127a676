"""What people download (issue 27, "a distributable"): the binary runs copied alone into an empty folder
and serves its pages (they are compiled in, no resource bundle beside it); `scripts/package.sh` makes a
tarball that runs unpacked into an empty folder, with its version and commit on `--version`, `/healthz`
and `/metrics`; the systemd unit in it is one systemd accepts."""
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request

import pytest

import conftest

PAGES = {"/": b"<title>CollabHub", "/dashboard": b"<html", "/replay/ABCDEFGH": b"<html", "/admin": b"<html",
         "/client.js": b"collabhub.js", "/admin.js": b"", "/app.css": b""}


def run_hub(binary, cwd, *args, env=None):
    proc = subprocess.Popen([binary, "serve", "--port", "0", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    m = re.search(r"listening on [^ ]+:(\d+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"did not start: {line}{proc.stdout.read()}")
    return proc, int(m.group(1))


def get(port, path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def test_the_binary_copied_alone_serves_its_pages(tmp_path):
    alone = tmp_path / "empty"
    alone.mkdir()
    shutil.copy2(conftest.BINARY, alone / "collabhub")
    assert os.listdir(alone) == ["collabhub"]
    proc, port = run_hub("./collabhub", alone, "--data", str(alone / "data"))
    try:
        for path, start in PAGES.items():
            status, body = get(port, path)
            assert status == 200 and start in body[:400] and len(body) > 1000, path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_release_tarball_runs_unpacked_in_an_empty_folder(tmp_path):
    if not shutil.which("git"):
        pytest.skip("git is needed for the commit")
    out = tmp_path / "dist"
    env = {**os.environ, "CONFIG": "debug", "STATIC": "0", "OUT": str(out)}
    p = subprocess.run(["scripts/package.sh"], cwd=conftest.ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    tarballs = list(out.glob("collabhub-*-linux-*.tar.gz"))
    assert len(tarballs) == 1, p.stdout
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(tarballs[0]) as t:
        names = sorted(os.path.basename(n) for n in t.getnames() if t.getmember(n).isfile())
        assert names == ["LICENSE", "collabhub", "collabhub.example.json", "collabhub.service"], names
        t.extractall(unpacked)
    (top,) = list(unpacked.iterdir())
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=conftest.ROOT, capture_output=True,
                            text=True).stdout.strip()
    version = subprocess.run(["./collabhub", "--version"], cwd=top, capture_output=True, text=True).stdout
    assert re.fullmatch(rf"collabhub \d+\.\d+\.\d+ \({commit}(-dirty)?\)\n", version), version
    # The example configuration listens beyond loopback: with a credential (from a file, as the unit gives
    # it) it starts, on loopback here.
    (top / "admin-key").write_text("packaged-admin-key-0123456789\n")
    proc, port = run_hub("./collabhub", top, "--config", "collabhub.example.json", "--host", "127.0.0.1",
                         "--data", str(top / "state"), env={"COLLABHUB_ADMIN_KEY_FILE": str(top / "admin-key")})
    try:
        status, body = get(port, "/healthz", {"Host": "chat.example.com"})
        assert status == 200 and f"collabhub {version.split()[1]} ({commit}".encode() in body, body
        status, body = get(port, "/metrics", {"X-API-Key": "packaged-admin-key-0123456789"})
        assert f'collabhub_build_info{{version="{version.split()[1]}",commit="{commit}'.encode() in body
        assert get(port, "/", {"Host": "chat.example.com"})[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if shutil.which("systemd-analyze"):
        unit = (top / "collabhub.service").read_text().replace("/usr/local/bin/collabhub", str(top / "collabhub"))
        (tmp_path / "collabhub.service").write_text(unit)
        v = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "collabhub.service")], capture_output=True,
                           text=True)
        problems = [l for l in (v.stdout + v.stderr).splitlines() if "collabhub.service" in l]
        assert not problems, problems


def test_the_demo_seeds_a_session_a_live_run_and_a_share_link(tmp_path):
    """`collabhub demo`: a hub with three people's history in a session, a run a built-in publisher
    advances, and a share link; it prints the room, dashboard, replay and console URLs, and each works."""
    import json
    proc = subprocess.Popen([conftest.BINARY, "demo", "--port", "0", "--data", str(tmp_path / "demo")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", first).group(1))
        urls = dict(line.split(":", 1) for line in (proc.stdout.readline() for _ in range(4)))
        urls = {k.strip(): v.strip() for k, v in urls.items()}
        assert set(urls) == {"room", "dashboard", "replay", "console"}, urls
        code = re.search(r"code=([A-Z0-9]+)", urls["room"]).group(1)
        transcript = json.loads(get(port, f"/api/sessions/{code}/transcript")[1])
        authors = {e["from"]["name"] for e in transcript["events"] if e["type"] == "chat"}
        kinds = {e["kind"] for e in transcript["events"] if e["type"] == "chat"}
        assert authors == {"Ann", "Bob", "Cara"} and kinds == {"text", "code", "file"}, transcript
        token = urls["replay"].split("#token=")[1]
        assert get(port, f"/api/sessions/{code}/transcript", {"Authorization": "Bearer " + token})[0] == 200

        def run_seq():
            runs = json.loads(get(port, "/api/runs?owner=demo")[1])["runs"]
            return max(r["seq"] for r in runs) if runs else 0
        before = run_seq()
        time.sleep(3)
        assert run_seq() > before, "the demo's publisher does not advance its run"
        for url in urls.values():
            path = "/" + url.split("/", 3)[3].split("#")[0]
            assert get(port, path)[0] == 200, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
