#!/usr/bin/env bash
# Benchmark: membership at scale. Starts a real ZooKeeper (as the test
# harness does), writes N members at once (pipelined creates) and prints, per
# N, the time from the last write until the balancer's pool holds all N.
#
#   bench/membership/run.sh [build-dir] [N ...]     (default: build, 1000 10000)
#   BENCH_VERBOSE=1 bench/membership/run.sh         # also each registry batch
#
# Needs the bench_membership program (built with the tests) and ZooKeeper
# installed (scripts/install-deps.sh). Numbers on a shared machine are noisy.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
shift || true
PROGRAM=$BUILD/bin/bench_membership
if [[ ! -x $PROGRAM ]]; then
  echo "no $PROGRAM: cmake --build $BUILD --target bench_membership" >&2
  exit 1
fi
if [[ $# -eq 0 ]]; then set -- 1000 10000; fi
exec "$PROGRAM" "$@"
