//! The streaming window aggregate: a DataFusion `ExecutionPlan` that keeps accumulator state
//! per (window, group) across micro-batches and emits each window exactly once, when the
//! watermark passes its end (plus `allowed_lateness`), or at the end of bounded input.
//!
//! It replaces the `AggregateExec` DataFusion plans for a windowed monitor and reuses that
//! aggregate's physical expressions, so every DataFusion aggregate function (and every
//! Driftwatch one) works unchanged; functions with a `GroupsAccumulator` are updated
//! vectorised, the others through DataFusion's `GroupsAccumulatorAdapter`.

mod aggregates;
mod group_keys;
mod layout;
mod limits;
mod panes;
mod sessions;
mod sliding;
mod stages;
mod usage;

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{Stream, StreamExt};

pub use aggregates::AggregateSet;
pub use layout::{Grouping, OutputLayout};
pub use limits::StateLimits;
pub use stages::{merge_input_schema, partial_schema, PARTIAL_PANE_START, SOURCE_PARTITION};
pub use usage::{StateGauge, StateUsage};

use super::progress::StreamProgress;
use super::snapshot::WindowSnapshot;
use super::window::WindowKind;

/// Window state machine behind the operator: tumbling/hopping panes or sessions.
pub trait WindowState: Send {
    /// Copies the open state out for a checkpoint, leaving the live state as it was.
    fn snapshot(&mut self) -> Result<WindowSnapshot>;
    /// Replaces the state with a snapshot taken by [`WindowState::snapshot`] of the same
    /// monitor.
    fn restore(&mut self, snapshot: WindowSnapshot) -> Result<()>;
    /// Adds a batch of on-time rows; returns how many rows were dropped because their window
    /// was already emitted.
    fn update(&mut self, batch: &RecordBatch) -> Result<u64>;
    /// Emits, in order of window end, every window whose end is `<= limit`; returns the
    /// number of windows emitted.
    fn emit(&mut self, limit: i64, out: &mut Vec<RecordBatch>) -> Result<usize>;
    /// What the open state costs now. Cheap (tracked incrementally), called after every
    /// batch.
    fn usage(&self) -> StateUsage;
}

/// What a window operator computes from its input (see [`crate::cluster`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WindowMode {
    /// Rows in, finished windows out: one instance.
    #[default]
    Final,
    /// Stage 1 of a cluster: rows of one source partition in, each pane's partial state out
    /// ([`partial_schema`]) when the watermark passes the pane's end.
    Partial,
    /// Stage 2 of a cluster: partial panes tagged with their source partition in
    /// ([`merge_input_schema`]), finished windows out.
    MergePartials,
}

/// Streaming window aggregate over an unbounded input.
pub struct WindowAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    kind: WindowKind,
    mode: WindowMode,
    /// Output schema: the layout's, or the partial schema in [`WindowMode::Partial`].
    schema: SchemaRef,
    allowed_lateness_ms: i64,
    grouping: Grouping,
    aggregates: AggregateSet,
    layout: OutputLayout,
    limits: StateLimits,
    gauge: Arc<StateGauge>,
    progress: Arc<StreamProgress>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for WindowAggregateExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowAggregateExec")
            .field("kind", &self.kind)
            .finish()
    }
}

