#!/usr/bin/env bash
# The fault matrix (docs/faults.md): the real platform (API with process workers, 4 looped sample
# videos and an RTSP camera, private PostgreSQL and Redis), and one at a time: PostgreSQL killed
# and restarted, Redis killed and restarted, a worker killed, the API killed (-9) and restarted,
# the RTSP camera killed and restarted, PostgreSQL frozen (SIGSTOP) for 10 s. Prints a markdown
# table; bounded (every wait has a timeout, about 3-5 minutes in all); stops all it started.
#   VF_BIN_DIR    use these binaries instead of building (release) here
#   VF_SAMPLES_DIR  sample videos (default: fetched into .vf/samples)
#   VF_FAULTS_OUT   where the table and raw rows go (default test-output/faults.md, .json)
# Extra arguments go to faults.py (e.g. --only api-kill worker-kill).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${VF_BIN_DIR:-}" ]; then
  echo "==> building (release)" >&2
  swift build -c release --product vectorflow-api >&2
  swift build -c release --product vectorflow-worker >&2
  VF_BIN_DIR=$(swift build -c release --show-bin-path)
fi
SAMPLES=$(bash scripts/fetch-samples.sh | tail -n 1)
OUT=${VF_FAULTS_OUT:-test-output/faults.md}
# exec: the signals reach faults.py itself, whose cleanup stops everything it started.
exec python3 bench/faults/faults.py --bin-dir "$VF_BIN_DIR" --samples "$SAMPLES" --out "$OUT" \
  --logs "$(dirname "$OUT")/faults-logs" "$@"
