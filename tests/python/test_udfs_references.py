"""Independent references for `mmd_pvalue`, `isolation_forest_score` and the change detectors.

The other conformance tests check these functions against ports of their own definitions;
here each is compared with a library or a published example instead:

* `mmd_pvalue` against `scipy.stats.permutation_test` with the squared MMD written here from
  its textbook definition (Gretton et al. 2012, eq. 3: unbiased MMD²ᵤ, RBF kernel, median
  heuristic bandwidth of the reference rows as FUNCTIONS.md documents it): agreement in
  distribution over 50 data-set pairs, within the Monte-Carlo error of both tests.
* `isolation_forest_score` against scikit-learn's `IsolationForest` on the same data (rank
  agreement, the same planted outliers on top, separation), and its normalisation c(ψ)
  against sklearn's own `_average_path_length`.
* `cusum` against `detecta.detect_cusum` (fixed reference level: the tabular CUSUM) and the
  worked example of Montgomery, *Introduction to Statistical Quality Control*, Example 9.1
  (Tables 9.1/9.2: μ₀ = 10, σ = 1, k = ½, h = 5, signal at observation 29).
* `page_hinkley`, `ddm` and `adwin` with non-default parameters against River.

`mmd_pvalue` and the forest run through the `eval_stats` example (test_udfs_conformance.py),
the detectors through `driftwatch query` (test_udfs_window_ext.py).

    pytest -s tests/python/test_udfs_references.py
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist, pdist

from test_udfs_conformance import run_eval
from test_udfs_window_ext import query, write

PERMUTATIONS = 999

SUMMARY: dict[str, str] = {}


# ------------------------------------------------------------------ mmd_pvalue vs scipy

def textbook_mmd2_statistic(R, C):
    """(statistic(ix, iy, axis), observed) for scipy.stats.permutation_test on row indices:
    the unbiased MMD²ᵤ of Gretton et al. (2012, eq. 3) with k(a, b) = exp(−‖a − b‖²/(2σ²)),
    σ the median pairwise distance of the reference rows R (1 if that is 0), fixed for
    every permutation."""
    sigma = float(np.median(pdist(R)))
    sigma = sigma if sigma > 0 else 1.0
    Z = np.vstack([C, R])
    K = np.exp(-cdist(Z, Z, "sqeuclidean") / (2 * sigma**2))
    np.fill_diagonal(K, 0.0)  # the unbiased estimate leaves out i = j
    N = len(Z)

    def statistic(ix, iy, axis=-1):
        ix, iy = np.atleast_2d(ix), np.atleast_2d(iy)  # (batch, m), (batch, n)
        m, n = ix.shape[-1], iy.shape[-1]
        w = np.zeros((len(ix), N))
        np.put_along_axis(w, ix.astype(int), 1.0, axis=1)
        v = 1.0 - w
        Kw, Kv = w @ K, v @ K
        kxx = (Kw * w).sum(1) / (m * (m - 1))
        kyy = (Kv * v).sum(1) / (n * (n - 1))
        kxy = (Kw * v).sum(1) / (m * n)
        return kxx + kyy - 2 * kxy

    return statistic, float(statistic(np.arange(len(C)), np.arange(len(C), N))[0])


def mmd_columns(rng, n, shift, scale=1.0):
    return {"a": rng.normal(shift, 1.0, n),
            "b": rng.lognormal(0.0, 0.5, n) * scale,
            "c": rng.uniform(-1.0, 1.0, n) + 0.5 * shift}


def mmd_case(tmp_path, monkeypatch, seed, shift):
    rng = np.random.default_rng(7000 + seed)
    # ≤ 1000 rows on both sides: every complete row is used, whatever the sampling rule
    n_ref, n_cur = 150 + 10 * (seed % 6), 60 + 7 * (seed % 9)
    ref, cur = mmd_columns(rng, n_ref, 0.0), mmd_columns(rng, n_cur, shift)
    monkeypatch.setenv("DRIFTWATCH_MMD_PERMUTATIONS", str(PERMUTATIONS))
    got = run_eval(tmp_path, ref, cur)
    R = np.column_stack(list(ref.values()))
    C = np.column_stack(list(cur.values()))
    statistic, observed = textbook_mmd2_statistic(R, C)
    res = stats.permutation_test((np.arange(n_cur), np.arange(n_cur, n_cur + n_ref)), statistic,
                                 permutation_type="independent", vectorized=True,
                                 n_resamples=PERMUTATIONS, alternative="greater", batch=100,
                                 rng=np.random.default_rng(seed))
    assert got["__mmd"] == pytest.approx(observed, rel=1e-9, abs=1e-13)
    assert res.statistic == pytest.approx(observed, rel=1e-12)
    return got["__mmd_pvalue"][str(PERMUTATIONS)], float(res.pvalue)


def test_mmd_pvalue_agrees_with_scipy_permutation_test(tmp_path, monkeypatch):
    """50 data-set pairs: 30 without drift, 20 with shifts from barely to clearly visible.
    Both p-values are Monte-Carlo estimates (B = 999 permutations, different random
    permutations), so they must agree within the binomial error of both."""
    cases = [(s, 0.0) for s in range(30)] + [(30 + s, 0.05 + 0.025 * s) for s in range(20)]
    ours, ref = [], []
    for seed, shift in cases:
        p, q = mmd_case(tmp_path, monkeypatch, seed, shift)
        ours.append(p)
        ref.append(q)
    ours, ref = np.array(ours), np.array(ref)
    pbar = (ours + ref) / 2
    # standard error of the difference of two independent estimates of the same p
    se = np.sqrt(2 * pbar * (1 - pbar) / PERMUTATIONS) + 1.0 / (PERMUTATIONS + 1)
    diff = np.abs(ours - ref)
    assert np.all(diff <= 4.5 * se), list(zip(ours, ref, se))
    # on average within the Monte-Carlo error: E|N(0, se)| = 0.8·se
    assert diff.mean() <= 1.25 * se.mean(), (diff.mean(), se.mean())
    # the same decision at α = 0.05, except when a p-value is within 3 SE of α
    alpha = 0.05
    clear = np.abs(pbar - alpha) > 3 * se
    assert np.array_equal((ours < alpha)[clear], (ref < alpha)[clear])
    # under H0 both are (discretely) uniform; the shifts are detected
    h0 = slice(0, 30)
    ks_ours = stats.kstest(ours[h0], "uniform").pvalue
    ks_ref = stats.kstest(ref[h0], "uniform").pvalue
    assert ks_ours > 0.01 and ks_ref > 0.01, (ks_ours, ks_ref, sorted(ours[h0]))
    assert np.all(ours[-5:] < 0.05) and np.all(ref[-5:] < 0.05), (ours[-5:], ref[-5:])
    SUMMARY["mmd_pvalue"] = (
        f"50 pairs, B={PERMUTATIONS}: mean |p - scipy| = {diff.mean():.4f} "
        f"(mean SE {se.mean():.4f}, max |d|/SE {np.max(diff / se):.2f}); "
        f"H0 KS-uniformity p = {ks_ours:.3f} (scipy {ks_ref:.3f}); "
        f"rejections at 0.05: {int((ours < alpha).sum())} vs {int((ref < alpha).sum())}")


# ------------------------------------------------------------------ isolation forest vs sklearn

def planted(rng, d, n_in, n_out):
    """Correlated normal inliers (the last column uniform on [-2, 2]) and outliers 4–6 σ
    out in every coordinate (random signs), beyond the baseline's range in all of them: an
    isolation forest scores a point outside the training range like the most extreme
    training point in that direction, so only such points are unambiguous top outliers for
    any forest. The baseline has the inliers' distribution."""
    A = np.eye(d) + 0.6 * np.tri(d, k=-1)

    def inliers(n):
        X = rng.normal(size=(n, d)) @ A.T
        X[:, -1] = rng.uniform(-2, 2, n)
        return X

    sd = np.sqrt(np.diag(A @ A.T))
    sd[-1] = 2.0
    out = rng.choice([-1.0, 1.0], size=(n_out, d)) * rng.uniform(4, 6, (n_out, d)) * sd
    return inliers(4000), np.vstack([inliers(n_in), out])


