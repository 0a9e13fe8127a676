#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for a bounded time on a copy of
# its committed seed corpus. (Debug configuration: whole-module release builds lose the coverage
# counters, and so does adding --sanitize=address with this toolchain, leaving libFuzzer blind;
# debug builds still trap on overflow and bounds.) Usage: scripts/fuzz.sh [seconds-per-target]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
targets=(FuzzFrames:frames FuzzHTTP:http FuzzMessages:messages FuzzToken:token FuzzDeflate:deflate FuzzWatch:watch FuzzConnection:connection FuzzWebhook:webhook FuzzCluster:cluster FuzzLogOrder:logorder FuzzRESP:resp FuzzRedisRecords:redisrecords FuzzCompactIds:compactids)
for entry in "${targets[@]}"; do
  product=${entry%%:*}
  # A target that does not build fails the run (an old binary must not be fuzzed in its place).
  rm -f .build-fuzz/debug/"$product"
  COLLABHUB_FUZZ=1 swift build -c debug --sanitize=fuzzer \
    --scratch-path .build-fuzz --product "$product" 2>&1 | grep -aE "error|warning: unre|Build" || true
  [ -x .build-fuzz/debug/"$product" ] || { echo "FUZZ FAILURE: $product does not build"; exit 1; }
done
status=0
for entry in "${targets[@]}"; do
  product=${entry%%:*}; corpus=${entry##*:}
  work=$(mktemp -d)
  cp Tests/fuzz/corpus/"$corpus"/* "$work"/
  # FuzzCompactIds checks two small pure functions whose coverage is flat after a few seconds: half the
  # time, which keeps the step within ~30 s of its twelve-target length, the new target's build included.
  t=$seconds
  [ "$product" = FuzzCompactIds ] && t=$(( (seconds + 1) / 2 ))
  echo "== fuzzing $product for ${t}s"
  # The fuzzer's own exit status decides (a crash, a failed precondition, a leak): not grep's.
  rc=0
  .build-fuzz/debug/"$product" -max_total_time="$t" -max_len=4096 -print_final_stats=0 \
    -artifact_prefix=.build-fuzz/"$product"- "$work" > "$work.log" 2>&1 || rc=$?
  grep -aE "DONE|INITED|ERROR|SUMMARY|crash|panic|Fatal" "$work.log" | head -20 || true
  if [ "$rc" -ne 0 ]; then
    echo "FUZZ FAILURE in $product (exit $rc; artifact under .build-fuzz/)"; status=1
  fi
  rm -f "$work.log"
  rm -rf "$work"
done
exit $status
