"""DDL runs off the control loop: a long `CREATE BASELINE` (reading, profiling and storing a
big CSV) does not delay Flight queries of the `system` tables or of result tables sent
meanwhile, and the baseline is usable once it is done. Latencies are compared with the
measured duration of the CREATE BASELINE itself, so the test holds on a loaded machine."""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

pytest.importorskip("adbc_driver_flightsql")

from dw_server import BIN, adbc_connect, adbc_query, fed_server, wait_for  # noqa: E402

pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built")

COLUMNS = 80
ROWS = 150_000


def big_csv(path):
    rng = np.random.default_rng(7)
    table = pa.table({f"f{i}": rng.normal(i, 1.0 + i % 5, ROWS) for i in range(COLUMNS)})
    pacsv.write_csv(table, path)


def test_long_create_baseline_does_not_delay_queries(tmp_path):
    csv = tmp_path / "big.csv"
    big_csv(csv)
    with fed_server(tmp_path, seconds=3, auth=True) as server:
        ddl = adbc_connect(server)
        reader = adbc_connect(server)
        wait_for(lambda: adbc_query(reader, "SELECT count(*) AS c FROM stats")["c"][0].as_py() >= 3,
                 what="three closed windows in stats")
        done = threading.Event()
        outcome = {}

        def create():
            start = time.monotonic()
            try:
                with ddl.cursor() as cur:
                    cur.execute(f"CREATE BASELINE big FROM '{csv}'")
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = e
            outcome["seconds"] = time.monotonic() - start
            done.set()

        worker = threading.Thread(target=create)
        t0 = time.monotonic()
        worker.start()
        latencies = []
        while not done.is_set():
            start = time.monotonic()
            mons = adbc_query(reader, "SELECT name, windows FROM system.monitors ORDER BY name")
            stats = adbc_query(reader, "SELECT count(*) AS c FROM stats")
            if not done.is_set():
                latencies.append(time.monotonic() - start)
            assert mons["name"].to_pylist() == ["drift", "stats"]
            assert stats["c"][0].as_py() >= 3
            time.sleep(0.05)
        worker.join()
        assert "error" not in outcome, outcome
        took = outcome["seconds"]
        assert took >= 1.0, f"CREATE BASELINE took only {took:.2f} s: make the CSV larger"
        assert len(latencies) >= 3, f"{len(latencies)} queries during {took:.2f} s"
        # Queries answered all along: each one far quicker than the baseline.
        assert max(latencies) < 0.25 * took, (max(latencies), took, latencies)
        assert time.monotonic() - t0 >= took

        # Usable afterwards: listed, queryable and usable by a new monitor.
        assert adbc_query(reader, "SELECT count(*) AS c FROM baselines.big")["c"][0].as_py() == ROWS
        assert "big" in adbc_query(reader, "SHOW BASELINES")["name"].to_pylist()
        with ddl.cursor() as cur:
            cur.execute("CREATE MONITOR uses_big AS SELECT id, zscore(x, 'big', 'f1') AS z FROM s")
        names = adbc_query(reader, "SELECT name FROM system.monitors ORDER BY name")["name"]
        assert "uses_big" in names.to_pylist()
        assert "CREATE BASELINE big" in (server.data_dir / "catalog.sql").read_text()
        ddl.close()
        reader.close()
