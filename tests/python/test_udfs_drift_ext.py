"""Conformance of the issue-3 statistics (drift, window, outlier, detectors) against
numpy / scipy / scikit-learn / River, on data generated here and evaluated by the
`eval_stats` example binary (see test_udfs_conformance.py for how it is built).

p-value methods: cvm_pvalue is scipy's method='auto' (exact when both samples have <= 20
values, else asymptotic) — both paths are exercised; anderson_pvalue is scipy's
interpolated value capped to [0.001, 0.25]; chi2_stat / chi2_pvalue are
scipy.stats.chi2_contingency([window counts, baseline counts]) (scipy defaults) after dropping
bins empty on both sides; chi2_gof_stat / chi2_gof_pvalue are scipy.stats.chisquare against the
baseline shares (unseen categories pooled with share 1e-4).

    pytest -s tests/python/test_udfs_drift_ext.py
"""

import warnings

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon, pdist

from test_udfs_conformance import (
    CASES, PSI_EPS, RTOL, WORST, close, default_edges, make_columns, run_eval,
)

EPS_UNSEEN = 1e-4
# Asymptotic Cramér–von Mises p = 1 − cdf is computed by subtraction (in scipy as here), so
# its absolute precision is ~1e-15: compare p-values with rel 1e-9 OR abs 1e-13.
P_ATOL = 1e-13


def close_p(name, got, want):
    if want is not None and got is not None:
        WORST[name + " (abs)"] = max(WORST.get(name + " (abs)", 0.0), abs(got - want))
        if want > 1e-6:
            err = abs(got - want) / want
            WORST[name + " (p>1e-6)"] = max(WORST.get(name + " (p>1e-6)", 0.0), err)
    if want is not None and got is not None and abs(got - want) <= P_ATOL:
        err = abs(got - want) / abs(want) if want != 0 else abs(got)
        WORST[name] = max(WORST.get(name, 0.0), err)
        return
    close(name, got, want)


def proportions_ref(r, c):
    return c / c.sum(), r / r.sum()


def binned_refs(c, r):
    """All binned statistics of count vectors c (current) vs r (reference)."""
    out = {}
    if c.sum() == 0 or r.sum() == 0:
        return dict.fromkeys(["psi", "js_distance", "kl_div", "hellinger", "tvd", "l_inf",
                              "chi2_stat", "chi2_pvalue", "chi2_gof_stat", "chi2_gof_pvalue"])
    p, q = c / c.sum(), r / r.sum()
    pf, qf = np.where(p == 0, PSI_EPS, p), np.where(q == 0, PSI_EPS, q)
    out["psi"] = float(np.sum((pf - qf) * np.log(pf / qf)))
    out["kl_div"] = float(np.sum(pf * np.log(pf / qf)))
    out["js_distance"] = float(jensenshannon(c, r, base=2))
    out["hellinger"] = float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / np.sqrt(2))
    out["tvd"] = float(np.sum(np.abs(p - q)) / 2)
    out["l_inf"] = float(np.max(np.abs(p - q)))
    seen = r > 0
    unseen = c[~seen].sum()
    scale = 1 + EPS_UNSEEN if unseen > 0 else 1.0
    n, b = c.sum(), r.sum()
    f_obs = c[seen].astype(float)
    f_exp = n * ((r[seen] / b) / scale)
    if unseen > 0:
        f_obs = np.append(f_obs, unseen)
        f_exp = np.append(f_exp, n * (EPS_UNSEEN / scale))
    if len(f_obs) < 2:
        out["chi2_gof_stat"] = out["chi2_gof_pvalue"] = None
    else:
        res = stats.chisquare(f_obs, f_exp)
        out["chi2_gof_stat"], out["chi2_gof_pvalue"] = float(res.statistic), float(res.pvalue)
    table = np.array([c, r])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        out["chi2_stat"] = out["chi2_pvalue"] = None
    else:
        res = stats.chi2_contingency(table)
        out["chi2_stat"], out["chi2_pvalue"] = float(res.statistic), float(res.pvalue)
    return out


def sample_refs(ref, cur):
    out = {"energy_distance": None, "cvm_stat": None, "cvm_pvalue": None,
           "anderson_stat": None, "anderson_pvalue": None}
    if len(cur) == 0 or len(ref) == 0:
        return out
    out["energy_distance"] = float(stats.energy_distance(cur, ref))
    if len(cur) >= 2 and len(ref) >= 2:
        r = stats.cramervonmises_2samp(cur, ref, method="auto")
        out["cvm_stat"], out["cvm_pvalue"] = float(r.statistic), float(r.pvalue)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = stats.anderson_ksamp([cur, ref], variant="midrank")
        if np.isfinite(a.statistic):
            out["anderson_stat"], out["anderson_pvalue"] = float(a.statistic), float(a.pvalue)
    except ValueError:
        pass
    return out


