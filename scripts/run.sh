#!/usr/bin/env bash
# The run command (README): the whole platform on this machine, on an embedded default —
# a private PostgreSQL, Redis and Prometheus on loopback, the API with the process worker runtime,
# and (once) a demo stream on a real sample video. Ctrl-C, SIGTERM, SIGHUP or its output pipe
# closing (`make run | tee run.log`, then Ctrl-C) stops everything it started.
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
PG_STARTED=""
REDIS_STARTED=""
TEE_PID=""
WATCH_PID=""
CLEANED=""

# Cleanup must survive the way it is reached. With `make run | tee run.log` and Ctrl-C, the
# terminal's SIGINT reaches make, this script, tee and the API at once; tee dies first, so a
# message written to stdout during cleanup hits a closed pipe (SIGPIPE: bash would die there,
# leaving PostgreSQL, Redis and the workers running). So: cleanup ignores PIPE and the stop
# signals (a second Ctrl-C cannot cut it short: every wait in it is bounded), turns off set -e,
# and its messages are best-effort: stdout, else stderr, else nowhere.
say() {
  printf '%s\n' "$*" 2>/dev/null || printf '%s\n' "$*" >&2 2>/dev/null || true
}
# Whether pid $1 is alive and not a zombie (a dead child of ours stays a zombie until reaped).
alive() {
  local stat
  [ -r "/proc/$1/stat" ] || return 1
  read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}
