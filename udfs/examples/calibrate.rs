//! Calibration of the drift statistics: false-positive rate and power by simulation.
//!
//! `cargo run -p driftwatch-udfs --example calibrate -- [REPS [SEED [POWER_REPS]]]` (or
//! `scripts/calibrate-drift.sh`) prints the Markdown tables of FUNCTIONS.md "Calibration".
//! Each no-drift cell runs REPS replicates (default 1000; 0 skips that table) and each
//! shifted cell POWER_REPS (default REPS); each replicate draws a fresh baseline and a
//! fresh window (see `tests/support/calibration_sim.rs`) and computes `chi2_pvalue`,
//! `ks_pvalue`, `psi` and `wasserstein_norm` on the default bins, plus `chi2_gof_pvalue` and
//! `psi` on Freedman–Diaconis bins (the former defaults) for comparison.

#[path = "../tests/support/calibration_sim.rs"]
mod sim;

use sim::{rejects, Cell, Dist, Shift};

const WINDOWS: [usize; 4] = [50, 200, 1000, 5000];

fn pct(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{:.1} %", 100.0 * x)
    }
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.3}")
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let reps: usize = args
        .next()
        .map_or(1000, |a| a.parse().expect("REPS: a count"));
    let seed: u64 = args
        .next()
        .map_or(12, |a| a.parse().expect("SEED: an integer"));
    let power_reps: usize = args
        .next()
        .map_or(reps, |a| a.parse().expect("POWER_REPS: a count"));
    let numeric = [Dist::Normal, Dist::LogNormal, Dist::Poisson];
    let mut cell_seed = seed;
    let mut next_seed = || {
        cell_seed = cell_seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        cell_seed
    };

    if reps > 0 {
        println!("No drift ({reps} windows per row; rejection rates at α = 0.05):\n");
        println!(
        "| column | baseline | window | chi2_pvalue < 0.05 | ks_pvalue < 0.05 | psi mean | psi p95 \
         | wasserstein_norm mean | former defaults: chi2 (gof, FD) < 0.05 | former: psi mean (FD) |"
    );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for baseline in [10_000, 500] {
            for dist in numeric.iter().copied().chain([Dist::Categorical]) {
                for n in WINDOWS {
                    let c = Cell::run(next_seed(), dist, Shift::None, baseline, n, reps);
                    let ks = if dist == Dist::Categorical {
                        f64::NAN
                    } else {
                        c.share(|o| rejects(o.ks_p))
                    };
                    println!(
                        "| {} | {baseline} | {n} | {} | {} | {} | {} | {} | {} | {} |",
                        dist.name(),
                        pct(c.share(|o| rejects(o.chi2_p))),
                        pct(ks),
                        num(c.mean(|o| o.psi)),
                        num(c.p95(|o| o.psi)),
                        num(c.mean(|o| o.w1n)),
                        pct(c.share(|o| rejects(o.old_chi2_p))),
                        num(c.mean(|o| o.old_psi)),
                    );
                }
            }
        }
    } else {
        // Same seeds for the shifted cells as in a full run: skip the no-drift cells' seeds.
        for _ in 0..2 * 4 * WINDOWS.len() {
            next_seed();
        }
    }
    println!("\nShifted windows, baseline 10 000 rows (share of {power_reps} windows flagged):\n");
    println!(
        "| column | shift | window | chi2_pvalue < 0.05 | ks_pvalue < 0.05 | psi > 0.1 | psi > 0.25 \
         | wasserstein_norm > 0.1 | psi mean | wasserstein_norm mean |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows: Vec<(Dist, Shift)> = Vec::new();
    for dist in numeric {
        for shift in [Shift::Mean(0.25), Shift::Mean(0.5), Shift::Scale(1.5)] {
            rows.push((dist, shift));
        }
    }
    rows.push((Dist::Categorical, Shift::Shares));
    for (dist, shift) in rows {
        for n in WINDOWS {
            let c = Cell::run(next_seed(), dist, shift, 10_000, n, power_reps);
            let numeric = dist != Dist::Categorical;
            let or_nan = |x: f64| if numeric { x } else { f64::NAN };
            println!(
                "| {} | {} | {n} | {} | {} | {} | {} | {} | {} | {} |",
                dist.name(),
                shift.name(),
                pct(c.share(|o| rejects(o.chi2_p))),
                pct(or_nan(c.share(|o| rejects(o.ks_p)))),
                pct(c.share(|o| o.psi.map(|p| p > 0.1))),
                pct(c.share(|o| o.psi.map(|p| p > 0.25))),
                pct(or_nan(c.share(|o| o.w1n.map(|w| w > 0.1)))),
                num(c.mean(|o| o.psi)),
                num(c.mean(|o| o.w1n)),
            );
        }
    }
}
