#!/usr/bin/env bash
# Checkpoint costs, measured on this machine with the release binary:
#   1. throughput of a file replay through the Iris monitors with checkpoints every second
#      and with checkpoints off (rows/s, and the ratio);
#   2. checkpoint size, duration (barrier to durable file) and the longest ingestion stall
#      of the Iris demo (HTTP ingest, write-ahead log on);
#   3. the same for a 300-feature drift monitor (HOP 5 s / 15 s over features(src):
#      wasserstein_norm and ks_pvalue per feature, list state of every open pane).
#
#   scripts/bench-checkpoint.sh [ROWS]      (default 1 000 000 rows for 1., 20 000 for 3.)
#
# Prints one table per scenario. Python (numpy) comes from the test venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
WIDE_ROWS="${WIDE_ROWS:-20000}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="${DRIFTWATCH_VENV:-$CACHE/venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy
cargo build --release --locked --quiet
BIN="$CARGO_TARGET_DIR/release/driftwatch"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Figures of the "checkpoint written" log lines of a run: count, mean and max duration,
# max stall, mean and max size.
figures() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | { grep "checkpoint written" || true; } | "$VENV/bin/python" -c '
import re, sys
rows = [dict(re.findall(r"(\w+)=(\d+)", l)) for l in sys.stdin]
rows = [r for r in rows if "bytes" in r]
if not rows:
    print("no checkpoint"); sys.exit()
ms = [int(r["ms"]) for r in rows]; st = [int(r["max_stall_us"]) for r in rows]
cp = [int(r.get("max_copy_us", 0)) for r in rows]
b = [int(r["bytes"]) for r in rows]
st.sort(); n = len(st)
print(f"checkpoints {n}: duration mean {sum(ms)/n:.1f} ms, max {max(ms)} ms; "
      f"stall p50 {st[n//2]/1000:.2f} ms, max {st[-1]/1000:.2f} ms; "
      f"state copy max {max(cp)/1000:.2f} ms; size mean {sum(b)/n/1024:.1f} KiB, "
      f"max {max(b)/1024:.1f} KiB")'
}

echo "== generating data"
"$VENV/bin/python" - "$WORK" "$ROWS" "$WIDE_ROWS" <<'EOF'
import sys, numpy as np
work, n, wide = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(1)
t0 = 1_767_225_600_000
x = rng.normal([5.84, 3.05, 3.76, 1.20], [0.83, 0.43, 1.76, 0.76], size=(n, 4))
x[n // 2:, 2] += 1.5
ts = t0 + np.arange(n) * 4
with open(f"{work}/iris.jsonl", "w") as f:
    for i in range(n):
        a = x[i]
        f.write(f'{{"request_id":"r{i}","ts":{ts[i]},"sepal_length":{a[0]:.3f},'
                f'"sepal_width":{a[1]:.3f},"petal_length":{a[2]:.3f},"petal_width":{a[3]:.3f}}}\n')
cols = [f"f{j:03d}" for j in range(300)]
base = rng.normal(0, 1, size=(5000, 300))
with open(f"{work}/wide_train.csv", "w") as f:
    f.write(",".join(cols) + "\n")
    for r in base:
        f.write(",".join(f"{v:.4f}" for v in r) + "\n")
cur = rng.normal(0.05, 1, size=(wide, 300))
tsw = t0 + np.arange(wide) * 5
with open(f"{work}/wide.csv", "w") as f:
    f.write("ts," + ",".join(cols) + "\n")
    for i, r in enumerate(cur):
        f.write(f"{tsw[i]}," + ",".join(f"{v:.4f}" for v in r) + "\n")
EOF

IRIS_COLUMNS="request_id VARCHAR, ts TIMESTAMP, sepal_length DOUBLE, sepal_width DOUBLE, petal_length DOUBLE, petal_width DOUBLE"
cat >"$WORK/iris.sql" <<EOF
CREATE SOURCE iris ($IRIS_COLUMNS, WATERMARK FOR ts AS ts - INTERVAL '6 seconds')
WITH (connector = 'file', path = '$WORK/iris.jsonl', time_format = 'epoch_ms');
CREATE BASELINE iris_train FROM '$PWD/examples/iris/train.csv';
CREATE MONITOR iris_stats AS
SELECT window_start, window_end, count(*) AS n, avg(sepal_length) AS sl, stddev(petal_length) AS pl
FROM TUMBLE(iris, ts, INTERVAL '15 seconds') GROUP BY window_start, window_end;
CREATE MONITOR iris_drift AS
SELECT window_start, window_end, feature, wasserstein_norm(value, 'iris_train', feature) AS w,
       ks_pvalue(value, 'iris_train', feature) AS ks_p
FROM HOP(features(iris), ts, INTERVAL '5 seconds', INTERVAL '15 seconds')
GROUP BY window_start, window_end, feature;
CREATE MONITOR iris_outliers AS
SELECT request_id, ts, zscore(petal_length, 'iris_train') AS z FROM iris
WHERE abs(zscore(petal_length, 'iris_train')) > 3;
EOF

echo
echo "== 1. throughput, $ROWS rows of file replay through the Iris monitors (median of 3 runs each, alternating)"
declare -A RUNS
for round in 1 2 3; do
    for mode in 1s off; do
        rm -rf "$WORK/data-$mode"
        start=$(date +%s.%N)
        "$BIN" run "$WORK/iris.sql" --data-dir "$WORK/data-$mode" --no-flight --quiet --status-every 0 \
            --checkpoint-interval "$mode" 2>"$WORK/run-$mode.log"
        end=$(date +%s.%N)
        RUNS[$mode]="${RUNS[$mode]:-} $(echo "$end - $start" | bc -l)"
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | sed -n 2p; }
for mode in 1s off; do
    m=$(median "${RUNS[$mode]}")
    printf 'checkpoints %-4s median %6.2f s (runs:%s)  %8.0f rows/s\n' "$mode" "$m" \
        "$(printf ' %.2f' ${RUNS[$mode]})" "$(echo "$ROWS / $m" | bc -l)"
