#!/usr/bin/env bash
# Runs shellcheck on every shell script of the repo: the files under bench/,
# scripts/, .ci/, deploy/ and tests/ whose first line is a sh/bash shebang
# (extension or not, e.g. deploy/local/webtier), plus sourced libraries that
# declare '# shellcheck shell=bash'. Every finding fails, style ones too;
# silence one only with a '# shellcheck disable=SCxxxx' and the reason beside
# it. .shellcheckrc (repo root) lets shellcheck follow `source` lines.
# Exit 0 clean, 1 findings, 77 (ctest SKIP) without shellcheck.
#   scripts/lint-shell.sh          # ctest runs it as lint.shellcheck
set -euo pipefail
cd "$(dirname "$0")/.."
command -v shellcheck >/dev/null || { echo "SKIP: shellcheck is not installed (scripts/install-deps.sh)"; exit 77; }

scripts=()
while IFS= read -r -d '' f; do
  first=$(head -n 1 "$f")
  if [[ $first =~ ^\#!(/usr)?/bin/(env\ +)?(ba|da)?sh([[:space:]]|$) ]] ||
     grep -q '^# shellcheck shell=' "$f"; then
    scripts+=("$f")
  fi
done < <(find bench scripts .ci deploy tests -type f -size -1000k -print0 | sort -z)
((${#scripts[@]})) || { echo "no shell scripts found" >&2; exit 1; }

shellcheck --severity=style "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean:"
printf '  %s\n' "${scripts[@]}"
