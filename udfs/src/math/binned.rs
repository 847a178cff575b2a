//! Histogram-based drift measures over bins fixed by the baseline.
//!
//! Binning: a value v falls in bin i when `edges[i] ≤ v < edges[i+1]` (the last bin is closed,
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

/// Smoothing share used by [`chi2_gof`] for categories absent from the baseline.
pub const CHI2_UNSEEN_SHARE: f64 = 1e-4;

fn nonempty(current: &[u64], reference: &[u64]) -> bool {
    current.iter().sum::<u64>() > 0 && reference.iter().sum::<u64>() > 0
}

/// KL(current ‖ reference) = Σ p'·ln(p'/q') in nats, with zero proportions floored at
/// [`PSI_EPSILON`] on both sides exactly as [`psi`] (so psi = KL(c‖r) + KL(r‖c)).
/// NaN if either side is empty.
pub fn kl_div(current: &[u64], reference: &[u64]) -> f64 {
    if !nonempty(current, reference) {
        return f64::NAN;
    }
    let floor = |p: f64| if p == 0.0 { PSI_EPSILON } else { p };
    proportions(current)
        .into_iter()
        .zip(proportions(reference))
        .map(|(c, r)| {
            let (c, r) = (floor(c), floor(r));
            c * (c / r).ln()
        })
        .sum()
}

/// Hellinger distance ‖√p − √q‖₂ / √2 of the proportions (in [0, 1], no smoothing).
pub fn hellinger(current: &[u64], reference: &[u64]) -> f64 {
    if !nonempty(current, reference) {
        return f64::NAN;
    }
    let s: f64 = proportions(current)
        .into_iter()
        .zip(proportions(reference))
        .map(|(p, q)| {
            let d = p.sqrt() - q.sqrt();
            d * d
        })
        .sum();
    s.sqrt() / std::f64::consts::SQRT_2
}

/// Total variation distance ½ Σ |p − q| (in [0, 1]).
pub fn tvd(current: &[u64], reference: &[u64]) -> f64 {
    if !nonempty(current, reference) {
        return f64::NAN;
    }
    let s: f64 = proportions(current)
        .into_iter()
        .zip(proportions(reference))
        .map(|(p, q)| (p - q).abs())
        .sum();
    s / 2.0
}

