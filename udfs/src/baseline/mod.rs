//! Baseline profiles: per-column summaries of a reference data set (typically the model's
//! training data), computed once and looked up by name by the drift and outlier functions.

mod covariance;
mod multivariate;
mod persist;
mod registry;

pub use covariance::{CovarianceMethod, CovarianceProfile};
pub use multivariate::{ForestProfile, RowSample};

pub use registry::{BaselineRegistry, MissingFeatures};

use std::collections::BTreeMap;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use serde::{Deserialize, Serialize};

use crate::math::binned::histogram;
use crate::math::describe::{bin_edges, quantile_sorted, var, BinRule};

/// Errors building, reading or writing a baseline.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Arrow error while reading input batches.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// I/O error while persisting.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Malformed persisted profile.
    #[error("invalid baseline file: {0}")]
    Format(String),
    /// Invalid input (e.g. inconsistent schemas, bad options).
    #[error("invalid baseline input: {0}")]
    Invalid(String),
}

/// Options for [`BaselineProfile::from_batches`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileOptions {
    /// Maximum size of the stored reference sample per column (default 1 000 000). Columns
    /// with more finite values keep a deterministic stratified subsample: the sorted values
    /// at ranks ⌊(i + ½)·N / max_sample⌋, i = 0..max_sample (every quantile band equally
    /// represented, no randomness).
    pub max_sample: usize,
    /// Histogram bin rule (default equal-frequency deciles of the baseline,
    /// [`BinRule::Quantile`]`(10)`, `np.unique(np.quantile(x, np.linspace(0, 1, 11)))`: every
    /// bin holds about 10 % of the baseline, so PSI and χ² stay calibrated on small windows —
    /// see FUNCTIONS.md "Calibration"; [`BinRule`] also has Freedman–Diaconis, Sturges,
    /// equal-width and explicit edges). A bin count of 0 is rejected.
    pub bins: BinRule,
    /// Quantile levels to record (default 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99; numpy
    /// 'linear' interpolation; each level in [0, 1]).
    pub quantiles: Vec<f64>,
    /// Maximum number of complete rows kept in [`BaselineProfile::rows`] (default 1000; the
    /// `mmd` bandwidth and reference sample).
    #[serde(default = "default_row_sample")]
    pub row_sample: usize,
    /// Number of isolation-forest trees (default 100).
    #[serde(default = "default_trees")]
    pub iforest_trees: usize,
    /// Rows drawn per isolation tree, ψ (default 256).
    #[serde(default = "default_tree_sample")]
    pub iforest_sample: usize,
    /// Seed of the isolation forest's generator (default 42).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Columns declared categorical (`CREATE BASELINE … WITH (categorical = 'label, class')`):
    /// integer and boolean columns get a categorical profile whatever their number of
    /// distinct values (see [`MAX_INFERRED_CATEGORIES`] for the inferred ones).
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Covariance estimate kept for `mahalanobis` (`CREATE BASELINE … WITH (covariance =
    /// 'ledoit_wolf')`; default the sample covariance, see [`CovarianceMethod`]).
    #[serde(default)]
    pub covariance: CovarianceMethod,
    /// Window size (finite values per group and column) above which the sorted drift
    /// statistics keep a sketch instead of the values (`CREATE BASELINE … WITH
    /// (sketch_above = N)`; default 2²⁰, see [`crate::math::sketch`]).
    #[serde(default = "default_sketch_above")]
    pub sketch_above: usize,
}

fn default_sketch_above() -> usize {
    crate::math::sketch::DEFAULT_SKETCH_ABOVE
}

/// An integer column with at most this many distinct non-NULL values in the baseline is also
/// profiled as categorical — Evidently's rule (`NUMBER_UNIQUE_AS_CATEGORICAL = 5` in
/// `evidently/legacy/utils/data_preprocessing.py`, `_get_column_type`). Unlike Evidently, the
/// column keeps its numeric profile too, so numeric functions still accept it.
pub const MAX_INFERRED_CATEGORIES: usize = 5;

