#!/usr/bin/env bash
# Builds each libFuzzer target in Fuzz/ with -sanitize=fuzzer,address and runs it for a bounded
# time (VF_FUZZ_SECONDS, default 30). Fails on the first crash. Fuzz/<name>/sources lists the
# VFNet files (relative to Sources/VFNet; ../VFText/Hex.swift for a shared helper, compiled into the
# same module: such imports are `#if canImport`) the target compiles with: pure codecs only; every
# target also gets Fuzz/FuzzSupport.swift.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${VF_FUZZ_SECONDS:-30}
mkdir -p Fuzz/bin
shopt -s nullglob
targets=(Fuzz/*/main.swift)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets"; exit 0; }
for main in "${targets[@]}"; do
  name=$(basename "$(dirname "$main")")
  srcs=$(cat "Fuzz/$name/sources" 2>/dev/null | sed 's|^|Sources/VFNet/|')
  echo "  - $name"
  # ld.gold warns about every ASan register-check thunk: keep the noise in a log, show it on failure.
  swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name "${name//-/_}" $srcs Fuzz/FuzzSupport.swift "$main" \
    -o "Fuzz/bin/$name" > "Fuzz/bin/$name.build.log" 2>&1 \
    || { grep -v 'Cannot export local symbol' "Fuzz/bin/$name.build.log" | tail -n 40; echo "fuzz target $name failed to build"; exit 1; }
  mkdir -p "Fuzz/bin/$name-corpus"
  "Fuzz/bin/$name" -max_total_time="$SECONDS_PER" -print_final_stats=0 "Fuzz/bin/$name-corpus" "Fuzz/$name/seeds" 2> "Fuzz/bin/$name.log" \
    || { tail -n 60 "Fuzz/bin/$name.log"; echo "fuzz target $name crashed"; exit 1; }
  grep -E '^#[0-9]+.*DONE' "Fuzz/bin/$name.log" | tail -n 1 || true
done
