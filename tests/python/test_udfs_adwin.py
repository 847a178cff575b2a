"""Conformance of the `adwin` change detector against River's `drift.ADWIN`.

Streams are generated here with numpy (abrupt mean / variance shifts, gradual drift, no
drift, binary error indicators, heavy tails, NULL / NaN gaps), written to Parquet and
evaluated by the `eval_stats` example binary (see test_udfs_conformance.py for how it is
located), which reports `adwin(array_agg(x))` for every numeric column and, for each
parameter set in $DRIFTWATCH_ADWIN_PARAMS ("d,c,m,w,g;…"), `adwin(array_agg(x), d, c, m, w,
g)`. Detection positions (1-based; missing values skipped but counted) must be identical to
River's, which resets the detector on the value after each detection.

    pytest -s tests/python/test_udfs_adwin.py
"""

import numpy as np
import pyarrow as pa
import pytest
import river
from river import drift

from test_udfs_conformance import run_eval

# (delta, clock, max_buckets, min_window_length, grace_period)
PARAM_SETS = [
    (0.002, 32, 5, 5, 10),  # River's defaults, spelled out
    (0.1, 1, 3, 7, 20),  # check every value, permissive delta
    (0.01, 8, 2, 3, 0),
    (0.5, 1, 1, 1, 5),  # max_buckets 1: a merge empties its row (River may panic, see below)
    (1e-05, 64, 10, 20, 100),  # strict delta, long clock
    (0.05, 3, 2, 0, -5),  # min_window_length 0, negative grace period (River accepts both)
    (0.002, 1, 5, 5, 10),  # defaults but checking on every value
    (0.3, 5, 4, 2, 3),
]

STATS = {"streams": 0, "comparisons": 0, "detections": 0, "river_panics": 0}


def params_sql(p):
    return ",".join(repr(v) for v in p)


def river_adwin(xs, p=None, allow_panic=False):
    """River's detection positions; with allow_panic, (positions, position of the update on
    which River panicked or None)."""
    kw = {} if p is None else dict(zip(
        ["delta", "clock", "max_buckets", "min_window_length", "grace_period"], p))
    det = drift.ADWIN(**kw)
    out = []
    for pos, x in enumerate(xs, start=1):
        if x is None or np.isnan(x):
            continue
        try:
            det.update(float(x))
        except BaseException as e:  # pyo3_runtime.PanicException is a BaseException
            if not allow_panic or type(e).__name__ != "PanicException":
                raise
            return out, pos
        if det.drift_detected:
            out.append(pos)
    return (out, None) if allow_panic else out


def as_list(col):
    if isinstance(col, pa.Array):
        return col.to_pylist()
    return [float(v) for v in col]


def check_all(monkeypatch, tmp_path, cols):
    monkeypatch.setenv("DRIFTWATCH_ADWIN_PARAMS", ";".join(params_sql(p) for p in PARAM_SETS))
    got = run_eval(tmp_path, cols, cols)
    res = {}
    for name, col in cols.items():
        xs = as_list(col)
        g = got[name]
        want = river_adwin(xs)
        assert g["adwin"] == want, (name, "defaults")
        res[name] = want
        STATS["comparisons"] += 1
        STATS["detections"] += len(want)
        for p in PARAM_SETS:
            w, panic = river_adwin(xs, p, allow_panic=True)
            mine = g[f"adwin({params_sql(p)})"]
            if panic is not None:
                assert p[2] == 1, (name, p, panic)
                # River (max_buckets 1) deletes from an emptied histogram row and panics on
                # the update at `panic`: compare up to there.
                STATS["river_panics"] += 1
                mine = [q for q in mine if q < panic]
            assert mine == w, (name, p, panic)
            STATS["comparisons"] += 1
            STATS["detections"] += len(w)
        STATS["streams"] += 1
    return res


def ramp(n, start, stop, lo, hi):
    """Mean profile: lo before `start`, linear to hi at `stop`, hi after."""
    i = np.arange(n)
    return lo + (hi - lo) * np.clip((i - start) / max(stop - start, 1), 0.0, 1.0)


