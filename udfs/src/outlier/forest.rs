//! `isolation_forest_score(x1, …, xk, 'baseline')`: the anomaly score of each row under the
//! baseline's isolation forest (see [`crate::math::iforest`]); in (0, 1], higher is more
//! anomalous, ≈ 0.5 or below for typical rows. The arguments must cover every numeric column
//! of the baseline (matched by name, any order, or all given in column order); a row with a
//! NULL / non-finite value → NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::datatypes::Float64Type;
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};

use super::{multi_args, to_f64};
use crate::args::{lookup, map_columns};
use crate::baseline::BaselineRegistry;

/// Evaluates `isolation_forest_score`.
pub(super) fn score(
    reg: &Arc<BaselineRegistry>,
    args: ScalarFunctionArgs,
) -> Result<ColumnarValue> {
    let n = args.number_rows;
    let (k, names, baseline) = multi_args("isolation_forest_score", &args)?;
    let profile = lookup(reg, &baseline)?;
    let fp = &profile.forest;
    let map = match map_columns(&names, &fp.columns) {
        Some(m)
            if k == fp.columns.len() && {
                let mut s = m.clone();
                s.sort_unstable();
                s.iter().enumerate().all(|(i, &j)| i == j)
            } =>
        {
            m
        }
        _ => {
            return plan_err!(
                "isolation_forest_score: arguments must be all numeric columns of baseline \
                 '{}' ({})",
                profile.name,
                fp.columns.join(", ")
            )
        }
    };
    if fp.forest.trees.is_empty() {
        return Ok(ColumnarValue::Scalar(ScalarValue::Float64(None)));
    }
    let xs: Vec<ArrayRef> = args.args[..k]
        .iter()
        .map(|a| to_f64(a, n))
        .collect::<Result<_>>()?;
    let xs: Vec<&Float64Array> = xs.iter().map(|a| a.as_primitive::<Float64Type>()).collect();
    let mut row = vec![0.0; k];
    let out: Float64Array = (0..n)
        .map(|r| {
            for (i, x) in xs.iter().enumerate() {
                if x.is_null(r) || !x.value(r).is_finite() {
                    return None;
                }
                row[map[i]] = x.value(r);
            }
            Some(fp.forest.score(&row))
        })
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}
