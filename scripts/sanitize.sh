#!/usr/bin/env bash
# The integration suite against a hub built with a sanitizer: AddressSanitizer (a use after free, an overflow,
# a double free: the memory-safety side of "never crashes") or ThreadSanitizer (a data race between the loops,
# the SQLite writer and checkpointer, the webhook and Redis threads).
#
# Usage: scripts/sanitize.sh address|thread [pytest arguments...]     (default: all of Tests/integration)
#
# Builds the hub with `-sanitize=KIND` (debug, in .build-asan / .build-tsan), runs pytest with COLLABHUB_BIN set
# to it and COLLABHUB_SANITIZER=KIND (the tests then skip what measures the hub's own memory: the sanitizer's
# shadow memory and quarantine are not the hub's), and prints every report the sanitizer wrote.
# Fails when the sanitizer reported anything, and, for `address`, when a test failed. Under `thread` the hub
# runs 5-15x slower, so tests with timing bounds fail for that alone: they are listed, but only the reports
# decide. Leak reports are off: the hub keeps process-wide caches to its end, and a stop frees none of them.
# scripts/tsan.supp lists what ThreadSanitizer cannot see ordered, and why.
set -uo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
case $kind in
  address) dir=.build-asan ;;
  thread) dir=.build-tsan ;;
  *) echo "usage: scripts/sanitize.sh address|thread [pytest arguments...]" >&2; exit 2 ;;
esac
shift
swift build --product collabhub --scratch-path "$dir" -Xswiftc -sanitize="$kind" 2>&1 \
  | grep -aE "error:|complete!"; [ "${PIPESTATUS[0]}" -eq 0 ] || exit 1
reports=$(mktemp -d)
trap 'rm -rf "$reports"' EXIT
export COLLABHUB_BIN="$PWD/$dir/debug/collabhub" COLLABHUB_SANITIZER="$kind"
export ASAN_OPTIONS="detect_leaks=0:log_path=$reports/report"
export TSAN_OPTIONS="log_path=$reports/report:suppressions=$PWD/scripts/tsan.supp:history_size=3"
[ $# -gt 0 ] || set -- Tests/integration
/usr/bin/python3 -m pytest -q "$@"
tests=$?
found=$(find "$reports" -type f -size +0 | sort)
if [ -n "$found" ]; then
  for f in $found; do echo "== $f"; cat "$f"; done
  echo "sanitize.sh: $(echo "$found" | wc -l) hub process(es) with $kind-sanitizer reports (above)"
  exit 1
fi
echo "sanitize.sh: no $kind-sanitizer reports"
if [ "$kind" = address ] && [ $tests -ne 0 ]; then exit 1; fi
exit 0
