//! Descriptive statistics with numpy conventions.

/// Mean of `x` (NaN for empty input).
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

/// Variance with `ddof` delta degrees of freedom (two-pass, like `np.var`).
/// Returns NaN when `len <= ddof`.
pub fn var(x: &[f64], ddof: usize) -> f64 {
    if x.len() <= ddof {
        return f64::NAN;
    }
    let m = mean(x);
    let ss: f64 = x.iter().map(|v| (v - m) * (v - m)).sum();
    ss / (x.len() - ddof) as f64
}

/// `np.quantile(sorted, q)` with the default 'linear' method; `sorted` must be ascending
/// and non-empty (NaN otherwise).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * q;
    let lo = h.floor().clamp(0.0, (n - 1) as f64) as usize;
    let hi = (lo + 1).min(n - 1);
    let t = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    // numpy's _lerp: symmetric form for numerical stability.
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// numpy's pairwise summation of a contiguous float64 array (`np.sum`).
pub fn np_sum(a: &[f64]) -> f64 {
    fn pairwise(a: &[f64]) -> f64 {
        let n = a.len();
        if n < 8 {
            let mut r = 0.0;
            for v in a {
                r += v;
            }
            r
        } else if n <= 128 {
            let mut r = [0.0; 8];
            r.copy_from_slice(&a[..8]);
            let mut i = 8;
            while i < n - n % 8 {
                for j in 0..8 {
                    r[j] += a[i + j];
                }
                i += 8;
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            while i < n {
                res += a[i];
                i += 1;
            }
            res
        } else {
            let mut n2 = n / 2;
            n2 -= n2 % 8;
            pairwise(&a[..n2]) + pairwise(&a[n2..])
        }
    }
    match a.split_first() {
        None => 0.0,
        Some((first, rest)) => first + pairwise(rest),
    }
}

/// Rule used to derive histogram bin edges from a baseline column.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, Default)]
pub enum BinRule {
    /// Freedman–Diaconis, as `np.histogram_bin_edges(x, 'fd')`.
    #[default]
    Fd,
    /// Sturges, as `np.histogram_bin_edges(x, 'sturges')`.
    Sturges,
    /// A fixed number of equal-width bins over [min, max] (`np.histogram_bin_edges(x, n)`).
    Count(usize),
    /// Equal-frequency bins: the edges are the column's quantiles at k + 1 evenly spaced
    /// levels, with duplicates (from ties) removed, as
    /// `np.unique(np.quantile(x, np.linspace(0, 1, k + 1)))` (numpy 'linear' quantiles).
    /// Ties can therefore leave fewer than k bins; when a single distinct edge remains
    /// (constant data) the edges are [c − ½, c + ½], as for the other rules.
    Quantile(usize),
    /// Explicit, strictly increasing edges (at least two).
    Explicit(Vec<f64>),
}

/// Upper bound on the number of bins a data-driven rule may produce (guards against a
/// pathological FD width on heavy-tailed data).
pub const MAX_BINS: usize = 10_000;

/// `np.histogram_bin_edges(sorted, rule)` for finite, ascending data (for
/// [`BinRule::Quantile`], `np.unique(np.quantile(sorted, np.linspace(0, 1, k + 1)))`).
///
/// Conventions shared by every data-driven rule: empty data has no edges; constant data gets
/// the single bin [c − ½, c + ½] (numpy's convention for `histogram_bin_edges`); a bin count
/// of 0 counts as 1.
pub fn bin_edges(sorted: &[f64], rule: &BinRule) -> Vec<f64> {
    if let BinRule::Explicit(e) = rule {
        return e.clone();
    }
    if sorted.is_empty() {
        return vec![];
    }
    if let BinRule::Quantile(k) = rule {
        let mut edges: Vec<f64> = linspace(0.0, 1.0, (*k).max(1) + 1)
            .into_iter()
            .map(|q| quantile_sorted(sorted, q))
            .collect();
        // np.unique: sort, then drop repeats
        edges.sort_by(f64::total_cmp);
        edges.dedup_by(|a, b| a == b);
        if edges.len() >= 2 {
            return edges;
        }
        let c = edges[0];
        return vec![c - 0.5, c + 0.5];
    }
    let (mut first, mut last) = (sorted[0], sorted[sorted.len() - 1]);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let n = sorted.len() as f64;
    let nbins = match rule {
        BinRule::Count(k) => (*k).max(1),
        BinRule::Fd | BinRule::Sturges => {
            let width = if *rule == BinRule::Fd {
                let iqr = quantile_sorted(sorted, 0.75) - quantile_sorted(sorted, 0.25);
                2.0 * iqr * n.powf(-1.0 / 3.0)
            } else {
                (sorted[sorted.len() - 1] - sorted[0]) / (n.log2() + 1.0)
            };
            if width > 0.0 {
                (((last - first) / width).ceil() as usize).clamp(1, MAX_BINS)
            } else {
                1
            }
        }
        BinRule::Explicit(_) | BinRule::Quantile(_) => unreachable!("handled above"),
    };
    linspace(first, last, nbins + 1)
}

/// `np.linspace(start, stop, num)` (endpoint included).
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&x, 0.5), 2.5);
        assert_eq!(quantile_sorted(&x, 0.25), 1.75);
        assert_eq!(quantile_sorted(&x, 1.0), 4.0);
        assert_eq!(quantile_sorted(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn var_and_edges() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(var(&x, 1), 5.0 / 3.0);
        assert_eq!(var(&x, 0), 1.25);
        // constant column: one bin [c-0.5, c+0.5]
        assert_eq!(bin_edges(&[3.0, 3.0], &BinRule::Fd), vec![2.5, 3.5]);
        assert_eq!(bin_edges(&x, &BinRule::Count(3)), vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn quantile_edges_match_numpy() {
        // np.unique(np.quantile([1, 2, 3, 4], np.linspace(0, 1, 4)))
        //   -> [1., 2., 3., 4.]
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(
            bin_edges(&x, &BinRule::Quantile(3)),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        // np.quantile([0, 1, 2, 3, 10], [0, .25, .5, .75, 1]) -> [0, 1, 2, 3, 10]
        assert_eq!(
            bin_edges(&[0.0, 1.0, 2.0, 3.0, 10.0], &BinRule::Quantile(4)),
            vec![0.0, 1.0, 2.0, 3.0, 10.0]
        );
        // interpolated levels: np.quantile([1, 2, 3, 4], [0, .5, 1]) -> [1, 2.5, 4]
        assert_eq!(bin_edges(&x, &BinRule::Quantile(2)), vec![1.0, 2.5, 4.0]);
    }

    #[test]
    fn quantile_edges_drop_ties() {
        // np.unique(np.quantile([1,1,1,1,1,1,2,3], np.linspace(0, 1, 5)))
        //   -> [1., 1.25, 3.]  (levels 0, .25, .5 all give 1)
        let x = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0];
        assert_eq!(bin_edges(&x, &BinRule::Quantile(4)), vec![1.0, 1.25, 3.0]);
        // one distinct edge: the constant-data convention of the other rules
        assert_eq!(bin_edges(&[7.0; 5], &BinRule::Quantile(10)), vec![6.5, 7.5]);
        assert_eq!(bin_edges(&[7.0], &BinRule::Quantile(3)), vec![6.5, 7.5]);
        // k = 0 counts as one bin: [min, max]
        assert_eq!(bin_edges(&x, &BinRule::Quantile(0)), vec![1.0, 3.0]);
        assert!(bin_edges(&[], &BinRule::Quantile(4)).is_empty());
    }
}
