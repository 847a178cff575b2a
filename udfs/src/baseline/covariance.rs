//! Covariance of a baseline's numeric columns, used by `mahalanobis`.
//!
//! Over the *complete rows* (every numeric column non-NULL and finite), with mean μ:
//!
//! * `covariance = 'sample'` (default): Σ = XcᵀXc / (n − 1), `np.cov(X, rowvar=False)`;
//! * `covariance = 'ledoit_wolf'`: sklearn's `LedoitWolf().fit(X).covariance_`, which shrinks
//!   the **maximum-likelihood** covariance S = XcᵀXc / n (ddof = 0, not the sample
//!   covariance) towards μ_S·I: Σ = (1 − δ)·S + δ·μ_S·I with μ_S = tr(S)/k and δ the
//!   Ledoit–Wolf shrinkage of `sklearn.covariance.ledoit_wolf_shrinkage` (no blocking needed:
//!   its blocks only split the same sums).
//!
//! Besides Σ the profile keeps a factor F with FᵀF = Σ, from a QR decomposition of the centred
//! rows (see [`crate::math::linalg`]): distances are computed from F's SVD, so exactly
//! collinear columns (one-hot encodings) leave no rounding-noise eigenvalue in the
//! pseudo-inverse. A column that is constant over the complete rows (min = max) has mean
//! exactly that value and an exactly zero row and column in Σ under `'sample'` (see
//! `mahalanobis` for how a deviation in it scores).

use serde::{Deserialize, Serialize};

use crate::math::describe::np_sum;
use crate::math::linalg::{gram, whitening, QrAccumulator};

/// Which covariance estimate a baseline keeps for `mahalanobis`
/// (`CREATE BASELINE … WITH (covariance = 'sample' | 'ledoit_wolf')`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CovarianceMethod {
    /// Sample covariance (ddof = 1), `np.cov(X, rowvar=False)`; the default.
    #[default]
    Sample,
    /// Ledoit–Wolf shrinkage of the maximum-likelihood covariance (ddof = 0), as
    /// `sklearn.covariance.LedoitWolf().fit(X).covariance_`.
    LedoitWolf,
}

impl CovarianceMethod {
    /// The accepted option values, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["sample", "ledoit_wolf"];

