#!/usr/bin/env bash
# build.sh - configure and build trilemma.
#
#   scripts/build.sh          build/       (RelWithDebInfo): build/trilemmad, tests, tools
#   scripts/build.sh --asan   also build-asan/ (RelWithDebInfo, -DTRILEMMA_SANITIZE=ON: ASan+UBSan)
#   scripts/build.sh --run    only what scripts/run.sh starts (build/trilemmad, build/trilemma-sim)
#   -v, --verbose             show CMake's and the compiler's output as it comes
#
# Quiet by default: one progress line on a terminal, the full output (also in BUILD_DIR/build.log)
# when a step fails. Extra CMake arguments can be passed in TRILEMMA_CMAKE_ARGS. Safe to run
# repeatedly: CMake only rebuilds what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
JOBS="${TRILEMMA_BUILD_JOBS:-$(nproc)}"
asan=0
targets=()

for arg in "$@"; do
    case "$arg" in
    --asan) asan=1 ;;
    --run) targets=(--target trilemmad trilemma-sim) ;;
    -v | --verbose) export TRILEMMA_VERBOSE=1 ;;
    -h | --help)
        sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "build.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

# configure_and_build DIR ARGS...: the first configure picks the generator; later runs reuse it.
configure_and_build() {
    local dir="$1" start=$SECONDS
    shift
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        echo "build: first build of ${dir#"$ROOT"/}/ - a few minutes (about 1 on 8 cores, 3-5 on 2)" >&2
    fi
    mkdir -p "$dir"
    # shellcheck disable=SC2086 # TRILEMMA_CMAKE_ARGS is a list of words on purpose
    quiet_run "$dir/configure.log" "build: configuring ${dir#"$ROOT"/}/" \
        cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" ${TRILEMMA_CMAKE_ARGS:-}
    quiet_run "$dir/build.log" "build: compiling ${dir#"$ROOT"/}/" \
        cmake --build "$dir" -j "$JOBS" "${targets[@]}"
    echo "build: ${dir#"$ROOT"/}/ ready ($(elapsed $((SECONDS - start))); log: $dir/build.log)" >&2
}

configure_and_build "$ROOT/build" -DTRILEMMA_SANITIZE=OFF
if [ "$asan" -eq 1 ]; then
    configure_and_build "$ROOT/build-asan" -DTRILEMMA_SANITIZE=ON
fi
