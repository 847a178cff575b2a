#!/usr/bin/env bash
# Runs every test on a fresh machine: installs what the tests need (Python packages from
# PyPI into a cached venv, Debian's Chromium for the browser tests, the tansu broker from
# crates.io), builds, then runs the Rust tests (cargo-nextest when present, cargo test
# otherwise), the doc tests, and the Python tests (scipy/numpy conformance, Flight and Kafka
# clients, kill -9 crash tests, the live page and reports in headless Chromium). Prints each
# runner's summary and fails when a test was skipped. The long crash test (1 M events) is
# scripts/crash-test.sh.
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

step "Chromium for the browser tests (Debian's package)"
export DRIFTWATCH_CHROMIUM="${DRIFTWATCH_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$DRIFTWATCH_CHROMIUM" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
"$DRIFTWATCH_CHROMIUM" --version
# Screenshots taken by the browser tests (CI artifacts; never committed).
export DRIFTWATCH_ARTIFACTS="${DRIFTWATCH_ARTIFACTS:-$(mktemp -d /tmp/driftwatch-artifacts.XXXXXX)}"
echo "browser test screenshots go to $DRIFTWATCH_ARTIFACTS"

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
LOGS="$(mktemp -d)"
# A test that should run and was skipped is a failure: print the runner's summary line and
# fail when it reports skipped (or ignored) tests.
no_skips() {
    local what=$1 log=$2 pattern=$3
    local summary
    summary=$(grep -E "$pattern" "$log" || true)
    echo "$what: ${summary:-no summary line}"
    if [ -z "$summary" ] || echo "$summary" | grep -Eq '[1-9][0-9]* (skipped|ignored)'; then
        echo "$what: tests were skipped or the summary is missing" >&2
        status=1
    fi
}

step "Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee "$LOGS/nextest.log" || status=1
    no_skips "cargo nextest" "$LOGS/nextest.log" 'Summary \['
    cargo test --workspace --doc --locked 2>&1 | tee "$LOGS/doctest.log" || status=1
    no_skips "doc tests" "$LOGS/doctest.log" '^test result:'
else
    cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$LOGS/cargo-test.log" || status=1
    if grep -Eq '[1-9][0-9]* ignored' "$LOGS/cargo-test.log"; then
        echo "cargo test: ignored tests" >&2
        status=1
    fi
fi

step "API docs (rustdoc, warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace --locked --quiet || status=1

step "Python tests (scipy/numpy conformance, Flight clients, Kafka clients, crash tests)"
export DRIFTWATCH_EVAL_STATS="$CARGO_TARGET_DIR/debug/examples/eval_stats"
export DRIFTWATCH_BIN="$CARGO_TARGET_DIR/debug/driftwatch"
export DRIFTWATCH_TANSU="${DRIFTWATCH_TANSU:-$CACHE/tansu/bin/tansu}"
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider tests/python 2>&1 | tee "$LOGS/pytest.log" || status=1
no_skips "pytest" "$LOGS/pytest.log" '[0-9]+ (passed|failed)'

step "Summary"
grep -hE 'Summary \[|^test result:|[0-9]+ (passed|failed).* in ' "$LOGS"/*.log || true
rm -rf "$LOGS"

exit $status
