//! Fusing drift aggregates that read the same values.
//!
//! A monitor typically asks several questions of several columns —
//! `wasserstein(x, 'b'), ks_stat(x, 'b'), ks_pvalue(x, 'b'), wasserstein(y, 'b')…` — and
//! each aggregate would keep its own copy of its column's window and sort it.
//! [`FuseDriftAggregates`] is a logical optimizer rule that replaces the numeric drift
//! aggregates sharing a FILTER by one [`FusedDriftUdaf`] (the binned ones — psi, chi2_*, … —
//! are left alone: their state is O(bins) counts, see `drift::bins`): each distinct (value, baseline,
//! feature) becomes one fused column, kept once and sorted once, and statistics that share a
//! test (KS statistic and p-value, W1 and KS in one pass) compute it once. The fused
//! aggregate returns a struct with one field per statistic; a projection puts the fields
//! back under the original names. Columns are sorted and evaluated in parallel. Results are
//! identical: the same kernels run on the same sorted values.
//!
//! ```text
//! Aggregate: wasserstein(x,'b','x'), ks_stat(x,'b','x'), wasserstein(y,'b','y')
//!   ⇒ Projection: get_field(s, '0_0_wasserstein') AS "wasserstein(…)", …
//!       Aggregate: drift_stats[wasserstein,ks_stat;wasserstein](x,'b','x',y,'b','y') AS s
//! ```

mod fused;

use std::sync::Arc;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, ExprSchemable, LogicalPlan, Projection,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::{DriftKind, DriftUdaf};
use crate::args::is_string_type;
use crate::baseline::BaselineRegistry;

pub use fused::FusedDriftUdaf;
use fused::{field_name, ARGS_PER_COLUMN};

/// Optimizer rule fusing drift aggregates over the same values (see the module docs).
/// Registered by [`crate::register_all`]; runs after expression simplification, so every
/// drift aggregate already names its feature.
#[derive(Debug, Default)]
pub struct FuseDriftAggregates;

impl OptimizerRule for FuseDriftAggregates {
    fn name(&self) -> &str {
        "driftwatch_fuse_drift_aggregates"
    }
    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }
    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(agg) = plan else {
            return Ok(Transformed::no(plan));
        };
        match fuse(&agg)? {
            Some(fused) => Ok(Transformed::yes(fused)),
            None => Ok(Transformed::no(LogicalPlan::Aggregate(agg))),
        }
    }
}

/// Aggregates to fuse into one: those with the same FILTER and baseline registry.
struct FuseSet<'a> {
    filter: &'a Option<Box<Expr>>,
    baselines: Arc<BaselineRegistry>,
    columns: Vec<FuseColumn<'a>>,
}

/// One fused column: distinct `(value, 'baseline', feature)` arguments and the aggregates
/// reading them (aggregate index, kind).
struct FuseColumn<'a> {
    args: &'a [Expr],
    members: Vec<(usize, DriftKind)>,
}

impl FuseSet<'_> {
    fn members(&self) -> usize {
        self.columns.iter().map(|c| c.members.len()).sum()
    }

    /// Column and position within it of aggregate `i`.
    fn find(&self, i: usize) -> Option<(usize, usize, DriftKind)> {
        self.columns.iter().enumerate().find_map(|(c, col)| {
            let pos = col.members.iter().position(|(mi, _)| *mi == i)?;
            Some((c, pos, col.members[pos].1))
        })
    }

    fn fused_call(&self) -> Expr {
        let kinds = self
            .columns
            .iter()
            .map(|c| c.members.iter().map(|(_, k)| *k).collect())
            .collect();
        let args = self
            .columns
            .iter()
            .flat_map(|c| c.args.iter().cloned())
            .collect();
        Expr::AggregateFunction(AggregateFunction::new_udf(
            Arc::new(AggregateUDF::new_from_impl(FusedDriftUdaf::new(
                kinds,
                Arc::clone(&self.baselines),
            ))),
            args,
            false,
            self.filter.clone(),
            Vec::new(),
            None,
        ))
    }
}