fn default_row_sample() -> usize {
    1000
}
fn default_trees() -> usize {
    100
}
fn default_tree_sample() -> usize {
    256
}
fn default_seed() -> u64 {
    42
}

impl ProfileOptions {
    /// Checks the options [`BaselineProfile::from_batches`] cannot work with: `max_sample`
    /// of 0, a bin count of 0, explicit edges that are not at least two finite, strictly
    /// increasing values, quantile levels outside [0, 1].
    pub fn validate(&self) -> Result<(), BaselineError> {
        let invalid = |m: &str| Err(BaselineError::Invalid(m.into()));
        if self.max_sample == 0 {
            return invalid("max_sample must be > 0");
        }
        let bad_bins = match &self.bins {
            BinRule::Explicit(e)
                if e.len() < 2
                    || e.iter().any(|v| !v.is_finite())
                    || e.windows(2)
                        .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) =>
            {
                Some("explicit bin edges must be at least two finite, strictly increasing values")
            }
            BinRule::Count(0) | BinRule::Quantile(0) => Some("the number of bins must be > 0"),
            _ => None,
        };
        if let Some(m) = bad_bins {
            return invalid(m);
        }
        if self.quantiles.iter().any(|q| !(0.0..=1.0).contains(q)) {
            return invalid("quantile levels must be between 0 and 1");
        }
        Ok(())
    }
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            max_sample: 1_000_000,
            bins: BinRule::Quantile(10),
            quantiles: vec![0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99],
            row_sample: default_row_sample(),
            iforest_trees: default_trees(),
            iforest_sample: default_tree_sample(),
            seed: default_seed(),
            categorical: Vec::new(),
            covariance: CovarianceMethod::default(),
            sketch_above: default_sketch_above(),
        }
    }
}

/// Summary of one column of the baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnProfile {
    /// Any integer or floating-point column (values cast to f64).
    Numeric(NumericProfile),
    /// A string column: value frequencies.
    Categorical(CategoricalProfile),
}

/// Profile of a numeric column. Statistics are over the finite values only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NumericProfile {
    /// Number of rows.
    pub rows: u64,
    /// Number of finite values.
    pub count: u64,
    /// Number of NULL rows.
    pub null_count: u64,
    /// Number of NaN / ±inf values (excluded from all statistics).
    pub nan_count: u64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (ddof = 1; NaN when count < 2).
    pub std: f64,
    /// Population standard deviation (ddof = 0).
    pub std_pop: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// (level, value) pairs, numpy 'linear' interpolation.
    pub quantiles: Vec<(f64, f64)>,
    /// Sorted reference sample (all finite values unless subsampled, see [`ProfileOptions`]).
    pub sample: Vec<f64>,
    /// Histogram bin edges (ascending, ≥ 2 when count > 0).
    pub bin_edges: Vec<f64>,
    /// Counts of all finite values per bin.
    pub bin_counts: Vec<u64>,
}

/// Profile of a string column.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CategoricalProfile {
    /// Number of rows.
    pub rows: u64,
    /// Number of NULL rows.
    pub null_count: u64,
    /// Count per distinct value.
    pub frequencies: BTreeMap<String, u64>,
}

/// A profiled baseline data set.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineProfile {
    /// Baseline name (as used in SQL).
    pub name: String,
    /// Options used to build it.
    pub options: ProfileOptions,
    /// Columns in input order.
    pub columns: Vec<(String, ColumnProfile)>,
    /// Covariance of the numeric columns.
    pub covariance: CovarianceProfile,
    /// Deterministic sample of complete rows of the numeric columns.
    pub rows: RowSample,
    /// Isolation forest trained on the complete rows of the numeric columns.
    pub forest: ForestProfile,
    /// Categorical profiles of integer columns (declared in
    /// [`ProfileOptions::categorical`], or with at most [`MAX_INFERRED_CATEGORIES`] distinct
    /// values), in input order; the values are their decimal text (`CAST(x AS VARCHAR)`).
    /// These columns keep their numeric profile in [`Self::columns`].
    pub integer_categories: Vec<(String, CategoricalProfile)>,
    /// NULL results caused by long-form features this baseline lacks (bookkeeping, shared
    /// per name by [`BaselineRegistry::insert`]).
    pub missing_features: MissingFeatures,
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_integer() || dt.is_floating() || matches!(dt, DataType::Decimal128(_, _))
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

