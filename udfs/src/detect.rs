//! Sequential change detectors as scalar functions over an ordered list, typically
//! `page_hinkley(array_agg(x ORDER BY ts))`: `page_hinkley(list [, min_instances, delta,
//! threshold, alpha])`, `ddm(list [, warm_start, warning_threshold, drift_threshold])`,
//! `cusum(list [, min_instances, k, h])` and `adwin(list [, delta, clock, max_buckets,
//! min_window_length, grace_period])`. Each returns the 1-based list positions where a
//! change was signalled (`List<Int64>`, empty when none; NULL list → NULL); see
//! [`crate::math::detectors`] and [`crate::math::adwin`] for the definitions and defaults.
//! A NULL (or NaN) parameter takes its default.
//!
//! These list forms see one window's rows, so their state restarts in every window (a HOP
//! window overlapping a change reports it in every window that contains it); the streaming
//! forms in [`stream`] keep their state across rows and micro-batches, per key.

pub mod stream;

use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::math::adwin::{adwin, Adwin};
use crate::math::detectors::{cusum, ddm, page_hinkley, Cusum, Ddm, PageHinkley};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    PageHinkley,
    Ddm,
    Cusum,
    Adwin,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PageHinkley => "page_hinkley",
            Kind::Ddm => "ddm",
            Kind::Cusum => "cusum",
            Kind::Adwin => "adwin",
        }
    }
    fn max_params(self) -> usize {
        match self {
            Kind::PageHinkley => 4,
            Kind::Ddm | Kind::Cusum => 3,
            Kind::Adwin => 5,
        }
    }

    /// The detector configuration from the constant parameters (NaN → default).
    fn config(self, params: &[f64]) -> Result<Config> {
        let p = |i: usize, d: f64| params.get(i).copied().filter(|v| !v.is_nan()).unwrap_or(d);
        Ok(match self {
            Kind::PageHinkley => {
                let d = PageHinkley::default();
                Config::PageHinkley(PageHinkley {
                    min_instances: p(0, d.min_instances),
                    delta: p(1, d.delta),
                    threshold: p(2, d.threshold),
                    alpha: p(3, d.alpha),
                })
            }
            Kind::Ddm => {
                let d = Ddm::default();
                Config::Ddm(Ddm {
                    warm_start: p(0, d.warm_start),
                    warning_threshold: p(1, d.warning_threshold),
                    drift_threshold: p(2, d.drift_threshold),
                })
            }
            Kind::Cusum => {
                let d = Cusum::default();
                Config::Cusum(Cusum {
                    min_instances: p(0, d.min_instances),
                    k: p(1, d.k),
                    h: p(2, d.h),
                })
            }
            Kind::Adwin => {
                let d = Adwin::default();
                // River takes these as (32-bit) integers and panics on clock 0 or
                // max_buckets 0.
                let int = |i: usize, name: &str, d: i32, min: i32| -> Result<i32> {
                    let v = p(i, f64::from(d));
                    if v.fract() != 0.0 || v < f64::from(min) || v > f64::from(i32::MAX) {
                        let lo = if min == i32::MIN {
                            String::new()
                        } else {
                            format!(" >= {min}")
                        };
                        return exec_err!(
                            "adwin: {name} must be an integer{lo} below 2^31, got {v}"
                        );
                    }
                    Ok(v as i32)
                };
                Config::Adwin(Adwin {
                    delta: p(0, d.delta),
                    clock: int(1, "clock", d.clock as i32, 1)? as u32,
                    max_buckets: int(2, "max_buckets", d.max_buckets as i32, 1)? as usize,
                    min_window_length: int(3, "min_window_length", d.min_window_length, i32::MIN)?,
                    grace_period: int(4, "grace_period", d.grace_period, i32::MIN)?,
                })
            }
        })
    }
}

/// A detector with its parameters.
enum Config {
    PageHinkley(PageHinkley),
    Ddm(Ddm),
    Cusum(Cusum),
    Adwin(Adwin),
}

/// A change detector over a list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DetectorUdf {
    kind: Kind,
    signature: Signature,
}

fn list_f64() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

fn out_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)))
}

