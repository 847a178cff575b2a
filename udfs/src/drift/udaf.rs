//! The drift aggregate UDF: argument resolution, state layout, and the choice between the
//! numeric kernels — [`ListKernel`] (the values, for the sorted statistics) and
//! [`BinsKernel`] (counts per baseline bin, for the binned ones) — and the categorical
//! [`CatKernel`].

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{internal_err, plan_err, Result};
use datafusion::logical_expr::expr::Cast;
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal, TryCastExpr};
use datafusion::physical_expr::PhysicalExpr;

use super::{BinsKernel, BinsOutput, CatKernel, DriftKind, ListKernel, ListStat};
use crate::args::{categorical_column, is_string_type, is_value_type, lookup, no_feature_error};
use crate::baseline::{BaselineProfile, BaselineRegistry};
use crate::group::{Groups, Single};

/// A drift aggregate bound to a baseline registry.
#[derive(Debug)]
pub struct DriftUdaf {
    pub(crate) kind: DriftKind,
    signature: Signature,
    pub(crate) baselines: Arc<BaselineRegistry>,
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

crate::args::registry_bound_identity!(DriftUdaf, kind);

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

/// Float value of a numeric literal expression.
pub(crate) fn literal_f64(e: &Arc<dyn PhysicalExpr>) -> Option<f64> {
    let l = e.downcast_ref::<Literal>()?;
    let v = l.value().cast_to(&DataType::Float64).ok()?;
    match v {
        datafusion::common::ScalarValue::Float64(Some(f)) => Some(f),
        _ => None,
    }
}

/// Resolved `(value, 'baseline' [, feature])` arguments.
pub(crate) struct BaselineArgs {
    pub profile: Arc<BaselineProfile>,
    pub feature: Option<String>,
    pub feature_arg: Option<usize>,
}

/// Resolves the baseline (argument `b`) and the feature (argument `b + 1`, else the name of
/// argument 0) of an aggregate call.
pub(crate) fn resolve(
    name: &str,
    reg: &BaselineRegistry,
    exprs: &[Arc<dyn PhysicalExpr>],
    b: usize,
) -> Result<BaselineArgs> {
    if exprs.len() < b + 1 || exprs.len() > b + 2 {
        return internal_err!("{name}: expected {} or {} arguments", b + 1, b + 2);
    }
    let Some(Some(baseline)) = literal_str(&exprs[b]) else {
        return plan_err!("{name}: the baseline name must be a string literal");
    };
    let profile = lookup(reg, &baseline)?;
    let (feature, feature_arg) = match exprs.get(b + 1) {
        Some(e) => match literal_str(e) {
            Some(Some(f)) => (Some(f), None),
            Some(None) => return plan_err!("{name}: feature must not be NULL"),
            None => (None, Some(b + 1)),
        },
        None => match column_name(&exprs[0]) {
            Some(c) => (Some(c), None),
            None => return Err(no_feature_error(name, &exprs[0].to_string())),
        },
    };
    Ok(BaselineArgs {
        profile,
        feature,
        feature_arg,
    })
}

/// Whether `f(value, 'baseline', 'feature')` has an integer or boolean value whose baseline
/// column has a categorical profile (unknown baselines are left for planning to report).
fn categorical_value(args: &[Expr], info: &SimplifyContext, baselines: &BaselineRegistry) -> bool {
    let literal = |e: Option<&Expr>| match e {
        Some(Expr::Literal(v, _)) => v.try_as_str().flatten().map(str::to_string),
        _ => None,
    };
    let (Some(baseline), Some(feature)) = (literal(args.get(1)), literal(args.get(2))) else {
        return false;
    };
    let discrete = args
        .first()
        .and_then(|v| info.get_data_type(v).ok())
        .is_some_and(|t| t.is_integer() || t == DataType::Boolean);
    discrete
        && baselines
            .resolve(&baseline)
            .is_ok_and(|p| p.categorical(&feature).is_some())
}
/// `List<item>` state field.
pub(crate) fn list_field(name: String, item: DataType) -> FieldRef {
    Arc::new(Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(item, true))),
        true,
    ))
}

/// The partial-state layouts of the per-column drift aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateLayout {
    /// The window's finite values (`List<Float64>`) and the feature.
    Values,
    /// Counts per baseline bin (`List<UInt64>`) and the feature.
    BinCounts,
    /// Categories (`List<Utf8>`), their counts (`List<UInt64>`) and the feature.
    Categories,
}

