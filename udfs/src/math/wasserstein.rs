//! 1-Wasserstein distance between two empirical distributions.

/// `scipy.stats.wasserstein_distance(u, v)` for unweighted samples.
///
/// Both inputs must be sorted ascending and non-empty. Computes
/// ∫ |U(t) − V(t)| dt over the merged support, exactly as scipy's `_cdf_distance(1, …)`:
/// the CDFs are step functions evaluated with `searchsorted(side='right')`.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut cur = f64::NAN;
    while i < u.len() || j < v.len() {
        // peek the next smallest value; on [cur, x) exactly i of u and j of v are <= cur
        let take_u = j >= v.len() || (i < u.len() && u[i] <= v[j]);
        let x = if take_u { u[i] } else { v[j] };
        if x > cur {
            total += ((i as f64 / nu) - (j as f64 / nv)).abs() * (x - cur);
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

/// `scipy.stats.energy_distance(u, v)` for unweighted samples: √2 · (∫ (U(t) − V(t))² dt)^½
/// over the merged support (scipy's `_cdf_distance(2, …)`); O(n + m) on sorted, non-empty
/// inputs.
pub fn energy_distance_sorted(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    let mut cur = f64::NAN;
    while i < u.len() || j < v.len() {
        let take_u = j >= v.len() || (i < u.len() && u[i] <= v[j]);
        let x = if take_u { u[i] } else { v[j] };
        if x > cur {
            let d = (i as f64 / nu) - (j as f64 / nv);
            total += d * d * (x - cur);
        }
        cur = x;
        if take_u {
            i += 1;
        } else {
            j += 1;
        }
    }
    std::f64::consts::SQRT_2 * total.sqrt()
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
