"""Crashes are invisible in the results: the real `driftwatch` binary is killed with SIGKILL
at random moments and restarted, and its result tables and Kafka sink topic (read with
isolation.level=read_committed by confluent-kafka) equal those of an uninterrupted run: no
window lost, none duplicated, values equal. The same over the HTTP ingest: every row
answered 2xx is counted exactly once. Also: SIGTERM in the middle of a window, then a
restart, gives the complete window; a broker restart mid-stream (tansu on durable storage)
loses nothing.

Each Kafka test starts a broker of its own (tansu, DRIFTWATCH_TANSU, on fresh SQLite storage:
see scripts/kafka.sh for why not its memory engine) and needs the binary (DRIFTWATCH_BIN);
scripts/test.sh provides both. Sizes: see crash_support (scripts/crash-test.sh runs 1 M
events)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import crash_support as cs
from dw_server import free_port

#: Enough events that the killed runs (about 2 s each) do not consume the input before the
#: last kill.
CI_EVENTS = cs.EVENTS if "DRIFTWATCH_CRASH_EVENTS" in os.environ else 400_000

MONITORS = """
CREATE MONITOR per_model WITH (sink = 'kafka', topic = '{sink}', brokers = '{brokers}') AS
  SELECT window_start, window_end, model, count(*) AS n, sum(x) AS sx, avg(y) AS ay,
         min(x) AS lo, max(x) AS hi, stddev(y) AS sd
  FROM TUMBLE(ev, ts, INTERVAL '15 seconds') GROUP BY window_start, window_end, model;
CREATE MONITOR hopping AS
  SELECT window_start, window_end, count(*) AS n, avg(x) AS ax
  FROM HOP(ev, ts, INTERVAL '5 seconds', INTERVAL '15 seconds') GROUP BY window_start, window_end;
CREATE MONITOR sessions AS
  SELECT window_start, window_end, user_id, count(*) AS n, max(y) AS top
  FROM SESSION(ev, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end, user_id;
CREATE MONITOR outliers WITH (sink = 'kafka', topic = '{sink}', brokers = '{brokers}') AS
  SELECT id, ts, x FROM ev WHERE x > 2.5;
"""

CHECKS = {
    "per_model": "SELECT * FROM per_model ORDER BY window_start, model",
    "hopping": "SELECT * FROM hopping ORDER BY window_start",
    "sessions": "SELECT * FROM sessions ORDER BY window_start, user_id",
    "outliers": "SELECT * FROM outliers ORDER BY id",
    "late rows": "SELECT count(*) FROM per_model_late",
}


TANSU = os.environ.get("DRIFTWATCH_TANSU",
                       str(Path.home() / ".cache" / "driftwatch" / "tansu" / "bin" / "tansu"))


class Broker:
    """A tansu broker of the test's own, on fresh SQLite storage (which survives its
    restarts): a crash test gets a broker that neither the data nor the load of other tests
    slow down."""

    def __init__(self, dir: Path):
        self.dir, self.port = dir, free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        log = open(self.dir / "tansu.log", "ab")
        self.proc = subprocess.Popen(
            [TANSU, "broker", "--listener-url", f"tcp://{self.addr}",
             "--advertised-listener-url", f"tcp://{self.addr}", "--storage-engine",
             "sqlite://tansu.db"], cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        _wait_tcp(self.port)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.kill()


def _wait_tcp(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def kafka_sql(path: Path, topic: str, sink: str, brokers: str, stop_at_end: bool = True) -> Path:
    path.write_text(f"""
CREATE SOURCE ev (id VARCHAR, ts TIMESTAMP, model VARCHAR, user_id VARCHAR, x DOUBLE, y DOUBLE,
                  WATERMARK FOR ts AS ts - INTERVAL '6 seconds')
WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}', group_id = 'dw-{sink}',
      time_format = 'epoch_ms', idle_timeout = '30 seconds', batch_size = '2000',
      linger = '20 ms', stop_at_end = '{str(stop_at_end).lower()}');
{MONITORS.format(sink=sink, brokers=brokers)}""")
    return path


def compare_runs(got: cs.Driftwatch, want: cs.Driftwatch, events: int) -> None:
    for what, sql in CHECKS.items():
        cs.assert_same_rows(got.query(sql), want.query(sql), what)
    # The reference itself is complete: every event counted once, nothing late.
    assert want.query("SELECT sum(n) FROM per_model") == [[str(events)]]
    assert want.query("SELECT count(*) FROM per_model_late") == [["0"]]


def test_kill_9_at_random_moments_changes_no_result_or_sink_message(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        kill_9_at_random_moments(tmp_path, broker.addr)


def kill_9_at_random_moments(tmp_path: Path, brokers: str) -> None:
    events = CI_EVENTS
    topic, ref_sink, crash_sink = cs.unique("crash-in"), cs.unique("ref-out"), cs.unique("crash-out")
    cs.create_topics(brokers, topic, ref_sink, crash_sink)
    cs.produce_events(brokers, topic, events)

    interval = ("--checkpoint-interval", "300ms")
    ref = cs.Driftwatch(kafka_sql(tmp_path / "ref.sql", topic, ref_sink, brokers),
                        tmp_path / "ref", *interval)
    ref.start()
    assert ref.wait() == 0, ref.tail()

    crashed = cs.Driftwatch(kafka_sql(tmp_path / "crash.sql", topic, crash_sink, brokers),
                            tmp_path / "crash", *interval)
    rng = random.Random(cs.SEED)
    kills = cs.crash_repeatedly(crashed, cs.KILLS, rng, alive=(3.0, 6.0))
    assert kills == cs.KILLS, f"only {kills} kills before the input was consumed: use more events"
    crashed.start()
    assert crashed.wait() == 0, crashed.tail()
    log = crashed.log.read_text(errors="replace")
    assert log.count("restoring checkpoint") >= kills // 2, "restarts restored checkpoints"

    compare_runs(crashed, ref, events)
    cs.assert_same_messages(cs.read_topic(brokers, crash_sink),
                            cs.read_topic(brokers, ref_sink), "sink topic")


def test_sigterm_mid_window_then_restart_gives_the_complete_window(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        sigterm_mid_window(tmp_path, broker.addr)


def sigterm_mid_window(tmp_path: Path, brokers: str) -> None:
    events = 30_000  # 120 s of event time: 8 tumbling windows of 15 s per model
    topic, sink = cs.unique("term-in"), cs.unique("term-out")
    cs.create_topics(brokers, topic, sink)
    # Half the events now; the stream is unbounded (no stop_at_end), so windows are open
    # when SIGTERM arrives.
    cs.produce_events(brokers, topic, events // 2)
    sql = kafka_sql(tmp_path / "m.sql", topic, sink, brokers, stop_at_end=False)
    dw = cs.Driftwatch(sql, tmp_path / "data")
    dw.start()
    deadline = time.time() + 60
    while time.time() < deadline and _windows(dw) < 5:
        time.sleep(0.2)
    time.sleep(0.5)
    assert dw.terminate() == 0, dw.tail()
    log = dw.log.read_text(errors="replace")
    assert "SIGTERM" in log and "checkpoint written" in log, dw.tail()
    # Every window stored so far is complete (15 s of one model: 15000 / 4 / 5 events), and
    # the open ones were not emitted.
    full = str(15_000 // cs.STEP_MS // 5)
    stored = dw.query("SELECT window_start, model, n FROM per_model ORDER BY window_start, model")
    assert stored and all(r[2] == full for r in stored), stored[-3:]
    assert len(stored) < 4 * 5, "the window SIGTERM interrupted was not emitted partial"
    # The second half arrives; a bounded rerun reads to the end and flushes.
    _produce_range_to(brokers, topic, events // 2, events)
    kafka_sql(tmp_path / "m.sql", topic, sink, brokers, stop_at_end=True)
    dw.start()
    assert dw.wait() == 0, dw.tail()
    rows = dw.query("SELECT window_start, model, n FROM per_model ORDER BY window_start, model")
    assert len(rows) == 8 * 5, rows
    assert all(r[2] == full for r in rows), "every window complete, none twice"
    assert dw.query("SELECT count(*) FROM per_model_late") == [["0"]]


def _windows(dw: cs.Driftwatch) -> int:
    try:
        return int(dw.query("SELECT count(*) FROM per_model")[0][0])
    except (subprocess.CalledProcessError, IndexError, ValueError):
        return 0


HTTP_SQL = """
CREATE SOURCE ev (id VARCHAR, ts TIMESTAMP, x DOUBLE,
                  WATERMARK FOR ts AS ts - INTERVAL '5 seconds')
WITH (connector = 'http', time_format = 'epoch_ms', idle_timeout = '3 seconds',
      wal_sync = '{sync}');
CREATE MONITOR seen AS SELECT id, ts FROM ev;
CREATE MONITOR counts AS
  SELECT window_start, window_end, count(*) AS n FROM TUMBLE(ev, ts, INTERVAL '2 seconds')
  GROUP BY window_start, window_end;
