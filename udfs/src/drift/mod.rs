//! Drift aggregates `f(value, 'baseline' [, feature])` comparing the window's values with
//! a baseline column (see FUNCTIONS.md for every definition).
//!
//! * The baseline column is the third argument (string literal, or a string column in the
//!   long (feature, value) form — taken from the first non-NULL row seen per group), else the
//!   name of the first argument when it is a plain column.
//! * Numeric values: NULL and non-finite (NaN, ±inf) values are ignored; binned statistics
//!   use the baseline's histogram bins. String values (the binned kinds only): NULLs are
//!   ignored, the categories are the baseline's plus those first seen in the window.
//! * No remaining value → NULL.
//! * State is exact (the values, or the category counts) plus the feature name, so partial
//!   states from panes / partitions merge to exactly the single-pass result.

mod categorical;
mod list;
pub mod mmd;
pub(crate) mod udaf;

use crate::baseline::NumericProfile;
use crate::math::{anderson, binned, cvm, ks, wasserstein};

pub(crate) use categorical::CatKernel;
pub(crate) use list::{ListKernel, ListStat};
pub use udaf::{drift_functions, DriftUdaf};

/// Which drift statistic an aggregate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftKind {
    /// `scipy.stats.wasserstein_distance(current, reference)`.
    Wasserstein,
    /// W1 / max(std_pop(reference), 0.001).
    WassersteinNorm,
    /// `scipy.stats.ks_2samp(current, reference).statistic`.
    KsStat,
    /// `scipy.stats.ks_2samp(current, reference).pvalue` (method 'auto').
    KsPvalue,
    /// Population stability index on the baseline's bins (ε = 1e-4 for empty bins).
    Psi,
    /// `scipy.spatial.distance.jensenshannon(p, q, base=2)` on the baseline's bins.
    JsDistance,
    /// KL(current ‖ baseline) in nats on the baseline's bins (ε = 1e-4 floor, as psi).
    KlDiv,
    /// Hellinger distance on the baseline's bins.
    Hellinger,
    /// Total variation distance on the baseline's bins / categories.
    Tvd,
    /// L∞ distance of the proportions on the baseline's bins / categories.
    LInf,
    /// `scipy.stats.chisquare(obs, baseline shares × n).statistic`.
    Chi2Stat,
    /// `scipy.stats.chisquare(obs, baseline shares × n).pvalue`.
    Chi2Pvalue,
    /// `scipy.stats.energy_distance(current, reference)`.
    EnergyDistance,
    /// `scipy.stats.cramervonmises_2samp(current, reference).statistic`.
    CvmStat,
    /// `scipy.stats.cramervonmises_2samp(current, reference).pvalue` (method 'auto').
    CvmPvalue,
    /// `scipy.stats.anderson_ksamp([current, reference]).statistic` (midrank).
    AndersonStat,
    /// `scipy.stats.anderson_ksamp([current, reference]).pvalue`, capped to [0.001, 0.25].
    AndersonPvalue,
}

impl DriftKind {
    /// All kinds.
    pub const ALL: [DriftKind; 17] = [
        DriftKind::Wasserstein,
        DriftKind::WassersteinNorm,
        DriftKind::KsStat,
        DriftKind::KsPvalue,
        DriftKind::Psi,
        DriftKind::JsDistance,
        DriftKind::KlDiv,
        DriftKind::Hellinger,
        DriftKind::Tvd,
        DriftKind::LInf,
        DriftKind::Chi2Stat,
        DriftKind::Chi2Pvalue,
        DriftKind::EnergyDistance,
        DriftKind::CvmStat,
        DriftKind::CvmPvalue,
        DriftKind::AndersonStat,
        DriftKind::AndersonPvalue,
    ];

    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            DriftKind::Wasserstein => "wasserstein",
            DriftKind::WassersteinNorm => "wasserstein_norm",
            DriftKind::KsStat => "ks_stat",
            DriftKind::KsPvalue => "ks_pvalue",
            DriftKind::Psi => "psi",
            DriftKind::JsDistance => "js_distance",
            DriftKind::KlDiv => "kl_div",
            DriftKind::Hellinger => "hellinger",
            DriftKind::Tvd => "tvd",
            DriftKind::LInf => "l_inf",
            DriftKind::Chi2Stat => "chi2_stat",
            DriftKind::Chi2Pvalue => "chi2_pvalue",
            DriftKind::EnergyDistance => "energy_distance",
            DriftKind::CvmStat => "cvm_stat",
            DriftKind::CvmPvalue => "cvm_pvalue",
            DriftKind::AndersonStat => "anderson_stat",
            DriftKind::AndersonPvalue => "anderson_pvalue",
        }
    }

    /// Whether the statistic compares bin / category counts (and so also accepts string
    /// values, compared on the baseline's categorical frequencies).
    pub fn is_binned(self) -> bool {
        matches!(
            self,
            DriftKind::Psi
                | DriftKind::JsDistance
                | DriftKind::KlDiv
                | DriftKind::Hellinger
                | DriftKind::Tvd
                | DriftKind::LInf
                | DriftKind::Chi2Stat
                | DriftKind::Chi2Pvalue
        )
    }

    /// The binned statistic of `current` vs `reference` counts (same bins / categories, in
    /// the same order); `None` when undefined (an empty side, χ² with < 2 categories).
    pub fn compute_counts(self, current: &[u64], reference: &[u64]) -> Option<f64> {
        let v = match self {
            DriftKind::Psi => binned::psi(current, reference),
            DriftKind::JsDistance => binned::js_distance(current, reference),
            DriftKind::KlDiv => binned::kl_div(current, reference),
            DriftKind::Hellinger => binned::hellinger(current, reference),
            DriftKind::Tvd => binned::tvd(current, reference),
            DriftKind::LInf => binned::l_inf(current, reference),
            DriftKind::Chi2Stat => binned::chi2(current, reference)?.0,
            DriftKind::Chi2Pvalue => binned::chi2(current, reference)?.1,
            _ => return None,
        };
        v.is_finite().then_some(v)
    }

    /// Compute the statistic of `current` (sorted, finite) against column `col`.
    pub fn compute(self, current: &[f64], col: &NumericProfile) -> Option<f64> {
        let reference = &col.sample;
        if current.is_empty() || reference.is_empty() {
            return None;
        }
        if self.is_binned() {
            if col.bin_edges.len() < 2 {
                return None;
            }
            let cur = binned::histogram(&col.bin_edges, current);
            return self.compute_counts(&cur, &col.bin_counts);
        }
        let v = match self {
            DriftKind::Wasserstein => wasserstein::wasserstein_sorted(current, reference),
            DriftKind::WassersteinNorm => {
                wasserstein::wasserstein_sorted(current, reference) / col.std_pop.max(0.001)
            }
            DriftKind::KsStat => ks::ks_2samp_sorted(current, reference).statistic,
            DriftKind::KsPvalue => ks::ks_2samp_sorted(current, reference).pvalue,
            DriftKind::EnergyDistance => wasserstein::energy_distance_sorted(current, reference),
            DriftKind::CvmStat => cvm::cvm_2samp_sorted(current, reference)?.statistic,
            DriftKind::CvmPvalue => cvm::cvm_2samp_sorted(current, reference)?.pvalue,
            DriftKind::AndersonStat => {
                anderson::anderson_2samp_sorted(current, reference)?.statistic
            }
            DriftKind::AndersonPvalue => {
                anderson::anderson_2samp_sorted(current, reference)?.pvalue
            }
            _ => return None,
        };
        v.is_finite().then_some(v)
    }
}
