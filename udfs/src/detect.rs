//! Sequential change detectors as scalar functions over an ordered list, typically
//! `page_hinkley(array_agg(x ORDER BY ts))`: `page_hinkley(list [, min_instances, delta,
//! threshold, alpha])`, `ddm(list [, warm_start, warning_threshold, drift_threshold])` and
//! `cusum(list [, min_instances, k, h])`. Each returns the 1-based list positions where a
//! change was signalled (`List<Int64>`, empty when none; NULL list → NULL); see
//! [`crate::math::detectors`] for the definitions and defaults.

use std::hash::Hash;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, ListArray};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::math::detectors::{cusum, ddm, page_hinkley, Cusum, Ddm, PageHinkley};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    PageHinkley,
    Ddm,
    Cusum,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::PageHinkley => "page_hinkley",
            Kind::Ddm => "ddm",
            Kind::Cusum => "cusum",
        }
    }
    fn max_params(self) -> usize {
        match self {
            Kind::PageHinkley => 4,
            Kind::Ddm | Kind::Cusum => 3,
        }
    }
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
        let p = |i: usize, d: f64| params.get(i).copied().filter(|v| !v.is_nan()).unwrap_or(d);
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
            let pos = match self.kind {
                Kind::PageHinkley => {
                    let d = PageHinkley::default();
                    let cfg = PageHinkley {
                        min_instances: p(0, d.min_instances),
                        delta: p(1, d.delta),
                        threshold: p(2, d.threshold),
                        alpha: p(3, d.alpha),
                    };
                    page_hinkley(it, &cfg)
                }
                Kind::Ddm => {
                    let d = Ddm::default();
                    let cfg = Ddm {
                        warm_start: p(0, d.warm_start),
                        warning_threshold: p(1, d.warning_threshold),
                        drift_threshold: p(2, d.drift_threshold),
                    };
                    ddm(it, &cfg)
                }
                Kind::Cusum => {
                    let d = Cusum::default();
                    let cfg = Cusum {
                        min_instances: p(0, d.min_instances),
                        k: p(1, d.k),
                        h: p(2, d.h),
                    };
                    cusum(it, &cfg)
                }
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
    [Kind::PageHinkley, Kind::Ddm, Kind::Cusum]
        .into_iter()
        .map(|kind| {
            ScalarUDF::new_from_impl(DetectorUdf {
                kind,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}