@pytest.mark.parametrize("d,seed", [(2, 0), (3, 1), (4, 2), (6, 3)])
def test_iforest_scores_agree_with_sklearn(tmp_path, d, seed):
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(500 + seed)
    n_in, n_out = 400, 20
    R, C = planted(rng, d, n_in, n_out)
    cols = [f"f{i}" for i in range(d)]
    got = run_eval(tmp_path, dict(zip(cols, R.T)), dict(zip(cols, C.T)))
    ours = np.array(got["__iforest"], dtype=float)
    sk, sk2 = (-IsolationForest(n_estimators=100, max_samples=256, random_state=s).fit(R)
               .score_samples(C) for s in (seed, seed + 100))
    rho = stats.spearmanr(ours, sk).statistic
    # as close to sklearn as sklearn with another seed is (the trees' randomness)
    rho_sk = stats.spearmanr(sk2, sk).statistic
    assert rho >= 0.9 and rho >= rho_sk - 0.03, (rho, rho_sk)
    top = set(range(n_in, n_in + n_out))
    assert set(np.argsort(ours)[-n_out:]) == top
    assert set(np.argsort(sk)[-n_out:]) == top
    for s in (ours, sk):
        gap = s[n_in:].mean() - s[:n_in].mean()
        assert gap > 3 * s[:n_in].std(), gap
    SUMMARY[f"iforest d={d}"] = (f"Spearman {rho:.3f} (sklearn vs sklearn, other seed: "
                                 f"{rho_sk:.3f}); top {n_out} = planted in both")


