#!/usr/bin/env bash
# Apache Kafka 4.x (KRaft, single combined broker+controller) on loopback, no Docker.
#
#   infra/local/kafka.sh install|start|stop|status|logs [-f]
#   infra/local/kafka.sh tool <main-class> [args...]   run a Kafka tool with the cached classpath
#
# install: resolve the broker's jars from Maven Central into
#          $FOREWARN_CACHE_DIR/kafka-<version>/libs (once; cached).
# start:   install if needed, format storage on first run, start, wait until the
#          broker answers an ApiVersions request. Idempotent.
# See docs/infra.md.
set -euo pipefail

FW_COMPONENT=kafka
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_VERSION=${FOREWARN_KAFKA_VERSION:-4.1.2}
KAFKA_HOME=$FOREWARN_CACHE_DIR/kafka-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs
KAFKA_STATE=$FOREWARN_STATE_DIR/kafka
KAFKA_DATA=$KAFKA_STATE/data
KAFKA_LOGS=$KAFKA_STATE/logs
KAFKA_CONFIG=$KAFKA_STATE/server.properties
KAFKA_PIDFILE=$KAFKA_STATE/kafka.pid
KAFKA_OUT=$KAFKA_LOGS/kafka.out
KAFKA_START_TIMEOUT=${FOREWARN_KAFKA_START_TIMEOUT:-90}
read -r KAFKA_HOST KAFKA_PORT < <(fw_hostport "$FOREWARN_KAFKA_BOOTSTRAP")
[[ ${KAFKA_PORT:-} =~ ^[0-9]+$ ]] || fw_die "FOREWARN_KAFKA_BOOTSTRAP must be host:port, got '$FOREWARN_KAFKA_BOOTSTRAP'"
# The controller listener takes the next port (9092 -> 9093).
KAFKA_CONTROLLER_PORT=${FOREWARN_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
[[ $KAFKA_HOST == localhost ]] && KAFKA_HOST=127.0.0.1

JAVA=""
# Find a Java 17+ (Kafka 4 brokers need 17): $JAVA_HOME, then PATH, then Temurin 25.
kafka_find_java() {
    [[ -n $JAVA ]] && return 0
    local candidates=() c major
    [[ -n ${JAVA_HOME:-} ]] && candidates+=("$JAVA_HOME/bin/java")
    c=$(command -v java 2>/dev/null || true)
    [[ -n $c ]] && candidates+=("$c")
    candidates+=(/usr/lib/jvm/temurin-25-jdk-amd64/bin/java)
    for c in "${candidates[@]}"; do
        [[ -x $c ]] || continue
        major=$("$c" -version 2>&1 | sed -n '/version "/{s/.*version "\([0-9]*\)[."].*/\1/p;q;}')
        if [[ -n $major ]] && ((major >= 17)); then
            JAVA=$c
            return 0
        fi
    done
    fw_die "Java 17 or newer not found (tried \$JAVA_HOME, PATH, Temurin 25): install openjdk-17-jre-headless or set JAVA_HOME"
}

# Small, fast-starting JVM for tools (probe, topic admin, console clients).
kafka_tool() {
    local main=$1
    shift
    kafka_find_java
    "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$FW_INFRA_DIR/kafka/tools-log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$main" "$@"
}

kafka_install() {
    if [[ -f $KAFKA_HOME/.complete ]]; then
        return 0
    fi
    fw_require_cmd mvn "install Maven (apt-get install -y maven); it resolves Kafka's jars from Maven Central"
    kafka_find_java
    local start=$SECONDS log=$KAFKA_HOME/install.log tmp=$KAFKA_HOME/libs.tmp jar
    mkdir -p "$KAFKA_HOME"
    rm -rf "$tmp"
    fw_info "installing Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_HOME (log: $log)"
    if ! mvn -B -f "$FW_INFRA_DIR/kafka/pom.xml" \
        -Dkafka.version="$KAFKA_VERSION" \
        -Dmaven.repo.local="$FOREWARN_CACHE_DIR/m2" \
        -DoutputDirectory="$tmp" -DincludeScope=runtime \
        dependency:copy-dependencies >"$log" 2>&1; then
        fw_die_with_log "$log" "resolving Kafka $KAFKA_VERSION jars with mvn failed"
    fi
    for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" \
        "kafka-clients-$KAFKA_VERSION.jar"; do
        [[ -f $tmp/$jar ]] || fw_die_with_log "$log" "mvn finished but $jar is missing from $tmp"
    done
    if ! compgen -G "$tmp/log4j-core-*.jar" >/dev/null || ! compgen -G "$tmp/log4j-slf4j-impl-*.jar" >/dev/null; then
        fw_die_with_log "$log" "log4j-core / log4j-slf4j-impl missing from $tmp"
    fi
    # Smoke test: the classpath loads kafka.tools.StorageTool (same jar as kafka.Kafka).
    if ! "$JAVA" -cp "$tmp/*" -Dlog4j2.configurationFile="$FW_INFRA_DIR/kafka/tools-log4j2.properties" \
        kafka.tools.StorageTool random-uuid >>"$log" 2>&1; then
        fw_die_with_log "$log" "resolved jars do not run kafka.tools.StorageTool"
    fi
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    printf '%s\n' "$KAFKA_VERSION" >"$KAFKA_HOME/.complete"
    fw_info "installed Kafka $KAFKA_VERSION ($(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars) in $(fw_elapsed "$start")"
}

kafka_render_config() {
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    sed -e "s|@HOST@|$KAFKA_HOST|g" \
        -e "s|@BROKER_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$KAFKA_DATA|g" \
        "$FW_INFRA_DIR/kafka/server.properties.in" >"$KAFKA_CONFIG.tmp"
    mv "$KAFKA_CONFIG.tmp" "$KAFKA_CONFIG"
}

# First start only: give the data dir a cluster id and the KRaft metadata log.
kafka_format_storage() {
    [[ -f $KAFKA_DATA/meta.properties ]] && return 0
    local id_file=$KAFKA_STATE/cluster.id log=$KAFKA_LOGS/format.log
    if [[ ! -s $id_file ]]; then
        kafka_tool kafka.tools.StorageTool random-uuid >"$id_file.tmp" 2>"$log" ||
            fw_die_with_log "$log" "kafka.tools.StorageTool random-uuid failed"
        mv "$id_file.tmp" "$id_file"
    fi
    fw_info "formatting KRaft storage in $KAFKA_DATA (cluster id $(<"$id_file"))"
    kafka_tool kafka.tools.StorageTool format --config "$KAFKA_CONFIG" \
        --cluster-id "$(<"$id_file")" --ignore-formatted >>"$log" 2>&1 ||
        fw_die_with_log "$log" "formatting Kafka storage failed"
}

# Readiness: the broker answers an ApiVersions request on the PLAINTEXT
# listener (a TCP connect alone is not enough: the socket opens before the
# broker has caught up with the metadata log).
kafka_probe() {
    local out
    out=$(timeout 30 "$JAVA" -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$FW_INFRA_DIR/kafka/tools-log4j2.properties" \
        -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
        --bootstrap-server "$KAFKA_HOST:$KAFKA_PORT" \
        --command-config "$KAFKA_STATE/probe.properties" 2>&1) || return 1
    [[ $out == *"$KAFKA_HOST:$KAFKA_PORT (id: 1 "* ]]
}

# kafka_wait_ready PID START [LOG_LINE]: poll until ready or the deadline.
# When LOG_LINE is given (a fresh start), the JVM probe only runs once
# server.log past that line says "Kafka Server started": on 2 busy cores each
# probe costs seconds of CPU that the starting broker needs.
kafka_wait_ready() {
    local pid=$1 start=$2 from=${3:-} deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=8000\nretry.backoff.ms=200\n' \
        >"$KAFKA_STATE/probe.properties"
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$KAFKA_PIDFILE"
            printf '%s: error: Kafka exited during start (logs: %s, %s)\n' "$FW_COMPONENT" \
                "$KAFKA_OUT" "$KAFKA_LOGS/server.log" >&2
            fw_tail "$KAFKA_OUT" 15
            if [[ -n $from ]] && tail -n "+$from" "$KAFKA_LOGS/server.log" >"$KAFKA_LOGS/last-start.log" 2>/dev/null; then
                fw_tail "$KAFKA_LOGS/last-start.log" 25
            fi
            exit 1
        fi
        # (awk, not tail|grep -q: an early-exiting reader would SIGPIPE the
        # writer and, under pipefail, turn a match into a miss)
        if [[ -n $from ]] && ! awk -v from="$from" 'NR >= from && /Kafka Server started/ { found = 1 }
                END { exit !found }' "$KAFKA_LOGS/server.log" 2>/dev/null; then
            sleep 0.2
            continue
        fi
        if fw_port_listening "$KAFKA_PORT" && kafka_probe; then
            fw_info "up: pid $pid, $KAFKA_HOST:$KAFKA_PORT (controller :$KAFKA_CONTROLLER_PORT), ready in $(fw_elapsed "$start")"
            return 0
        fi
        sleep 0.3
    done
    fw_die_with_log "$KAFKA_LOGS/server.log" "Kafka (pid $pid) not ready after ${KAFKA_START_TIMEOUT}s"
}

kafka_start() {
    local start=$SECONDS pid
    fw_check_loopback "$KAFKA_HOST"
    fw_lock kafka
    mkdir -p "$KAFKA_STATE"
    if pid=$(fw_running_pid "$KAFKA_PIDFILE" "$KAFKA_CONFIG" "$KAFKA_PORT"); then
        kafka_find_java
        kafka_wait_ready "$pid" "$start" # already up: returns at the first probe
        return 0
    fi
    fw_ensure_port_free "$KAFKA_PORT" "Kafka broker"
    fw_ensure_port_free "$KAFKA_CONTROLLER_PORT" "Kafka controller"
    kafka_install
    kafka_find_java
    kafka_render_config
    kafka_format_storage
    : >"$KAFKA_OUT"
    local from=1
    [[ -f $KAFKA_LOGS/server.log ]] && from=$(($(wc -l <"$KAFKA_LOGS/server.log") + 1))
    # shellcheck disable=SC2086 # heap options are a word list
    fw_spawn "$KAFKA_PIDFILE" "$KAFKA_OUT" "$JAVA" \
        ${FOREWARN_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dkafka.logs.dir="$KAFKA_LOGS" \
        -Dlog4j2.configurationFile="$FW_INFRA_DIR/kafka/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG"
    pid=$(<"$KAFKA_PIDFILE")
    fw_info "started pid $pid; waiting for the broker on $KAFKA_HOST:$KAFKA_PORT (deadline ${KAFKA_START_TIMEOUT}s)"
    kafka_wait_ready "$pid" "$start" "$from"
}

kafka_stop() {
    local pid
    fw_lock kafka
    if pid=$(fw_running_pid "$KAFKA_PIDFILE" "$KAFKA_CONFIG" "$KAFKA_PORT"); then
        fw_info "stopping pid $pid"
        fw_stop_pid "$pid" kafka 60
        rm -f "$KAFKA_PIDFILE"
        fw_wait_ports_closed kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
        fw_info "down"
    else
        rm -f "$KAFKA_PIDFILE"
        fw_wait_ports_closed kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
        fw_info "down (was not running)"
    fi
}

# One line; exit 0 only when up (our process alive and the broker port open).
kafka_status() {
    local pid
    if pid=$(fw_running_pid "$KAFKA_PIDFILE" "$KAFKA_CONFIG" "$KAFKA_PORT") &&
        fw_port_listening "$KAFKA_PORT"; then
        printf 'kafka     up    pid %-7s %s:%s (controller :%s) kafka %s\n' \
            "$pid" "$KAFKA_HOST" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$KAFKA_VERSION"
        return 0
    fi
    if [[ -n ${pid:-} ]]; then
        printf 'kafka     down  pid %-7s %s:%s not listening (starting or broken; see %s)\n' \
            "$pid" "$KAFKA_HOST" "$KAFKA_PORT" "$KAFKA_LOGS/server.log"
    elif fw_port_listening "$KAFKA_PORT"; then
        printf 'kafka     down  pid -       %s:%s held by %s (not ours)\n' \
            "$KAFKA_HOST" "$KAFKA_PORT" "$(fw_describe_pid "$(fw_port_owner "$KAFKA_PORT")")"
    else
        printf 'kafka     down  pid -       %s:%s\n' "$KAFKA_HOST" "$KAFKA_PORT"
    fi
    return 1
}

usage() {
    echo "usage: $0 install|start|stop|status|logs [-f]|tool <main-class> [args...]" >&2
    exit 2
}

case ${1:-} in
install)
    fw_lock kafka
    kafka_install
    ;;
start) kafka_start ;;
stop) kafka_stop ;;
status) kafka_status ;;
logs)
    follow=0
    [[ ${2:-} == -f ]] && follow=1
    fw_show_logs "$follow" "$KAFKA_LOGS/server.log" "$KAFKA_OUT"
    ;;
tool)
    [[ $# -ge 2 ]] || usage
    shift
    if [[ ! -f $KAFKA_HOME/.complete ]]; then
        fw_lock kafka
        kafka_install
        exec 8>&- # release the lock: the tool may run for long
    fi
    kafka_tool "$@"
    ;;
*) usage ;;
esac