impl StateLayout {
    /// State fields of aggregate `n` in this layout.
    pub(crate) fn fields(self, n: &str) -> Vec<FieldRef> {
        let feature = Arc::new(Field::new(format!("{n}[feature]"), DataType::Utf8, true));
        match self {
            StateLayout::Values => vec![
                list_field(format!("{n}[values]"), DataType::Float64),
                feature,
            ],
            StateLayout::BinCounts => vec![
                list_field(format!("{n}[counts]"), DataType::UInt64),
                feature,
            ],
            StateLayout::Categories => vec![
                list_field(format!("{n}[categories]"), DataType::Utf8),
                list_field(format!("{n}[counts]"), DataType::UInt64),
                feature,
            ],
        }
    }
}

/// The kernel an aggregate call runs on.
enum Built {
    List(ListKernel),
    Bins(BinsKernel),
    Cat(CatKernel),
}

impl Built {
    fn accumulator(self) -> Box<dyn Accumulator> {
        match self {
            Built::List(k) => Box::new(Single::new(k)),
            Built::Bins(k) => Box::new(Single::new(k)),
            Built::Cat(k) => Box::new(Single::new(k)),
        }
    }

    fn groups_accumulator(self) -> Box<dyn GroupsAccumulator> {
        match self {
            Built::List(k) => Box::new(Groups::new(k)),
            Built::Bins(k) => Box::new(Groups::new(k)),
            Built::Cat(k) => Box::new(Groups::new(k)),
        }
    }
}

impl DriftUdaf {
    fn build(&self, args: &AccumulatorArgs) -> Result<Built> {
        let name = self.kind.name();
        let a = resolve(name, &self.baselines, args.exprs, 1)?;
        let categorical = is_string_type(args.expr_fields[0].data_type())
            && !args.expr_fields[0].data_type().is_null();
        if categorical {
            if let Some(f) = &a.feature {
                categorical_column(&a.profile, f)?;
            }
            return Ok(Built::Cat(CatKernel {
                kind: self.kind,
                profile: a.profile,
                feature: a.feature,
                feature_arg: a.feature_arg,
            }));
        }
        if self.kind.is_binned() {
            return Ok(Built::Bins(BinsKernel::against(
                BinsOutput::Drift(self.kind),
                a,
            )?));
        }
        Ok(Built::List(ListKernel::against(
            ListStat::Drift(self.kind),
            a,
        )?))
    }
}

impl AggregateUDFImpl for DriftUdaf {
    fn name(&self) -> &str {
        self.kind.name()
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
        // Booleans are categories (compared as 'true' / 'false', see `simplify`).
        let string_ok =
            self.kind.is_binned() && (is_string_type(&types[0]) || types[0] == DataType::Boolean);
        if !is_value_type(&types[0]) && !string_ok {
            return plan_err!(
                "{name}: value must be numeric{}, got {}",
                if self.kind.is_binned() {
                    ", a string or a boolean"
                } else {
                    ""
                },
                types[0]
            );
        }
        if !types[1..].iter().all(is_string_type) {
            return plan_err!("{name}: baseline name and feature must be strings");
        }
        Ok(types.to_vec())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn is_nullable(&self) -> bool {
        true
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let t = args.input_fields.first().map(|f| f.data_type().clone());
        let layout = if t.is_some_and(|t| is_string_type(&t) && !t.is_null()) {
            StateLayout::Categories
        } else if self.kind.is_binned() {
            StateLayout::BinCounts
        } else {
            StateLayout::Values
        };
        Ok(layout.fields(args.name))
    }
    /// Rewrites `f(col, 'b')` to `f(col, 'b', 'col')` at the logical level, so the feature
    /// name survives physical optimisations that replace columns (e.g. by constants). A
    /// binned statistic of an integer or boolean value whose baseline column is categorical
    /// (see [`BaselineProfile::categorical`]) compares categories: the value becomes its
    /// text, `f(CAST(x AS VARCHAR), 'b', 'x')`.
    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        let named = crate::args::name_feature_argument();
        let baselines = Arc::clone(&self.baselines);
        let binned = self.kind.is_binned();
        Some(Box::new(move |af, info| {
            let expr = named(af, info)?;
            match expr {
                Expr::AggregateFunction(mut af) if binned => {
                    if categorical_value(&af.params.args, info, &baselines) {
                        let value = af.params.args[0].clone();
                        af.params.args[0] = Expr::Cast(Cast::new(Box::new(value), DataType::Utf8));
                    }
                    Ok(Expr::AggregateFunction(af))
                }
                other => Ok(other),
            }
        }))
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

/// All drift aggregates bound to `baselines` (including `mmd`).
pub fn drift_functions(baselines: &Arc<BaselineRegistry>) -> Vec<AggregateUDF> {
    let mut v: Vec<AggregateUDF> = DriftKind::ALL
        .iter()
        .map(|k| AggregateUDF::new_from_impl(DriftUdaf::new(*k, Arc::clone(baselines))))
        .collect();
    v.push(AggregateUDF::new_from_impl(super::mmd::MmdUdaf::new(
        Arc::clone(baselines),
    )));
    v
}
