#!/usr/bin/env bash
# The worker's analysis loop against a straightforward Python/OpenCV loop (Debian's python3-opencv,
# the same OpenCV 4.6), both pinned to one core, on vtest.avi (768x576 MS-MPEG4) and vtest720.mp4
# (1280x720 H.264), without and with the preview (annotate + JPEG of every frame at full size).
# Prints frames/s and per-stage milliseconds of each, and the ratio Swift/Python (> 1 = Swift faster).
#   bench/worker/run.sh            (BENCH_FRAMES=400 ROUNDS=2 VF_SCRATCH=.build by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
FRAMES=${BENCH_FRAMES:-400}
ROUNDS=${ROUNDS:-2}
SCRATCH=${VF_SCRATCH:-.build}
SAMPLES=${VF_SAMPLES_DIR:-$(bash scripts/fetch-samples.sh | tail -n 1)}
echo "==> building release (scratch path $SCRATCH)" >&2
swift build -c release --scratch-path "$SCRATCH" --product vectorflow-worker >&2
BIN="$SCRATCH/release/vectorflow-worker"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for src in vtest.avi vtest720.mp4; do
  for mode in "" "--preview"; do
    for round in $(seq "$ROUNDS"); do
      # Alternate the two so that a neighbour's load on the shared machine hits both alike.
      s=$(taskset -c 0 "$BIN" bench "$SAMPLES/$src" --frames "$FRAMES" $mode)
      p=$(taskset -c 0 /usr/bin/python3 bench/worker/python_loop.py "$SAMPLES/$src" --frames "$FRAMES" $mode)
      echo "$src|${mode:-none}|swift|$s" >> "$OUT"
      echo "$src|${mode:-none}|python|$p" >> "$OUT"
    done
  done
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
best = {}
for line in open(sys.argv[1]):
    src, mode, impl, js = line.rstrip("\n").split("|", 3)
    r = json.loads(js)
    key = (src, mode, impl)
    if key not in best or r["fps"] > best[key]["fps"]:  # best of the rounds: least disturbed by neighbours
        best[key] = r
print(f"{'source':<14}{'preview':<9}{'impl':<8}{'fps':>8}{'decode':>9}{'flow':>9}{'annot.':>9}{'encode':>9}   (ms/frame)")
for src in ("vtest.avi", "vtest720.mp4"):
    for mode in ("none", "--preview"):
        s, p = best[(src, mode, "swift")], best[(src, mode, "python")]
        for impl, r in (("swift", s), ("python", p)):
            st = r["stages"]
            print(f"{src:<14}{mode.lstrip('-'):<9}{impl:<8}{r['fps']:>8.1f}{st['decode_ms']:>9.2f}{st['flow_ms']:>9.2f}"
                  f"{st['annotate_ms']:>9.2f}{st['encode_ms']:>9.2f}")
        # Per stage: Python's time / Swift's time, so > 1 means Swift is faster there too.
        def ratio(stage):
            a, b = s["stages"][stage], p["stages"][stage]
            return f"{b / a:>8.2f}x" if a > 0 else f"{'-':>9}"
        print(f"{'':<14}{'':<9}{'ratio':<8}{s['fps'] / p['fps']:>8.2f}x"
              + "".join(ratio(k) for k in ("decode_ms", "flow_ms", "annotate_ms", "encode_ms")))
        assert s["vectors_above_threshold"] == p["vectors_above_threshold"], \
            f"{src}: Swift and Python disagree on the vectors above threshold"
PY