@pytest.mark.parametrize("seed,n", [(0, 200), (1, 1000), (2, 4000), (3, 20000)])
def test_adwin_matches_river(monkeypatch, tmp_path, seed, n):
    rng = np.random.default_rng(2024 + seed)
    h = n // 2
    cols = {
        # abrupt mean shifts, large and small; variance shift; several change points
        "abrupt": np.concatenate([rng.normal(0, 1, h), rng.normal(1.5, 1, n - h)]),
        "abrupt_small": np.concatenate([rng.normal(10, 2, h), rng.normal(10.4, 2, n - h)]),
        "variance": np.concatenate([rng.normal(0, 1, h), rng.normal(0, 4, n - h)]),
        "steps": rng.normal(0, 1, n) + 2.0 * (np.arange(n) * 5 // n),
        # gradual drift: linear ramp over the middle half, and a slow trend throughout
        "gradual": rng.normal(0, 1, n) + ramp(n, n // 4, 3 * n // 4, 0.0, 2.0),
        "trend": rng.uniform(0, 1, n) + np.arange(n) / n,
        # no drift
        "stationary": rng.normal(5, 3, n),
        "uniform": rng.uniform(-1, 1, n),
        "constant": np.full(n, 2.5),
        "offset": 1e6 + rng.normal(0, 1e-3, n),
        "heavy_tail": rng.standard_t(2, n) * 100,
        # binary error indicators (0/1): stationary, rising error rate, integer column
        "err_flat": (rng.random(n) < 0.2).astype(float),
        "err_rise": (rng.random(n) < np.where(np.arange(n) < h, 0.1, 0.3)).astype(float),
        "err_int": (rng.random(n) < ramp(n, h, n, 0.05, 0.5)).astype(np.int64),
    }
    got = check_all(monkeypatch, tmp_path, cols)
    if n >= 1000:
        # (ADWIN tests means: the zero-mean "variance" shift need not be found)
        for k in ["abrupt", "steps", "gradual", "trend", "err_rise"]:
            assert got[k], k
        assert got["abrupt"][0] > h
    assert got["constant"] == []


@pytest.mark.parametrize("seed", range(3))
def test_adwin_missing_values(monkeypatch, tmp_path, seed):
    """NULL and NaN are skipped but keep their position."""
    rng = np.random.default_rng(77 + seed)
    n = 3000
    base = np.concatenate([rng.normal(0, 1, n // 2), rng.normal(1, 1, n - n // 2)])
    with_nan = base.copy()
    with_nan[rng.random(n) < 0.1] = np.nan
    null_mask = rng.random(n) < 0.15
    with_null = pa.array(base, mask=null_mask)
    both = base.copy()
    both[:: 13] = np.nan
    both_arr = pa.array(both, mask=(np.arange(n) % 7 == 3), from_pandas=False)
    err = (rng.random(n) < np.where(np.arange(n) < n // 3, 0.05, 0.25)).astype(float)
    err[rng.random(n) < 0.2] = np.nan
    cols = {"nan": with_nan, "null": with_null, "both": both_arr, "err_nan": err,
            "leading_gap": np.concatenate([np.full(500, np.nan), base[500:]])}
    got = check_all(monkeypatch, tmp_path, cols)
    assert got["nan"] and got["null"] and got["both"]
    # positions refer to the full list: the same detections as on the compacted series,
    # mapped back through the kept indices
    kept = np.flatnonzero(~null_mask) + 1
    compact = river_adwin([float(v) for v in base[~null_mask]])
    assert got["null"] == [int(kept[p - 1]) for p in compact]


def test_adwin_long_stream_many_detections(monkeypatch, tmp_path):
    """Many change points: deep exponential histograms, many resets, every clock phase."""
    rng = np.random.default_rng(9)
    n = 60000
    seg = rng.integers(0, 6, n // 1500).repeat(1500)
    cols = {
        "segments": rng.normal(seg * 0.7, 1.0),
        "segments_err": (rng.random(n) < 0.05 + 0.08 * seg).astype(float),
        "lognormal": rng.lognormal(0.0, 1.0, n) * (1 + (np.arange(n) > 40000)),
    }
    got = check_all(monkeypatch, tmp_path, cols)
    assert len(got["segments"]) >= 10


def test_adwin_river_docstring_example():
    """River's own docstring stream (random.Random(12345)), via the pure-Python reference:
    guards the reference itself (River reports index 1023, i.e. position 1024)."""
    import random

    rng = random.Random(12345)
    stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    assert river_adwin([float(v) for v in stream]) == [1024]


def test_adwin_docstring_example_sql(monkeypatch, tmp_path):
    import random

    rng = random.Random(12345)
    stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    got = check_all(monkeypatch, tmp_path, {"x": np.array(stream, dtype=np.int64)})
    assert got["x"] == [1024]


def test_print_adwin_summary():
    print(f"\nRiver {river.__version__}: {STATS['streams']} streams, "
          f"{STATS['comparisons']} (stream, parameter set) comparisons, "
          f"{STATS['detections']} detections, all positions identical; River panicked on "
          f"{STATS['river_panics']} max_buckets=1 comparisons (checked up to the panic)")
