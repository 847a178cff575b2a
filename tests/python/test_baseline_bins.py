"""Baseline bin edges against numpy, for every bin rule of CREATE BASELINE
(`bins = 'fd' | 'sturges' | 'quantile' | 'equal'`, `bin_edges = '…'`).

Reference data with many ties (Poisson counts, rounded normals, a column that is mostly one
value, a constant column) is profiled by the `eval_stats` example of `driftwatch-udfs` with
the rule given in $DRIFTWATCH_PROFILE_BINS; the profile's edges must equal

* 'fd' / 'sturges':   np.histogram_bin_edges(x, 'fd' | 'sturges')
* 'equal', k bins:    np.histogram_bin_edges(x, k)
* 'quantile', k bins: np.unique(np.quantile(x, np.linspace(0, 1, k + 1))), and [c - 0.5, c + 0.5]
                      when a single distinct edge remains (constant data, like the other rules)

exactly, and `histogram(cur, 'ref')` must count like np.histogram(np.clip(cur, e[0], e[-1]), e).

    cargo build -p driftwatch-udfs --example eval_stats
    pytest tests/python/test_baseline_bins.py

The binary is $DRIFTWATCH_EVAL_STATS if set, else built with cargo (honouring
$CARGO_TARGET_DIR).
"""

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def eval_stats_binary():
    env = os.environ.get("DRIFTWATCH_EVAL_STATS")
    if env:
        return env
    subprocess.run(
        ["cargo", "build", "-p", "driftwatch-udfs", "--example", "eval_stats"],
        cwd=ROOT,
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return str(target / "debug" / "examples" / "eval_stats")


def reference_columns(n, seed):
    rng = np.random.default_rng(seed)
    mostly = np.zeros(n)
    k = max(n // 10, 1)
    mostly[:k] = rng.normal(5.0, 1.0, k)
    rng.shuffle(mostly)
    return {
        "ties": rng.poisson(3.0, n).astype(np.int64),
        "rounded": np.round(rng.normal(0.0, 1.0, n), 1),
        "mostly_zero": mostly,
        "lognormal": rng.lognormal(0.0, 0.8, n),
        "constant": np.full(n, 4.25),
    }


def current_columns(ref, seed):
    """A few values of each column plus values outside the reference range (clipped)."""
    rng = np.random.default_rng(seed)
    cur = {}
    for name, x in ref.items():
        x = x.astype(np.float64)
        lo, hi = x.min(), x.max()
        picks = rng.choice(x, 20)
        cur[name] = np.concatenate([picks, [lo - 3.0, hi + 3.0, (lo + hi) / 2]])
    return cur


def run(tmp_path, ref, cur, bins):
    rp, cp = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    pq.write_table(pa.table(ref), rp)
    pq.write_table(pa.table(cur), cp)
    env = dict(os.environ, DRIFTWATCH_PROFILE_BINS=bins)
    out = subprocess.run(
        [eval_stats_binary(), str(rp), str(cp)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def numpy_edges(x, bins):
    rule, _, arg = bins.partition(":")
    if rule in ("fd", "sturges"):
        return np.histogram_bin_edges(x, rule)
    if rule == "equal":
        return np.histogram_bin_edges(x, int(arg))
    if rule == "quantile":
        e = np.unique(np.quantile(x, np.linspace(0, 1, int(arg) + 1)))
        if len(e) < 2:  # constant data: one bin around the value, as np.histogram_bin_edges
            e = np.array([e[0] - 0.5, e[0] + 0.5])
        return e
    if rule == "edges":
        return np.array([float(v) for v in arg.split(",")])
    raise ValueError(bins)


RULES = [
    "fd",
    "sturges",
    "quantile:1",
    "quantile:4",
    "quantile:10",
    "quantile:37",
    "equal:1",
    "equal:7",
    "equal:10",
    "edges:-1,0,0.5,2,4.25,10",
]


@pytest.mark.parametrize("n", [10, 200, 5000])
@pytest.mark.parametrize("bins", RULES)
def test_bin_edges_match_numpy(tmp_path, n, bins):
    ref = reference_columns(n, seed=n)
    cur = current_columns(ref, seed=n + 1)
    got = run(tmp_path, ref, cur, bins)
    for name, x in ref.items():
        x = x.astype(np.float64)
        want = numpy_edges(x, bins)
        edges = np.array(got[name]["profile"]["bin_edges"], dtype=np.float64)
        np.testing.assert_array_equal(edges, want, err_msg=f"{bins} {name} n={n}")
        counts = np.histogram(np.clip(cur[name], want[0], want[-1]), want)[0]
        np.testing.assert_array_equal(
            np.array(got[name]["histogram"]), counts, err_msg=f"histogram {bins} {name} n={n}"
        )


def test_quantile_bins_collapse_ties(tmp_path):
    """Heavy ties leave fewer distinct edges than requested, and the bins stay usable."""
    x = np.array([1.0] * 60 + [2.0] * 30 + [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    got = run(tmp_path, {"x": x}, {"x": x}, "quantile:10")
    edges = np.array(got["x"]["profile"]["bin_edges"])
    np.testing.assert_array_equal(edges, np.unique(np.quantile(x, np.linspace(0, 1, 11))))
    assert len(edges) < 11
    np.testing.assert_array_equal(np.array(got["x"]["histogram"]), np.histogram(x, edges)[0])
