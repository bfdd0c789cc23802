#!/usr/bin/env bash
# rootfs.sh - the Debian 12 root file system of the offline-built images, cached.
#
#   scripts/image/rootfs.sh [--loadtest]     prints the path of the root file system
#
# debootstrap --variant=minbase bookworm with the packages of scripts/image/runtime-packages.txt
# (and loadtest-packages.txt with --loadtest), slimmed like debian:12-slim (no docs, man pages,
# locales, apt lists). The result is read-only input: callers copy it (assemble.sh).
#
# Cache: $TRILEMMA_ROOTFS_CACHE (default /var/cache/trilemma) holds rootfs-<key>, where <key> is
# a hash of the package lists, the suite, the mirror and this script, so a changed list builds a
# new tree and an unchanged one is reused at once (CI machines that are reused skip debootstrap).
# A tree is complete only once its .complete stamp exists (an interrupted build is redone);
# concurrent callers wait on a lock. Old trees are not removed automatically:
#   rm -rf /var/cache/trilemma/rootfs-*      # frees ~230 MB per tree
# Environment: TRILEMMA_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# TRILEMMA_ROOTFS_CACHE. Needs root and debootstrap (apt-get install debootstrap).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE=bookworm
MIRROR="${TRILEMMA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${TRILEMMA_ROOTFS_CACHE:-/var/cache/trilemma}"
variant=server
lists=("$HERE/runtime-packages.txt")

for arg in "$@"; do
    case "$arg" in
    --loadtest)
        variant=loadtest
        lists+=("$HERE/loadtest-packages.txt")
        ;;
    -h | --help)
        sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "rootfs.sh: unknown argument '$arg'" >&2
        exit 2
        ;;
    esac
done

log() { printf 'rootfs: %s\n' "$*" >&2; }

[ "$(id -u)" -eq 0 ] || {
    log "needs root (debootstrap, chroot)"
    exit 1
}
command -v debootstrap >/dev/null || {
    log "debootstrap is missing: apt-get install debootstrap"
    exit 1
}

packages="$(sed 's/#.*//' "${lists[@]}" | tr -s ' \t\n' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
key="$({
    printf '%s\n%s\n%s\n' "$SUITE" "$MIRROR" "$packages"
    cat "${BASH_SOURCE[0]}"
} | sha256sum | cut -c1-16)"
dir="$CACHE/rootfs-$variant-$key"

mkdir -p "$CACHE"
exec 9>"$dir.lock"
flock 9

if [ -f "$dir/.complete" ]; then
    log "cached: $dir"
    echo "$dir"
    exit 0
fi

tmp="$dir.partial"
rm -rf "$tmp" "$dir"
log "debootstrap $SUITE ($variant: $packages) from $MIRROR into $tmp"
start=$SECONDS
if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$tmp" "$MIRROR" \
    >"$CACHE/rootfs-$variant-$key.log" 2>&1; then
    tail -n 30 "$CACHE/rootfs-$variant-$key.log" >&2
    log "debootstrap failed (log: $CACHE/rootfs-$variant-$key.log)"
    exit 1
fi

# as debian:12-slim: no documentation, manual pages, locales or package lists; dpkg keeps it so
cat >"$tmp/etc/dpkg/dpkg.cfg.d/trilemma-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
find "$tmp/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$tmp/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/var/cache/apt/*.bin \
    "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/var/log/*.log \
    "$tmp"/var/cache/debconf/*-old "$tmp"/var/lib/dpkg/*-old
find "$tmp/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# the machine that built it is not the container's: no hostname, empty resolv.conf (the
# runtime mounts its own), a machine-id left empty as in the official images
: >"$tmp/etc/hostname"
: >"$tmp/etc/resolv.conf"
: >"$tmp/etc/machine-id"
printf '%s %s %s\n' "$SUITE" "$MIRROR" "$packages" >"$tmp/.trilemma-rootfs"
touch "$tmp/.complete"
mv "$tmp" "$dir"
log "built $dir in $((SECONDS - start)) s ($(du -sh "$dir" | cut -f1))"
echo "$dir"
