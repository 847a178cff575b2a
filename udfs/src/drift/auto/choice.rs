//! Evidently's default choice of drift test per column and its five tests, reproduced from
//! `evidently/legacy/calculations/stattests/` (Evidently 0.7.23): `registry.py`
//! (`_get_default_stattest`), `ks_stattest.py`, `chisquare_stattest.py`, `z_stattest.py`,
//! `wasserstein_distance_norm.py`, `jensenshannon.py` and `utils.py` (`get_binned_data`).
//!
//! Evidently drops NULL, NaN and ±inf values of both sides before choosing and testing
//! (`get_one_column_drift`); so do the callers here.

use crate::math::sketch::PooledSketch;
use crate::math::special::igamc;
use crate::math::{ks, wasserstein};

/// Largest reference (non-NULL, finite values) for which Evidently picks the small-sample
/// tests (KS, chi-square, Z); larger references get Wasserstein / Jensen–Shannon.
pub const SMALL_REFERENCE: usize = 1000;

/// A numeric column with at most this many distinct values in reference ∪ current is tested
/// like a categorical one (`n_values <= 5` in `_get_default_stattest`).
pub const FEW_VALUES: usize = 5;

/// Evidently's default share of drifted columns for dataset drift (`drift_share = 0.5`).
pub const DEFAULT_DRIFT_SHARE: f64 = 0.5;

/// One of the tests Evidently chooses by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `scipy.stats.ks_2samp(reference, current).pvalue`; drift when p ≤ 0.05.
    Ks,
    /// One-sample `scipy.stats.chisquare(current counts, reference counts × n_cur / n_ref)`
    /// p-value; drift when p < 0.05.
    ChiSquare,
    /// Two-proportion Z-test p-value; drift when p < 0.05.
    Z,
    /// `wasserstein_distance(reference, current) / max(std(reference), 0.001)`; drift when
    /// ≥ 0.1.
    Wasserstein,
    /// `scipy.spatial.distance.jensenshannon` (natural log) of the value shares; drift when
    /// ≥ 0.1.
    JensenShannon,
}

impl Method {
    /// Evidently's display name of the test (`stattest_name` in its results).
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "K-S p_value",
            Method::ChiSquare => "chi-square p_value",
            Method::Z => "Z-test p_value",
            Method::Wasserstein => "Wasserstein distance (normed)",
            Method::JensenShannon => "Jensen-Shannon distance",
        }
    }

    /// Evidently's default threshold of the test.
    pub fn threshold(self) -> f64 {
        match self {
            Method::Ks | Method::ChiSquare | Method::Z => 0.05,
            Method::Wasserstein | Method::JensenShannon => 0.1,
        }
    }

    /// Whether `score` means drift at the default threshold (p-values: low is drift — KS
    /// with `<=`, chi-square and Z with `<`, as Evidently; distances: `>=`).
    pub fn drifted(self, score: f64) -> bool {
        let t = self.threshold();
        match self {
            Method::Ks => score <= t,
            Method::ChiSquare | Method::Z => score < t,
            Method::Wasserstein | Method::JensenShannon => score >= t,
        }
    }

    /// Evidently's choice (`_get_default_stattest`) for a reference of `n_ref` values, a
    /// column of type categorical or numerical, with `n_values` distinct values in
    /// reference ∪ current (only compared with 2 and [`FEW_VALUES`], so it may be capped).
    pub fn choose(n_ref: usize, categorical: bool, n_values: usize) -> Method {
        let few = n_values <= FEW_VALUES;
        match (n_ref <= SMALL_REFERENCE, categorical || few) {
            (true, true) if n_values > 2 => Method::ChiSquare,
            (true, true) => Method::Z,
            (true, false) => Method::Ks,
            (false, true) => Method::JensenShannon,
            (false, false) => Method::Wasserstein,
        }
    }
}

