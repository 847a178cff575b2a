//! Per-row outlier scores against a baseline: `zscore(x, 'baseline' [, feature])`,
//! `mahalanobis(x1, …, xk, 'baseline')`, `iqr_outlier(x, 'baseline' [, k] [, feature])`,
//! `out_of_range(x, 'baseline' [, feature])` and
//! `isolation_forest_score(x1, …, xk, 'baseline')`. Vectorised over whole arrays (no
//! per-row allocation); NULL / non-finite inputs give NULL.

mod fences;
mod forest;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{exec_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::args::{
    check_value_baseline_feature, is_string_type, is_value_type, lookup, numeric_column,
};
use crate::baseline::BaselineRegistry;

/// Which scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    ZScore,
    Mahalanobis,
    IqrOutlier,
    OutOfRange,
    IsolationForest,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::ZScore,
        Kind::Mahalanobis,
        Kind::IqrOutlier,
        Kind::OutOfRange,
        Kind::IsolationForest,
    ];
    fn name(self) -> &'static str {
        match self {
            Kind::ZScore => "zscore",
            Kind::Mahalanobis => "mahalanobis",
            Kind::IqrOutlier => "iqr_outlier",
            Kind::OutOfRange => "out_of_range",
            Kind::IsolationForest => "isolation_forest_score",
        }
    }
    fn multi(self) -> bool {
        matches!(self, Kind::Mahalanobis | Kind::IsolationForest)
    }
}

/// `(x1, …, xk, 'baseline' [, 'name1', …, 'namek'])`: (k, column names, baseline).
fn multi_args(func: &str, args: &ScalarFunctionArgs) -> Result<(usize, Vec<String>, String)> {
    let k = args
        .arg_fields
        .iter()
        .position(|f| is_string_type(f.data_type()) && !f.data_type().is_null())
        .unwrap_or(args.args.len() - 1);
    let names: Vec<String> = if args.args.len() == 2 * k + 1 {
        args.args[k + 1..]
            .iter()
            .map(|a| match scalar_str(a) {
                Some(Some(s)) => Ok(s),
                _ => plan_err!("{func}: column names must be string literals"),
            })
            .collect::<Result<_>>()?
    } else if args.args.len() == k + 1 {
        args.arg_fields[..k]
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        return plan_err!("{func} expects (x1, …, xk, 'baseline')");
    };
    let Some(Some(baseline)) = scalar_str(&args.args[k]) else {
        return plan_err!("{func}: the last argument must be the baseline name literal");
    };
    Ok((k, names, baseline))
}

/// A scalar outlier function bound to a baseline registry.
#[derive(Debug, Clone)]
pub struct OutlierUdf {
    kind: Kind,
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
}

crate::args::registry_bound_identity!(OutlierUdf, kind);

fn scalar_str(v: &ColumnarValue) -> Option<Option<String>> {
    match v {
        ColumnarValue::Scalar(s) => s.try_as_str().map(|s| s.map(str::to_string)),
        ColumnarValue::Array(_) => None,
    }
}

fn to_f64(v: &ColumnarValue, n: usize) -> Result<ArrayRef> {
    Ok(cast(&v.to_array(n)?, &DataType::Float64)?)
}

