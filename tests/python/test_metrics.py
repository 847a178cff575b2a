"""Operations endpoints of the real binary (issue 13): `/metrics` scraped and parsed with the
Prometheus client library, every promised family present with values that match what was
posted, `/health`, `/ready` and `/healthz` on the HTTP port — also when no HTTP source exists."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.flight as fl
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dw_server import (BIN, command_statement_query, free_port, iso, now_ms, stop_process,
                       wait_for)

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

# Family names as the parser reports them (counters without `_total`).
PROMISED = {
    "driftwatch_source_rows": "counter",
    "driftwatch_source_partition_rows": "counter",
    "driftwatch_source_decode_errors": "counter",
    "driftwatch_source_watermark_seconds": "gauge",
    "driftwatch_source_watermark_lag_seconds": "gauge",
    "driftwatch_source_partition_watermark_seconds": "gauge",
    "driftwatch_source_partition_watermark_lag_seconds": "gauge",
    "driftwatch_source_up": "gauge",
    "driftwatch_monitor_rows_out": "counter",
    "driftwatch_monitor_windows": "counter",
    "driftwatch_monitor_late_rows": "counter",
    "driftwatch_monitor_emit_delay_seconds": "histogram",
    "driftwatch_monitor_state_bytes": "gauge",
    "driftwatch_monitor_state_groups": "gauge",
    "driftwatch_monitor_open_windows": "gauge",
    "driftwatch_monitor_up": "gauge",
    "driftwatch_checkpoint_duration_seconds": "histogram",
    "driftwatch_checkpoint_size_bytes": "gauge",
    "driftwatch_checkpoints": "counter",
    "driftwatch_flight_call_duration_seconds": "histogram",
    "driftwatch_http_requests": "counter",
    "driftwatch_ready": "gauge",
}

SQL = """
CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '500 milliseconds')
WITH (connector = 'http');
CREATE MONITOR stats AS
SELECT window_start, window_end, count(*) AS n, avg(x) AS x_avg
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;
CREATE MONITOR by_bucket AS
SELECT window_start, window_end, x > 4 AS high, count(*) AS n
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end, x > 4;
"""


class Run:
    """`driftwatch run` on `sql` with its HTTP and Flight ports."""

    def __init__(self, tmp: Path, sql: str, extra: list[str] | None = None):
        self.http_port, self.flight_port = free_port(), free_port()
        path = tmp / "monitors.sql"
        path.write_text(sql)
        self.log_path = tmp / "driftwatch.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN), "run", str(path), "--data-dir", str(tmp / "data"), "--quiet",
             "--http-listen", f"127.0.0.1:{self.http_port}",
             "--flight-listen", f"127.0.0.1:{self.flight_port}", "--status-every", "0",
             "--checkpoint-interval", "500ms", *(extra or [])],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, str]:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}",
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()

    def post(self, body: bytes) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}/ingest/s", data=body,
                                     headers={"content-type": "application/json"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def scrape(self) -> dict:
        status, headers, body = self.get("/metrics")
        assert status == 200, body
        assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
        return {f.name: f for f in text_string_to_metric_families(body)}

    def stop(self) -> str:
        if self.proc.poll() is None:
            stop_process(self.proc, timeout=30)
        self.log.close()
        return self.log_path.read_text()


def value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    """The one sample of `family` (named `sample`, default the family's own) with `labels`."""
    name = sample or (family + "_total" if families[family].type == "counter" else family)
    found = [s.value for s in families[family].samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family, name, labels, families[family].samples)
    return found[0]


@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path, SQL)
    yield r
    r.stop()