    /// The option value naming this method.
    pub fn name(self) -> &'static str {
        match self {
            CovarianceMethod::Sample => Self::NAMES[0],
            CovarianceMethod::LedoitWolf => Self::NAMES[1],
        }
    }

    /// The method named `s` (ASCII case-insensitive), or an error listing the accepted names.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sample" => Ok(CovarianceMethod::Sample),
            "ledoit_wolf" => Ok(CovarianceMethod::LedoitWolf),
            _ => Err(format!(
                "unknown covariance '{s}': use one of {}",
                Self::NAMES
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Covariance of the numeric columns over complete rows (no NULL / non-finite value in any
/// numeric column), used by `mahalanobis`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CovarianceProfile {
    /// Column order of the matrices.
    pub columns: Vec<String>,
    /// Number of complete rows.
    pub rows: u64,
    /// Mean over complete rows (exactly the value for a constant column).
    pub mean: Vec<f64>,
    /// The covariance `mahalanobis` uses, row-major k × k: the sample covariance (ddof = 1),
    /// or the Ledoit–Wolf estimate (see [`CovarianceMethod`]). NaN when rows < 2.
    pub covariance: Vec<f64>,
    /// Moore–Penrose pseudo-inverse of `covariance` (`numpy.linalg.pinv` with its default
    /// cut, [`crate::math::linalg::PINV_RCOND`]), from the SVD of `factor`.
    pub pinv: Vec<f64>,
    /// Which estimate `covariance` is.
    pub method: CovarianceMethod,
    /// Ledoit–Wolf shrinkage δ ∈ [0, 1] (0 for the sample covariance).
    pub shrinkage: f64,
    /// Factor F (`factor_rows × k`, row-major) with FᵀF = `covariance`.
    pub factor: Vec<f64>,
    /// Number of rows of `factor`.
    pub factor_rows: usize,
}

impl CovarianceProfile {
    /// Whether column `i` has exactly zero variance in [`Self::covariance`] (a constant column
    /// under `'sample'`).
    pub fn is_constant(&self, i: usize) -> bool {
        let k = self.columns.len();
        self.covariance.get(i * k + i) == Some(&0.0)
    }
}

/// Covariance profile of the numeric columns `cols` (equal lengths) with `method`.
pub(super) fn covariance_profile(
    cols: &[(String, Vec<Option<f64>>)],
    method: CovarianceMethod,
) -> CovarianceProfile {
    let k = cols.len();
    let nrows = cols.first().map_or(0, |c| c.1.len());
    let complete: Vec<usize> = (0..nrows)
        .filter(|&r| cols.iter().all(|c| c.1[r].is_some_and(f64::is_finite)))
        .collect();
    let n = complete.len();
    let val = |c: usize, r: usize| cols[c].1[r].unwrap_or(f64::NAN);
    let mut constant = vec![false; k];
    let mean: Vec<f64> = (0..k)
        .map(|c| {
            let v: Vec<f64> = complete.iter().map(|&r| val(c, r)).collect();
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            if n > 0 && lo == hi {
                constant[c] = true;
                lo
            } else {
                np_sum(&v) / n as f64
            }
        })
        .collect();
    let columns: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
    if n < 2 {
        return CovarianceProfile {
            columns,
            rows: n as u64,
            mean,
            covariance: vec![f64::NAN; k * k],
            pinv: vec![f64::NAN; k * k],
            method,
            shrinkage: 0.0,
            factor: Vec::new(),
            factor_rows: 0,
        };
    }
    // QR of the centred rows, plus the sums Ledoit–Wolf needs: Σ_r ‖x_r‖⁴ (sklearn's beta_)
    let mut qr = QrAccumulator::new(k);
    let mut row = vec![0.0; k];
    let mut norm4 = Vec::with_capacity(n);
    for &r in &complete {
        for c in 0..k {
            row[c] = if constant[c] {
                0.0
            } else {
                val(c, r) - mean[c]
            };
        }
        let sq: f64 = row.iter().map(|v| v * v).sum();
        norm4.push(sq * sq);
        qr.push_rows(&row);
    }
    let (r, m) = qr.finish();
    let nf = n as f64;
    let (covariance, factor, shrinkage) = match method {
        CovarianceMethod::Sample => {
            let scale = 1.0 / (nf - 1.0).sqrt();
            let f: Vec<f64> = r.iter().map(|v| v * scale).collect();
            let mut cov: Vec<f64> = gram(&r, m, k).iter().map(|v| v / (nf - 1.0)).collect();
            for c in (0..k).filter(|&c| constant[c]) {
                for j in 0..k {
                    cov[c * k + j] = 0.0;
                    cov[j * k + c] = 0.0;
                }
            }
            (cov, f, 0.0)
        }
        CovarianceMethod::LedoitWolf => {
            let s: Vec<f64> = gram(&r, m, k).iter().map(|v| v / nf).collect();
            let (delta, mu) = ledoit_wolf_shrinkage(&s, k, np_sum(&norm4), nf);
            let mut cov: Vec<f64> = s.iter().map(|v| (1.0 - delta) * v).collect();
            for c in 0..k {
                cov[c * k + c] += delta * mu;
            }
            // F = qr([√((1 − δ)/n)·R ; √(δ·μ)·I])
            let mut acc = QrAccumulator::new(k);
            let a = ((1.0 - delta) / nf).sqrt();
            acc.push_rows(&r.iter().map(|v| v * a).collect::<Vec<_>>());
            let b = (delta * mu).sqrt();
            for c in 0..k {
                let mut e = vec![0.0; k];
                e[c] = b;
                acc.push_rows(&e);
            }
            let (f, _) = acc.finish();
            (cov, f, delta)
        }
    };
    let factor_rows = factor.len() / k.max(1);
    let mut profile = CovarianceProfile {
        columns,
        rows: n as u64,
        mean,
        covariance,
        pinv: Vec::new(),
        method,
        shrinkage,
        factor,
        factor_rows,
    };
    profile.pinv = pinv_of(&profile);
    profile
}

/// Pseudo-inverse of the profile's covariance from its factor (constant columns: zero rows
/// and columns, as `numpy.linalg.pinv` gives them).
pub(super) fn pinv_of(p: &CovarianceProfile) -> Vec<f64> {
    let k = p.columns.len();
    let keep: Vec<usize> = (0..k).filter(|&c| !p.is_constant(c)).collect();
    let Some(w) = whitening(&p.factor, p.factor_rows, k, &keep) else {
        return vec![f64::NAN; k * k];
    };
    let sub = w.pinv();
    let mut out = vec![0.0; k * k];
    for (a, &i) in keep.iter().enumerate() {
        for (b, &j) in keep.iter().enumerate() {
            out[i * k + j] = sub[a * keep.len() + b];
        }
    }
    out
}

/// (δ, μ) of `sklearn.covariance.ledoit_wolf_shrinkage` for the MLE covariance `s` (k × k)
/// of n centred rows with Σ_r ‖x_r‖⁴ = `norm4`; δ = 0 for one column (sklearn's special
/// case) or when S is already a multiple of I.
fn ledoit_wolf_shrinkage(s: &[f64], k: usize, norm4: f64, n: f64) -> (f64, f64) {
    let kf = k as f64;
    let trace: f64 = (0..k).map(|c| s[c * k + c]).sum();
    let mu = trace / kf;
    if k == 1 {
        return (0.0, mu);
    }
    let delta_: f64 = s.iter().map(|v| v * v).sum(); // ‖XᵀX‖²_F / n²
    let beta = (norm4 / n - delta_) / (kf * n);
    let delta = (delta_ - 2.0 * mu * trace + kf * mu * mu) / kf;
    let beta = beta.min(delta);
    if beta == 0.0 || delta <= 0.0 {
        return (0.0, mu);
    }
    ((beta / delta).clamp(0.0, 1.0), mu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(data: &[&[f64]]) -> Vec<(String, Vec<Option<f64>>)> {
        data.iter()
            .enumerate()
            .map(|(i, c)| (format!("c{i}"), c.iter().map(|v| Some(*v)).collect()))
            .collect()
    }

    #[test]
    fn sample_covariance_and_constant_column() {
        let p = covariance_profile(
            &cols(&[&[1.0, 2.0, 4.0], &[2.0, 1.0, 7.0], &[0.1, 0.1, 0.1]]),
            CovarianceMethod::Sample,
        );
        // np.cov: var(a) = 7/3, cov(a, b) = 13/3, var(b) = 31/3
        let c = &p.covariance;
        assert!((c[0] - 7.0 / 3.0).abs() < 1e-14, "{c:?}");
        assert!((c[1] - 13.0 / 3.0).abs() < 1e-14);
        assert!((c[4] - 31.0 / 3.0).abs() < 1e-13);
        // the constant column: exact mean, exactly zero variance and covariances
        assert_eq!(p.mean[2], 0.1);
        assert!(p.is_constant(2) && !p.is_constant(0));
        assert_eq!(&c[6..9], &[0.0, 0.0, 0.0]);
        assert_eq!(p.pinv[8], 0.0);
    }

    #[test]
    fn ledoit_wolf_matches_sklearn() {
        // sklearn 1.9: LedoitWolf().fit(np.array([a, b]).T)
        let a = [1.0, 2.0, 4.0, 3.0, 0.0];
        let b = [2.0, 1.0, 7.0, 4.0, 1.0];
        let p = covariance_profile(&cols(&[&a, &b]), CovarianceMethod::LedoitWolf);
        assert!(
            (p.shrinkage - 0.489_230_769_230_769_3).abs() < 1e-15,
            "{}",
            p.shrinkage
        );
        let want = [
            2.782_769_230_769_231,
            1.430_153_846_153_845_7,
            1.430_153_846_153_845_7,
            4.417_230_769_230_769,
        ];
        for (x, y) in p.covariance.iter().zip(want) {
            assert!((x - y).abs() < 1e-14, "{:?}", p.covariance);
        }
        let g = gram(&p.factor, p.factor_rows, 2);
        for (x, y) in g.iter().zip(&p.covariance) {
            assert!((x - y).abs() < 1e-13, "{g:?} {:?}", p.covariance);
        }
    }

    #[test]
    fn parse_method() {
        assert_eq!(
            CovarianceMethod::parse("Ledoit_Wolf"),
            Ok(CovarianceMethod::LedoitWolf)
        );
        let e = CovarianceMethod::parse("oas").unwrap_err();
        assert!(e.contains("'sample', 'ledoit_wolf'"), "{e}");
    }
}

#[cfg(test)]
mod persist_tests {
    use super::*;
    use crate::baseline::tests::batch;
    use crate::baseline::{BaselineProfile, ProfileOptions};

    /// A profile written before the method, shrinkage and factor were stored reads back as
    /// the sample covariance with a factor of its covariance and the same pseudo-inverse.
    #[test]
    fn file_without_factor_still_reads() {
        let p = BaselineProfile::from_batches("t", &[batch()], &ProfileOptions::default()).unwrap();
        let dir = std::env::temp_dir().join(format!("dw-cov-old-{}", std::process::id()));
        p.write_to(&dir).unwrap();
        let path = dir.join("profile.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("covariance_method");
        let cov = obj["covariance"].as_object_mut().unwrap();
        for key in ["shrinkage", "factor", "factor_rows"] {
            cov.remove(key);
        }
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let q = BaselineProfile::read_from(&dir).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(q.options.covariance, CovarianceMethod::Sample);
        let (a, b) = (&p.covariance, &q.covariance);
        assert_eq!(a.covariance, b.covariance);
        let k = a.columns.len();
        assert_eq!(b.factor_rows, k);
        for (x, y) in gram(&b.factor, k, k).iter().zip(&a.covariance) {
            assert!((x - y).abs() < 1e-12 * y.abs().max(1.0));
        }
        for (x, y) in a.pinv.iter().zip(&b.pinv) {
            assert!(
                (x - y).abs() < 1e-9 * y.abs().max(1.0),
                "{:?} {:?}",
                a.pinv,
                b.pinv
            );
        }
    }
}
