# shellcheck shell=bash
# Shared helpers for infra/local/{kafka,influxdb,servers}.sh. Source it; do not run it.
#
# Conventions (shared with the Python code, see docs/infra.md):
#   FOREWARN_CACHE_DIR   downloads and builds          (default ~/.cache/forewarn)
#   FOREWARN_STATE_DIR   data dirs, pid files, logs     (default $FOREWARN_CACHE_DIR/state)
#   FOREWARN_KAFKA_BOOTSTRAP, FOREWARN_INFLUX_URL, FOREWARN_INFLUX_{ORG,BUCKET,TOKEN,USERNAME,PASSWORD}
# Secrets (token, password) are never printed and never put on a command line.

# shellcheck disable=SC2034 # used by the scripts that source this file
FW_INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

FOREWARN_CACHE_DIR=${FOREWARN_CACHE_DIR:-${HOME:-/root}/.cache/forewarn}
FOREWARN_STATE_DIR=${FOREWARN_STATE_DIR:-$FOREWARN_CACHE_DIR/state}
FOREWARN_KAFKA_BOOTSTRAP=${FOREWARN_KAFKA_BOOTSTRAP:-127.0.0.1:9092}
FOREWARN_INFLUX_URL=${FOREWARN_INFLUX_URL:-http://127.0.0.1:8086}
FOREWARN_INFLUX_ORG=${FOREWARN_INFLUX_ORG:-forewarn}
FOREWARN_INFLUX_BUCKET=${FOREWARN_INFLUX_BUCKET:-forewarn}
FOREWARN_INFLUX_TOKEN=${FOREWARN_INFLUX_TOKEN:-forewarn-dev-token}
FOREWARN_INFLUX_USERNAME=${FOREWARN_INFLUX_USERNAME:-forewarn}
FOREWARN_INFLUX_PASSWORD=${FOREWARN_INFLUX_PASSWORD:-forewarn-dev-password}
export FOREWARN_CACHE_DIR FOREWARN_STATE_DIR

# Name printed in front of every message; each script sets it.
FW_COMPONENT=${FW_COMPONENT:-forewarn}

fw_info() { printf '%s: %s\n' "$FW_COMPONENT" "$*" >&2; }
fw_die() {
    printf '%s: error: %s\n' "$FW_COMPONENT" "$*" >&2
    exit 1
}

# fw_tail FILE [N]: last N lines of FILE on stderr, indented (for error reports).
fw_tail() {
    local file=$1 n=${2:-25}
    if [[ -s $file ]]; then
        printf '%s: --- last %s lines of %s ---\n' "$FW_COMPONENT" "$n" "$file" >&2
        tail -n "$n" "$file" | sed 's/^/    /' >&2
    fi
}

# fw_die_with_log FILE MESSAGE: one-line error, then the log tail.
fw_die_with_log() {
    local file=$1
    shift
    printf '%s: error: %s (log: %s)\n' "$FW_COMPONENT" "$*" "$file" >&2
    fw_tail "$file" 30
    exit 1
}

fw_require_cmd() { # CMD HINT
    command -v "$1" >/dev/null 2>&1 || fw_die "$1 not found on PATH: $2"
}

# fw_hostport_of_url URL -> "host port" (http default port 80, https 443).
fw_hostport_of_url() {
    local url=$1 rest host port
    rest=${url#*://}
    rest=${rest%%/*}
    host=${rest%:*}
    port=${rest##*:}
    if [[ $rest != *:* ]]; then
        host=$rest
        if [[ $url == https://* ]]; then port=443; else port=80; fi
    fi
    printf '%s %s\n' "$host" "$port"
}

# fw_hostport HOST:PORT -> "host port"
fw_hostport() {
    local hp=${1%%,*} # first bootstrap server only
    [[ $hp == *:* ]] || fw_die "expected host:port, got '$1'"
    printf '%s %s\n' "${hp%:*}" "${hp##*:}"
}

# fw_check_loopback HOST: servers must listen on loopback only.
fw_check_loopback() {
    case $1 in
    127.* | localhost) ;;
    *) fw_die "refusing to bind to '$1': local servers listen on 127.0.0.1 only" ;;
    esac
}

# fw_port_listening PORT: true if some process listens on TCP PORT (any address).
fw_port_listening() {
    if command -v ss >/dev/null 2>&1; then
        [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
    else
        timeout 2 bash -c ": >/dev/tcp/127.0.0.1/$1" 2>/dev/null
    fi
}

# fw_port_owner PORT: pid of the process listening on PORT, if ss can tell.
fw_port_owner() {
    command -v ss >/dev/null 2>&1 || return 0
    # awk reads all its input: no early exit, no SIGPIPE under pipefail
    ss -Hltnp "sport = :$1" 2>/dev/null |
        awk '!found && match($0, /pid=[0-9]+/) { print substr($0, RSTART + 4, RLENGTH - 4); found = 1 }'
}

# fw_describe_pid PID: "pid 123 (java ...)" for error messages.
fw_describe_pid() {
    local pid=$1 cmd=""
    [[ -n $pid ]] || {
        printf 'an unknown process'
        return
    }
    [[ -r /proc/$pid/cmdline ]] && cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-100)
    printf 'pid %s (%s)' "$pid" "${cmd:-?}"
}

# fw_pid_matches PID MARKER: PID is alive and its command line contains MARKER
# (guards against stale pid files whose pid was reused by something else).
fw_pid_matches() {
    local pid=$1 marker=$2
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$marker"* ]]
}

# fw_running_pid PIDFILE MARKER PORT: print the pid of our server if it runs.
# Falls back to the port's owner when its command line carries our MARKER (a
# server of ours whose pid file was lost). Removes stale pid files.
fw_running_pid() {
    local pidfile=$1 marker=$2 port=$3 pid=""
    [[ -f $pidfile ]] && pid=$(<"$pidfile")
    if fw_pid_matches "$pid" "$marker"; then
        printf '%s\n' "$pid"
        return 0
    fi
    [[ -f $pidfile ]] && rm -f "$pidfile"
    pid=$(fw_port_owner "$port")
    if fw_pid_matches "$pid" "$marker"; then
        printf '%s\n' "$pid" >"$pidfile"
        printf '%s\n' "$pid"
        return 0
    fi
    return 1
}

# fw_ensure_port_free PORT WHAT: one-line error when someone else holds PORT.
fw_ensure_port_free() {
    local port=$1 what=$2
    if fw_port_listening "$port"; then
        fw_die "port $port ($what) is already in use by $(fw_describe_pid "$(fw_port_owner "$port")"); stop it or change the FOREWARN_* address"
    fi
}

# fw_spawn PIDFILE OUTFILE CMD...: start CMD detached in its own session and
# process group (so stop can signal the whole group), stdout+stderr to OUTFILE.
# The pid is written by the child itself just before exec, so it is the
# server's pid whatever setsid does. fd 8 (the fw_lock lock) is closed so the
# server does not hold the lock for its whole life.
fw_spawn() {
    local pidfile=$1 out=$2
    shift 2
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # $$, $0 and $@ expand in the child shell
    setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
        >>"$out" 2>&1 </dev/null 8>&- &
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s $pidfile ]] && return 0
        sleep 0.05
    done
    fw_die_with_log "$out" "could not start: $1"
}

# fw_stop_pid PID NAME [TERM_TIMEOUT]: TERM the process group, wait with a
# deadline, then KILL the group. Children die with their leader.
fw_stop_pid() {
    local pid=$1 name=$2 timeout=${3:-30} pgid deadline
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')
    if [[ $pgid == "$pid" ]]; then
        kill -TERM -- "-$pgid" 2>/dev/null || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        fw_info "$name did not stop within ${timeout}s after TERM; sending KILL"
        if [[ $pgid == "$pid" ]]; then
            kill -KILL -- "-$pgid" 2>/dev/null || true
        else
            kill -KILL "$pid" 2>/dev/null || true
        fi
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && fw_die "$name (pid $pid) survived KILL"
    fi
    # Anything left in the group (a forked helper) goes too.
    if [[ $pgid == "$pid" ]] && pgrep -g "$pgid" >/dev/null 2>&1; then
        kill -KILL -- "-$pgid" 2>/dev/null || true
    fi
    return 0
}

# fw_wait_ports_closed WHAT PORT...: after a stop, the ports must be free.
fw_wait_ports_closed() {
    local what=$1 port deadline
    shift
    deadline=$((SECONDS + 15))
    for port in "$@"; do
        while fw_port_listening "$port"; do
            if ((SECONDS >= deadline)); then
                fw_die "$what stopped but port $port is still in use by $(fw_describe_pid "$(fw_port_owner "$port")")"
            fi
            sleep 0.2
        done
    done
}

# fw_lock NAME: serialise install/start/stop of one server across concurrent
# invocations (e.g. two test runs calling `up` at once). Held until exit.
fw_lock() {
    mkdir -p "$FOREWARN_STATE_DIR"
    exec 8>"$FOREWARN_STATE_DIR/$1.lock"
    if ! flock -w "${2:-3600}" 8; then
        fw_die "timed out waiting for the $1 lock ($FOREWARN_STATE_DIR/$1.lock)"
    fi
}

# fw_show_logs FOLLOW FILE...: tail (or follow) log files.
fw_show_logs() {
    local follow=$1 f shown=()
    shift
    for f in "$@"; do
        [[ -f $f ]] && shown+=("$f")
    done
    if ((${#shown[@]} == 0)); then
        fw_info "no logs yet ($*)"
        return 0
    fi
    if [[ $follow == 1 ]]; then
        exec tail -n 50 -F "${shown[@]}"
    fi
    tail -n 50 "${shown[@]}"
}

fw_elapsed() { printf '%ss' "$((SECONDS - $1))"; }