/// The fusable drift aggregate behind `e` (looking through an alias), with its kind.
fn fusable<'a>(
    e: &'a Expr,
    agg: &Aggregate,
) -> Result<Option<(&'a AggregateFunction, &'a DriftUdaf)>> {
    let inner = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        e => e,
    };
    let Expr::AggregateFunction(call) = inner else {
        return Ok(None);
    };
    let Some(udaf) = call.func.inner().downcast_ref::<DriftUdaf>() else {
        return Ok(None);
    };
    let p = &call.params;
    if p.distinct
        || !p.order_by.is_empty()
        || p.null_treatment.is_some()
        || p.args.len() != ARGS_PER_COLUMN
    {
        return Ok(None);
    }
    // Binned statistics keep counts per baseline bin, not the values: nothing to share.
    if udaf.kind.is_binned() {
        return Ok(None);
    }
    let value_type = p.args[0].get_type(agg.input.schema())?;
    if is_string_type(&value_type) {
        return Ok(None); // categories: a different kernel
    }
    Ok(Some((call, udaf)))
}

/// The fused plan for `agg`, or `None` when no two drift aggregates share their values.
fn fuse(agg: &Aggregate) -> Result<Option<LogicalPlan>> {
    let n_group = agg.group_expr.len();
    if agg.schema.fields().len() != n_group + agg.aggr_expr.len() {
        return Ok(None); // grouping sets add an internal column; leave them alone
    }
    let mut sets: Vec<FuseSet> = Vec::new();
    for (i, e) in agg.aggr_expr.iter().enumerate() {
        let Some((call, udaf)) = fusable(e, agg)? else {
            continue;
        };
        let (args, filter) = (&call.params.args[..], &call.params.filter);
        let set = match sets
            .iter_mut()
            .position(|s| s.filter == filter && Arc::ptr_eq(&s.baselines, &udaf.baselines))
        {
            Some(p) => &mut sets[p],
            None => {
                sets.push(FuseSet {
                    filter,
                    baselines: Arc::clone(&udaf.baselines),
                    columns: Vec::new(),
                });
                sets.last_mut().expect("just pushed")
            }
        };
        match set.columns.iter_mut().find(|c| c.args == args) {
            Some(c) => c.members.push((i, udaf.kind)),
            None => set.columns.push(FuseColumn {
                args,
                members: vec![(i, udaf.kind)],
            }),
        }
    }
    sets.retain(|s| s.members() > 1);
    if sets.is_empty() {
        return Ok(None);
    }

    // Where each original aggregate ends up: its own new position, or a field of a fusion.
    enum Target {
        Kept(usize),
        Field(usize, String),
    }
    let mut new_aggr = Vec::new();
    let mut targets = Vec::with_capacity(agg.aggr_expr.len());
    let mut set_position = vec![None; sets.len()];
    for (i, e) in agg.aggr_expr.iter().enumerate() {
        let member = sets
            .iter()
            .enumerate()
            .find_map(|(si, s)| s.find(i).map(|m| (si, m)));
        match member {
            None => {
                targets.push(Target::Kept(n_group + new_aggr.len()));
                new_aggr.push(e.clone());
            }
            Some((si, (c, pos, kind))) => {
                let position = *set_position[si].get_or_insert_with(|| {
                    new_aggr.push(sets[si].fused_call());
                    n_group + new_aggr.len() - 1
                });
                targets.push(Target::Field(position, field_name(c, pos, kind)));
            }
        }
    }
    let new_agg = Aggregate::try_new(Arc::clone(&agg.input), agg.group_expr.clone(), new_aggr)?;
    let new_schema = Arc::clone(&new_agg.schema);
    let column = |i: usize| Expr::Column(Column::from(new_schema.qualified_field(i)));
    let mut exprs: Vec<Expr> = (0..n_group).map(column).collect();
    for (i, t) in targets.into_iter().enumerate() {
        let e = match t {
            Target::Kept(k) => column(k),
            Target::Field(k, name) => get_field(column(k), name),
        };
        let (qualifier, field) = agg.schema.qualified_field(n_group + i);
        exprs.push(e.alias_qualified(qualifier.cloned(), field.name()));
    }
    let projection = Projection::try_new_with_schema(
        exprs,
        Arc::new(LogicalPlan::Aggregate(new_agg)),
        Arc::clone(&agg.schema),
    )?;
    Ok(Some(LogicalPlan::Projection(projection)))
}
