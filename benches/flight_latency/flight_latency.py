"""Latency of "the last hour of a monitor" over Flight SQL while ingesting.

Starts `driftwatch run` (DRIFTWATCH_BIN, default target/release/driftwatch, else debug) with
a row-level monitor over an HTTP source, loads ROWS result rows spread over the last 24 h,
keeps ingesting RATE rows/s at the current time, and measures p50 / p99 of

    SELECT * FROM rows_out WHERE ts >= now() - INTERVAL '1 hour'

(GetFlightInfo + DoGet of every batch) at 1 and 32 concurrent clients.

    python benches/flight_latency/flight_latency.py [--rows 1000000] [--queries 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "python"))
import dw_server  # noqa: E402
import pyarrow.flight as fl  # noqa: E402

MONITORS = """
CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '1 second')
WITH (connector = 'http', idle_timeout = '2 seconds');
CREATE MONITOR rows_out AS SELECT id, ts, x, x * 2 AS x2 FROM s;
"""
QUERY = "SELECT * FROM rows_out WHERE ts >= now() - INTERVAL '1 hour'"


def post(port: int, rows: list[dict]) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/ingest/s",
                                 data=json.dumps(rows).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200


def one_query(uri: str) -> tuple[float, int]:
    client = fl.connect(uri)
    t0 = time.perf_counter()
    info = client.get_flight_info(
        fl.FlightDescriptor.for_command(dw_server.command_statement_query(QUERY)))
    table = client.do_get(info.endpoints[0].ticket).read_all()
    dt = time.perf_counter() - t0
    client.close()
    return dt, table.num_rows


def run_clients(uri: str, clients: int, queries: int) -> list[float]:
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: one_query(uri), range(queries)))
    return [r[0] for r in results], statistics.mean(r[1] for r in results)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=40, help="queries per concurrency level")
    ap.add_argument("--rate", type=int, default=1000, help="rows/s ingested while measuring")
    args = ap.parse_args()
    if "DRIFTWATCH_BIN" not in os.environ:
        rel = dw_server.ROOT / "target" / "release" / "driftwatch"
        dw_server.BIN = rel if rel.exists() else dw_server.BIN
    tmp = Path(tempfile.mkdtemp(prefix="dw-bench-"))
    dw_server.monitor_file = lambda t: (t / "m.sql").write_text(MONITORS) and t / "m.sql"
    server = dw_server.Server(tmp)
    stop = threading.Event()
    try:
        now = dw_server.now_ms()
        start = now - 24 * 3600 * 1000
        step = 24 * 3600 * 1000 / args.rows
        t0 = time.time()
        chunk = 20_000
        for i in range(0, args.rows, chunk):
            post(server.http_port, [{"id": f"r{j}", "ts": int(start + j * step), "x": j % 100}
                                    for j in range(i, min(args.rows, i + chunk))])
        print(f"loaded {args.rows} rows in {time.time() - t0:.1f} s")
        uri = server.uri

        def ingest():
            k = 0
            while not stop.is_set():
                ms = dw_server.now_ms()
                post(server.http_port, [{"id": f"live{k}-{i}", "ts": ms, "x": i % 100}
                                        for i in range(args.rate // 10)])
                k += 1
                time.sleep(0.1)

        threading.Thread(target=ingest, daemon=True).start()

        def stored() -> int:
            c = fl.connect(uri)
            info = c.get_flight_info(fl.FlightDescriptor.for_command(
                dw_server.command_statement_query("SELECT count(*) AS c FROM rows_out")))
            return c.do_get(info.endpoints[0].ticket).read_all()["c"][0].as_py()

        # Live rows keep the store flushing (row-level results flush on the next append).
        dw_server.wait_for(lambda: stored() >= args.rows, timeout=600, what="all rows stored")
        print(f"{args.rows} result rows stored after {time.time() - t0:.1f} s")

        total = one_query(uri)
        print(f"binary: {dw_server.BIN}")
        print(f"query: {QUERY}  ({total[1]} rows per answer, ingesting {args.rate} rows/s)")
        for clients in (1, 32):
            lat, rows = run_clients(uri, clients, max(args.queries, clients * 2))
            print(f"clients={clients:>2}  queries={len(lat):>3}  rows/answer={rows:.0f}  "
                  f"p50={pct(lat, 50) * 1000:.0f} ms  p99={pct(lat, 99) * 1000:.0f} ms")
    finally:
        stop.set()
        server.stop()


if __name__ == "__main__":
    main()
