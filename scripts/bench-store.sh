#!/usr/bin/env bash
# Result-store query latency against history size, with the release build:
# a table of 100 one-minute windows and one of 100 000 (one Parquet file per window,
# written with the store's own writer), queried before and after compaction with two
# dashboard queries — the last hour of results, and a full count — through
#   server: one long-lived session over a shared store (what the Flight SQL server keeps);
#   cli:    a new store and session per query (what `driftwatch query` does).
# Prints p50/p99 per case and the ratio 100 k / 100 of the p50s (target: within 2x).
#
#   scripts/bench-store.sh [SMALL] [LARGE]     (default 100 and 100000 windows)
#
# Files are generated on tmpfs (/dev/shm) when it exists, so that generating 100 000
# durable files is not dominated by fsync; set BENCH_STORE_DIR to measure another disk.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL="${1:-100}"
LARGE="${2:-100000}"
ITER="${BENCH_STORE_ITER:-200}"
COLD="${BENCH_STORE_COLD:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/driftwatch/target}"
export DRIFTWATCH_COMPACTION_INTERVAL=off
cargo build --release --quiet --example store_bench
BIN="$CARGO_TARGET_DIR/release/examples/store_bench"
BASE="${BENCH_STORE_DIR:-$([ -d /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")}"
WORK="$(mktemp -d "$BASE/bench-store.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

for n in "$SMALL" "$LARGE"; do
    "$BIN" generate "$WORK/$n" "$n"
done

run() { # label windows iterations cold
    "$BIN" query "$WORK/$2" "$3" "$4" | sed "s/^/$1 $2 windows  /" | tee -a "$WORK/results.txt"
}

echo "== before compaction"
run before "$SMALL" "$ITER" "$COLD"
# A fresh reader of 100 k uncompacted files reads every footer: few iterations.
run before "$LARGE" "$ITER" 3
echo "== compaction"
for n in "$SMALL" "$LARGE"; do
    echo -n "$n windows: "
    "$BIN" compact "$WORK/$n"
done
echo "== after compaction"
run after "$SMALL" "$ITER" "$COLD"
run after "$LARGE" "$ITER" "$COLD"

echo "== ratio of p50 latencies, $LARGE / $SMALL windows (target <= 2)"
python3 - "$WORK/results.txt" "$SMALL" "$LARGE" <<'PY'
import re, sys
path, small, large = sys.argv[1:]
p50 = {}
for line in open(path):
    m = re.match(r"(\w+) (\d+) windows\s+(\w+: [\w ]+?)\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms", line)
    if m:
        phase, n, case, a, b = m.groups()
        p50[(phase, n, case)] = float(a)
for phase in ("before", "after"):
    for case in sorted({k[2] for k in p50 if k[0] == phase}):
        s, l = p50.get((phase, small, case)), p50.get((phase, large, case))
        if s and l:
            print(f"{phase:<7} {case:<20} {l:10.3f} / {s:8.3f} ms = {l / s:7.2f}x")
PY