def cusum_ref(xs, warm=30, k=0.5, h=5.0):
    out, buf, sp, sm = [], [], 0.0, 0.0
    mu = sd = 0.0
    for pos, x in enumerate(xs, start=1):
        if np.isnan(x):
            continue
        if len(buf) < warm:
            buf.append(x)
            if len(buf) == warm:
                mu, sd = np.mean(buf), np.std(buf, ddof=1)
                sp = sm = 0.0
            continue
        z = (x - mu) / sd if sd > 0 else (0.0 if x == mu else np.sign(x - mu) * np.inf)
        sp, sm = max(0.0, sp + z - k), max(0.0, sm - z - k)
        if sp > h or sm > h:
            out.append(pos)
            buf = []
    return out


def river_positions(det, xs):
    out = []
    for pos, x in enumerate(xs, start=1):
        if np.isnan(x):
            continue
        det.update(float(x))
        if det.drift_detected:
            out.append(pos)
    return out


def check_numeric(g, r, c):
    rf, cf = r[np.isfinite(r)], c[np.isfinite(c)]
    edges = default_edges(rf)
    hc = np.histogram(np.clip(cf, edges[0], edges[-1]), edges)[0]
    hr = np.histogram(rf, edges)[0]
    for k, v in binned_refs(hc, hr).items():
        (close_p if k.endswith("pvalue") else close)(k, g[k], v)
    for k, v in sample_refs(rf, cf).items():
        (close_p if k.endswith("pvalue") else close)(k, g[k], v)
    assert g["histogram"] == hc.tolist()
    for q in ["0", "0.1", "0.5", "0.9", "1"]:
        want = float(np.quantile(cf, float(q))) if len(cf) else None
        close("quantile", g[f"quantile_{q}"], want, rtol=1e-15)
    assert g["missing_count"] == int(np.isnan(c).sum())
    close("missing_rate", g["missing_rate"], float(np.isnan(c).mean()), rtol=1e-15)
    q1, q3 = np.quantile(rf, [0.25, 0.75])
    for key, kk in [("iqr_outlier", 1.5), ("iqr_outlier_3", 3.0)]:
        lo, hi = q1 - kk * (q3 - q1), q3 + kk * (q3 - q1)
        want = [None if np.isnan(x) else bool(x < lo or x > hi) for x in c]
        assert g[key] == want, key
    want = [None if np.isnan(x) else bool(x < rf.min() or x > rf.max()) for x in c]
    assert g["out_of_range"] == want


def check_detectors(g, c):
    from river import drift

    assert g["page_hinkley"] == river_positions(drift.PageHinkley(), c)
    if np.all((c[np.isfinite(c)] >= 0) & (c[np.isfinite(c)] <= 1)):
        assert g["ddm"] == river_positions(drift.binary.DDM(), c)
    assert g["cusum"] == cusum_ref(c)


_MASK64 = (1 << 64) - 1


def _mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def row_hash(row):
    """Port of `driftwatch_udfs::math::mmd::row_hash` (-0.0 hashed as +0.0)."""
    h = 0x6D6D645F726F7773
    for v in np.asarray(row, dtype=np.float64) + 0.0:
        h = _mix64(h ^ int(np.float64(v).view(np.uint64)))
    return h


def mmd_rows(R, C):
    """Documented rows: reference = baseline row sample (complete rows, <= 1000 at positions
    (2i + 1)·N // 2000); window = complete rows, above 1000 the 1000 smallest by
    (row hash, row), then sorted lexicographically. None when a side has fewer than 2
    rows."""
    R = R[np.all(np.isfinite(R), axis=1)]
    C = C[np.all(np.isfinite(C), axis=1)]
    if len(R) > 1000:
        R = R[(2 * np.arange(1000) + 1) * len(R) // 2000]
    if len(C) > 1000:
        order = sorted(range(len(C)), key=lambda i: (row_hash(C[i]), tuple(C[i])))
        C = C[order[:1000]]
    C = C[np.lexsort(C.T[::-1])]
    if len(C) < 2 or len(R) < 2:
        return None
    return R, C


def mmd_ref(R, C):
    """Documented mmd: on the rows of `mmd_rows`, median-heuristic bandwidth from the
    reference rows."""
    rows = mmd_rows(R, C)
    if rows is None:
        return None
    R, C = rows
    sigma = float(np.median(pdist(R)))
    sigma = sigma if sigma > 0 else 1.0

    def k(a, b):
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma**2))

    m, n = len(C), len(R)
    kxx, kyy, kxy = k(C, C), k(R, R), k(C, R)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.sum() / (m * n))


