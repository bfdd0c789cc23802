#!/usr/bin/env bash
# test.sh - Quick start, command 2: run the whole test suite.
#
# Installs whatever is missing (scripts/deps.sh), builds build/ and build-asan/ (AddressSanitizer +
# UndefinedBehaviorSanitizer), then runs ctest: the quick unit and fuzz-replay labels in build/,
# then every label (unit, integration, browser, fuzz-replay) in build-asan/ - the gate: the whole
# suite must pass under the sanitizers. Prints ctest's summary; exits non-zero on any failure.
#
# Arguments go to the build-asan/ ctest run, and then only it runs (e.g. `-R ws_rfc6455`, `-L
# integration`, `-V`).
# Environment: TRILEMMA_TEST_JOBS (ctest -j, default: number of CPUs), CI=true in CI (the browser
# test then must run rather than skip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${TRILEMMA_TEST_JOBS:-$(nproc)}"
[ "$JOBS" -ge 2 ] || JOBS=2

"$ROOT/scripts/deps.sh"
"$ROOT/scripts/build.sh" --asan

# halt on the first report; leaks are reported at exit (LeakSanitizer works as root here, and the
# integration harness checks that the server exits 0, so a leak fails the test that stopped it).
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1:print_summary=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:report_error_type=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-print_suppressions=0}"

ctest_common=(--output-on-failure -j "$JOBS" --timeout 900)

status=0
if [ "$#" -eq 0 ]; then
    echo "== ctest: build/ (unit, fuzz-replay, image)" >&2
    ctest --test-dir "$ROOT/build" "${ctest_common[@]}" --no-tests=ignore -L 'unit|fuzz-replay|image' || status=1
fi

echo "== ctest: build-asan/ (all labels, ASan+UBSan)" >&2
ctest --test-dir "$ROOT/build-asan" "${ctest_common[@]}" --no-tests=error "$@" || status=1

if [ "$status" -ne 0 ]; then
    echo "test.sh: FAILED (see the ctest output above)" >&2
fi
exit "$status"
