#!/usr/bin/env bash
# One command to build and run the hub: installs missing system packages, builds in release mode,
# and starts `collabhub serve` with any arguments given (e.g. scripts/run.sh --port 9000 --echo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
swift build -c release --product collabhub
exec .build/release/collabhub serve "$@"
