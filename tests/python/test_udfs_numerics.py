"""Numerics at every size (issue 12, item 1), through `driftwatch run` / `driftwatch query`
over Parquet, against numpy / scipy / scikit-learn on the same data:

* `anderson_stat` / `anderson_pvalue` on 3 M + 1 M values (N³ no longer fits in u64);
* `mahalanobis` with collinear one-hot columns: the pseudo-inverse keeps exactly the
  eigenpairs `numpy.linalg.pinv(np.cov(X.T))` keeps, so a gross outlier is neither ~1e7 nor 0;
* a column constant in the baseline: left out of the quadratic form, +inf when the row differs;
* `WITH (covariance = 'ledoit_wolf')`: sklearn's `LedoitWolf().fit(X)` covariance_ and
  distances.

    pytest -s tests/python/test_udfs_numerics.py
"""

import json
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from sklearn.covariance import LedoitWolf

from dw_server import BIN
from test_udfs_conformance import close


def make_baselines(tmp, sql):
    """Runs `sql` (CREATE BASELINE statements) into a fresh data dir."""
    path = tmp / "baseline.sql"
    path.write_text(sql)
    data_dir = tmp / "data"
    out = subprocess.run([str(BIN), "run", str(path), "--data-dir", str(data_dir)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return data_dir


def query(data_dir, sql):
    out = subprocess.run([str(BIN), "query", sql, "--data-dir", str(data_dir), "--format", "json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def query_column(data_dir, sql):
    """The single column of `sql` as floats, via CSV (JSON has no ±inf: it writes them as null);
    NULL → None."""
    out = subprocess.run([str(BIN), "query", sql, "--data-dir", str(data_dir), "--format", "csv"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()[1:]
    return [None if v in ("", "\"\"") else float(v) for v in lines]


def stored_covariance(data_dir, name):
    """The covariance part of a stored profile (every float is a string there)."""
    prof = json.loads((data_dir / "baselines" / name / "profile.json").read_text())
    cov = prof["covariance"]
    k = len(cov["columns"])
    return (np.array([float(v) for v in cov["covariance"]]).reshape(k, k),
            float(cov.get("shrinkage", "0")), prof)


def test_anderson_3m_plus_1m_matches_scipy(tmp_path):
    # 3 M reference values (all kept: max_sample = 3000000) + a 1 M-value window, below the
    # size at which sorted drift statistics switch to their sketch: the exact statistic at
    # N = 4 M, where N³ (6.4e19) exceeds u64
    rng = np.random.default_rng(20261201)
    ref = np.round(rng.normal(0.0, 1.0, 3_000_000), 3)
    cur = np.round(rng.normal(0.001, 1.0, 1_000_000), 3)
    pq.write_table(pa.table({"x": ref}), tmp_path / "ref.parquet")
    pq.write_table(pa.table({"x": cur}), tmp_path / "cur.parquet", row_group_size=250_000)
    data_dir = make_baselines(
        tmp_path,
        f"CREATE BASELINE ref FROM '{tmp_path / 'ref.parquet'}' WITH (max_sample = 3000000);\n")
    got = query(data_dir, "SELECT anderson_stat(x, 'ref') AS s, anderson_pvalue(x, 'ref') AS p "
                          f"FROM '{tmp_path / 'cur.parquet'}'")[0]
    want = stats.anderson_ksamp([cur, ref], variant="midrank")
    # the p-value is interpolated, not capped: the whole formula is exercised
    assert 0.001 < want.pvalue < 0.25
    close("anderson_stat (3M + 1M)", got["s"], float(want.statistic))
    close("anderson_pvalue (3M + 1M)", got["p"], float(want.pvalue))


def one_hot_baseline(rng, n):
    """3 one-hot columns (exactly collinear: they sum to 1) and 2 numeric ones."""
    cat = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    hot = np.eye(3)[cat]
    return {
        "a": hot[:, 0], "b": hot[:, 1], "c": hot[:, 2],
        "x": rng.normal(10.0, 2.0, n),
        "y": rng.normal(-3.0, 0.5, n) + 0.3 * cat,
    }


def numpy_distances(R, C):
    mu = R.mean(axis=0)
    vi = np.linalg.pinv(np.cov(R.T, ddof=1))
    d = C - mu
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, vi, d), 0.0))


def test_mahalanobis_collinear_one_hot_matches_numpy(tmp_path):
    rng = np.random.default_rng(7)
    ref = one_hot_baseline(rng, 50_000)
    normal = one_hot_baseline(rng, 200)
    gross = {  # two, three or no hot columns, numeric outliers: all far from the baseline
        "a": [1.0, 1.0, 0.0, 1.0, 5.0], "b": [1.0, 0.0, 0.0, 1.0, -3.0],
        "c": [0.0, 1.0, 0.0, 1.0, 2.0], "x": [25.0, 40.0, -20.0, 40.0, 10.0],
        "y": [-3.0, 5.0, -9.0, 5.0, -3.0],
    }
    cur = {k: np.concatenate([normal[k], gross[k]]) for k in ref}
    pq.write_table(pa.table(ref), tmp_path / "ref.parquet")
    pq.write_table(pa.table(cur), tmp_path / "cur.parquet")
    data_dir = make_baselines(tmp_path, f"CREATE BASELINE ref FROM '{tmp_path / 'ref.parquet'}';\n")
    cols = list(ref)
    R = np.column_stack([ref[k] for k in cols])
    C = np.column_stack([cur[k] for k in cols])
    # numpy's own pinv is sound on this data: one eigenvalue below its cut (1e-15 · max),
    # the others far above, so "equal to numpy" is well defined
    s = np.linalg.svd(np.cov(R.T), compute_uv=False)
    assert s[-1] < 1e-15 * s[0] < 1e-6 * s[-2]
    got = query(data_dir, "SELECT mahalanobis(a, b, c, x, y, 'ref') AS m, "
                          "mahalanobis(a, b, x, 'ref') AS sub "
                          f"FROM '{tmp_path / 'cur.parquet'}'")
    want = numpy_distances(R, C)
    want_sub = numpy_distances(R[:, [0, 1, 3]], C[:, [0, 1, 3]])
    for i, row in enumerate(got):
        close("mahalanobis one-hot", row["m"], float(want[i]), rtol=1e-9)
        close("mahalanobis subset", row["sub"], float(want_sub[i]), rtol=1e-9)
    gross_got = [row["m"] for row in got[200:]]
    assert min(gross_got) > 5.0, gross_got  # never 0, never rounding-noise sized
    assert max(gross_got) < 1e3, gross_got
    # the stored covariance is np.cov's
    cov, shrinkage, prof = stored_covariance(data_dir, "ref")
    np.testing.assert_allclose(cov, np.cov(R.T), rtol=1e-12, atol=1e-15)
    assert shrinkage == 0.0 and prof["covariance_method"] == "sample"


def test_mahalanobis_constant_column(tmp_path):
    rng = np.random.default_rng(11)
    n = 2000
    ref = {"x": rng.normal(0.0, 1.0, n), "k": np.full(n, 0.1), "y": rng.normal(5.0, 3.0, n)}
    # rows 0-2 match the constant; row 3 differs only in it (by 1e-12); row 4 NULL there
    cur = pa.table({
        "x": [0.5, -2.0, 0.0, 0.5, 0.5],
        "k": [0.1, 0.1, 0.1, 0.1 + 1e-12, None],
        "y": [5.0, 11.0, 5.0, 5.0, 5.0],
    })
    pq.write_table(pa.table(ref), tmp_path / "ref.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet")
    data_dir = make_baselines(tmp_path, f"CREATE BASELINE ref FROM '{tmp_path / 'ref.parquet'}';\n")
    got = query_column(
        data_dir, f"SELECT mahalanobis(x, k, y, 'ref') AS m FROM '{tmp_path / 'cur.parquet'}'")
    R = np.column_stack([ref["x"], ref["k"], ref["y"]])
    C = np.array([[0.5, 0.1, 5.0], [-2.0, 0.1, 11.0], [0.0, 0.1, 5.0], [0.5, 0.1 + 1e-12, 5.0]])
    want = numpy_distances(R, C)
    for i in range(3):
        close("mahalanobis constant column", got[i], float(want[i]), rtol=1e-9)
    # numpy's pinv ignores the constant column: row 3 would score like row 0
    assert abs(want[3] - want[0]) < 1e-9
    assert got[3] == float("inf")
    assert got[4] is None


def test_mahalanobis_ledoit_wolf_matches_sklearn(tmp_path):
    rng = np.random.default_rng(5)
    n = 400
    ref = one_hot_baseline(rng, n)
    ref["z"] = ref["x"] * 0.5 + rng.normal(0.0, 1e-3, n)  # nearly collinear with x
    cur = one_hot_baseline(rng, 50)
    cur["z"] = cur["x"] * 0.5 + rng.normal(0.0, 1.0, 50)  # breaks the collinearity
    pq.write_table(pa.table(ref), tmp_path / "ref.parquet")
    pq.write_table(pa.table(cur), tmp_path / "cur.parquet")
    data_dir = make_baselines(
        tmp_path,
        f"CREATE BASELINE lw FROM '{tmp_path / 'ref.parquet'}' WITH (covariance = 'ledoit_wolf');\n")
    cols = list(ref)
    R = np.column_stack([ref[k] for k in cols])
    C = np.column_stack([cur[k] for k in cols])
    lw = LedoitWolf().fit(R)
    cov, shrinkage, prof = stored_covariance(data_dir, "lw")
    assert prof["covariance_method"] == "ledoit_wolf"
    assert shrinkage == pytest.approx(lw.shrinkage_, rel=1e-12)
    np.testing.assert_allclose(cov, lw.covariance_, rtol=1e-12, atol=1e-15)
    args = ", ".join(cols)
    got = query(data_dir, f"SELECT mahalanobis({args}, 'lw') AS m FROM '{tmp_path / 'cur.parquet'}'")
    want = np.sqrt(lw.mahalanobis(C))  # sklearn returns squared distances
    for i, row in enumerate(got):
        close("mahalanobis ledoit_wolf", row["m"], float(want[i]), rtol=1e-9)


def test_unknown_covariance_lists_the_allowed_values(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0]}), tmp_path / "ref.parquet")
    path = tmp_path / "b.sql"
    path.write_text(f"CREATE BASELINE b FROM '{tmp_path / 'ref.parquet'}' WITH (covariance = 'oas');\n")
    out = subprocess.run([str(BIN), "check", str(path)], capture_output=True, text=True)
    assert out.returncode != 0
    msg = out.stdout + out.stderr
    assert "option 'covariance' must be one of 'sample', 'ledoit_wolf'" in msg, msg
