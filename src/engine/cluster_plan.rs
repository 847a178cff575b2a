//! Splits a compiled windowed monitor into the two plans of a cluster
//! ([`crate::cluster`]): stage 1 ends at the window operator in partial mode; stage 2 is the
//! whole plan with the window operator merging partials from another input.
//!
//! ```text
//! one instance:  input → filter/projection → WindowAggregateExec(final) → projection/HAVING
//! stage 1:       input → filter/projection → WindowAggregateExec(partial)          (per partition)
//! stage 2:            partials → WindowAggregateExec(merge_partials) → projection/HAVING
//! ```

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{plan_err, Result};
use datafusion::physical_plan::ExecutionPlan;

use super::window_agg::{WindowAggregateExec, WindowMode};

/// The window operator of a monitor plan (a windowed monitor has exactly one).
pub fn window_operator(plan: &Arc<dyn ExecutionPlan>) -> Result<&WindowAggregateExec> {
    let mut found: Vec<&WindowAggregateExec> = Vec::new();
    collect(plan.as_ref(), &mut found);
    match found.as_slice() {
        [one] => Ok(one),
        [] => plan_err!("the monitor has no window: row-level monitors run in one stage"),
        _ => plan_err!(
            "the monitor has {} window operators, expected one",
            found.len()
        ),
    }
}

fn collect<'a>(plan: &'a dyn ExecutionPlan, out: &mut Vec<&'a WindowAggregateExec>) {
    if let Some(w) = plan.downcast_ref::<WindowAggregateExec>() {
        out.push(w);
    }
    for child in plan.children() {
        collect(child.as_ref(), out);
    }
}

/// Stage 1: the window operator (and everything below it) in partial mode; its output rows
/// are partial pane states ([`super::window_agg::partial_schema`]).
pub fn stage1_plan(plan: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let window = window_operator(plan)?;
    let partial = window
        .clone_with_input(Arc::clone(window.input()))?
        .with_mode(WindowMode::Partial)?;
    Ok(Arc::new(partial))
}

/// Schema stage 2's input must have ([`super::window_agg::merge_input_schema`]).
pub fn stage2_input_schema(plan: &Arc<dyn ExecutionPlan>) -> Result<SchemaRef> {
    window_operator(plan)?.merge_input_schema()
}

/// Stage 2: `plan` with its window operator merging the partials `input` yields (rows of
/// [`stage2_input_schema`]) instead of aggregating rows.
pub fn stage2_plan(
    plan: Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let expected = stage2_input_schema(&plan)?;
    if input.schema().fields() != expected.fields() {
        return plan_err!(
            "stage-2 input has schema {:?}, the monitor needs {:?}",
            input.schema(),
            expected
        );
    }
    let replaced = plan.transform_down(|node| {
        let Some(window) = node.downcast_ref::<WindowAggregateExec>() else {
            return Ok(Transformed::no(node));
        };
        let merged = window
            .clone_with_input(Arc::clone(&input))?
            .with_mode(WindowMode::MergePartials)?;
        Ok(Transformed::new(
            Arc::new(merged) as Arc<dyn ExecutionPlan>,
            true,
            TreeNodeRecursion::Jump,
        ))
    })?;
    Ok(replaced.data)
}
