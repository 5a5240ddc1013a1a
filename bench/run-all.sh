#!/usr/bin/env bash
# `make bench`: every benchmark under bench/, one after the other, each in a quick, bounded shape by
# default (a few minutes in all on two cores), each bench's full output kept in a file.
#   bench/run-all.sh                 quick shape: short wrk runs, few frames, one round, a few faults
#   bench/run-all.sh --full          each bench's own default shape (much longer)
#   bench/run-all.sh http worker     only these benches (names: the folders of bench/)
# Needs what scripts/install-deps.sh --test installs (wrk, nginx, PostgreSQL, Redis, python3-opencv,
# GStreamer's RTSP server, python3-venv) and the sample videos (fetched by scripts/fetch-samples.sh).
# Prints a table of the benches (ok / FAILED, seconds, where the output is) and exits 1 if one
# failed; a failing bench does not stop the others. Results: test-output/bench/ (VF_BENCH_OUT).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${VF_BENCH_OUT:-$ROOT/test-output/bench}
ALL=(ab http api fanout worker flow-quality faults)
FULL=0
ONLY=()
for arg in "$@"; do
  case "$arg" in
    --full) FULL=1 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench/run-all.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    *)
      [ -f "bench/$arg/run.sh" ] || {
        echo "bench/run-all.sh: no bench named $arg (known: ${ALL[*]})" >&2; exit 2; }
      ONLY+=("$arg") ;;
  esac
done
[ ${#ONLY[@]} -gt 0 ] || ONLY=("${ALL[@]}")
mkdir -p "$OUT"

# One release build for every bench (each run.sh builds what it needs; after this it is a no-op).
# bench/http defaults to its own scratch folder: in the quick shape it shares .build instead.
echo "==> building release binaries (swift build -c release)"
if ! swift build -c release >"$OUT/build.log" 2>&1; then
  tail -n 30 "$OUT/build.log" >&2
  echo "release build failed: $OUT/build.log" >&2
  exit 1
fi
SAMPLES=${VF_SAMPLES_DIR:-$(bash scripts/fetch-samples.sh | tail -n 1)}
export VF_SAMPLES_DIR=$SAMPLES

# The command line and environment of each bench: quick shape, or the bench's own defaults.
bench_command() {  # name → sets CMD (array) and ENVS (array of NAME=value)
  CMD=(bash "bench/$1/run.sh")
  ENVS=()
  [ "$FULL" = 1 ] && return 0
  case "$1" in
    ab) ENVS=(ROUNDS=1 DURATION=2s FRAMES=100) ;;                              # OLD_BIN from the caller
    http) CMD+=(32 3 2); ENVS=(VF_BENCH_SCRATCH=.build) ;;                     # 32 connections, 3 s runs
    api) ENVS=(DURATION=3s CONNECTIONS=16) ;;
    fanout) ENVS=(VF_BENCH_SECONDS=1) ;;
    worker) ENVS=(BENCH_FRAMES=120 ROUNDS=1 "BENCH_SOURCES=vtest.avi vtest.mp4") ;;
    flow-quality) ENVS=(REAL_FRAMES=60 "VF_FLOW_QUALITY_OUT=$OUT/flow-quality") ;;
    faults) CMD+=(--only worker-kill redis-kill); ENVS=("VF_FAULTS_OUT=$OUT/faults.md") ;;
  esac
}

# Where a bench keeps results of its own, besides its output.
extra_results() {
  case "$1" in
    api) echo "bench/api/results/latest.txt" ;;
    flow-quality) [ "$FULL" = 1 ] && echo ".build/flow-quality" || echo "$OUT/flow-quality" ;;
    faults) [ "$FULL" = 1 ] && echo "test-output/faults.md" || echo "$OUT/faults.md" ;;
  esac
}

declare -A STATUS SECONDS_TAKEN
failed=0
for name in "${ONLY[@]}"; do
  bench_command "$name"
  log="$OUT/$name.txt"
  echo "==> $name: ${ENVS[*]:+${ENVS[*]} }${CMD[*]}  (output: $log)"
  start=$(date +%s)
  # Each bench stops what it started (trap), also when it fails.
  env "${ENVS[@]}" "${CMD[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  SECONDS_TAKEN[$name]=$(($(date +%s) - start))
  if [ "$rc" = 0 ]; then STATUS[$name]=ok; else STATUS[$name]="FAILED ($rc)"; failed=1; fi
done

echo
echo "==> results ($([ "$FULL" = 1 ] && echo "full" || echo "quick") shape; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-14s %-12s %6s  %s\n' bench status seconds "output"
for name in "${ONLY[@]}"; do
  extra=$(extra_results "$name")
  printf '%-14s %-12s %6s  %s\n' "$name" "${STATUS[$name]}" "${SECONDS_TAKEN[$name]}" \
    "${OUT#"$ROOT"/}/$name.txt${extra:+, ${extra#"$ROOT"/}}"
done
exit "$failed"