impl WindowAggregateExec {
    /// Builds the operator; fails early (at CREATE MONITOR time) when an accumulator cannot
    /// be created, e.g. a drift function naming an unknown baseline.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        kind: WindowKind,
        allowed_lateness_ms: i64,
        grouping: Grouping,
        aggregates: AggregateSet,
        layout: OutputLayout,
        limits: StateLimits,
        progress: Arc<StreamProgress>,
    ) -> Result<Self> {
        aggregates.groups_accumulators()?;
        let schema = Arc::clone(&layout.schema);
        Ok(Self {
            input,
            kind,
            mode: WindowMode::Final,
            properties: Arc::new(Self::plan_properties(&schema)),
            schema,
            allowed_lateness_ms,
            grouping,
            aggregates,
            layout,
            limits,
            gauge: Arc::new(StateGauge::default()),
            progress,
        })
    }

    fn plan_properties(schema: &SchemaRef) -> PlanProperties {
        PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Unbounded {
                requires_infinite_memory: false,
            },
        )
    }

    /// The same operator computing in `mode`. In [`WindowMode::MergePartials`] the input
    /// must yield [`merge_input_schema`] rows (see [`Self::merge_input_schema`]).
    pub fn with_mode(mut self, mode: WindowMode) -> Result<Self> {
        if mode != WindowMode::Final && matches!(self.kind, WindowKind::Session { .. }) {
            return datafusion::common::not_impl_err!(
                "SESSION windows do not run in cluster mode yet"
            );
        }
        self.mode = mode;
        self.schema = match mode {
            WindowMode::Partial => partial_schema(&self.grouping, &self.aggregates)?,
            WindowMode::Final | WindowMode::MergePartials => Arc::clone(&self.layout.schema),
        };
        self.properties = Arc::new(Self::plan_properties(&self.schema));
        Ok(self)
    }

    /// A copy of this operator (same mode, state gauge and progress) reading `input`.
    pub fn clone_with_input(&self, input: Arc<dyn ExecutionPlan>) -> Result<Self> {
        let mut exec = Self::try_new(
            input,
            self.kind,
            self.allowed_lateness_ms,
            self.grouping.clone(),
            self.aggregates.clone(),
            self.layout.clone(),
            self.limits,
            Arc::clone(&self.progress),
        )?
        .with_mode(self.mode)?;
        exec.gauge = Arc::clone(&self.gauge);
        Ok(exec)
    }

    /// The operator's input.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    /// What the operator computes.
    pub fn mode(&self) -> WindowMode {
        self.mode
    }

    /// The schema of stage-2 input for this operator's aggregates and keys.
    pub fn merge_input_schema(&self) -> Result<SchemaRef> {
        merge_input_schema(&self.grouping, &self.aggregates)
    }

    /// The window.
    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    /// The operator's latest state usage, updated while it runs (for metrics and
    /// `system.monitors`); shared by copies of the plan node.
    pub fn state_gauge(&self) -> Arc<StateGauge> {
        Arc::clone(&self.gauge)
    }

    /// Extra wait after the watermark passes a window's end before it is emitted (ms).
    pub fn allowed_lateness_ms(&self) -> i64 {
        self.allowed_lateness_ms
    }

    /// The bounds this operator enforces.
    pub fn limits(&self) -> StateLimits {
        self.limits
    }

    fn new_state(&self) -> Result<Box<dyn WindowState>> {
        match self.mode {
            WindowMode::Final => {}
            WindowMode::Partial => {
                return Ok(Box::new(stages::PartialPanes::new(
                    self.kind,
                    self.grouping.clone(),
                    self.aggregates.clone(),
                    self.layout.clone(),
                    Arc::clone(&self.schema),
                )?))
            }
            WindowMode::MergePartials => {
                return Ok(Box::new(stages::MergedPanes::new(
                    self.kind,
                    self.grouping.clone(),
                    self.aggregates.clone(),
                    self.layout.clone(),
                )?))
            }
        }
        Ok(match self.kind {
            WindowKind::Session { gap } => Box::new(sessions::SessionWindows::new(
                gap,
                self.grouping.clone(),
                self.aggregates.clone(),
                self.layout.clone(),
            )?),
            kind => Box::new(panes::PaneWindows::new(
                kind,
                self.grouping.clone(),
                self.aggregates.clone(),
                self.layout.clone(),
            )?),
        })
    }
}

impl DisplayAs for WindowAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let aggs: Vec<&str> = self
            .aggregates
            .aggregates()
            .iter()
            .map(|a| a.name())
            .collect();
        write!(
            f,
            "WindowAggregateExec: window={:?}{}, allowed_lateness={}ms, aggr=[{}]",
            self.kind,
            match self.mode {
                WindowMode::Final => "",
                WindowMode::Partial => ", mode=partial",
                WindowMode::MergePartials => ", mode=merge_partials",
            },
            self.allowed_lateness_ms,
            aggs.join(", ")
        )
    }
}

