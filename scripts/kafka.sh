#!/usr/bin/env bash
# A real Kafka-protocol broker for development and tests: tansu (crates.io), storing records
# in SQLite under the cache (wiped at every start).
#
# Why SQLite and not tansu's `memory://` engine: that engine (dynostore) answers a fetch at an
# offset inside a stored record batch with the batches *after* it, so a consumer resuming
# mid-batch — from a committed offset, a checkpoint, or simply the next fetch after a
# partial response — silently skips the rest of that batch (tansu 0.6
# `dynostore.rs`: `offsets.split_off(&offset)`). The SQLite engine stores records one by one
# and fetches exactly from the requested offset; it is also durable across broker restarts.
#
#   scripts/kafka.sh install   # cargo install tansu into the cache, only when missing (~11 min cold)
#   scripts/kafka.sh start     # install if needed, start on 127.0.0.1:9092, wait until it answers
#   scripts/kafka.sh stop      # stop the broker this script started
#   scripts/kafka.sh status    # exit 0 when a broker answers on the address
#
# Environment:
#   DRIFTWATCH_KAFKA  host:port (default 127.0.0.1:9092), also read by the tests
#   DRIFTWATCH_BROKER tansu (default) or nisshi, tansu's successor (0.6.0 by default), whose
#                     group coordinator expires a member killed with -9 and hands its
#                     partitions to the survivors (tansu 0.6 keeps the old assignment)
#   TANSU_ROOT        install root (default ~/.cache/driftwatch/tansu, or .../nisshi)
#   TANSU_VERSION     crate version to install (default 0.6.0 for either)
#   TANSU_DATA        directory of the broker's SQLite database (default ~/.cache/driftwatch/tansu-data)
#   TANSU_PIDFILE, TANSU_LOG  pid and log files (a second broker needs its own)
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
BROKER="${DRIFTWATCH_BROKER:-tansu}"
case "$BROKER" in
    # Both at 0.6.0: nisshi 0.6.0 is the newest this toolchain builds (0.7+ needs rustc
    # 1.96), and it has the group-expiry fix tansu 0.6 lacks. Same features, same CLI.
    tansu | nisshi) ;;
    *) echo "DRIFTWATCH_BROKER must be tansu or nisshi, not '$BROKER'" >&2; exit 2 ;;
esac
TANSU_ROOT="${TANSU_ROOT:-$CACHE/$BROKER}"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TANSU="$TANSU_ROOT/bin/$BROKER"
ADDR="${DRIFTWATCH_KAFKA:-127.0.0.1:9092}"
HOST="${ADDR%:*}"
PORT="${ADDR##*:}"
PIDFILE="${TANSU_PIDFILE:-$CACHE/tansu.pid}"
TANSU_DATA="${TANSU_DATA:-$CACHE/tansu-data}"
LOG="${TANSU_LOG:-$CACHE/tansu.log}"
mkdir -p "$CACHE"

answers() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

install() {
    if [ -x "$TANSU" ]; then
        return 0
    fi
    echo "installing $BROKER $TANSU_VERSION into $TANSU_ROOT (cold: about 11 minutes on 2 cores)"
    local start=$SECONDS
    # A private target dir: never contends with the workspace build lock.
    CARGO_TARGET_DIR="$CACHE/$BROKER-build" cargo install --root "$TANSU_ROOT" "$BROKER" \
        --version "$TANSU_VERSION" --locked --features dynostore,libsql
    rm -rf "$CACHE/$BROKER-build"
    echo "$BROKER installed in $((SECONDS - start)) s"
}

start() {
    if answers; then
        echo "a broker already answers on $ADDR"
        return 0
    fi
    install
    rm -rf "$TANSU_DATA"
    mkdir -p "$TANSU_DATA"
    echo "starting $BROKER on $ADDR (SQLite in $TANSU_DATA, log: $LOG)"
    # The SQLite path is relative to the working directory. `cd` runs before the `&`, so
    # `$!` is the broker itself (not a subshell around it) and `stop` stops the broker.
    (cd "$TANSU_DATA" || exit 1
        nohup "$TANSU" broker \
        --listener-url "tcp://$ADDR" \
        --advertised-listener-url "tcp://$ADDR" \
        --storage-engine sqlite://tansu.db >"$LOG" 2>&1 &
        echo $! >"$PIDFILE")
    for _ in $(seq 1 100); do
        if answers; then
            echo "$BROKER is up (pid $(cat "$PIDFILE"))"
            return 0
        fi
        if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            echo "$BROKER exited; last log lines:" >&2
            tail -20 "$LOG" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$BROKER did not answer on $ADDR within 10 s" >&2
    return 1
}

stop() {
    if [ -f "$PIDFILE" ]; then
        local pid
        pid=$(cat "$PIDFILE")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            echo "$BROKER stopped"
        fi
        rm -f "$PIDFILE"
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status)
        if answers; then echo "broker answers on $ADDR"; else echo "no broker on $ADDR"; exit 1; fi
        ;;
    *)
        echo "usage: $0 install|start|stop|status" >&2
        exit 2
        ;;
esac
