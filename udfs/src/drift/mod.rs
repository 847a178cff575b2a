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
//! * State is exact plus the feature name, so partial states from panes / partitions merge to
//!   exactly the single-pass result: the values for the sorted statistics, the counts per
//!   baseline bin for the binned statistics on numbers (O(bins), see `drift::bins`), the category
//!   counts for strings.

pub mod auto;
mod bins;
pub(crate) mod categorical;
mod fuse;
mod list;
pub mod mmd;
pub(crate) mod udaf;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::Result;

use crate::baseline::NumericProfile;
use crate::group::passes;
use crate::math::{anderson, binned, cvm, ks, wasserstein};

pub(crate) use bins::{BinsKernel, BinsOutput};
pub(crate) use categorical::CatKernel;
pub use fuse::{FuseDriftAggregates, FusedDriftUdaf};
pub(crate) use list::{ListKernel, ListStat};
pub use udaf::{drift_functions, DriftUdaf};

/// A group state carrying the feature of the long (feature, value) form.
pub(crate) trait FeatureSlot {
    /// The group's feature, once seen.
    fn feature_slot(&mut self) -> &mut Option<Arc<str>>;
}

/// Sets the feature of every group that has none from the string column `col` (the first
/// non-NULL value that passes `filter`). Repeated names share one allocation. Returns the
/// heap bytes of the names set, each counted for every group holding it.
///
/// A name the baseline lacks is kept like any other: it is not an error (the monitor keeps
/// running); the kernel's evaluation finds no baseline column for the group, yields NULL and
/// counts it ([`crate::args::row_numeric_column`] / [`crate::args::row_categorical_column`]).
pub(crate) fn take_features<G: FeatureSlot>(
    groups: &mut [G],
    col: &ArrayRef,
    idx: &[usize],
    filter: Option<&BooleanArray>,
) -> Result<usize> {
    let col = cast(col, &DataType::Utf8)?;
    let col = col.as_string::<i32>();
    let mut last: Option<Arc<str>> = None;
    let mut added = 0;
    for (i, &g) in idx.iter().enumerate() {
        let slot = groups[g].feature_slot();
        if slot.is_some() || !col.is_valid(i) || !passes(filter, i) {
            continue;
        }
        let s = col.value(i);
        let f = match &last {
            Some(l) if &**l == s => Arc::clone(l),
            _ => {
                let a: Arc<str> = Arc::from(s);
                last = Some(Arc::clone(&a));
                a
            }
        };
        added += crate::mem::arc_str_bytes(f.len());
        *slot = Some(f);
    }
    Ok(added)
}

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
    /// `scipy.stats.chi2_contingency([window counts, baseline counts]).statistic` (two-sample
    /// test of homogeneity; bins empty on both sides dropped).
    Chi2Stat,
    /// `scipy.stats.chi2_contingency([window counts, baseline counts]).pvalue`.
    Chi2Pvalue,
    /// `scipy.stats.chisquare(obs, baseline shares × n).statistic` (one-sample goodness of
    /// fit: the baseline shares taken as exact).
    Chi2GofStat,
    /// `scipy.stats.chisquare(obs, baseline shares × n).pvalue`.
    Chi2GofPvalue,
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
    pub const ALL: [DriftKind; 19] = [
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
        DriftKind::Chi2GofStat,
        DriftKind::Chi2GofPvalue,
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
            DriftKind::Chi2GofStat => "chi2_gof_stat",
            DriftKind::Chi2GofPvalue => "chi2_gof_pvalue",
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
                | DriftKind::Chi2GofStat
                | DriftKind::Chi2GofPvalue
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
            DriftKind::Chi2Stat => binned::chi2_contingency(current, reference)?.0,
            DriftKind::Chi2Pvalue => binned::chi2_contingency(current, reference)?.1,
            DriftKind::Chi2GofStat => binned::chi2_gof(current, reference)?.0,
            DriftKind::Chi2GofPvalue => binned::chi2_gof(current, reference)?.1,
            _ => return None,
        };
        v.is_finite().then_some(v)
    }

    /// Compute the statistic of `current` (sorted, finite) against column `col`.
    pub fn compute(self, current: &[f64], col: &NumericProfile) -> Option<f64> {
        compute_many(&[self], current, col)[0]
    }
}

