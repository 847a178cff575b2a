"""Drift functions on 4 features x (100 k baseline, 1 M current rows): Driftwatch through
`driftwatch query` over Parquet, next to scipy (wasserstein_distance + ks_2samp per feature)
and Evidently's DataDriftPreset on the same generated data, in the same run.

Usage: python benches/drift_vs_peers.py DRIFTWATCH_BIN [REF_ROWS CUR_ROWS FEATURES]
Prints seconds per tool and ratios; checks that Driftwatch's values equal scipy's."""
import json, os, subprocess, sys, tempfile, time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats

BIN = sys.argv[1]
REF = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
CUR = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
F = int(sys.argv[4]) if len(sys.argv) > 4 else 4

rng = np.random.default_rng(7)
names = [f"f{i}" for i in range(F)]
ref = {n: rng.normal(0, 1 + i * 0.1, REF) for i, n in enumerate(names)}
cur = {n: rng.normal(0.05 * (i % 2), 1 + i * 0.1, CUR) for i, n in enumerate(names)}

work = tempfile.mkdtemp(prefix="dw-drift-bench-")
ref_path, cur_path = os.path.join(work, "ref.parquet"), os.path.join(work, "cur.parquet")
pq.write_table(pa.table(ref), ref_path)
pq.write_table(pa.table(cur), cur_path)
data_dir = os.path.join(work, "data")
sql_file = os.path.join(work, "baseline.sql")
with open(sql_file, "w") as fh:
    fh.write(f"CREATE BASELINE ref FROM '{ref_path}';\n")
subprocess.run([BIN, "run", sql_file, "--data-dir", data_dir], check=True, capture_output=True)

cols = ", ".join(f"wasserstein({n}, 'ref') AS w_{n}, ks_stat({n}, 'ref') AS d_{n}, ks_pvalue({n}, 'ref') AS p_{n}" for n in names)
query = f"SELECT {cols} FROM '{cur_path}'"


def timed(fn, repeat=3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def driftwatch():
    out = subprocess.run([BIN, "query", query, "--data-dir", data_dir, "--format", "json"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)[0]


def scipy_drift():
    return {n: (stats.wasserstein_distance(cur[n], ref[n]), stats.ks_2samp(cur[n], ref[n])) for n in names}


t_dw, dw = timed(driftwatch)
t_sp, sp = timed(scipy_drift)
for n in names:
    w, ks = sp[n]
    assert abs(dw[f"w_{n}"] - w) <= 1e-9 * max(abs(w), 1e-12), (n, dw[f"w_{n}"], w)
    assert abs(dw[f"d_{n}"] - ks.statistic) <= 1e-12, (n, dw[f"d_{n}"], ks.statistic)
    assert abs(dw[f"p_{n}"] - ks.pvalue) <= 1e-9 * max(ks.pvalue, 1e-300) + 1e-15, (n, dw[f"p_{n}"], ks.pvalue)

print(f"data: {F} features x ({REF} baseline, {CUR} current rows)")
print(f"driftwatch query (wasserstein + ks_stat + ks_pvalue, whole process incl. Parquet read): {t_dw:.3f} s")
print(f"scipy wasserstein_distance + ks_2samp (in-memory numpy):                             {t_sp:.3f} s  ({t_sp / t_dw:.1f}x driftwatch)")
try:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref_df, cur_df = pd.DataFrame(ref), pd.DataFrame(cur)

    def evidently_drift():
        return Report([DataDriftPreset()]).run(reference_data=ref_df, current_data=cur_df)

    t_ev, _ = timed(evidently_drift, repeat=1)
    print(f"evidently DataDriftPreset (in-memory pandas):                                         {t_ev:.3f} s  ({t_ev / t_dw:.1f}x driftwatch)")
except ImportError as e:
    print(f"evidently not installed ({e}); pip install evidently 'pandas<3' to compare")
print("values: driftwatch == scipy (rel err <= 1e-9)")
