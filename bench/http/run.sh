#!/usr/bin/env bash
# HTTP benchmark: VFNet's vfnet-testserver vs Debian's nginx, same machine, same wrk run shape.
#   bench/http/run.sh [connections=64] [seconds=10] [threads=2]
# Goal: VFNet ≥ 0.5 × nginx requests/s and p99 < 2 ms on GET /health (keep-alive).
set -euo pipefail
cd "$(dirname "$0")/../.."
CONNS=${1:-64}
SECS=${2:-10}
THREADS=${3:-2}
SCRATCH=${VF_BENCH_SCRATCH:-.build-bench}
command -v wrk >/dev/null || { echo "wrk not installed (scripts/install-deps.sh)"; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx not installed (nginx-light)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "==> building vfnet-testserver (release)"
swift build -c release --scratch-path "$SCRATCH" --product vfnet-testserver 2>&1 | grep -E "error|Compiling|Build" | tail -n 3
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/vfnet-testserver"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK=$(mktemp -d /tmp/vf-bench-http.XXXXXX)
cleanup() {
  [ -n "${VF_PID:-}" ] && kill "$VF_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- nginx: 2 workers, keep-alive, a 2-byte static file ----
NGINX_PORT=$(free_port)
mkdir -p "$WORK/www" "$WORK/tmp"
chmod 755 "$WORK" "$WORK/www"   # nginx workers run as www-data
printf 'ok' > "$WORK/www/health"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { root $WORK/www; }
  }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" 2>/dev/null

# ---- vfnet-testserver: 2 loops (like nginx's 2 workers) and 1 loop ----
start_vf() {  # loops → sets VF_PID, VF_PORT
  [ -n "${VF_PID:-}" ] && { kill "$VF_PID" 2>/dev/null || true; wait "$VF_PID" 2>/dev/null || true; }
  "$BIN" --port 0 --loops "$1" > "$WORK/vf.out" 2>&1 &
  VF_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/vf.out" 2>/dev/null && break; sleep 0.05; done
  VF_PORT=$(sed -n 's/^listening on //p' "$WORK/vf.out")
  [ -n "$VF_PORT" ] || { echo "vfnet-testserver did not start"; cat "$WORK/vf.out"; exit 1; }
}
curl -sf "http://127.0.0.1:$NGINX_PORT/health" >/dev/null || { echo "nginx did not start"; cat "$WORK/error.log"; exit 1; }

run() {  # name url → prints the wrk summary lines, saves the output
  wrk -t"$THREADS" -c"$CONNS" -d1s "$2" >/dev/null 2>&1 || true   # warm-up
  wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency "$2" > "$WORK/$1.wrk"
}
rps() { awk '/Requests\/sec/ {print $2}' "$WORK/$1.wrk"; }
p99() { awk '$1=="99%" {print $2}' "$WORK/$1.wrk"; }
to_ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

echo "==> wrk -t$THREADS -c$CONNS -d${SECS}s: nginx (http://127.0.0.1:$NGINX_PORT/health)"
run nginx "http://127.0.0.1:$NGINX_PORT/health"
for loops in 2 1; do
  start_vf "$loops"
  echo "==> wrk -t$THREADS -c$CONNS -d${SECS}s: vfnet, $loops loop(s) (http://127.0.0.1:$VF_PORT/health)"
  run "vfnet$loops" "http://127.0.0.1:$VF_PORT/health"
done

N_RPS=$(rps nginx); N_P99=$(to_ms "$(p99 nginx)")
echo
printf '%-14s %14s %12s %10s\n' server "requests/s" "p99 (ms)" "vs nginx"
printf '%-14s %14s %12s %10s\n' "nginx (2 wk)" "$N_RPS" "$N_P99" "1.00"
for loops in 2 1; do
  V_RPS=$(rps "vfnet$loops"); V_P99=$(to_ms "$(p99 "vfnet$loops")")
  RATIO=$(awk -v a="$V_RPS" -v b="$N_RPS" 'BEGIN { printf "%.2f", a / b }')
  printf '%-14s %14s %12s %10s\n' "vfnet ($loops lp)" "$V_RPS" "$V_P99" "$RATIO"
done
echo "goal: vfnet >= 0.5 x nginx requests/s, p99 < 2 ms ($(nproc) cores shared by wrk and the server; load $(cut -d' ' -f1 /proc/loadavg))"
grep -h "Socket errors" "$WORK"/*.wrk || true
