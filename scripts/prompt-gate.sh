#!/usr/bin/env bash
# prompt-gate.sh - a prompt change is a deployment: run the golden set on the prompts of a git
# revision (the old version) and on a folder of prompts (the new one, default config/prompts of
# the work tree), compare, and refuse the change when the regression gate fails (exit 1).
#
#   scripts/prompt-gate.sh [REV [NEW_PROMPTS_DIR]] [trilemma-eval gate options...]
#       REV                 the old version (default HEAD: the committed prompts)
#       NEW_PROMPTS_DIR     the new version (default config/prompts)
#       options             e.g. --subset 60, --set FILE, --gate evals/gate.ini, --out DIR
#
# Needs the build (build/trilemma-eval, trilemmad, trilemma-sim; TRILEMMA_BUILD overrides) and
# PostgreSQL's binaries (the stack the eval starts). Exit: 0 the change passes, 1 it is refused,
# 2 bad input. See docs/evals.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${TRILEMMA_BUILD:-$ROOT/build}"
rev=HEAD
new="$ROOT/config/prompts"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then rev="$1"; shift; fi
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then new="$1"; shift; fi

if ! git -C "$ROOT" rev-parse --verify --quiet "$rev^{commit}" >/dev/null; then
    echo "prompt-gate: $rev is not a revision of $ROOT" >&2
    exit 2
fi
[ -d "$new" ] || { echo "prompt-gate: $new is not a folder" >&2; exit 2; }
old="$(mktemp -d)"
trap 'rm -rf "$old"' EXIT
for f in $(git -C "$ROOT" ls-tree --name-only "$rev" config/prompts/); do
    git -C "$ROOT" show "$rev:$f" >"$old/$(basename "$f")"
done
echo "prompt-gate: old = config/prompts at $(git -C "$ROOT" rev-parse --short "$rev"), new = $new" >&2
exec "$BUILD/trilemma-eval" gate --old-prompts "$old" --new-prompts "$new" "$@"