/// L∞ distance max |p − q| of the proportions.
pub fn l_inf(current: &[u64], reference: &[u64]) -> f64 {
    if !nonempty(current, reference) {
        return f64::NAN;
    }
    proportions(current)
        .into_iter()
        .zip(proportions(reference))
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

/// One-sample Pearson χ² goodness of fit of the current counts against expected = reference
/// shares × n: `scipy.stats.chisquare(f_obs, f_exp)`, returning (statistic, p-value, degrees
/// of freedom). It treats the reference shares as exact, so with a small baseline it rejects
/// far more often than α when nothing drifted; [`chi2_contingency`] accounts for that.
///
/// Categories (bins) with a zero reference count are "unseen": their current counts are
/// pooled into one extra category whose expected share is [`CHI2_UNSEEN_SHARE`], all shares
/// being renormalised by 1 / (1 + share) — the extra category exists only when some current
/// value is unseen. `None` when either side is empty or fewer than two categories remain.
pub fn chi2_gof(current: &[u64], reference: &[u64]) -> Option<(f64, f64, usize)> {
    if !nonempty(current, reference) {
        return None;
    }
    let n = current.iter().sum::<u64>() as f64;
    let b = reference.iter().sum::<u64>() as f64;
    let unseen: u64 = current
        .iter()
        .zip(reference)
        .filter(|(_, r)| **r == 0)
        .map(|(c, _)| *c)
        .sum();
    let scale = if unseen > 0 {
        1.0 + CHI2_UNSEEN_SHARE
    } else {
        1.0
    };
    let mut terms: Vec<f64> = current
        .iter()
        .zip(reference)
        .filter(|(_, r)| **r > 0)
        .map(|(c, r)| {
            let e = n * ((*r as f64 / b) / scale);
            let d = *c as f64 - e;
            d * d / e
        })
        .collect();
    if unseen > 0 {
        let e = n * (CHI2_UNSEEN_SHARE / scale);
        let d = unseen as f64 - e;
        terms.push(d * d / e);
    }
    if terms.len() < 2 {
        return None;
    }
    let df = terms.len() - 1;
    let stat = super::describe::np_sum(&terms);
    Some((stat, super::special::chi2_sf(stat, df as f64), df))
}

/// Two-sample Pearson χ² test of homogeneity of the current and reference counts, which
/// accounts for the reference's own sampling error: `scipy.stats.chi2_contingency([current,
/// reference])` with scipy's defaults (Yates' continuity correction when there is one degree
/// of freedom), after dropping the bins / categories that are empty on both sides. Returns
/// (statistic, p-value, degrees of freedom = remaining bins − 1); `None` when either side is
/// empty or fewer than two bins remain.
pub fn chi2_contingency(current: &[u64], reference: &[u64]) -> Option<(f64, f64, usize)> {
    if !nonempty(current, reference) {
        return None;
    }
    let cols: Vec<(u64, u64)> = current
        .iter()
        .zip(reference)
        .filter(|(c, r)| **c + **r > 0)
        .map(|(c, r)| (*c, *r))
        .collect();
    if cols.len() < 2 {
        return None;
    }
    let df = cols.len() - 1;
    let n_cur: u64 = cols.iter().map(|c| c.0).sum();
    let n_ref: u64 = cols.iter().map(|c| c.1).sum();
    let total = (n_cur + n_ref) as f64;
    // Row-major terms of the 2 × k table, as numpy sums them (window row, then baseline row).
    let mut terms = Vec::with_capacity(2 * cols.len());
    for (row, row_sum) in [(0, n_cur), (1, n_ref)] {
        for &(c, r) in &cols {
            let observed = if row == 0 { c } else { r } as f64;
            // scipy.stats.contingency.expected_freq: product of the margins / total.
            let expected = (row_sum as f64 * (c + r) as f64) / total;
            let mut o = observed;
            if df == 1 {
                let diff = expected - o;
                o += 0.5f64.min(diff.abs()) * diff.signum();
            }
            let d = o - expected;
            terms.push(d * d / expected);
        }
    }
    let stat = super::describe::np_sum(&terms);
    Some((stat, super::special::chi2_sf(stat, df as f64), df))
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn binned_distances_hand_checked() {
        assert_eq!(tvd(&[1, 0], &[0, 1]), 1.0);
        assert_eq!(l_inf(&[3, 1], &[1, 3]), 0.5);
        assert!((hellinger(&[1, 0], &[0, 1]) - 1.0).abs() < 1e-15);
        assert_eq!(hellinger(&[2, 2], &[1, 1]), 0.0);
        let (c, r) = ([3u64, 1], [1u64, 3]);
        assert!((psi(&c, &r) - (kl_div(&c, &r) + kl_div(&r, &c))).abs() < 1e-15);
        // scipy.stats.chisquare([10, 20, 30], [20, 20, 20]) -> (10.0, 0.006737946999085467)
        let (s, p, df) = chi2_gof(&[10, 20, 30], &[1, 1, 1]).unwrap();
        assert_eq!((s, df), (10.0, 2));
        assert!((p - 0.006_737_946_999_085_467).abs() < 1e-15);
        assert_eq!(chi2_gof(&[5], &[3]), None);
        assert!(chi2_gof(&[5, 1], &[3, 0]).is_some());
    }

    #[test]
    fn chi2_contingency_matches_scipy() {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        // scipy.stats.chi2_contingency([[10, 20, 30], [20, 20, 20]])
        //   -> statistic 5.333333333333334, pvalue 0.0694834512228015, dof 2
        let (s, p, df) = chi2_contingency(&[10, 20, 30], &[20, 20, 20]).unwrap();
        assert_eq!(df, 2);
        assert!(close(s, 5.333_333_333_333_334), "{s}");
        assert!(close(p, 0.069_483_451_222_801_5), "{p}");
        // dof 1 uses Yates' correction: chi2_contingency([[12, 5], [9, 14]])
        //   -> statistic 2.720099481440172, pvalue 0.09909183934890643
        let (s, p, df) = chi2_contingency(&[12, 5], &[9, 14]).unwrap();
        assert_eq!(df, 1);
        assert!(close(s, 2.720_099_481_440_172), "{s}");
        assert!(close(p, 0.099_091_839_348_906_43), "{p}");
        // bins empty on both sides are dropped; a bin empty in the baseline only is kept:
        // chi2_contingency([[3, 4, 5], [6, 0, 7]]) -> 5.30181623931624, 0.07058708242853041
        let (s, p, df) = chi2_contingency(&[3, 0, 4, 5], &[6, 0, 0, 7]).unwrap();
        assert_eq!(df, 2);
        assert!(close(s, 5.301_816_239_316_24), "{s}");
        assert!(close(p, 0.070_587_082_428_530_41), "{p}");
        assert_eq!(chi2_contingency(&[5, 0], &[3, 0]), None);
        assert_eq!(chi2_contingency(&[0, 0], &[3, 1]), None);
    }
}