"""


@pytest.mark.parametrize("sync", ["always", "interval"])
def test_every_row_answered_2xx_is_counted_exactly_once_across_kill_9(tmp_path, sync):
    """With `wal_sync = 'interval'` a 2xx is in the page cache, which a process crash does
    not lose (a power loss within the interval could)."""
    sql = tmp_path / "http.sql"
    sql.write_text(HTTP_SQL.format(sync=sync))
    port = free_port()
    dw = cs.Driftwatch(sql, tmp_path / "data", "--http-listen", f"127.0.0.1:{port}",
                       "--checkpoint-interval", "300ms")
    url = f"http://127.0.0.1:{port}/ingest/ev"
    acked: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()
    counter = iter(range(10**9))
    stop = threading.Event()

    def client():
        while not stop.is_set():
            with lock:
                first = next(counter) * 25
            ids = [f"h{i:08d}" for i in range(first, first + 25)]
            body = "\n".join(json.dumps({"id": i, "ts": cs.T0 + int(i[1:]) * 2, "x": 1.0})
                             for i in ids)
            with lock:
                sent.update(ids)
            try:
                req = urllib.request.Request(url, data=body.encode(), method="POST")
                with urllib.request.urlopen(req, timeout=10) as r:
                    if 200 <= r.status < 300:
                        with lock:
                            acked.update(ids)
            except (urllib.error.URLError, ConnectionError, OSError, TimeoutError):
                time.sleep(0.05)  # down, or being restarted: these rows got no answer

    rng = random.Random(cs.SEED)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    dw.start()
    _wait_port(port)
    for t in threads:
        t.start()
    for _ in range(cs.KILLS):
        time.sleep(rng.uniform(0.4, 1.2))
        dw.kill9()
        dw.start()
        _wait_port(port)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    # Traffic stopped: after the idle timeout event time follows the clock and closes the
    # last windows (window 2 s + watermark delay 5 s + idle 3 s); then a graceful stop.
    time.sleep(12.0)
    assert dw.terminate() == 0, dw.tail()

    ids = [r[0] for r in dw.query("SELECT id FROM seen")]
    assert len(ids) == len(set(ids)), "a row was counted twice"
    missing = acked - set(ids)
    assert not missing, f"{len(missing)} rows answered 2xx were lost, e.g. {sorted(missing)[:5]}"
    assert set(ids) <= sent
    assert len(acked) > 2_000, f"the test posted too little ({len(acked)} rows acked)"
    windows = dw.query("SELECT window_start, n FROM counts ORDER BY window_start")
    assert len({w[0] for w in windows}) == len(windows), "a window was emitted twice"
    assert sum(int(w[1]) for w in windows) == len(ids), "windows count each stored row once"
    assert dw.query("SELECT count(*) FROM counts_late") == [["0"]]


def _wait_port(port: int, timeout: float = 30) -> None:
    """Waits until driftwatch answers on its HTTP port."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        _wait_tcp(port, timeout=deadline - time.time())
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/healthz")
            with urllib.request.urlopen(req, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"driftwatch did not listen on {port}")


def test_broker_restart_mid_stream_loses_nothing(tmp_path):
    assert Path(TANSU).exists(), f"{TANSU} missing: scripts/kafka.sh install"
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        events = 40_000
        topic, sink = cs.unique("brk-in"), cs.unique("brk-out")
        cs.create_topics(broker.addr, topic, sink)
        cs.produce_events(broker.addr, topic, events // 2)
        sql = kafka_sql(tmp_path / "m.sql", topic, sink, broker.addr, stop_at_end=False)
        dw = cs.Driftwatch(sql, tmp_path / "data", "--checkpoint-interval", "300ms")
        dw.start()
        deadline = time.time() + 60
        while time.time() < deadline and _windows(dw) < 5:
            time.sleep(0.2)
        broker.kill()
        time.sleep(3.0)  # the consumer and the sink see the broker gone
        broker.start()
        _produce_range_to(broker.addr, topic, events // 2, events)
        # The same process resumes: windows of the second half are emitted.
        per_half = (events // 2) * cs.STEP_MS // 15_000 * 5
        deadline = time.time() + 90
        while time.time() < deadline and _windows(dw) < per_half + 5:
            time.sleep(0.2)
        assert _windows(dw) >= per_half + 5, dw.tail()
        assert dw.terminate() == 0, dw.tail()
        # A bounded run reads to the end and flushes the last windows.
        kafka_sql(tmp_path / "m.sql", topic, sink, broker.addr, stop_at_end=True)
        dw.start()
        assert dw.wait() == 0, dw.tail()
        assert dw.query("SELECT sum(n) FROM per_model") == [[str(events)]]
        assert dw.query("SELECT count(*) FROM per_model_late") == [["0"]]
        rows = dw.query("SELECT window_start, model FROM per_model")
        assert len(rows) == len(set(map(tuple, rows)))
        messages = cs.read_topic(broker.addr, sink)
        assert len(messages) == len({k for k, _ in messages}), "no sink message twice"
        assert len([k for k, _ in messages if k.startswith("per_model|")]) == len(rows)
    finally:
        if broker.proc and broker.proc.poll() is None:
            broker.kill()


def _produce_range_to(brokers: str, topic: str, start: int, end: int) -> None:
    """Produces events [start, end) exactly as produce_events would have."""
    from confluent_kafka import Producer
    rng = random.Random(cs.SEED)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
    for i in range(end):
        e = cs.event(i, rng)
        if i >= start:
            producer.produce(topic, json.dumps(e, separators=(",", ":")).encode(),
                             key=e["id"].encode(), partition=i % 3)
            if i % 10_000 == 0:
                producer.poll(0)
    assert producer.flush(60) == 0
