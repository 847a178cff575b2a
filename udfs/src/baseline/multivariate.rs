//! Multivariate parts of a profile, over the *complete rows* (rows whose numeric columns
//! are all non-NULL and finite): a deterministic row sample (used by `mmd`) and an isolation
//! forest (used by `isolation_forest_score`).

use crate::math::iforest::IsolationForest;

use super::ProfileOptions;

/// Deterministic sample of complete rows of the numeric columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowSample {
    /// Column order of `values`.
    pub columns: Vec<String>,
    /// Number of complete rows in the baseline.
    pub complete_rows: u64,
    /// Row-major sample: the complete rows at positions ⌊(i + ½)·N / row_sample⌋,
    /// i = 0..row_sample, in input order (all of them when N ≤ row_sample).
    pub values: Vec<f64>,
}

impl RowSample {
    /// Number of sampled rows.
    pub fn len(&self) -> usize {
        self.values.len() / self.columns.len().max(1)
    }
    /// True when no row was sampled.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Isolation forest over the numeric columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForestProfile {
    /// Column order the trees index into.
    pub columns: Vec<String>,
    /// The trees (empty when the baseline has no complete row).
    pub forest: IsolationForest,
}

/// Complete rows (row-major) of the numeric columns.
pub(super) fn complete_rows(cols: &[(String, Vec<Option<f64>>)]) -> Vec<f64> {
    let k = cols.len();
    let nrows = cols.first().map_or(0, |c| c.1.len());
    let mut out = Vec::new();
    if k == 0 {
        return out;
    }
    for r in 0..nrows {
        if cols.iter().all(|c| c.1[r].is_some_and(f64::is_finite)) {
            out.extend(cols.iter().map(|c| c.1[r].unwrap_or(f64::NAN)));
        }
    }
    out
}

/// Row sample and forest of `cols`.
pub(super) fn build(
    cols: &[(String, Vec<Option<f64>>)],
    opts: &ProfileOptions,
) -> (RowSample, ForestProfile) {
    let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
    let k = names.len();
    let rows = complete_rows(cols);
    let n = rows.len().checked_div(k).unwrap_or(0);
    let values = if n <= opts.row_sample {
        rows.clone()
    } else {
        let mut v = Vec::with_capacity(opts.row_sample * k);
        for i in 0..opts.row_sample {
            let r = ((2 * i + 1) as u128 * n as u128 / (2 * opts.row_sample) as u128) as usize;
            v.extend_from_slice(&rows[r * k..(r + 1) * k]);
        }
        v
    };
    let forest = IsolationForest::fit(&rows, k, opts.iforest_trees, opts.iforest_sample, opts.seed);
    (
        RowSample {
            columns: names.clone(),
            complete_rows: n as u64,
            values,
        },
        ForestProfile {
            columns: names,
            forest,
        },
    )
}
