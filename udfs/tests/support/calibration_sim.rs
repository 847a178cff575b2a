//! Simulation of drift-statistic calibration, shared by `examples/calibrate.rs` (the table in
//! FUNCTIONS.md "Calibration") and `tests/calibration.rs` (the asserted rates).
//!
//! Every replicate draws a fresh baseline and a fresh window (so the baseline's own sampling
//! error is part of the experiment, as in production), profiles the baseline as
//! `BaselineProfile::from_batches` does for a numeric column (sorted sample, bin edges of the
//! chosen rule, counts per bin, population std) and computes the statistics with the same
//! code the aggregates run (`drift::compute_many`, `DriftKind::compute_counts`).
#![allow(dead_code)]

use driftwatch_udfs::drift::{compute_many, DriftKind};
use driftwatch_udfs::math::binned;
use driftwatch_udfs::math::describe::bin_edges;
use driftwatch_udfs::{BinRule, NumericProfile};

/// SplitMix64: a small, seeded, reproducible generator.
pub struct Rng(u64);

impl Rng {
    /// Generator with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Poisson(λ) (Knuth's product method; small λ).
    pub fn poisson(&mut self, lambda: f64) -> f64 {
        let l = (-lambda).exp();
        let (mut k, mut p) = (0.0, 1.0);
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }
    /// Index drawn with probabilities `shares` (summing to 1).
    pub fn category(&mut self, shares: &[f64]) -> usize {
        let u = self.uniform();
        let mut acc = 0.0;
        for (i, s) in shares.iter().enumerate() {
            acc += s;
            if u < acc {
                return i;
            }
        }
        shares.len() - 1
    }
}

/// A simulated column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// N(0, 1).
    Normal,
    /// exp(N(0, 1)): skewed, heavy right tail.
    LogNormal,
    /// Poisson(3): few distinct values, many ties.
    Poisson,
    /// Five categories with shares 40/30/15/10/5 %.
    Categorical,
}

impl Dist {
    /// Label used in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Dist::Normal => "normal",
            Dist::LogNormal => "lognormal",
            Dist::Poisson => "poisson(3)",
            Dist::Categorical => "categorical(5)",
        }
    }
    /// (mean, standard deviation) of the numeric distributions.
    fn moments(self) -> (f64, f64) {
        match self {
            Dist::Normal => (0.0, 1.0),
            Dist::LogNormal => {
                let e = std::f64::consts::E;
                (e.sqrt(), ((e - 1.0) * e).sqrt())
            }
            Dist::Poisson => (3.0, 3f64.sqrt()),
            Dist::Categorical => (0.0, 1.0),
        }
    }
}

/// Category shares of [`Dist::Categorical`] without drift.
pub const SHARES: [f64; 5] = [0.40, 0.30, 0.15, 0.10, 0.05];
/// Category shares after the share change: 10 points moved from the first to the last.
pub const SHIFTED_SHARES: [f64; 5] = [0.30, 0.30, 0.15, 0.10, 0.15];

/// How the window differs from the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shift {
    /// Same distribution.
    None,
    /// Every value + k·σ (Poisson: the rate λ + k·σ, so values stay counts).
    Mean(f64),
    /// Values scaled by a factor around the mean.
    Scale(f64),
    /// Categorical: [`SHIFTED_SHARES`].
    Shares,
}

impl Shift {
    /// Label used in the tables.
    pub fn name(self) -> String {
        match self {
            Shift::None => "none".into(),
            Shift::Mean(k) => format!("mean +{k}σ"),
            Shift::Scale(f) => format!("scale ×{f}"),
            Shift::Shares => "shares ±10 pt".into(),
        }
    }
}

/// `n` values of `dist` under `shift`.
pub fn draw(rng: &mut Rng, dist: Dist, shift: Shift, n: usize) -> Vec<f64> {
    let (mu, sd) = dist.moments();
    (0..n)
        .map(|_| {
            let x = match dist {
                Dist::Normal => rng.normal(),
                Dist::LogNormal => rng.normal().exp(),
                // A mean shift of a count is a rate shift (values stay integers).
                Dist::Poisson => match shift {
                    Shift::Mean(k) => return rng.poisson(3.0 + k * sd),
                    _ => rng.poisson(3.0),
                },
                Dist::Categorical => {
                    let s = if shift == Shift::Shares {
                        &SHIFTED_SHARES
                    } else {
                        &SHARES
                    };
                    return rng.category(s) as f64;
                }
            };
            match shift {
                Shift::Mean(k) => x + k * sd,
                Shift::Scale(f) => mu + f * (x - mu),
                Shift::None | Shift::Shares => x,
            }
        })
        .collect()
}

