#!/usr/bin/env bash
# InfluxDB 2.x (influxd, with Flux) on loopback, built from source, no Docker.
#
#   infra/local/influxdb.sh install|start|stop|status|logs [-f]
#
# install: build influxd once from the Go module proxy (+ libflux, Flux's Rust
#          library, from crates.io) into $FOREWARN_CACHE_DIR/influxdb-<version>/.
#          Long the first time (Rust + Go on 2 cores); cached afterwards.
# start:   install if needed, start, wait for GET /health = pass, then onboard
#          (org, bucket, user, token from FOREWARN_INFLUX_*) if not done yet.
# See docs/infra.md.
set -euo pipefail

FW_COMPONENT=influxdb
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

INFLUX_MODULE_DIR=$FW_INFRA_DIR/influxdb # our wrapper module (go.mod pins the version)
INFLUX_VERSION=$(sed -n '/^[[:space:]]*github.com\/influxdata\/influxdb\/v2 v[0-9][^[:space:]]*$/{s/.* //p;q;}' \
    "$INFLUX_MODULE_DIR/go.mod")
[[ -n $INFLUX_VERSION ]] || fw_die "cannot read the influxdb version from $INFLUX_MODULE_DIR/go.mod"
INFLUX_HOME=$FOREWARN_CACHE_DIR/influxdb-${INFLUX_VERSION#v}
INFLUXD=$INFLUX_HOME/influxd
INFLUX_STATE=$FOREWARN_STATE_DIR/influxdb
INFLUX_LOGS=$INFLUX_STATE/logs
INFLUX_LOG=$INFLUX_LOGS/influxd.log
INFLUX_PIDFILE=$INFLUX_STATE/influxd.pid
INFLUX_BOLT=$INFLUX_STATE/influxd.bolt # also the marker that identifies our process
INFLUX_START_TIMEOUT=${FOREWARN_INFLUX_START_TIMEOUT:-60}
read -r INFLUX_HOST INFLUX_PORT < <(fw_hostport_of_url "$FOREWARN_INFLUX_URL")
[[ ${INFLUX_PORT:-} =~ ^[0-9]+$ ]] || fw_die "cannot parse a port from FOREWARN_INFLUX_URL='$FOREWARN_INFLUX_URL'"
[[ $INFLUX_HOST == localhost ]] && INFLUX_HOST=127.0.0.1
INFLUX_BASE=http://$INFLUX_HOST:$INFLUX_PORT

######################################## build ########################################

# The environment of every go/cargo step of the build. Everything it writes
# lives under $FOREWARN_CACHE_DIR (module cache, build cache, cargo target dir),
# so a second build reuses all of it. Cargo's crate downloads go to ~/.cargo.
influx_build_env() {
    export GOPATH=$FOREWARN_CACHE_DIR/go
    export GOMODCACHE=$FOREWARN_CACHE_DIR/go/mod
    export GOCACHE=$FOREWARN_CACHE_DIR/go/build
    export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=1
    # Flux pins Rust 1.72 in rust-toolchain.toml, which cannot be downloaded
    # here; build with the installed stable toolchain instead.
    export RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-stable}
    # Newer rustc raises warnings that flux-core turns into errors
    # (#![deny(warnings)]); cap them, for build-dependencies too (see the script).
    export RUSTC_WRAPPER=$INFLUX_MODULE_DIR/rustc-cap-lints.sh
    # cgo asks pkg-config for "flux"; InfluxData's wrapper answers by building
    # libflux with cargo. Go runs $PKG_CONFIG; the wrapper itself finds the
    # real (Debian) pkg-config on PATH for everything else.
    export PKG_CONFIG=$INFLUX_HOME/build/bin/pkg-config
    export PKG_CONFIG_LOG=$INFLUX_HOME/build/pkg-config.log
}

