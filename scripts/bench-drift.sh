#!/usr/bin/env bash
# Drift functions vs scipy and Evidently on the same generated data (issue 3's benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
VENV="${DRIFTWATCH_BENCH_VENV:-$CACHE/bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check numpy scipy pyarrow "pandas<3" evidently
cargo build --release --locked --bin driftwatch
"$VENV/bin/python" benches/drift_vs_peers.py "$CARGO_TARGET_DIR/release/driftwatch" "$@"
