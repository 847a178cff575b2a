//! Maximum mean discrepancy with an RBF kernel (Gretton et al. 2012, unbiased MMD²_u).
//!
//! k(a, b) = exp(−‖a − b‖² / (2σ²)), σ = median of the pairwise Euclidean distances of the
//! baseline row sample (the "median heuristic"; σ = 1 when that median is 0).
//! MMD²_u = Σ_{i≠j} k(xᵢ,xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ,yⱼ)/(n(n−1)) − 2 Σ k(xᵢ,yⱼ)/(mn).
//! Matrices are row-major with `k` columns.
//!
//! [`permutation_test`] adds the permutation p-value of MMD²_u (see its documentation).

use std::cmp::Ordering;

use super::iforest::SplitMix64;

/// Maximum number of current-window rows used (see [`HashSample`]).
pub const MAX_ROWS: usize = 1000;

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Median of the pairwise Euclidean distances between the rows of `y` (`np.median(pdist(y))`);
/// 1.0 when the median is 0 or there are fewer than two rows.
pub fn median_bandwidth(y: &[f64], k: usize) -> f64 {
    let n = y.len() / k.max(1);
    if n < 2 || k == 0 {
        return 1.0;
    }
    let mut d = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            d.push(dist2(&y[i * k..(i + 1) * k], &y[j * k..(j + 1) * k]).sqrt());
        }
    }
    let len = d.len();
    let mid = len / 2;
    let (_, hi, _) = d.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *hi;
    let med = if len % 2 == 1 {
        hi
    } else {
        let lo = d[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    };
    if med > 0.0 && med.is_finite() {
        med
    } else {
        1.0
    }
}

#[inline]
fn rbf(d2: f64, sigma: f64) -> f64 {
    (-d2 / (2.0 * (sigma * sigma))).exp()
}

/// Σ_{i≠j} k(xᵢ, xⱼ) (= 2 Σ_{i<j}).
pub fn within_sum(x: &[f64], k: usize, sigma: f64) -> f64 {
    let n = x.len() / k;
    let mut s = 0.0;
    for i in 0..n {
        let a = &x[i * k..(i + 1) * k];
        for j in i + 1..n {
            s += rbf(dist2(a, &x[j * k..(j + 1) * k]), sigma);
        }
    }
    2.0 * s
}

/// Σᵢⱼ k(xᵢ, yⱼ).
pub fn cross_sum(x: &[f64], y: &[f64], k: usize, sigma: f64) -> f64 {
    let mut s = 0.0;
    for a in x.chunks_exact(k) {
        for b in y.chunks_exact(k) {
            s += rbf(dist2(a, b), sigma);
        }
    }
    s
}

/// MMD²_u of `x` against `y` with bandwidth `sigma`, given `yy` = [`within_sum`]`(y)`.
/// NaN when either side has fewer than two rows.
pub fn mmd2_unbiased(x: &[f64], y: &[f64], k: usize, sigma: f64, yy: f64) -> f64 {
    let (m, n) = ((x.len() / k) as f64, (y.len() / k) as f64);
    if m < 2.0 || n < 2.0 {
        return f64::NAN;
    }
    within_sum(x, k, sigma) / (m * (m - 1.0)) + yy / (n * (n - 1.0))
        - 2.0 * cross_sum(x, y, k, sigma) / (m * n)
}

