"""The callgrind budget's comparison (loadtest/callgrind_budget.py), without valgrind: a fake "now"
above the threshold fails, one at or below it passes, the committed baseline is well-formed, and the
measurement lines of bench_callgrind.sh parse into instructions per unit."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "loadtest", "callgrind_budget.py")
sys.path.insert(0, os.path.join(ROOT, "loadtest"))
import callgrind_budget  # noqa: E402

BASE = {"fanout": {"per_unit": 10000}, "durable": {"per_unit": 200000}}


def test_within_threshold_passes():
    rows, ok = callgrind_budget.compare(BASE, {"fanout": 10299, "durable": 150000})
    assert ok
    assert [r[4] for r in rows] == ["ok", "ok"]
    # Exactly +3% is still within.
    assert callgrind_budget.compare(BASE, {"fanout": 10300, "durable": 200000})[1]


def test_over_threshold_fails():
    rows, ok = callgrind_budget.compare(BASE, {"fanout": 10301, "durable": 200000})
    assert not ok
    by = {r[0]: r for r in rows}
    assert by["fanout"][4].startswith("FAIL") and by["durable"][4] == "ok"
    assert by["fanout"][3] == pytest.approx(3.01)


def test_missing_measurement_fails_and_new_workload_does_not():
    assert not callgrind_budget.compare(BASE, {"fanout": 10000})[1]
    rows, ok = callgrind_budget.compare(BASE, {"fanout": 10000, "durable": 200000, "new": 5})
    assert ok and ("new", None, 5, None, "no baseline") in rows


def test_threshold_is_a_parameter():
    assert not callgrind_budget.compare(BASE, {"fanout": 10101, "durable": 200000}, threshold=1)[1]


def run_check(tmp_path, now, *extra):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"workloads": BASE}))
    fake = tmp_path / "now.json"
    fake.write_text(json.dumps(now))
    return subprocess.run([sys.executable, SCRIPT, "check", "--baseline", str(baseline), "--now", str(fake), *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_command_fails_over_and_passes_under(tmp_path):
    over = run_check(tmp_path, {"fanout": 10500, "durable": 199000})
    assert over.returncode == 1, over.stdout
    assert "fanout" in over.stdout and "+5.00%" in over.stdout and "FAIL" in over.stdout
    assert "OVER" in over.stdout
    under = run_check(tmp_path, {"fanout": 10200, "durable": 199000})
    assert under.returncode == 0, under.stdout
    assert "+2.00%" in under.stdout and "-0.50%" in under.stdout and "FAIL" not in under.stdout


def test_parse_measurement():
    runs = callgrind_budget.parse_measurement(
        "fanout 18000 delivery 300000000 120000000\nfanout 18000 delivery 300180000 120000000\nnoise line\n")
    assert [r["per_unit"] for r in runs["fanout"]] == [10000, 10010]
    with pytest.raises(ValueError):
        callgrind_budget.parse_measurement("idle 2000 member 100 200\n")


def test_committed_baseline_covers_every_workload():
    with open(callgrind_budget.BASELINE) as f:
        doc = json.load(f)
    assert {"date", "commit", "command", "workloads"} <= set(doc)
    assert set(doc["workloads"]) == {"fanout", "durable", "dashboards", "idle"}
    for w in doc["workloads"].values():
        assert w["per_unit"] > 0 and w["units"] > 0 and w["unit"]
