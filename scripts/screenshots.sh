#!/usr/bin/env bash
# The README's screenshots: runs Tests/integration/test_demo_pages.py (collabhub demo's four pages in
# headless Chromium at 1280x800) and copies the pictures it takes, test-output/screenshots/demo-*.png,
# into Tests/screenshots/. COLLABHUB_BIN names the binary (default: .build/debug/collabhub, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${COLLABHUB_BIN:-}" ]; then
  swift build --product collabhub 2>&1 | grep -aE "error|warning: |Build complete" || true
  COLLABHUB_BIN=$PWD/.build/debug/collabhub
fi
[ -x "$COLLABHUB_BIN" ] || { echo "screenshots: no collabhub binary at $COLLABHUB_BIN" >&2; exit 1; }
export COLLABHUB_BIN
rm -f test-output/screenshots/demo-*.png
/usr/bin/python3 -m pytest -q Tests/integration/test_demo_pages.py
shots=(demo-room.png demo-dashboard.png demo-replay.png demo-console.png)
mkdir -p Tests/screenshots
for shot in "${shots[@]}"; do
  [ -s "test-output/screenshots/$shot" ] || { echo "screenshots: the test made no $shot" >&2; exit 1; }
  cp "test-output/screenshots/$shot" Tests/screenshots/
done
printf 'Tests/screenshots/%s\n' "${shots[@]}"
