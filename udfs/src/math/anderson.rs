//! Two-sample Anderson–Darling test, a port of
//! `scipy.stats.anderson_ksamp([current, reference])` (variant 'midrank', the default; no
//! `method`), scipy 1.11 – 1.17.
//!
//! The statistic is A²akN of Scholz & Stephens (1987, eq. 7), standardised as
//! (A²akN − (k − 1)) / σ_N. The p-value is scipy's interpolation of the standardised
//! statistic between the critical values of Scholz & Stephens' Table 2: a quadratic fit of
//! ln(significance) on the critical values, **capped to [0.001, 0.25]** — scipy returns 0.25
//! when the statistic is below the smallest critical value and 0.001 above the largest (it
//! warns "p-value capped / floored"); we return the same capped values.

use super::describe::np_sum;

/// Critical values for k = 2 samples (b₀ + b₁/√1 + b₂/1 of Scholz & Stephens, Table 2).
const CRITICAL_MIN: f64 = 0.325_000_000_000_000_07;
const CRITICAL_MAX: f64 = 6.546;
/// `np.polyfit(critical, np.log(sig), 2)` for k = 2 (highest degree first), as computed by
/// numpy; the least-squares fit is re-derived in the tests.
const POLY: [f64; 3] = [
    0.018_198_094_574_111_343,
    -1.008_226_564_465_251_5,
    -1.077_770_279_820_486,
];
/// Upper p-value cap (scipy returns `sig.max()` below the smallest critical value).
pub const P_CAP_HIGH: f64 = 0.25;
/// Lower p-value cap.
pub const P_CAP_LOW: f64 = 0.001;

/// Result of [`anderson_2samp_sorted`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AndersonResult {
    /// Standardised statistic (scipy's `statistic`).
    pub statistic: f64,
    /// Interpolated, capped p-value (scipy's `pvalue` / `significance_level`).
    pub pvalue: f64,
}

/// `scipy.stats.anderson_ksamp([x, y], variant='midrank')` for ascending finite samples.
/// `None` where scipy raises (an empty sample, fewer than two distinct values) or the
/// variance is undefined (fewer than 4 values in total).
pub fn anderson_2samp_sorted(x: &[f64], y: &[f64]) -> Option<AndersonResult> {
    let samples = [x, y];
    let n_total = x.len() + y.len();
    if x.is_empty() || y.is_empty() || n_total < 4 {
        return None;
    }
    let nf = n_total as f64;
    // unique values of the pooled sample with their counts per sample
    let mut uniq: Vec<(usize, usize)> = Vec::new(); // (count in x, count in y)
    let (mut i, mut j) = (0usize, 0usize);
    while i < x.len() || j < y.len() {
        let v = if j >= y.len() || (i < x.len() && x[i] <= y[j]) {
            x[i]
        } else {
            y[j]
        };
        let (i0, j0) = (i, j);
        while i < x.len() && x[i] == v {
            i += 1;
        }
        while j < y.len() && y[j] == v {
            j += 1;
        }
        uniq.push((i - i0, j - j0));
    }
    if uniq.len() < 2 {
        return None;
    }
    let mut a2akn = 0.0;
    let mut inner = Vec::with_capacity(uniq.len());
    for (s, sample) in samples.iter().enumerate() {
        let ni = sample.len() as f64;
        inner.clear();
        let (mut left, mut s_right) = (0usize, 0usize);
        for &(cx, cy) in &uniq {
            let lj = (cx + cy) as f64;
            let bj = left as f64 + lj / 2.0;
            let fij = if s == 0 { cx } else { cy };
            s_right += fij;
            let mij = s_right as f64 - fij as f64 / 2.0;
            let d = nf * mij - bj * ni;
            inner.push(lj / nf * (d * d) / (bj * (nf - bj) - nf * lj / 4.0));
            left += cx + cy;
        }
        a2akn += np_sum(&inner) / ni;
    }
    a2akn *= (nf - 1.0) / nf;
    standardise(a2akn, x.len(), y.len())
}

/// The standardised statistic and capped p-value from A²akN of samples of sizes `nx`, `ny`
/// (the second half of [`anderson_2samp_sorted`]; also used by the sketch mode,
/// [`super::sketch`]).
pub(crate) fn standardise(a2akn: f64, nx: usize, ny: usize) -> Option<AndersonResult> {
    let n_total = nx + ny;
    let nf = n_total as f64;
    let k = 2.0;
    let h_sum = 1.0 / nx as f64 + 1.0 / ny as f64;
    // hs_cs = cumsum(1 / arange(N-1, 1, -1)); h = hs_cs[-1] + 1; g = sum(hs_cs / arange(2, N))
    let mut cs = 0.0;
    let mut terms = Vec::with_capacity(n_total.saturating_sub(2));
    for (idx, m) in (2..n_total).rev().enumerate() {
        cs += 1.0 / m as f64;
        terms.push(cs / (idx + 2) as f64);
    }
    let h = cs + 1.0;
    let g = np_sum(&terms);
    let a = (4.0 * g - 6.0) * (k - 1.0) + (10.0 - 6.0 * g) * h_sum;
    let b = (2.0 * g - 4.0) * 4.0 + 8.0 * h * k + (2.0 * g - 14.0 * h - 4.0) * h_sum - 8.0 * h
        + 4.0 * g
        - 6.0;
    let c = (6.0 * h + 2.0 * g - 2.0) * 4.0
        + (4.0 * h - 4.0 * g + 6.0) * k
        + (2.0 * h - 6.0) * h_sum
        + 4.0 * h;
    let d = (2.0 * h + 6.0) * 4.0 - 4.0 * h * k;
    let (n2, n3) = count_powers(n_total);
    let sigmasq = (a * n3 + b * n2 + c * nf + d) / ((nf - 1.0) * (nf - 2.0) * (nf - 3.0));
    let a2 = (a2akn - 1.0) / sigmasq.sqrt();
    if !a2.is_finite() {
        return None;
    }
    let pvalue = if a2 < CRITICAL_MIN {
        P_CAP_HIGH
    } else if a2 > CRITICAL_MAX {
        P_CAP_LOW
    } else {
        let mut y = 0.0;
        for c in POLY {
            y = y * a2 + c;
        }
        y.exp()
    };
    Some(AndersonResult {
        statistic: a2,
        pvalue,
    })
}

