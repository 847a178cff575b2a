"""Window statistics added in udfs/src/stats (`top_k`, `covariance_matrix`,
`correlation_matrix`) and the DataFusion sketches we rely on (`approx_percentile_cont`,
`approx_distinct`), checked against collections.Counter / numpy.

Data is generated here with numpy, written to Parquet with pyarrow (several row groups, so
DataFusion aggregates in partitions and merges the partial states), and queried with the
`driftwatch query` CLI (arbitrary SQL with every Driftwatch function registered):

    cargo build --bin driftwatch
    pytest -s tests/python/test_udfs_window_ext.py

The binary is $DRIFTWATCH_BIN, else $CARGO_TARGET_DIR/debug/driftwatch (CARGO_TARGET_DIR
defaults to target/), built on demand with cargo.

Sketch bounds (FUNCTIONS.md, "DataFusion built-ins"): the rank error of
approx_percentile_cont, the distance from q to [F_n(q̂⁻), F_n(q̂)] (the ranks the returned
value occupies; |F_n(q̂) − q| when q̂ is not a data value), is at most RANK_BOUND; the relative
error of approx_distinct is at most DISTINCT_BOUND. The measured maxima are printed with -s.
"""

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-9
# t-digest with δ = 100 centroids: a centroid spans at most 2/δ of the ranks (DataFusion's
# scale function q(k) = 2(k/δ)²), so interpolation errs by at most 1/δ.
RANK_BOUND = 0.01
# HyperLogLog with m = 2^14 registers: standard error 1.04/√m = 0.81 %; 3 % is 3.7 σ.
DISTINCT_BOUND = 0.03
QS = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]

WORST = {}


def note(name, err):
    WORST[name] = max(WORST.get(name, 0.0), err)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if WORST:
        print("\nworst errors (test_udfs_window_ext):")
        for k in sorted(WORST):
            print(f"  {k:45s} {WORST[k]:.3e}")


def driftwatch_binary():
    env = os.environ.get("DRIFTWATCH_BIN")
    if env:
        return env
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    exe = target / "debug" / "driftwatch"
    if not exe.exists():
        subprocess.run(["cargo", "build", "--bin", "driftwatch"], cwd=ROOT, check=True)
    return str(exe)


