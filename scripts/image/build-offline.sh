#!/usr/bin/env bash
# build-offline.sh - build the trilemma image without a registry: buildah on a debootstrap root
# file system, with the same packages, layout, user, entrypoint and port as the Containerfile.
#
#   scripts/image/build-offline.sh [options]
#     --build-dir DIR   binaries to package (default: build/; configured and built there when
#                       the binaries are missing). Must not be a sanitizer build.
#     --loadtest        build the load-test image (trilemma-load, trilemma-sim) instead
#     --name NAME       image name (default localhost/trilemma, or localhost/trilemma-loadtest)
#     --tag TAG         image tag (default 0.1.0, the version k8s/ pins)
#     --archive FILE    also write the image as an OCI archive (for `kind load image-archive`,
#                       `skopeo copy oci-archive:FILE docker://REGISTRY/...`)
#     --keep-tree DIR   keep the assembled file system at DIR (the image's content) for a look or
#                       a chroot run (tests/k8s/test_image.py uses this)
#
# Steps: scripts/image/rootfs.sh (debootstrap bookworm minbase + runtime packages, cached under
# /var/cache/trilemma), scripts/image/assemble.sh (binaries, migrations, prices, web, user
# 10001), then `buildah from scratch` / `buildah copy` / `buildah config` / `buildah commit`.
# No RUN step, so no runtime (runc/crun) and no network namespace is needed; buildah runs as
# root without a daemon. Storage driver: vfs (works everywhere, also inside containers);
# BUILDAH_STORAGE_DRIVER=overlay where the kernel and file system allow it.
# Prints the image name:tag and its ID. Needs root, buildah and debootstrap
# (apt-get install buildah debootstrap).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/image"
build_dir="$ROOT/build"
variant=server
name=""
tag="0.1.0"
archive=""
keep=""

while [ "$#" -gt 0 ]; do
    case "$1" in
    --build-dir) build_dir="$(cd "$2" && pwd)"; shift 2 ;;
    --loadtest) variant=loadtest; shift ;;
    --name) name="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --archive) archive="$2"; shift 2 ;;
    --keep-tree) keep="$2"; shift 2 ;;
    -h | --help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-offline.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[ -n "$name" ] || { [ "$variant" = server ] && name=localhost/trilemma || name=localhost/trilemma-loadtest; }
image="$name:$tag"

log() { printf 'build-offline: %s\n' "$*" >&2; }
for tool in buildah debootstrap; do
    command -v "$tool" >/dev/null || {
        log "$tool is missing: apt-get install buildah debootstrap"
        exit 1
    }
done
export STORAGE_DRIVER="${BUILDAH_STORAGE_DRIVER:-vfs}"
bh() { buildah --storage-driver "$STORAGE_DRIVER" "$@"; }

# 1. binaries
bins=(trilemmad)
[ "$variant" = loadtest ] && bins=(trilemma-load trilemma-sim)
missing=0
for b in "${bins[@]}"; do [ -x "$build_dir/$b" ] || missing=1; done
if [ "$missing" = 1 ]; then
    log "building ${bins[*]} in $build_dir"
    cmake -S "$ROOT" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build_dir" -j "$(nproc)" --target "${bins[@]}" >/dev/null
fi

# 2. the root file system (cached) and the image's file tree
rootfs_args=()
[ "$variant" = loadtest ] && rootfs_args=(--loadtest)
rootfs="$("$HERE/rootfs.sh" "${rootfs_args[@]}")"
work="$(mktemp -d /var/tmp/trilemma-image.XXXXXX)"
tree="${keep:-$work/tree}"
ctr=""
cleanup() {
    if [ -n "$ctr" ]; then bh rm "$ctr" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
"$HERE/assemble.sh" "$variant" "$rootfs" "$build_dir" "$tree"

# 3. the image
revision="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
ctr="$(bh from --name "trilemma-build-$$" scratch)"
bh copy --quiet "$ctr" "$tree/" / >/dev/null
common=(
    --os linux --arch "$(dpkg --print-architecture)"
    --user 10001:10001
    --workingdir /opt/trilemma
    --stop-signal SIGTERM
    --label org.opencontainers.image.title="$(basename "$name")"
    --label org.opencontainers.image.version="$tag"
    --label org.opencontainers.image.revision="$revision"
    --label org.opencontainers.image.base.name="debian:bookworm (debootstrap minbase)"
    --label org.opencontainers.image.description="trilemma $variant, built offline by scripts/image/build-offline.sh"
    --created-by "scripts/image/build-offline.sh"
)
if [ "$variant" = server ]; then
    bh config "${common[@]}" \
        --entrypoint '["/usr/local/bin/trilemmad"]' --cmd '' \
        --port 8080 --port 9180 \
        --env TRILEMMA_JOURNAL_DIR=/var/lib/trilemma/journal \
        "$ctr"
else
    bh config "${common[@]}" --entrypoint '["/usr/local/bin/trilemma-load"]' --cmd '' "$ctr"
fi
id="$(bh commit --quiet --rm "$ctr" "$image")"
ctr=""
log "committed $image ($id)"
if [ -n "$archive" ]; then
    rm -f "$archive"
    bh push --quiet "$image" "oci-archive:$archive:$image"
    log "wrote $archive"
fi
echo "$image $id"