impl BaselineProfile {
    /// Profile `batches` (all with the same schema). Columns of other types are skipped.
    pub fn from_batches(
        name: &str,
        batches: &[RecordBatch],
        opts: &ProfileOptions,
    ) -> Result<BaselineProfile, BaselineError> {
        if opts.max_sample == 0 {
            return Err(BaselineError::Invalid("max_sample must be > 0".into()));
        }
        opts.validate()?;
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            return Err(BaselineError::Invalid(format!(
                "baseline '{name}' has no data"
            )));
        };
        let declared = declared_categorical(name, &schema, &opts.categorical)?;
        let mut columns = Vec::new();
        let mut integer_categories = Vec::new();
        let mut numeric_values: Vec<(String, Vec<Option<f64>>)> = Vec::new();
        for (idx, field) in schema.fields().iter().enumerate() {
            let dt = field.data_type();
            if is_numeric(dt) {
                let mut all = Vec::new();
                for b in batches {
                    let arr = cast(b.column(idx), &DataType::Float64)?;
                    let arr = arr.as_primitive::<Float64Type>();
                    all.extend(arr.iter());
                }
                columns.push((
                    field.name().clone(),
                    ColumnProfile::Numeric(numeric_profile(&all, opts)),
                ));
                if dt.is_integer() && (declared.contains(&idx) || few_distinct(&all)) {
                    integer_categories
                        .push((field.name().clone(), categorical_profile(batches, idx)?));
                }
                numeric_values.push((field.name().clone(), all));
            } else if is_string(dt) || matches!(dt, DataType::Boolean) {
                columns.push((
                    field.name().clone(),
                    ColumnProfile::Categorical(categorical_profile(batches, idx)?),
                ));
            }
        }
        let covariance = covariance::covariance_profile(&numeric_values, opts.covariance);
        let (rows, forest) = multivariate::build(&numeric_values, opts);
        Ok(BaselineProfile {
            name: name.to_string(),
            options: opts.clone(),
            columns,
            covariance,
            rows,
            forest,
            integer_categories,
            missing_features: MissingFeatures::default(),
        })
    }

    /// Profile of column `name` (exact match first, then ASCII case-insensitive).
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| {
                self.columns
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .map(|(_, c)| c)
    }

    /// Numeric profile of column `name`, if the column exists and is numeric.
    pub fn numeric(&self, name: &str) -> Option<&NumericProfile> {
        match self.column(name) {
            Some(ColumnProfile::Numeric(p)) => Some(p),
            _ => None,
        }
    }

    /// Categorical profile of column `name` (exact match first, then ASCII
    /// case-insensitive): a string or boolean column, or an integer column profiled as
    /// categorical too (see [`Self::integer_categories`]).
    pub fn categorical(&self, name: &str) -> Option<&CategoricalProfile> {
        if let Some(ColumnProfile::Categorical(p)) = self.column(name) {
            return Some(p);
        }
        self.integer_categories
            .iter()
            .find(|(n, _)| n == name)
            .or_else(|| {
                self.integer_categories
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
            })
            .map(|(_, p)| p)
    }

    /// Names of the columns with a categorical profile, in input order.
    pub fn categorical_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|(n, c)| {
                matches!(c, ColumnProfile::Categorical(_))
                    || self.integer_categories.iter().any(|(i, _)| i == n)
            })
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Names of the numeric columns, in input order.
    pub fn numeric_columns(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|(_, c)| matches!(c, ColumnProfile::Numeric(_)))
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// Whether `values` hold at most [`MAX_INFERRED_CATEGORIES`] distinct non-NULL values (stops
/// at the first one more).
fn few_distinct(values: &[Option<f64>]) -> bool {
    let mut seen: Vec<u64> = Vec::with_capacity(MAX_INFERRED_CATEGORIES + 1);
    for v in values.iter().flatten() {
        let bits = v.to_bits();
        if !seen.contains(&bits) {
            if seen.len() == MAX_INFERRED_CATEGORIES {
                return false;
            }
            seen.push(bits);
        }
    }
    true
}

