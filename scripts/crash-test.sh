#!/usr/bin/env bash
# The long crash test: 1 000 000 events over 3 Kafka partitions through TUMBLE (grouped),
# HOP, SESSION and row-level monitors with a Kafka sink, the release binary killed with
# SIGKILL at 10 random moments and restarted after each; then the same over the HTTP ingest,
# SIGTERM mid-window, and a broker restart. Every result table and the sink topic (read with
# read_committed) must equal those of an uninterrupted run. CI runs the same tests with
# 400 000 events and the debug binary (scripts/test.sh).
#
#   scripts/crash-test.sh [EVENTS] [KILLS] [SEED]
#
# Starts its own fresh broker (tansu, SQLite) on 127.0.0.1:9193 so the data of other runs
# does not slow it down.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS="${1:-1000000}"
KILLS="${2:-10}"
SEED="${3:-7}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="${DRIFTWATCH_VENV:-$CACHE/venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
cargo build --release --locked --quiet

export DRIFTWATCH_KAFKA=127.0.0.1:9193
export TANSU_DATA="$CACHE/crash-broker" TANSU_PIDFILE="$CACHE/crash-broker.pid" TANSU_LOG="$CACHE/crash-broker.log"
scripts/kafka.sh start
trap 'scripts/kafka.sh stop >/dev/null 2>&1' EXIT

export DRIFTWATCH_BIN="$CARGO_TARGET_DIR/release/driftwatch"
export DRIFTWATCH_TANSU="$CACHE/tansu/bin/tansu"
export DRIFTWATCH_CRASH_EVENTS="$EVENTS" DRIFTWATCH_CRASH_KILLS="$KILLS" DRIFTWATCH_CRASH_SEED="$SEED"
echo "crash test: $EVENTS events, $KILLS kills, seed $SEED, binary $DRIFTWATCH_BIN"
start=$SECONDS
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider tests/python/test_crash.py
echo "crash test passed in $((SECONDS - start)) s"
