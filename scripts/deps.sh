#!/usr/bin/env bash
# deps.sh - install what trilemma needs on Debian 12, and only what is missing.
#
# Checks every package with dpkg-query first; `apt-get update` + `apt-get install` run only when
# something is missing, so a second run is fast and quiet. Then installs the browser test's npm
# packages (playwright-core, pinned by tests/browser/package-lock.json) when node_modules is
# missing or stale. Never downloads a browser: the tests drive Debian's /usr/bin/chromium.
# Safe to run any number of times. Runs as root, or through sudo when it is available.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
    # build
    build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
    # libraries the server links
    liburing-dev libcurl4-openssl-dev libsimdjson-dev libmimalloc-dev libpq-dev
    libjwt-dev libinih-dev libssl-dev zlib1g-dev
    # load generator (independent WebSocket client implementation)
    libwebsockets-dev libuv1-dev libwebsockets-evlib-uv
    # services the server talks to
    postgresql
    # test clients
    python3 python3-websockets python3-aiohttp chromium
    curl ca-certificates
    # the offline container image and its test (tests/k8s)
    buildah debootstrap libseccomp2
)

log() { printf 'deps: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -E "$@"
    else
        log "need root (or sudo) to run: $*"
        exit 1
    fi
}

# One dpkg-query for all of them; a package dpkg has never heard of prints nothing.
declare -A ok=()
while read -r name status; do
    [ "$status" = "install ok installed" ] && ok["$name"]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
missing=()
for p in "${PACKAGES[@]}"; do
    [ -n "${ok[$p]:-}" ] || missing+=("$p")
done
# Any Node.js >= 18 with npm will do: Debian's nodejs + npm, or a NodeSource nodejs that bundles
# npm (installing Debian's npm next to that one would conflict).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" \
        >/dev/null
    log "installed ${#missing[@]} package(s)"
fi

# Browser test dependencies: playwright-core only (it downloads nothing by itself).
BROWSER_DIR="$ROOT/tests/browser"
if [ -f "$BROWSER_DIR/package-lock.json" ]; then
    stamp="$BROWSER_DIR/node_modules/.package-lock.json"
    if [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ] || [ ! -f "$stamp" ] ||
        [ "$BROWSER_DIR/package-lock.json" -nt "$stamp" ]; then
        log "npm ci in tests/browser"
        (cd "$BROWSER_DIR" &&
            PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi

# Kubernetes manifest validation: kubernetes-models (pinned by tests/k8s/package-lock.json).
K8S_DIR="$ROOT/tests/k8s"
if [ -f "$K8S_DIR/package-lock.json" ]; then
    stamp="$K8S_DIR/node_modules/.package-lock.json"
    if [ ! -d "$K8S_DIR/node_modules/kubernetes-models" ] || [ ! -f "$stamp" ] ||
        [ "$K8S_DIR/package-lock.json" -nt "$stamp" ]; then
        log "npm ci in tests/k8s"
        (cd "$K8S_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
