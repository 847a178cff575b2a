#!/usr/bin/env bash
# The sketch mode's error bounds (FUNCTIONS.md, "Sketch error bounds") on 10⁷-value windows:
# udfs/tests/sketch.rs with DRIFTWATCH_SKETCH_N (default 10 000 000; the suite uses 10⁶).
# Prints each window's exact statistics and the measured errors.
#
#   scripts/sketch-bounds.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
DRIFTWATCH_SKETCH_N="${1:-10000000}" cargo test -p driftwatch-udfs --test sketch -- \
    --nocapture --test-threads 1