fn row_cmp(a: &[f64], b: &[f64]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.total_cmp(y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    Ordering::Equal
}

/// Rows of `x` (row-major, `k` columns) sorted lexicographically (by [`f64::total_cmp`]), so
/// the result does not depend on arrival order.
pub fn sorted_rows(x: &[f64], k: usize) -> Vec<f64> {
    let m = x.len() / k;
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_unstable_by(|&a, &b| row_cmp(&x[a * k..(a + 1) * k], &x[b * k..(b + 1) * k]));
    let mut out = Vec::with_capacity(m * k);
    for r in idx {
        out.extend_from_slice(&x[r * k..(r + 1) * k]);
    }
    out
}

/// Seed of [`row_hash`].
pub const ROW_HASH_SEED: u64 = 0x6d6d_645f_726f_7773;

/// SplitMix64's output mixer (a bijection of u64).
#[inline]
fn mix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a row: h₀ = [`ROW_HASH_SEED`], hᵢ₊₁ = mix64(hᵢ XOR bits(vᵢ)) with mix64 the
/// SplitMix64 mixer applied to z + 0x9E3779B97F4A7C15, and -0.0 hashed as +0.0. It depends
/// only on the row's values, never on where or when the row arrived.
pub fn row_hash(row: &[f64]) -> u64 {
    row.iter()
        .fold(ROW_HASH_SEED, |h, &v| mix64(h ^ (v + 0.0).to_bits()))
}

/// A deterministic, mergeable bottom-`max` sample of rows: of all rows added, the `max`
/// smallest in the order (row hash, row) — [`row_hash`], then lexicographic by
/// [`f64::total_cmp`] — duplicates counted. The order is total on distinct rows, so the sample
/// of a union of row sets is the sample of the union of their samples: partial states
/// (panes, partitions) merge to exactly the single-pass sample, whatever the split. Rows are
/// kept up to 2·`max` and then pruned to `max`, so memory is O(`max`·k).
#[derive(Debug, Default, Clone)]
pub struct HashSample {
    rows: Vec<f64>,
    hashes: Vec<u64>,
}

impl HashSample {
    /// Number of rows held (≤ 2·max between prunes, ≤ max after [`Self::prune`]).
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether no row is held.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The held rows, row-major (call [`Self::prune`] first for the sample itself).
    pub fn rows(&self) -> &[f64] {
        &self.rows
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * 8 + self.hashes.capacity() * 8
    }

    /// Adds one row of `k` values, pruning to `max` rows when 2·`max` are held.
    pub fn push(&mut self, row: &[f64], k: usize, max: usize) {
        self.hashes.push(row_hash(row));
        self.rows.extend_from_slice(row);
        if self.hashes.len() > 2 * max.max(1) {
            self.prune(k, max);
        }
    }

    /// Keeps only the `max` smallest rows in (hash, row) order (the sample).
    pub fn prune(&mut self, k: usize, max: usize) {
        let n = self.hashes.len();
        if n <= max {
            return;
        }
        let (rows, hashes) = (&self.rows, &self.hashes);
        let cmp = |&a: &usize, &b: &usize| {
            hashes[a]
                .cmp(&hashes[b])
                .then_with(|| row_cmp(&rows[a * k..(a + 1) * k], &rows[b * k..(b + 1) * k]))
        };
        let mut idx: Vec<usize> = (0..n).collect();
        if max > 0 {
            idx.select_nth_unstable_by(max - 1, cmp);
        }
        idx.truncate(max);
        let mut out = Vec::with_capacity(max * k);
        let mut out_h = Vec::with_capacity(max);
        for r in idx {
            out.extend_from_slice(&rows[r * k..(r + 1) * k]);
            out_h.push(hashes[r]);
        }
        self.rows = out;
        self.hashes = out_h;
    }
}

/// Default number of permutations of [`permutation_test`] (Alibi Detect's `n_permutations`).
pub const DEFAULT_PERMUTATIONS: usize = 100;

/// Seed of the [`SplitMix64`] generator that draws the permutations.
pub const PERMUTATION_SEED: u64 = 42;

/// Relative tie tolerance of [`permutation_test`]: a permuted statistic counts as at least
/// the observed one when `stat ≥ observed − TIE_RTOL · scale`, `scale` = the sum of the
/// absolute values of the three observed MMD²_u terms. Statistics equal in exact arithmetic
/// (e.g. constant data, where every split gives 0) then count as ties whatever the rounding.
pub const TIE_RTOL: f64 = 1e-11;

/// Result of [`permutation_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PermutationTest {
    /// Observed MMD²_u, computed from the pooled kernel matrix (equal to [`mmd2_unbiased`]
    /// up to rounding).
    pub statistic: f64,
    /// Number of permutations whose MMD²_u is ≥ the observed one (within the tie tolerance).
    pub exceed: usize,
    /// (1 + `exceed`) / (1 + permutations).
    pub pvalue: f64,
}

