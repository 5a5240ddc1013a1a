#!/usr/bin/env bash
# The flow's quality side by side, in one run (not a timed test): on the ground-truth clips of
# tests/flowtruth.py (four 640x480 clips, 40 frames: static real backgrounds with sensor noise,
# MJPEG compression, flicker and flat areas; textured objects moving at known sub-pixel speeds) and
# on vtest.avi / tree.avi, for
#   opencv        cv2.calcOpticalFlowPyrLK on the grid (Debian's python3-opencv, the same OpenCV 4.6)
#   opencv+fb     the same, keeping the vectors that pass a forward-backward check (0.5 px)
#   exact         `vectorflow-worker bench --exact` (OpenCV's own answer, unfiltered)
#   fast          `bench --no-filter` (the gated fast path, unfiltered)
#   fast+filter   `bench` (the default: the reliability filter on, the grey image from the decoder's luma plane)
#   fast+filter, BGR grey   `bench --grey-from-bgr` (the same, on the grey image of OpenCV's BGR frame)
#   only CHECK    `bench --filter-checks CHECK`, each candidate check alone
# Clips: false vectors per frame (reported at points >= 32 px from every moving object), recall
# (interior moving points, true speed >= 2 px, reported within 1 px; rel. = against opencv), mean
# endpoint error of the found points, mean |magnitude_max - true maximum|, ms per frame (worker:
# flow_ms, i.e. grey conversion, pyramids, tracking and filter; Python: the LK calls alone).
# Real footage: vectors per frame, the share failing a forward-backward check computed with cv2,
# magnitude_max median and p95. All pinned to one core.
#   bench/flow-quality/run.sh    (VF_SCRATCH=.build REAL_FRAMES=300 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRATCH=${VF_SCRATCH:-.build}
SAMPLES=${VF_SAMPLES_DIR:-$(bash scripts/fetch-samples.sh | tail -n 1)}
OUT=${VF_FLOW_QUALITY_OUT:-$SCRATCH/flow-quality}
echo "==> building release (scratch path $SCRATCH)" >&2
swift build -c release --scratch-path "$SCRATCH" --product vectorflow-worker >&2
taskset -c 0 /usr/bin/python3 bench/flow-quality/quality.py "$SCRATCH/release/vectorflow-worker" "$SAMPLES" "$OUT" \
  --real vtest.avi,tree.avi --real-frames "${REAL_FRAMES:-300}"
