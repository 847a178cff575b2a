//! Driftwatch DataFusion functions: drift aggregates and per-row outlier scores evaluated
//! against named baselines (profiles of reference data).
//!
//! Statistics follow DESIGN.md §6 and are tested against scipy / numpy
//! (`tests/python/test_udfs_conformance.py`).

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

mod args;
pub mod baseline;
pub mod detect;
pub mod drift;
mod group;
pub mod math;
mod mem;
pub mod outlier;
pub mod stats;
pub mod window;

pub use baseline::{
    BaselineError, BaselineProfile, BaselineRegistry, CategoricalProfile, ColumnProfile,
    ForestProfile, NumericProfile, ProfileOptions, RowSample, MAX_INFERRED_CATEGORIES,
};
pub use math::describe::BinRule;

/// Every Driftwatch aggregate UDF, bound to the registry (functions look baselines up by name).
pub fn aggregate_functions(baselines: &Arc<BaselineRegistry>) -> Vec<AggregateUDF> {
    let mut v = drift::drift_functions(baselines);
    v.push(drift::mmd::mmd_pvalue_udaf(baselines));
    v.extend(drift::auto::auto_drift_functions(baselines));
    v.extend(window::window_functions(baselines));
    v.extend(stats::stats_functions());
    v
}

/// Every Driftwatch scalar UDF.
pub fn scalar_functions(baselines: &Arc<BaselineRegistry>) -> Vec<ScalarUDF> {
    let mut v = outlier::outlier_functions(baselines);
    v.extend(detect::detector_functions());
    v
}

/// Registers both lists on a SessionContext, and the optimizer rule that lets drift
/// aggregates over the same values share one sorted copy ([`drift::FuseDriftAggregates`]).
pub fn register_all(ctx: &SessionContext, baselines: &Arc<BaselineRegistry>) {
    ctx.add_optimizer_rule(Arc::new(drift::FuseDriftAggregates));
    for f in aggregate_functions(baselines) {
        ctx.register_udaf(f);
    }
    for f in scalar_functions(baselines) {
        ctx.register_udf(f);
    }
}
