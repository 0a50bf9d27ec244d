#!/usr/bin/env bash
# Both local servers at once (what `make up/down/status/logs` call):
#
#   infra/local/servers.sh up       install if needed, start Kafka and InfluxDB, wait until both are ready
#   infra/local/servers.sh down     stop both; no process and no listening port left behind
#   infra/local/servers.sh status   one line per server; exit 0 only if both are up
#   infra/local/servers.sh logs [-f]  last lines of both servers' logs (-f: follow)
#   infra/local/servers.sh install  obtain/build both into the cache without starting them
#
# Every command is idempotent. See docs/infra.md.
set -euo pipefail

FW_COMPONENT=servers
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_SH=$FW_INFRA_DIR/kafka.sh
INFLUX_SH=$FW_INFRA_DIR/influxdb.sh

# both ACTION: run `kafka.sh ACTION` and `influxdb.sh ACTION` side by side
# (their startups overlap: a warm `up` costs the slower of the two, not the
# sum); fail if either fails.
both() {
    local action=$1 kpid ipid krc=0 irc=0
    bash "$KAFKA_SH" "$action" &
    kpid=$!
    bash "$INFLUX_SH" "$action" &
    ipid=$!
    wait "$kpid" || krc=$?
    wait "$ipid" || irc=$?
    if ((krc != 0 || irc != 0)); then
        fw_die "$action failed:$( ((krc != 0)) && printf ' kafka')$( ((irc != 0)) && printf ' influxdb')"
    fi
}

case ${1:-} in
up)
    start=$SECONDS
    both start
    fw_info "up in $(fw_elapsed "$start"): Kafka $FOREWARN_KAFKA_BOOTSTRAP, InfluxDB $FOREWARN_INFLUX_URL"
    ;;
down)
    both stop
    ;;
install)
    both install
    ;;
status)
    rc=0
    bash "$KAFKA_SH" status || rc=1
    bash "$INFLUX_SH" status || rc=1
    exit "$rc"
    ;;
logs)
    follow=0
    [[ ${2:-} == -f ]] && follow=1
    kafka_logs=$FOREWARN_STATE_DIR/kafka/logs
    fw_show_logs "$follow" "$kafka_logs/server.log" "$kafka_logs/kafka.out" \
        "$FOREWARN_STATE_DIR/influxdb/logs/influxd.log"
    ;;
*)
    echo "usage: $0 up|down|status|logs [-f]|install" >&2
    exit 2
    ;;
esac
