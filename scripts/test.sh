#!/usr/bin/env bash
# test.sh - Quick start, command 2: run the whole test suite.
#
# Installs whatever is missing (scripts/deps.sh), builds build/ and build-asan/ (AddressSanitizer +
# UndefinedBehaviorSanitizer), then runs ctest: the quick unit and fuzz-replay labels in build/,
# then every label (unit, integration, browser, fuzz-replay) in build-asan/ - the gate: the whole
# suite must pass under the sanitizers. Prints ctest's summary; exits non-zero on any failure.
#
# After each ctest run it lists the tests that were skipped, each with the reason it printed
# (opt-in tests such as k8s_image say how to turn them on).
#
# Arguments go to the build-asan/ ctest run, and then only it runs (e.g. `-R ws_rfc6455`, `-L
# integration`, `-V`).
# Environment: TRILEMMA_TEST_JOBS (ctest -j, default: number of CPUs), CI=true in CI (the browser
# test then must run rather than skip), TRILEMMA_VERBOSE=1 (apt's, npm's and the compiler's output
# as it comes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${TRILEMMA_TEST_JOBS:-$(nproc)}"
[ "$JOBS" -ge 2 ] || JOBS=2

"$ROOT/scripts/deps.sh" --test
"$ROOT/scripts/build.sh" --asan

# halt on the first report; leaks are reported at exit (LeakSanitizer works as root here, and the
# integration harness checks that the server exits 0, so a leak fails the test that stopped it).
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:detect_stack_use_after_return=1:print_summary=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:report_error_type=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-print_suppressions=0}"

ctest_common=(--output-on-failure -j "$JOBS" --timeout 900)

# skipped DIR: the tests of DIR's last ctest run that were skipped (exit 77), with the last lines
# of what each printed - its reason - read from the JUnit report ctest wrote.
skipped() {
    /usr/bin/python3 - "$1/Testing/Temporary/junit.xml" "${1#"$ROOT"/}" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
except (OSError, ET.ParseError):
    sys.exit(0)
lines = []
for c in cases:
    if c.find("skipped") is None:
        continue
    out = [l.strip() for l in (c.findtext("system-out") or "").splitlines() if l.strip()]
    lines.append("   %s: %s" % (c.get("name"), " / ".join(out[-2:]) or "(it printed no reason)"))
if lines:
    print("== skipped in %s/ (opt-in tests: README, Tests):" % sys.argv[2])
    print("\n".join(lines))
PY
}

# run_ctest DIR ARGS...: ctest in DIR, then the skipped tests and their reasons.
run_ctest() {
    local dir="$1" rc=0
    shift
    rm -f "$dir/Testing/Temporary/junit.xml" # an interrupted run must not show an older list
    ctest --test-dir "$dir" "${ctest_common[@]}" --output-junit "$dir/Testing/Temporary/junit.xml" \
        "$@" || rc=$?
    skipped "$dir" >&2
    return "$rc"
}

status=0
if [ "$#" -eq 0 ]; then
    echo "== ctest: build/ (unit, fuzz-replay, image)" >&2
    run_ctest "$ROOT/build" --no-tests=ignore -L 'unit|fuzz-replay|image' || status=1
fi

echo "== ctest: build-asan/ (all labels, ASan+UBSan)" >&2
run_ctest "$ROOT/build-asan" --no-tests=error "$@" || status=1

if [ "$status" -ne 0 ]; then
    echo "test.sh: FAILED (see the ctest output above)" >&2
fi
exit "$status"
