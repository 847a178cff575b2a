"""Conformance of the driftwatch-udfs statistics against numpy / scipy (DESIGN.md §6).

Data is generated here with numpy (several distributions, sizes 10 … 100 000, ties, a
constant column, NaNs in the current window), written to Parquet, and evaluated by the
`eval_stats` example binary of the `driftwatch-udfs` crate:

    cargo build -p driftwatch-udfs --example eval_stats
    pytest tests/python/test_udfs_conformance.py

The binary is taken from $DRIFTWATCH_EVAL_STATS, else target/debug/examples/eval_stats
(built on demand with cargo).
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-9
PSI_EPS = 1e-4

# worst relative error seen per statistic, printed at the end (pytest -s)
WORST = {}


def eval_stats_binary():
    env = os.environ.get("DRIFTWATCH_EVAL_STATS")
    if env:
        return env
    exe = ROOT / "target" / "debug" / "examples" / "eval_stats"
    if not exe.exists():
        subprocess.run(
            ["cargo", "build", "-p", "driftwatch-udfs", "--example", "eval_stats"],
            cwd=ROOT,
            check=True,
        )
    return str(exe)


def run_eval(tmp_path, ref_cols, cur_cols):
    rp, cp = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    pq.write_table(pa.table(ref_cols), rp)
    pq.write_table(pa.table(cur_cols), cp)
    out = subprocess.run(
        [eval_stats_binary(), str(rp), str(cp)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def close(name, got, want, rtol=RTOL):
    """Relative error check (NaN / None agree with each other)."""
    if want is None or (isinstance(want, float) and np.isnan(want)):
        assert got is None or np.isnan(got), f"{name}: got {got}, want NaN/NULL"
        return
    assert got is not None, f"{name}: got NULL, want {want}"
    err = abs(got - want) / abs(want) if want != 0 else abs(got)
    WORST[name] = max(WORST.get(name, 0.0), err)
    assert err <= rtol or abs(got - want) <= 1e-300, f"{name}: got {got!r}, want {want!r}, rel err {err:.3e}"


def default_edges(ref):
    """Bin edges of a baseline profiled with the default options: equal-frequency deciles,
    np.unique(np.quantile(ref, np.linspace(0, 1, 11))); constant data gets [c - 0.5, c + 0.5]
    (np.histogram_bin_edges' convention)."""
    e = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    if len(e) < 2:
        e = np.array([e[0] - 0.5, e[0] + 0.5])
    return e


def reference_stats(ref, cur):
    ref = ref[np.isfinite(ref)]
    cur = cur[np.isfinite(cur)]
    res = {}
    if len(cur) == 0 or len(ref) == 0:
        return dict.fromkeys(
            ["wasserstein", "wasserstein_norm", "ks_stat", "ks_pvalue", "psi", "js_distance"]
        )
    w = stats.wasserstein_distance(cur, ref)
    res["wasserstein"] = w
    res["wasserstein_norm"] = w / max(np.std(ref), 0.001)
    ks = stats.ks_2samp(cur, ref, alternative="two-sided", method="auto")
    res["ks_stat"] = float(ks.statistic)
    res["ks_pvalue"] = float(ks.pvalue)
    edges = default_edges(ref)
    c = np.histogram(np.clip(cur, edges[0], edges[-1]), edges)[0]
    r = np.histogram(ref, edges)[0]
    pc, pr = c / c.sum(), r / r.sum()
    pc = np.where(pc == 0, PSI_EPS, pc)
    pr = np.where(pr == 0, PSI_EPS, pr)
    res["psi"] = float(np.sum((pc - pr) * np.log(pc / pr)))
    res["js_distance"] = float(jensenshannon(c, r, base=2))
    res["_edges"] = edges
    return res


def make_columns(rng, n, shift):
    return {
        "normal": rng.normal(10.0 + shift, 2.0, n),
        "lognormal": rng.lognormal(0.0 + shift / 4, 0.7, n),
        "uniform": rng.uniform(-1.0, 1.0 + shift, n),
        "ties": rng.poisson(3.0 + shift, n).astype(np.int64),
        "constant": np.full(n, 4.25),
    }


CASES = [
    # (ref size, cur size, shift) — exact KS for max(n) <= 10000, asymptotic beyond
    (10, 10, 0.0),
    (37, 10, 0.5),
    (200, 200, 0.1),
    (1000, 333, 0.05),
    (5000, 3000, 0.02),
    (10000, 7000, 0.01),
    (20000, 120, 0.3),     # asymptotic, n = round(en) <= 140
    (20000, 500, 0.05),    # asymptotic, n in (140, 100000]
    (100000, 30, 1.0),     # asymptotic, small n, tiny p
    (100000, 60000, 0.01), # asymptotic, large n
]


@pytest.mark.parametrize("n_ref,n_cur,shift", CASES)
def test_drift_and_outliers_match_scipy(tmp_path, n_ref, n_cur, shift):
    rng = np.random.default_rng(n_ref * 7919 + n_cur)
    ref = make_columns(rng, n_ref, 0.0)
    cur = make_columns(rng, n_cur, shift)
    cur["normal"][:: max(n_cur // 5, 1)] = np.nan  # NaNs are ignored
    got = run_eval(tmp_path, ref, cur)

    for col in ref:
        r = ref[col].astype(np.float64)
        c = cur[col].astype(np.float64)
        want = reference_stats(r, c)
        g = got[col]
        np.testing.assert_array_equal(np.array(g["profile"]["bin_edges"]), want["_edges"])
        for k in ["wasserstein", "wasserstein_norm", "ks_stat", "ks_pvalue", "psi", "js_distance"]:
            close(f"{k}", g[k], want[k])
        # zscore against sample mean / std (ddof 1); std == 0 -> NULL
        fin = r[np.isfinite(r)]
        mean, sd = fin.mean(), fin.std(ddof=1)
        zs = g["zscore"]
        for i, x in enumerate(c):
            if not np.isfinite(x) or sd == 0:
                assert zs[i] is None
            else:
                close("zscore", zs[i], (x - mean) / sd, rtol=1e-9 if abs((x - mean) / sd) > 1e-6 else 1e-3)

    # mahalanobis over all numeric columns (complete rows of ref)
    R = np.column_stack([ref[k].astype(np.float64) for k in ref])
    R = R[np.all(np.isfinite(R), axis=1)]
    mu = R.mean(axis=0)
    VI = np.linalg.pinv(np.cov(R.T, ddof=1))
    C = np.column_stack([cur[k].astype(np.float64) for k in cur])
    md = got["__mahalanobis"]
    for i, row in enumerate(C):
        if not np.all(np.isfinite(row)):
            assert md[i] is None
            continue
        d = row - mu
        want = float(np.sqrt(max(d @ VI @ d, 0.0)))
        close("mahalanobis", md[i], want, rtol=1e-8)


def test_empty_current_window_is_null(tmp_path):
    rng = np.random.default_rng(1)
    ref = {"x": rng.normal(size=100)}
    cur = {"x": np.array([np.nan, np.nan])}
    got = run_eval(tmp_path, ref, cur)
    for k in ["wasserstein", "wasserstein_norm", "ks_stat", "ks_pvalue", "psi", "js_distance"]:
        assert got["x"][k] is None


def test_print_worst_errors():
    """Runs last (file order); shows the max relative errors with `pytest -s`."""
    for k, v in sorted(WORST.items()):
        print(f"max rel err {k:18s} {v:.3e}")
