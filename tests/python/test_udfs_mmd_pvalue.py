"""Conformance of `mmd_pvalue(x1, …, xk, 'baseline' [, permutations])` (FUNCTIONS.md,
"Multivariate drift") against a numpy implementation of the documented permutation test,
evaluated by the `eval_stats` example binary (see test_udfs_conformance.py for how it is
built / found; $DRIFTWATCH_MMD_PERMUTATIONS selects the permutation counts it runs).

The generator (SplitMix64) and the Fisher–Yates shuffle are ported exactly, so the p-values
(counts) must be equal; the observed MMD²ᵤ (reported by `mmd`) must agree to rel 1e-9. The
numpy side computes each split's block sums directly (w·K·w, v·K·v, v·K·w), independently
of the Rust side's row-sum shortcut.

    pytest -s tests/python/test_udfs_mmd_pvalue.py
"""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from test_udfs_conformance import WORST, close, run_eval
from test_udfs_drift_ext import mmd_rows

MASK64 = (1 << 64) - 1
SEED = 42
DEFAULT_PERMUTATIONS = 100
TIE_RTOL = 1e-11


class SplitMix64:
    """Port of `driftwatch_udfs::math::iforest::SplitMix64`."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        """Uniform integer in [0, n) (Lemire's multiply-shift, no rejection)."""
        return (self.next_u64() * n) >> 64


def shuffle(perm, rng):
    """In-place Fisher–Yates, i from len − 1 down to 1, j = below(i + 1)."""
    for i in range(len(perm) - 1, 0, -1):
        j = rng.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]


def mmd_pvalue_ref(R, C, permutations=DEFAULT_PERMUTATIONS, seed=SEED):
    """(observed MMD²ᵤ, p) of the documented permutation test, or (None, None)."""
    rows = mmd_rows(R, C)
    if rows is None:
        return None, None
    R, C = rows
    sigma = float(np.median(pdist(R)))
    sigma = sigma if sigma > 0 else 1.0
    Z = np.vstack([C, R])  # window rows first
    d2 = np.zeros((len(Z), len(Z)))
    for col in Z.T:  # column by column (as the Rust side; and less memory than 3-D)
        d2 += (col[:, None] - col[None, :]) ** 2
    K = np.exp(-d2 / (2 * sigma**2))
    np.fill_diagonal(K, 0.0)
    m, n = len(C), len(R)
    N = m + n

    def terms(perm):
        w = np.zeros(N)
        w[perm[:m]] = 1.0
        v = 1.0 - w
        Kw = K @ w
        kxx, kxy, kyy = w @ Kw, v @ Kw, v @ (K @ v)
        return kxx / (m * (m - 1)), kyy / (n * (n - 1)), 2 * kxy / (m * n)

    perm = list(range(N))
    a, b, c = terms(np.array(perm))
    observed = a + b - c
    threshold = observed - TIE_RTOL * (abs(a) + abs(b) + abs(c))
    rng = SplitMix64(seed)
    exceed = 0
    for _ in range(permutations):
        shuffle(perm, rng)
        a, b, c = terms(np.array(perm))
        exceed += a + b - c >= threshold
    return float(observed), (1 + exceed) / (1 + permutations)


def matrix(cols):
    return np.column_stack([np.asarray(v, dtype=np.float64) for v in cols.values()])


def run(tmp_path, monkeypatch, ref, cur, spec):
    monkeypatch.setenv("DRIFTWATCH_MMD_PERMUTATIONS", ",".join(spec))
    return run_eval(tmp_path, ref, cur)


def check(got, ref, cur, spec):
    """Exact p-values for every entry of `spec`, and `mmd` vs the observed statistic."""
    R, C = matrix(ref), matrix(cur)
    out = {}
    for s in spec:
        p = DEFAULT_PERMUTATIONS if s == "default" else int(s)
        observed, want = mmd_pvalue_ref(R, C, p)
        assert got["__mmd_pvalue"][s] == want, (s, got["__mmd_pvalue"][s], want)
        out[s] = want
    if observed is None:
        assert got["__mmd"] is None
    elif abs(observed) > 1e-6:
        close("mmd (observed)", got["__mmd"], observed, rtol=1e-9)
    else:
        assert abs(got["__mmd"] - observed) <= 1e-13, (got["__mmd"], observed)
    return out


