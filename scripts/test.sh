#!/usr/bin/env bash
# The README's test command: installs what is missing (Debian 12), builds in
# build/ (Release) and runs every GoogleTest suite with ctest. The suites start
# their own ZooKeeper, Redis and program instances on free loopback ports.
#   scripts/test.sh                # everything
#   scripts/test.sh -L unit        # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
# The fault scenarios append one row each to this report; start it afresh.
report=build/tests/faults/fault-report.md
rm -f "$report"
rc=0
# Integration tests start JVMs; the fault scenarios are RUN_SERIAL. Two at a
# time is the most 2 cores take calmly.
ctest --test-dir build --output-on-failure -j2 --timeout 300 "$@" || rc=$?
if [[ -s $report ]]; then
  echo; echo "Fault-injection report ($report):"; cat "$report"
fi
exit $rc
