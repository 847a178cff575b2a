"""A monitor that crosses its state limit fails alone (issue 13): the real binary runs two
monitors over one source, one with a tiny `max_groups` over many keys. The failing monitor
shows `status = 'failed'` with an error naming `max_groups` (and `failed_at`) in
`system.monitors` at once, the log names it, the other monitor keeps emitting windows and
checkpoints keep completing; CREATE OR REPLACE with a higher limit starts it again. A bounded
run (file replay) with a failing monitor finishes the other monitor and exits non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("adbc_driver_flightsql")

from dw_server import (  # noqa: E402
    BIN, adbc_query, free_port, iso, now_ms, stop_process, wait_for,
)

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

KEYS = 300        # distinct ids per window, over `max_groups`
MAX_GROUPS = 50

MONITORS = f"""
CREATE MONITOR per_id WITH (max_groups = {MAX_GROUPS}) AS
SELECT window_start, window_end, id, count(*) AS n
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end, id;
CREATE MONITOR stats AS
SELECT window_start, window_end, count(*) AS n, avg(x) AS x_avg
FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;
"""


class Run:
    """`driftwatch run` over an HTTP source with the two monitors."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.http_port, self.flight_port = free_port(), free_port()
        sql = tmp / "monitors.sql"
        sql.write_text(
            "CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,\n"
            "                 WATERMARK FOR ts AS ts - INTERVAL '200 milliseconds')\n"
            "WITH (connector = 'http', idle_timeout = '1 second');\n" + MONITORS)
        self.log_path = tmp / "driftwatch.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN), "run", str(sql), "--data-dir", str(tmp / "data"), "--quiet",
             "--http-listen", f"127.0.0.1:{self.http_port}",
             "--flight-listen", f"127.0.0.1:{self.flight_port}",
             "--checkpoint-interval", "500ms", "--status-every", "1",
             "--memory-limit", "256MiB"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
        wait_for(self._ready, timeout=60, what="driftwatch to listen")
        import adbc_driver_flightsql.dbapi as flightsql
        self.conn = flightsql.connect(f"grpc://127.0.0.1:{self.flight_port}", autocommit=True)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"driftwatch exited: {self.logs()}")
        import socket
        try:
            socket.create_connection(("127.0.0.1", self.flight_port), timeout=0.5).close()
            socket.create_connection(("127.0.0.1", self.http_port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def post_second(self, start_ms: int) -> None:
        import urllib.request
        rows = [{"id": f"k{i}", "ts": iso(start_ms + (i * 900) // KEYS), "x": float(i % 10)}
                for i in range(KEYS)]
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/ingest/s", data=json.dumps(rows).encode(),
            headers={"content-type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200, resp.read()

    def monitors(self) -> dict[str, dict]:
        t = adbc_query(self.conn, "SELECT name, status, error, last_error, failed_at, windows "
                                  "FROM system.monitors")
        return {r["name"]: r for r in t.to_pylist()}

    def checkpoints_completed(self) -> int:
        return adbc_query(self.conn, "SELECT completed FROM system.checkpoints")[
            "completed"][0].as_py()

    def stop(self) -> int:
        self.conn.close()
        if self.proc.poll() is None:
            stop_process(self.proc, timeout=30)
        self.log.close()
        return self.proc.returncode


@pytest.fixture()
def run(tmp_path):
    r = Run(tmp_path)
    yield r
    r.stop()


def test_failed_monitor_is_surfaced_and_isolated(run):
    base = (now_ms() // 1000 - 30) * 1000
    second = 0

    def feed(n: int) -> None:
        nonlocal second
        for _ in range(n):
            run.post_second(base + second * 1000)
            second += 1

    feed(3)
    failed = wait_for(lambda: (m := run.monitors())["per_id"]["status"] == "failed" and m,
                      timeout=30, what="per_id to fail")
    per_id = failed["per_id"]
    assert "max_groups" in per_id["error"], per_id
    assert str(MAX_GROUPS) in per_id["error"], per_id
    assert per_id["last_error"] == per_id["error"]
    assert per_id["failed_at"] is not None
    assert failed["stats"]["status"] == "running", failed
    # Logged at once, at error level, with the monitor's name.
    log = run.logs()
    assert any("ERROR" in line and "per_id" in line and "max_groups" in line
               for line in log.splitlines()), log[-3000:]
    # The status line shows it too.
    wait_for(lambda: any("status:" in line and "per_id: windows=" in line and "FAILED" in line
                         for line in run.logs().splitlines()),
             timeout=10, what="per_id FAILED in the status line")

    # The other monitor keeps producing windows, and checkpoints keep completing.
    stats_before = failed["stats"]["windows"]
    checkpoints_before = run.checkpoints_completed()
    feed(4)
    wait_for(lambda: run.monitors()["stats"]["windows"] >= stats_before + 3,
             timeout=30, what="stats to emit more windows after per_id failed")
    wait_for(lambda: run.checkpoints_completed() >= checkpoints_before + 2,
             timeout=30, what="checkpoints to complete without the failed monitor")
    assert run.proc.poll() is None, run.logs()[-3000:]
    assert run.monitors()["per_id"]["status"] == "failed"

    # CREATE OR REPLACE with a higher limit starts it again, with empty windows.
    with run.conn.cursor() as cur:
        cur.execute(MONITORS.split(";")[0].replace(
            "CREATE MONITOR per_id WITH (max_groups = 50)",
            "CREATE OR REPLACE MONITOR per_id WITH (max_groups = 100000)"))
    assert run.monitors()["per_id"]["status"] == "running"
    feed(3)
    wait_for(lambda: run.monitors()["per_id"]["windows"] >= 1, timeout=30,
             what="the replaced per_id to emit windows")
    rows = adbc_query(run.conn, "SELECT count(DISTINCT id) AS ids FROM per_id")["ids"][0]
    assert rows.as_py() == KEYS
    assert run.monitors()["per_id"]["status"] == "running"
    # A stopped unbounded run with no failed monitor left exits 0.
    assert run.stop() == 0, run.logs()[-3000:]


def test_bounded_run_with_a_failed_monitor_finishes_the_others_and_exits_non_zero(tmp_path):
    src = tmp_path / "in.jsonl"
    t0 = 1_700_000_000_000  # in the past: future event times are quarantined
    seconds = 5
    with src.open("w") as f:
        for s in range(seconds):
            for i in range(KEYS):
                f.write(json.dumps({"id": f"k{i}", "ts": iso(t0 + s * 1000 + (i * 900) // KEYS),
                                    "x": float(i % 10)}) + "\n")
    sql = tmp_path / "replay.sql"
    sql.write_text(
        "CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,\n"
        "                 WATERMARK FOR ts AS ts - INTERVAL '200 milliseconds')\n"
        f"WITH (connector = 'file', path = '{src}', format = 'jsonl', replay = 'fast',\n"
        "      batch_size = '100');\n" + MONITORS)
    data = tmp_path / "data"
    started = time.time()
    out = subprocess.run(
        [str(BIN), "run", str(sql), "--data-dir", str(data), "--quiet", "--no-flight",
         "--status-every", "0", "--http-listen", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "RUST_LOG": "info"})
    assert out.returncode != 0, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "monitor 'per_id' failed" in text and "max_groups" in text, text[-3000:]
    assert time.time() - started < 120
    # `stats` read the input to its end: every second is a window with every row.
    q = subprocess.run([str(BIN), "query", "SELECT n FROM stats ORDER BY window_start",
                        "--data-dir", str(data), "--format", "json"],
                       capture_output=True, text=True, timeout=60)
    assert q.returncode == 0, q.stderr
    assert [r["n"] for r in json.loads(q.stdout)] == [KEYS] * seconds
