# lib.sh - helpers the scripts share (sourced by deps.sh and build.sh, not run on its own).
# shellcheck shell=bash
#
# quiet_run LOG LABEL CMD...   run CMD with all its output in LOG instead of on the screen. On a
#                              terminal, one line shows LABEL, the time so far and - when CMD
#                              prints make or ninja progress ("[ 42%]", "[12/80]") - how far it
#                              is. When CMD fails, its whole output is printed (stderr) and its
#                              exit status returned. TRILEMMA_VERBOSE=1 (the scripts' -v) shows
#                              the output as it comes instead.
# elapsed SECONDS              "42s" or "2m05s"

elapsed() {
    local s="$1"
    if [ "$s" -ge 60 ]; then
        printf '%dm%02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

# _progress LOG LABEL: copy stdin to LOG; on a terminal redraw the one progress line at least
# once a second (read -t), so a step that prints nothing for minutes still shows it is alive.
_progress() {
    local log="$1" label="$2" line="" how="" start=$SECONDS st tty=0
    [ -t 2 ] && tty=1
    : >"$log"
    while :; do
        st=0
        IFS= read -r -t 1 line || st=$?
        if [ "$st" -eq 0 ] || { [ "$st" -le 128 ] && [ -n "$line" ]; }; then
            printf '%s\n' "$line" >>"$log"
            if [[ "$line" =~ ^\[\ *([0-9]+%)\] ]] || [[ "$line" =~ ^\[([0-9]+/[0-9]+)\] ]]; then
                how="${BASH_REMATCH[1]} "
            fi
        fi
        [ "$st" -ne 0 ] && [ "$st" -le 128 ] && break # end of input
        line=""
        if [ "$tty" -eq 1 ]; then
            printf '\r\033[K%s %s%s' "$label" "$how" "$(elapsed $((SECONDS - start)))" >&2
        fi
    done
    [ "$tty" -eq 1 ] && printf '\r\033[K' >&2
    return 0
}

quiet_run() {
    local log="$1" label="$2" rc=0 errexit=0
    shift 2
    mkdir -p "$(dirname "$log")"
    # CMD's own status, whatever the caller's errexit and pipefail say
    [[ $- == *e* ]] && errexit=1
    set +e
    if [ "${TRILEMMA_VERBOSE:-0}" = 1 ]; then
        "$@" 2>&1 </dev/null | tee "$log" >&2
        rc=${PIPESTATUS[0]}
    else
        "$@" 2>&1 </dev/null | _progress "$log" "$label"
        rc=${PIPESTATUS[0]}
    fi
    [ "$errexit" -eq 1 ] && set -e
    if [ "$rc" -ne 0 ] && [ "${TRILEMMA_VERBOSE:-0}" != 1 ]; then
        printf -- '---- output of: %s (also in %s) ----\n' "$*" "$log" >&2
        cat "$log" >&2
        printf -- '---- end of output ----\n' >&2
    fi
    return "$rc"
}
