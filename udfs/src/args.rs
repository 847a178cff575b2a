//! Shared argument handling: baseline lookup and feature-name resolution.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{plan_err, DataFusionError, Result};

use crate::baseline::{BaselineProfile, BaselineRegistry, CategoricalProfile, NumericProfile};

/// Look a baseline up ([`BaselineRegistry::resolve`]: exact name, then unambiguous ASCII
/// case-insensitive match), with an error listing the known names.
pub fn lookup(reg: &BaselineRegistry, name: &str) -> Result<Arc<BaselineProfile>> {
    reg.resolve(name).map_err(DataFusionError::Plan)
}

/// Numeric column of a baseline, with a clear error.
pub fn numeric_column<'a>(p: &'a BaselineProfile, col: &str) -> Result<&'a NumericProfile> {
    p.numeric(col).ok_or_else(|| {
        DataFusionError::Plan(format!(
            "baseline '{}' has no numeric column '{col}' (numeric columns: {})",
            p.name,
            p.numeric_columns().join(", ")
        ))
    })
}

/// The numeric column of `p` that a per-row (long-form) feature names, or `None` when `p`
/// has none: the caller's result is then NULL, never an error, and the miss is counted
/// (`nulls` NULL results) in the baseline's [`crate::baseline::MissingFeatures`]
/// (`system.missing_features`) and logged on the feature's first miss. A feature fixed at
/// planning time is checked with [`numeric_column`] instead, so a typo there stays an error.
pub fn row_numeric_column<'a>(
    p: &'a BaselineProfile,
    feature: &str,
    nulls: u64,
) -> Option<&'a NumericProfile> {
    let col = p.numeric(feature);
    if col.is_none() {
        p.missing_features.record(&p.name, feature, nulls);
    }
    col
}

/// Like [`row_numeric_column`], for a categorical column.
pub fn row_categorical_column<'a>(
    p: &'a BaselineProfile,
    feature: &str,
    nulls: u64,
) -> Option<&'a CategoricalProfile> {
    let col = p.categorical(feature);
    if col.is_none() {
        p.missing_features.record(&p.name, feature, nulls);
    }
    col
}

/// Error for a first argument that is not a plain column and no feature argument.
pub fn no_feature_error(func: &str, arg: &str) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{func}: cannot tell which baseline column '{arg}' corresponds to; pass the column \
         name as third argument, e.g. {func}(expr, 'baseline', 'column')"
    ))
}

/// Whether `dt` may be the value argument (cast to Float64 internally).
pub fn is_value_type(dt: &DataType) -> bool {
    dt.is_numeric() || matches!(dt, DataType::Null)
}

/// Whether `dt` may hold a baseline / feature name.
pub fn is_string_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// Validate `f(value, 'baseline' [, feature])` argument types; returns them unchanged
/// (no coercion casts, so a plain column keeps its name in the physical plan).
pub fn check_value_baseline_feature(func: &str, types: &[DataType]) -> Result<Vec<DataType>> {
    if !(2..=3).contains(&types.len()) {
        return plan_err!(
            "{func} expects (value, 'baseline' [, feature]), got {} arguments",
            types.len()
        );
    }
    if !is_value_type(&types[0]) {
        return plan_err!("{func}: value must be numeric, got {}", types[0]);
    }
    if !types[1..].iter().all(is_string_type) {
        return plan_err!("{func}: baseline name and feature must be strings");
    }
    Ok(types.to_vec())
}

/// Categorical column of a baseline, with a clear error: which columns are categorical
/// (or that none is), and how to make a numeric column categorical.
pub fn categorical_column<'a>(p: &'a BaselineProfile, col: &str) -> Result<&'a CategoricalProfile> {
    p.categorical(col).ok_or_else(|| {
        let known = p.categorical_columns();
        let known = if known.is_empty() {
            "it has no categorical columns".to_string()
        } else {
            format!("categorical columns: {}", known.join(", "))
        };
        let hint = if p.numeric(col).is_some() {
            format!(
                "; '{col}' is numeric: an integer column is categorical when it has at most {} \
                 distinct values or is declared with CREATE BASELINE {} … WITH (categorical = \
                 '{col}')",
                crate::baseline::MAX_INFERRED_CATEGORIES,
                p.name
            )
        } else {
            String::new()
        };
        DataFusionError::Plan(format!(
            "baseline '{}' has no categorical column '{col}' ({known}){hint}",
            p.name
        ))
    })
}

/// Maps argument names to the indices of `columns` (exact, then ASCII case-insensitive
/// match); when some name is unknown and exactly `columns.len()` arguments are given, the
/// arguments are taken in column order.
pub fn map_columns(names: &[String], columns: &[String]) -> Option<Vec<usize>> {
    let by_name: Option<Vec<usize>> = names
        .iter()
        .map(|f| {
            columns
                .iter()
                .position(|c| c == f)
                .or_else(|| columns.iter().position(|c| c.eq_ignore_ascii_case(f)))
        })
        .collect();
    match by_name {
        Some(m) => Some(m),
        None if names.len() == columns.len() => Some((0..names.len()).collect()),
        None => None,
    }
}

/// Simplification shared by the baseline aggregates: rewrites `f(col, 'b')` to
/// `f(col, 'b', 'col')` at the logical level, so the feature name survives physical
/// optimisations that replace columns (e.g. by constants).
pub fn name_feature_argument() -> datafusion::logical_expr::function::AggregateFunctionSimplification
{
    use datafusion::logical_expr::{expr::AggregateFunction, lit, Expr};
    Box::new(|mut af: AggregateFunction, _info| {
        if af.params.args.len() == 2 {
            if let Expr::Column(c) = &af.params.args[0] {
                let name = c.name.clone();
                af.params.args.push(lit(name));
            }
        }
        Ok(Expr::AggregateFunction(af))
    })
}

/// Implements `PartialEq`, `Eq` and `Hash` for a function bound to a baseline registry
/// (field `baselines`): two instances are the same function when their `$key` fields are
/// equal and they share the registry (compared by pointer).
macro_rules! registry_bound_identity {
    ($ty:ty, $key:ident) => {
        impl PartialEq for $ty {
            fn eq(&self, o: &Self) -> bool {
                self.$key == o.$key && std::sync::Arc::ptr_eq(&self.baselines, &o.baselines)
            }
        }
        impl Eq for $ty {}
        impl std::hash::Hash for $ty {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.$key.hash(state);
                (std::sync::Arc::as_ptr(&self.baselines) as usize).hash(state);
            }
        }
    };
}
pub(crate) use registry_bound_identity;
