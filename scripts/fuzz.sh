#!/usr/bin/env bash
# Fuzzes every decoder and the SQL dialect: the proptest targets (`fuzz_*` tests) of
# tests/fuzz_decoders.rs (JSON rows, HTTP bodies, CloudEvents, KServe v2 tensors, CSV, Kafka
# messages) and tests/fuzz_sql.rs (parser over token soups and mutated scripts, planner),
# built in release with overflow checks on for the workspace crates (an integer overflow
# panics, as in a debug build), each run for CASES cases.
#
#   scripts/fuzz.sh [CASES] [TARGET...]     (default 1 000 000 cases, every target)
#
#   DRIFTWATCH_FUZZ_SEED=N     fixed RNG seed (to replay a run; default random)
#   DRIFTWATCH_FUZZ_THREADS=N  workers per target (default: the available cores)
#   FUZZ_OVERFLOW_CHECKS=0     build with the plain release profile
#   FUZZ_LOGS=DIR              keep every target's log there (default: a temporary
#                              directory, removed when every target passes)
#
# Prints each target's figures as it finishes, then a table (cases, wall time, cases/s,
# failures). A failing target keeps its log, with proptest's minimal failing input, and the
# script exits non-zero. CI runs the same targets with a small case count (the default of
# DRIFTWATCH_FUZZ_CASES) as part of the ordinary test run.
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${1:-1000000}"
shift || true
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/driftwatch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
LOGS="${FUZZ_LOGS:-$(mktemp -d)}"
mkdir -p "$LOGS"

CARGO=(cargo test --release --locked --quiet)
checks=off
if [ "${FUZZ_OVERFLOW_CHECKS:-1}" != 0 ]; then
    checks=on
    for crate in driftwatch driftwatch-sql driftwatch-udfs; do
        CARGO+=(--config "profile.release.package.$crate.overflow-checks=true")
    done
fi

echo "== build (release, overflow checks $checks)"
"${CARGO[@]}" --test fuzz_decoders --test fuzz_sql --no-run

# Targets: every `fuzz_*` test of the two files (regression tests are not prefixed).
declare -a TARGETS=()
for file in fuzz_decoders fuzz_sql; do
    while read -r name; do
        TARGETS+=("$file:$name")
    done < <("${CARGO[@]}" --test "$file" -- --list 2>/dev/null |
        sed -n 's/^\(fuzz_[a-z0-9_]*\): test$/\1/p')
done
if [ $# -gt 0 ]; then
    declare -a WANTED=()
    for t in "${TARGETS[@]}"; do
        for w in "$@"; do
            if [ "${t#*:}" = "$w" ] || [ "${t#*:}" = "fuzz_$w" ]; then
                WANTED+=("$t")
            fi
        done
    done
    TARGETS=("${WANTED[@]}")
fi
[ ${#TARGETS[@]} -gt 0 ] || { echo "no fuzz target matches: $*" >&2; exit 2; }

echo "== ${#TARGETS[@]} targets × $CASES cases (logs in $LOGS)"
status=0
ROWS=()
for t in "${TARGETS[@]}"; do
    file=${t%%:*} name=${t#*:}
    log="$LOGS/$name.log"
    start=$(date +%s.%N)
    if DRIFTWATCH_FUZZ_CASES="$CASES" "${CARGO[@]}" --test "$file" -- --exact "$name" \
        --nocapture >"$log" 2>&1; then
        failures=0
    else
        failures=1
        status=1
    fi
    end=$(date +%s.%N)
    wall=$(echo "$end - $start" | bc -l)
    # The target's own line: "fuzz-target <name>: <cases> cases, <runs> runs, <s> s, ok".
    line=$(grep -m1 '^fuzz-target ' "$log" || true)
    secs=$(sed -n 's/.* runs, \([0-9.]*\) s,.*/\1/p' <<<"$line")
    secs=${secs:-$wall}
    rate=$(echo "$CASES / ($secs + 0.000001)" | bc -l)
    row=$(printf '%-32s %10s %9.1f %12.0f %8s' "$name" "$CASES" "$secs" "$rate" "$failures")
    echo "$row"
    if [ "$failures" != 0 ]; then
        echo "   FAILED, see $log:"
        grep -m5 -E 'minimal failing input|panicked|failed' "$log" | sed 's/^/   /' || true
    fi
    ROWS+=("$row")
done

echo
printf '%-32s %10s %9s %12s %8s\n' target cases 'time (s)' 'cases/s' failures
printf '%s\n' "${ROWS[@]}"
if [ $status = 0 ] && [ -z "${FUZZ_LOGS:-}" ]; then
    rm -rf "$LOGS"
fi
exit $status
