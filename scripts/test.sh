#!/usr/bin/env bash
# The test command (README): installs what it needs, builds, runs every test.
#   unit tests (swift test) → bounded fuzzing of the parsers → integration tests (pytest, real
#   PostgreSQL, Redis, Prometheus, RTSP server, browser started by the tests themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
export VF_FUZZ_SECONDS=${VF_FUZZ_SECONDS:-30}
bash scripts/install-deps.sh --test
echo "==> fetching sample videos"
export VF_SAMPLES_DIR=$(bash scripts/fetch-samples.sh | tail -n 1)
echo "==> building (debug)"
swift build --build-tests 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Write|Emitting)' || { echo "build failed"; exit 1; }
echo "==> unit tests"
swift test --skip-build 2>&1 | tail -n 40
[ "${PIPESTATUS[0]}" = 0 ] || { echo "unit tests failed"; exit 1; }
echo "==> fuzzing (${VF_FUZZ_SECONDS}s per target)"
bash scripts/fuzz.sh
echo "==> integration tests"
mkdir -p test-output
python3 -m pytest -q -p no:cacheprovider --timeout=300 -rfE tests "$@"
