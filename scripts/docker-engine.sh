#!/usr/bin/env bash
# Starts or stops a private Docker engine for tests (never the machine's own one).
#   scripts/docker-engine.sh start DIR   → dockerd on unix://DIR/docker.sock; prints the DOCKER_HOST
#   scripts/docker-engine.sh stop DIR
# No iptables and no bridge: containers must use NetworkMode host. Exits 3 (with the reason on
# stderr) when no engine can run here, so callers can skip with that reason.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
case "$cmd" in
start)
  command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 3; }
  mkdir -p "$dir/root" "$dir/exec"
  sock="$dir/docker.sock"
  dockerd --data-root "$dir/root" --exec-root "$dir/exec" --host "unix://$sock" --pidfile "$dir/dockerd.pid" \
    --iptables=false --ip6tables=false --bridge=none >"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 150); do
    if curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then echo "unix://$sock"; exit 0; fi
    kill -0 $! 2>/dev/null || break
    sleep 0.1
  done
  echo "dockerd did not start; last log lines:" >&2; tail -n 5 "$dir/dockerd.log" >&2 || true
  kill $! 2>/dev/null || true
  exit 3 ;;
stop)
  if [ -f "$dir/dockerd.pid" ]; then
    pid=$(cat "$dir/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # dockerd leaves its network namespace mounted; unmount so the folder can be deleted.
  for m in $(awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
