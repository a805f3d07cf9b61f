#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a while.
#   fuzz/run.sh [seconds-per-target]     (default 30)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_PER_TARGET=${1:-30}
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DWEBTIER_BUILD_FUZZ=ON -DWEBTIER_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --target fuzz_http_request fuzz_http_response fuzz_member_decode fuzz_h2_frames fuzz_cache_parsers fuzz_origin_response -j"${JOBS:-2}"
status=0
for t in http_request http_response member_decode h2_frames cache_parsers origin_response; do
  corpus=$(mktemp -d)
  cp "$ROOT/fuzz/corpus/$t/"* "$corpus/"
  echo "== fuzz_$t for ${SECONDS_PER_TARGET}s"
  log="$corpus.log"
  rc=0
  "$BUILD/bin/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -max_len=8192 -print_final_stats=1 \
    "$corpus" >"$log" 2>&1 || rc=$?
  grep -E "DONE|stat::number_of_executed_units" "$log" || true
  if [[ $rc -ne 0 ]]; then
    echo "fuzz_$t FAILED (exit $rc):"
    tail -40 "$log"
    status=1
  fi
  rm -f "$log"
  rm -rf "$corpus"
done
exit $status