def write(tmp_path, name, cols):
    path = tmp_path / f"{name}.parquet"
    n = len(next(iter(cols.values())))
    pq.write_table(pa.table(cols), path, row_group_size=max(n // 6, 64))
    return path


def query(tmp_path, sql):
    out = subprocess.run(
        [driftwatch_binary(), "query", sql, "--data-dir", str(tmp_path / "dw-data"),
         "--format", "json"],
        capture_output=True, text=True, check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# ---------------------------------------------------------------- top_k

def expected_top_k(values, k):
    """The k most frequent non-None values: count descending, value ascending."""
    c = Counter(v for v in values if v is not None)
    top = sorted(c.items(), key=lambda e: (-e[1], e[0]))[:k]
    return [{"value": v, "count": n} for v, n in top] or None


VOCAB = ["a", "b", "c", "", "é", "Zeta", "naïve", "日本", "b ", "aa"] + [f"w{i:03d}" for i in range(90)]


@pytest.mark.parametrize("n", [0, 7, 300, 20_000, 200_000])
def test_top_k_matches_counter(tmp_path, n):
    rng = np.random.default_rng(1000 + n)
    # Zipf-like frequencies (few heavy values, many ties in the tail)
    p = 1.0 / np.arange(1, len(VOCAB) + 1) ** 1.1
    s = [VOCAB[i] for i in rng.choice(len(VOCAB), n, p=p / p.sum())]
    s = [None if m else v for v, m in zip(s, rng.random(n) < 0.05)]
    g = rng.integers(0, 3, n)
    ints = rng.poisson(20, n)
    bools = rng.random(n) < 0.3
    # every category exactly 5 times: all counts tie, order is by value
    tied = [VOCAB[i % 40] for i in range(n // 5 * 5)] + [None] * (n - n // 5 * 5)
    rng.shuffle(tied)
    path = write(tmp_path, "cats", {
        "s": pa.array(s, pa.string()),
        "g": pa.array(g, pa.int64()),
        "i": pa.array(ints, pa.int64()),
        "b": pa.array(bools, pa.bool_()),
        "t": pa.array(tied, pa.string()),
    })
    for k in [1, 3, 12, 1000]:
        rows = query(tmp_path, f"SELECT top_k(s, {k}) AS s, top_k(i, {k}) AS i, "
                               f"top_k(b, {k}) AS b, top_k(t, {k}) AS t FROM '{path}'")
        assert len(rows) == 1
        r = rows[0]
        assert r.get("s") == expected_top_k(s, k), k
        # integers and booleans are reported as text; ties in text order
        assert r.get("i") == expected_top_k([str(v) for v in ints], k), k
        assert r.get("b") == expected_top_k(["true" if v else "false" for v in bools], k), k
        assert r.get("t") == expected_top_k(tied, k), k
    if n == 0:
        return
    rows = query(tmp_path, f"SELECT g, top_k(s, 4) AS s FROM '{path}' GROUP BY g ORDER BY g")
    assert [r["g"] for r in rows] == sorted(set(g.tolist()))
    for r in rows:
        want = expected_top_k([v for v, gi in zip(s, g) if gi == r["g"]], 4)
        assert r.get("s") == want, r["g"]


# ------------------------------------------------ covariance / correlation matrices

def numeric_columns(rng, n):
    z = rng.normal(size=(n, 3))
    L = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-0.3, 0.5, 0.81]])
    x = z @ L.T
    return {
        "a": x[:, 0] * 3.0 + 10.0,
        "b": 1e6 + x[:, 1],                 # large mean: naive Σxy − n·x̄ȳ would cancel
        "c": rng.lognormal(0.0, 0.7, n) + x[:, 2],
        "d": rng.poisson(4.0, n).astype(np.int64),
    }


def close(name, got, want, scale=None):
    """Relative error; NaN (numpy) must be NULL (None). `scale` bounds the absolute error
    for entries that are 0 or nearly so in exact arithmetic."""
    if want is None or np.isnan(want):
        assert got is None, f"{name}: got {got}, want NaN/NULL"
        return
    assert got is not None, f"{name}: got NULL, want {want}"
    err = abs(got - want) / abs(want) if want != 0 else abs(got)
    note(name, err)
    ok = err <= RTOL or (scale is not None and abs(got - want) <= 1e-12 * scale)
    assert ok, f"{name}: got {got!r}, want {want!r}, rel err {err:.3e}"


def check_matrices(name, got_cov, got_cor, rows):
    k = rows.shape[1]
    if rows.shape[0] < 2:
        assert got_cov is None and got_cor is None, name
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = np.cov(rows.T, ddof=1)
        cor = np.corrcoef(rows.T)
    assert len(got_cov) == k * k and len(got_cor) == k * k
    for i in range(k):
        for j in range(k):
            p = i * k + j
            scale = float(np.sqrt(abs(cov[i, i] * cov[j, j])))
            close(f"{name} covariance", got_cov[p], float(cov[i, j]), scale)
            close(f"{name} correlation", got_cor[p], float(cor[i, j]), 1.0)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1000, 100_000, 1_000_000])
