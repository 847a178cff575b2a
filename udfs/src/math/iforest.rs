//! Isolation forest (Liu, Ting & Zhou 2008), trained deterministically.
//!
//! Each of `n_trees` trees is grown on ψ = min(sample_size, N) rows drawn without
//! replacement (Floyd's algorithm) by a SplitMix64 generator seeded with `seed`; a node
//! splits on a feature drawn uniformly among those not constant in the node, at a threshold
//! uniform in [min, max) (x ≤ threshold goes left), until one row is left or the depth
//! reaches ⌈log₂ ψ⌉ — as scikit-learn's `IsolationForest` (`max_features=1`).
//! score(x) = 2^(−E[h(x)] / c(ψ)), h = leaf depth + c(leaf size), i.e. the negation of
//! scikit-learn's `score_samples`; in (0, 1], higher is more anomalous.

/// Deterministic SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// New generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// One node; `feature < 0` marks a leaf.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// Split feature, −1 for a leaf.
    pub feature: i32,
    /// Split threshold (x ≤ threshold goes left).
    pub threshold: f64,
    /// Left child index.
    pub left: u32,
    /// Right child index.
    pub right: u32,
    /// Number of training rows that reached the node.
    pub size: u32,
}

/// A trained forest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IsolationForest {
    /// Number of features.
    pub k: usize,
    /// ψ, the per-tree sample size actually used.
    pub sample_size: usize,
    /// Trees, each a node array rooted at 0.
    pub trees: Vec<Vec<Node>>,
}

/// c(n) = 2H(n − 1) − 2(n − 1)/n, the mean path length of an unsuccessful BST search
/// (scikit-learn's `_average_path_length`): 0 for n ≤ 1, 1 for n = 2.
pub fn c(n: f64) -> f64 {
    if n <= 1.0 {
        0.0
    } else if n <= 2.0 {
        1.0
    } else {
        2.0 * ((n - 1.0).ln() + 0.577_215_664_901_532_9) - 2.0 * (n - 1.0) / n
    }
}

