#!/usr/bin/env bash
# A/B of two builds, side by side in one run: this checkout's release build (NEW) against the
# release binaries of another (OLD, e.g. a worktree of the commit before a refactor), round after
# round in alternation so both see the same machine:
#   api     vectorflow-api, GET /streams (50 rows) and POST /streams under wrk, on one private PostgreSQL
#   http    vfnet-testserver, GET /health under wrk (keep-alive)
#   worker  `vectorflow-worker bench` on vtest720.mp4 and vtest.mp4 (pinned to one core)
# Prints each measure's median over ROUNDS and the ratio NEW/OLD (>1: NEW is faster).
#   OLD_BIN=/path/to/old/.build/release bench/ab/run.sh        (ROUNDS=3 DURATION=5s FRAMES=400)
# Without OLD_BIN the build runs against itself: the spread that counts as noise.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD_BIN=${OLD_BIN:-}  # empty: this build against itself (the noise floor of the measures)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
FRAMES=${FRAMES:-400}
CONNECTIONS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
echo "==> building this checkout (release)" >&2
swift build -c release 2>&1 | grep -E "error|Build" >&2 || true
NEW_BIN=$(swift build -c release --show-bin-path)
[ -n "$OLD_BIN" ] || { OLD_BIN=$NEW_BIN; echo "(no OLD_BIN: this build against itself, the noise floor)" >&2; }
for b in vectorflow-api vectorflow-worker vfnet-testserver; do
  for d in "$OLD_BIN" "$NEW_BIN"; do [ -x "$d/$b" ] || { echo "no $d/$b" >&2; exit 1; }; done
done
SAMPLES=${VF_SAMPLES_DIR:-$(bash scripts/fetch-samples.sh | tail -n 1)}

WORK=$(mktemp -d /tmp/vf-bench-ab.XXXXXX)
PIDS=()
PGBIN=/usr/lib/postgresql/15/bin
AS_PG=(); [ "$(id -u)" = 0 ] && AS_PG=(runuser -u postgres --) && chown postgres: "$WORK"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "timeout: $1" >&2; return 1; }
wrk_rps() {  # url [wrk args] → requests/s (fails on non-2xx)
  local url=$1; shift
  wrk -t2 -c"$CONNECTIONS" -d1s "$@" "$url" >/dev/null
  local out; out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "$@" "$url")
  grep -q "Non-2xx" <<<"$out" && { echo "non-2xx from $url" >&2; echo "$out" >&2; exit 1; }
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}

echo "==> PostgreSQL 15 (private cluster)" >&2
PGPORT=$(free_port)
"${AS_PG[@]}" "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $WORK -c fsync=off -c max_connections=200" start >/dev/null
PSQL=(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
"${PSQL[@]}" -d postgres -c "CREATE ROLE vectorflow LOGIN PASSWORD 'vectorflow'" \
  -c "CREATE DATABASE vf_old OWNER vectorflow" -c "CREATE DATABASE vf_new OWNER vectorflow"
reset_rows() {
  "${PSQL[@]}" -d "$1" -c "TRUNCATE camera_streams" -c "INSERT INTO camera_streams (name, rtsp_url, grid_size, threshold)
    SELECT 'camera ' || g, 'rtsp://10.0.0.' || g || ':554/stream', 16, 1.2 FROM generate_series(1, 50) g"
}

declare -A PORT
for side in old new; do
  bin=$OLD_BIN; [ $side = new ] && bin=$NEW_BIN
  PORT[$side]=$(free_port)
  DATABASE_URL="postgresql://vectorflow:vectorflow@127.0.0.1:$PGPORT/vf_$side" REDIS_URL=redis://127.0.0.1:1/0 \
    VF_HOST=127.0.0.1 VF_PORT=${PORT[$side]} VF_STATIC_DIR=$WORK/none VF_RUNTIME=process VF_STATE_DIR=$WORK/state-$side \
    VF_FILE_SD_PATH=$WORK/sd-$side.json VF_ACCESS_LOG=false "$bin/vectorflow-api" >"$WORK/api-$side.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:${PORT[$side]}/health"
done

fps_of() { python3 -c "import json,sys; print(json.load(sys.stdin)['fps'])"; }
declare -A R
add() { R[$1]="${R[$1]:-} $2"; }
for round in $(seq 1 "$ROUNDS"); do
  echo "==> round $round/$ROUNDS" >&2
  for side in old new; do
    bin=$OLD_BIN; [ $side = new ] && bin=$NEW_BIN
    reset_rows "vf_$side"
    add "api GET /streams (50 rows) $side" "$(wrk_rps "http://127.0.0.1:${PORT[$side]}/streams")"
    reset_rows "vf_$side"
    add "api POST /streams $side" "$(wrk_rps "http://127.0.0.1:${PORT[$side]}/streams" -s bench/api/post.lua)"
    "$bin/vfnet-testserver" --port 0 --loops 2 >"$WORK/vf-$side.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/vf-$side.out" && break; sleep 0.05; done
    port=$(sed -n 's/^listening on //p' "$WORK/vf-$side.out")
    add "http GET /health $side" "$(wrk_rps "http://127.0.0.1:$port/health")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    for src in vtest720.mp4 vtest.mp4; do
      fps=$(taskset -c 0 "$bin/vectorflow-worker" bench "$SAMPLES/$src" --frames "$FRAMES" --vf-threads 1 | fps_of)
      add "worker $src frames/s $side" "$fps"
    done
  done
done

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
spread() { python3 -c 'import sys; v=[float(x) for x in sys.argv[1:]]; print("%.0f-%.0f" % (min(v), max(v)))' "$@"; }
printf "%-36s %12s %12s %8s   %s\n" "measure (median of $ROUNDS)" "old" "new" "new/old" "old range / new range"
for m in "api GET /streams (50 rows)" "api POST /streams" "http GET /health" "worker vtest720.mp4 frames/s" \
  "worker vtest.mp4 frames/s"; do
  # shellcheck disable=SC2086
  o=$(median ${R[$m old]}); n=$(median ${R[$m new]})
  # shellcheck disable=SC2086
  printf "%-36s %12.1f %12.1f %8.3f   %s / %s\n" "$m" "$o" "$n" "$(python3 -c "print($n / $o)")" \
    "$(spread ${R[$m old]})" "$(spread ${R[$m new]})"
done
echo "(old: $OLD_BIN; new: $NEW_BIN; wrk -t2 -c$CONNECTIONS -d$DURATION; worker: taskset -c 0, $FRAMES frames; $(nproc) cores)"