impl ExecutionPlan for WindowAggregateExec {
    fn name(&self) -> &str {
        "WindowAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.grouping.pane_start)?;
        for k in &self.grouping.keys {
            f(k)?;
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("WindowAggregateExec has one child");
        }
        Ok(Arc::new(self.clone_with_input(children.remove(0))?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let reservation = MemoryConsumer::new("window state").register(context.memory_pool());
        let input = self.input.execute(partition, context)?;
        let mut state = self.new_state()?;
        let restored = self.progress.take_restore();
        let has_restore = restored.is_some();
        if let Some(snapshot) = restored {
            state.restore(snapshot)?;
        }
        let mut stream = WindowAggregateStream {
            input,
            state,
            schema: Arc::clone(&self.schema),
            progress: Arc::clone(&self.progress),
            allowed_lateness_ms: self.allowed_lateness_ms,
            applied_watermark: i64::MIN,
            ready: VecDeque::new(),
            finished: false,
            limits: self.limits,
            gauge: Arc::clone(&self.gauge),
            reservation,
        };
        if has_restore {
            stream.account()?;
        }
        Ok(Box::pin(stream))
    }
}

struct WindowAggregateStream {
    input: SendableRecordBatchStream,
    state: Box<dyn WindowState>,
    schema: SchemaRef,
    progress: Arc<StreamProgress>,
    allowed_lateness_ms: i64,
    applied_watermark: i64,
    ready: VecDeque<RecordBatch>,
    finished: bool,
    limits: StateLimits,
    gauge: Arc<StateGauge>,
    /// The state's bytes, reserved in the task's memory pool.
    reservation: MemoryReservation,
}

impl WindowAggregateStream {
    /// Publishes the state's usage, checks it against the limits and resizes the memory
    /// reservation to it; crossing a bound is `ResourcesExhausted` naming the option.
    fn account(&mut self) -> Result<()> {
        let usage = self.state.usage();
        self.gauge.set(usage);
        if let Err(message) = self.limits.check(&usage) {
            tracing::error!(%message, "window state limit crossed");
            return Err(DataFusionError::ResourcesExhausted(message));
        }
        if let Err(e) = self.reservation.try_resize(usage.bytes) {
            let message = limits::pool_refused(usage.bytes, &e);
            tracing::error!(%message, "window state reservation refused");
            return Err(DataFusionError::ResourcesExhausted(message));
        }
        Ok(())
    }

    fn emit_up_to(&mut self, limit: i64) -> Result<()> {
        let mut out = Vec::new();
        self.state.emit(limit, &mut out)?;
        self.ready.reserve(out.len());
        self.ready
            .extend(out.into_iter().filter(|b| b.num_rows() > 0));
        Ok(())
    }

    /// Emits the windows the current watermark closes.
    fn on_watermark(&mut self) -> Result<()> {
        let wm = self.progress.watermark();
        if wm > self.applied_watermark {
            self.applied_watermark = wm;
            self.emit_up_to(wm.saturating_sub(self.allowed_lateness_ms))?;
        }
        Ok(())
    }

    /// The input returned `Pending`: close what the watermark allows and, when the input is
    /// parked at a checkpoint barrier, snapshot the state (after the windows the barrier's
    /// watermark closed were emitted) and report the barrier drained once nothing is left to
    /// hand on. See [`crate::engine::progress`].
    fn on_input_pending(&mut self) -> Result<()> {
        self.on_watermark()?;
        if self.progress.barrier_to_snapshot().is_some() {
            let started = std::time::Instant::now();
            let snapshot = self.state.snapshot()?;
            self.progress.deposit(snapshot, started.elapsed());
        }
        if self.ready.is_empty() {
            self.progress.mark_drained();
        }
        Ok(())
    }
}

impl Stream for WindowAggregateStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(batch)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            match self.input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    let result = self.state.update(&batch).and_then(|dropped| {
                        if dropped > 0 {
                            tracing::warn!(dropped, "rows for already emitted windows dropped");
                            self.progress.add_late(dropped);
                        }
                        self.on_watermark()?;
                        self.account()
                    });
                    if let Err(e) = result {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    self.finished = true;
                    let result = if self.progress.has_ended() {
                        // Bounded input ended: flush every window, then keep what remains
                        // (the emitted horizon) for the final checkpoint.
                        self.emit_up_to(i64::MAX).and_then(|_| {
                            let snapshot = self.state.snapshot()?;
                            self.progress.deposit_final(snapshot);
                            self.account()
                        })
                    } else {
                        self.on_watermark().and_then(|_| self.account())
                    };
                    if let Err(e) = result {
                        return Poll::Ready(Some(Err(e)));
                    }
                }
                Poll::Pending => {
                    if let Err(e) = self.on_input_pending().and_then(|_| self.account()) {
                        return Poll::Ready(Some(Err(e)));
                    }
                    if self.ready.is_empty() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl RecordBatchStream for WindowAggregateStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