influx_check_build_tools() {
    fw_require_cmd go "install Go 1.23 or newer (https://go.dev/dl/) to build influxd"
    fw_require_cmd cargo "install Rust with rustup (stable toolchain) to build libflux for influxd"
    fw_require_cmd rustc "install Rust with rustup (stable toolchain) to build libflux for influxd"
    fw_require_cmd pkg-config "apt-get install -y pkg-config (InfluxData's pkg-config wrapper delegates to it)"
    fw_require_cmd cc "apt-get install -y gcc (cgo: sqlite and libflux)"
    fw_require_cmd curl "apt-get install -y curl"
    local gov gomaj gomin
    gov=$(go env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    read -r gomaj gomin <<<"${gov:-0 0}"
    if ((gomaj < 1 || (gomaj == 1 && gomin < 23))); then
        fw_die "go $(go env GOVERSION) is too old: influxdb $INFLUX_VERSION needs Go 1.23 or newer"
    fi
    if command -v rustup >/dev/null 2>&1 && ! rustup run "${RUSTUP_TOOLCHAIN:-stable}" rustc -V >/dev/null 2>&1; then
        fw_die "rustup has no '${RUSTUP_TOOLCHAIN:-stable}' toolchain: run 'rustup toolchain install stable'"
    fi
}

# The pkg-config wrapper copies the (read-only) flux module into
# $GOCACHE/pkgconfig/<module>@<version> and builds there, and it reuses that
# copy whenever the directory exists. A copy cut short by an interrupted build
# would then break every later build: drop it when it is incomplete.
influx_check_flux_copy() {
    local fluxver src copy
    fluxver=$(sed -n '/^[[:space:]]*github.com\/influxdata\/flux v/{s/^[[:space:]]*[^ ]* \(v[^[:space:]]*\).*/\1/p;q;}' "$INFLUX_MODULE_DIR/go.mod")
    [[ -n $fluxver ]] || return 0
    src=$GOMODCACHE/github.com/influxdata/flux@$fluxver
    copy=$GOCACHE/pkgconfig/github.com/influxdata/flux@$fluxver
    [[ -d $src && -d $copy ]] || return 0
    if [[ $(find "$src" -type f | wc -l) != $(find "$copy" -path "$copy/libflux/target" -prune -o -type f -print | wc -l) ]]; then
        fw_info "discarding an incomplete copy of the flux sources in $copy"
        rm -rf "$copy"
    fi
}

influx_install() {
    if [[ -x $INFLUXD && -f $INFLUX_HOME/.complete ]]; then
        return 0
    fi
    influx_check_build_tools
    influx_build_env
    local start=$SECONDS log=$INFLUX_HOME/build.log
    mkdir -p "$INFLUX_HOME/build/bin"
    : >"$log"
    fw_info "building influxd $INFLUX_VERSION (Go + Rust libflux, without the UI assets) into $INFLUX_HOME"
    fw_info "first build takes long (about 25 min on 2 cores); progress: tail -f $log"
    (
        cd "$INFLUX_MODULE_DIR"
        echo "== $(date -u +%FT%TZ) go mod download"
        go mod download
        influx_check_flux_copy
        echo "== $(date -u +%FT%TZ) build InfluxData's pkg-config wrapper"
        go build -o "$PKG_CONFIG" github.com/influxdata/pkg-config
        echo "== $(date -u +%FT%TZ) build influxd (cgo runs cargo for libflux via pkg-config)"
        # Tags as in influxdb's GNUmakefile, minus `assets` (the UI would
        # need a download from outside the package registries).
        go build -tags sqlite_foreign_keys,sqlite_json \
            -ldflags "-s -w -X main.version=$INFLUX_VERSION -X main.commit=forewarn-local -X main.date=$(date -u +%FT%TZ)" \
            -o "$INFLUXD.tmp" github.com/influxdata/influxdb/v2/cmd/influxd
        "$INFLUXD.tmp" version
        echo "== $(date -u +%FT%TZ) done"
    ) >>"$log" 2>&1 || fw_die_with_log "$log" "building influxd $INFLUX_VERSION failed"
    mv "$INFLUXD.tmp" "$INFLUXD"
    printf '%s\n' "$INFLUX_VERSION" >"$INFLUX_HOME/.complete"
    fw_info "built $INFLUXD in $(fw_elapsed "$start")"
}

######################################## HTTP ########################################

# json_str VALUE: a JSON string literal (values here are single-line).
json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# api METHOD PATH [AUTH]: request with the JSON body from stdin (if any);
# prints the body, then the status code on the last line. With AUTH=auth the
# token travels in a header read from a process substitution, never in argv.
api() {
    local method=$1 path=$2 auth=${3:-}
    local args=(-sS --max-time 10 -X "$method" -w '\n%{http_code}')
    if [[ $method == POST ]]; then
        args+=(-H 'Content-Type: application/json' --data-binary @-)
    fi
    if [[ $auth == auth ]]; then
        curl "${args[@]}" -H @<(printf 'Authorization: Token %s\n' "$FOREWARN_INFLUX_TOKEN") "$INFLUX_BASE$path"
    else
        curl "${args[@]}" "$INFLUX_BASE$path"
    fi
}

# split "body\ncode" into globals BODY and CODE
split_response() {
    CODE=${1##*$'\n'}
    BODY=${1%$'\n'*}
}

api_message() { # the "message" of an InfluxDB error body, never the whole body
    printf '%s' "$1" | sed -n '/"message":/{s/.*"message": *"\(.*\)".*/\1/;s/\\"/"/g;p;q;}'
}

influx_health_ok() {
    local body
    body=$(curl -fsS --max-time 2 "$INFLUX_BASE/health" 2>/dev/null) || return 1
    [[ $body =~ \"status\":\ *\"pass\" ]]
}

# Idempotent onboarding: POST /api/v2/setup only when GET /api/v2/setup says
# it is allowed; otherwise check the configured token sees the org and bucket
# (creating the bucket if only it is missing).
influx_onboard() {
    local r org bucket
    org=$(json_str "$FOREWARN_INFLUX_ORG")
    bucket=$(json_str "$FOREWARN_INFLUX_BUCKET")
    r=$(api GET /api/v2/setup) || fw_die "GET $INFLUX_BASE/api/v2/setup failed"
    split_response "$r"
    [[ $CODE == 200 ]] || fw_die "GET /api/v2/setup answered HTTP $CODE"
    if [[ $BODY =~ \"allowed\":\ *true ]]; then
        r=$(printf '{"username":%s,"password":%s,"org":%s,"bucket":%s,"token":%s,"retentionPeriodSeconds":0}' \
            "$(json_str "$FOREWARN_INFLUX_USERNAME")" "$(json_str "$FOREWARN_INFLUX_PASSWORD")" \
            "$org" "$bucket" "$(json_str "$FOREWARN_INFLUX_TOKEN")" | api POST /api/v2/setup) ||
            fw_die "POST /api/v2/setup failed"
        split_response "$r"
        [[ $CODE == 201 ]] || fw_die "onboarding (POST /api/v2/setup) answered HTTP $CODE: $(api_message "$BODY")"
        fw_info "onboarded: org '$FOREWARN_INFLUX_ORG', bucket '$FOREWARN_INFLUX_BUCKET', user '$FOREWARN_INFLUX_USERNAME' (token from FOREWARN_INFLUX_TOKEN)"
        return 0
    fi
    # Already onboarded: the configured token must work and see the bucket.
    r=$(api GET "/api/v2/buckets?org=$(urlenc "$FOREWARN_INFLUX_ORG")&name=$(urlenc "$FOREWARN_INFLUX_BUCKET")" auth) ||
        fw_die "GET /api/v2/buckets failed"
    split_response "$r"
    case $CODE in
    200) ;;
    404) [[ $(api_message "$BODY") == bucket* ]] || fw_die "org '$FOREWARN_INFLUX_ORG' not found in the onboarded InfluxDB ($(api_message "$BODY")); wipe it (influxdb.sh stop; rm -rf $INFLUX_STATE) or fix FOREWARN_INFLUX_ORG" ;;
    401 | 403) fw_die "InfluxDB in $INFLUX_STATE was onboarded with another token: set FOREWARN_INFLUX_TOKEN to it, or wipe it (influxdb.sh stop; rm -rf $INFLUX_STATE)" ;;
    *) fw_die "GET /api/v2/buckets answered HTTP $CODE: $(api_message "$BODY")" ;;
    esac
    if [[ $CODE == 200 && $BODY =~ \"name\":\ *$bucket ]]; then
        return 0
    fi
    local orgid
    r=$(api GET "/api/v2/orgs?org=$(urlenc "$FOREWARN_INFLUX_ORG")" auth) || fw_die "GET /api/v2/orgs failed"
    split_response "$r"
    orgid=""
    [[ $BODY =~ \"id\":\ *\"([0-9a-f]+)\" ]] && orgid=${BASH_REMATCH[1]}
    [[ $CODE == 200 && -n $orgid ]] || fw_die "cannot find org '$FOREWARN_INFLUX_ORG' (HTTP $CODE)"
    r=$(printf '{"orgID":"%s","name":%s,"retentionRules":[]}' "$orgid" "$bucket" | api POST /api/v2/buckets auth) ||
        fw_die "POST /api/v2/buckets failed"
    split_response "$r"
    [[ $CODE == 201 ]] || fw_die "creating bucket '$FOREWARN_INFLUX_BUCKET' answered HTTP $CODE: $(api_message "$BODY")"
    fw_info "created bucket '$FOREWARN_INFLUX_BUCKET' in org '$FOREWARN_INFLUX_ORG'"
}

urlenc() { # percent-encode a query parameter value
    local s=$1 out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        [a-zA-Z0-9.~_-]) out+=$c ;;
        *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

######################################## lifecycle ########################################

influx_wait_ready() {
    local pid=$1 start=$2 deadline=$((SECONDS + INFLUX_START_TIMEOUT))
    until influx_health_ok; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$INFLUX_PIDFILE"
            fw_die_with_log "$INFLUX_LOG" "influxd exited during start"
        fi
        ((SECONDS < deadline)) || fw_die_with_log "$INFLUX_LOG" "influxd (pid $pid) not healthy after ${INFLUX_START_TIMEOUT}s"
        sleep 0.2
    done
    influx_onboard
    fw_info "up: pid $pid, $INFLUX_BASE (org '$FOREWARN_INFLUX_ORG', bucket '$FOREWARN_INFLUX_BUCKET'), ready in $(fw_elapsed "$start")"
}

influx_start() {
    local start=$SECONDS pid
    fw_check_loopback "$INFLUX_HOST"
    fw_require_cmd curl "apt-get install -y curl"
    fw_lock influxdb
    mkdir -p "$INFLUX_STATE"
    if pid=$(fw_running_pid "$INFLUX_PIDFILE" "$INFLUX_BOLT" "$INFLUX_PORT"); then
        influx_wait_ready "$pid" "$start"
        return 0
    fi
    fw_ensure_port_free "$INFLUX_PORT" "InfluxDB HTTP"
    influx_install
    mkdir -p "$INFLUX_LOGS" "$INFLUX_STATE/engine"
    # keep one previous log
    [[ -s $INFLUX_LOG ]] && mv "$INFLUX_LOG" "$INFLUX_LOG.1"
    : >"$INFLUX_LOG"
    fw_spawn "$INFLUX_PIDFILE" "$INFLUX_LOG" env INFLUXD_CONFIG_PATH="$INFLUX_MODULE_DIR/config.toml" \
        "$INFLUXD" run \
        --bolt-path "$INFLUX_BOLT" \
        --engine-path "$INFLUX_STATE/engine" \
        --sqlite-path "$INFLUX_STATE/influxd.sqlite" \
        --http-bind-address "$INFLUX_HOST:$INFLUX_PORT" \
        --reporting-disabled
    pid=$(<"$INFLUX_PIDFILE")
    fw_info "started pid $pid; waiting for $INFLUX_BASE/health (deadline ${INFLUX_START_TIMEOUT}s)"
    influx_wait_ready "$pid" "$start"
}

influx_stop() {
    local pid
    fw_lock influxdb
    if pid=$(fw_running_pid "$INFLUX_PIDFILE" "$INFLUX_BOLT" "$INFLUX_PORT"); then
        fw_info "stopping pid $pid"
        fw_stop_pid "$pid" influxd 30
        rm -f "$INFLUX_PIDFILE"
        fw_wait_ports_closed influxdb "$INFLUX_PORT"
        fw_info "down"
    else
        rm -f "$INFLUX_PIDFILE"
        fw_wait_ports_closed influxdb "$INFLUX_PORT"
        fw_info "down (was not running)"
    fi
}

# One line; exit 0 only when up (our process alive and /health = pass).
influx_status() {
    local pid
    if pid=$(fw_running_pid "$INFLUX_PIDFILE" "$INFLUX_BOLT" "$INFLUX_PORT") && influx_health_ok; then
        printf 'influxdb  up    pid %-7s %s:%s influxdb %s\n' "$pid" "$INFLUX_HOST" "$INFLUX_PORT" "$INFLUX_VERSION"
        return 0
    fi
    if [[ -n ${pid:-} ]]; then
        printf 'influxdb  down  pid %-7s %s:%s not healthy (starting or broken; see %s)\n' \
            "$pid" "$INFLUX_HOST" "$INFLUX_PORT" "$INFLUX_LOG"
    elif fw_port_listening "$INFLUX_PORT"; then
        printf 'influxdb  down  pid -       %s:%s held by %s (not ours)\n' \
            "$INFLUX_HOST" "$INFLUX_PORT" "$(fw_describe_pid "$(fw_port_owner "$INFLUX_PORT")")"
    else
        printf 'influxdb  down  pid -       %s:%s\n' "$INFLUX_HOST" "$INFLUX_PORT"
    fi
    return 1
}

case ${1:-} in
install)
    fw_lock influxdb
    influx_install
    ;;
start) influx_start ;;
stop) influx_stop ;;
status) influx_status ;;
logs)
    follow=0
    [[ ${2:-} == -f ]] && follow=1
    fw_show_logs "$follow" "$INFLUX_LOG"
    ;;
*)
    echo "usage: $0 install|start|stop|status|logs [-f]" >&2
    exit 2
    ;;
esac
