#!/usr/bin/env python3
"""The callgrind cost budget: instructions per unit of work of each fixed-size workload of
loadtest/bench_callgrind.sh (fan-out per delivery, durable per acked chat, dashboards per run event,
idle per joined member), against the committed baseline loadtest/callgrind-baseline.json.

  callgrind_budget.py check             build release (.build-rel), measure, compare; exit 1 when a
                                        workload costs more than 3% over its baseline
  callgrind_budget.py update            build, measure (twice: the spread is recorded) and rewrite the
                                        baseline; commit it with the change that explains it
  callgrind_budget.py check --now FILE  compare a measurement file ({"workload": per-unit, ...}) instead
                                        of measuring (no valgrind; the budget's own test uses it)

`scripts/test.sh` runs `check` when CALLGRIND_BUDGET=1.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(ROOT, "loadtest", "callgrind-baseline.json")
BENCH = os.path.join(ROOT, "loadtest", "bench_callgrind.sh")
SCRATCH = ".build-rel"
THRESHOLD_PERCENT = 3.0
WORKLOADS = ("fanout", "durable", "dashboards", "idle")  # bench_callgrind.sh's


def compare(baseline, now, threshold=THRESHOLD_PERCENT):
    """Rows (workload, baseline per unit, now per unit, change in percent, verdict) and whether all pass.

    `baseline` maps a workload to its entry ({"per_unit": N, ...}); `now` maps a workload to its
    per-unit instructions. A workload fails when it costs more than `threshold` percent over its
    baseline, or when it has a baseline but no measurement (a budget nobody checks does not hold); a
    measured workload without a baseline is reported but does not fail.
    """
    rows, ok = [], True
    for name in sorted(set(baseline) | set(now)):
        base = baseline.get(name, {}).get("per_unit")
        cur = now.get(name)
        if base is None:
            rows.append((name, None, cur, None, "no baseline"))
            continue
        if cur is None:
            rows.append((name, base, None, None, "FAIL: not measured"))
            ok = False
            continue
        change = (cur - base) / base * 100
        if change > threshold:
            rows.append((name, base, cur, change, f"FAIL: over +{threshold:g}%"))
            ok = False
        else:
            rows.append((name, base, cur, change, "ok"))
    return rows, ok


def table(rows):
    def num(v):
        return "-" if v is None else f"{v:,.0f}"

    lines = [f"{'workload':<12} {'baseline':>12} {'now':>12} {'change':>8}  verdict"]
    for name, base, cur, change, verdict in rows:
        ch = "-" if change is None else f"{change:+.2f}%"
        lines.append(f"{name:<12} {num(base):>12} {num(cur):>12} {ch:>8}  {verdict}")
    return "\n".join(lines)


def parse_measurement(text):
    """Lines `WORKLOAD UNITS UNIT RUN IDLE` (bench_callgrind.sh --measure) -> {workload: [runs]}."""
    runs = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        name, units, unit, run, idle = parts[0], int(parts[1]), parts[2], int(parts[3]), int(parts[4])
        if units <= 0 or run <= idle:
            raise ValueError(f"implausible measurement: {line}")
        runs.setdefault(name, []).append({"units": units, "unit": unit, "run": run, "idle": idle,
                                          "per_unit": (run - idle) / units})
    return runs


def build():
    for product in ("collabhub", "loadtest"):
        subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH, "--product", product],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def measure(reps, workloads):
    env = dict(os.environ, REPS=str(reps))
    binary = os.path.join(ROOT, SCRATCH, "release", "collabhub")
    loadtest = os.path.join(ROOT, SCRATCH, "release", "loadtest")
    done = subprocess.run([BENCH, "--measure", binary, loadtest, *workloads], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"callgrind budget: the measurement failed ({BENCH} exited with {done.returncode}; see above)")
    return parse_measurement(done.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["check", "update"])
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--now", help="a measurement file ({workload: instructions per unit}) instead of measuring")
    ap.add_argument("--threshold", type=float, default=THRESHOLD_PERCENT, help="percent over the baseline")
    ap.add_argument("--reps", type=int, help="runs per workload (check: 1, update: 2)")
    ap.add_argument("--no-build", action="store_true", help="use the release binaries already in .build-rel")
    ap.add_argument("workloads", nargs="*", help="only these (default: all)")
    args = ap.parse_intermixed_args(argv)
    unknown = [w for w in args.workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")

    if args.now:
        if args.action != "check":
            ap.error("--now only goes with check")
        with open(args.now) as f:
            now = {k: float(v) for k, v in json.load(f).items()}
        spreads = {}
    else:
        if not args.no_build:
            build()
        runs = measure(args.reps or (2 if args.action == "update" else 1), args.workloads)
        if args.action == "check":
            # A workload over its budget is measured once more and the smaller count kept: an instruction
            # count only grows by accident (a stop that needed a second signal), so a regression shows in both.
            with open(args.baseline) as f:
                base = json.load(f).get("workloads", {})
            first = {k: min(r["per_unit"] for r in v) for k, v in runs.items()}
            rows = compare({k: base[k] for k in first if k in base}, first, args.threshold)[0]
            again = [row[0] for row in rows if row[4].startswith("FAIL")]
            if again:
                print("measuring again: " + ", ".join(again))
                for k, v in measure(1, again).items():
                    runs[k] += v
        # update: the mean of the runs; check: the smallest.
        now = {k: (sum(r["per_unit"] for r in v) / len(v) if args.action == "update" else min(r["per_unit"] for r in v))
               for k, v in runs.items()}
        spreads = {k: (max(r["per_unit"] for r in v) - min(r["per_unit"] for r in v)) / now[k] * 100
                   for k, v in runs.items()}
        for k, v in sorted(runs.items()):
            per = ", ".join(f"{r['per_unit']:,.0f}" for r in v)
            spread = f" (spread {spreads[k]:.2f}%)" if len(v) > 1 else ""
            print(f"{k}: {per} instructions per {v[0]['unit']}{spread}")

    if args.action == "update":
        try:
            with open(args.baseline) as f:
                doc = json.load(f)
        except FileNotFoundError:
            doc = {}
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True).stdout.strip()
        workloads = doc.get("workloads", {})
        for k, v in runs.items():
            workloads[k] = {"per_unit": round(now[k]), "unit": v[0]["unit"], "units": v[0]["units"],
                            "runs": [round(r["per_unit"]) for r in v], "spread_percent": round(spreads[k], 3)}
        doc = {
            "about": "Instructions per unit of work of each fixed-size workload of loadtest/bench_callgrind.sh "
                     "(hub total minus an idle start-and-stop). scripts/test.sh fails (CALLGRIND_BUDGET=1) "
                     f"when one costs more than {THRESHOLD_PERCENT:g}% over this. Rewrite it on purpose with "
                     "`loadtest/callgrind_budget.py update`, committed with the change that explains it.",
            "date": datetime.date.today().isoformat(),
            "commit": commit + ("+uncommitted" if dirty else ""),
            "command": "loadtest/callgrind_budget.py update" + (" " + " ".join(args.workloads) if args.workloads else ""),
            "valgrind": subprocess.run(["valgrind", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip(),
            "workloads": dict(sorted(workloads.items())),
        }
        with open(args.baseline, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"wrote {os.path.relpath(args.baseline, ROOT)}")
        return 0

    with open(args.baseline) as f:
        baseline = json.load(f).get("workloads", {})
    if args.workloads:
        baseline = {k: v for k, v in baseline.items() if k in args.workloads}
    rows, ok = compare(baseline, now, args.threshold)
    print(table(rows))
    print("callgrind budget: " + ("within" if ok else "OVER") + f" (+{args.threshold:g}% allowed)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
