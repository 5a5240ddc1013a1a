#!/usr/bin/env bash
# The run command (README): the whole platform on this machine, on an embedded default —
# a private PostgreSQL, Redis and Prometheus on loopback, the API with the process worker runtime,
# and (once) a demo stream on a real sample video. Ctrl-C or SIGTERM stops everything it started.
# Data lives in $VF_HOME (default ./.vf) and survives a restart.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VF_HOME=${VF_HOME:-$ROOT/.vf}
API_PORT=${VF_PORT:-8000}
PG_PORT=${VF_PG_PORT:-55432}
REDIS_PORT=${VF_REDIS_PORT:-56379}
PROM_PORT=${VF_PROMETHEUS_PORT:-59090}
CONFIG=${VF_BUILD:-release}
step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

step "checking system packages"
bash scripts/install-deps.sh
if [ -z "${VF_BIN_DIR:-}" ]; then
  step "building vectorflow ($CONFIG; the first build takes a few minutes)"
  swift build -c "$CONFIG" --product vectorflow-api
  swift build -c "$CONFIG" --product vectorflow-worker
  VF_BIN_DIR=$(swift build -c "$CONFIG" --show-bin-path)
fi
step "fetching the demo video (Debian's opencv-doc)"
SAMPLES=$(VF_SAMPLES_DIR=${VF_SAMPLES_DIR:-$VF_HOME/samples} bash scripts/fetch-samples.sh | tail -n 1)

mkdir -p "$VF_HOME"/{pg,redis,prometheus/file_sd,workers,logs}
PG_DIR=$VF_HOME/pg
AS_PG=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root: its files belong to the postgres user, who must be able
  # to reach them (a checkout under /root is not reachable: then keep them under /var/lib).
  AS_PG=(runuser -u postgres --)
  chown postgres: "$PG_DIR"
  if ! "${AS_PG[@]}" test -w "$PG_DIR"; then
    PG_DIR=/var/lib/vectorflow/pg-$(printf '%s' "$VF_HOME" | md5sum | cut -c1-12)
    mkdir -p "$PG_DIR" && chown postgres: "$PG_DIR" /var/lib/vectorflow
    echo "    (PostgreSQL data in $PG_DIR: the postgres user cannot reach $VF_HOME)"
  fi
fi
PGBIN=/usr/lib/postgresql/15/bin
# From /, so the postgres user never trips over a current folder it cannot enter.
as_pg() { (cd / && "${AS_PG[@]}" "$@"); }
PIDS=()
cleanup() {
  trap - INT TERM EXIT
  step "stopping"
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Process-runtime workers outlive an API restart on purpose (it adopts them); the platform's
  # stop ends them too.
  local workers=()
  for f in "$VF_HOME"/workers/*.json; do
    [ -f "$f" ] || continue
    pid=$(grep -o '"pid":[0-9]*' "$f" | cut -d: -f2)
    [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q vectorflow-worker && workers+=("$pid")
  done
  for pid in "${workers[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${workers[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  echo "stopped."
}
trap cleanup INT TERM EXIT

step "starting PostgreSQL on 127.0.0.1:$PG_PORT"
if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
  as_pg "$PGBIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR" start >/dev/null
psql_pg() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -At "$@"; }
psql_pg -c "SELECT 1 FROM pg_roles WHERE rolname='vectorflow'" | grep -q 1 \
  || psql_pg -c "CREATE ROLE vectorflow LOGIN PASSWORD 'vectorflow'" >/dev/null
psql_pg -c "SELECT 1 FROM pg_database WHERE datname='vectorflow'" | grep -q 1 \
  || psql_pg -c "CREATE DATABASE vectorflow OWNER vectorflow" >/dev/null

step "starting Redis on 127.0.0.1:$REDIS_PORT"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
  --pidfile "$VF_HOME/redis/redis.pid" --dir "$VF_HOME/redis" --logfile "$VF_HOME/logs/redis.log"

step "starting Prometheus on 127.0.0.1:$PROM_PORT"
FILE_SD=$VF_HOME/prometheus/file_sd/workers.json
[ -f "$FILE_SD" ] || echo '[]' > "$FILE_SD"
cat > "$VF_HOME/prometheus/prometheus.yml" <<YML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: vectorflow-api
    static_configs:
      - targets: ["127.0.0.1:$API_PORT"]
  - job_name: vectorflow-workers
    honor_labels: true
    file_sd_configs:
      - files: ["$FILE_SD"]
        refresh_interval: 5s
YML
prometheus --config.file="$VF_HOME/prometheus/prometheus.yml" --storage.tsdb.path="$VF_HOME/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" > "$VF_HOME/logs/prometheus.log" 2>&1 &
PIDS+=($!)

step "starting the API on http://127.0.0.1:$API_PORT (process worker runtime)"
DATABASE_URL="postgresql://vectorflow:vectorflow@127.0.0.1:$PG_PORT/vectorflow" \
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
VF_HOST=127.0.0.1 VF_PORT="$API_PORT" VF_RUNTIME=process VF_WORKER_BIN="$VF_BIN_DIR/vectorflow-worker" \
VF_FILE_SD_PATH="$FILE_SD" VF_STATE_DIR="$VF_HOME/workers" VF_STATIC_DIR="$ROOT/frontend-static" \
VF_ALLOW_FILE_SOURCES=true \
  "$VF_BIN_DIR/vectorflow-api" > >(tee -a "$VF_HOME/logs/api.log") 2>&1 &
API_PID=$!
PIDS=("$API_PID" "${PIDS[@]}")
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null || { echo "the API did not become healthy; see $VF_HOME/logs/api.log"; exit 1; }

DEMO_NAME="Demo: vtest.avi (pedestrians)"
if ! curl -fsS "http://127.0.0.1:$API_PORT/streams" | grep -q "\"$DEMO_NAME\""; then
  step "creating the demo stream"
  curl -fsS -X POST "http://127.0.0.1:$API_PORT/streams" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$DEMO_NAME\",\"rtsp_url\":\"file://$SAMPLES/vtest.avi\",\"grid_size\":16,\"threshold\":1.2,\"is_active\":true}" >/dev/null
fi

cat <<MSG

  Vector Flow is running.
    Dashboard:   http://127.0.0.1:$API_PORT/
    API docs:    http://127.0.0.1:$API_PORT/docs
    Prometheus:  http://127.0.0.1:$PROM_PORT/
  Data and logs: $VF_HOME    Press Ctrl-C to stop.

MSG
wait "$API_PID" || true
