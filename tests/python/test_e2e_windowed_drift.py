"""End to end: windowed drift values of the real binary equal scipy on each window's rows.

A stream of inference rows is generated here (irregular event times over 150 s, a mean
shift of `x` in one stretch, a scale change of `y` in another, a change of the category mix
of `cat` in a third, a few NULLs), written as JSON lines in a **shuffled arrival order**
(every row arrives at most 4 s of event time after rows later than it, within the 5 s
watermark delay, so no row is late but panes fill and merge out of order), and run through
`driftwatch run` on a file source read in batches of 37 rows (so the watermark advances and
windows close while later panes are still filling) with TUMBLE and HOP monitors, wide form (named columns)
and long form (`features(src)`). Every emitted window is then compared with scipy / numpy
computed in the test on exactly the generated rows whose event time lies in
[window_start, window_end), against the baseline's own values:

* numeric: `ks_stat`, `ks_pvalue`, `wasserstein`, `energy_distance`, `cvm_pvalue`,
  `anderson_stat` (scipy.stats);
* binned, on the explicit edges given in CREATE BASELINE (`bin_edges = '…'`): `psi`
  (FUNCTIONS.md's ε = 1e-4 floor) and `chi2_pvalue`, the two-sample test
  `scipy.stats.chi2_contingency([window_counts, baseline_counts])` (scipy defaults; bins
  empty on both sides dropped);
* categorical (a string column): `chi2_pvalue` (the same contingency test on the
  categories), `js_distance`, `tvd`.

Relative tolerance 1e-9 (p-values ≥ 1e-300; cvm_pvalue also abs 1e-13, FUNCTIONS.md). The
set of emitted windows must equal the set of windows that hold rows: each exactly once.

    cargo build --bin driftwatch
    pytest -s tests/python/test_e2e_windowed_drift.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import warnings
from collections import Counter

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from dw_server import BIN

RTOL = 1e-9
PSI_EPS = 1e-4
T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
DURATION_S = 150.0
RATE = 12.0  # rows per second of event time
DELAY_S = 5  # watermark delay
JITTER_S = 4.0  # maximum arrival delay in event time (< DELAY_S: no late rows)
EDGES = [-8.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.5, 4.0, 8.0]
CATS = ["alpha", "beta", "gamma", "delta"]
TUMBLE_S = 10
HOP_SLIDE_S, HOP_SIZE_S = 5, 15

NUMERIC = ["ks_stat", "ks_pvalue", "wasserstein", "energy_distance", "cvm_pvalue",
           "anderson_stat", "psi", "chi2_pvalue"]
CATEGORICAL = ["chi2_pvalue", "js_distance", "tvd"]
FEATURES = ["x", "y"]

WORST: dict[str, float] = {}


def generate(seed: int = 12):
    """(baseline columns, stream rows in event-time order) with drift in parts of the stream."""
    rng = np.random.default_rng(seed)
    nb = 1500
    bx = rng.normal(0.0, 1.0, nb)
    by = rng.gamma(2.0, 0.5, nb)
    keep = (bx > EDGES[0]) & (bx < EDGES[-1]) & (by < EDGES[-1])
    base = {"x": bx[keep], "y": by[keep],
            "cat": rng.choice(CATS, keep.sum(), p=[0.4, 0.3, 0.2, 0.1])}
    n = int(DURATION_S * RATE)
    # event times in whole milliseconds, irregular
    t_ms = np.sort(rng.integers(0, int(DURATION_S * 1000), n))
    t = t_ms / 1000.0
    x = rng.normal(0.0, 1.0, n) + np.where((t >= 40) & (t < 70), 0.8, 0.0)
    y = rng.gamma(2.0, 0.5, n) * np.where((t >= 95) & (t < 120), 1.8, 1.0)
    p_drift = [0.1, 0.2, 0.3, 0.4]
    cat = np.where((t >= 70) & (t < 100),
                   rng.choice(CATS, n, p=p_drift), rng.choice(CATS, n, p=[0.4, 0.3, 0.2, 0.1]))
    # a category the baseline never saw, in one stretch
    cat = np.where((t >= 120) & (t < 128) & (rng.random(n) < 0.3), "epsilon", cat)
    y_null = rng.random(n) < 0.03
    rows = []
    for i in range(n):
        rows.append({"id": f"r{i}", "t_ms": int(t_ms[i]), "x": float(x[i]),
                     "y": None if y_null[i] else float(y[i]), "cat": str(cat[i])})
    # arrival order: by event time plus a random delay < JITTER_S
    arrival = np.argsort(t + rng.uniform(0, JITTER_S, n), kind="stable")
    assert np.any(np.diff(t[arrival]) < 0), "the arrival order is not shuffled"
    return base, rows, [rows[i] for i in arrival]


def iso(t_ms: int) -> str:
    return (T0 + dt.timedelta(milliseconds=t_ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def monitor_sql(src: str, train: str) -> str:
    edges = ", ".join(repr(e) for e in EDGES)
    wide = ",\n       ".join(
        [f"count({f}) AS {f}_n" for f in FEATURES]
        + [f"{s}({f}, 'b') AS {f}_{s}" for f in FEATURES for s in NUMERIC]
        + [f"{s}(cat, 'b') AS cat_{s}" for s in CATEGORICAL] + ["count(cat) AS cat_n"])
    long = ",\n       ".join(["count(value) AS n"]
                              + [f"{s}(value, 'b', feature) AS {s}" for s in NUMERIC])
    tumble = f"INTERVAL '{TUMBLE_S} seconds'"
    hop = f"INTERVAL '{HOP_SLIDE_S} seconds', INTERVAL '{HOP_SIZE_S} seconds'"
    return f"""
CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE, y DOUBLE, cat VARCHAR,
                 WATERMARK FOR ts AS ts - INTERVAL '{DELAY_S} seconds')
WITH (connector = 'file', path = '{src}', format = 'jsonl', replay = 'fast',
      batch_size = '37');
CREATE BASELINE b FROM '{train}' WITH (bin_edges = '{edges}');
CREATE MONITOR wide_tumble AS
SELECT window_start, window_end, {wide}
FROM TUMBLE(s, ts, {tumble}) GROUP BY window_start, window_end;
CREATE MONITOR wide_hop AS
SELECT window_start, window_end, {wide}
FROM HOP(s, ts, {hop}) GROUP BY window_start, window_end;
CREATE MONITOR long_tumble AS
SELECT window_start, window_end, feature, {long}
FROM TUMBLE(features(s), ts, {tumble}) GROUP BY window_start, window_end, feature;
CREATE MONITOR long_hop AS
SELECT window_start, window_end, feature, {long}
FROM HOP(features(s), ts, {hop}) GROUP BY window_start, window_end, feature;
"""


def query(data_dir, sql):
    out = subprocess.run([str(BIN), "query", sql, "--data-dir", str(data_dir), "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    base, rows, arrival = generate()
    train = tmp / "train.csv"
    with train.open("w") as f:
        f.write("x,y,cat\n")
        for x, y, c in zip(base["x"], base["y"], base["cat"]):
            f.write(f"{float(x)!r},{float(y)!r},{c}\n")
    src = tmp / "stream.jsonl"
    with src.open("w") as f:
        for r in arrival:
            f.write(json.dumps({"id": r["id"], "ts": iso(r["t_ms"]), "x": r["x"], "y": r["y"],
                                "cat": r["cat"]}) + "\n")
    (tmp / "monitors.sql").write_text(monitor_sql(src.name, train.name))
    data = tmp / "data"
    proc = subprocess.run([str(BIN), "run", str(tmp / "monitors.sql"), "--data-dir", str(data),
                           "--quiet"], capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "DRIFTWATCH_DATA_DIR"})
    assert proc.returncode == 0, proc.stderr
    results = {m: query(data, f"SELECT * FROM {m}")
               for m in ["wide_tumble", "wide_hop", "long_tumble", "long_hop"]}
    late = {m: query(data, f"SELECT count(*) AS n FROM {m}_late")[0]["n"] for m in results}
    yield base, rows, results, late
    if WORST:
        print("\nwindows compared: " + ", ".join(f"{m} {len(r)} rows" for m, r in results.items()))
        print("worst relative errors (test_e2e_windowed_drift):")
        for k in sorted(WORST):
            print(f"  {k:28s} {WORST[k]:.3e}")


# ------------------------------------------------------------------ references

def binned_counts(values, edges):
    e = np.asarray(edges)
    return np.histogram(np.clip(values, e[0], e[-1]), e)[0]


def chi2_two_sample(cur_counts, ref_counts):
    """scipy.stats.chi2_contingency on [window, baseline] counts, empty columns dropped."""
    table = np.array([cur_counts, ref_counts], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return None
    return float(stats.chi2_contingency(table).pvalue)


def psi(cur_counts, ref_counts):
    pc = cur_counts / cur_counts.sum()
    pr = ref_counts / ref_counts.sum()
    pc = np.where(pc == 0, PSI_EPS, pc)
    pr = np.where(pr == 0, PSI_EPS, pr)
    return float(np.sum((pc - pr) * np.log(pc / pr)))


def numeric_reference(cur, ref):
    """Every numeric statistic of NUMERIC on the window values `cur` against `ref`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anderson_ksamp warns when it caps its p-value
        ks = stats.ks_2samp(cur, ref, alternative="two-sided", method="auto")
        ad = stats.anderson_ksamp([cur, ref], variant="midrank")
    c, r = binned_counts(cur, EDGES), binned_counts(ref, EDGES)
    return {
        "ks_stat": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein": float(stats.wasserstein_distance(cur, ref)),
        "energy_distance": float(stats.energy_distance(cur, ref)),
        "cvm_pvalue": float(stats.cramervonmises_2samp(cur, ref).pvalue),
        "anderson_stat": float(ad.statistic),
        "psi": psi(c, r),
        "chi2_pvalue": chi2_two_sample(c, r),
    }