def c_path(n):
    if n <= 1:
        return 0.0
    if n <= 2:
        return 1.0
    return 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


def iforest_ref(forest, C):
    cols = forest["columns"]
    cn = c_path(forest["sample_size"])
    out = []
    for row in C:
        if not np.all(np.isfinite(row)):
            out.append(None)
            continue
        total = 0.0
        for t in forest["trees"]:
            i, depth = 0, 0
            while t[i][0] >= 0:
                f, thr, left, right, _ = t[i]
                i = left if row[f] <= thr else right
                depth += 1
            total += depth + c_path(t[i][4])
        out.append(2.0 ** (-(total / len(forest["trees"])) / cn))
    assert len(cols) == C.shape[1]
    return out


@pytest.mark.parametrize("n_ref,n_cur,shift", CASES)
def test_numeric_drift_window_outliers(tmp_path, n_ref, n_cur, shift):
    rng = np.random.default_rng(n_ref * 7919 + n_cur + 3)
    ref = make_columns(rng, n_ref, 0.0)
    cur = make_columns(rng, n_cur, shift)
    cur["normal"][:: max(n_cur // 5, 1)] = np.nan
    got = run_eval(tmp_path, ref, cur)
    for col in ref:
        r, c = ref[col].astype(np.float64), cur[col].astype(np.float64)
        check_numeric(got[col], r, c)
        check_detectors(got[col], c)
    R = np.column_stack([ref[k].astype(np.float64) for k in ref])
    C = np.column_stack([cur[k].astype(np.float64) for k in cur])
    want = mmd_ref(R, C)
    close("mmd", got["__mmd"], want, rtol=1e-9) if want is None or abs(want) > 1e-6 else \
        assert_abs(got["__mmd"], want, 1e-13)
    for i, (g, w) in enumerate(zip(got["__iforest"], iforest_ref(got["__forest"], C))):
        close("isolation_forest_score", g, w, rtol=1e-12)


def assert_abs(got, want, atol):
    assert got is not None and abs(got - want) <= atol, (got, want)


@pytest.mark.parametrize("seed", range(12))
def test_small_samples_exact_cvm_and_ties(tmp_path, seed):
    """n <= 20: exact Cramér–von Mises p-values (with ties), anderson edge cases."""
    rng = np.random.default_rng(seed)
    n_ref, n_cur = int(rng.integers(2, 21)), int(rng.integers(2, 21))
    ref = {"ties": rng.poisson(2.0, n_ref).astype(np.float64),
           "cont": rng.normal(0, 1, n_ref)}
    cur = {"ties": rng.poisson(2.0 + seed % 3, n_cur).astype(np.float64),
           "cont": rng.normal(seed % 2, 1, n_cur)}
    got = run_eval(tmp_path, ref, cur)
    for col in ref:
        rf, cf = ref[col], cur[col]
        for k, v in sample_refs(rf, cf).items():
            (close_p if k.endswith("pvalue") else close)(k, got[col][k], v)


@pytest.mark.parametrize("n_ref,n_cur", [(50, 10), (2000, 700), (100000, 5000)])
def test_categorical_drift(tmp_path, n_ref, n_cur):
    rng = np.random.default_rng(n_ref + n_cur)
    cats = np.array(["a", "b", "c", "d", "e"])
    ref = {"x": rng.normal(size=n_ref),
           "cat": cats[rng.choice(5, n_ref, p=[0.4, 0.3, 0.15, 0.1, 0.05])]}
    cur_cats = np.append(cats[:4], ["zz", "new"])  # 'e' absent, two unseen categories
    cur = {"x": rng.normal(size=n_cur),
           "cat": cur_cats[rng.choice(6, n_cur, p=[0.3, 0.3, 0.2, 0.1, 0.06, 0.04])]}
    got = run_eval(tmp_path, ref, cur)
    ref_vals, ref_counts = np.unique(ref["cat"], return_counts=True)
    cur_vals, cur_counts = np.unique(cur["cat"], return_counts=True)
    cur_map = dict(zip(cur_vals, cur_counts))
    unseen = sorted(v for v in cur_vals if v not in set(ref_vals))
    c = np.array([cur_map.get(v, 0) for v in ref_vals] + [cur_map[v] for v in unseen])
    r = np.append(ref_counts, np.zeros(len(unseen), dtype=int))
    for k, v in binned_refs(c, r).items():
        (close_p if k.endswith("pvalue") else close)(f"{k}(categorical)", got["cat"][k], v)


@pytest.mark.parametrize("n_ref,n_cur", [(50, 10), (3000, 800)])
def test_low_cardinality_integers_are_categories(tmp_path, n_ref, n_cur):
    """An integer class label with at most 5 distinct baseline values (Evidently's rule) is
    compared as categories — its decimal text, sorted as text — against scipy, with no CAST."""
    rng = np.random.default_rng(7 * n_ref + n_cur)
    ref = {"label": rng.choice([0, 1, 2, 10], n_ref, p=[0.4, 0.3, 0.2, 0.1]).astype(np.int64)}
    cur = {"label": rng.choice([0, 1, 2, 7], n_cur, p=[0.3, 0.3, 0.3, 0.1]).astype(np.int64)}
    got = run_eval(tmp_path, ref, cur)
    ref_txt, cur_txt = ref["label"].astype(str), cur["label"].astype(str)
    ref_vals, ref_counts = np.unique(ref_txt, return_counts=True)
    cur_vals, cur_counts = np.unique(cur_txt, return_counts=True)
    cur_map = dict(zip(cur_vals, cur_counts))
    unseen = sorted(v for v in cur_vals if v not in set(ref_vals))
    c = np.array([cur_map.get(v, 0) for v in ref_vals] + [cur_map[v] for v in unseen])
    r = np.append(ref_counts, np.zeros(len(unseen), dtype=int))
    for k, v in binned_refs(c, r).items():
        (close_p if k.endswith("pvalue") else close)(f"{k}(integer categories)",
                                                      got["label#categorical"][k], v)


@pytest.mark.parametrize("seed", range(4))
def test_detectors_match_river(tmp_path, seed):
    rng = np.random.default_rng(100 + seed)
    n = 3000
    err = np.concatenate([rng.random(1500) < 0.1, rng.random(1500) < 0.1 + 0.1 * seed]).astype(float)
    level = np.concatenate([rng.normal(0, 1, 1000), rng.normal(0.5 * seed, 1, 1000),
                            rng.normal(-seed, 2, 1000)])
    level[::97] = np.nan
    ref = {"err": err, "level": level}
    got = run_eval(tmp_path, ref, {"err": err, "level": level})
    assert len(err) == n
    for col in ref:
        check_detectors(got[col], ref[col])
    if seed > 0:
        assert got["err"]["ddm"] and got["level"]["page_hinkley"] and got["level"]["cusum"]


def test_nulls_and_constant_columns(tmp_path):
    rng = np.random.default_rng(5)
    ref = {"x": rng.normal(size=500), "k": np.full(500, 2.0)}
    vals = rng.normal(size=200)
    mask = np.zeros(200, dtype=bool)
    mask[::7] = True
    vals[::11] = np.nan
    cur = {"x": pa.array(vals, mask=mask), "k": np.full(200, 2.0)}
    got = run_eval(tmp_path, ref, cur)
    # NULL and NaN are both missing
    assert got["x"]["missing_count"] == int(mask.sum() + (np.isnan(vals) & ~mask).sum())
    cf = vals[~mask & np.isfinite(vals)]
    close("quantile", got["x"]["quantile_0.5"], float(np.median(cf)), rtol=1e-15)
    g = got["k"]
    # constant baseline & window: distances 0, fences collapse to the constant
    assert g["energy_distance"] == 0.0 and g["hellinger"] == 0.0 and g["tvd"] == 0.0
    assert g["out_of_range"] == [False] * 200 and g["iqr_outlier"] == [False] * 200
    # anderson: one distinct value -> scipy raises -> NULL; cvm: statistic defined
    assert g["anderson_pvalue"] is None
    close("cvm_stat", g["cvm_stat"], float(stats.cramervonmises_2samp(cur["k"], ref["k"]).statistic))


def test_iforest_agrees_with_sklearn(tmp_path):
    """Same algorithm as sklearn's IsolationForest (different random streams): scores rank
    the same injected outliers on top and correlate strongly."""
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(11)
    ref = {"a": rng.normal(size=5000), "b": rng.normal(size=5000) * 2}
    cur = {"a": np.append(rng.normal(size=300), rng.normal(6, 0.5, 20)),
           "b": np.append(rng.normal(size=300) * 2, rng.normal(-8, 0.5, 20))}
    got = np.array(run_eval(tmp_path, ref, cur)["__iforest"], dtype=float)
    R = np.column_stack([ref["a"], ref["b"]])
    C = np.column_stack([cur["a"], cur["b"]])
    sk = -IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(R).score_samples(C)
    rho = stats.spearmanr(got, sk).statistic
    assert rho > 0.9, rho
    assert set(np.argsort(got)[-20:]) == set(range(300, 320))
    assert set(np.argsort(sk)[-20:]) == set(range(300, 320))


def test_print_worst_errors_ext():
    for k, v in sorted(WORST.items()):
        print(f"max rel err {k:28s} {v:.3e}")
