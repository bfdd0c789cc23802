#!/usr/bin/env bash
# pg_cluster.sh - a private, throwaway PostgreSQL cluster for tests: unix socket only, trust
# authentication, everything (data, socket, log) inside one folder.
#
#   pg_cluster.sh start DIR   create the cluster in DIR if it is not there yet, start it, create
#                             the database "trilemma" once, and print its DATABASE_URL
#   pg_cluster.sh pause DIR   stop it at once (pg_ctl stop -m immediate: like a crash), keeping
#                             the data; `start DIR` brings it back (crash recovery)
#   pg_cluster.sh stop DIR    stop it and delete DIR
#
# PostgreSQL refuses to run as root: when run as root (CI is), the server commands run as the
# `postgres` system user and DIR is given to it. PG_BIN overrides /usr/lib/postgresql/15/bin;
# PG_CLUSTER_OPTS adds server options (e.g. "-c fsync=off" for speed).
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
cmd="${1:-}"
dir="${2:-}"
if [ -z "$cmd" ] || [ -z "$dir" ]; then
    echo "usage: $0 start|pause|stop DIR" >&2
    exit 2
fi

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 \
            --no-sync >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
    fi
    # shellcheck disable=SC2086 # PG_CLUSTER_OPTS is a list of options
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses= -k $dir -c max_connections=200 ${PG_CLUSTER_OPTS:-}" \
        start >/dev/null || {
        tail -n 30 "$dir/server.log" >&2
        exit 1
    }
    if [ ! -f "$dir/created" ]; then
        as_pg "$PG_BIN/createdb" -h "$dir" -U postgres trilemma
        as_pg touch "$dir/created"
    fi
    echo "postgresql://postgres@/trilemma?host=$dir"
    ;;
pause)
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|pause|stop DIR" >&2
    exit 2
    ;;
esac
