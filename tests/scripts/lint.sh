#!/usr/bin/env bash
# lint.sh SOURCE: the Quick start scripts parse (bash -n) and pass shellcheck (installed by
# scripts/deps.sh --test; without it only bash -n runs, and it says so).
set -euo pipefail
src="$1"
files=("$src"/scripts/*.sh "$src"/.ci/run "$src"/tests/scripts/*.sh "$src"/tests/store/pg_cluster.sh)
status=0
for f in "${files[@]}"; do
    bash -n "$f" || status=1
done
if command -v shellcheck >/dev/null 2>&1; then
    (cd "$src" && shellcheck -x -P . "${files[@]}") || status=1
    echo "scripts_lint: bash -n and shellcheck on ${#files[@]} scripts"
else
    echo "scripts_lint: bash -n on ${#files[@]} scripts (no shellcheck: scripts/deps.sh --test installs it)"
fi
exit "$status"
