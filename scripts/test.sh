#!/usr/bin/env bash
# The test command (README): installs what it needs, builds, runs every test.
#   unit tests (swift test) → bounded fuzzing of the parsers → integration tests (pytest, real
#   PostgreSQL, Redis, Prometheus, RTSP server, browser started by the tests themselves).
# Every step's full output is kept in test-output/ (build.log, unit-tests.log, fuzz.log and
# fuzz/, pytest.log); the terminal gets summaries, and on a failure the names of what failed.
set -euo pipefail
cd "$(dirname "$0")/.."
export VF_FUZZ_SECONDS=${VF_FUZZ_SECONDS:-30}
OUTDIR=test-output
mkdir -p "$OUTDIR"

# What the terminal shows of the unit tests' log ($1; $2 the exit code of swift test). XCTest
# prints `Test Case 'Class.testX' started|passed|failed` (`'-[Module.Class testX]'` on Darwin)
# and `FILE:LINE: error: Class.testX : XCTAssert... failed`. A trap (a force unwrap, a
# precondition) kills the whole test process: its test then has a `started` line and no end,
# and every later test never runs; the log ends in a backtrace, so name that test explicitly.
summarize_unit_tests() {
  local log=$1 rc=$2 failed crashed
  # The test case that started last and never ended: where the process died (empty if none).
  crashed=$(awk -F"'" '/^Test Case /{ if ($3 ~ /^ started/) cur = $2; else if ($3 ~ /^ (passed|failed|skipped)/) cur = "" }
                       END { print cur }' "$log")
  # XCTest's last "Executed" line is the whole run's, unless the process died (then a suite's).
  [ -n "$crashed" ] || grep -E '^[[:space:]]*Executed [0-9]+ tests?,' "$log" | tail -n 1 | sed 's/^[[:space:]]*/  /' || true
  grep -E '^(✔|✘) Test run with' "$log" | grep -v 'with 0 tests' | tail -n 1 | sed 's/^/  /' || true  # swift-testing
  [ "$rc" = 0 ] && return 0
  failed=$(grep -E "^Test Case '[^']+' failed" "$log" | sed -E "s/^Test Case '([^']+)' failed.*/\1/" | sort -u || true)
  if [ -n "$failed" ]; then
    echo "  failed tests ($(printf '%s\n' "$failed" | wc -l)):"
    printf '%s\n' "$failed" | head -n 50 | sed 's/^/    /'
    echo "  their failures (first 40):"
    grep -E ': error: ' "$log" | head -n 40 | sed 's/^/    /' || true
  fi
  grep -E '^✘ ' "$log" | grep -v 'Test run with' | head -n 20 | sed 's/^/  /' || true
  if [ -n "$crashed" ]; then
    echo "  the test process died during: $crashed"
    grep -E 'Fatal error|Precondition failed|Assertion failed|Program crashed|Unexpectedly found nil|^error: ' "$log" \
      | head -n 5 | sed 's/^/    /' || true
    echo "  (tests after it did not run)"
  fi
  if [ -z "$failed" ] && [ -z "$crashed" ]; then
    echo "  swift test exited with $rc; the end of its log:"
    tail -n 30 "$log" | sed 's/^/    /'
  fi
}

bash scripts/install-deps.sh --test
echo "==> fetching sample videos"
export VF_SAMPLES_DIR=$(bash scripts/fetch-samples.sh | tail -n 1)
echo "==> building (debug)"
swift build --build-tests 2>&1 | tee "$OUTDIR/build.log" | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Write|Emitting)' \
  || { echo "build failed (full log: $OUTDIR/build.log)"; exit 1; }

echo "==> unit tests (full log: $OUTDIR/unit-tests.log)"
rc=0
swift test --skip-build > "$OUTDIR/unit-tests.log" 2>&1 || rc=$?
summarize_unit_tests "$OUTDIR/unit-tests.log" "$rc"
[ "$rc" = 0 ] || { echo "unit tests failed (full log: $OUTDIR/unit-tests.log)"; exit 1; }

echo "==> fuzzing (${VF_FUZZ_SECONDS}s per target; full log: $OUTDIR/fuzz.log, per target: $OUTDIR/fuzz/)"
rc=0
bash scripts/fuzz.sh 2>&1 | tee "$OUTDIR/fuzz.log" || rc=$?
mkdir -p "$OUTDIR/fuzz"
cp Fuzz/bin/*.log "$OUTDIR/fuzz/" 2>/dev/null || true
[ "$rc" = 0 ] || { echo "fuzzing failed (full log: $OUTDIR/fuzz.log)"; exit 1; }

echo "==> integration tests (full log: $OUTDIR/pytest.log)"
# pipefail: the exit code is pytest's (tee's is 0), so any failure still makes the script fail.
python3 -m pytest -q -p no:cacheprovider --timeout=300 -rfE tests "$@" 2>&1 | tee "$OUTDIR/pytest.log"