/// Several statistics of the same `current` (sorted, finite) against column `col`, sharing
/// the work they have in common: one histogram for every binned statistic, one KS, Cramér–von
/// Mises or Anderson–Darling test for its statistic and p-value. `None` where undefined.
pub fn compute_many(
    kinds: &[DriftKind],
    current: &[f64],
    col: &NumericProfile,
) -> Vec<Option<f64>> {
    if current.is_empty() || col.sample.is_empty() {
        return vec![None; kinds.len()];
    }
    let uses = |ks: &[DriftKind]| kinds.iter().any(|k| ks.contains(k));
    let mut shared = Shared {
        current,
        col,
        joint_wasserstein_ks: uses(&[DriftKind::Wasserstein, DriftKind::WassersteinNorm])
            && uses(&[DriftKind::KsStat, DriftKind::KsPvalue]),
        histogram: None,
        wasserstein: None,
        ks: None,
        cvm: None,
        anderson: None,
    };
    kinds.iter().map(|&k| shared.compute(k)).collect()
}

/// Results computed once per window and shared by the statistics derived from them.
struct Shared<'a> {
    current: &'a [f64],
    col: &'a NumericProfile,
    /// Both a Wasserstein and a KS statistic are asked for: compute them in one pass.
    joint_wasserstein_ks: bool,
    histogram: Option<Vec<u64>>,
    wasserstein: Option<f64>,
    ks: Option<ks::KsResult>,
    cvm: Option<Option<cvm::CvmResult>>,
    anderson: Option<Option<anderson::AndersonResult>>,
}

impl Shared<'_> {
    fn compute(&mut self, kind: DriftKind) -> Option<f64> {
        let (cur, reference) = (self.current, &self.col.sample[..]);
        if kind.is_binned() {
            if self.col.bin_edges.len() < 2 {
                return None;
            }
            let edges = &self.col.bin_edges;
            let counts = self
                .histogram
                .get_or_insert_with(|| binned::histogram(edges, cur));
            return kind.compute_counts(counts, &self.col.bin_counts);
        }
        let v = match kind {
            DriftKind::Wasserstein => self.wasserstein(),
            DriftKind::WassersteinNorm => self.wasserstein() / self.col.std_pop.max(0.001),
            DriftKind::KsStat => self.ks().statistic,
            DriftKind::KsPvalue => self.ks().pvalue,
            DriftKind::EnergyDistance => wasserstein::energy_distance_sorted(cur, reference),
            DriftKind::CvmStat => self.cvm()?.statistic,
            DriftKind::CvmPvalue => self.cvm()?.pvalue,
            DriftKind::AndersonStat => self.anderson()?.statistic,
            DriftKind::AndersonPvalue => self.anderson()?.pvalue,
            _ => return None,
        };
        v.is_finite().then_some(v)
    }

    fn wasserstein(&mut self) -> f64 {
        self.joint();
        let (c, r) = (self.current, &self.col.sample);
        *self
            .wasserstein
            .get_or_insert_with(|| wasserstein::wasserstein_sorted(c, r))
    }

    fn ks(&mut self) -> ks::KsResult {
        self.joint();
        let (c, r) = (self.current, &self.col.sample);
        *self.ks.get_or_insert_with(|| ks::ks_2samp_sorted(c, r))
    }

    /// Fills both the Wasserstein and the KS results from one pass when both are needed.
    fn joint(&mut self) {
        if self.joint_wasserstein_ks && self.wasserstein.is_none() && self.ks.is_none() {
            let (c, r) = (self.current, &self.col.sample);
            let (w, d) = wasserstein::wasserstein_and_ks_sorted(c, r);
            self.wasserstein = Some(w);
            self.ks = Some(ks::ks_2samp_from_statistic(c.len(), r.len(), d));
        }
    }

    fn cvm(&mut self) -> Option<cvm::CvmResult> {
        let (c, r) = (self.current, &self.col.sample);
        *self.cvm.get_or_insert_with(|| cvm::cvm_2samp_sorted(c, r))
    }

    fn anderson(&mut self) -> Option<anderson::AndersonResult> {
        let (c, r) = (self.current, &self.col.sample);
        *self
            .anderson
            .get_or_insert_with(|| anderson::anderson_2samp_sorted(c, r))
    }
}