def columns(rng, n, shift, k=4):
    out = {
        "a": rng.normal(shift, 1.0, n),
        "b": rng.lognormal(0.0, 0.5, n),
        "c": rng.uniform(-1.0, 1.0, n),
        "d": rng.normal(0.0, 3.0, n) + 0.5 * shift,
    }
    return dict(list(out.items())[:k])


@pytest.mark.parametrize(
    "n_ref,n_cur,shift,k,spec",
    [
        (1000, 1000, 0.0, 4, ["default", "37"]),
        (1000, 1000, 0.1, 4, ["default"]),
        (3000, 2500, 0.05, 3, ["default"]),  # both sides sampled to 1000 rows
        (60, 25, 0.3, 2, ["default", "1", "7", "500"]),
        (5, 2, 0.0, 1, ["default", "3"]),  # m = 2: the split recurs, ties
        (400, 150, 0.0, 4, ["default"]),
    ],
)
def test_exact_pvalue(tmp_path, monkeypatch, n_ref, n_cur, shift, k, spec):
    rng = np.random.default_rng(n_ref * 31 + n_cur + k)
    ref, cur = columns(rng, n_ref, 0.0, k), columns(rng, n_cur, shift, k)
    if n_cur > 10:
        cur["a"][::7] = np.nan  # incomplete rows are skipped
        cur[list(cur)[-1]][3::11] = np.inf
    got = run(tmp_path, monkeypatch, ref, cur, spec)
    check(got, ref, cur, spec)


def test_ties_and_constant(tmp_path, monkeypatch):
    """Integer-valued rows (many duplicates), and a constant dataset where every split gives
    MMD²ᵤ = 0 up to rounding: all permutations tie, p = 1."""
    rng = np.random.default_rng(5)
    ref = {"x": rng.poisson(2.0, 300).astype(np.float64), "y": rng.poisson(1.0, 300) * 1.0}
    cur = {"x": rng.poisson(2.2, 120).astype(np.float64), "y": rng.poisson(1.0, 120) * 1.0}
    check(run(tmp_path, monkeypatch, ref, cur, ["default", "250"]), ref, cur, ["default", "250"])
    ref = {"x": np.full(50, 4.25), "y": np.full(50, -1.0)}
    cur = {"x": np.full(30, 4.25), "y": np.full(30, -1.0)}
    got = run(tmp_path, monkeypatch, ref, cur, ["default"])
    assert check(got, ref, cur, ["default"])["default"] == 1.0


def test_too_few_rows_is_null(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    ref = columns(rng, 100, 0.0, 2)
    cur = {"a": np.array([0.5, np.nan, 1.0]), "b": np.array([1.0, 2.0, np.nan])}
    got = run(tmp_path, monkeypatch, ref, cur, ["default", "5"])
    assert got["__mmd_pvalue"] == {"default": None, "5": None}
    assert got["__mmd"] is None


def test_no_drift_pvalues_not_all_small(tmp_path, monkeypatch):
    """Same distribution, 20 datasets: p is (close to) uniform on {1/101, …, 1}."""
    ps = []
    for seed in range(20):
        rng = np.random.default_rng(1000 + seed)
        ref, cur = columns(rng, 200, 0.0, 3), columns(rng, 80 + 5 * seed, 0.0, 3)
        got = run(tmp_path, monkeypatch, ref, cur, ["default"])
        ps.append(check(got, ref, cur, ["default"])["default"])
    print("no-drift p-values", sorted(ps))
    assert sum(p < 0.05 for p in ps) <= 4
    assert max(ps) > 0.5 and np.mean(ps) > 0.25


@pytest.mark.parametrize("seed", range(5))
def test_clear_shift_minimal_pvalue(tmp_path, monkeypatch, seed):
    rng = np.random.default_rng(2000 + seed)
    ref, cur = columns(rng, 300, 0.0, 3), columns(rng, 100, 1.5, 3)
    got = run(tmp_path, monkeypatch, ref, cur, ["default", "19"])
    assert check(got, ref, cur, ["default", "19"]) == {"default": 1 / 101, "19": 1 / 20}


def test_print_worst_errors():
    for k, v in sorted(WORST.items()):
        print(f"max rel err {k:18s} {v:.3e}")