def test_moment_matrices_match_numpy(tmp_path, n):
    rng = np.random.default_rng(77 + n)
    cols = numeric_columns(rng, n)
    a = cols["a"].copy()
    if n >= 10:
        a[:: max(n // 7, 2)] = np.nan        # incomplete rows are skipped
        cols["c"][1 :: max(n // 5, 3)] = np.inf
    cols["a"] = a
    mask_b = rng.random(n) < 0.02
    b = pa.array(cols["b"], pa.float64(), mask=mask_b)
    g = rng.integers(0, 3, n)
    path = write(tmp_path, "num", {"a": cols["a"], "b": b, "c": cols["c"], "d": cols["d"],
                                   "g": pa.array(g, pa.int64()),
                                   "const": np.full(n, 3.0)})
    R = np.column_stack([cols["a"], np.where(mask_b, np.nan, cols["b"]), cols["c"],
                         cols["d"].astype(np.float64)])
    complete = np.all(np.isfinite(R), axis=1)

    sql = (f"SELECT covariance_matrix(a, b, c, d) AS cov, correlation_matrix(a, b, c, d) AS cor, "
           f"covariance_matrix(a, c) AS cov2, correlation_matrix(a, c) AS cor2, "
           f"covariance_matrix(a, const, d) AS covk, correlation_matrix(a, const, d) AS cork "
           f"FROM '{path}'")
    r = query(tmp_path, sql)[0]
    check_matrices("4 columns", r.get("cov"), r.get("cor"), R[complete])
    ac = R[:, [0, 2]]
    check_matrices("2 columns", r.get("cov2"), r.get("cor2"),
                   ac[np.all(np.isfinite(ac), axis=1)])
    # a constant column: numpy's NaN correlations are NULL; its covariances are exactly 0
    K = np.column_stack([R[:, 0], np.full(n, 3.0), R[:, 3]])
    K = K[np.all(np.isfinite(K), axis=1)]
    check_matrices("constant column", r.get("covk"), r.get("cork"), K)
    if len(K) >= 2:
        assert r["covk"][1] == 0.0 and r["covk"][4] == 0.0

    if n >= 10:
        rows = query(tmp_path, f"SELECT g, covariance_matrix(a, b, c, d) AS cov, "
                               f"correlation_matrix(a, b, c, d) AS cor FROM '{path}' "
                               f"GROUP BY g ORDER BY g")
        for row in rows:
            sel = complete & (g == row["g"])
            check_matrices("4 columns by group", row.get("cov"), row.get("cor"), R[sel])


# ------------------------------------------------ DataFusion sketches

def sketch_data(rng, dist, n):
    if dist == "normal":
        return rng.normal(50.0, 10.0, n)
    if dist == "lognormal":
        return rng.lognormal(0.0, 1.0, n)
    # uniform with ties: 1001 distinct values, about n/1001 copies each
    return np.round(rng.uniform(0.0, 100.0, n), 1)


def rank_error(sorted_x, qhat, q):
    """Distance from q to the ranks [F(q̂⁻), F(q̂)] taken by q̂ in the sample."""
    n = len(sorted_x)
    lo = np.searchsorted(sorted_x, qhat, "left") / n
    hi = np.searchsorted(sorted_x, qhat, "right") / n
    return 0.0 if lo <= q <= hi else min(abs(lo - q), abs(hi - q))


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000, 1_000_000])
@pytest.mark.parametrize("dist", ["normal", "lognormal", "uniform_ties"])
def test_sketches_within_documented_bounds(tmp_path, dist, n):
    rng = np.random.default_rng({"normal": 1, "lognormal": 2, "uniform_ties": 3}[dist] * 7919 + n)
    x = sketch_data(rng, dist, n)
    ids = rng.integers(0, n, n)            # ~63 % distinct integers
    path = write(tmp_path, "sketch", {"x": x, "id": pa.array(ids, pa.int64())})
    cols = [f"approx_percentile_cont(x, {q}) AS q{i}" for i, q in enumerate(QS)]
    # approx_distinct has no Float64 implementation in DataFusion: count the text form
    cols.append("approx_distinct(CAST(x AS VARCHAR)) AS dx")
    cols.append("approx_distinct(id) AS di")
    r = query(tmp_path, f"SELECT {', '.join(cols)} FROM '{path}'")[0]
    sx = np.sort(x)
    for i, q in enumerate(QS):
        err = rank_error(sx, r[f"q{i}"], q)
        note(f"rank error {dist} q={q}", err)
        note(f"rank error n={n}", err)
        assert err <= RANK_BOUND, f"{dist} n={n} q={q}: q̂={r[f'q{i}']} rank error {err:.4f}"
    for key, true in [("dx", len(np.unique(x))), ("di", len(np.unique(ids)))]:
        rel = abs(r[key] - true) / true
        note(f"approx_distinct rel error {dist if key == 'dx' else 'int ids'} n={n}", rel)
        assert rel <= DISTINCT_BOUND, f"{dist} n={n} {key}: {r[key]} vs {true} ({rel:.4f})"
