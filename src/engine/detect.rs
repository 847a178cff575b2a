//! Checkpointing of streaming change detectors (`page_hinkley_stream(x, ts, key)` and the
//! others, see `driftwatch_udfs::detect::stream`) in row-level monitors.
//!
//! The detectors keep their state in the plan's [`StreamDetectors`] store. This operator
//! sits at the top of such a plan and passes every batch through unchanged; it plays the
//! window operator's part in the barrier protocol ([`crate::engine::progress`]): when its
//! input reports `Pending` while the input is parked at a barrier, every row before the
//! barrier has been evaluated (the plan is polled synchronously and holds no rows back), so
//! it snapshots the store and marks the barrier drained. It restores the store from the
//! checkpointed state when it starts, and hands the state over for the final checkpoint
//! when bounded input ends.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Query;
use driftwatch_udfs::detect::stream::{
    stream_detector_functions, StreamDetectors, STREAM_FUNCTIONS,
};
use futures::{Stream, StreamExt};

use super::progress::StreamProgress;
use super::snapshot::WindowSnapshot;

/// Whether the monitor's query may call a streaming detector (any mention of a name: a
/// superset, so a plan that calls one always gets its state operator).
pub fn mentions_stream_detector(query: &Query) -> bool {
    let text = query.to_string().to_ascii_lowercase();
    STREAM_FUNCTIONS.iter().any(|f| text.contains(f))
}

/// Registers the streaming detectors on `ctx`, bound to a new store, and returns it. When
/// the query `uses` them, DataFusion's leaf-expression pushdown is switched off: it copies
/// `change['row']` into the projection that computes `change`, which would evaluate a
/// (volatile) detector twice per row.
pub fn register_stream_detectors(ctx: &SessionContext, uses: bool) -> Arc<StreamDetectors> {
    if uses {
        ctx.state_ref()
            .write()
            .config_mut()
            .options_mut()
            .optimizer
            .enable_leaf_expression_pushdown = false;
    }
    let store = Arc::new(StreamDetectors::default());
    for f in stream_detector_functions(&store) {
        ctx.register_udf(f);
    }
    store
}

/// Checks where streaming detectors are called: only in row-level monitors, and each
/// function at most once (two calls of one function would share one state per key).
pub fn check_stream_detectors(plan: &LogicalPlan, windowed: bool) -> Result<(), String> {
    use datafusion::common::tree_node::TreeNode;
    let mut calls = [0usize; STREAM_FUNCTIONS.len()];
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if let Some(i) = STREAM_FUNCTIONS.iter().position(|n| *n == f.func.name()) {
                        calls[i] += 1;
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    for (name, n) in STREAM_FUNCTIONS.iter().zip(calls) {
        if n > 0 && windowed {
            return Err(format!(
                "{name} keeps its state across rows and runs in a row-level monitor (no \
                 TUMBLE / HOP / SESSION); in a windowed monitor use the per-window form \
                 {}(array_agg(x ORDER BY ts))",
                name.trim_end_matches("_stream")
            ));
        }
        if n > 1 {
            return Err(format!(
                "{name} is called {n} times; a monitor may call each streaming detector once \
                 (select its result in a subquery and refer to it by name, e.g. \
                 SELECT * FROM (SELECT ts, {name}(x, ts) AS change FROM src) WHERE change IS NOT NULL)"
            ));
        }
    }
    Ok(())
}

/// Checks that the physical plan evaluates each streaming detector once per row: an
/// optimizer rule that copied a call (as DataFusion's leaf-expression pushdown does for
/// `change['row']`, switched off for these plans) would feed every row twice.
pub fn check_single_evaluation(plan: &Arc<dyn ExecutionPlan>) -> Result<(), String> {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::physical_expr::ScalarFunctionExpr;
    let mut calls = [0usize; STREAM_FUNCTIONS.len()];
    let _ = plan.apply(|node| {
        node.apply_expressions(&mut |e: &Arc<dyn PhysicalExpr>| {
            e.apply(|e| {
                if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
                    if let Some(i) = STREAM_FUNCTIONS.iter().position(|n| *n == f.fun().name()) {
                        calls[i] += 1;
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(TreeNodeRecursion::Continue)
    });
    match STREAM_FUNCTIONS.iter().zip(calls).find(|(_, n)| *n > 1) {
        Some((name, n)) => Err(format!(
            "{name} would be evaluated {n} times per row in this plan, feeding its detector \
             every row {n} times; select the detector's result in a subquery without \
             accessing its fields in the same query level, e.g. \
             SELECT * FROM (SELECT ts, {name}(x, ts) AS change FROM src) WHERE change IS NOT NULL"
        )),
        None => Ok(()),
    }
}

/// Pass-through operator that checkpoints a row-level plan's streaming detectors.
#[derive(Debug)]
pub struct DetectorStateExec {
    input: Arc<dyn ExecutionPlan>,
    store: Arc<StreamDetectors>,
    progress: Arc<StreamProgress>,
}

impl DetectorStateExec {
    /// Wraps `input`, whose expressions update `store`.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        store: Arc<StreamDetectors>,
        progress: Arc<StreamProgress>,
    ) -> Self {
        Self {
            input,
            store,
            progress,
        }
    }
}

impl DisplayAs for DetectorStateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DetectorStateExec")
    }
}

impl ExecutionPlan for DetectorStateExec {
    fn name(&self) -> &str {
        "DetectorStateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("DetectorStateExec has one child");
        }
        Ok(Arc::new(Self::new(
            children.remove(0),
            Arc::clone(&self.store),
            Arc::clone(&self.progress),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if let Some(snapshot) = self.progress.take_restore() {
            if let Some(state) = &snapshot.state {
                self.store.restore(state)?;
                tracing::info!(
                    keys = self.store.keys(),
                    "streaming detector state restored"
                );
            }
        }
        Ok(Box::pin(DetectorStateStream {
            input: self.input.execute(partition, context)?,
            store: Arc::clone(&self.store),
            progress: Arc::clone(&self.progress),
            schema: self.input.schema(),
        }))
    }
}

struct DetectorStateStream {
    input: SendableRecordBatchStream,
    store: Arc<StreamDetectors>,
    progress: Arc<StreamProgress>,
    schema: SchemaRef,
}

impl DetectorStateStream {
    fn snapshot(&self) -> Result<WindowSnapshot> {
        Ok(WindowSnapshot {
            emitted_until: i64::MIN,
            state: self.store.snapshot()?,
        })
    }
}

impl Stream for DetectorStateStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.input.poll_next_unpin(cx) {
            Poll::Pending => {
                if self.progress.barrier_to_snapshot().is_some() {
                    let started = std::time::Instant::now();
                    match self.snapshot() {
                        Ok(s) => self.progress.deposit(s, started.elapsed()),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                // Nothing is held here: every batch before the barrier was handed on.
                self.progress.mark_drained();
                Poll::Pending
            }
            Poll::Ready(None) => {
                if self.progress.has_ended() {
                    match self.snapshot() {
                        Ok(s) => self.progress.deposit_final(s),
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl RecordBatchStream for DetectorStateStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
