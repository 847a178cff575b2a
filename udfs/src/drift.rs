//! Drift aggregates: `wasserstein`, `wasserstein_norm`, `ks_stat`, `ks_pvalue`, `psi`,
//! `js_distance`, each called as `f(value, 'baseline' [, feature])`.
//!
//! * The baseline column is the third argument (string literal, or a string column in the
//!   long (feature, value) form — taken from the first non-NULL row seen), else the name of
//!   the first argument when it is a plain column.
//! * NULL and non-finite (NaN, ±inf) values are ignored; no remaining value → NULL.
//! * State is exact: the list of values (`List<Float64>`) plus the feature name (`Utf8`), so
//!   partial states from panes / partitions merge to exactly the single-pass result.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::{lit, Expr};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal, TryCastExpr};
use datafusion::physical_expr::PhysicalExpr;

use crate::args::{check_value_baseline_feature, lookup, no_feature_error, numeric_column};
use crate::baseline::{BaselineProfile, BaselineRegistry};
use crate::math::{binned, ks, wasserstein};

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
}

impl DriftKind {
    /// All kinds.
    pub const ALL: [DriftKind; 6] = [
        DriftKind::Wasserstein,
        DriftKind::WassersteinNorm,
        DriftKind::KsStat,
        DriftKind::KsPvalue,
        DriftKind::Psi,
        DriftKind::JsDistance,
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
        }
    }

    /// Compute the statistic of `current` (sorted, finite, non-empty) against column `col`.
    pub fn compute(self, current: &[f64], col: &crate::baseline::NumericProfile) -> Option<f64> {
        let reference = &col.sample;
        if current.is_empty() || reference.is_empty() {
            return None;
        }
        let v = match self {
            DriftKind::Wasserstein => wasserstein::wasserstein_sorted(current, reference),
            DriftKind::WassersteinNorm => {
                wasserstein::wasserstein_sorted(current, reference) / col.std_pop.max(0.001)
            }
            DriftKind::KsStat => ks::ks_2samp_sorted(current, reference).statistic,
            DriftKind::KsPvalue => ks::ks_2samp_sorted(current, reference).pvalue,
            DriftKind::Psi | DriftKind::JsDistance => {
                if col.bin_edges.len() < 2 {
                    return None;
                }
                let cur = binned::histogram(&col.bin_edges, current);
                if self == DriftKind::Psi {
                    binned::psi(&cur, &col.bin_counts)
                } else {
                    binned::js_distance(&cur, &col.bin_counts)
                }
            }
        };
        v.is_finite().then_some(v)
    }
}

/// A drift aggregate bound to a baseline registry.
#[derive(Debug)]
pub struct DriftUdaf {
    kind: DriftKind,
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
}

impl DriftUdaf {
    /// New aggregate of `kind` looking baselines up in `baselines`.
    pub fn new(kind: DriftKind, baselines: Arc<BaselineRegistry>) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
            baselines,
        }
    }
}

impl PartialEq for DriftUdaf {
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind && Arc::ptr_eq(&self.baselines, &o.baselines)
    }
}
impl Eq for DriftUdaf {}
impl Hash for DriftUdaf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        (Arc::as_ptr(&self.baselines) as usize).hash(state);
    }
}

/// Name of a plain column reference (looking through casts).
pub(crate) fn column_name(e: &Arc<dyn PhysicalExpr>) -> Option<String> {
    if let Some(c) = e.downcast_ref::<Column>() {
        return Some(c.name().to_string());
    }
    if let Some(c) = e.downcast_ref::<CastExpr>() {
        return column_name(c.expr());
    }
    if let Some(c) = e.downcast_ref::<TryCastExpr>() {
        return column_name(c.expr());
    }
    None
}

/// String value of a literal expression (`Some(None)` for a NULL literal).
pub(crate) fn literal_str(e: &Arc<dyn PhysicalExpr>) -> Option<Option<String>> {
    let l = e.downcast_ref::<Literal>()?;
    l.value().try_as_str().map(|s| s.map(str::to_string))
}

