#!/usr/bin/env bash
# Benchmark: vectorflow-api (release build) beside the original stack (FastAPI + SQLAlchemy under
# uvicorn, bench/api/original_app.py) on the same private PostgreSQL, with wrk:
#   GET /streams (50 rows) and POST /streams; requests/s and p99 latency; prints the ratios.
# Settings: DURATION (10s), CONNECTIONS (32), WRK_THREADS (2), ORIGINAL_WORKERS (1, as the original
# ran uvicorn), VF_SCRATCH_PATH (SwiftPM scratch folder, default .build).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/bench/api
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
ORIGINAL_WORKERS=${ORIGINAL_WORKERS:-1}
SCRATCH=${VF_SCRATCH_PATH:-.build}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

echo "==> building vectorflow-api (release)"
swift build -c release --product vectorflow-api --scratch-path "$SCRATCH" 2>&1 | grep -E "error|Compiling vectorflow|Build" || true
API_BIN=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/vectorflow-api
[ -x "$API_BIN" ] || { echo "no $API_BIN" >&2; exit 1; }

echo "==> original stack venv (bench/api/.venv)"
if [ ! -x "$HERE/.venv/bin/uvicorn" ]; then
  python3 -m venv "$HERE/.venv"
  "$HERE/.venv/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
fi

WORK=$(mktemp -d /tmp/vf-bench-api.XXXXXX)
PIDS=()
PGBIN=/usr/lib/postgresql/15/bin
AS_PG=(); [ "$(id -u)" = 0 ] && AS_PG=(runuser -u postgres --) && chown postgres: "$WORK"
cleanup() {
  local rc=$?
  if [ $rc != 0 ]; then
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done >&2
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; echo "timeout waiting for $1" >&2; return 1; }

echo "==> PostgreSQL 15 (private cluster)"
PGPORT=$(free_port)
"${AS_PG[@]}" "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $WORK -c fsync=off -c max_connections=200" start >/dev/null
PSQL=(psql -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
"${PSQL[@]}" -d postgres -c "CREATE ROLE vectorflow LOGIN PASSWORD 'vectorflow'" -c "CREATE DATABASE vectorflow OWNER vectorflow"
DB_URL="postgresql://vectorflow:vectorflow@127.0.0.1:$PGPORT/vectorflow"

echo "==> starting both servers"
SWIFT_PORT=$(free_port)
DATABASE_URL=$DB_URL REDIS_URL=redis://127.0.0.1:1/0 VF_HOST=127.0.0.1 VF_PORT=$SWIFT_PORT VF_STATIC_DIR=$WORK/none \
  "$API_BIN" >"$WORK/swift.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SWIFT_PORT/health"   # also creates the table (init.sql)
ORIG_PORT=$(free_port)
DATABASE_URL=$DB_URL "$HERE/.venv/bin/uvicorn" original_app:app --app-dir "$HERE" --host 127.0.0.1 --port "$ORIG_PORT" \
  --workers "$ORIGINAL_WORKERS" --no-access-log --log-level warning >"$WORK/orig.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$ORIG_PORT/health"

reset_rows() {
  "${PSQL[@]}" -d vectorflow -c "TRUNCATE camera_streams" -c "INSERT INTO camera_streams (name, rtsp_url, grid_size, threshold)
    SELECT 'camera ' || g, 'rtsp://10.0.0.' || g || ':554/stream', 16, 1.2 FROM generate_series(1, 50) g"
}

# wrk → "rps p99_ms"; fails loudly on socket errors or non-2xx answers.
run_wrk() {
  local url=$1; shift
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null   # warm-up
  local out
  out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url")
  echo "$out" >>"$WORK/wrk.txt"
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from $url:" >&2; echo "$out" >&2; exit 1; fi
  local rps p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  echo "$rps $p99"
}

declare -A RESULT
for name in swift original; do
  port=$SWIFT_PORT; [ $name = original ] && port=$ORIG_PORT
  reset_rows
  n=$(curl -fs "http://127.0.0.1:$port/streams" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  [ "$n" = 50 ] || { echo "$name: GET /streams returned $n rows, expected 50" >&2; exit 1; }
  echo "==> $name: GET /streams (50 rows), $CONNECTIONS connections, $DURATION"
  RESULT[$name-get]=$(run_wrk "http://127.0.0.1:$port/streams")
  reset_rows
  echo "==> $name: POST /streams"
  RESULT[$name-post]=$(run_wrk "http://127.0.0.1:$port/streams" -s "$HERE/post.lua")
done

mkdir -p "$HERE/results"
{
  printf "%-22s %14s %12s %14s %12s %9s\n" "benchmark" "swift req/s" "swift p99" "original req/s" "orig p99" "ratio"
  for b in get post; do
    read -r s_rps s_p99 <<<"${RESULT[swift-$b]}"
    read -r o_rps o_p99 <<<"${RESULT[original-$b]}"
    label="GET /streams (50 rows)"; [ $b = post ] && label="POST /streams"
    printf "%-22s %14.0f %10.2fms %14.0f %10.2fms %8.1fx\n" "$label" "$s_rps" "$s_p99" "$o_rps" "$o_p99" \
      "$(python3 -c "print($s_rps / $o_rps)")"
  done
  echo "(wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION; original: uvicorn --workers $ORIGINAL_WORKERS; $(nproc) cores shared by wrk, PostgreSQL and the server)"
} | tee "$HERE/results/latest.txt"