/// N² and N³ as f64, each rounded once from the exact integer, like scipy's
/// `float(N**2)` / `float(N**3)` on Python integers (N³ exceeds u64 above 2 642 245 values;
/// u128 holds it for any N up to 2⁴², far beyond any window in memory; above that the
/// powers are taken in f64).
fn count_powers(n: usize) -> (f64, f64) {
    let n = n as u128;
    match n.checked_pow(3) {
        Some(n3) => ((n * n) as f64, n3 as f64),
        None => {
            let nf = n as f64;
            (nf * nf, nf * nf * nf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polyfit_constants() {
        // least squares of ln(sig) on (c², c, 1) via normal equations
        let b0 = [0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085];
        let b1 = [-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615];
        let b2 = [-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154];
        let sig: [f64; 7] = [0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001];
        let crit: Vec<f64> = (0..7)
            .map(|i| b0[i] + b1[i] / 1f64.sqrt() + b2[i] / 1.0)
            .collect();
        assert_eq!(crit[0], CRITICAL_MIN);
        assert_eq!(crit[6], CRITICAL_MAX);
        let mut m = [[0.0; 4]; 3];
        for (c, s) in crit.iter().zip(sig) {
            let row = [c * c, *c, 1.0];
            for r in 0..3 {
                for q in 0..3 {
                    m[r][q] += row[r] * row[q];
                }
                m[r][3] += row[r] * s.ln();
            }
        }
        for p in 0..3 {
            for r in 0..3 {
                if r != p {
                    let f = m[r][p] / m[p][p];
                    let pivot = m[p];
                    for (dst, src) in m[r].iter_mut().zip(pivot) {
                        *dst -= f * src;
                    }
                }
            }
        }
        for p in 0..3 {
            let coef = m[p][3] / m[p][p];
            assert!((coef - POLY[p]).abs() < 1e-10, "{coef} vs {}", POLY[p]);
        }
    }

    #[test]
    fn scipy_example() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [3.5, 6.0, 7.0, 8.0, 9.0, 10.0];
        let r = anderson_2samp_sorted(&x, &y).unwrap();
        // scipy.stats.anderson_ksamp([x, y], variant='midrank')
        assert!((r.statistic - STAT).abs() < 1e-12, "{}", r.statistic);
        assert!((r.pvalue - PVAL).abs() < 1e-12, "{}", r.pvalue);
        assert_eq!(np_sum(&[1.0; 300]), 300.0);
    }
    const STAT: f64 = 3.518_704_200_616_325;

    #[test]
    fn no_overflow_above_u64_cube() {
        // 2 642 246³ > u64::MAX: the old `(n as u64).pow(3)` panicked here in debug builds
        // and wrapped in release.
        let n = 2_642_246usize;
        assert!((n as u64).checked_pow(3).is_none());
        let (n2, n3) = count_powers(n);
        assert_eq!(n2, 6_981_463_924_516.0);
        assert_eq!(n3, (n as u128).pow(3) as f64);
        assert_eq!(count_powers(3_000_000), (9e12, 2.7e19));
        // 3 M + 1 M values on a grid of ties; scipy 1.17:
        // x = np.arange(3_000_000) % 1000.; y = np.arange(1_000_000) % 1000 + 0.5
        // anderson_ksamp([x, y], variant='midrank') -> 4.630781462514238, 0.004717837542134137
        let mut x: Vec<f64> = (0..3_000_000).map(|i| (i % 1000) as f64).collect();
        x.sort_by(f64::total_cmp);
        let mut y: Vec<f64> = (0..1_000_000).map(|i| (i % 1000) as f64 + 0.5).collect();
        y.sort_by(f64::total_cmp);
        let r = anderson_2samp_sorted(&x, &y).unwrap();
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(rel(r.statistic, 4.630_781_462_514_238) < 1e-9, "{r:?}");
        assert!(rel(r.pvalue, 0.004_717_837_542_134_137) < 1e-9, "{r:?}");
    }
    const PVAL: f64 = 0.012_276_043_034_985_662;
}
