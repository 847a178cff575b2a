//! Dense linear algebra for covariance matrices (row-major), on top of `nalgebra`'s
//! Householder QR and Golub–Kahan SVD.
//!
//! A covariance matrix Σ is never decomposed directly: it is kept as a *factor* F with
//! FᵀF = Σ (the R of a QR decomposition of the centred data, scaled). The singular values s
//! of F are the square roots of Σ's eigenvalues, computed to about ε·s_max absolutely, so an
//! exactly singular direction of the data (one-hot columns summing to 1) gets an eigenvalue
//! of order ε²·λ_max instead of the ε·‖Σ‖ rounding noise of a decomposition of Σ itself, and
//! falls far below the rank cut.

use nalgebra::DMatrix;

/// Rank cut of `numpy.linalg.pinv(a)` with its default `rcond` / `rtol` (1e-15): eigenvalues
/// λ ≤ `PINV_RCOND` · λ_max of Σ are treated as zero.
pub const PINV_RCOND: f64 = 1e-15;

/// Rows per block of [`qr_factor`].
const QR_BLOCK: usize = 1024;

/// R factor (`min(n, k) × k`, row-major, upper triangular) of the QR decomposition of the
/// `n × k` row-major matrix `rows`, so that RᵀR = rowsᵀ·rows. Computed block-wise (TSQR: the
/// previous R stacked on the next `QR_BLOCK` rows, Householder QR of that), so memory is
/// O(k·(k + block)) whatever n.
pub fn qr_factor(rows: &[f64], k: usize) -> (Vec<f64>, usize) {
    let mut acc = QrAccumulator::new(k);
    for chunk in rows.chunks(QR_BLOCK * k.max(1)) {
        acc.push_rows(chunk);
    }
    acc.finish()
}

/// Incremental form of [`qr_factor`]: rows are pushed in any number of calls.
#[derive(Debug)]
pub struct QrAccumulator {
    k: usize,
    /// Current R, row-major (`r_rows × k`).
    r: Vec<f64>,
    r_rows: usize,
    /// Rows not folded in yet.
    pending: Vec<f64>,
}

impl QrAccumulator {
    /// An empty accumulator for rows of `k` values.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            r: Vec::new(),
            r_rows: 0,
            pending: Vec::new(),
        }
    }

    /// Adds the row-major rows in `rows` (a multiple of k values).
    pub fn push_rows(&mut self, rows: &[f64]) {
        self.pending.extend_from_slice(rows);
        if self.pending.len() >= QR_BLOCK * self.k.max(1) {
            self.fold();
        }
    }

    fn fold(&mut self) {
        let k = self.k;
        if k == 0 || self.pending.is_empty() {
            self.pending.clear();
            return;
        }
        let m = self.r_rows + self.pending.len() / k;
        let mut stacked = Vec::with_capacity(m * k);
        stacked.extend_from_slice(&self.r);
        stacked.extend_from_slice(&self.pending);
        self.pending.clear();
        let a = DMatrix::from_row_slice(m, k, &stacked);
        let r = a.qr().r(); // min(m, k) × k
        self.r_rows = r.nrows();
        self.r = row_major(&r);
    }

    /// R (row-major) and its number of rows, `min(n, k)`.
    pub fn finish(mut self) -> (Vec<f64>, usize) {
        self.fold();
        (self.r, self.r_rows)
    }
}

fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for i in 0..m.nrows() {
        out.extend(m.row(i).iter().copied());
    }
    out
}

/// Whitening map of Σ_S = F[:, S]ᵀ F[:, S]: the rows vᵢᵀ / √λᵢ for the eigenpairs (λᵢ, vᵢ)
/// of Σ_S with λᵢ > [`PINV_RCOND`] · λ_max, so that ‖W d‖² = dᵀ Σ_S⁺ d with Σ_S⁺ equal to
/// `numpy.linalg.pinv(Σ_S)` — and never negative.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    /// Number of columns (length of the vectors it applies to).
    pub k: usize,
    /// Kept directions, scaled: `rank × k`, row-major.
    pub rows: Vec<f64>,
}

impl Whitening {
    /// Number of kept eigenpairs (the numerical rank of Σ_S).
    pub fn rank(&self) -> usize {
        self.rows.len() / self.k.max(1)
    }

    /// ‖W d‖² = dᵀ Σ⁺ d (a sum of squares: ≥ 0).
    #[inline]
    pub fn sq_norm(&self, d: &[f64]) -> f64 {
        if self.k == 0 {
            return 0.0;
        }
        let mut s = 0.0;
        for row in self.rows.chunks_exact(self.k) {
            let p: f64 = row.iter().zip(d).map(|(a, b)| a * b).sum();
            s += p * p;
        }
        s
    }

    /// The pseudo-inverse WᵀW (row-major `k × k`).
    pub fn pinv(&self) -> Vec<f64> {
        let k = self.k;
        let mut out = vec![0.0; k * k];
        if k == 0 {
            return out;
        }
        for row in self.rows.chunks_exact(k) {
            for i in 0..k {
                for j in 0..k {
                    out[i * k + j] += row[i] * row[j];
                }
            }
        }
        out
    }
}

