//! Two-sample Kolmogorov–Smirnov test, a port of `scipy.stats.ks_2samp`
//! (alternative='two-sided', method='auto', scipy 1.11 – 1.17).
//!
//! * statistic: D = sup |F₁ − F₂| of the right-continuous ECDFs;
//! * p-value, method 'auto': **exact** when max(n₁, n₂) ≤ 10 000 — the lattice-path
//!   recursions `_compute_prob_outside_square` (n₁ = n₂) and
//!   `_compute_outer_prob_inside_method` (Hodges / Viehmann), in which case D is snapped to
//!   the lattice h / lcm(n₁, n₂) as scipy does — otherwise, or when the exact computation
//!   fails numerically, **asymptotic**: `kstwo.sf(D, round(n₁n₂/(n₁+n₂)))`
//!   (see [`super::kolmogorov`]).

use super::kolmogorov::kolmogn_sf;

/// scipy's `MAX_AUTO_N`.
pub const MAX_AUTO_N: usize = 10_000;

/// Result of [`ks_2samp_sorted`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// The KS statistic D.
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
    /// True when the exact distribution was used.
    pub exact: bool,
}

/// `scipy.stats.ks_2samp(a, b)` for ascending, non-empty, NaN-free samples.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> KsResult {
    ks_2samp_from_statistic(a.len(), b.len(), ks_statistic_sorted(a, b))
}

/// [`ks_2samp_sorted`] for samples of sizes `n1`, `n2` whose statistic
/// ([`ks_statistic_sorted`]) is `d`.
pub fn ks_2samp_from_statistic(n1: usize, n2: usize, d: f64) -> KsResult {
    let g = gcd(n1 as u64, n2 as u64);
    if n1.max(n2) <= MAX_AUTO_N {
        if let Some((d_exact, p)) = attempt_exact(n1 as u64, n2 as u64, g, d) {
            return KsResult {
                statistic: d_exact,
                pvalue: p,
                exact: true,
            };
        }
    }
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = m * n / (m + n);
    let p = kolmogn_sf(round_half_even(en), d).clamp(0.0, 1.0);
    KsResult {
        statistic: d,
        pvalue: p,
        exact: false,
    }
}

/// D statistic (max over the merged sample of |cdf1 − cdf2|), computed with the same
/// floating-point operations as scipy (`k1/n1 − k2/n2`).
///
/// Between two consecutive distinct values of the smaller sample, the difference of the
/// CDFs is monotone in the count of the larger one, so only the first and last point of
/// each such run can be an extreme: the larger sample is scanned in tight loops with no
/// per-value arithmetic, and the difference is evaluated O(smaller sample) times. The
/// points evaluated are points of the full merge, so D is exactly the same.
pub fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let a_is_small = a.len() <= b.len();
    let (small, large) = if a_is_small { (a, b) } else { (b, a) };
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut point = |i_small: usize, j_large: usize| {
        let (k1, k2) = if a_is_small {
            (i_small, j_large)
        } else {
            (j_large, i_small)
        };
        let diff = k1 as f64 / n1 - k2 as f64 / n2;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    };
    let (mut i, mut j) = (0usize, 0usize);
    loop {
        let x = small.get(i).copied().unwrap_or(f64::INFINITY);
        if j < large.len() && large[j] < x {
            // Distinct values of `large` below x: first and last point of the run.
            let first = large[j];
            while j < large.len() && large[j] <= first {
                j += 1;
            }
            point(i, j);
            while j < large.len() && large[j] < x {
                j += 1;
            }
            point(i, j);
        }
        if i == small.len() {
            break;
        }
        while i < small.len() && small[i] <= x {
            i += 1;
        }
        while j < large.len() && large[j] <= x {
            j += 1;
        }
        point(i, j);
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    if min_s > max_s {
        min_s
    } else {
        max_s
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// numpy's `np.round` (round half to even).
pub(crate) fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// `_attempt_exact_2kssamp` (two-sided). Returns (snapped D, p) or None on failure.
fn attempt_exact(n1: u64, n2: u64, g: u64, d: f64) -> Option<(f64, f64)> {
    let lcm = (n1 / g) * n2;
    let h = round_half_even(d * lcm as f64) as u64;
    let d = h as f64 / lcm as f64;
    if h == 0 {
        return Some((d, 1.0));
    }
    let p = if n1 == n2 {
        prob_outside_square(n1, h)
    } else {
        outer_prob_inside_method(n1, n2, g, h)
    };
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Some((d, p))
    } else {
        None
    }
}

/// scipy `_compute_prob_outside_square(n, h)`: P(D_{n,n} ≥ h/n).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let (n, h) = (n as i64, h as i64);
    let mut p = 0.0f64;
    let mut k = n / h;
    while k >= 0 {
        let mut p1 = 1.0f64;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// scipy `_compute_outer_prob_inside_method(m, n, g, h)` (Hodges' inside method with
/// Viehmann's recursion for 1 − p).
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for v in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *v = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = (((ng * i - h) as f64 / mg as f64).floor() as i64 + 1).max(0);
        minj = minj.min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scipy_small_cases() {
        // ks_2samp([1,2,3],[4,5,6]) -> D=1, p=0.1
        let r = ks_2samp_sorted(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(r.statistic, 1.0);
        assert!((r.pvalue - 0.1).abs() < 1e-15, "{r:?}");
        // ks_2samp([1,2,3,4],[2.5,10]) -> D=0.5, p=0.9333333333333332
        let r = ks_2samp_sorted(&[1.0, 2.0, 3.0, 4.0], &[2.5, 10.0]);
        assert_eq!(r.statistic, 0.5);
        assert!((r.pvalue - 0.9333333333333332).abs() < 1e-12, "{r:?}");
        // identical samples
        let r = ks_2samp_sorted(&[1.0, 2.0], &[1.0, 2.0]);
        assert_eq!((r.statistic, r.pvalue), (0.0, 1.0));
    }
}

#[cfg(test)]
mod statistic_equivalence {
    use super::*;
    use proptest::prelude::*;

    /// The plain merge over every distinct value that the run-based loop replaces.
    fn plain(a: &[f64], b: &[f64]) -> f64 {
        let (n1, n2) = (a.len() as f64, b.len() as f64);
        let (mut i, mut j) = (0usize, 0usize);
        let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
        while i < a.len() || j < b.len() {
            let x = if j >= b.len() || (i < a.len() && a[i] <= b[j]) {
                a[i]
            } else {
                b[j]
            };
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
            let diff = i as f64 / n1 - j as f64 / n2;
            max_s = max_s.max(diff);
            min_s = min_s.min(diff);
        }
        let min_s = (-min_s).clamp(0.0, 1.0);
        if min_s > max_s {
            min_s
        } else {
            max_s
        }
    }

    fn sorted(v: Vec<i32>) -> Vec<f64> {
        let mut v: Vec<f64> = v.into_iter().map(f64::from).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    proptest! {
        #[test]
        fn runs_equal_the_plain_merge(
            a in prop::collection::vec(-40i32..40, 1..400),
            b in prop::collection::vec(-40i32..40, 1..400),
            shift in -20i32..20,
        ) {
            let a = sorted(a);
            let b: Vec<f64> = sorted(b).into_iter().map(|x| x + f64::from(shift)).collect();
            prop_assert_eq!(ks_statistic_sorted(&a, &b).to_bits(), plain(&a, &b).to_bits());
            prop_assert_eq!(ks_statistic_sorted(&b, &a).to_bits(), plain(&b, &a).to_bits());
        }
    }
}
