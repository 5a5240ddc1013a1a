#!/usr/bin/env bash
# A three-node Docker Swarm on one machine, for tests (never the machine's own engine).
#   scripts/swarm-cluster.sh start DIR   → manager on unix://DIR/m/docker.sock; prints the DOCKER_HOST
#   scripts/swarm-cluster.sh stop DIR    → leaves nothing behind (daemons, mounts, netns, veths)
#   scripts/swarm-cluster.sh stop-node DIR n1|n2 / start-node DIR n1|n2  → a worker node's dockerd
# Layout (addresses in the 198.18.0.0/15 benchmark range only):
#   bridge vf18br 198.18.0.1 in the root namespace: the manager dockerd, the registry
#   (198.18.0.1:5000, insecure) and whatever the test runs for the workers (Redis, Prometheus);
#   netns vf18n1 198.18.0.2 and vf18n2 198.18.0.3: one worker dockerd each, joined by veth.
# Every node is labelled vectorflow.zone=<node name> (for constraints; the workers use no spread
# preference, see SwarmRuntimeConfiguration.spreadOver). start returns once all three nodes are
# Ready and Active with their labels, so the scheduler sees three equal nodes from the first task.
# Exits 3 (reason on stderr) when no engine can run here, so callers can skip with that reason.
# Stop is safe after a failed or partial start, and start runs stop first (idempotent).
set -uo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
BR=vf18br; NODES=(vf18n1 vf18n2); ADDRS=(198.18.0.2 198.18.0.3); MANAGER=198.18.0.1
REGISTRY="$MANAGER:5000"
dk() { local d=$1; shift; docker -H "unix://$dir/$d/docker.sock" "$@"; }

wait_ping() {  # sock pid
  for _ in $(seq 1 200); do
    curl -sf --max-time 2 --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_dockerd() {  # name [netns]
  local d=$1 ns=${2:-}
  mkdir -p "$dir/$d/root" "$dir/$d/exec"
  local args=(dockerd --data-root "$dir/$d/root" --exec-root "$dir/$d/exec" --host "unix://$dir/$d/docker.sock"
    --pidfile "$dir/$d/dockerd.pid" --iptables=false --ip6tables=false --bridge=none
    --insecure-registry "$REGISTRY")
  # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then finds no devices cgroup.
  if [ -n "$ns" ]; then args=(nsenter "--net=/var/run/netns/$ns" "${args[@]}"); fi
  setsid "${args[@]}" >"$dir/$d/dockerd.log" 2>&1 &
  local pid=$!
  if ! wait_ping "$dir/$d/docker.sock" "$pid"; then
    echo "dockerd $d did not start; last log lines:" >&2; tail -n 5 "$dir/$d/dockerd.log" >&2
    return 1
  fi
}

stop_dockerd() {  # name
  local d=$1 f="$dir/$1/dockerd.pid"
  if [ -f "$f" ]; then
    local pid; pid=$(cat "$f")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$f"
  fi
}

# Every node Ready and Active in the manager's view (bounded): the scheduler only places tasks on
# those, so a scenario started earlier would find fewer nodes than it expects.
wait_nodes_ready() {  # count seconds
  local want=$1 n
  for _ in $(seq 1 $(( $2 * 5 ))); do
    n=$(dk m node ls --format '{{.Status}} {{.Availability}}' 2>/dev/null | grep -c '^Ready Active$')
    [ "$n" = "$want" ] && return 0
    sleep 0.2
  done
  echo "only $n of $want swarm nodes Ready and Active after $2 s:" >&2
  dk m node ls >&2
  return 1
}

stop_all() {
  for i in 1 0; do stop_dockerd "n$((i + 1))"; done
  stop_dockerd m
  if [ -f "$dir/registry.pid" ]; then kill "$(cat "$dir/registry.pid")" 2>/dev/null; rm -f "$dir/registry.pid"; fi
  # dockerd leaves its namespaces mounted under its exec-root: unmount so the folder can go.
  for m in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
  for ns in "${NODES[@]}"; do ip netns del "$ns" 2>/dev/null; done
  for i in 0 1; do ip link del "vf18h$i" 2>/dev/null; done
  ip link del "$BR" 2>/dev/null
  return 0
}

case "$cmd" in
start)
  command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; exit 3; }
  command -v docker-registry >/dev/null || { echo "docker-registry not installed (apt-get install docker-registry)" >&2; exit 3; }
  [ "$(id -u)" = 0 ] || { echo "a multi-node swarm needs root (network namespaces)" >&2; exit 3; }
  stop_all
  mkdir -p "$dir"
  set -e
  ip link add "$BR" type bridge
  ip addr add "$MANAGER/24" dev "$BR"
  ip link set "$BR" up
  for i in 0 1; do
    ns=${NODES[$i]}
    ip netns add "$ns"
    ip link add "vf18h$i" type veth peer name eth0 netns "$ns"
    ip link set "vf18h$i" master "$BR" up
    ip netns exec "$ns" sh -c "ip addr add ${ADDRS[$i]}/24 dev eth0; ip link set eth0 up; ip link set lo up; ip route add default via $MANAGER"
  done
  set +e
  cat >"$dir/registry.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
YML
  setsid docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/registry.pid"
  start_dockerd m || { stop_all; exit 3; }
  dk m swarm init --advertise-addr "$MANAGER" --listen-addr "$MANAGER:2377" >/dev/null || { stop_all; exit 1; }
  token=$(dk m swarm join-token -q worker)
  for i in 0 1; do
    start_dockerd "n$((i + 1))" "${NODES[$i]}" || { stop_all; exit 1; }
    dk "n$((i + 1))" swarm join --token "$token" --advertise-addr "${ADDRS[$i]}" "$MANAGER:2377" >/dev/null || { stop_all; exit 1; }
  done
  # Node failures are noticed within a few seconds (the default heartbeat is 5 s).
  dk m swarm update --dispatcher-heartbeat 2s >/dev/null
  wait_nodes_ready 3 30 || { stop_all; exit 1; }
  # Node ids in join order: the manager, then n1, n2 (each reports the same hostname).
  : >"$dir/nodes"
  for d in m n1 n2; do
    id=$(dk "$d" info --format '{{.Swarm.NodeID}}')
    dk m node update --label-add "vectorflow.zone=$d" "$id" >/dev/null || { stop_all; exit 1; }
    [ "$(dk m node inspect --format '{{index .Spec.Labels "vectorflow.zone"}}' "$id")" = "$d" ] \
      || { echo "node $d ($id) did not keep its label" >&2; stop_all; exit 1; }
    echo "$d $id" >>"$dir/nodes"
  done
  for _ in $(seq 1 50); do curl -sf --max-time 1 "http://$REGISTRY/v2/" >/dev/null && break; sleep 0.1; done
  curl -sf --max-time 1 "http://$REGISTRY/v2/" >/dev/null || { echo "registry did not start" >&2; tail -5 "$dir/registry.log" >&2; stop_all; exit 1; }
  echo "unix://$dir/m/docker.sock"
  ;;
stop) stop_all ;;
stop-node) stop_dockerd "${3:?node}" ;;
start-node)
  n=${3:?node}; i=$(( ${n#n} - 1 ))
  start_dockerd "$n" "${NODES[$i]}" || exit 1
  wait_nodes_ready 3 30 || exit 1 ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