/// The outcome of the chosen test on one column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The test.
    pub method: Method,
    /// p-value or distance (Evidently's `drift_score`).
    pub score: f64,
    /// Whether the column drifted ([`Method::drifted`]).
    pub drifted: bool,
}

impl Verdict {
    fn new(method: Method, score: f64) -> Self {
        Verdict {
            method,
            score,
            drifted: method.drifted(score),
        }
    }
}

/// Counts of each distinct value of `current` and `reference`, aligned on the sorted union
/// of their values (both sorted ascending, finite).
pub fn aligned_counts(current: &[f64], reference: &[f64]) -> Vec<(u64, u64)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < current.len() || j < reference.len() {
        let v = match (current.get(i), reference.get(j)) {
            (Some(&c), Some(&r)) => c.min(r),
            (Some(&c), None) => c,
            (None, Some(&r)) => r,
            (None, None) => unreachable!(),
        };
        let (i0, j0) = (i, j);
        while current.get(i) == Some(&v) {
            i += 1;
        }
        while reference.get(j) == Some(&v) {
            j += 1;
        }
        out.push(((i - i0) as u64, (j - j0) as u64));
    }
    out
}

/// Number of distinct values in `current` ∪ `reference` (sorted), counted up to `cap + 1`.
pub fn distinct_union(current: &[f64], reference: &[f64], cap: usize) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while (i < current.len() || j < reference.len()) && n <= cap {
        let v = match (current.get(i), reference.get(j)) {
            (Some(&c), Some(&r)) => c.min(r),
            (Some(&c), None) => c,
            (None, Some(&r)) => r,
            (None, None) => unreachable!(),
        };
        while current.get(i) == Some(&v) {
            i += 1;
        }
        while reference.get(j) == Some(&v) {
            j += 1;
        }
        n += 1;
    }
    n
}

/// Evidently's test of a numeric column: `current` and `reference` sorted and finite (not
/// empty), `n_ref` the reference's number of finite values (its sample may be subsampled),
/// `std_ref` its population standard deviation, `categorical` its type. `None` when either
/// side is empty.
pub fn numeric_verdict(
    current: &[f64],
    reference: &[f64],
    n_ref: usize,
    std_ref: f64,
    categorical: bool,
) -> Option<Verdict> {
    if current.is_empty() || reference.is_empty() {
        return None;
    }
    let n_values = distinct_union(current, reference, FEW_VALUES);
    let method = Method::choose(n_ref, categorical, n_values);
    let score = match method {
        Method::Ks => ks::ks_2samp_sorted(current, reference).pvalue,
        Method::Wasserstein => {
            wasserstein::wasserstein_sorted(current, reference) / std_ref.max(0.001)
        }
        _ => return counts_verdict(method, &aligned_counts(current, reference)),
    };
    Some(Verdict::new(method, score))
}

/// [`numeric_verdict`] of a window kept as a sketch (above the baseline's `sketch_above`;
/// see [`crate::math::sketch`]): the same choice and tests on the pooled sketch points. KS
/// and normed Wasserstein carry the sketch's error bounds; counts (chi-square, Z,
/// Jensen–Shannon, chosen for at most [`FEW_VALUES`] distinct values) are exact unless two
/// distinct window values share a key (within a relative 10⁻³), then taken as one value.
pub fn numeric_verdict_sketch(
    pooled: &PooledSketch,
    n_ref: usize,
    std_ref: f64,
    categorical: bool,
) -> Option<Verdict> {
    let points: Vec<(f64, u64, u64, bool)> = pooled.points().collect();
    if pooled.n() == 0 || points.iter().all(|p| p.2 == 0) {
        return None;
    }
    // a key of unequal values holds at least two distinct values
    let n_values: usize = points.iter().map(|p| 1 + p.3 as usize).sum();
    let method = Method::choose(n_ref, categorical, n_values);
    let score = match method {
        Method::Ks => pooled.ks().pvalue,
        Method::Wasserstein => pooled.wasserstein() / std_ref.max(0.001),
        _ => {
            let counts: Vec<(u64, u64)> = points.iter().map(|p| (p.1, p.2)).collect();
            return counts_verdict(method, &counts);
        }
    };
    Some(Verdict::new(method, score))
}

