//! Boolean range checks against a baseline column:
//! `iqr_outlier(x, 'baseline' [, k] [, feature])` — outside Tukey's fences
//! [Q1 − k·IQR, Q3 + k·IQR] (k = 1.5 by default; quartiles numpy 'linear' of the baseline's
//! finite values) — and `out_of_range(x, 'baseline' [, feature])` — outside [min, max] of the
//! baseline. NULL or NaN x → NULL; ±inf compares normally.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

use super::{scalar_str, to_f64};
use crate::args::{lookup, numeric_column};
use crate::baseline::{BaselineRegistry, NumericProfile};
use crate::math::describe::quantile_sorted;

/// Default Tukey multiplier.
pub const DEFAULT_K: f64 = 1.5;

fn quartile(c: &NumericProfile, q: f64) -> f64 {
    c.quantiles
        .iter()
        .find(|(l, _)| *l == q)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| quantile_sorted(&c.sample, q))
}

/// (low, high) fence of a column; NaN bounds (empty column) give NULL results.
fn bounds(c: &NumericProfile, iqr_k: Option<f64>) -> (f64, f64) {
    match iqr_k {
        Some(k) => {
            let (q1, q3) = (quartile(c, 0.25), quartile(c, 0.75));
            let iqr = q3 - q1;
            (q1 - k * iqr, q3 + k * iqr)
        }
        None => (c.min, c.max),
    }
}

/// Evaluates `iqr_outlier` (`iqr = true`) or `out_of_range`.
pub(super) fn fences(
    reg: &Arc<BaselineRegistry>,
    args: ScalarFunctionArgs,
    iqr: bool,
) -> Result<ColumnarValue> {
    let name = if iqr { "iqr_outlier" } else { "out_of_range" };
    let n = args.number_rows;
    let Some(Some(baseline)) = scalar_str(&args.args[1]) else {
        return plan_err!("{name}: the baseline name must be a string literal");
    };
    let profile = lookup(reg, &baseline)?;
    // optional numeric k (iqr only), then optional feature
    let mut rest = &args.args[2..];
    let mut rest_fields = &args.arg_fields[2..];
    let mut k = None;
    if iqr {
        k = Some(DEFAULT_K);
        if let Some(f) = rest_fields.first() {
            if f.data_type().is_numeric() {
                let ColumnarValue::Scalar(s) = &rest[0] else {
                    return plan_err!("{name}: k must be a constant");
                };
                let ScalarValue::Float64(Some(v)) = s.cast_to(&DataType::Float64)? else {
                    return plan_err!("{name}: k must not be NULL");
                };
                k = Some(v);
                rest = &rest[1..];
                rest_fields = &rest_fields[1..];
            }
        }
    }
    let _ = rest_fields;
    let x = to_f64(&args.args[0], n)?;
    let x = x.as_primitive::<Float64Type>();
    let test = |v: f64, (lo, hi): (f64, f64)| {
        (!v.is_nan() && !lo.is_nan() && !hi.is_nan()).then_some(v < lo || v > hi)
    };
    let out: BooleanArray = match rest.first() {
        Some(ColumnarValue::Array(f)) => {
            let f = cast(f, &DataType::Utf8)?;
            let f = f.as_string::<i32>();
            let mut last: Option<(&str, (f64, f64))> = None;
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                if x.is_null(i) || f.is_null(i) {
                    out.push(None);
                    continue;
                }
                let col = f.value(i);
                let b = match last {
                    Some((l, b)) if l == col => b,
                    _ => match crate::args::row_numeric_column(&profile, col, 1) {
                        Some(c) => {
                            let b = bounds(c, k);
                            last = Some((col, b));
                            b
                        }
                        // Not in the baseline: NULL, counted per row (not cached).
                        None => (f64::NAN, f64::NAN),
                    },
                };
                out.push(test(x.value(i), b));
            }
            out.into()
        }
        other => {
            let col = match other {
                Some(v) => match scalar_str(v) {
                    Some(Some(f)) => f,
                    _ => return plan_err!("{name}: feature must be a non-NULL string"),
                },
                None => args.arg_fields[0].name().clone(),
            };
            let c = numeric_column(&profile, &col).map_err(|e| {
                DataFusionError::Plan(format!(
                    "{e}; if '{col}' is an expression, pass the baseline column name as last \
                     argument: {name}(expr, '{baseline}', 'column')"
                ))
            })?;
            let b = bounds(c, k);
            x.iter().map(|v| v.and_then(|v| test(v, b))).collect()
        }
    };
    Ok(ColumnarValue::Array(Arc::new(out)))
}
