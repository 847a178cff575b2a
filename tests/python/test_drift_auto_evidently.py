"""`drift_test` / `drift_score` / `drift_detected` / `drift_share` against Evidently itself.

Evidently (pinned in requirements.txt) runs its default drift choice — `ValueDrift(column)`
per column and `DriftedColumnsCount` (the drift share of `DataDriftPreset`) — on generated
columns: numeric normal with and without a shift, numeric with NaNs, numeric with ties,
an integer column with 5 distinct values, a boolean, a string column with 6 categories of
which the current data adds one unseen — with references of 200, 1000, 1001 and 5000 rows
(Evidently switches from KS / chi-square / Z to Wasserstein / Jensen–Shannon above 1000
non-NaN reference values). The same data go through `driftwatch query`; the method name, the
verdict and the share must be Evidently's, the score equal to rel 1e-9 (abs 1e-13 for
p-values close to 0, whose absolute precision is that of 1 − cdf).

Evidently is imported unconditionally: this test is never skipped.

    pytest -s tests/python/test_drift_auto_evidently.py
"""

import json
import subprocess
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import DriftedColumnsCount, ValueDrift

from dw_server import BIN

N_CUR = 400
NUMERIC = ["num_same", "num_shift", "num_nan", "num_ties", "int5"]
COLUMNS = NUMERIC + ["flag", "cat"]
# (column, reference size, Evidently method, score, drifted, ours...) for the closing note
TABLE = []


def make(rng, n, current):
    shift = 0.25 if current else 0.0
    cats = ["apple", "banana", "cherry", "date", "elder", "fig"]
    probs = np.array([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    if current:
        cats = cats + ["grape"]  # unseen in the reference
        probs = np.append(probs * 0.97, 0.03)
    nan = rng.normal(0.0, 1.0, n)
    nan[rng.choice(n, 3, replace=False)] = np.nan
    return pd.DataFrame({
        "num_same": rng.normal(5.0, 2.0, n),
        "num_shift": rng.normal(5.0 + shift, 2.0, n),
        "num_nan": nan,
        "num_ties": np.round(rng.normal(0.0 + shift / 5, 1.0, n), 1),
        "int5": rng.choice(5, n, p=[0.1, 0.2, 0.4, 0.2, 0.1] if not current
                           else [0.12, 0.22, 0.36, 0.2, 0.1]).astype(np.int64),
        "flag": rng.random(n) < (0.3 if not current else 0.36),
        "cat": rng.choice(cats, n, p=probs / probs.sum()),
    })


def evidently(ref, cur):
    """{column: (method, score, drifted)} and the share of drifted numeric columns."""
    metrics = [ValueDrift(column=c) for c in COLUMNS] + [DriftedColumnsCount(columns=NUMERIC)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's divide-by-zero for unseen categories
        snap = Report(metrics, include_tests=True).run(
            Dataset.from_pandas(cur, data_definition=DataDefinition()),
            Dataset.from_pandas(ref, data_definition=DataDefinition()),
        ).dict()
    verdicts = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
                for t in snap["tests"] if t["id"] == "drift"}
    out, share = {}, None
    for m in snap["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            out[cfg["column"]] = (cfg["method"], float(m["value"]), verdicts[cfg["column"]])
        elif cfg["type"].endswith("DriftedColumnsCount"):
            share = float(m["value"]["share"])
    return out, share


def ours(tmp, ref, cur):
    pq.write_table(pa.Table.from_pandas(ref, preserve_index=False), tmp / "ref.parquet")
    pq.write_table(pa.Table.from_pandas(cur, preserve_index=False), tmp / "cur.parquet")
    sql = tmp / "baseline.sql"
    sql.write_text(f"CREATE BASELINE ref FROM '{tmp / 'ref.parquet'}';\n")
    data_dir = tmp / "data"
    subprocess.run([str(BIN), "run", str(sql), "--data-dir", str(data_dir)], check=True,
                   capture_output=True)
    cur_path = tmp / "cur.parquet"
    cols = ", ".join(f"drift_test({c}, 'ref') AS \"{c}\"" for c in COLUMNS)
    long = " UNION ALL ".join(f"SELECT '{c}' AS feature, CAST({c} AS DOUBLE) AS value "
                              f"FROM '{cur_path}'" for c in NUMERIC)
    queries = {
        "tests": f"SELECT {cols} FROM '{cur_path}'",
        "share": f"SELECT drift_share(value, 'ref', feature) AS share, "
                 f"dataset_drift(value, 'ref', feature) AS dataset, "
                 f"drifted_features(value, 'ref', feature) AS names FROM ({long})",
    }
    got = {}
    for k, q in queries.items():
        out = subprocess.run([str(BIN), "query", q, "--data-dir", str(data_dir), "--format",
                              "json"], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        got[k] = json.loads(out.stdout)[0]
    return got


@pytest.mark.parametrize("n_ref", [200, 1000, 1001, 5000])
def test_choices_and_verdicts_equal_evidently(tmp_path, n_ref):
    rng = np.random.default_rng(20261201 + n_ref)
    ref, cur = make(rng, n_ref, False), make(rng, N_CUR, True)
    want, want_share = evidently(ref, cur)
    got = ours(tmp_path, ref, cur)
    drifted_numeric = []
    for c in COLUMNS:
        method, score, drifted = want[c]
        t = got["tests"][c]
        TABLE.append((c, n_ref, method, score, drifted, t["method"], t["statistic"], t["drifted"]))
        assert t["method"] == method, (c, n_ref, t, want[c])
        assert t["threshold"] == (0.05 if method.endswith("p_value") else 0.1)
        err = abs(t["statistic"] - score)
        assert err <= 1e-13 or err <= 1e-9 * abs(score), (c, n_ref, t["statistic"], score)
        assert t["drifted"] == drifted, (c, n_ref, t, want[c])
        if c in NUMERIC and drifted:
            drifted_numeric.append(c)
    share = got["share"]
    assert share["share"] == pytest.approx(want_share, abs=1e-15)
    assert share["dataset"] == (want_share >= 0.5)
    assert share["names"] == sorted(drifted_numeric)


def test_every_method_is_exercised():
    """The cases above cover all five tests, both verdicts (runs after them)."""
    if not TABLE:
        pytest.fail("test_choices_and_verdicts_equal_evidently did not run first")
    methods = {row[2] for row in TABLE}
    assert methods == {"K-S p_value", "chi-square p_value", "Z-test p_value",
                       "Wasserstein distance (normed)", "Jensen-Shannon distance"}, methods
    assert {row[4] for row in TABLE} == {True, False}
    print("\ncolumn | ref rows | Evidently method | Evidently score | drifted | ours score | drifted")
    for c, n, m, s, d, _, os_, od in TABLE:
        print(f"{c} | {n} | {m} | {s:.6g} | {d} | {os_:.6g} | {od}")
