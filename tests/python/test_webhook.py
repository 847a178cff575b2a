"""The webhook sink with the real binary (issue 14): `driftwatch run` over an HTTP source posts
firing/resolved notifications of a HAVING monitor to a Python receiver. Killed with `kill -9`
after some notifications were acknowledged and restarted on the same data dir, it sends
nothing twice (by id) and loses nothing: the notifications are exactly those of an
uninterrupted run. A receiver answering 503 at first gets every notification once, later."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dw_server import BIN, free_port, iso, now_ms

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

# Event times: whole seconds, ten minutes ago (the same in every run, so ids compare).
BASE = (now_ms() // 1000 - 600) * 1000
# Windows (1 s) in which each model's average is above the threshold.
DRIFT = {"a": [range(5, 15), range(25, 30)], "b": [range(8, 20)]}
LAST = 40


class Receiver:
    """A webhook receiver: records (Idempotency-Key, body) of every 2xx, answers 503 to the
    first `fail_first` requests."""

    def __init__(self, fail_first: int = 0):
        self.got: list[tuple[str, dict]] = []
        self.failed = 0
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with receiver.lock:
                    if receiver.failed < receiver.fail_first:
                        receiver.failed += 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    receiver.got.append((self.headers["idempotency-key"], body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/T0/B0/SECRET"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 60.0) -> list[tuple[str, dict]]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.1)
        with self.lock:
            return list(self.got)

    def close(self):
        self.server.shutdown()


class Run:
    """`driftwatch run` with one HTTP source and the webhook monitor."""

    def __init__(self, tmp: Path, url: str, data_dir: Path):
        sql = tmp / "alerts.sql"
        sql.write_text(f"""
CREATE SOURCE s (ts TIMESTAMP, model VARCHAR, x DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '200 milliseconds')
WITH (connector = 'http');
CREATE MONITOR alerts WITH (sink = 'webhook', url = '{url}', cooldown = '0 seconds') AS
SELECT window_start, window_end, model, avg(x) AS x_avg
FROM TUMBLE(s, ts, INTERVAL '1 second')
GROUP BY window_start, window_end, model HAVING avg(x) > 5;
""")
        self.port = free_port()
        self.log_path = tmp / f"driftwatch-{self.port}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN), "run", str(sql), "--data-dir", str(data_dir), "--http-listen",
             f"127.0.0.1:{self.port}", "--no-flight", "--checkpoint-interval", "1s",
             "--status-every", "0"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info"})
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(self.logs())
                time.sleep(0.1)

    def logs(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()

    def post_windows(self, windows: range) -> None:
        for w in windows:
            rows = []
            for model, spans in DRIFT.items():
                x = 10.0 if any(w in s for s in spans) else 1.0
                rows += [{"ts": iso(BASE + w * 1000 + i * 100), "model": model, "x": x}
                         for i in range(10)]
            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/ingest/s",
                                         data=json.dumps(rows).encode(), method="POST",
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self.log.close()


def expected() -> list[tuple[str, str, int]]:
    """(model, status, window_end in seconds after BASE) of an uninterrupted run."""
    out = []
    for model, spans in DRIFT.items():
        for s in spans:
            out += [(model, "firing", s.start + 1), (model, "resolved", s.stop)]
    return sorted(out)


def summary(got: list[tuple[str, dict]]) -> list[tuple[str, str, int]]:
    def end(b):
        t = b["window_end"].replace("Z", "+00:00")
        from datetime import datetime
        return round((datetime.fromisoformat(t).timestamp() * 1000 - BASE) / 1000)
    return sorted((b["key"]["model"], b["status"], end(b)) for _, b in got)


def per_key_order(got):
    return {m: [b["status"] for _, b in got if b["key"]["model"] == m] for m in DRIFT}


def test_kill_9_after_acknowledged_notifications_sends_nothing_twice(tmp_path):
    want = expected()
    # Uninterrupted reference run.
    ref = Receiver()
    r = Run(tmp_path, ref.url, tmp_path / "ref-data")
    try:
        r.post_windows(range(0, LAST + 1))
        got_ref = ref.wait(len(want))
    finally:
        r.stop()
        ref.close()
    assert summary(got_ref) == want, r.logs()
    assert len({i for i, _ in got_ref}) == len(got_ref)

    # Killed after a's first firing and resolution and b's firing were acknowledged.
    rec = Receiver()
    data = tmp_path / "crash-data"
    r = Run(tmp_path, rec.url, data)
    r.post_windows(range(0, 12))
    time.sleep(2.5)  # a checkpoint completes: the restart replays only what follows it
    r.post_windows(range(12, 18))
    assert len(rec.wait(3)) >= 3, r.logs()
    r.kill()
    r = Run(tmp_path, rec.url, data)
    try:
        r.post_windows(range(18, LAST + 1))
        got = rec.wait(len(want))
        time.sleep(2)  # anything sent twice would arrive now
        with rec.lock:
            got = list(rec.got)
    finally:
        r.stop()
        rec.close()
    ids = [i for i, _ in got]
    assert len(ids) == len(set(ids)), f"sent twice: {ids}"
    assert summary(got) == want, r.logs()
    assert set(ids) == {i for i, _ in got_ref}, "the same ids as the uninterrupted run"
    assert per_key_order(got) == per_key_order(got_ref)
    for i, b in got:
        assert b["id"] == i and b["monitor"] == "alerts"
    assert "SECRET" not in r.logs()


def test_a_failing_receiver_is_retried(tmp_path):
    rec = Receiver(fail_first=3)
    r = Run(tmp_path, rec.url, tmp_path / "data")
    try:
        r.post_windows(range(0, LAST + 1))
        got = rec.wait(len(expected()))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{r.port}/metrics", timeout=5).read().decode()
    finally:
        r.stop()
        rec.close()
    assert rec.failed == 3
    assert summary(got) == expected()
    assert len({i for i, _ in got}) == len(got), "each delivered once"
    assert 'driftwatch_webhook_delivery_failures_total{monitor="alerts"} 3' in metrics, metrics
    assert 'driftwatch_webhook_notifications_total{monitor="alerts",status="resolved"} 3' in metrics
    assert "SECRET" not in r.logs()
    # Every webhook series the Grafana dashboard queries is exported (test_metrics.py checks
    # the others, on a run without a webhook sink).
    dashboard = json.loads((Path(__file__).parents[2] / "examples" / "grafana" /
                            "driftwatch.json").read_text())
    used = {n for p in dashboard["panels"] for t in p["targets"]
            for n in re.findall(r"driftwatch_webhook_[a-z_]+", t["expr"])}
    exported = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines()
                if line.startswith("driftwatch_webhook_")}
    assert len(used) == 4 and used <= exported, (used, exported)