/// Evidently's test of a categorical column given the (current, reference) count of every
/// value of the union, in ascending value order. `None` when either side is empty.
pub fn categorical_verdict(n_ref: usize, counts: &[(u64, u64)]) -> Option<Verdict> {
    let method = Method::choose(n_ref, true, counts.len());
    counts_verdict(method, counts)
}

/// Chi-square, Z or Jensen–Shannon on aligned counts (ascending value order).
fn counts_verdict(method: Method, counts: &[(u64, u64)]) -> Option<Verdict> {
    let n_cur: u64 = counts.iter().map(|c| c.0).sum();
    let n_ref: u64 = counts.iter().map(|c| c.1).sum();
    if n_cur == 0 || n_ref == 0 {
        return None;
    }
    let score = match method {
        Method::ChiSquare => chi_square(counts, n_cur, n_ref),
        Method::Z => z_test(counts, n_cur, n_ref),
        Method::JensenShannon => jensen_shannon(counts, n_cur, n_ref),
        Method::Ks | Method::Wasserstein => return None,
    };
    Some(Verdict::new(method, score))
}

/// `_chi_stat_test`: `chisquare(f_obs = current counts, f_exp = reference counts × k_norm)`,
/// k_norm = n_cur / n_ref, df = number of values − 1. A value absent from the reference
/// (expected 0) makes the statistic infinite and the p-value 0, as in scipy.
fn chi_square(counts: &[(u64, u64)], n_cur: u64, n_ref: u64) -> f64 {
    let k_norm = n_cur as f64 / n_ref as f64;
    let stat: f64 = counts
        .iter()
        .map(|&(c, r)| {
            let e = r as f64 * k_norm;
            let d = c as f64 - e;
            d * d / e
        })
        .sum();
    if stat.is_infinite() {
        return 0.0;
    }
    let df = (counts.len() - 1) as f64;
    if stat < 0.0 || stat.is_nan() || df < 1.0 {
        return f64::NAN;
    }
    igamc(df / 2.0, stat / 2.0)
}

/// `_z_stat_test`: 1 when both sides hold the same single value; else the two-sided
/// two-proportion Z-test of "value ≠ smallest value", p = 2·(1 − Φ(|z|)) (computed as
/// Evidently does, so p is exactly 0 once Φ(|z|) rounds to 1).
fn z_test(counts: &[(u64, u64)], n_cur: u64, n_ref: u64) -> f64 {
    if counts.len() == 1 {
        return 1.0;
    }
    let (n1, n2) = (n_ref as f64, n_cur as f64);
    let p1 = (n_ref - counts[0].1) as f64 / n1;
    let p2 = (n_cur - counts[0].0) as f64 / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    2.0 * (1.0 - norm_cdf(z.abs()))
}

/// Φ(x) as `scipy.special.ndtr` computes it (cephes): 0.5 + 0.5·erf(x/√2) near 0, else
/// 1 − 0.5·erfc(x/√2), with erfc(t) = Q(½, t²) (regularised upper incomplete gamma).
fn norm_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let t = x * std::f64::consts::FRAC_1_SQRT_2;
    let q = igamc(0.5, t * t); // erfc(|t|)
    if t.abs() < std::f64::consts::FRAC_1_SQRT_2 {
        let erf = (1.0 - q).copysign(t);
        0.5 + 0.5 * erf
    } else if t > 0.0 {
        1.0 - 0.5 * q
    } else {
        0.5 * q
    }
}

