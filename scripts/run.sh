#!/usr/bin/env bash
# run.sh - Quick start, command 1: run trilemma on this machine.
#
# Installs what building and running need when it is missing (scripts/deps.sh --run: no test
# tools, no npm), builds the server (scripts/build.sh --run), starts what the server needs (a
# private PostgreSQL cluster under .run/pg unless DATABASE_URL is set; the simulated provider
# build/trilemma-sim unless a provider key or TRILEMMA_MODEL is set), starts the server with its
# log in .run/trilemmad.log and ends with a short block: the URL, the logs, how to stop. Ctrl-C
# (or SIGTERM) drains the server and stops everything this script started.
#
#   -v, --verbose     show apt's and the compiler's output as it comes
#
# Environment:
#   TRILEMMA_LISTEN   HOST:PORT to listen on (default 127.0.0.1:8080)
#   TRILEMMA_CONFIG   an INI config file (see docs/config.md); default config/local.ini
#   TRILEMMA_RUN_DIR  where this script keeps its state and logs (default .run)
#   Everything else the server reads (TRILEMMA_JWT_SECRET, DATABASE_URL, provider keys) passes
#   through unchanged.
#
# Sourcing this file defines its functions without running anything (tests/scripts use that).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$(realpath -m "${TRILEMMA_RUN_DIR:-$ROOT/.run}")" # state of this script's services (git-ignored)
LISTEN="${TRILEMMA_LISTEN:-127.0.0.1:8080}"
HOST="${LISTEN%:*}"
PORT="${LISTEN##*:}"
case "$HOST" in "" | 0.0.0.0) URL_HOST=127.0.0.1 ;; "[::]") URL_HOST="[::1]" ;; *) URL_HOST="$HOST" ;; esac
URL="http://$URL_HOST:$PORT/"
BIN="$ROOT/build/trilemmad"
SERVER_LOG="$RUN_DIR/trilemmad.log"

