//! Automatic drift, as Evidently's `DataDriftPreset` / `ValueDrift` choose it by default:
//! one call picks the test per column by reference size, column type and number of distinct
//! values, with Evidently's default thresholds (see FUNCTIONS.md, "Automatic drift").
//!
//! * `drift_test(value, 'baseline' [, feature])` → struct {method, statistic, threshold,
//!   drifted}; `drift_score(…)` → the statistic; `drift_detected(…)` → the verdict.
//! * `drift_share(value, 'baseline', feature)` over the long form → share of the window's
//!   features that drifted (Evidently's `share_of_drifted_columns`);
//!   `drifted_features(…)` → their names; `dataset_drift(…[, drift_share])` → share ≥ 0.5
//!   (or the given share).
//!
//! Column type: categorical for string and boolean values, and for numeric values whose
//! baseline column is profiled as categorical too (an integer column with at most 5 distinct
//! values, or declared `categorical`); otherwise numerical.

mod choice;
mod kernel;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

pub use choice::{Method, Verdict, DEFAULT_DRIFT_SHARE, FEW_VALUES, SMALL_REFERENCE};
use kernel::{AutoCatKernel, AutoNumKernel, Output, ShareKernel, ShareOutput};

use super::udaf::{list_field, literal_f64, resolve, StateLayout};
use super::{DriftKind, ListKernel, ListStat};
use crate::args::{categorical_column, is_string_type, is_value_type, registry_bound_identity};
use crate::baseline::BaselineRegistry;
use crate::group::{EitherKernel, Groups, Single};

/// Whether values of type `t` are categories (strings, booleans).
fn categorical_type(t: &DataType) -> bool {
    (is_string_type(t) && !t.is_null()) || *t == DataType::Boolean
}

/// `drift_test` / `drift_score` / `drift_detected` bound to a baseline registry.
#[derive(Debug)]
pub struct AutoDriftUdaf {
    output: Output,
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
}

registry_bound_identity!(AutoDriftUdaf, output);

type Built = EitherKernel<AutoNumKernel, AutoCatKernel>;

impl AutoDriftUdaf {
    fn new(output: Output, baselines: Arc<BaselineRegistry>) -> Self {
        Self {
            output,
            signature: Signature::user_defined(Volatility::Immutable),
            baselines,
        }
    }

    fn build(&self, args: &AccumulatorArgs) -> Result<Built> {
        let a = resolve(self.output.name(), &self.baselines, args.exprs, 1)?;
        if categorical_type(args.expr_fields[0].data_type()) {
            if let Some(f) = &a.feature {
                categorical_column(&a.profile, f)?;
            }
            return Ok(Built::B(AutoCatKernel {
                output: self.output,
                profile: a.profile,
                feature: a.feature,
                feature_arg: a.feature_arg,
            }));
        }
        // The statistic of the inner kernel is not used: it only keeps the values.
        let inner = ListKernel::against(ListStat::Drift(DriftKind::KsPvalue), a)?;
        Ok(Built::A(AutoNumKernel {
            output: self.output,
            inner,
        }))
    }
}

impl AggregateUDFImpl for AutoDriftUdaf {
    fn name(&self) -> &str {
        self.output.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        if !(2..=3).contains(&types.len()) {
            return plan_err!(
                "{name} expects (value, 'baseline' [, feature]), got {} arguments",
                types.len()
            );
        }
        if !is_value_type(&types[0]) && !categorical_type(&types[0]) {
            return plan_err!(
                "{name}: value must be numeric, a string or a boolean, got {}",
                types[0]
            );
        }
        if !types[1..].iter().all(is_string_type) {
            return plan_err!("{name}: baseline name and feature must be strings");
        }
        Ok(types.to_vec())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.data_type())
    }
    fn is_nullable(&self) -> bool {
        true
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.input_fields.first().map(|f| f.data_type().clone());
        let layout = if t.is_some_and(|t| categorical_type(&t)) {
            StateLayout::Categories
        } else {
            StateLayout::Values
        };
        Ok(layout.fields(args.name))
    }
    /// `f(col, 'b')` → `f(col, 'b', 'col')`, so the feature name survives plan rewrites.
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
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

