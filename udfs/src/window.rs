//! Window statistics missing from DataFusion: `missing_count(x)`, `missing_rate(x)`,
//! `quantile(x, q)` (exact, numpy 'linear') and `histogram(x, 'baseline' [, feature])`
//! (counts over the baseline's bins; its state is those counts, O(bins)).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{internal_err, plan_err, Result};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

use crate::args::{is_string_type, is_value_type};
use crate::baseline::BaselineRegistry;
use crate::drift::udaf::{list_field, literal_f64, resolve};
use crate::drift::{BinsKernel, BinsOutput, ListKernel, ListStat};
use crate::group::{passes, Groups, Kernel, Single};

/// Which window statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// Number of NULL or NaN values (`Int64`, 0 for no rows).
    MissingCount,
    /// (NULL + NaN) / rows (`Float64`, NULL for no rows).
    MissingRate,
    /// `np.quantile(finite values, q)`, linear interpolation.
    Quantile,
    /// Counts over the baseline bins (`List<Int64>`).
    Histogram,
}

impl WindowKind {
    /// All kinds.
    pub const ALL: [WindowKind; 4] = [
        WindowKind::MissingCount,
        WindowKind::MissingRate,
        WindowKind::Quantile,
        WindowKind::Histogram,
    ];
    /// SQL name.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::MissingCount => "missing_count",
            WindowKind::MissingRate => "missing_rate",
            WindowKind::Quantile => "quantile",
            WindowKind::Histogram => "histogram",
        }
    }
}

/// A window-statistic aggregate.
#[derive(Debug)]
pub struct WindowUdaf {
    kind: WindowKind,
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
}

crate::args::registry_bound_identity!(WindowUdaf, kind);

/// The kernel a call runs on.
enum Built {
    List(ListKernel),
    Bins(BinsKernel),
    Missing(MissingKernel),
}

impl Built {
    fn accumulator(self) -> Box<dyn Accumulator> {
        match self {
            Built::List(k) => Box::new(Single::new(k)),
            Built::Bins(k) => Box::new(Single::new(k)),
            Built::Missing(k) => Box::new(Single::new(k)),
        }
    }

    fn groups_accumulator(self) -> Box<dyn GroupsAccumulator> {
        match self {
            Built::List(k) => Box::new(Groups::new(k)),
            Built::Bins(k) => Box::new(Groups::new(k)),
            Built::Missing(k) => Box::new(Groups::new(k)),
        }
    }
}

impl WindowUdaf {
    fn build(&self, args: &AccumulatorArgs) -> Result<Built> {
        let exprs = args.exprs;
        Ok(match self.kind {
            WindowKind::MissingCount | WindowKind::MissingRate => {
                Built::Missing(MissingKernel { kind: self.kind })
            }
            WindowKind::Quantile => {
                let q = exprs.get(1).and_then(literal_f64);
                let Some(q) = q.filter(|q| (0.0..=1.0).contains(q)) else {
                    return plan_err!("quantile: q must be a numeric literal in [0, 1]");
                };
                Built::List(ListKernel {
                    stat: ListStat::Quantile(q),
                    profile: None,
                    feature: None,
                    feature_arg: None,
                })
            }
            WindowKind::Histogram => {
                let a = resolve("histogram", &self.baselines, exprs, 1)?;
                Built::Bins(BinsKernel::against(BinsOutput::Histogram, a)?)
            }
        })
    }
}

