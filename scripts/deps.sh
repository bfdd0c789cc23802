#!/usr/bin/env bash
# deps.sh - install what trilemma needs on Debian 12, and only what is missing.
#
#   scripts/deps.sh --run    what building and running the server needs: compilers and CMake,
#                            the libraries it links, PostgreSQL, curl (scripts/run.sh)
#   scripts/deps.sh --test   that, plus what the tests need: clang, Python's websockets/aiohttp,
#                            Chromium, Node.js + npm and the npm packages of tests/browser and
#                            tests/k8s, buildah + debootstrap (scripts/test.sh; the default)
#   -v, --verbose            show apt's and npm's output as it comes
#
# Checks every package with dpkg-query first; apt-get runs only when something is missing, so a
# second run is fast and quiet. apt's and npm's output goes to .run/apt*.log and .run/npm.log and
# is printed when a step fails, with a line saying what to check. Never downloads a browser: the
# tests drive Debian's /usr/bin/chromium. Runs as root, or through sudo when it is available.
set -euo pipefail
# no questions, and no "debconf: delaying package configuration" warnings on a minimal system
export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LOG_DIR="$ROOT/.run"

RUN_PACKAGES=(
    # build (python3: CMake looks for it while configuring the tests)
    build-essential cmake pkg-config python3
    # libraries the server and its tools link
    liburing-dev libcurl4-openssl-dev libsimdjson-dev libmimalloc-dev libpq-dev
    libjwt-dev libinih-dev libssl-dev zlib1g-dev libutf8proc-dev
    libwebsockets-dev libuv1-dev libwebsockets-evlib-uv
    # services the server talks to; run.sh's readiness check
    postgresql curl ca-certificates
)
TEST_PACKAGES=(
    # sanitizer and fuzz builds, formatting, script lint (tests/scripts)
    clang clang-format libclang-rt-14-dev shellcheck
    # test clients
    python3-websockets python3-aiohttp chromium
    # the offline container image and its test (tests/k8s)
    buildah debootstrap libseccomp2
)

mode="test"
for arg in "$@"; do
    case "$arg" in
    --run) mode="run" ;;
    --test) mode="test" ;;
    -v | --verbose) export TRILEMMA_VERBOSE=1 ;;
    -h | --help)
        sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "deps.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

log() { printf 'deps: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo -E env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes "$@"
    fi
}

# missing_packages NAME...: the ones dpkg does not have installed (one dpkg-query for all; a
# package dpkg has never heard of prints nothing).
missing_packages() {
    local name status p
    declare -A ok=()
    while read -r name status; do
        [ "$status" = "install ok installed" ] && ok["$name"]=1
    done < <(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true)
    for p in "$@"; do
        [ -n "${ok[$p]:-}" ] || printf '%s\n' "$p"
    done
}

# apt_install WHAT MINUTES PACKAGE...: install the packages, saying what and roughly how long.
apt_install() {
    local what="$1" minutes="$2" start=$SECONDS
    shift 2
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            log "need root (or sudo) to install: $*"
            exit 1
        fi
        sudo -v # ask for the password now, not under the progress line
    fi
    log "installing $# Debian package(s) for $what - about $minutes minutes on a fresh machine:"
    log "  $*"
    quiet_run "$LOG_DIR/apt-update.log" "deps: apt-get update" as_root apt-get update -qq || {
        log "apt-get update failed: can this machine reach the Debian mirror in /etc/apt/sources.list(.d)? Behind a proxy, set http_proxy/https_proxy; a TLS-inspecting proxy needs its CA certificate in /usr/local/share/ca-certificates (then update-ca-certificates)."
        exit 1
    }
    quiet_run "$LOG_DIR/apt.log" "deps: apt-get install ($# packages)" \
        as_root apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" || {
        log "apt-get install failed (output above): is this Debian 12 (bookworm) with the main component enabled, is the mirror reachable, and - behind a TLS-inspecting proxy - is its CA certificate installed?"
        exit 1
    }
    log "installed $# package(s) in $(elapsed $((SECONDS - start)))"
}

# npm_ci DIR MARKER: npm ci in DIR when node_modules/MARKER is missing or the lock file is newer.
npm_ci() {
    local dir="$1" marker="$2" stamp="$1/node_modules/.package-lock.json"
    [ -f "$dir/package-lock.json" ] || return 0
    if [ -d "$dir/node_modules/$marker" ] && [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
        return 0
    fi
    log "npm ci in ${dir#"$ROOT"/} (a few MB, usually under a minute)"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 quiet_run "$LOG_DIR/npm.log" "deps: npm ci" \
        npm ci --no-audit --no-fund --loglevel=error) || {
        log "npm ci failed in ${dir#"$ROOT"/} (output above): is the npm registry ($(npm config get registry 2>/dev/null || echo '?')) reachable? Behind a proxy, set HTTPS_PROXY; a TLS-inspecting proxy needs NODE_EXTRA_CA_CERTS=/path/to/its-ca.pem."
        exit 1
    }
}

mkdir -p "$LOG_DIR"
mapfile -t missing < <(missing_packages "${RUN_PACKAGES[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "building and running (compilers, libraries, PostgreSQL)" "2-4" "${missing[@]}"
fi
[ "$mode" = run ] && exit 0

mapfile -t missing < <(missing_packages "${TEST_PACKAGES[@]}")
# Any Node.js >= 18 with npm will do: Debian's nodejs + npm, or a NodeSource nodejs that bundles
# npm (installing Debian's npm next to that one would conflict).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "the tests (clang, Chromium, Node.js, buildah, ...)" "3-6" "${missing[@]}"
fi

# Browser test dependencies: playwright-core only (it downloads nothing by itself).
npm_ci "$ROOT/tests/browser" playwright-core
# Kubernetes manifest validation: kubernetes-models (pinned by tests/k8s/package-lock.json).
npm_ci "$ROOT/tests/k8s" kubernetes-models