def test_metrics_families_and_values(run):
    wait_for(lambda: run.get("/health")[0] == 200, 60, "/health")
    assert json.loads(run.get("/health")[2])["live"] is True
    assert run.get("/healthz")[0] == 200
    status, _, body = wait_for(lambda: (r := run.get("/ready"))[0] == 200 and r, 60, "/ready")
    assert json.loads(body) == {"ready": True, "not_ready": [], "failed_monitors": []}

    # Five whole seconds in the recent past, 20 rows each: the watermark (last event time
    # minus 500 ms) closes the first four windows; the fifth stays open.
    base = (now_ms() // 1000 - 30) * 1000
    for k in range(5):
        rows = [{"id": f"{k}-{i}", "ts": iso(base + k * 1000 + i * 45), "x": float(i % 10)}
                for i in range(20)]
        assert run.post(json.dumps(rows).encode()) == 200
    assert run.post(b'{"id": "bad", "ts": "not a time", "x": 1}') == 400
    # One late row, into the first (already emitted) window.
    assert run.post(json.dumps([{"id": "late", "ts": iso(base + 10), "x": 1.0}]).encode()) == 200

    def settled():
        m = run.scrape()
        return (value(m, "driftwatch_monitor_windows", monitor="stats") == 4
                and value(m, "driftwatch_monitor_late_rows", monitor="stats") == 1
                and value(m, "driftwatch_checkpoints", result="completed") >= 1
                and value(m, "driftwatch_source_decode_errors", source="s") == 1
                and m)
    m = wait_for(settled, 60, "four windows, a late row, a checkpoint, a decode error")

    # Flight SQL query latency: one query, then its call is in the histogram.
    client = fl.FlightClient(f"grpc://127.0.0.1:{run.flight_port}")
    info = client.get_flight_info(fl.FlightDescriptor.for_command(
        command_statement_query("SELECT count(*) AS n FROM stats")))
    assert client.do_get(info.endpoints[0].ticket).read_all().column("n")[0].as_py() == 4
    client.close()
    m = wait_for(lambda: (s := run.scrape()) and value(
        s, "driftwatch_flight_call_duration_seconds",
        "driftwatch_flight_call_duration_seconds_count", method="do_get", outcome="ok") >= 1
        and s, 30, "the query in the latency histogram")

    missing = {n: t for n, t in PROMISED.items() if n not in m or m[n].type != t}
    assert not missing, (missing, sorted(m))

    assert value(m, "driftwatch_source_rows", source="s") == 101
    assert value(m, "driftwatch_source_partition_rows", source="s", partition="0") == 101
    assert value(m, "driftwatch_http_requests", source="s", code="200") == 6
    assert value(m, "driftwatch_http_requests", source="s", code="400") == 1
    wm = value(m, "driftwatch_source_watermark_seconds", source="s")
    assert wm == pytest.approx((base + 4 * 1000 + 19 * 45 - 500) / 1000)
    assert value(m, "driftwatch_source_partition_watermark_seconds", source="s",
                 partition="0") == pytest.approx(wm)
    lag = value(m, "driftwatch_source_watermark_lag_seconds", source="s")
    assert 0 <= lag < 600, lag
    assert value(m, "driftwatch_source_up", source="s") == 1

    for monitor, rows_per_window in [("stats", 1), ("by_bucket", 2)]:
        windows = value(m, "driftwatch_monitor_windows", monitor=monitor)
        assert windows == 4
        assert value(m, "driftwatch_monitor_rows_out", monitor=monitor) == 4 * rows_per_window
        count = value(m, "driftwatch_monitor_emit_delay_seconds",
                      "driftwatch_monitor_emit_delay_seconds_count", monitor=monitor)
        assert count == windows
        total = value(m, "driftwatch_monitor_emit_delay_seconds",
                      "driftwatch_monitor_emit_delay_seconds_sum", monitor=monitor)
        assert 0 <= total < 60 * windows
        buckets = [s.value for s in m["driftwatch_monitor_emit_delay_seconds"].samples
                   if s.name.endswith("_bucket") and s.labels["monitor"] == monitor]
        assert buckets == sorted(buckets) and buckets[-1] == count
        # The fifth window is open: its accumulators and key are held.
        assert value(m, "driftwatch_monitor_state_bytes", monitor=monitor) > 0
        assert value(m, "driftwatch_monitor_open_windows", monitor=monitor) >= 1
        assert value(m, "driftwatch_monitor_state_groups", monitor=monitor) >= 1
        assert value(m, "driftwatch_monitor_up", monitor=monitor) == 1
    assert value(m, "driftwatch_monitor_late_rows", monitor="by_bucket") == 1
    assert value(m, "driftwatch_checkpoint_size_bytes") > 0
    ck = value(m, "driftwatch_checkpoint_duration_seconds",
               "driftwatch_checkpoint_duration_seconds_count")
    assert ck >= 1 and ck <= value(m, "driftwatch_checkpoints", result="completed")
    assert value(m, "driftwatch_ready") == 1

    # Every series the Grafana dashboard queries exists.
    import re
    dashboard = json.loads((Path(__file__).parents[2] / "examples" / "grafana" /
                            "driftwatch.json").read_text())
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"][1:]]
    samples = {s.name for f in m.values() for s in f.samples}
    used = {n for e in exprs for n in re.findall(r"driftwatch_[a-z_]+", e)}
    # Kafka lag only exists for Kafka sources, webhook series for webhook sinks
    # (test_webhook.py checks those).
    missing = {n for n in used - samples if not n.startswith("driftwatch_webhook_")}
    assert missing == {"driftwatch_source_partition_lag_messages"}, missing


def test_ops_endpoints_without_an_http_source(tmp_path):
    """A file replay still serves /metrics, /health and /ready on the HTTP port."""
    src = tmp_path / "rows.jsonl"
    t0 = (now_ms() // 5000 - 17_280) * 5000  # a day ago, on a window boundary
    src.write_text("".join(json.dumps({"ts": t0 + i * 100, "x": i % 7}) + "\n"
                           for i in range(300)))
    sql = (f"CREATE SOURCE f (ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts) WITH "
           f"(connector = 'file', path = '{src}', format = 'jsonl', time_format = 'epoch_ms', "
           f"replay = 'realtime');\n"
           "CREATE MONITOR m AS SELECT window_start, window_end, count(*) AS n "
           "FROM TUMBLE(f, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end;\n")
    r = Run(tmp_path, sql, ["--no-flight"])
    try:
        wait_for(lambda: r.get("/ready")[0] == 200, 60, "/ready")
        assert r.get("/health")[0] == 200
        m = wait_for(lambda: (s := r.scrape()) and value(
            s, "driftwatch_monitor_windows", monitor="m") >= 1 and s, 60, "a window")
        assert value(m, "driftwatch_source_rows", source="f") >= 50
        assert value(m, "driftwatch_monitor_emit_delay_seconds",
                     "driftwatch_monitor_emit_delay_seconds_count", monitor="m") == value(
            m, "driftwatch_monitor_windows", monitor="m")
    finally:
        r.stop()


def test_metrics_auth(tmp_path):
    from dw_server import write_users
    users = tmp_path / "users.toml"
    tokens = write_users(users)
    r = Run(tmp_path, SQL, ["--auth-file", str(users), "--metrics-auth"])
    try:
        wait_for(lambda: r.get("/ready")[0] == 200, 60, "/ready")
        status, headers, _ = r.get("/metrics")
        assert status == 401 and "Bearer" in headers["www-authenticate"]
        token = next(iter(tokens.values()))
        status, _, body = r.get("/metrics", {"authorization": f"Bearer {token}"})
        assert status == 200 and "driftwatch_ready 1" in body
        assert r.get("/health")[0] == 200
    finally:
        r.stop()


def test_kafka_consumer_lag_per_partition(tmp_path):
    """`driftwatch_source_partition_lag_messages` for a Kafka source: one series per
    partition, never negative nor above what the partition holds, and zero once every
    message produced (before and while the source runs) was delivered; the per-partition
    row counters then equal what was produced."""
    import uuid
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    brokers = os.environ.get("DRIFTWATCH_KAFKA", "127.0.0.1:9092")
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": brokers})
    for f in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        f.result(timeout=30)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    produced = {0: 0, 1: 0}

    def produce(n: int, start: int):
        base = now_ms() - 60_000
        for i in range(start, start + n):
            p = i % 2
            row = {"id": f"r{i}", "ts": iso(base + i), "x": float(i % 7)}
            producer.produce(topic, json.dumps(row).encode(), partition=p)
            produced[p] += 1
        assert producer.flush(30) == 0

    produce(3000, 0)
    sql = (f"CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE, "
           f"WATERMARK FOR ts AS ts - INTERVAL '1 second') WITH (connector = 'kafka', "
           f"brokers = '{brokers}', topic = '{topic}', start = 'earliest', format = 'json', "
           f"batch_size = '200');\n"
           "CREATE MONITOR stats AS SELECT window_start, window_end, count(*) AS n "
           "FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;\n")
    r = Run(tmp_path, sql)
    try:
        wait_for(lambda: r.get("/ready")[0] == 200, 120, "/ready")
        produce(2000, 3000)
        family = "driftwatch_source_partition_lag_messages"
        bad = []  # wait_for retries on exceptions: collect violations, assert at the end

        def lags():
            m = r.scrape()
            if family not in m:
                return None
            seen = {s.labels["partition"]: s.value for s in m[family].samples
                    if s.labels.get("source") == "s"}
            bad.extend((p, lag) for p, lag in seen.items() if not 0 <= lag <= produced[int(p)])
            return m, seen

        def caught_up():
            got = lags()
            return got is not None and got[1] == {"0": 0.0, "1": 0.0} and all(
                value(got[0], "driftwatch_source_partition_rows", source="s",
                      partition=str(p)) == n for p, n in produced.items())

        wait_for(caught_up, 120, "lag 0 on both partitions with every row counted")
        assert not bad, (bad, produced)
    finally:
        log = r.stop()
    assert "panicked" not in log, log[-3000:]