say() { printf 'run: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}
# show PATH: a path as short as it can be said from where the user is
show() {
    case "$1" in "$PWD"/*) printf '%s' "${1#"$PWD"/}" ;; *) printf '%s' "$1" ;; esac
}

# port_in_use: something accepts TCP connections on the port we want.
port_in_use() {
    local h="${URL_HOST#[}"
    h="${h%]}"
    (exec 3<>"/dev/tcp/$h/$PORT") 2>/dev/null
}

# --- this script's state folder -----------------------------------------------------------------

# .run must be usable whatever an earlier run left there. PostgreSQL runs as the `postgres` user
# when we are root and has to pass through .run to reach .run/pg, so .run must be searchable by
# others: older builds of trilemmad, run by hand, created it 0700 for their journal (and a
# umask of 077 does the same).
prepare_run_dir() {
    mkdir -p "$RUN_DIR"
    if [ ! -w "$RUN_DIR" ] || [ ! -x "$RUN_DIR" ]; then
        die "$RUN_DIR belongs to $(stat -c %U "$RUN_DIR") (an earlier run as root?); give it back: sudo chown -R $(id -un): $RUN_DIR"
    fi
    if [ -O "$RUN_DIR" ] || [ "$(id -u)" -eq 0 ]; then
        chmod u+rwx,go+rx "$RUN_DIR"
    fi
    # a different state folder keeps the server's journal with it
    if [ -n "${TRILEMMA_RUN_DIR:-}" ] && [ -z "${TRILEMMA_JOURNAL_DIR:-}" ]; then
        export TRILEMMA_JOURNAL_DIR="$RUN_DIR/journal"
    fi
}

# --- the services the server needs ------------------------------------------------------------
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DIR="$RUN_DIR/pg"
pg_started=0
sim_pid=""

# (from /: the postgres user may not be allowed into the folder we are in)
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Make PG_DIR usable by whoever runs PostgreSQL: as root that is the postgres user (a cluster
# made by an earlier run as someone else is given to it); otherwise ourselves.
prepare_pg_dir() {
    if [ "$(id -u)" -ne 0 ]; then
        mkdir -p "$PG_DIR"
        if [ -e "$PG_DIR/data" ] && [ ! -O "$PG_DIR/data" ]; then
            die "$PG_DIR/data belongs to $(stat -c %U "$PG_DIR/data") (made by an earlier run as root): run as root, or remove it (sudo rm -rf $PG_DIR)"
        fi
        return
    fi
    mkdir -p "$PG_DIR"
    chmod u+rwx,go+rx "$PG_DIR"
    if [ -e "$PG_DIR/data" ] && [ "$(stat -c %U "$PG_DIR/data")" != postgres ]; then
        chown -R postgres: "$PG_DIR"
    fi
    chown postgres: "$PG_DIR"
    # A private folder above the checkout (e.g. /root) keeps the postgres user out of .run/pg
    # whatever we do there: keep the cluster in the postgres user's home instead.
    if ! runuser -u postgres -- test -w "$PG_DIR"; then
        local home
        home="$(getent passwd postgres | cut -d: -f6)"
        PG_DIR="${home:-/var/lib/postgresql}/trilemma-$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-12)"
        say "PostgreSQL runs as the postgres user, which cannot enter $RUN_DIR (a folder above it is private); its cluster lives in $PG_DIR instead"
        rmdir "$RUN_DIR/pg" 2>/dev/null || true
        mkdir -p "$PG_DIR"
        chown postgres: "$PG_DIR"
    fi
}

# PostgreSQL: a private cluster under .run/pg (unix socket only, kept between runs), unless
# DATABASE_URL points elsewhere. The server applies migrations at start.
start_postgres() {
    if [ -n "${DATABASE_URL:-}" ]; then
        say "PostgreSQL: using DATABASE_URL from the environment"
        return
    fi
    prepare_pg_dir
    if [ -f "$PG_DIR/data/postmaster.pid" ] &&
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        say "PostgreSQL: reusing the cluster already running in $(show "$PG_DIR")"
        DATABASE_URL="postgresql://postgres@/trilemma?host=$PG_DIR"
    else
        say "PostgreSQL: starting the private cluster in $(show "$PG_DIR")"
        DATABASE_URL="$(cd / && "$ROOT/tests/store/pg_cluster.sh" start "$PG_DIR")" ||
            die "PostgreSQL did not start (its log: $PG_DIR/server.log)"
        pg_started=1
    fi
    export DATABASE_URL
}
stop_postgres() {
    if [ "$pg_started" -eq 1 ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        pg_started=0
    fi
}

# The bundled simulated provider (build/trilemma-sim), when no provider is configured: the
# server then talks to it in the OpenAI wire format, no key needed (docs/sim.md).
start_simulated_provider() {
    if [ -n "${OPENAI_API_KEY:-}${ANTHROPIC_API_KEY:-}${GEMINI_API_KEY:-}${TRILEMMA_MODEL:-}" ]; then
        say "provider: from the environment"
        return
    fi
    local sim="$ROOT/build/trilemma-sim" log="$RUN_DIR/sim.log" port=""
    if [ ! -x "$sim" ]; then
        say "provider: built-in echo responder (no build/trilemma-sim)"
        return
    fi
    : >"$log"
    "$sim" --listen 127.0.0.1:0 >"$log" 2>&1 &
    sim_pid=$!
    for _ in $(seq 1 100); do
        port="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$log" | head -n1)"
        [ -n "$port" ] && break
        kill -0 "$sim_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        say "provider: trilemma-sim did not start (see $(show "$log")); using the echo responder"
        stop_simulated_provider
        return
    fi
    export OPENAI_BASE_URL="http://127.0.0.1:$port/v1"
    export TRILEMMA_MODEL="openai/sim-frontier"
    # the shopping assistant: agents with the commerce API's tools, served by the simulator too
    export TRILEMMA_CATALOG_URL="http://127.0.0.1:$port"
    export TRILEMMA_AGENTS_FILE="${TRILEMMA_AGENTS_FILE:-$ROOT/config/agents.ini}"
    export TRILEMMA_TOOLS_FILE="${TRILEMMA_TOOLS_FILE:-$ROOT/config/tools.json}"
    # the semantic cache's embeddings (docs/caching.md)
    export TRILEMMA_EMBEDDINGS_URL="${TRILEMMA_EMBEDDINGS_URL:-http://127.0.0.1:$port/v1/embeddings}"
    say "provider: simulated (trilemma-sim on 127.0.0.1:$port: models and a shop's catalog)"
}
stop_simulated_provider() {
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    sim_pid=""
}

# --- the server ---------------------------------------------------------------------------------

# wait_ready PID: the server said it listens (its log) and answers /healthz. Bounded: 30 s.
wait_ready() {
    local pid="$1"
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || return 1
        if grep -q "trilemma listening on" "$SERVER_LOG" 2>/dev/null &&
            curl -fsS --max-time 1 "${URL}healthz" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# The last thing on the screen: where to go, where the logs are, how to stop, what is open.
print_block() {
    local model
    model="$(sed -n 's/.*model: \(.*\)$/\1/p' "$SERVER_LOG" | head -n1)"
    printf '\n'
    printf '  trilemma is running:  %s\n' "$URL"
    printf '\n'
    printf '  logs   %-30s the server\n' "$(show "$SERVER_LOG")"
    [ -n "$sim_pid" ] && printf '         %-30s the simulated provider\n' "$(show "$RUN_DIR/sim.log")"
    [ "$pg_started" -eq 1 ] && printf '         %-30s PostgreSQL\n' "$(show "$PG_DIR/server.log")"
    printf '  stop   Ctrl-C: open chats finish their answer, then everything started here stops\n'
    if grep -q "auth: OPEN" "$SERVER_LOG"; then
        printf '  auth   open - no sign-in needed, as a local demo should be; set TRILEMMA_JWT_SECRET\n'
        printf '         to require tokens before exposing it (docs/config.md)\n'
    else
        printf '  auth   JWT: clients need a token signed with TRILEMMA_JWT_SECRET\n'
    fi
    if [ -n "$sim_pid" ]; then
        printf '  model  simulated shop and models (agents with tools over a generated catalog, no API\n'
        printf '         key needed); for a real model: OPENAI_API_KEY=... ./scripts/run.sh (README)\n'
    else
        printf '  model  %s\n' "${model:-see the server log}"
    fi
    printf '\n'
}

main() {
    for arg in "$@"; do
        case "$arg" in
        -v | --verbose) export TRILEMMA_VERBOSE=1 ;;
        -h | --help)
            sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) die "unknown argument '$arg' (try --help)" ;;
        esac
    done

    "$ROOT/scripts/deps.sh" --run
    "$ROOT/scripts/build.sh" --run

    if port_in_use; then
        if curl -fsS --max-time 2 "${URL}healthz" >/dev/null 2>&1; then
            local pid
            pid="$(cat "$RUN_DIR/trilemmad.pid" 2>/dev/null || true)"
            say "trilemma is already running at $URL${pid:+ (pid $pid, started by an earlier run.sh)}."
            say "Open $URL - or stop it first${pid:+ (kill $pid)}, or pick another port:"
            say "  TRILEMMA_LISTEN=127.0.0.1:$((PORT + 1)) ./scripts/run.sh"
            exit 0
        fi
        say "port $PORT is taken by another program (not trilemma). Free it, or pick another port:"
        say "  TRILEMMA_LISTEN=127.0.0.1:$((PORT + 1)) ./scripts/run.sh"
        exit 1
    fi

    prepare_run_dir
    server_pid=""
    trap cleanup EXIT
    # A background job of a non-interactive shell ignores SIGINT, so forward Ctrl-C as SIGTERM
    # (both drain the server).
    trap 'say "stopping (draining)..."; [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null || true' INT TERM

    start_postgres
    start_simulated_provider

    local args=(--listen "$LISTEN" --config "${TRILEMMA_CONFIG:-$ROOT/config/local.ini}")
    cd "$ROOT" # web_root defaults to ./web
    "$BIN" "${args[@]}" >"$SERVER_LOG" 2>&1 &
    server_pid=$!
    echo "$server_pid" >"$RUN_DIR/trilemmad.pid"

    if wait_ready "$server_pid"; then
        print_block
    else
        say "the server did not start; the end of its log ($(show "$SERVER_LOG")):"
        tail -n 20 "$SERVER_LOG" >&2
        kill -TERM "$server_pid" 2>/dev/null || true
    fi

    # `wait` returns early (status > 128) when a trapped signal arrives; wait again until the
    # server itself has exited.
    local rc
    while :; do
        rc=0
        wait "$server_pid" || rc=$?
        if [ "$rc" -lt 128 ] || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    done
    server_pid=""
    exit "$rc"
}

cleanup() {
    if [ -n "${server_pid:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/trilemmad.pid"
    stop_simulated_provider
    stop_postgres
    say "stopped."
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