impl ScalarUDFImpl for DetectorUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let is_list = |d: &DataType| match d {
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                f.data_type().is_numeric() || f.data_type().is_null()
            }
            DataType::Null => true,
            _ => false,
        };
        if t.is_empty()
            || t.len() > 1 + self.kind.max_params()
            || !is_list(&t[0])
            || !t[1..].iter().all(|d| d.is_numeric() || d.is_null())
        {
            return plan_err!(
                "{} expects (list of numbers [, up to {} numeric parameters]), got {t:?}",
                self.name(),
                self.kind.max_params()
            );
        }
        let mut out = vec![list_f64()];
        out.extend(t[1..].iter().map(|_| DataType::Float64));
        Ok(out)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(out_type())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let mut params = Vec::new();
        for (i, a) in args.args[1..].iter().enumerate() {
            match a {
                ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Float64)? {
                    ScalarValue::Float64(Some(v)) => params.push(v),
                    _ => params.push(f64::NAN),
                },
                ColumnarValue::Array(_) => {
                    return plan_err!("{}: parameter {} must be a constant", self.name(), i + 2)
                }
            }
        }
        let cfg = self.kind.config(&params)?;
        let lists = cast(&args.args[0].to_array(n)?, &list_f64())?;
        let lists = lists.as_list::<i32>();
        let mut lens = Vec::with_capacity(n);
        let mut flat: Vec<i64> = Vec::new();
        let mut valid = Vec::with_capacity(n);
        for i in 0..lists.len() {
            if lists.is_null(i) {
                valid.push(false);
                lens.push(0);
                continue;
            }
            let v = lists.value(i);
            let v = v.as_primitive::<Float64Type>();
            let it = v.iter();
            let pos = match &cfg {
                Config::PageHinkley(c) => page_hinkley(it, c),
                Config::Ddm(c) => ddm(it, c),
                Config::Cusum(c) => cusum(it, c),
                Config::Adwin(c) => adwin(it, c),
            };
            valid.push(true);
            lens.push(pos.len());
            flat.extend(pos);
        }
        let out = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            OffsetBuffer::from_lengths(lens),
            Arc::new(Int64Array::from(flat)),
            Some(valid.into()),
        );
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The change-detector scalar functions.
pub fn detector_functions() -> Vec<ScalarUDF> {
    [Kind::PageHinkley, Kind::Ddm, Kind::Cusum, Kind::Adwin]
        .into_iter()
        .map(|kind| {
            ScalarUDF::new_from_impl(DetectorUdf {
                kind,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::adwin::{adwin, Adwin};
    use arrow::array::{ArrayRef, Float64Array, RecordBatch};
    use datafusion::prelude::SessionContext;

    fn ctx_with(xs: Vec<Option<f64>>) -> SessionContext {
        let ctx = SessionContext::new();
        for f in detector_functions() {
            ctx.register_udf(f);
        }
        let ts: Vec<i64> = (0..xs.len() as i64).rev().collect();
        let b = RecordBatch::try_from_iter([
            ("x", Arc::new(Float64Array::from(xs)) as ArrayRef),
            ("ts", Arc::new(Int64Array::from(ts)) as ArrayRef),
        ])
        .unwrap();
        ctx.register_batch("t", b).unwrap();
        ctx
    }

    async fn positions(ctx: &SessionContext, sql: &str) -> Result<Option<Vec<i64>>> {
        let b = ctx.sql(sql).await?.collect().await?;
        let c = b[0].column(0);
        if c.is_null(0) {
            return Ok(None);
        }
        let v = c.as_list::<i32>().value(0);
        Ok(Some(
            v.as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec(),
        ))
    }

    #[tokio::test]
    async fn adwin_sql_matches_kernel() {
        // ts runs backwards: ORDER BY ts reverses the stored order
        let xs: Vec<Option<f64>> = (0..3000)
            .map(|i| match i {
                _ if i % 97 == 5 => None,
                _ if i % 89 == 7 => Some(f64::NAN),
                _ => Some(((i * 7919) % 101) as f64 / 101.0 + (i / 1000) as f64 * 0.6),
            })
            .collect();
        let ctx = ctx_with(xs.clone());
        let ordered: Vec<Option<f64>> = xs.iter().rev().copied().collect();
        let got = positions(&ctx, "SELECT adwin(array_agg(x ORDER BY ts)) FROM t").await;
        let want = adwin(ordered.clone(), &Adwin::default());
        assert!(!want.is_empty());
        assert_eq!(got.unwrap(), Some(want));

        let p = Adwin {
            delta: 0.05,
            clock: 4,
            max_buckets: 3,
            min_window_length: 8,
            grace_period: 50,
        };
        let sql = "SELECT adwin(array_agg(x ORDER BY ts), 0.05, 4, 3, 8, 50) FROM t";
        assert_eq!(
            positions(&ctx, sql).await.unwrap(),
            Some(adwin(ordered.clone(), &p))
        );
        // NULL parameters take the defaults
        let sql = "SELECT adwin(array_agg(x ORDER BY ts), NULL, 4) FROM t";
        let p = Adwin {
            clock: 4,
            ..Adwin::default()
        };
        assert_eq!(
            positions(&ctx, sql).await.unwrap(),
            Some(adwin(ordered, &p))
        );
        // NULL list
        let sql = "SELECT adwin(CAST(NULL AS DOUBLE[]))";
        assert_eq!(positions(&ctx, sql).await.unwrap(), None);
    }

    #[tokio::test]
    async fn adwin_parameter_errors() {
        let ctx = ctx_with(vec![Some(1.0); 10]);
        for args in [
            "0.1, 0",
            "0.1, 1.5",
            "0.1, 32, 0",
            "0.1, 32, 5, 2.5",
            "0.1, -1",
        ] {
            let sql = format!("SELECT adwin(array_agg(x), {args}) FROM t");
            let e = positions(&ctx, &sql).await.unwrap_err().to_string();
            assert!(
                e.contains("adwin: ") && e.contains("must be an integer"),
                "{e}"
            );
        }
        let sql = "SELECT adwin(array_agg(x), 0.1, 32, 5, 5, 10, 1) FROM t";
        assert!(positions(&ctx, sql).await.is_err());
        let sql = "SELECT adwin(array_agg(x), 0.1, 32, 5, -3, -2) FROM t";
        assert_eq!(positions(&ctx, sql).await.unwrap(), Some(vec![]));
    }
}