@pytest.mark.parametrize("n_rows", [3, 5, 17, 64, 100, 255, 256, 1000])
def test_iforest_normalisation_is_sklearns(tmp_path, n_rows):
    """ψ = min(256, N): the exported trees re-scored with sklearn's `_average_path_length`
    for the leaves and for c(ψ) give our scores (so our c(n) is sklearn's, at every ψ)."""
    from sklearn.ensemble._iforest import _average_path_length

    def c(n):
        return float(_average_path_length(np.array([n]))[0])

    rng = np.random.default_rng(n_rows)
    R = rng.normal(size=(n_rows, 2))
    C = np.vstack([rng.normal(size=(30, 2)), [[5.0, -5.0], [0.0, 0.0]]])
    got = run_eval(tmp_path, {"a": R[:, 0], "b": R[:, 1]}, {"a": C[:, 0], "b": C[:, 1]})
    forest = got["__forest"]
    assert forest["sample_size"] == min(256, n_rows)
    cpsi = c(forest["sample_size"])
    for row, score in zip(C, got["__iforest"]):
        h = []
        for t in forest["trees"]:
            i, depth = 0, 0
            while t[i][0] >= 0:
                f, thr, left, right, _ = t[i]
                i = left if row[f] <= thr else right
                depth += 1
            h.append(depth + c(t[i][4]))
        assert score == pytest.approx(2.0 ** (-np.mean(h) / cpsi), rel=1e-12)


# ------------------------------------------------------------------ detectors via driftwatch query

def run_detectors(tmp_path, streams, exprs):
    """{stream id: {name: positions}} for `exprs` {name: SQL over the ordered list `xs`}."""
    sid = np.concatenate([np.full(len(v), i) for i, v in enumerate(streams)])
    idx = np.concatenate([np.arange(len(v)) for v in streams])
    x = np.concatenate(streams).astype(float)
    path = write(tmp_path, "streams", {"sid": sid, "i": idx, "x": x})
    agg = "array_agg(x ORDER BY i)"
    sel = ", ".join(f"{e.replace('xs', agg)} AS {n}" for n, e in exprs.items())
    rows = query(tmp_path, f"SELECT sid, {sel} FROM '{path}' GROUP BY sid")
    return {r["sid"]: r for r in rows}


def river_positions(det, xs):
    out = []
    for pos, x in enumerate(xs, start=1):
        if np.isnan(x):
            continue
        det.update(float(x))
        if det.drift_detected:
            out.append(pos)
    return out