# Waits up to $1 tenths of a second for every pid in $2... to be gone.
wait_gone() {
  local n=$1 pid left
  shift
  for _ in $(seq 1 "$n"); do
    left=0
    for pid in "$@"; do alive "$pid" && { left=1; break; }; done
    [ "$left" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}
# Worker pids of this platform: the records in $VF_HOME/workers, plus any vectorflow-worker
# process in /proc that talks to this platform's Redis. The scan covers a worker spawned by the
# API just before it stopped but not yet recorded (the runtime spawns first, then records).
platform_workers() {
  local f pid d argv0
  for f in "$VF_HOME"/workers/*.json; do
    [ -f "$f" ] || continue
    pid=$(grep -oE '"pid" *: *[0-9]+' "$f" 2>/dev/null | grep -oE '[0-9]+$' | head -n 1)
    # (2>/dev/null before the <: a process gone meanwhile must not print an error)
    [ -n "$pid" ] && [ "$pid" -gt 1 ] && tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q vectorflow-worker \
      && echo "$pid"
  done
  for d in /proc/[0-9]*; do
    argv0=""
    IFS= read -r -d '' argv0 2>/dev/null < "$d/cmdline" || true
    [[ $argv0 == *vectorflow-worker ]] || continue
    tr '\0' '\n' 2>/dev/null < "$d/environ" | grep -qxF "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0" && echo "${d#/proc/}"
  done
}
# This script's own children but the tee (it ends by itself once the API's output closes). A
# signal's trap can run between `cmd &` and the `$!` that records the pid, and bash forks before
# the exec: PIDS alone could miss the API or Prometheus, even one not yet exec'd. Builtins only;
# the subshell this runs in (a child too) is left out by its own pid.
own_children() {
  local d stat ppid comm
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$BASHPID" ] && continue
    read -r stat 2>/dev/null < "$d/stat" || continue
    stat=${stat##*) }
    read -r _ ppid _ <<< "$stat"
    [ "$ppid" = "$$" ] || continue
    read -r comm 2>/dev/null < "$d/comm" || continue
    [ "$comm" = tee ] || [ "${d#/proc/}" = "$TEE_PID" ] || [ "${d#/proc/}" = "$WATCH_PID" ] || echo "${d#/proc/}"
  done
}
cleanup() {
  [ -z "$CLEANED" ] || return 0   # once: a signal's handler and then EXIT both lead here
  CLEANED=1
  set +e
  trap '' INT TERM HUP PIPE
  say "$(step "stopping")"
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null
  # The API first (so it restarts no worker), then Prometheus, then any child PIDS missed.
  local services=()
  mapfile -t services < <(own_children)
  services=("${PIDS[@]}" "${services[@]}")
  for pid in "${services[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${services[@]}"; do
    wait_gone 50 "$pid" || kill -KILL "$pid" 2>/dev/null
  done
  wait_gone 20 "${services[@]}"
  # Process-runtime workers outlive an API restart on purpose (it adopts them); the platform's
  # stop ends them too. Each is its own process group leader.
  local workers=()
  mapfile -t workers < <(platform_workers | sort -un)
  for pid in "${workers[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done
  if [ ${#workers[@]} -gt 0 ] && ! wait_gone 30 "${workers[@]}"; then
    for pid in "${workers[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; done
    wait_gone 20 "${workers[@]}"
  fi
  if [ -n "$REDIS_STARTED" ]; then
    # By its pid file, and only if that pid is a redis-server on our port: if our Redis never
    # came up (the port was taken), the one on that port belongs to someone else.
    local rpid
    rpid=$(cat "$VF_HOME/redis/redis.pid" 2>/dev/null)
    if [ -n "$rpid" ] && alive "$rpid" \
      && tr '\0' ' ' 2>/dev/null < "/proc/$rpid/cmdline" | grep -q "^redis-server .*:$REDIS_PORT\b"; then
      kill -TERM "$rpid" 2>/dev/null   # a shutdown; nothing to save (--save '', no AOF)
      wait_gone 50 "$rpid" || kill -KILL "$rpid" 2>/dev/null
    fi
  fi
  if [ -n "$PG_STARTED" ]; then
    # The postmaster runs in a session of its own (pg_ctl's setsid): no terminal signal reaches
    # it, only this stop does. If Ctrl-C came while it was still starting, its pid file may not
    # exist yet: retry for a while, then an immediate stop.
    local pmpid=""
    for _ in $(seq 1 20); do
      pmpid=$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)
      [ -n "$pmpid" ] && break
      pgrep -f -- "-D $PG_DIR/data" >/dev/null 2>&1 || break
      sleep 0.25
    done
    as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
      || as_pg "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 10 stop >/dev/null 2>&1
    [ -n "$pmpid" ] && ! wait_gone 50 "$pmpid" && kill -KILL "$pmpid" 2>/dev/null
  fi
  # The tee that copies the API's output into its log ends when the API's output closes.
  [ -n "$TEE_PID" ] && { wait_gone 20 "$TEE_PID" || kill "$TEE_PID" 2>/dev/null; }
  say "stopped."
}
on_signal() {  # $1: the signal's number; exit as a shell does when killed by it
  cleanup
  trap - EXIT
  exit $((128 + $1))
}
trap 'on_signal 2' INT
trap 'on_signal 15' TERM
trap 'on_signal 1' HUP
# Trapped rather than ignored: a write to a closed stdout fails, the script stops cleanly, and
# the services it starts keep the default SIGPIPE (an ignored signal would be inherited).
trap 'on_signal 13' PIPE
trap cleanup EXIT

step "starting PostgreSQL on 127.0.0.1:$PG_PORT"
PG_STARTED=1
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
REDIS_STARTED=1
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes \
  --pidfile "$VF_HOME/redis/redis.pid" --dir "$VF_HOME/redis" --logfile "$VF_HOME/logs/redis.log"

# The API token: VF_API_TOKEN when set, else one generated on the first run and kept (0600) in
# VF_HOME, so a browser tab stays signed in across restarts. Prometheus reads it from that file.
TOKEN_FILE=$VF_HOME/api-token
if [ -n "${VF_API_TOKEN:-}" ]; then
  (umask 077; printf '%s' "$VF_API_TOKEN" > "$TOKEN_FILE")
elif [ ! -s "$TOKEN_FILE" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' > "$TOKEN_FILE")
fi
chmod 600 "$TOKEN_FILE"
API_TOKEN=$(cat "$TOKEN_FILE")

step "starting Prometheus on 127.0.0.1:$PROM_PORT"
FILE_SD=$VF_HOME/prometheus/file_sd/workers.json
[ -f "$FILE_SD" ] || echo '[]' > "$FILE_SD"
cat > "$VF_HOME/prometheus/prometheus.yml" <<YML
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: vectorflow-api
    authorization:
      credentials_file: "$TOKEN_FILE"
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
# The API's output goes to the terminal and to its log, through a tee whose pid cleanup knows.
exec 3> >(tee -a "$VF_HOME/logs/api.log")
TEE_PID=$!
DATABASE_URL="postgresql://vectorflow:vectorflow@127.0.0.1:$PG_PORT/vectorflow" \
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
VF_HOST=127.0.0.1 VF_PORT="$API_PORT" VF_RUNTIME=process VF_WORKER_BIN="$VF_BIN_DIR/vectorflow-worker" \
VF_FILE_SD_PATH="$FILE_SD" VF_STATE_DIR="$VF_HOME/workers" VF_STATIC_DIR="$ROOT/frontend-static" \
VF_ALLOW_FILE_SOURCES=true VF_MEDIA_DIR="$SAMPLES" VF_API_TOKEN="$API_TOKEN" \
  "$VF_BIN_DIR/vectorflow-api" >&3 2>&1 &
API_PID=$!
exec 3>&-  # only the API holds the tee's input: the tee ends with it
PIDS=("$API_PID" "${PIDS[@]}")
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$API_PORT/health" >/dev/null || { echo "the API did not become healthy; see $VF_HOME/logs/api.log"; exit 1; }

DEMO_NAME="Demo: vtest.avi (pedestrians)"
AUTH="Authorization: Bearer $API_TOKEN"
if ! curl -fsS -H "$AUTH" "http://127.0.0.1:$API_PORT/streams" | grep -q "\"$DEMO_NAME\""; then
  step "creating the demo stream"
  curl -fsS -X POST "http://127.0.0.1:$API_PORT/streams" -H "$AUTH" -H 'Content-Type: application/json' \
    -d "{\"name\":\"$DEMO_NAME\",\"rtsp_url\":\"file://$SAMPLES/vtest.avi\",\"grid_size\":16,\"threshold\":1.2,\"is_active\":true}" >/dev/null
fi

cat <<MSG

  Vector Flow is running.
    Dashboard:   http://127.0.0.1:$API_PORT/#token=$API_TOKEN
    API docs:    http://127.0.0.1:$API_PORT/docs
    Prometheus:  http://127.0.0.1:$PROM_PORT/
    API token:   $API_TOKEN  (kept in $TOKEN_FILE; curl -H "Authorization: Bearer \$(cat $TOKEN_FILE)")
  Data and logs: $VF_HOME    Press Ctrl-C to stop.

MSG
# Until the API ends or a signal arrives (the traps above). When stdout is a pipe, also until its
# reader goes away (`make run | head`, or a tee killed on its own): a closed pipe shows up as
# POLLERR on its write end, without writing anything, so a quiet platform notices it too.
if [ -p /dev/stdout ] && command -v python3 >/dev/null; then
  python3 -c 'import select, signal
signal.signal(signal.SIGINT, signal.SIG_DFL)
p = select.poll(); p.register(1, 0); p.poll()' &
  WATCH_PID=$!
  wait -n "$API_PID" "$WATCH_PID" || true
  # The reader is gone: stop as a write to the pipe would have stopped us (SIGPIPE, 141).
  alive "$WATCH_PID" || on_signal 13
else
  wait "$API_PID" || true
fi
