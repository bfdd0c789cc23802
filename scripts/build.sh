#!/usr/bin/env bash
# build.sh - configure and build trilemma.
#
#   scripts/build.sh          build/       (RelWithDebInfo): build/trilemmad
#   scripts/build.sh --asan   also build-asan/ (RelWithDebInfo, -DTRILEMMA_SANITIZE=ON: ASan+UBSan)
#
# Extra CMake arguments can be passed in TRILEMMA_CMAKE_ARGS. Safe to run repeatedly: CMake only
# rebuilds what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${TRILEMMA_BUILD_JOBS:-$(nproc)}"
asan=0

for arg in "$@"; do
    case "$arg" in
    --asan) asan=1 ;;
    -h | --help)
        sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
    local dir="$1"
    shift
    # shellcheck disable=SC2086 # TRILEMMA_CMAKE_ARGS is a list of words on purpose
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" ${TRILEMMA_CMAKE_ARGS:-} \
        >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

echo "build: $ROOT/build" >&2
configure_and_build "$ROOT/build" -DTRILEMMA_SANITIZE=OFF
if [ "$asan" -eq 1 ]; then
    echo "build: $ROOT/build-asan (AddressSanitizer + UndefinedBehaviorSanitizer)" >&2
    configure_and_build "$ROOT/build-asan" -DTRILEMMA_SANITIZE=ON
fi