def level_streams(rng, n=2500):
    t = np.arange(n)
    streams = [
        rng.normal(0, 1, n) + np.where(t >= n // 2, 1.0, 0.0),
        rng.normal(5, 2, n) + 0.6 * (t * 4 // n),
        rng.normal(0, 1, n) * np.where(t >= n // 3, 3.0, 1.0),
        rng.normal(0, 1, n) + np.linspace(0, 2, n),
        rng.normal(10, 1, n),
        rng.standard_t(3, n),
        rng.normal(0, 1, n) - np.where((t >= 800) & (t < 1400), 0.7, 0.0),
    ]
    with_nan = streams[0].copy()
    with_nan[::37] = np.nan
    return streams + [with_nan]


def error_streams(rng, n=3000):
    t = np.arange(n)
    return [
        (rng.random(n) < np.where(t < n // 2, 0.1, 0.3)).astype(float),
        (rng.random(n) < np.where(t < n // 3, 0.05, 0.15)).astype(float),
        (rng.random(n) < 0.2).astype(float),
        (rng.random(n) < np.clip(0.02 + t / n * 0.4, 0, 1)).astype(float),
        (rng.random(n) < np.where((t >= 1000) & (t < 2000), 0.4, 0.1)).astype(float),
    ]


PH_PARAMS = [(10, 0.05, 20.0, 0.999), (50, 0.001, 80.0, 1.0), (30, 0.1, 5.0, 0.99),
             (1, 0.005, 10.0, 0.9999)]
DDM_PARAMS = [(10, 1.5, 2.5), (100, 2.0, 4.0), (50, 1.0, 2.0), (1, 2.0, 3.0)]
ADWIN_PARAMS = [(0.05, 8, 3, 2, 20), (0.0001, 16, 7, 10, 50), (0.2, 2, 4, 1, 5),
                (0.002, 1, 2, 5, 100)]


def sql_args(p):
    return ", ".join(repr(v) for v in p)


@pytest.mark.parametrize("seed", range(2))
def test_page_hinkley_and_adwin_non_default_match_river(tmp_path, seed):
    from river import drift

    streams = level_streams(np.random.default_rng(300 + seed))
    exprs = {f"ph{i}": f"page_hinkley(xs, {sql_args(p)})" for i, p in enumerate(PH_PARAMS)}
    exprs |= {f"ad{i}": f"adwin(xs, {sql_args(p)})" for i, p in enumerate(ADWIN_PARAMS)}
    got = run_detectors(tmp_path, streams, exprs)
    detections = 0
    for s, xs in enumerate(streams):
        for i, (mi, delta, thr, alpha) in enumerate(PH_PARAMS):
            want = river_positions(drift.PageHinkley(min_instances=mi, delta=delta, threshold=thr,
                                                     alpha=alpha, mode="both"), xs)
            assert got[s][f"ph{i}"] == want, (s, PH_PARAMS[i])
            detections += len(want)
        for i, (delta, clock, mb, mwl, gp) in enumerate(ADWIN_PARAMS):
            want = river_positions(drift.ADWIN(delta=delta, clock=clock, max_buckets=mb,
                                               min_window_length=mwl, grace_period=gp), xs)
            assert got[s][f"ad{i}"] == want, (s, ADWIN_PARAMS[i])
            detections += len(want)
    assert detections > 50
    SUMMARY[f"page_hinkley+adwin seed {seed}"] = (
        f"{len(streams)} streams x {len(PH_PARAMS) + len(ADWIN_PARAMS)} parameter sets, "
        f"{detections} detections, identical to River")


@pytest.mark.parametrize("seed", range(2))
def test_ddm_non_default_matches_river(tmp_path, seed):
    from river import drift

    streams = error_streams(np.random.default_rng(400 + seed))
    exprs = {f"ddm{i}": f"ddm(xs, {sql_args(p)})" for i, p in enumerate(DDM_PARAMS)}
    got = run_detectors(tmp_path, streams, exprs)
    detections = 0
    for s, xs in enumerate(streams):
        for i, (ws, wt, dt_) in enumerate(DDM_PARAMS):
            want = river_positions(drift.binary.DDM(warm_start=ws, warning_threshold=wt,
                                                    drift_threshold=dt_), xs)
            assert got[s][f"ddm{i}"] == want, (s, DDM_PARAMS[i])
            detections += len(want)
    assert detections > 10
    SUMMARY[f"ddm seed {seed}"] = f"{len(streams)} streams x {len(DDM_PARAMS)} parameter sets, " \
                                  f"{detections} detections, identical to River"


# ------------------------------------------------------------------ CUSUM

# Montgomery, Introduction to Statistical Quality Control (6th ed.), Example 9.1, Table 9.1:
# 20 observations from N(10, 1), then 10 from N(11, 1). With μ₀ = 10, σ = 1, K = ½, H = 5 the
# tabular CUSUM C⁺ first exceeds H at observation 29 (C⁺₂₉ = 5.28, Table 9.2), and the shift
# is estimated to start after observation 22.
MONTGOMERY_9_1 = [9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34,
                  9.03, 11.47, 10.51, 9.40, 10.08, 9.37, 10.62, 10.31, 8.52, 10.84,
                  10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62, 11.31, 10.52]


def detecta_cusum(xs, min_instances, k, h):
    """Our segmenting convention around detecta's tabular CUSUM: each segment estimates
    μ₀ and σ₀ (ddof 1) from its first `min_instances` values, then detecta runs with that
    fixed reference level, drift = k·σ₀, threshold = h·σ₀ on the values after them; its
    first alarm ends the segment. detecta's sums start at its second value, so it is given
    the last estimation value first. No missing values here."""
    from detecta import detect_cusum

    xs = np.asarray(xs, dtype=float)
    warm = max(int(min_instances), 2)
    out, start = [], 0
    while start + warm < len(xs):
        est = xs[start:start + warm]
        mu, sd = est.mean(), est.std(ddof=1)
        assert sd > 0
        seg = xs[start + warm - 1:]
        ta = detect_cusum(seg, threshold=h * sd, drift=k * sd, reference=mu, show=False)[0]
        if len(ta) == 0:
            break
        alarm = start + warm - 1 + int(ta[0])  # 0-based index in xs
        out.append(alarm + 1)
        start = alarm + 1
    return out


def test_cusum_montgomery_worked_example(tmp_path):
    """Two estimation values with mean exactly 10 and sample sd 1 put μ₀ = 10, σ₀ = 1."""
    from detecta import detect_cusum

    a = 1 / np.sqrt(2)
    warm = [10 - a, 10 + a]
    assert np.mean(warm) == 10.0 and np.std(warm, ddof=1) == pytest.approx(1.0, rel=1e-15)
    ta, tai, _, _ = detect_cusum(np.r_[10.0, MONTGOMERY_9_1], threshold=5, drift=0.5,
                                 reference=10.0, show=False)
    assert list(ta) == [29] and list(tai) == [22]  # the published result, via detecta
    got = run_detectors(tmp_path, [np.r_[warm, MONTGOMERY_9_1]],
                        {"c": "cusum(xs, 2, 0.5, 5.0)", "c4": "cusum(xs, 2, 0.5, 4.0)",
                         "c6": "cusum(xs, 2, 0.5, 6.0)"})[0]
    assert got["c"] == [2 + 29]
    # C⁺ reaches 4.47 at 28 (first above 4 there) and stays ≤ 5.30 < 6
    assert got["c4"] == [2 + 28] and got["c6"] == []


CUSUM_PARAMS = [(30, 0.5, 5.0), (10, 0.25, 8.0), (50, 1.0, 2.5), (5, 0.1, 3.0), (100, 0.75, 4.0)]


@pytest.mark.parametrize("seed", range(2))
def test_cusum_non_default_matches_detecta(tmp_path, seed):
    streams = level_streams(np.random.default_rng(600 + seed))[:-1]  # no NaN for detecta
    exprs = {f"cu{i}": f"cusum(xs, {sql_args(p)})" for i, p in enumerate(CUSUM_PARAMS)}
    got = run_detectors(tmp_path, streams, exprs)
    detections = 0
    for s, xs in enumerate(streams):
        for i, p in enumerate(CUSUM_PARAMS):
            want = detecta_cusum(xs, *p)
            assert got[s][f"cu{i}"] == want, (s, p)
            detections += len(want)
    assert detections > 50
    SUMMARY[f"cusum seed {seed}"] = f"{len(streams)} streams x {len(CUSUM_PARAMS)} parameter " \
                                    f"sets, {detections} alarms, identical to detecta"


def test_print_reference_summary():
    for k, v in SUMMARY.items():
        print(f"{k}: {v}")
