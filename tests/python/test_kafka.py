"""Kafka end to end with an independent client (confluent-kafka, librdkafka from PyPI):
inference logs produced over 3 partitions with skewed event times give the file source's
windows, and the drift results written to a sink topic are read back and checked.

Needs the broker of scripts/kafka.sh (DRIFTWATCH_KAFKA, default 127.0.0.1:9092) and the
driftwatch binary (DRIFTWATCH_BIN); scripts/test.sh provides both."""
import csv
import io
import json
import os
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
BROKERS = os.environ.get("DRIFTWATCH_KAFKA", "127.0.0.1:9092")
BIN = os.environ.get("DRIFTWATCH_BIN", str(ROOT / "target/debug/driftwatch"))
T0 = 1_767_225_600_000
COLUMNS = ("request_id VARCHAR, ts TIMESTAMP, sepal_length DOUBLE, sepal_width DOUBLE, "
           "petal_length DOUBLE, petal_width DOUBLE")


def create_topic(name, partitions):
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(timeout=30)


def rows(n=4000, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal([5.84, 3.05, 3.76, 1.20], [0.83, 0.43, 1.76, 0.76], size=(n, 4))
    x[n // 2:, 2] += 1.5
    ts = T0 + np.arange(n) * 16_000 // n
    return [(int(ts[i]), f"r{i}", [round(float(v), 3) for v in x[i]]) for i in range(n)]


def run(tmp, name, source_with, monitors):
    sql = tmp / f"{name}.sql"
    sql.write_text(
        f"CREATE SOURCE iris ({COLUMNS}, WATERMARK FOR ts AS ts - INTERVAL '1 second') "
        f"WITH ({source_with});\n{monitors}")
    data = tmp / name
    subprocess.run([BIN, "run", str(sql), "--data-dir", str(data)], check=True, timeout=300,
                   stdout=subprocess.DEVNULL)
    return data


def query(data, sql):
    out = subprocess.run([BIN, "query", sql, "--data-dir", str(data), "--format", "csv"],
                         check=True, capture_output=True, text=True, timeout=120)
    return [r for r in csv.reader(io.StringIO(out.stdout)) if r]


def same_table(a, b):
    assert len(a) == len(b), (a, b)
    for ra, rb in zip(a, b):
        for ca, cb in zip(ra, rb):
            try:
                assert abs(float(ca) - float(cb)) <= 1e-9 * max(1.0, abs(float(ca)))
            except ValueError:
                assert ca == cb, (ra, rb)


def test_python_produced_inference_logs_match_file_windows_and_reach_the_sink(tmp_path):
    data = rows()
    topic, out = f"py-iris-{uuid.uuid4().hex[:8]}", f"py-drift-{uuid.uuid4().hex[:8]}"
    create_topic(topic, 3)
    create_topic(out, 1)
    producer = Producer({"bootstrap.servers": BROKERS, "linger.ms": 5})
    n = len(data)
    for i, (ts, rid, x) in enumerate(data):
        # Skew: partition p holds the p-th third of event time.
        time_s = datetime.fromtimestamp(ts / 1000, tz=timezone.utc).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        env = {"type": "request", "id": rid, "time": time_s, "payload": {"instances": [x]}}
        producer.produce(topic, json.dumps(env).encode(), key=rid, partition=i * 3 // n)
    assert producer.flush(30) == 0

    file = tmp_path / "rows.jsonl"
    file.write_text("".join(json.dumps({"request_id": rid, "ts": ts, "sepal_length": x[0],
                                        "sepal_width": x[1], "petal_length": x[2],
                                        "petal_width": x[3]}) + "\n" for ts, rid, x in data))
    train = ROOT / "examples/iris/train.csv"
    monitors = (
        f"CREATE BASELINE train FROM '{train}';\n"
        "CREATE MONITOR stats {sink} AS SELECT window_start, window_end, count(*) AS n, "
        "avg(petal_length) AS pl, stddev(sepal_width) AS sw FROM TUMBLE(iris, ts, INTERVAL '2 seconds') "
        "GROUP BY window_start, window_end;\n"
        "CREATE MONITOR drift AS SELECT window_start, window_end, feature, "
        "wasserstein(value, 'train', feature) AS w FROM TUMBLE(features(iris), ts, "
        "INTERVAL '4 seconds') GROUP BY window_start, window_end, feature;\n")
    from_file = run(tmp_path, "file",
                    f"connector = 'file', path = '{file}', format = 'jsonl', "
                    "time_format = 'epoch_ms'", monitors.format(sink=""))
    sink = f"WITH (sink = 'kafka', topic = '{out}', brokers = '{BROKERS}')"
    from_kafka = run(tmp_path, "kafka",
                     f"connector = 'kafka', brokers = '{BROKERS}', topic = '{topic}', "
                     f"group_id = 'py-{uuid.uuid4().hex[:8]}', format = 'inference-log', "
                     "stop_at_end = 'true'", monitors.format(sink=sink))
    for q in ["SELECT * FROM stats ORDER BY window_start",
              "SELECT * FROM drift ORDER BY window_start, feature",
              "SELECT count(*) FROM stats_late"]:
        same_table(query(from_kafka, q), query(from_file, q))
    stats = query(from_file, "SELECT window_start, n FROM stats ORDER BY window_start")[1:]
    assert sum(int(r[1]) for r in stats) == n and len(stats) == 8

    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": f"py-read-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([out])
    got, deadline = [], time.time() + 30
    while len(got) < len(stats) and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append(m)
    consumer.close()
    assert len(got) == len(stats)
    values = [json.loads(m.value()) for m in got]
    assert sorted(v["n"] for v in values) == sorted(int(r[1]) for r in stats)
    assert all(m.key().decode().startswith("stats|") for m in got)
    assert len({m.key() for m in got}) == len(got)