fn grow(
    nodes: &mut Vec<Node>,
    x: &[f64],
    k: usize,
    idx: &mut [usize],
    depth: usize,
    max_depth: usize,
    rng: &mut SplitMix64,
) -> u32 {
    let me = nodes.len() as u32;
    nodes.push(Node {
        feature: -1,
        threshold: 0.0,
        left: 0,
        right: 0,
        size: idx.len() as u32,
    });
    if idx.len() <= 1 || depth >= max_depth {
        return me;
    }
    let mut ranges: Vec<(usize, f64, f64)> = Vec::new();
    for f in 0..k {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &r in idx.iter() {
            let v = x[r * k + f];
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if hi > lo {
            ranges.push((f, lo, hi));
        }
    }
    if ranges.is_empty() {
        return me;
    }
    let (f, lo, hi) = ranges[rng.below(ranges.len())];
    let mut thr = lo + rng.next_f64() * (hi - lo);
    if thr >= hi {
        thr = lo;
    }
    // partition: x <= thr first
    let mut split = 0;
    for i in 0..idx.len() {
        if x[idx[i] * k + f] <= thr {
            idx.swap(i, split);
            split += 1;
        }
    }
    let (l, r) = idx.split_at_mut(split);
    let left = grow(nodes, x, k, l, depth + 1, max_depth, rng);
    let right = grow(nodes, x, k, r, depth + 1, max_depth, rng);
    nodes[me as usize] = Node {
        feature: f as i32,
        threshold: thr,
        left,
        right,
        size: idx.len() as u32,
    };
    me
}

impl IsolationForest {
    /// Train on the rows of `x` (row-major, `k` columns, all finite).
    pub fn fit(x: &[f64], k: usize, n_trees: usize, sample_size: usize, seed: u64) -> Self {
        let n = x.len().checked_div(k).unwrap_or(0);
        let psi = sample_size.min(n);
        if psi == 0 || n_trees == 0 {
            return Self::default();
        }
        let max_depth = (psi as f64).log2().ceil().max(0.0) as usize;
        let mut rng = SplitMix64::new(seed);
        let mut trees = Vec::with_capacity(n_trees);
        let mut chosen = std::collections::HashSet::with_capacity(psi);
        for _ in 0..n_trees {
            // Floyd's sampling of psi distinct rows out of n
            chosen.clear();
            let mut idx = Vec::with_capacity(psi);
            for j in n - psi..n {
                let t = rng.below(j + 1);
                let pick = if chosen.contains(&t) { j } else { t };
                chosen.insert(pick);
                idx.push(pick);
            }
            let mut nodes = Vec::new();
            grow(&mut nodes, x, k, &mut idx, 0, max_depth, &mut rng);
            trees.push(nodes);
        }
        Self {
            k,
            sample_size: psi,
            trees,
        }
    }

    /// Mean path length E[h(row)] over the trees.
    pub fn mean_path_length(&self, row: &[f64]) -> f64 {
        let mut total = 0.0;
        for t in &self.trees {
            let mut i = 0usize;
            let mut depth = 0.0;
            loop {
                let node = &t[i];
                if node.feature < 0 {
                    total += depth + c(node.size as f64);
                    break;
                }
                i = if row[node.feature as usize] <= node.threshold {
                    node.left as usize
                } else {
                    node.right as usize
                };
                depth += 1.0;
            }
        }
        total / self.trees.len() as f64
    }

    /// Anomaly score `2^(−E[h]/c(ψ))` in (0, 1] (NaN for an empty forest).
    pub fn score(&self, row: &[f64]) -> f64 {
        if self.trees.is_empty() {
            return f64::NAN;
        }
        let cn = c(self.sample_size as f64);
        if cn == 0.0 {
            return f64::NAN;
        }
        2f64.powf(-self.mean_path_length(row) / cn)
    }

    /// Flatten to f64s: [k, ψ, n_trees, (n_nodes, (feature, threshold, left, right, size)…)…].
    pub fn to_f64s(&self) -> Vec<f64> {
        let mut v = vec![
            self.k as f64,
            self.sample_size as f64,
            self.trees.len() as f64,
        ];
        for t in &self.trees {
            v.push(t.len() as f64);
            for n in t {
                v.extend_from_slice(&[
                    n.feature as f64,
                    n.threshold,
                    n.left as f64,
                    n.right as f64,
                    n.size as f64,
                ]);
            }
        }
        v
    }

    /// Inverse of [`IsolationForest::to_f64s`].
    pub fn from_f64s(v: &[f64]) -> Option<Self> {
        let mut it = v.iter().copied();
        let k = it.next()? as usize;
        let sample_size = it.next()? as usize;
        let nt = it.next()? as usize;
        let mut trees = Vec::with_capacity(nt);
        for _ in 0..nt {
            let nn = it.next()? as usize;
            let mut nodes = Vec::with_capacity(nn);
            for _ in 0..nn {
                let f = it.next()?;
                let threshold = it.next()?;
                let (l, r, s) = (it.next()?, it.next()?, it.next()?);
                if l as usize >= nn || r as usize >= nn || f >= k as f64 {
                    return None;
                }
                nodes.push(Node {
                    feature: f as i32,
                    threshold,
                    left: l as u32,
                    right: r as u32,
                    size: s as u32,
                });
            }
            if nodes.is_empty() {
                return None;
            }
            trees.push(nodes);
        }
        it.next().is_none().then_some(Self {
            k,
            sample_size,
            trees,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_outliers_score_higher() {
        let mut rng = SplitMix64::new(7);
        let x: Vec<f64> = (0..2000).map(|_| rng.next_f64()).collect(); // 1000 rows, k = 2
        let f1 = IsolationForest::fit(&x, 2, 100, 256, 42);
        let f2 = IsolationForest::fit(&x, 2, 100, 256, 42);
        assert_eq!(f1, f2);
        assert_eq!(IsolationForest::from_f64s(&f1.to_f64s()).unwrap(), f1);
        let inlier = f1.score(&[0.5, 0.5]);
        let outlier = f1.score(&[3.0, -2.0]);
        assert!(outlier > 0.6 && inlier < 0.5, "{inlier} {outlier}");
        assert_eq!(c(2.0), 1.0);
        assert!((c(256.0) - 10.244_770_920_119_917).abs() < 1e-12);
    }
}