/// [`Whitening`] of the Gram matrix of columns `cols` of the `m × k` row-major `factor`.
/// Returns `None` when the SVD does not converge (not seen on finite input).
pub fn whitening(factor: &[f64], m: usize, k: usize, cols: &[usize]) -> Option<Whitening> {
    let c = cols.len();
    if c == 0 || m == 0 {
        return Some(Whitening { k: c, rows: vec![] });
    }
    let sub = DMatrix::from_fn(m, c, |i, j| factor[i * k + cols[j]]);
    let svd = sub.try_svd(false, true, f64::EPSILON, 0)?;
    let v_t = svd.v_t.as_ref()?;
    let s = &svd.singular_values;
    let smax = s.iter().fold(0.0f64, |a, &b| a.max(b));
    let cut = PINV_RCOND * smax * smax;
    let mut rows = Vec::new();
    for (l, &sv) in s.iter().enumerate() {
        if sv * sv > cut && sv > 0.0 {
            rows.extend(v_t.row(l).iter().map(|v| v / sv));
        }
    }
    Some(Whitening { k: c, rows })
}

/// A factor F (`k × k`, row-major) with FᵀF = `a` for a symmetric positive semi-definite
/// row-major `k × k` matrix: F = diag(√max(λ, 0)) Vᵀ from its symmetric eigen-decomposition.
/// Used for matrices that only exist as such (e.g. persisted before factors were stored);
/// less accurate in singular directions than a factor from the data.
pub fn factor_of_symmetric(a: &[f64], k: usize) -> Vec<f64> {
    if k == 0 {
        return Vec::new();
    }
    let m = DMatrix::from_row_slice(k, k, a);
    let eig = m.symmetric_eigen();
    let mut out = vec![0.0; k * k];
    for l in 0..k {
        let root = eig.eigenvalues[l].max(0.0).sqrt();
        for j in 0..k {
            out[l * k + j] = root * eig.eigenvectors[(j, l)];
        }
    }
    out
}

/// FᵀF for the `m × k` row-major `factor` (row-major `k × k`).
pub fn gram(factor: &[f64], m: usize, k: usize) -> Vec<f64> {
    let f = DMatrix::from_row_slice(m, k, &factor[..m * k]);
    row_major(&(f.transpose() * &f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-inverse of a symmetric PSD matrix the way profiles compute it: factor, whiten.
    fn pinv_symmetric(a: &[f64], k: usize) -> Vec<f64> {
        let all: Vec<usize> = (0..k).collect();
        whitening(&factor_of_symmetric(a, k), k, k, &all)
            .unwrap()
            .pinv()
    }

    #[test]
    fn inverse_of_spd() {
        let a = [4.0, 1.0, 1.0, 3.0];
        let inv = pinv_symmetric(&a, 2);
        let want = [3.0 / 11.0, -1.0 / 11.0, -1.0 / 11.0, 4.0 / 11.0];
        for (x, y) in inv.iter().zip(want) {
            assert!((x - y).abs() < 1e-14, "{inv:?}");
        }
    }

    #[test]
    fn pinv_of_singular() {
        // [[1,1],[1,1]] has pinv [[.25,.25],[.25,.25]]
        let inv = pinv_symmetric(&[1.0, 1.0, 1.0, 1.0], 2);
        for x in inv {
            assert!((x - 0.25).abs() < 1e-14);
        }
        assert_eq!(pinv_symmetric(&[0.0], 1), vec![0.0]);
    }

    #[test]
    fn qr_factor_is_a_square_root() {
        // 3000 rows (three blocks) of 3 columns
        let rows: Vec<f64> = (0..3000)
            .flat_map(|i| {
                let t = i as f64;
                [(t * 0.37).sin(), (t * 0.11).cos() * 3.0 + 1.0, t % 7.0]
            })
            .collect();
        let (r, m) = qr_factor(&rows, 3);
        assert_eq!(m, 3);
        let g = gram(&r, m, 3);
        for i in 0..3 {
            for j in 0..3 {
                let want: f64 = rows.chunks(3).map(|x| x[i] * x[j]).sum();
                assert!((g[i * 3 + j] - want).abs() < 1e-10 * want.abs().max(1.0));
            }
        }
        // fewer rows than columns
        let (r, m) = qr_factor(&[1.0, 2.0, 3.0], 3);
        assert_eq!(m, 1);
        assert_eq!(gram(&r, m, 3)[8], 9.0);
    }

    #[test]
    fn whitening_drops_exactly_singular_direction() {
        // one-hot pairs (a, 1 − a) and a numeric column: (1, 1, 0) spans the null space
        let rows: Vec<f64> = (0..500)
            .flat_map(|i| {
                let a = f64::from(u8::from(i % 3 == 0));
                [a, 1.0 - a, (i as f64 * 0.7).sin()]
            })
            .collect();
        let k = 3;
        let mean: Vec<f64> = (0..k)
            .map(|c| rows.chunks(k).map(|r| r[c]).sum::<f64>() / 500.0)
            .collect();
        let centred: Vec<f64> = rows
            .chunks(k)
            .flat_map(|r| (0..k).map(|c| r[c] - mean[c]).collect::<Vec<_>>())
            .collect();
        let (f, m) = qr_factor(&centred, k);
        let w = whitening(&f, m, k, &[0, 1, 2]).unwrap();
        assert_eq!(w.rank(), 2);
        // the null direction adds nothing; the quadratic form is never negative
        let d = [1.0, 1.0, 0.0];
        assert!(w.sq_norm(&d) < 1e-20, "{}", w.sq_norm(&d));
        assert!(w.sq_norm(&[1.0, -1.0, 0.0]) > 1e-3);
        let sub = whitening(&f, m, k, &[0, 2]).unwrap();
        assert_eq!(sub.rank(), 2);
    }
}
