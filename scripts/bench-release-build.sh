#!/usr/bin/env bash
# Cold release build of this checkout: wall and CPU time of
# `cargo build --release --locked --bin driftwatch` into an empty target dir, and the size of
# the binary. Takes 50–70 min on 2 cores; the target dir is removed afterwards.
#   scripts/bench-release-build.sh [TARGET_DIR]   (default: a fresh temporary dir)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:-$(mktemp -d)}"
if [ -e "$TARGET/release" ]; then
    echo "$TARGET already holds a release build: not a cold build" >&2
    exit 2
fi
trap 'rm -rf "$TARGET"' EXIT
TIMES="$(mktemp)"
CARGO_TARGET_DIR="$TARGET" /usr/bin/time -o "$TIMES" -f "wall=%e s user=%U s sys=%S s max_rss=%M KB" \
    cargo build --release --locked --bin driftwatch
echo "cold release build: $(cat "$TIMES")"
echo "binary: $(stat -c %s "$TARGET/release/driftwatch") bytes ($TARGET/release/driftwatch)"
rm -f "$TIMES"
