"""Drift statistics on windows of 10^6 rows, through `driftwatch query` over Parquet, against
scipy on the same data (the conformance suite's sizes stop at 10^5 because it also checks
every per-row score).

At this size the drift aggregates of one column are fused into one sorted copy of the window
(`FuseDriftAggregates`), partial states from several partitions merge as sorted runs, and
ks_pvalue / cvm_pvalue take scipy's asymptotic path; the values must still be scipy's.

    pytest -s tests/python/test_udfs_large.py
"""

import json
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from dw_server import BIN
from test_udfs_conformance import close
from test_udfs_drift_ext import close_p

N_REF, N_CUR = 1_000_000, 1_000_000


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("large")
    rng = np.random.default_rng(20261129)
    ref = {
        "normal": rng.normal(0.0, 1.0, N_REF),
        # ties: values on a 0.01 grid
        "ties": np.round(rng.lognormal(0.0, 0.5, N_REF), 2),
    }
    cur = {
        "normal": rng.normal(0.003, 1.0, N_CUR),
        "ties": np.round(rng.lognormal(0.002, 0.5, N_CUR), 2),
    }
    cur["normal"][::1000] = np.nan  # ignored
    # Several row groups, so the scan runs in parallel and partial states merge.
    pq.write_table(pa.table(ref), tmp / "ref.parquet")
    pq.write_table(pa.table(cur), tmp / "cur.parquet", row_group_size=200_000)
    sql = tmp / "baseline.sql"
    sql.write_text(f"CREATE BASELINE ref FROM '{tmp / 'ref.parquet'}';\n")
    data_dir = tmp / "data"
    subprocess.run([str(BIN), "run", str(sql), "--data-dir", str(data_dir)], check=True,
                   capture_output=True)
    return tmp, data_dir, ref, cur


STATS = ["wasserstein", "ks_stat", "ks_pvalue", "energy_distance", "cvm_stat", "cvm_pvalue",
         "anderson_stat"]


def test_million_row_windows_match_scipy(data):
    tmp, data_dir, ref, cur = data
    cols = ", ".join(f"{s}({c}, 'ref') AS \"{s}.{c}\"" for c in ref for s in STATS)
    out = subprocess.run(
        [str(BIN), "query", f"SELECT {cols} FROM '{tmp / 'cur.parquet'}'", "--data-dir",
         str(data_dir), "--format", "json"],
        check=True, capture_output=True, text=True)
    got = json.loads(out.stdout)[0]
    for c in ref:
        r, x = ref[c], cur[c][np.isfinite(cur[c])]
        ks = stats.ks_2samp(x, r)
        cvm = stats.cramervonmises_2samp(x, r)
        want = {
            "wasserstein": stats.wasserstein_distance(x, r),
            "ks_stat": ks.statistic,
            "ks_pvalue": ks.pvalue,
            "energy_distance": stats.energy_distance(x, r),
            "cvm_stat": cvm.statistic,
            "cvm_pvalue": cvm.pvalue,
            "anderson_stat": stats.anderson_ksamp([x, r], variant="midrank").statistic,
        }
        for s in STATS:
            check = close_p if s.endswith("pvalue") else close
            check(f"{s} (10^6)", got[f"{s}.{c}"], float(want[s]))