impl AggregateUDFImpl for DriftUdaf {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_value_baseline_feature(self.name(), arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn is_nullable(&self) -> bool {
        true
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[values]", args.name),
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[feature]", args.name),
                DataType::Utf8,
                true,
            )),
        ])
    }
    /// Rewrites `f(col, 'b')` to `f(col, 'b', 'col')` at the logical level, so the feature
    /// name survives physical optimisations that replace columns (e.g. by constants).
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        Some(Box::new(|mut af: AggregateFunction, _info| {
            if af.params.args.len() == 2 {
                if let Expr::Column(c) = &af.params.args[0] {
                    let name = c.name.clone();
                    af.params.args.push(lit(name));
                }
            }
            Ok(Expr::AggregateFunction(af))
        }))
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let name = self.name();
        let exprs = acc_args.exprs;
        if !(2..=3).contains(&exprs.len()) {
            return internal_err!("{name}: expected 2 or 3 arguments");
        }
        let Some(Some(baseline)) = literal_str(&exprs[1]) else {
            return datafusion::common::plan_err!(
                "{name}: the baseline name (second argument) must be a string literal"
            );
        };
        let profile = lookup(&self.baselines, &baseline)?;
        let (feature, from_data) = match exprs.get(2) {
            Some(e) => match literal_str(e) {
                Some(Some(f)) => (Some(f), false),
                Some(None) => {
                    return datafusion::common::plan_err!("{name}: feature must not be NULL")
                }
                None => (None, true),
            },
            None => match column_name(&exprs[0]) {
                Some(c) => (Some(c), false),
                None => return Err(no_feature_error(name, &exprs[0].to_string())),
            },
        };
        if let Some(f) = &feature {
            numeric_column(&profile, f)?;
        }
        Ok(Box::new(DriftAccumulator {
            kind: self.kind,
            profile,
            feature,
            feature_from_data: from_data,
            values: Vec::new(),
        }))
    }
}

/// Accumulator shared by all drift aggregates.
#[derive(Debug)]
pub struct DriftAccumulator {
    kind: DriftKind,
    profile: Arc<BaselineProfile>,
    feature: Option<String>,
    feature_from_data: bool,
    values: Vec<f64>,
}

impl DriftAccumulator {
    fn push_values(&mut self, arr: &ArrayRef) -> Result<()> {
        let arr = cast(arr, &DataType::Float64)?;
        let arr = arr.as_primitive::<Float64Type>();
        if arr.null_count() == 0 {
            self.values
                .extend(arr.values().iter().copied().filter(|v| v.is_finite()));
        } else {
            self.values
                .extend(arr.iter().flatten().filter(|v| v.is_finite()));
        }
        Ok(())
    }

    fn take_feature(&mut self, arr: &ArrayRef) -> Result<()> {
        if self.feature.is_some() {
            return Ok(());
        }
        let arr = cast(arr, &DataType::Utf8)?;
        if let Some(f) = arr.as_string::<i32>().iter().flatten().next() {
            numeric_column(&self.profile, f)?;
            self.feature = Some(f.to_string());
        }
        Ok(())
    }
}

impl Accumulator for DriftAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push_values(&values[0])?;
        if self.feature_from_data {
            if let Some(f) = values.get(2) {
                self.take_feature(f)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let Some(feature) = &self.feature else {
            return Ok(ScalarValue::Float64(None));
        };
        let col = numeric_column(&self.profile, feature)?;
        self.values.sort_unstable_by(f64::total_cmp);
        Ok(ScalarValue::Float64(self.kind.compute(&self.values, col)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.values.capacity() * 8
            + self.feature.as_ref().map_or(0, |f| f.capacity())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let arr: ArrayRef = Arc::new(Float64Array::from(std::mem::take(&mut self.values)));
        let list = SingleRowListArrayBuilder::new(Arc::clone(&arr))
            .with_nullable(true)
            .build_list_array();
        // keep our values (state() may be followed by more updates in some engines)
        self.values = arr.as_primitive::<Float64Type>().values().to_vec();
        Ok(vec![
            ScalarValue::List(Arc::new(list)),
            ScalarValue::Utf8(self.feature.clone()),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if states.len() != 2 {
            return internal_err!("drift state must have 2 columns, got {}", states.len());
        }
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                self.push_values(&lists.value(i))?;
            }
        }
        self.take_feature(&states[1])?;
        Ok(())
    }
}

/// All drift aggregates bound to `baselines`.
pub fn drift_functions(baselines: &Arc<BaselineRegistry>) -> Vec<AggregateUDF> {
    DriftKind::ALL
        .iter()
        .map(|k| AggregateUDF::new_from_impl(DriftUdaf::new(*k, Arc::clone(baselines))))
        .collect()
}