impl OutlierUdf {
    fn zscore(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let Some(Some(baseline)) = scalar_str(&args.args[1]) else {
            return plan_err!("zscore: the baseline name must be a string literal");
        };
        let profile = lookup(&self.baselines, &baseline)?;
        let x = to_f64(&args.args[0], n)?;
        let x = x.as_primitive::<Float64Type>();
        let score = |v: f64, mean: f64, std: f64| {
            let z = (v - mean) / std;
            (v.is_finite() && std > 0.0 && z.is_finite()).then_some(z)
        };
        let out: Float64Array = match args.args.get(2) {
            Some(ColumnarValue::Array(f)) => {
                // long form: one feature per row
                let f = cast(f, &DataType::Utf8)?;
                let f = f.as_string::<i32>();
                let mut last: Option<(&str, f64, f64)> = None;
                let mut out = Vec::with_capacity(n);
                for i in 0..n {
                    if x.is_null(i) || f.is_null(i) {
                        out.push(None);
                        continue;
                    }
                    let name = f.value(i);
                    let (mean, std) = match last {
                        Some((l, m, s)) if l == name => (m, s),
                        _ => match crate::args::row_numeric_column(&profile, name, 1) {
                            Some(c) => {
                                last = Some((name, c.mean, c.std));
                                (c.mean, c.std)
                            }
                            // Not in the baseline: NULL, counted per row (not cached).
                            None => (f64::NAN, f64::NAN),
                        },
                    };
                    out.push(score(x.value(i), mean, std));
                }
                Float64Array::from(out)
            }
            other => {
                let col = match other {
                    Some(v) => match scalar_str(v) {
                        Some(Some(f)) => f,
                        _ => return plan_err!("zscore: feature must be a non-NULL string"),
                    },
                    None => args.arg_fields[0].name().clone(),
                };
                let c = numeric_column(&profile, &col).map_err(|e| {
                    DataFusionError::Plan(format!(
                        "{e}; if '{col}' is an expression, pass the baseline column name as \
                         third argument: zscore(expr, '{baseline}', 'column')"
                    ))
                })?;
                let (mean, std) = (c.mean, c.std);
                x.iter()
                    .map(|v| v.and_then(|v| score(v, mean, std)))
                    .collect()
            }
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }

    /// `mahalanobis(x1, …, xk, 'baseline')`: √((x − μ)ᵀ Σ⁺ (x − μ)) with Σ the baseline's
    /// covariance over the named columns (sample or Ledoit–Wolf, see
    /// [`crate::baseline::CovarianceMethod`]) and Σ⁺ equal to `numpy.linalg.pinv(Σ)` (default
    /// cut 1e-15·λ_max), evaluated as ‖Λ^{-1/2} Vᵀ(x − μ)‖ over the kept eigenpairs, so never
    /// negative. A column constant in the baseline (zero variance in Σ) is left out of the
    /// form; a row whose value there differs from the constant scores +∞. NULL or non-finite
    /// components give NULL.
    fn mahalanobis(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let (k, names, baseline) = multi_args("mahalanobis", &args)?;
        let profile = lookup(&self.baselines, &baseline)?;
        let cov = &profile.covariance;
        let cols = &cov.columns;
        // map argument i -> baseline column index
        let by_name: Option<Vec<usize>> = names
            .iter()
            .map(|f| {
                cols.iter()
                    .position(|c| c == f)
                    .or_else(|| cols.iter().position(|c| c.eq_ignore_ascii_case(f)))
            })
            .collect();
        let map = match by_name {
            Some(m) => m,
            None if k == cols.len() => (0..k).collect(),
            None => {
                return plan_err!(
                    "mahalanobis: arguments must name numeric columns of baseline '{}' ({}), \
                     or give all {} of them in order",
                    profile.name,
                    cols.join(", "),
                    cols.len()
                )
            }
        };
        if cov.rows < 2 {
            return Ok(ColumnarValue::Scalar(ScalarValue::Float64(None)));
        }
        // Columns constant in the baseline (zero variance in the covariance used) leave the
        // quadratic form; any other value than the constant scores +∞. The others enter
        // through the whitening of their covariance sub-matrix: ‖W (x − μ)‖ over the
        // eigenpairs numpy's pinv keeps, a sum of squares (never negative).
        let kk = cols.len();
        let (varying, constant): (Vec<usize>, Vec<usize>) =
            (0..k).partition(|&i| !cov.is_constant(map[i]));
        let base_cols: Vec<usize> = varying.iter().map(|&i| map[i]).collect();
        let Some(white) =
            crate::math::linalg::whitening(&cov.factor, cov.factor_rows, kk, &base_cols)
        else {
            return exec_err!(
                "mahalanobis: the SVD of baseline '{}''s covariance did not converge",
                profile.name
            );
        };
        let xs: Vec<ArrayRef> = args.args[..k]
            .iter()
            .map(|a| to_f64(a, n))
            .collect::<Result<_>>()?;
        let xs: Vec<&Float64Array> = xs.iter().map(|a| a.as_primitive::<Float64Type>()).collect();
        let value = |i: usize, r: usize| {
            let x = xs[i];
            (!x.is_null(r) && x.value(r).is_finite()).then(|| x.value(r))
        };
        let mut d = vec![0.0; varying.len()];
        let out: Float64Array = (0..n)
            .map(|r| {
                for (slot, &i) in d.iter_mut().zip(&varying) {
                    *slot = value(i, r)? - cov.mean[map[i]];
                }
                let mut off_constant = false;
                for &i in &constant {
                    off_constant |= value(i, r)? != cov.mean[map[i]];
                }
                Some(if off_constant {
                    f64::INFINITY
                } else {
                    white.sq_norm(&d).sqrt()
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

impl ScalarUDFImpl for OutlierUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match self.kind {
            Kind::ZScore | Kind::OutOfRange => check_value_baseline_feature(self.name(), arg_types),
            Kind::IqrOutlier => {
                let t = arg_types;
                let mut rest = t.get(2..).unwrap_or(&[]);
                if rest.first().is_some_and(|t| t.is_numeric()) {
                    rest = &rest[1..];
                }
                if t.len() < 2
                    || !is_value_type(&t[0])
                    || !is_string_type(&t[1])
                    || rest.len() > 1
                    || !rest.iter().all(is_string_type)
                {
                    return plan_err!(
                        "iqr_outlier expects (x, 'baseline' [, k] [, feature]), got {t:?}"
                    );
                }
                Ok(t.to_vec())
            }
            Kind::Mahalanobis | Kind::IsolationForest => {
                let len = arg_types.len();
                let k = arg_types
                    .iter()
                    .position(|t| is_string_type(t) && !t.is_null())
                    .unwrap_or(len);
                if k == 0
                    || !(len == k + 1 || len == 2 * k + 1)
                    || !arg_types[..k].iter().all(is_value_type)
                    || !arg_types[k..].iter().all(is_string_type)
                {
                    return plan_err!(
                        "{} expects (x1, …, xk, 'baseline') with numeric x, got {:?}",
                        self.name(),
                        arg_types
                    );
                }
                Ok(arg_types.to_vec())
            }
        }
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::IqrOutlier | Kind::OutOfRange => DataType::Boolean,
            _ => DataType::Float64,
        })
    }
    /// Appends the column names of plain column arguments as string literals at the logical
    /// level (`zscore(x, 'b')` → `zscore(x, 'b', 'x')`, `mahalanobis(x, y, 'b')` →
    /// `mahalanobis(x, y, 'b', 'x', 'y')`), so names survive physical optimisation.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let col = |e: &Expr| match e {
            Expr::Column(c) => Some(c.name.clone()),
            _ => None,
        };
        let extra: Option<Vec<String>> = match self.kind {
            Kind::ZScore | Kind::OutOfRange if args.len() == 2 => col(&args[0]).map(|c| vec![c]),
            // `iqr_outlier(x, 'b', k)`: a numeric third argument is k, a string one (literal or
            // the long form's feature column) the feature.
            Kind::IqrOutlier
                if args.len() == 2
                    || (args.len() == 3
                        && info.get_data_type(&args[2]).is_ok_and(|t| t.is_numeric())) =>
            {
                col(&args[0]).map(|c| vec![c])
            }
            k if k.multi() && args.len() >= 2 => {
                let k = args.len() - 1;
                let is_lit_str =
                    matches!(&args[k], Expr::Literal(v, _) if v.try_as_str().is_some());
                let names: Option<Vec<String>> = args[..k].iter().map(col).collect();
                names.filter(|_| is_lit_str)
            }
            _ => None,
        };
        match extra {
            Some(names) => {
                let mut args = args;
                args.extend(names.into_iter().map(lit));
                let udf = Arc::new(ScalarUDF::new_from_impl(self.clone()));
                Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
                    ScalarFunction::new_udf(udf, args),
                )))
            }
            None => Ok(ExprSimplifyResult::Original(args)),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match self.kind {
            Kind::ZScore => self.zscore(args),
            Kind::Mahalanobis => self.mahalanobis(args),
            Kind::IqrOutlier => fences::fences(&self.baselines, args, true),
            Kind::OutOfRange => fences::fences(&self.baselines, args, false),
            Kind::IsolationForest => forest::score(&self.baselines, args),
        }
    }
}

/// The outlier scalar functions bound to `baselines`.
pub fn outlier_functions(baselines: &Arc<BaselineRegistry>) -> Vec<ScalarUDF> {
    Kind::ALL
        .into_iter()
        .map(|kind| {
            ScalarUDF::new_from_impl(OutlierUdf {
                kind,
                signature: Signature::user_defined(Volatility::Immutable),
                baselines: Arc::clone(baselines),
            })
        })
        .collect()
}
