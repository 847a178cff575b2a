#!/usr/bin/env bash
# Measures that the live page stays light with many features: builds the binary (debug),
# runs `driftwatch run` on a generated monitor file (HTTP source of 300 numeric features
# f000..f299, a baseline of them, a drift monitor over `features(src)` in a 1 s TUMBLE with
# wasserstein_norm, a drift flag and a histogram column), posts rows at a steady rate for
# 60 s (30 features drift after 20 s), watches the page in headless Chromium (the browser
# tests' flags) and prints one table: long tasks, frame gaps, JS heap, SSE events, the heat
# map painted, the server's RSS. Exits non-zero only when the page broke (JS errors, no heat
# map, features missing), never on a timing.
#
#   scripts/bench-page.sh                         # 300 features, 50 rows/s, 60 s
#   scripts/bench-page.sh --features 500 --rate 100 --seconds 120 --screenshot /tmp/p.png
#
# Options go to scripts/bench_page.py (--help). Needs the test venv (scripts/test.sh makes
# it: numpy, Playwright) and Chromium (/usr/bin/chromium or DRIFTWATCH_CHROMIUM).
# DRIFTWATCH_BIN skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="${DRIFTWATCH_VENV:-$CACHE/venv}"
PY="$VENV/bin/python"
"$PY" -c "import numpy, playwright" 2>/dev/null || {
    echo "needs numpy and playwright in $VENV (run scripts/test.sh once)" >&2; exit 2; }

if [ -z "${DRIFTWATCH_BIN:-}" ]; then
    cargo build -p driftwatch --bin driftwatch
    DRIFTWATCH_BIN="$CARGO_TARGET_DIR/debug/driftwatch"
fi
exec "$PY" scripts/bench_page.py --bin "$DRIFTWATCH_BIN" "$@"
