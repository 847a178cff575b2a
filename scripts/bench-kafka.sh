#!/usr/bin/env bash
# Kafka source throughput (issue 4): sustained rows/s from a pre-filled topic (N Iris-like
# JSON rows from shared/anchors/gen_events.py, 3 partitions) through a stats + drift monitor,
# next to the broker-only consume rate measured with the same client library (rdkafka) in
# the same run. Target: Driftwatch >= 80 % of broker-only.
#
#   scripts/bench-kafka.sh [ROWS]      (default 2000000)
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-2000000}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="${DRIFTWATCH_VENV:-$CACHE/venv}"
export DRIFTWATCH_KAFKA="${DRIFTWATCH_KAFKA:-127.0.0.1:9092}"
GEN="${DRIFTWATCH_GEN_EVENTS:-../shared/anchors/gen_events.py}"
[ -f "$GEN" ] || GEN=/work/shared/anchors/gen_events.py

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy "confluent-kafka>=2.6"
scripts/kafka.sh start
cargo build --release --locked --bin driftwatch --example kafka_consume_rate

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TOPIC="bench-$(date +%s)"
echo "== generating $ROWS rows"
"$VENV/bin/python" "$GEN" "$WORK/rows" "$ROWS" 10000 20
echo "== producing to $TOPIC (3 partitions)"
"$VENV/bin/python" - "$WORK/rows" "$TOPIC" <<'PY'
import glob, sys, time
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
import os
brokers = os.environ["DRIFTWATCH_KAFKA"]
rows, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": brokers})
for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
    f.result()
p = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000,
              "queue.buffering.max.messages": 1000000, "compression.type": "none"})
start, n = time.time(), 0
for path in sorted(glob.glob(rows + "/*.json")):
    with open(path, "rb") as fh:
        for line in fh:
            while True:
                try:
                    p.produce(topic, line.rstrip(b"\n"), partition=n % 3)
                    break
                except BufferError:
                    p.poll(0.05)
            n += 1
            if n % 10000 == 0:
                p.poll(0)
assert p.flush(120) == 0
print(f"produced {n} messages in {time.time() - start:.1f} s")
PY

echo "== broker-only consume rate (rdkafka, same library)"
read -r B_N B_S B_RATE _ < <("$CARGO_TARGET_DIR/release/examples/kafka_consume_rate" "$DRIFTWATCH_KAFKA" "$TOPIC" "$ROWS")
echo "broker-only: $B_N messages in $B_S s = $B_RATE msg/s"

cat >"$WORK/bench.sql" <<SQL
CREATE SOURCE iris (request_id VARCHAR, ts TIMESTAMP, sepal_length DOUBLE, sepal_width DOUBLE,
    petal_length DOUBLE, petal_width DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '6 seconds')
WITH (connector = 'kafka', brokers = '$DRIFTWATCH_KAFKA', topic = '$TOPIC', group_id = 'bench-$TOPIC',
      time_format = 'epoch_ms', stop_at_end = 'true', batch_size = '16384', linger = '50 ms');
CREATE BASELINE iris_train FROM '$PWD/examples/iris/train.csv';
CREATE MONITOR stats AS
SELECT window_start, window_end, count(*) AS n, avg(sepal_length), stddev(sepal_length),
       avg(petal_length), stddev(petal_length)
FROM TUMBLE(iris, ts, INTERVAL '15 seconds') GROUP BY window_start, window_end;
CREATE MONITOR drift AS
SELECT window_start, window_end, feature, wasserstein_norm(value, 'iris_train', feature) AS w,
       ks_pvalue(value, 'iris_train', feature) AS ks_p
FROM HOP(features(iris), ts, INTERVAL '5 seconds', INTERVAL '15 seconds')
GROUP BY window_start, window_end, feature;
SQL
echo "== driftwatch: stats + drift monitors over the topic"
START=$(date +%s.%N)
RUST_LOG=warn "$CARGO_TARGET_DIR/release/driftwatch" run "$WORK/bench.sql" --data-dir "$WORK/data" --quiet >/dev/null
END=$(date +%s.%N)
COUNTED=$("$CARGO_TARGET_DIR/release/driftwatch" query "SELECT sum(n) AS rows FROM stats" \
    --data-dir "$WORK/data" --format csv 2>/dev/null | sed -n 2p)
echo "rows counted by the stats monitor: $COUNTED"
[ "$COUNTED" = "$ROWS" ] || { echo "expected $ROWS rows in the stats windows" >&2; exit 1; }
"$VENV/bin/python" - "$ROWS" "$START" "$END" "$B_RATE" <<'PY'
import sys
rows, start, end, broker = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
secs = end - start
rate = rows / secs
print(f"driftwatch:  {rows} rows in {secs:.2f} s = {rate:,.0f} rows/s (wall time incl. start-up)")
print(f"broker-only: {broker:,.0f} msg/s")
print(f"ratio: {100 * rate / broker:.0f} % (target >= 80 %)")
PY
