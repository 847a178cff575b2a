#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (Python packages from
# PyPI into a cached venv), builds, then runs the Rust tests (cargo-nextest when present,
# cargo test otherwise), the doc tests and the Python conformance tests.
#
# Caches live outside the clone so warm runs are fast:
#   CARGO_TARGET_DIR  (default ~/.cache/driftwatch/target)
#   DRIFTWATCH_VENV   (default ~/.cache/driftwatch/venv)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
# Incremental artefacts double the size of the target dir and do not help a test run.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
VENV="${DRIFTWATCH_VENV:-$CACHE/venv}"
mkdir -p "$CACHE"

step() { printf '\n== %s\n' "$*"; }

step "Python test dependencies ($VENV)"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

step "Kafka broker (tansu; installed into the cache when missing, ~11 min cold)"
export DRIFTWATCH_KAFKA="${DRIFTWATCH_KAFKA:-127.0.0.1:9092}"
if scripts/kafka.sh status >/dev/null 2>&1; then
    echo "using the broker already on $DRIFTWATCH_KAFKA"
else
    scripts/kafka.sh start
    trap 'scripts/kafka.sh stop >/dev/null 2>&1' EXIT
fi

step "build"
cargo build --workspace --all-targets --locked
cargo build -p driftwatch-udfs --example eval_stats --locked

status=0
step "Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast || status=1
    cargo test --workspace --doc --locked || status=1
else
    cargo test --workspace --locked --no-fail-fast || status=1
fi

step "API docs (rustdoc, warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked --quiet || status=1

step "Python tests (scipy/numpy conformance)"
export DRIFTWATCH_EVAL_STATS="$CARGO_TARGET_DIR/debug/examples/eval_stats"
export DRIFTWATCH_BIN="$CARGO_TARGET_DIR/debug/driftwatch"
"$VENV/bin/python" -m pytest -q tests/python || status=1

exit $status