def categorical_reference(cur, ref):
    cc, rc = Counter(cur), Counter(ref)
    cats = sorted(rc) + sorted(set(cc) - set(rc))
    c = np.array([cc[k] for k in cats], dtype=float)
    r = np.array([rc[k] for k in cats], dtype=float)
    return {
        "chi2_pvalue": chi2_two_sample(c, r),
        "js_distance": float(jensenshannon(c, r, base=2)),
        "tvd": float(0.5 * np.abs(c / c.sum() - r / r.sum()).sum()),
    }


def close(name, got, want):
    if want is None:
        assert got is None, f"{name}: got {got}, want NULL"
        return
    assert got is not None, f"{name}: got NULL, want {want}"
    err = abs(got - want) / abs(want) if want != 0 else abs(got)
    WORST[name.split("@")[0]] = max(WORST.get(name.split("@")[0], 0.0), err)
    ok = err <= RTOL or abs(got - want) <= 1e-300
    if name.startswith("cvm_pvalue") or "_cvm_pvalue" in name:
        ok = ok or abs(got - want) <= 1e-13
    assert ok, f"{name}: got {got!r}, want {want!r}, rel err {err:.3e}"


def expected_windows(rows, slide_s, size_s):
    """{(start_ms, end_ms): rows} for every window holding at least one row."""
    out: dict[tuple[int, int], list] = {}
    slide, size = slide_s * 1000, size_s * 1000
    for r in rows:
        t = r["t_ms"]
        last = t // slide * slide
        s = last
        while s > t - size:
            out.setdefault((s, s + size), []).append(r)
            s -= slide
    return out


def window_key(row):
    def ms(s):
        d = dt.datetime.fromisoformat(s)
        d = d.replace(tzinfo=dt.timezone.utc) if d.tzinfo is None else d
        return round((d - T0).total_seconds() * 1000)
    return ms(row["window_start"]), ms(row["window_end"])


def by_window(result, expected, extra=None):
    """Result rows keyed by window (and `extra` column); each key exactly once, and the set
    of windows equal to the expected one."""
    keyed = {}
    for row in result:
        k = window_key(row) + ((row[extra],) if extra else ())
        assert k not in keyed, f"window {k} emitted twice"
        keyed[k] = row
    assert {k[:2] for k in keyed} == set(expected), (
        f"missing {sorted(set(expected) - {k[:2] for k in keyed})}, "
        f"unexpected {sorted({k[:2] for k in keyed} - set(expected))}")
    return keyed


def values(window_rows, col):
    return np.array([r[col] for r in window_rows if r[col] is not None], dtype=float)


# ------------------------------------------------------------------ tests

def test_no_late_rows_and_drift_is_visible(run):
    base, rows, results, late = run
    assert late == dict.fromkeys(results, 0), late
    # the drifted stretches are flagged somewhere, the no-drift windows mostly not
    tumble = {window_key(r): r for r in results["wide_tumble"]}
    assert tumble[(40000, 50000)]["x_ks_pvalue"] < 1e-3
    assert tumble[(100000, 110000)]["y_ks_pvalue"] < 1e-3
    assert tumble[(80000, 90000)]["cat_chi2_pvalue"] < 1e-3
    quiet = [r["x_ks_pvalue"] for k, r in tumble.items() if k[0] < 40000 or k[0] >= 70000]
    assert np.median(quiet) > 0.05


@pytest.mark.parametrize("monitor,slide,size", [("wide_tumble", TUMBLE_S, TUMBLE_S),
                                                ("wide_hop", HOP_SLIDE_S, HOP_SIZE_S)])
def test_wide_windows_equal_scipy(run, monitor, slide, size):
    base, rows, results, _ = run
    expected = expected_windows(rows, slide, size)
    got = by_window(results[monitor], expected)
    assert len(got) >= 10
    for key, row in sorted(got.items()):
        wrows = expected[key]
        for f in FEATURES:
            cur = values(wrows, f)
            assert row[f"{f}_n"] == len(cur), (key, f)
            want = numeric_reference(cur, base[f])
            for s in NUMERIC:
                close(f"{s}@{monitor}{key}.{f}", row[f"{f}_{s}"], want[s])
        cats = [r["cat"] for r in wrows]
        assert row["cat_n"] == len(cats)
        want = categorical_reference(cats, list(base["cat"]))
        for s in CATEGORICAL:
            close(f"cat_{s}@{monitor}{key}", row[f"cat_{s}"], want[s])


@pytest.mark.parametrize("monitor,slide,size", [("long_tumble", TUMBLE_S, TUMBLE_S),
                                                ("long_hop", HOP_SLIDE_S, HOP_SIZE_S)])
def test_long_form_windows_equal_scipy(run, monitor, slide, size):
    base, rows, results, _ = run
    expected = expected_windows(rows, slide, size)
    got = by_window(results[monitor], expected, extra="feature")
    # the features are exactly the numeric value columns: not the event time
    assert {k[2] for k in got} == set(FEATURES), sorted({k[2] for k in got})
    assert len(got) == len(expected) * len(FEATURES)
    for (start, end, f), row in sorted(got.items()):
        cur = values(expected[(start, end)], f)
        assert row["n"] == len(cur)
        want = numeric_reference(cur, base[f])
        for s in NUMERIC:
            close(f"{s}@{monitor}{(start, end)}.{f}", row[s], want[s])
