#!/usr/bin/env bash
# Calibration of the drift statistics by simulation: prints the Markdown tables of
# FUNCTIONS.md "Calibration" (false-positive rate and power of chi2_pvalue, ks_pvalue, psi and
# wasserstein_norm at several window sizes; see udfs/examples/calibrate.rs).
#
#   scripts/calibrate-drift.sh [REPS [SEED [POWER_REPS]]]   # default 1000 windows per row, seed 12
#
# CALIBRATE_PROFILE=fast optimises only the udfs crate (one crate to rebuild; the
# 1000-window no-drift table takes about 7 minutes on 2 cores), release optimises everything
# (a long cold build); the default dev profile needs no extra build after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${CALIBRATE_PROFILE:-dev}
args=()
case $profile in
  release) args+=(--release) ;;
  fast) export CARGO_PROFILE_DEV_PACKAGE_DRIFTWATCH_UDFS_OPT_LEVEL=3 ;;
  dev) ;;
  *) echo "CALIBRATE_PROFILE must be dev, fast or release, got '$profile'" >&2; exit 2 ;;
esac
exec cargo run -q -p driftwatch-udfs "${args[@]}" --example calibrate -- "$@"