done
printf 'checkpoints every second cost %.1f %% of throughput (median against median)\n' \
    "$(echo "($(median "${RUNS[1s]}") / $(median "${RUNS[off]}") - 1) * 100" | bc -l)"
printf 'last run with checkpoints: '
figures "$WORK/run-1s.log"

echo
echo "== 2. Iris demo (HTTP ingest with write-ahead log, 200 requests/s, checkpoints every 5 s)"
"$BIN" demo --duration 30 --data-dir "$WORK/demo" --no-flight --http-listen 127.0.0.1:0 \
    >/dev/null 2>"$WORK/demo.log"
figures "$WORK/demo.log"

echo
echo "== 3. 300-feature drift monitor ($WIDE_ROWS rows × 300 features, HOP 5 s / 15 s, checkpoints every second)"
{
    printf "CREATE SOURCE wide (ts TIMESTAMP"
    for j in $(seq 0 299); do printf ", f%03d DOUBLE" "$j"; done
    printf ", WATERMARK FOR ts AS ts - INTERVAL '6 seconds')\n"
    printf "WITH (connector = 'file', path = '%s', time_format = 'epoch_ms', replay = 'realtime', replay_speed = '10');\n" "$WORK/wide.csv"
    printf "CREATE BASELINE wide_train FROM '%s';\n" "$WORK/wide_train.csv"
    printf "CREATE MONITOR wide_drift AS SELECT window_start, window_end, feature,\n"
    printf "  wasserstein_norm(value, 'wide_train', feature) AS w, ks_pvalue(value, 'wide_train', feature) AS ks_p\n"
    printf "FROM HOP(features(wide), ts, INTERVAL '5 seconds', INTERVAL '15 seconds') GROUP BY window_start, window_end, feature;\n"
} >"$WORK/wide.sql"
"$BIN" run "$WORK/wide.sql" --data-dir "$WORK/wide-data" --no-flight --quiet --status-every 0 \
    --checkpoint-interval 1s 2>"$WORK/wide.log"
figures "$WORK/wide.log"

echo
echo "== 4. HTTP ingest: wal_sync = 'always' vs 'interval' vs no write-ahead log (checkpoints off)"
echo "   8 clients posting 20 rows per request for 10 s; latency of a request, 2xx only"
for mode in always interval off; do
    port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sync="wal_sync = '${mode/off/always}'"
    cat >"$WORK/http-$mode.sql" <<SQL
CREATE SOURCE ev (id VARCHAR, ts TIMESTAMP, x DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5 seconds')
WITH (connector = 'http', time_format = 'epoch_ms', $sync);
CREATE MONITOR n AS SELECT window_start, window_end, count(*) AS n FROM TUMBLE(ev, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end;
SQL
    interval=5s
    [ "$mode" = off ] && interval=off
    "$BIN" run "$WORK/http-$mode.sql" --data-dir "$WORK/http-$mode" --no-flight --quiet --status-every 0 \
        --http-listen "127.0.0.1:$port" --checkpoint-interval "$interval" 2>"$WORK/http-$mode.log" &
    pid=$!
    "$VENV/bin/python" - "$port" "$mode" <<'PY'
import sys, threading, time, urllib.request, json
port, mode = int(sys.argv[1]), sys.argv[2]
url = f"http://127.0.0.1:{port}/ingest/ev"
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1); break
    except OSError:
        time.sleep(0.05)
lat, lock, stop = [], threading.Lock(), time.time() + 10
body = "\n".join(json.dumps({"id": f"r{i}", "ts": 1_767_225_600_000 + i, "x": 1.0}) for i in range(20)).encode()
def client():
    mine = []
    while time.time() < stop:
        t = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as r:
            assert 200 <= r.status < 300
        mine.append(time.perf_counter() - t)
    with lock:
        lat.extend(mine)
threads = [threading.Thread(target=client) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
lat.sort(); n = len(lat)
print(f"   {mode:<9} {n / 10:8.0f} requests/s ({n * 20 / 10:8.0f} rows/s)   "
      f"p50 {lat[n // 2] * 1000:6.2f} ms   p99 {lat[int(n * 0.99)] * 1000:6.2f} ms")
PY
    kill -TERM "$pid"
    wait "$pid" || true
done