/// `_jensenshannon` with `get_binned_data(…, feel_zeroes=False)` on value counts and
/// `scipy.spatial.distance.jensenshannon(p, q)` (natural log, no smoothing).
fn jensen_shannon(counts: &[(u64, u64)], n_cur: u64, n_ref: u64) -> f64 {
    let p: Vec<f64> = counts.iter().map(|c| c.1 as f64 / n_ref as f64).collect();
    let q: Vec<f64> = counts.iter().map(|c| c.0 as f64 / n_cur as f64).collect();
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let rel_entr = |x: f64, y: f64| if x > 0.0 { x * (x / y).ln() } else { 0.0 };
    let (mut left, mut right) = (0.0, 0.0);
    for (p, q) in p.iter().zip(&q) {
        let (p, q) = (p / sp, q / sq);
        let m = (p + q) / 2.0;
        left += rel_entr(p, m);
        right += rel_entr(q, m);
    }
    ((left + right) / 2.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_follows_evidently_decision_table() {
        assert_eq!(Method::choose(1000, false, 6), Method::Ks);
        assert_eq!(Method::choose(1000, false, 5), Method::ChiSquare);
        assert_eq!(Method::choose(1000, false, 2), Method::Z);
        assert_eq!(Method::choose(1000, true, 40), Method::ChiSquare);
        assert_eq!(Method::choose(200, true, 2), Method::Z);
        assert_eq!(Method::choose(1001, false, 6), Method::Wasserstein);
        assert_eq!(Method::choose(1001, false, 5), Method::JensenShannon);
        assert_eq!(Method::choose(1001, true, 2), Method::JensenShannon);
    }

    #[test]
    fn thresholds_and_directions() {
        assert!(Method::Ks.drifted(0.05));
        assert!(!Method::ChiSquare.drifted(0.05));
        assert!(!Method::Z.drifted(0.05));
        assert!(Method::Z.drifted(0.0499));
        assert!(Method::Wasserstein.drifted(0.1));
        assert!(!Method::JensenShannon.drifted(0.0999));
    }

    #[test]
    fn counts_align_on_union() {
        let c = [1.0, 1.0, 3.0];
        let r = [1.0, 2.0, 2.0, 2.0];
        assert_eq!(aligned_counts(&c, &r), vec![(2, 1), (0, 3), (1, 0)]);
        assert_eq!(distinct_union(&c, &r, 5), 3);
        assert_eq!(distinct_union(&c, &r, 1), 2);
    }

    #[test]
    fn chi_square_matches_scipy() {
        // scipy.stats.chisquare([30, 50, 20], [25, 50, 25]).pvalue (statistic 2, df 2: e^-1)
        let p = chi_square(&[(30, 25), (50, 50), (20, 25)], 100, 100);
        assert!((p - 0.36787944117144245).abs() < 1e-13, "{p}");
        // an unseen value: infinite statistic, p = 0
        assert_eq!(chi_square(&[(1, 0), (5, 5), (4, 5)], 10, 10), 0.0);
    }

    #[test]
    fn z_test_matches_evidently() {
        // proportions_diff_z_test(proportions_diff_z_stat_ind(ref, cur)) with ref 40/100
        // ones, cur 60/100 ones: z = -2.8284271247461894, p = 0.004677734981047177
        let p = z_test(&[(40, 60), (60, 40)], 100, 100);
        assert!((p - 0.004677734981047177).abs() < 1e-15, "{p}");
        assert_eq!(z_test(&[(5, 7)], 5, 7), 1.0);
        assert!((norm_cdf(0.3) - 0.6179114221889527).abs() < 1e-15);
        assert!((norm_cdf(-2.0) - 0.022750131948179195).abs() < 1e-16);
    }

    #[test]
    fn jensen_shannon_matches_scipy() {
        // scipy.spatial.distance.jensenshannon([0.5, 0.5, 0], [0.25, 0.25, 0.5])
        let d = jensen_shannon(&[(1, 2), (1, 2), (2, 0)], 4, 4);
        assert!((d - 0.464501404022459).abs() < 1e-15, "{d}");
    }
}