/// The numeric part of a baseline profile of `values` with bin rule `bins`.
pub fn profile(mut values: Vec<f64>, bins: &BinRule) -> NumericProfile {
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let edges = bin_edges(&values, bins);
    NumericProfile {
        rows: values.len() as u64,
        count: values.len() as u64,
        mean,
        std_pop: var.sqrt(),
        bin_counts: binned::histogram(&edges, &values),
        bin_edges: edges,
        sample: values,
        ..Default::default()
    }
}

/// Statistics of one window against one baseline (`None` where undefined).
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// `chi2_pvalue` (two-sample, default bins).
    pub chi2_p: Option<f64>,
    /// `chi2_gof_pvalue` on Freedman–Diaconis bins (the former defaults).
    pub old_chi2_p: Option<f64>,
    /// `ks_pvalue` (numeric only).
    pub ks_p: Option<f64>,
    /// `psi` (default bins).
    pub psi: Option<f64>,
    /// `psi` on Freedman–Diaconis bins (the former default).
    pub old_psi: Option<f64>,
    /// `wasserstein_norm` (numeric only).
    pub w1n: Option<f64>,
}

/// Default bins of a baseline (`ProfileOptions::default().bins`).
pub fn default_bins() -> BinRule {
    driftwatch_udfs::ProfileOptions::default().bins
}

/// One replicate: a fresh baseline of `baseline` rows and a window of `n` rows.
pub fn replicate(rng: &mut Rng, dist: Dist, shift: Shift, baseline: usize, n: usize) -> Outcome {
    let reference = draw(rng, dist, Shift::None, baseline);
    let mut window = draw(rng, dist, shift, n);
    window.sort_by(f64::total_cmp);
    if dist == Dist::Categorical {
        // Category counts, as the categorical kernel compares them.
        let count = |v: &[f64]| {
            let mut c = vec![0u64; SHARES.len()];
            for &x in v {
                c[x as usize] += 1;
            }
            c
        };
        let (cur, reference) = (count(&window), count(&reference));
        let psi = DriftKind::Psi.compute_counts(&cur, &reference);
        return Outcome {
            chi2_p: DriftKind::Chi2Pvalue.compute_counts(&cur, &reference),
            old_chi2_p: DriftKind::Chi2GofPvalue.compute_counts(&cur, &reference),
            psi,
            old_psi: psi,
            ..Default::default()
        };
    }
    let new = profile(reference.clone(), &default_bins());
    let old = profile(reference, &BinRule::Fd);
    let kinds = [
        DriftKind::Chi2Pvalue,
        DriftKind::KsPvalue,
        DriftKind::Psi,
        DriftKind::WassersteinNorm,
    ];
    let r = compute_many(&kinds, &window, &new);
    let o = compute_many(&[DriftKind::Chi2GofPvalue, DriftKind::Psi], &window, &old);
    Outcome {
        chi2_p: r[0],
        ks_p: r[1],
        psi: r[2],
        w1n: r[3],
        old_chi2_p: o[0],
        old_psi: o[1],
    }
}

/// Summary of many replicates of one cell.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// The outcomes.
    pub outcomes: Vec<Outcome>,
}

impl Cell {
    /// `reps` replicates with the generator seeded by `seed`.
    pub fn run(
        seed: u64,
        dist: Dist,
        shift: Shift,
        baseline: usize,
        n: usize,
        reps: usize,
    ) -> Self {
        let mut rng = Rng::new(seed);
        Cell {
            outcomes: (0..reps)
                .map(|_| replicate(&mut rng, dist, shift, baseline, n))
                .collect(),
        }
    }
    /// Share of replicates where `f` holds (undefined values count as not flagged).
    pub fn share(&self, f: impl Fn(&Outcome) -> Option<bool>) -> f64 {
        let hits = self
            .outcomes
            .iter()
            .filter(|o| f(o).unwrap_or(false))
            .count();
        hits as f64 / self.outcomes.len() as f64
    }
    /// Mean of a statistic over the replicates where it is defined (NaN if none).
    pub fn mean(&self, f: impl Fn(&Outcome) -> Option<f64>) -> f64 {
        let v: Vec<f64> = self.outcomes.iter().filter_map(f).collect();
        v.iter().sum::<f64>() / v.len() as f64
    }
    /// 95th percentile (nearest rank) of a statistic over the replicates where it is defined.
    pub fn p95(&self, f: impl Fn(&Outcome) -> Option<f64>) -> f64 {
        let mut v: Vec<f64> = self.outcomes.iter().filter_map(f).collect();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        let rank = ((0.95 * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }
}

/// Flag rule: p-value below α = 0.05.
pub fn rejects(p: Option<f64>) -> Option<bool> {
    p.map(|p| p < 0.05)
}
