//! Histogram-based drift measures over bins fixed by the baseline.
//!
//! Binning: a value v falls in bin i when edges[i] ≤ v < edges[i+1] (the last bin is closed,
//! as `np.histogram`); values below the first / above the last edge are counted in the
//! first / last bin — never dropped (equivalent to `np.histogram(np.clip(v, e[0], e[-1]), e)`).

/// Proportion floor used by [`psi`] for empty bins: a proportion of exactly 0 is replaced by
/// `PSI_EPSILON` (no renormalisation), on both the current and the baseline side.
pub const PSI_EPSILON: f64 = 1e-4;

/// Index of the bin holding `v` (see module docs); `edges.len() >= 2`, `v` not NaN.
#[inline]
pub fn bin_index(edges: &[f64], v: f64) -> usize {
    let nb = edges.len() - 1;
    // number of edges <= v  (searchsorted side='right')
    let k = edges.partition_point(|e| *e <= v);
    k.saturating_sub(1).min(nb - 1)
}

/// Counts of `values` per bin.
pub fn histogram(edges: &[f64], values: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len().saturating_sub(1)];
    if counts.is_empty() {
        return counts;
    }
    for &v in values {
        if !v.is_nan() {
            counts[bin_index(edges, v)] += 1;
        }
    }
    counts
}

fn proportions(counts: &[u64]) -> Vec<f64> {
    let n: u64 = counts.iter().sum();
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

/// Population stability index Σ (c − r)·ln(c / r) of current vs reference counts, with
/// zero proportions floored at [`PSI_EPSILON`]. NaN if either side is empty.
pub fn psi(current: &[u64], reference: &[u64]) -> f64 {
    if current.iter().sum::<u64>() == 0 || reference.iter().sum::<u64>() == 0 {
        return f64::NAN;
    }
    let floor = |p: f64| if p == 0.0 { PSI_EPSILON } else { p };
    proportions(current)
        .into_iter()
        .zip(proportions(reference))
        .map(|(c, r)| {
            let (c, r) = (floor(c), floor(r));
            (c - r) * (c / r).ln()
        })
        .sum()
}

fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// `scipy.spatial.distance.jensenshannon(p, q, base=2)` of the two count vectors
/// (normalised to proportions, no smoothing needed). NaN if either side is empty.
pub fn js_distance(current: &[u64], reference: &[u64]) -> f64 {
    if current.iter().sum::<u64>() == 0 || reference.iter().sum::<u64>() == 0 {
        return f64::NAN;
    }
    let p = proportions(current);
    let q = proportions(reference);
    let (mut left, mut right) = (0.0, 0.0);
    for (pi, qi) in p.iter().zip(&q) {
        let m = (pi + qi) / 2.0;
        left += rel_entr(*pi, m);
        right += rel_entr(*qi, m);
    }
    let js = (left + right) / std::f64::consts::LN_2;
    (js / 2.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_kept() {
        let e = [0.0, 1.0, 2.0];
        assert_eq!(histogram(&e, &[-5.0, 0.5, 1.0, 2.0, 9.0]), vec![2, 3]);
    }

    #[test]
    fn psi_and_js_hand_checked() {
        assert_eq!(psi(&[1, 1], &[1, 1]), 0.0);
        // c = (0.75, 0.25), r = (0.25, 0.75): 2 * 0.5 * ln 3
        let want = 3f64.ln();
        assert!((psi(&[3, 1], &[1, 3]) - want).abs() < 1e-15);
        // empty bin smoothing: c=(1,0), r=(0.5,0.5)
        let want = 0.5 * 2f64.ln() + (1e-4 - 0.5) * (1e-4f64 / 0.5).ln();
        assert!((psi(&[4, 0], &[2, 2]) - want).abs() < 1e-15);
        assert_eq!(js_distance(&[1, 0], &[0, 1]), 1.0);
        assert_eq!(js_distance(&[2, 2], &[1, 1]), 0.0);
    }
}
