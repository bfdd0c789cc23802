#!/usr/bin/env bash
# assemble.sh - lay out an image's file system: a copy of a cached root file system (rootfs.sh)
# plus the programs and data, exactly where the Containerfile puts them.
#
#   scripts/image/assemble.sh server   ROOTFS BUILD_DIR DEST
#   scripts/image/assemble.sh loadtest ROOTFS BUILD_DIR DEST
#
# server:   /usr/local/bin/trilemmad, /opt/trilemma/{store/migrations,config/{prices.csv,tools.json,
#           agents.ini,prompts},web},
#           /var/lib/trilemma/journal (owned by 10001)
# loadtest: /usr/local/bin/trilemma-load, /usr/local/bin/trilemma-sim,
#           /opt/trilemma/loadtest/corpus
# both:     the user and group trilemma (10001), as the Containerfile's useradd makes them.
# Binaries are copied with their debug information stripped. DEST must not exist.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "$#" -ne 4 ] || { [ "$1" != server ] && [ "$1" != loadtest ]; }; then
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
variant="$1" rootfs="$2" build="$3" dest="$4"

[ -f "$rootfs/.complete" ] || {
    echo "assemble: $rootfs is not a complete root file system (scripts/image/rootfs.sh)" >&2
    exit 1
}
[ ! -e "$dest" ] || {
    echo "assemble: $dest exists" >&2
    exit 1
}

bins=()
if [ "$variant" = server ]; then bins=(trilemmad); else bins=(trilemma-load trilemma-sim); fi
for b in "${bins[@]}"; do
    [ -x "$build/$b" ] || {
        echo "assemble: $build/$b is missing (cmake --build $build)" >&2
        exit 1
    }
    # a sanitizer build would need its runtime (libasan, libubsan) in the image
    if ldd "$build/$b" | grep -Eq 'lib(asan|ubsan|tsan)'; then
        echo "assemble: $build/$b is a sanitizer build; use a plain build (build/)" >&2
        exit 1
    fi
done

mkdir -p "$(dirname "$dest")"
cp -a "$rootfs" "$dest"
rm -f "$dest/.complete" "$dest/.trilemma-rootfs"

for b in "${bins[@]}"; do
    install -D -m 0755 "$build/$b" "$dest/usr/local/bin/$b"
    strip --strip-debug "$dest/usr/local/bin/$b"
done

if [ "$variant" = server ]; then
    install -d -m 0755 "$dest/opt/trilemma/store" "$dest/opt/trilemma/config"
    cp -r "$ROOT/store/migrations" "$dest/opt/trilemma/store/migrations"
    install -m 0644 "$ROOT/config/prices.csv" "$dest/opt/trilemma/config/prices.csv"
    install -m 0644 "$ROOT/config/tools.json" "$dest/opt/trilemma/config/tools.json"
    install -m 0644 "$ROOT/config/agents.ini" "$dest/opt/trilemma/config/agents.ini"
    cp -r "$ROOT/config/prompts" "$dest/opt/trilemma/config/prompts"
    cp -r "$ROOT/web" "$dest/opt/trilemma/web"
    install -d -m 0755 "$dest/var/lib/trilemma"
    install -d -m 0700 -o 10001 -g 10001 "$dest/var/lib/trilemma/journal"
else
    install -d -m 0755 "$dest/opt/trilemma/loadtest"
    cp -r "$ROOT/loadtest/corpus" "$dest/opt/trilemma/loadtest/corpus"
fi
chmod -R u=rwX,go=rX "$dest/opt/trilemma"

# the user, as useradd --uid 10001 --no-create-home --home-dir /nonexistent would add it
grep -q '^trilemma:' "$dest/etc/group" || echo 'trilemma:x:10001:' >>"$dest/etc/group"
grep -q '^trilemma:' "$dest/etc/gshadow" 2>/dev/null || echo 'trilemma:!::' >>"$dest/etc/gshadow"
grep -q '^trilemma:' "$dest/etc/passwd" ||
    echo 'trilemma:x:10001:10001::/nonexistent:/usr/sbin/nologin' >>"$dest/etc/passwd"
grep -q '^trilemma:' "$dest/etc/shadow" 2>/dev/null || echo 'trilemma:!:20000:0:99999:7:::' >>"$dest/etc/shadow"