/// Σᵢ aᵢ·bᵢ with 8 independent partial sums (vectorisable).
#[inline]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f64; 8];
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Permutations evaluated together in one pass over the kernel matrix (their indicator
/// vectors, 16 × (m + n) × 8 bytes ≤ 256 KB, stay in cache while each matrix row is read once).
const BATCH: usize = 16;

/// Pooled kernel matrix of `x` (m rows) then `y` (n rows), upper triangle only (row-major
/// (m + n)², the rest 0), the row sums and total of the full symmetric matrix (zero
/// diagonal), and the split sizes.
struct Pooled {
    n_all: usize,
    m: usize,
    n: usize,
    kmat: Vec<f64>,
    row_sums: Vec<f64>,
    total: f64,
}

impl Pooled {
    fn new(x: &[f64], y: &[f64], k: usize, sigma: f64) -> Self {
        let (m, n) = (x.len() / k, y.len() / k);
        let n_all = m + n;
        let row = |i: usize| {
            if i < m {
                &x[i * k..(i + 1) * k]
            } else {
                &y[(i - m) * k..(i - m + 1) * k]
            }
        };
        // only the upper triangle is stored (and read); c = row sums of the symmetric matrix
        let mut kmat = vec![0.0; n_all * n_all];
        let mut row_sums = vec![0.0; n_all];
        for i in 0..n_all {
            let a = row(i);
            let mut s = 0.0;
            for j in i + 1..n_all {
                let v = rbf(dist2(a, row(j)), sigma);
                kmat[i * n_all + j] = v;
                s += v;
                row_sums[j] += v;
            }
            row_sums[i] += s;
        }
        let total = row_sums.iter().sum();
        Self {
            n_all,
            m,
            n,
            kmat,
            row_sums,
            total,
        }
    }

    /// Whether the window side is the one summed directly (the smaller side).
    fn x_small(&self) -> bool {
        self.m <= self.n
    }

    /// Marks in `w` (0/1, length m + n) the smaller side of the split whose window rows are
    /// `perm[..m]`.
    fn indicator(&self, perm: &[usize], w: &mut [f64]) {
        let side = if self.x_small() {
            &perm[..self.m]
        } else {
            &perm[self.m..]
        };
        w.fill(0.0);
        for &i in side {
            w[i] = 1.0;
        }
    }

    /// MMD²_u terms (Kxx/(m(m−1)), Kyy/(n(n−1)), 2Kxy/(mn)) of the splits whose smaller-side
    /// indicators are `w` (row-major, one row of length m + n per split), into `out`.
    ///
    /// Only the smaller side S is summed directly, over the upper triangle:
    /// Σ_{S×S} = 2 Σ_{i∈S} Σ_{j>i, j∈S} K_ij; then Σ_{S×S'} = Σ_{i∈S} cᵢ − Σ_{S×S} (c = row
    /// sums) and Σ_{S'×S'} = T − Σ_{S×S} − 2Σ_{S×S'}. Each matrix row is read once for all the
    /// splits; the sums of one split do not depend on which others share the pass.
    fn terms(&self, w: &[f64], out: &mut [(f64, f64, f64)]) {
        let (m, n, n_all) = (self.m, self.n, self.n_all);
        let nb = out.len();
        let mut within = [0.0f64; BATCH];
        let mut sums = [0.0f64; BATCH];
        for i in 0..n_all {
            let row = &self.kmat[i * n_all + i + 1..(i + 1) * n_all];
            for b in 0..nb {
                let wb = &w[b * n_all..(b + 1) * n_all];
                if wb[i] != 0.0 {
                    within[b] += dot(row, &wb[i + 1..]);
                    sums[b] += self.row_sums[i];
                }
            }
        }
        let (mf, nf) = (m as f64, n as f64);
        for b in 0..nb {
            let within = 2.0 * within[b];
            let cross = sums[b] - within;
            let other = self.total - within - 2.0 * cross;
            let (kxx, kyy) = if self.x_small() {
                (within, other)
            } else {
                (other, within)
            };
            out[b] = (
                kxx / (mf * (mf - 1.0)),
                kyy / (nf * (nf - 1.0)),
                2.0 * cross / (mf * nf),
            );
        }
    }
}

/// Permutation test of MMD²_u (`x`, m rows, against `y`, n rows; bandwidth `sigma` fixed, as
/// Alibi Detect's `MMDDrift` with `configure_kernel_from_x_ref=True`).
///
/// The pooled rows are z = (x₀ … x_{m−1}, y₀ … y_{n−1}); their kernel matrix is computed once
/// (zero diagonal, (m + n)² values). An index array π, initially the identity, is shuffled in
/// place `permutations` times in succession by Fisher–Yates (for i = m + n − 1 down to 1:
/// j = [`SplitMix64::below`]`(i + 1)`, swap πᵢ and πⱼ) with a [`SplitMix64`] generator seeded
/// with `seed`; after each shuffle the rows π₀ … π_{m−1} are the window, the rest the
/// reference, and MMD²_u is recomputed from the kernel matrix. The observed statistic is the
/// identity split's.
///
/// p = (1 + #{perm ≥ observed − tol}) / (1 + permutations) (see [`TIE_RTOL`]), so p > 0; Alibi
/// Detect reports #{perm ≥ observed} / permutations instead. `None` when either side has
/// fewer than two rows or `permutations` is 0.
///
/// Cost: (m + n)²/2 kernel evaluations and (m + n)² × 8 bytes once, then per permutation a
/// shuffle and min(m, n)·(m + n)/2 multiply-adds; no allocation per permutation.
pub fn permutation_test(
    x: &[f64],
    y: &[f64],
    k: usize,
    sigma: f64,
    permutations: usize,
    seed: u64,
) -> Option<PermutationTest> {
    if k == 0 || x.len() / k < 2 || y.len() / k < 2 || permutations == 0 {
        return None;
    }
    let pooled = Pooled::new(x, y, k, sigma);
    let n_all = pooled.n_all;
    let mut perm: Vec<usize> = (0..n_all).collect();
    let mut w = vec![0.0; BATCH * n_all];
    let mut terms = [(0.0, 0.0, 0.0); BATCH];
    pooled.indicator(&perm, &mut w[..n_all]);
    pooled.terms(&w[..n_all], &mut terms[..1]);
    let (a, b, c) = terms[0];
    let statistic = a + b - c;
    if !statistic.is_finite() {
        return None;
    }
    let threshold = statistic - TIE_RTOL * (a.abs() + b.abs() + c.abs());
    let mut rng = SplitMix64::new(seed);
    let mut exceed = 0;
    let mut left = permutations;
    while left > 0 {
        let nb = left.min(BATCH);
        for wb in w.chunks_exact_mut(n_all).take(nb) {
            for i in (1..n_all).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            pooled.indicator(&perm, wb);
        }
        pooled.terms(&w[..nb * n_all], &mut terms[..nb]);
        exceed += terms[..nb]
            .iter()
            .filter(|&&(a, b, c)| a + b - c >= threshold)
            .count();
        left -= nb;
    }
    Some(PermutationTest {
        statistic,
        exceed,
        pvalue: (1 + exceed) as f64 / (1 + permutations) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_and_bandwidth() {
        let y = [0.0, 0.0, 3.0, 4.0, 6.0, 8.0]; // distances 5, 10, 5 -> median 5
        assert_eq!(median_bandwidth(&y, 2), 5.0);
        assert_eq!(median_bandwidth(&[1.0, 1.0], 1), 1.0);
        let yy = within_sum(&y, 2, 5.0);
        let m = mmd2_unbiased(&y, &y, 2, 5.0, yy);
        // x = y: Kxx/(n(n-1)) + Kyy/(n(n-1)) - 2 (Kxx + n)/n² > 0 is not zero; just finite
        assert!(m.is_finite());
        let s = sorted_rows(&[3.0, 1.0, 2.0, 0.0], 1);
        assert_eq!(s, vec![0.0, 1.0, 2.0, 3.0]);
    }

    /// Brute force: the same shuffles, each split's MMD²_u by [`mmd2_unbiased`].
    fn brute(x: &[f64], y: &[f64], k: usize, sigma: f64, p: usize, seed: u64) -> (f64, usize) {
        let z: Vec<f64> = x.iter().chain(y).copied().collect();
        let (m, n_all) = (x.len() / k, z.len() / k);
        let stat = |perm: &[usize]| {
            let pick = |r: &[usize]| -> Vec<f64> {
                r.iter()
                    .flat_map(|&i| z[i * k..(i + 1) * k].iter().copied())
                    .collect()
            };
            let (a, b) = (pick(&perm[..m]), pick(&perm[m..]));
            mmd2_unbiased(&a, &b, k, sigma, within_sum(&b, k, sigma))
        };
        let mut perm: Vec<usize> = (0..n_all).collect();
        let obs = stat(&perm);
        let mut rng = SplitMix64::new(seed);
        let mut count = 0;
        for _ in 0..p {
            for i in (1..n_all).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            let s = stat(&perm);
            assert!(!(1e-13..=1e-9).contains(&(s - obs).abs()), "near tie");
            count += usize::from(s >= obs - 1e-13);
        }
        (obs, count)
    }

    fn sample(rng: &mut SplitMix64, rows: usize, k: usize, shift: f64) -> Vec<f64> {
        (0..rows * k)
            .map(|_| rng.next_f64() + rng.next_f64() + rng.next_f64() + shift)
            .collect()
    }

    #[test]
    fn permutation_test_matches_brute_force() {
        let mut g = SplitMix64::new(1);
        for (m, n, k, shift) in [
            (5, 9, 2, 0.0),
            (12, 7, 3, 0.3),
            (30, 30, 1, 0.1),
            (2, 2, 2, 0.0),
        ] {
            let x = sample(&mut g, m, k, shift);
            let y = sample(&mut g, n, k, 0.0);
            let sigma = median_bandwidth(&y, k);
            let t = permutation_test(&x, &y, k, sigma, 60, 42).unwrap();
            let (obs, count) = brute(&x, &y, k, sigma, 60, 42);
            let direct = mmd2_unbiased(&x, &y, k, sigma, within_sum(&y, k, sigma));
            assert!((t.statistic - obs).abs() <= 1e-13 && (obs - direct).abs() <= 1e-13);
            assert_eq!(t.exceed, count, "m={m} n={n}");
            assert_eq!(t.pvalue, (1 + count) as f64 / 61.0);
        }
    }

    #[test]
    fn permutation_test_edges() {
        let y = [0.0, 1.0, 2.0, 5.0];
        assert_eq!(permutation_test(&[1.0], &y, 1, 1.0, 10, 42), None);
        assert_eq!(permutation_test(&[1.0, 2.0], &y, 1, 1.0, 0, 42), None);
        // constant data: every split ties with the observed statistic
        let c = [3.0; 40];
        let t = permutation_test(&c[..10], &c[10..], 2, 1.0, 25, 42).unwrap();
        assert_eq!((t.exceed, t.pvalue), (25, 1.0));
        // a clear shift: no permutation reaches the observed statistic
        let mut g = SplitMix64::new(3);
        let x = sample(&mut g, 50, 2, 5.0);
        let y = sample(&mut g, 60, 2, 0.0);
        let t = permutation_test(&x, &y, 2, median_bandwidth(&y, 2), 100, 42).unwrap();
        assert_eq!((t.exceed, t.pvalue), (0, 1.0 / 101.0));
    }
}
