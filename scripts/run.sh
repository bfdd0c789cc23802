#!/usr/bin/env bash
# run.sh - Quick start, command 1: run trilemma on this machine.
#
# Installs whatever is missing (scripts/deps.sh), builds (scripts/build.sh), starts what the
# server needs (a private PostgreSQL cluster under .run/pg unless DATABASE_URL is set; the
# simulated provider build/trilemma-sim unless a provider key or TRILEMMA_MODEL is set), starts
# the server in the foreground and prints the URL to open. Ctrl-C (or SIGTERM) drains the server
# and stops everything this script started.
#
# Environment:
#   TRILEMMA_LISTEN   HOST:PORT to listen on (default 127.0.0.1:8080)
#   TRILEMMA_CONFIG   an INI config file (see docs/config.md); default config/local.ini
#   Everything else the server reads (TRILEMMA_JWT_SECRET, DATABASE_URL, provider keys) passes
#   through unchanged.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$ROOT/.run" # state of this script's services (git-ignored)
LISTEN="${TRILEMMA_LISTEN:-127.0.0.1:8080}"
HOST="${LISTEN%:*}"
PORT="${LISTEN##*:}"
case "$HOST" in "" | 0.0.0.0) URL_HOST=127.0.0.1 ;; "[::]") URL_HOST="[::1]" ;; *) URL_HOST="$HOST" ;; esac
URL="http://$URL_HOST:$PORT/"
BIN="$ROOT/build/trilemmad"

say() { printf 'run: %s\n' "$*" >&2; }

# port_in_use: something accepts TCP connections on the port we want.
port_in_use() {
    local h="${URL_HOST#[}"
    h="${h%]}"
    (exec 3<>"/dev/tcp/$h/$PORT") 2>/dev/null
}

# --- the services the server needs ------------------------------------------------------------
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DIR="$RUN_DIR/pg"
pg_started=0
sim_pid=""

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# PostgreSQL: a private cluster under .run/pg (unix socket only, kept between runs), unless
# DATABASE_URL points elsewhere. The server applies migrations at start.
start_postgres() {
    if [ -n "${DATABASE_URL:-}" ]; then
        say "PostgreSQL: using DATABASE_URL from the environment"
        return
    fi
    if [ -f "$PG_DIR/data/postmaster.pid" ] &&
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
        say "PostgreSQL: reusing the cluster already running in $PG_DIR"
        DATABASE_URL="postgresql://postgres@/trilemma?host=$PG_DIR"
    else
        DATABASE_URL="$("$ROOT/tests/store/pg_cluster.sh" start "$PG_DIR")"
        pg_started=1
        say "PostgreSQL: private cluster in $PG_DIR"
    fi
    export DATABASE_URL
}
stop_postgres() {
    if [ "$pg_started" -eq 1 ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
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
        say "provider: trilemma-sim did not start (see $log); using the echo responder"
        stop_simulated_provider
        return
    fi
    export OPENAI_BASE_URL="http://127.0.0.1:$port/v1"
    export TRILEMMA_MODEL="openai/sim-shopper"
    say "provider: simulated (trilemma-sim on 127.0.0.1:$port, pid $sim_pid)"
}
stop_simulated_provider() {
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    sim_pid=""
}
# ------------------------------------------------------------------------------------------------

"$ROOT/scripts/deps.sh"
"$ROOT/scripts/build.sh"

if port_in_use; then
    if curl -fsS --max-time 2 "${URL}healthz" >/dev/null 2>&1; then
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

mkdir -p "$RUN_DIR"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -f "$RUN_DIR/trilemmad.pid"
    stop_simulated_provider
    stop_postgres
}
trap cleanup EXIT
# A background job of a non-interactive shell ignores SIGINT, so forward Ctrl-C as SIGTERM
# (both drain the server).
trap 'say "stopping (draining)..."; [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null || true' INT TERM

start_postgres
start_simulated_provider

args=(--listen "$LISTEN" --config "${TRILEMMA_CONFIG:-$ROOT/config/local.ini}")

cd "$ROOT" # web_root defaults to ./web
"$BIN" "${args[@]}" &
server_pid=$!
echo "$server_pid" >"$RUN_DIR/trilemmad.pid"

# Wait (bounded) until the server answers /healthz, then say where to go.
ready=0
for _ in $(seq 1 100); do
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if curl -fsS --max-time 1 "${URL}healthz" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" -eq 1 ]; then
    say "trilemma is running (pid $server_pid). Open $URL"
    say "Ctrl-C stops it."
else
    say "the server did not answer ${URL}healthz; see its log above."
fi

# `wait` returns early (status > 128) when a trapped signal arrives; wait again until the server
# itself has exited.
while :; do
    rc=0
    wait "$server_pid" || rc=$?
    if [ "$rc" -lt 128 ] || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
done
server_pid=""
exit "$rc"
