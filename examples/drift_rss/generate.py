#!/usr/bin/env python3
"""Simulated inference traffic for the bounded-RSS drift benchmark (scripts/bench-drift-rss.sh).

Writes, into OUT_DIR:
  baseline.jsonl  BASELINE_ROWS rows of f0..f{F-1} (feature i ~ Normal(i mod 7, 1 + i mod 3))
  traffic.jsonl   RATE rows per second of event time for SECONDS seconds, epoch-ms `ts`
                  starting 2026-01-01T00:00:00Z; after half the run features f0..f29 shift
                  by +0.5 standard deviations (so the monitor has drift to find).

Usage: generate.py OUT_DIR [--features 300] [--rate 100] [--seconds 3600] [--baseline-rows 5000]
Deterministic (fixed seed). Values are written with 3 decimals to keep the file small.
"""

import argparse
import os

import numpy as np

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def rows_jsonl(path, values, names, ts=None):
    """Writes `values` (rows × features) as JSON lines, 3 decimals, optional epoch-ms `ts`."""
    keys = [f'"{n}":' for n in names]
    with open(path, "w", buffering=1 << 22) as f:
        block = 4096
        for start in range(0, len(values), block):
            chunk = np.round(values[start:start + block], 3)
            text = chunk.astype(str)
            lines = []
            for r, row in enumerate(text):
                body = ",".join(k + v for k, v in zip(keys, row))
                if ts is not None:
                    lines.append(f'{{"ts":{ts[start + r]},{body}}}\n')
                else:
                    lines.append(f"{{{body}}}\n")
            f.write("".join(lines))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--features", type=int, default=300)
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--baseline-rows", type=int, default=5000)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(13)
    names = [f"f{i}" for i in range(a.features)]
    mean = np.array([i % 7 for i in range(a.features)], dtype=float)
    std = np.array([1 + i % 3 for i in range(a.features)], dtype=float)
    base = rng.standard_normal((a.baseline_rows, a.features)) * std + mean
    rows_jsonl(os.path.join(a.out, "baseline.jsonl"), base, names)
    n = a.rate * a.seconds
    # evenly spaced event times, RATE per second
    ts = START_MS + (np.arange(n) * 1000) // a.rate
    shift = np.zeros(a.features)
    shift[: min(30, a.features)] = 0.5
    path = os.path.join(a.out, "traffic.jsonl")
    with open(path, "w"):
        pass
    # generate in slices of one minute, appending, so memory stays small
    per = a.rate * 60
    for s in range(0, n, per):
        k = min(per, n - s)
        v = rng.standard_normal((k, a.features)) * std + mean
        if s >= n // 2:
            v += shift * std
        tmp = path + ".part"
        rows_jsonl(tmp, v, names, ts[s:s + k])
        with open(path, "ab") as out, open(tmp, "rb") as part:
            out.write(part.read())
        os.remove(tmp)
    print(f"{n} rows × {a.features} features over {a.seconds} s of event time -> {path}")


if __name__ == "__main__":
    main()