/// `drift_share` / `drifted_features` / `dataset_drift` bound to a baseline registry.
#[derive(Debug)]
pub struct DatasetDriftUdaf {
    output: ShareOutput,
    signature: Signature,
    baselines: Arc<BaselineRegistry>,
}

registry_bound_identity!(DatasetDriftUdaf, output);

impl DatasetDriftUdaf {
    fn new(output: ShareOutput, baselines: Arc<BaselineRegistry>) -> Self {
        Self {
            output,
            signature: Signature::user_defined(Volatility::Immutable),
            baselines,
        }
    }

    fn max_args(&self) -> usize {
        if self.output == ShareOutput::Dataset {
            4
        } else {
            3
        }
    }

    fn build(&self, args: &AccumulatorArgs) -> Result<ShareKernel> {
        let name = self.output.name();
        let exprs = &args.exprs[..args.exprs.len().min(3)];
        let a = resolve(name, &self.baselines, exprs, 1)?;
        let drift_share = match args.exprs.get(3) {
            None => DEFAULT_DRIFT_SHARE,
            Some(e) => match literal_f64(e) {
                Some(s) if s > 0.0 && s <= 1.0 => s,
                _ => {
                    return plan_err!(
                        "{name}: the drift share must be a number literal in (0, 1], got {e}"
                    )
                }
            },
        };
        let lists = ListKernel {
            stat: ListStat::Drift(DriftKind::KsPvalue),
            profile: Some(a.profile),
            feature: None,
            feature_arg: None,
        };
        Ok(ShareKernel {
            output: self.output,
            feature: a.feature,
            feature_arg: a.feature_arg,
            drift_share,
            lists,
        })
    }
}

impl AggregateUDFImpl for DatasetDriftUdaf {
    fn name(&self) -> &str {
        self.output.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        let share = if self.output == ShareOutput::Dataset {
            " [, drift_share]"
        } else {
            ""
        };
        if !(2..=self.max_args()).contains(&types.len()) {
            return plan_err!(
                "{name} expects (value, 'baseline', feature{share}), got {} arguments",
                types.len()
            );
        }
        if !is_value_type(&types[0]) {
            return plan_err!(
                "{name}: value must be numeric (the long form of features(…)), got {}",
                types[0]
            );
        }
        if !types[1..types.len().min(3)].iter().all(is_string_type) {
            return plan_err!("{name}: baseline name and feature must be strings");
        }
        if types.get(3).is_some_and(|t| !t.is_numeric()) {
            return plan_err!("{name}: the drift share must be a number, got {}", types[3]);
        }
        Ok(types.to_vec())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.output.data_type())
    }
    fn is_nullable(&self) -> bool {
        true
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let n = args.name;
        let values = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        Ok(vec![
            list_field(format!("{n}[features]"), DataType::Utf8),
            list_field(format!("{n}[values]"), values),
        ])
    }
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        Some(crate::args::name_feature_argument())
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single::new(self.build(&acc_args)?)))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups::new(self.build(&args)?)))
    }
}

/// The automatic drift aggregates bound to `baselines`: `drift_test`, `drift_score`,
/// `drift_detected`, `drift_share`, `drifted_features`, `dataset_drift`.
pub fn auto_drift_functions(baselines: &Arc<BaselineRegistry>) -> Vec<AggregateUDF> {
    let mut v: Vec<AggregateUDF> = [Output::Test, Output::Score, Output::Detected]
        .into_iter()
        .map(|o| AggregateUDF::new_from_impl(AutoDriftUdaf::new(o, Arc::clone(baselines))))
        .collect();
    v.extend(
        [
            ShareOutput::Share,
            ShareOutput::Features,
            ShareOutput::Dataset,
        ]
        .into_iter()
        .map(|o| AggregateUDF::new_from_impl(DatasetDriftUdaf::new(o, Arc::clone(baselines)))),
    );
    v
}

#[cfg(test)]
mod tests;