/// Frequencies of the text of column `idx` (strings as they are, integers in decimal,
/// booleans as `true` / `false`: what `CAST(x AS VARCHAR)` gives).
fn categorical_profile(
    batches: &[RecordBatch],
    idx: usize,
) -> Result<CategoricalProfile, BaselineError> {
    let mut p = CategoricalProfile::default();
    for b in batches {
        let arr = cast(b.column(idx), &DataType::Utf8)?;
        for v in arr.as_string::<i32>().iter() {
            p.rows += 1;
            match v {
                Some(s) => *p.frequencies.entry(s.to_string()).or_default() += 1,
                None => p.null_count += 1,
            }
        }
    }
    Ok(p)
}

/// Indices of the columns named in `categorical = '…'` (exact name, then ASCII
/// case-insensitive); a name that is no column, or a column that cannot hold categories
/// (floating point, dates…), is an error.
fn declared_categorical(
    baseline: &str,
    schema: &arrow::datatypes::Schema,
    declared: &[String],
) -> Result<Vec<usize>, BaselineError> {
    let fields = schema.fields();
    declared
        .iter()
        .map(|d| {
            let idx = fields
                .iter()
                .position(|f| f.name() == d)
                .or_else(|| fields.iter().position(|f| f.name().eq_ignore_ascii_case(d)))
                .ok_or_else(|| {
                    BaselineError::Invalid(format!(
                        "baseline '{baseline}': categorical column '{d}' is not a column (columns: {})",
                        fields.iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            let dt = fields[idx].data_type();
            if !(dt.is_integer() || is_string(dt) || matches!(dt, DataType::Boolean)) {
                return Err(BaselineError::Invalid(format!(
                    "baseline '{baseline}': column '{}' is {dt}; only integer, boolean and string \
                     columns can be categorical (cast it, e.g. AS SELECT CAST({} AS BIGINT) AS {} …)",
                    fields[idx].name(),
                    fields[idx].name(),
                    fields[idx].name()
                )));
            }
            Ok(idx)
        })
        .collect()
}

fn numeric_profile(values: &[Option<f64>], opts: &ProfileOptions) -> NumericProfile {
    let mut p = NumericProfile {
        rows: values.len() as u64,
        ..Default::default()
    };
    let mut finite: Vec<f64> = Vec::with_capacity(values.len());
    for v in values {
        match v {
            None => p.null_count += 1,
            Some(x) if x.is_finite() => finite.push(*x),
            Some(_) => p.nan_count += 1,
        }
    }
    p.count = finite.len() as u64;
    p.mean = crate::math::describe::mean(&finite);
    p.std = var(&finite, 1).sqrt();
    p.std_pop = var(&finite, 0).sqrt();
    finite.sort_by(f64::total_cmp);
    p.min = finite.first().copied().unwrap_or(f64::NAN);
    p.max = finite.last().copied().unwrap_or(f64::NAN);
    p.quantiles = opts
        .quantiles
        .iter()
        .map(|&q| (q, quantile_sorted(&finite, q)))
        .collect();
    p.bin_edges = bin_edges(&finite, &opts.bins);
    p.bin_counts = histogram(&p.bin_edges, &finite);
    p.sample = subsample_sorted(finite, opts.max_sample);
    p
}

/// Deterministic stratified subsample of sorted values (see [`ProfileOptions::max_sample`]).
fn subsample_sorted(sorted: Vec<f64>, max: usize) -> Vec<f64> {
    let n = sorted.len();
    if n <= max {
        return sorted;
    }
    (0..max)
        .map(|i| sorted[((((2 * i + 1) as u128) * n as u128) / (2 * max as u128)) as usize])
        .collect()
}

#[cfg(test)]
mod tests;
