#!/usr/bin/env bash
# One command for the whole test suite: system packages, the browser client's unit tests (node --test),
# integration tests against the real binary with real peers (pytest: Python websockets, Node ws, raw
# sockets, openssl s_client, headless Chromium), the hostile-input files again against a hub built with
# AddressSanitizer (scripts/sanitize.sh), bounded fuzzing, and the Swift unit tests (swift test; the
# storage contract suite also against a Redis started here for them).
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

echo "== hostile input under AddressSanitizer (scripts/sanitize.sh: abuse, connection fuzz, lifecycle fuzz, conformance)"
scripts/sanitize.sh address Tests/integration/test_hostile.py Tests/integration/test_fuzz_connection.py \
  Tests/integration/test_lifecycle_fuzz.py Tests/integration/test_conformance.py || status=1

echo "== fuzzing"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}" || status=1

echo "== unit tests (swift test)"
# The storage contract suite also runs against a cluster node's storage (StoragePortTests): a Redis of its
# own on a free loopback port, without persistence, named by REDIS_URL (the tests flush it).
redis_dir=$(mktemp -d)
redis_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize yes \
  --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log" --dir "$redis_dir" || status=1
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL="redis://127.0.0.1:$redis_port" swift test --disable-swift-testing 2>&1 \
  | grep -avE "^\[[0-9]+/[0-9]+\]|^Test Case .* (started|passed)" ; [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
[ -f "$redis_dir/redis.pid" ] && kill "$(cat "$redis_dir/redis.pid")" 2>/dev/null
rm -rf "$redis_dir"

if [ "${CALLGRIND_BUDGET:-0}" = 1 ]; then
  echo "== callgrind budget (instructions per unit of work against loadtest/callgrind-baseline.json)"
  /usr/bin/python3 loadtest/callgrind_budget.py check || status=1
fi

exit $status
