#!/usr/bin/env bash
# SESSION windows under steady traffic: per-batch latency percentiles and RSS by decile of
# the run (first vs last decile should match: O(batch) updates, sessions closed by gap, flat
# memory). Usage: scripts/bench-session.sh [ROWS]   (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-10000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --quiet -p driftwatch --example session_steady
"$CARGO_TARGET_DIR/release/examples/session_steady" "$rows"
