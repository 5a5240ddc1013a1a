#!/usr/bin/env bash
# Fan-out benchmark of FrameBroadcaster: a real redis-server, a real VFNet server and real
# WebSocket clients in one process. Prints one JSON line per configuration.
#   bench/fanout/run.sh                 # default grid
#   VF_BENCH_STREAMS=8 VF_BENCH_VIEWERS=4 VF_BENCH_FRAME_BYTES=80000 VF_BENCH_FPS=10 bench/fanout/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRATCH=${SCRATCH:-.build}
swift build --scratch-path "$SCRATCH" --build-tests >/dev/null
run() {
  VF_BENCH=1 VF_BENCH_STREAMS=$1 VF_BENCH_VIEWERS=$2 VF_BENCH_FRAME_BYTES=$3 VF_BENCH_FPS=${4:-0} VF_BENCH_SECONDS=${VF_BENCH_SECONDS:-3} \
    swift test --scratch-path "$SCRATCH" --skip-build --filter FanoutBenchTests 2>&1 | grep -a '^{"streams"' || echo "run failed: $*"
}
if [ -n "${VF_BENCH_STREAMS:-}" ]; then
  run "$VF_BENCH_STREAMS" "${VF_BENCH_VIEWERS:-8}" "${VF_BENCH_FRAME_BYTES:-60000}" "${VF_BENCH_FPS:-0}"
else
  # Paced like cameras (delivered_ratio should stay ~1, latency low) ...
  run 8 16 60000 15
  run 16 8 60000 15
  # ... then capacity: as fast as Redis takes frames ("latest wins" drops the excess per viewer).
  run 1 1 60000 0
  run 4 8 60000 0
fi