impl AggregateUDFImpl for WindowUdaf {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, t: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let ok = match self.kind {
            WindowKind::MissingCount | WindowKind::MissingRate => t.len() == 1,
            WindowKind::Quantile => t.len() == 2 && is_value_type(&t[0]) && t[1].is_numeric(),
            WindowKind::Histogram => {
                (2..=3).contains(&t.len())
                    && is_value_type(&t[0])
                    && t[1..].iter().all(is_string_type)
            }
        };
        if !ok {
            return plan_err!("{name}: invalid arguments {t:?} (see FUNCTIONS.md)");
        }
        Ok(t.to_vec())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            WindowKind::MissingCount => DataType::Int64,
            WindowKind::MissingRate | WindowKind::Quantile => DataType::Float64,
            WindowKind::Histogram => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)))
            }
        })
    }
    fn is_nullable(&self) -> bool {
        self.kind != WindowKind::MissingCount
    }
    fn default_value(&self, data_type: &DataType) -> Result<datafusion::common::ScalarValue> {
        match self.kind {
            WindowKind::MissingCount => Ok(datafusion::common::ScalarValue::Int64(Some(0))),
            _ => datafusion::common::ScalarValue::try_from(data_type),
        }
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let n = args.name;
        Ok(match self.kind {
            WindowKind::MissingCount | WindowKind::MissingRate => vec![
                Arc::new(Field::new(format!("{n}[rows]"), DataType::Int64, true)),
                Arc::new(Field::new(format!("{n}[missing]"), DataType::Int64, true)),
            ],
            // Counts per baseline bin (O(bins) whatever the window size, see drift::bins).
            WindowKind::Histogram => vec![
                list_field(format!("{n}[counts]"), DataType::UInt64),
                Arc::new(Field::new(format!("{n}[feature]"), DataType::Utf8, true)),
            ],
            WindowKind::Quantile => vec![
                list_field(format!("{n}[values]"), DataType::Float64),
                Arc::new(Field::new(format!("{n}[feature]"), DataType::Utf8, true)),
            ],
        })
    }
    /// `histogram(col, 'b')` → `histogram(col, 'b', 'col')`.
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        if self.kind != WindowKind::Histogram {
            return None;
        }
        Some(crate::args::name_feature_argument())
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(self.build(&acc_args)?.accumulator())
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.build(&args)?.groups_accumulator())
    }
}

/// Kernel of `missing_count` / `missing_rate`: (rows, missing) per group.
#[derive(Debug)]
struct MissingKernel {
    kind: WindowKind,
}

impl Kernel for MissingKernel {
    type Group = (i64, i64);

    fn update(
        &self,
        groups: &mut [(i64, i64)],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        let a = &args[0];
        let floats = match a.data_type() {
            DataType::Float64 => Some(a.as_primitive::<Float64Type>().values().clone()),
            DataType::Float32 | DataType::Float16 => {
                let c = arrow::compute::cast(a, &DataType::Float64)?;
                Some(c.as_primitive::<Float64Type>().values().clone())
            }
            _ => None,
        };
        for (i, &g) in idx.iter().enumerate() {
            if !passes(filter, i) {
                continue;
            }
            let missing = a.is_null(i) || floats.as_ref().is_some_and(|f| f[i].is_nan());
            groups[g].0 += 1;
            groups[g].1 += missing as i64;
        }
        Ok(0)
    }

    fn merge(
        &self,
        groups: &mut [(i64, i64)],
        states: &[ArrayRef],
        idx: &[usize],
    ) -> Result<isize> {
        if states.len() != 2 {
            return internal_err!("missing state must have 2 columns");
        }
        let rows = states[0].as_primitive::<Int64Type>();
        let miss = states[1].as_primitive::<Int64Type>();
        for (i, &g) in idx.iter().enumerate() {
            if rows.is_valid(i) {
                groups[g].0 += rows.value(i);
                groups[g].1 += miss.value(i);
            }
        }
        Ok(0)
    }

    fn state(&self, groups: &mut [(i64, i64)]) -> Result<Vec<ArrayRef>> {
        let rows: Int64Array = groups.iter().map(|g| Some(g.0)).collect();
        let miss: Int64Array = groups.iter().map(|g| Some(g.1)).collect();
        Ok(vec![Arc::new(rows), Arc::new(miss)])
    }

    fn evaluate(&self, groups: &mut [(i64, i64)]) -> Result<ArrayRef> {
        Ok(if self.kind == WindowKind::MissingCount {
            Arc::new(groups.iter().map(|g| Some(g.1)).collect::<Int64Array>())
        } else {
            Arc::new(
                groups
                    .iter()
                    .map(|g| (g.0 > 0).then(|| g.1 as f64 / g.0 as f64))
                    .collect::<Float64Array>(),
            )
        })
    }

    fn group_size(&self, _g: &(i64, i64)) -> usize {
        0
    }
}

/// The window-statistic aggregates.
pub fn window_functions(baselines: &Arc<BaselineRegistry>) -> Vec<AggregateUDF> {
    WindowKind::ALL
        .iter()
        .map(|k| {
            AggregateUDF::new_from_impl(WindowUdaf {
                kind: *k,
                signature: Signature::user_defined(Volatility::Immutable),
                baselines: Arc::clone(baselines),
            })
        })
        .collect()
}
