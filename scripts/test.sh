#!/usr/bin/env bash
# One command for the whole test suite: system packages, the browser client's unit tests (node --test),
# integration tests against the real binary with real peers (pytest: Python websockets, Node ws, raw
# sockets, openssl s_client, headless Chromium), bounded fuzzing, and the Swift unit tests (swift test).
# FUZZ_SECONDS (default 30) sets the time per fuzz target. CALLGRIND_BUDGET=1 adds the cost budget: a release
# build (.build-rel) runs fixed-size workloads under valgrind (some minutes) and fails when one costs more than
# 3% over loadtest/callgrind-baseline.json (loadtest/README.md says how to move a baseline on purpose).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1
status=0
swift build --product collabhub 2>&1 | grep -aE "error|warning: |Build complete" ; [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

echo "== source format (swift format lint: the pretty-printer's layout, lines of at most 120 characters)"
swift format lint --strict -r Sources || status=1
long=$(find Sources -name '*.swift' -exec awk 'length > 120 { print FILENAME ":" FNR }' {} +)
[ -z "$long" ] || { echo "lines over 120 characters: $long"; status=1; }

echo "== browser client unit tests (node --test)"
node --test Tests/client/ || status=1

echo "== integration tests (pytest, real collabhub on loopback)"
/usr/bin/python3 -m pytest -q Tests/integration || status=1

echo "== fuzzing"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}" || status=1

echo "== unit tests (swift test)"
swift test --disable-swift-testing 2>&1 | grep -avE "^\[[0-9]+/[0-9]+\]|^Test Case .* (started|passed)" ; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1

if [ "${CALLGRIND_BUDGET:-0}" = 1 ]; then
  echo "== callgrind budget (instructions per unit of work against loadtest/callgrind-baseline.json)"
  /usr/bin/python3 loadtest/callgrind_budget.py check || status=1
fi

exit $status
