//! 1-Wasserstein distance between two empirical distributions.

/// `scipy.stats.wasserstein_distance(u, v)` for unweighted samples.
///
/// Both inputs must be sorted ascending and non-empty. Computes
/// ∫ |U(t) − V(t)| dt over the merged support, exactly as scipy's `_cdf_distance(1, …)`:
/// the CDFs are step functions evaluated with `searchsorted(side='right')`.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    cdf_integral(u, v, f64::abs)
}

/// ∫ g(U(t) − V(t)) dt over the merged support of sorted, non-empty `u` and `v`, as
/// scipy's `_cdf_distance`: for consecutive distinct merged values x₀ < x₁, the term
/// g(i/n_u − j/n_v)·(x₁ − x₀) with i, j the counts ≤ x₀, summed in increasing x.
///
/// `g` must be even (g(−d) = g(d)): the loop walks the smaller sample as the outer one and
/// scans the larger in tight runs (one hard-to-predict branch per outer value instead of
/// one per merged value), which yields −d instead of d when `v` is the smaller. Terms and
/// their order are those of a plain merge, so the result is bit-for-bit the same.
fn cdf_integral(u: &[f64], v: &[f64], g: impl Fn(f64) -> f64) -> f64 {
    let (outer, inner) = if v.len() <= u.len() { (v, u) } else { (u, v) };
    let (n_outer, n_inner) = (outer.len() as f64, inner.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut cur = f64::NAN;
    loop {
        let limit = outer.get(i).copied().unwrap_or(f64::INFINITY);
        let f_outer = i as f64 / n_outer;
        // Inner values up to the next outer value (ties first: their order is irrelevant,
        // a zero-width step adds nothing).
        while j < inner.len() && inner[j] <= limit {
            let x = inner[j];
            let dx = if x > cur { x - cur } else { 0.0 };
            total += g((j as f64 / n_inner) - f_outer) * dx;
            cur = x;
            j += 1;
        }
        if i == outer.len() {
            return total;
        }
        let x = outer[i];
        let dx = if x > cur { x - cur } else { 0.0 };
        total += g((j as f64 / n_inner) - f_outer) * dx;
        cur = x;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked() {
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0
        assert!((wasserstein_sorted(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]) - 5.0).abs() < 1e-12);
        // scipy: wasserstein_distance([0, 10], [0, 10]) == 0
        assert_eq!(wasserstein_sorted(&[0.0, 10.0], &[0.0, 10.0]), 0.0);
        // ties: wasserstein_distance([1,1,1],[2]) == 1
        assert!((wasserstein_sorted(&[1.0, 1.0, 1.0], &[2.0]) - 1.0).abs() < 1e-15);
        // wasserstein_distance([0,1],[0.5]) == 0.5
        assert!((wasserstein_sorted(&[0.0, 1.0], &[0.5]) - 0.5).abs() < 1e-15);
    }
}

/// [`wasserstein_sorted`]`(u, v)` and [`crate::math::ks::ks_statistic_sorted`]`(u, v)` in
/// one pass, bit-for-bit equal to the two separate calls: the KS difference is evaluated at
/// the same candidate points (first and last distinct value of each run of the larger
/// sample between two values of the smaller, and every distinct value of the smaller).
pub fn wasserstein_and_ks_sorted(u: &[f64], v: &[f64]) -> (f64, f64) {
    let u_is_outer = u.len() <= v.len();
    let (outer, inner) = if u_is_outer { (u, v) } else { (v, u) };
    let (n_outer, n_inner) = (outer.len() as f64, inner.len() as f64);
    let (n_u, n_v) = (u.len() as f64, v.len() as f64);
    let (mut max_s, mut min_s) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut ks_point = |k_outer: usize, k_inner: usize| {
        let (ku, kv) = if u_is_outer {
            (k_outer, k_inner)
        } else {
            (k_inner, k_outer)
        };
        let diff = ku as f64 / n_u - kv as f64 / n_v;
        max_s = max_s.max(diff);
        min_s = min_s.min(diff);
    };
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut cur = f64::NAN;
    loop {
        let limit = outer.get(i).copied().unwrap_or(f64::INFINITY);
        let f_outer = i as f64 / n_outer;
        let run_start = j;
        while j < inner.len() && inner[j] <= limit {
            let x = inner[j];
            let dx = if x > cur { x - cur } else { 0.0 };
            total += ((j as f64 / n_inner) - f_outer).abs() * dx;
            cur = x;
            j += 1;
        }
        // Inner values strictly below `limit` end where its ties (at the run's end) begin.
        let mut below = j;
        while below > run_start && inner[below - 1] == limit {
            below -= 1;
        }
        if below > run_start {
            let first = inner[run_start];
            let mut first_end = run_start + 1;
            while first_end < below && inner[first_end] == first {
                first_end += 1;
            }
            ks_point(i, first_end);
            ks_point(i, below);
        }
        if i == outer.len() {
            break;
        }
        let x = outer[i];
        let dx = if x > cur { x - cur } else { 0.0 };
        total += ((j as f64 / n_inner) - f_outer).abs() * dx;
        cur = x;
        i += 1;
        if i == outer.len() || outer[i] > x {
            ks_point(i, j); // every value <= x counted on both sides
        }
    }
    let min_s = (-min_s).clamp(0.0, 1.0);
    (total, if min_s > max_s { min_s } else { max_s })
}

/// `scipy.stats.energy_distance(u, v)` for unweighted samples: √2 · (∫ (U(t) − V(t))² dt)^½
/// over the merged support (scipy's `_cdf_distance(2, …)`); O(n + m) on sorted, non-empty
/// inputs.
pub fn energy_distance_sorted(u: &[f64], v: &[f64]) -> f64 {
    std::f64::consts::SQRT_2 * cdf_integral(u, v, |d| d * d).sqrt()
}

#[cfg(test)]
mod energy_tests {
    use super::*;

    #[test]
    fn scipy_examples() {
        // scipy.stats.energy_distance([0], [2]) == 2.0000000000000004
        assert_eq!(
            energy_distance_sorted(&[0.0], &[2.0]),
            2.000_000_000_000_000_4
        );
        assert_eq!(energy_distance_sorted(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
    }
}

#[cfg(test)]
mod merge_equivalence {
    use super::*;
    use proptest::prelude::*;

    /// The plain two-pointer merge the run-based loop replaces.
    fn plain(u: &[f64], v: &[f64], g: impl Fn(f64) -> f64) -> f64 {
        let (nu, nv) = (u.len() as f64, v.len() as f64);
        let (mut i, mut j, mut total, mut cur) = (0usize, 0usize, 0.0, f64::NAN);
        while i < u.len() || j < v.len() {
            let take_u = j >= v.len() || (i < u.len() && u[i] <= v[j]);
            let x = if take_u { u[i] } else { v[j] };
            if x > cur {
                total += g((i as f64 / nu) - (j as f64 / nv)) * (x - cur);
            }
            cur = x;
            if take_u {
                i += 1;
            } else {
                j += 1;
            }
        }
        total
    }

    fn sorted(v: Vec<i32>, scale: f64) -> Vec<f64> {
        let mut v: Vec<f64> = v.into_iter().map(|x| x as f64 * scale).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    proptest! {
        /// Bit-for-bit the plain merge, with ties inside and across samples.
        #[test]
        fn runs_equal_the_plain_merge(
            u in prop::collection::vec(-50i32..50, 1..300),
            v in prop::collection::vec(-50i32..50, 1..300),
            scale in prop::sample::select(vec![1.0, 0.1, 1e-3, 7.25]),
        ) {
            let (u, v) = (sorted(u, scale), sorted(v, scale));
            prop_assert_eq!(wasserstein_sorted(&u, &v).to_bits(), plain(&u, &v, f64::abs).to_bits());
            for (a, b) in [(&u, &v), (&v, &u)] {
                let (w, d) = wasserstein_and_ks_sorted(a, b);
                prop_assert_eq!(w.to_bits(), wasserstein_sorted(a, b).to_bits());
                prop_assert_eq!(d.to_bits(), crate::math::ks::ks_statistic_sorted(a, b).to_bits());
            }
            prop_assert_eq!(
                energy_distance_sorted(&u, &v).to_bits(),
                (std::f64::consts::SQRT_2 * plain(&u, &v, |d| d * d).sqrt()).to_bits()
            );
        }
    }
}
