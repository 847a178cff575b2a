#!/usr/bin/env bash
# Issue 13 benchmark: a drift monitor over 300 features fed 1 hour of simulated traffic in
# event time keeps a bounded RSS (flat after the first windows, not growing with history).
#
#   scripts/bench-drift-rss.sh                 # 300 features, 100 rows/s, 3600 s, 15 s windows
#   FEATURES=300 RATE=100 SIM_SECONDS=3600 WINDOW=15 PROFILE=release scripts/bench-drift-rss.sh
#   DRIFTWATCH_BIN=target/release/driftwatch scripts/bench-drift-rss.sh   # no build
#
# Traffic: examples/drift_rss/generate.py (deterministic; features f0..f29 shift by 0.5 sd in
# the second half), a JSON-lines file replayed fast by a file source. Monitor: long form
# `features(traffic)`, TUMBLE of WINDOW seconds, GROUP BY window_start, window_end, feature with
# wasserstein, ks_pvalue and psi against a baseline of the same columns. The process RSS
# (/proc/<pid>/status VmRSS) is sampled every 0.5 s; printed: RSS at 10 %, 50 %, 90 % and
# 100 % of the run's wall time, the peak, and the windows written (checked: every window of
# every feature).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
FEATURES="${FEATURES:-300}"
RATE="${RATE:-100}"
SIM_SECONDS="${SIM_SECONDS:-3600}"
WINDOW="${WINDOW:-15}"
PROFILE="${PROFILE:-release}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
PY="${DRIFTWATCH_PYTHON:-$CACHE/venv/bin/python}"
[ -x "$PY" ] || PY=python3
"$PY" -c "import numpy" 2>/dev/null || { echo "needs numpy for $PY" >&2; exit 1; }

if [ -n "${DRIFTWATCH_BIN:-}" ]; then
    # A binary built already (e.g. `cargo build --profile bench`, which shares the
    # benchmarks' optimised dependencies).
    BIN="$DRIFTWATCH_BIN"
    PROFILE="prebuilt ($BIN)"
elif [ "$PROFILE" = release ]; then
    cargo build --release --bin driftwatch
    BIN="$CARGO_TARGET_DIR/release/driftwatch"
else
    cargo build --bin driftwatch
    BIN="$CARGO_TARGET_DIR/debug/driftwatch"
fi

WORK="${BENCH_WORK_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
echo "work dir: $WORK" >&2
GEN="$WORK/gen-$FEATURES-$RATE-$SIM_SECONDS"
if [ ! -s "$GEN/traffic.jsonl" ]; then
    "$PY" "$ROOT/examples/drift_rss/generate.py" "$GEN" --features "$FEATURES" --rate "$RATE" \
        --seconds "$SIM_SECONDS" >&2
fi

cols=""
for ((i = 0; i < FEATURES; i++)); do cols+="    f$i DOUBLE,"$'\n'; done
cat > "$GEN/monitors.sql" <<SQL
CREATE SOURCE traffic (
    ts TIMESTAMP,
$cols    WATERMARK FOR ts AS ts - INTERVAL '2 seconds'
) WITH (connector = 'file', path = 'traffic.jsonl', format = 'jsonl',
        time_format = 'epoch_ms', replay = 'fast');

CREATE BASELINE ref FROM 'baseline.jsonl';

CREATE MONITOR drift AS
SELECT window_start, window_end, feature, count(*) AS n,
       wasserstein(value, 'ref', feature) AS w1,
       ks_pvalue(value, 'ref', feature) AS ks_p,
       psi(value, 'ref', feature) AS psi
FROM TUMBLE(features(traffic), ts, INTERVAL '$WINDOW seconds')
GROUP BY window_start, window_end, feature;
SQL

DATA="$WORK/data-$$"
rm -rf "$DATA"
PORT=$((20000 + RANDOM % 20000))
SAMPLES="$WORK/rss-$$.tsv"
: > "$SAMPLES"
start=$(date +%s.%N)
"$BIN" run "$GEN/monitors.sql" --data-dir "$DATA" --http-listen "127.0.0.1:$PORT" \
    --checkpoint-interval off --quiet 2> "$WORK/run-$$.log" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && printf '%s\t%s\n' "$(date +%s.%N)" "$rss" >> "$SAMPLES"
    sleep 0.5
done
wait "$pid" || { echo "driftwatch run failed; log: $WORK/run-$$.log" >&2; tail -20 "$WORK/run-$$.log" >&2; exit 1; }
end=$(date +%s.%N)

windows=$("$BIN" query "SELECT count(*) AS c FROM drift" --data-dir "$DATA" --format json 2>/dev/null \
    | grep -o '[0-9]\+' | tail -1 || echo "?")
expected=$(( (SIM_SECONDS / WINDOW) * FEATURES ))

"$PY" - "$SAMPLES" "$start" "$end" "$FEATURES" "$RATE" "$SIM_SECONDS" "$WINDOW" "$PROFILE" \
    "$windows" "$expected" <<'PY'
import sys
path, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
features, rate, secs, window, profile, windows, expected = sys.argv[4:11]
rows = [tuple(map(float, l.split())) for l in open(path) if l.strip()]
if not rows:
    sys.exit("no RSS samples")
wall = end - start
def at(frac):
    t = start + frac * wall
    best = min(rows, key=lambda r: abs(r[0] - t))
    return best[1] / 1024
src_rows = int(rate) * int(secs)
long_rows = src_rows * int(features)
print(f"drift monitor: {features} features, {rate} rows/s x {secs} s of event time "
      f"({src_rows} rows, {long_rows} long-form rows), TUMBLE {window} s, "
      f"wasserstein + ks_pvalue + psi; {profile} build")
print(f"wall time {wall:.1f} s ({long_rows / wall / 1e6:.2f} M long-form rows/s), "
      f"{len(rows)} RSS samples")
for f in (0.1, 0.5, 0.9, 1.0):
    print(f"RSS at {int(f * 100):3d} % of the run: {at(f):8.1f} MiB")
print(f"peak RSS: {max(r[1] for r in rows) / 1024:8.1f} MiB")
print(f"result rows (window x feature): {windows} (expected {expected})")
PY
