#!/usr/bin/env bash
# shellcheck disable=SC2030,SC2031 # the subshells load run.sh on purpose: its state stays in them
# test_run_state.sh --server BIN --source DIR: whatever state an earlier run left in .run, the
# next scripts/run.sh can start PostgreSQL there (issue 16, item 6).
#
#   1. build/trilemmad run by hand in a fresh folder (with a database configured, so it opens its
#      spill journal) creates .run searchable by others and only .run/journal private.
#   2. run.sh's PostgreSQL set-up (its functions, sourced) on a .run left private (what older
#      binaries made) starts a cluster the server can migrate: as root (CI) the cluster runs as
#      the postgres user, which needs to enter .run.
#   3. as root: a checkout below a private folder (like /root) gets its cluster in the postgres
#      user's home instead, and it works.
# Exit 77 (skipped) without PostgreSQL's binaries.
set -euo pipefail

server="" source=""
while [ "$#" -gt 0 ]; do
    case "$1" in
    --server) server="$2" && shift 2 ;;
    --source) source="$2" && shift 2 ;;
    *) echo "usage: $0 --server BIN --source DIR" >&2 && exit 2 ;;
    esac
done
if [ ! -x "$server" ] || [ ! -d "$source" ]; then
    echo "usage: $0 --server BIN --source DIR" >&2
    exit 2
fi
server="$(realpath "$server")" source="$(realpath "$source")"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [ ! -x "$PG_BIN/initdb" ]; then
    echo "run_state: no PostgreSQL binaries in $PG_BIN (PG_BIN); skipped"
    exit 77
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "run_state: running as root without a postgres user; skipped"
    exit 77
fi

umask 022 # the usual one: folders the server creates 0755 come out 0755
work="$(mktemp -d /tmp/trilemma-run-state.XXXXXX)"
chmod 0755 "$work" # like an ordinary checkout's folder (mktemp makes it private)
# the clusters this test may have started: .run/pg, and the one step 3 moves (named in $work/moved)
finish() {
    local d
    for d in "$work/.run/pg" "$(cat "$work/moved" 2>/dev/null || true)"; do
        if [ -n "$d" ]; then
            "$source/tests/store/pg_cluster.sh" stop "$d" >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$work"
}
trap finish EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
mode() { stat -c %a "$1"; }

# migrate_ok: the server can use DATABASE_URL (as run.sh's server would, at start).
migrate_ok() {
    local out
    out="$(cd "$source" && "$server" --migrate 2>&1)" || fail "trilemmad --migrate on $DATABASE_URL: $out"
    [[ "$out" == *"migrations applied"* ]] || fail "trilemmad --migrate said: $out"
}

echo "1. build/trilemmad run by hand creates .run for its journal"
(cd "$work" && exec env DATABASE_URL="postgresql://postgres@/trilemma?host=$work/no-such-socket" \
    "$server" --listen 127.0.0.1:0 --workers 1 >"$work/server.log" 2>&1) &
pid=$!
for _ in $(seq 1 300); do # the journal folder is what we wait for; 30 s is a failure bound only
    [ -d "$work/.run/journal" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
[ -d "$work/.run/journal" ] || {
    kill "$pid" 2>/dev/null || true
    cat "$work/server.log"
    fail "the server did not create $work/.run/journal"
}
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || fail "the server exited $rc after SIGTERM: $(tail -n 20 "$work/server.log")"
echo "   .run $(mode "$work/.run"), .run/journal $(mode "$work/.run/journal")"
[ "$(mode "$work/.run")" = 755 ] || fail ".run was created $(mode "$work/.run"), not 755: PostgreSQL (as postgres) could not reach .run/pg"
[ "$(mode "$work/.run/journal")" = 700 ] || fail ".run/journal is $(mode "$work/.run/journal"), expected private (700)"

echo "2. run.sh's PostgreSQL set-up on a .run left private by an older binary"
chmod 0700 "$work/.run"
(
    export TRILEMMA_RUN_DIR="$work/.run"
    unset DATABASE_URL
    # shellcheck source=scripts/run.sh
    . "$source/scripts/run.sh"
    prepare_run_dir
    start_postgres
    echo "   .run $(mode "$work/.run"), cluster in $PG_DIR"
    [ "$PG_DIR" = "$work/.run/pg" ] || fail "the cluster went to $PG_DIR, not .run/pg"
    [ "$(mode "$work/.run")" = 755 ] || fail "run.sh left .run $(mode "$work/.run")"
    migrate_ok
    stop_postgres
) || exit 1

if [ "$(id -u)" -eq 0 ]; then
    echo "3. a checkout the postgres user cannot enter"
    mkdir -p "$work/private/checkout"
    chmod 0700 "$work/private"
    (
        export TRILEMMA_RUN_DIR="$work/private/checkout/.run"
        unset DATABASE_URL
        # shellcheck source=scripts/run.sh
        . "$source/scripts/run.sh"
        prepare_run_dir
        prepare_pg_dir
        echo "$PG_DIR" >"$work/moved"
        start_postgres
        echo "   cluster in $PG_DIR"
        case "$PG_DIR" in "$work"/*) fail "the cluster stayed in $PG_DIR, which postgres cannot enter" ;; esac
        migrate_ok
        stop_postgres
    ) || exit 1
fi
echo "ok"
