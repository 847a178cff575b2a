//! Small dense linear algebra for covariance matrices (row-major `k × k`).

/// Moore–Penrose pseudo-inverse of a symmetric positive semi-definite matrix via a cyclic
/// Jacobi eigen-decomposition: Σ⁺ = V diag(1/λᵢ, λᵢ > tol) Vᵀ with
/// tol = k · ε · max|λ| (numpy's default `rtol` for `pinv` / `matrix_rank`).
pub fn pinv_symmetric(a: &[f64], k: usize) -> Vec<f64> {
    let (vals, vecs) = jacobi_eigen(a, k);
    let maxv = vals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = k as f64 * f64::EPSILON * maxv;
    let mut out = vec![0.0; k * k];
    for (l, &lam) in vals.iter().enumerate() {
        if lam.abs() <= tol || lam == 0.0 {
            continue;
        }
        for i in 0..k {
            for j in 0..k {
                out[i * k + j] += vecs[i * k + l] * vecs[j * k + l] / lam;
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix).
fn jacobi_eigen(a: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut m = a.to_vec();
    let mut v = vec![0.0; k * k];
    for i in 0..k {
        v[i * k + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * k + j] * m[i * k + j])
            .sum();
        let diag: f64 = (0..k).map(|i| m[i * k + i] * m[i * k + i]).sum();
        if off <= f64::EPSILON * f64::EPSILON * diag || off == 0.0 {
            break;
        }
        for p in 0..k {
            for q in (p + 1)..k {
                let apq = m[p * k + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (m[q * k + q] - m[p * k + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..k {
                    let (mrp, mrq) = (m[r * k + p], m[r * k + q]);
                    m[r * k + p] = c * mrp - s * mrq;
                    m[r * k + q] = s * mrp + c * mrq;
                }
                for r in 0..k {
                    let (mpr, mqr) = (m[p * k + r], m[q * k + r]);
                    m[p * k + r] = c * mpr - s * mqr;
                    m[q * k + r] = s * mpr + c * mqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * vrp - s * vrq;
                    v[r * k + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    ((0..k).map(|i| m[i * k + i]).collect(), v)
}

/// Quadratic form dᵀ A d for row-major `k × k` A.
#[inline]
pub fn quad_form(a: &[f64], d: &[f64]) -> f64 {
    let k = d.len();
    let mut s = 0.0;
    for i in 0..k {
        let mut row = 0.0;
        for j in 0..k {
            row += a[i * k + j] * d[j];
        }
        s += d[i] * row;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
