"""`loadtest run --window-hook CMD` (used by loadtest/bench_shards.sh to sample several processes' CPU,
Redis INFO and syscalls over exactly the measured window): the hook runs as `CMD start` before the window
and `CMD end` after it, each waited for (the load generator's loop sits beside libev, where Foundation's
Process never saw its child exit and the run hung), and the run still writes its report."""
import json
import os
import subprocess
import time

from conftest import ROOT

LOADTEST = os.environ.get("LOADTEST_BIN")


def loadtest_binary():
    """LOADTEST_BIN, or the debug build of the loadtest product (built here: scripts/test.sh builds only the
    hub before the integration tests)."""
    if LOADTEST:
        return LOADTEST
    subprocess.run(["swift", "build", "--product", "loadtest"], cwd=ROOT, check=True, timeout=1800,
                   stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, ".build", "debug", "loadtest")


def test_hook_runs_around_the_window_and_is_waited_for(make_hub, tmp_path):
    binary = loadtest_binary()
    hub = make_hub("--auth", "open", "--threads", "1")
    marks = tmp_path / "marks"
    hook = tmp_path / "hook"
    # Sleeps, so a hook that was not waited for would write its mark after the run's report.
    hook.write_text(f'#!/bin/sh\nsleep 0.3\necho "$1 $(date +%s.%N)" >> {marks}\n')
    hook.chmod(0o755)
    report = tmp_path / "report.json"
    started = time.time()
    run = subprocess.run(
        [binary, "run", os.path.join(ROOT, "loadtest", "scenarios", "fanout.json"), "--sessions", "2", "--members",
         "2", "--rate", "5", "--cursor-hz", "0", "--chat-every", "0", "--duration", "1", "--warmup", "0.2",
         "--url", hub.url, "--quiet", "--json", str(report), "--window-hook", str(hook)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert run.returncode == 0, run.stdout
    lines = marks.read_text().split()
    assert lines[0::2] == ["start", "end"], lines
    t_start, t_end = float(lines[1]), float(lines[3])
    # The window (1 s) lies between the two marks; both were written before the report.
    assert t_end - t_start >= 1.0
    assert os.path.getmtime(report) >= t_end - 0.05
    assert json.loads(report.read_text())["seconds"] >= 1.0
    assert time.time() - started < 30


def test_no_hook_and_a_failing_hook_do_not_stop_the_run(make_hub, tmp_path):
    binary = loadtest_binary()
    hub = make_hub("--auth", "open", "--threads", "1")
    for extra in ([], ["--window-hook", "exit 3 #"]):
        report = tmp_path / "r.json"
        run = subprocess.run(
            [binary, "run", os.path.join(ROOT, "loadtest", "scenarios", "fanout.json"), "--sessions", "1",
             "--members", "2", "--rate", "5", "--cursor-hz", "0", "--chat-every", "0", "--duration", "0.5",
             "--warmup", "0.1", "--url", hub.url, "--quiet", "--json", str(report), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        assert run.returncode == 0, run.stdout
        assert json.loads(report.read_text())["seconds"] > 0
