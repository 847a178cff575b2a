//! The unbounded source of a monitor's plan: a DataFusion table provider and execution plan
//! that read a source's [`FeedMessage`]s, keep late rows aside, add the window columns and,
//! for `features(src)`, unpivot numeric columns into the long `(feature, value)` form.
//!
//! The features of the long view are the source's numeric columns except, by default,
//! metadata columns ([`METADATA_COLUMNS`]), the event-time column and id columns
//! ([`is_id_column`]); `features(src, include => 'a, b')` names them exactly (`'*'`: every
//! numeric column) and `exclude => 'c'` leaves more out (see [`select_features`]). Columns that
//! are not features stay ordinary columns of the view, repeated on each feature's row.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arrow::array::{
    Array, ArrayRef, BooleanArray, StringArray, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{cast, concat, filter_record_batch, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::Stream;
use tokio::sync::mpsc;

use super::progress::StreamProgress;
use super::window::WindowKind;
use crate::sources::{FeedMessage, SourceSchema, EVENT_TIME_TYPE};
use driftwatch_sql::{did_you_mean, FeatureList, FeatureSelection};

/// Name of the column holding a window's start.
pub const WINDOW_START: &str = "window_start";
/// Name of the column holding a window's end (exclusive).
pub const WINDOW_END: &str = "window_end";
/// Feature-name column of the long view.
pub const FEATURE: &str = "feature";
/// Value column of the long view.
pub const VALUE: &str = "value";
/// Reason column of a late table.
pub const LATE_REASON: &str = "_late_reason";
/// Watermark-at-arrival column of a late table.
pub const LATE_WATERMARK: &str = "_watermark";

/// The window a monitor's input is cut into.
#[derive(Debug, Clone, Copy)]
pub struct InputWindow {
    /// Window kind and sizes.
    pub kind: WindowKind,
    /// Index of the event-time column in the source schema.
    pub time_index: usize,
    /// Extra wait after the watermark passes a window's end before it is emitted.
    pub allowed_lateness_ms: i64,
}

/// Metadata columns a source may declare (Kafka: partition, offset, message key and message
/// timestamp; matched ignoring ASCII case). They are never features of `features(src)`
/// unless listed in `include`.
pub const METADATA_COLUMNS: [&str; 4] = ["_partition", "_offset", "_key", "_timestamp"];

/// Whether `name` is an id column, left out of `features(src)` by default: `id` itself, a
/// name ending in `_id` (both ignoring ASCII case: `ID`, `user_id`, `ORDER_ID`), or a
/// camelCase name ending in `Id` / `ID` after a lower-case letter or digit (`userId`,
/// `deviceID`, `sensor2Id`). `paid`, `valid` or `grid` are not id columns.
///
/// ```
/// use driftwatch::engine::input::is_id_column;
/// assert!(is_id_column("id") && is_id_column("User_ID") && is_id_column("userId"));
/// assert!(!is_id_column("paid") && !is_id_column("idle") && !is_id_column("valid"));
/// ```
pub fn is_id_column(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower == "id" || (lower.len() > 3 && lower.ends_with("_id")) {
        return true;
    }
    let b = name.as_bytes();
    b.len() > 2
        && (name.ends_with("Id") || name.ends_with("ID"))
        && (b[b.len() - 3].is_ascii_lowercase() || b[b.len() - 3].is_ascii_digit())
}

/// Why a numeric column is not a feature by default, `None` when it is one.
fn default_exclusion(source: &SourceSchema, name: &str) -> Option<&'static str> {
    if METADATA_COLUMNS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(name))
    {
        Some("metadata")
    } else if source
        .event_time
        .as_ref()
        .is_some_and(|e| e.column.eq_ignore_ascii_case(name))
    {
        Some("event time")
    } else if is_id_column(name) {
        Some("id column")
    } else {
        None
    }
}

/// The source columns (indices, in schema order) `features(src, …)` unpivots under
/// `selection` (see the module docs). Errors name the offending column, say where the list is
/// written and suggest a close column name.
pub fn select_features(
    source: &SourceSchema,
    selection: &FeatureSelection,
) -> std::result::Result<Vec<usize>, String> {
    let fields = source.arrow.fields();
    let numeric: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i].data_type().is_numeric())
        .collect();
    let mut chosen: Vec<usize> = match &selection.include {
        Some(list) if list.all => numeric.clone(),
        Some(list) => {
            let mut idx = resolve_names(source, list, "include")?;
            idx.sort_unstable();
            idx.dedup();
            idx
        }
        None => numeric
            .iter()
            .copied()
            .filter(|&i| default_exclusion(source, fields[i].name()).is_none())
            .collect(),
    };
    if let Some(list) = &selection.exclude {
        let out = resolve_names(source, list, "exclude")?;
        chosen.retain(|i| !out.contains(i));
    }
    if chosen.is_empty() {
        let at = selection
            .exclude
            .as_ref()
            .or(selection.include.as_ref())
            .and_then(|l| l.location)
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        let left_out: Vec<String> = numeric
            .iter()
            .filter_map(|&i| {
                let n = fields[i].name();
                default_exclusion(source, n).map(|why| format!("{n} ({why})"))
            })
            .collect();
        let left_out = if left_out.is_empty() || selection.include.is_some() {
            String::new()
        } else {
            format!(
                "; left out by default: {} (name them in include => '…' to use them)",
                left_out.join(", ")
            )
        };
        return Err(format!(
            "{at}features({}): no column left to unpivot (numeric columns: {}){left_out}",
            source.name,
            names_of(source, &numeric)
        ));
    }
    Ok(chosen)
}

fn names_of(source: &SourceSchema, idx: &[usize]) -> String {
    if idx.is_empty() {
        return "none".into();
    }
    let fields = source.arrow.fields();
    idx.iter()
        .map(|&i| fields[i].name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The numeric columns `list` names (exact name, else ASCII case-insensitive).
fn resolve_names(
    source: &SourceSchema,
    list: &FeatureList,
    key: &str,
) -> std::result::Result<Vec<usize>, String> {
    let fields = source.arrow.fields();
    let at = list.location.map(|l| format!("{l}: ")).unwrap_or_default();
    let numeric: Vec<usize> = (0..fields.len())
        .filter(|&i| fields[i].data_type().is_numeric())
        .collect();
    list.names
        .iter()
        .map(|name| {
            let found = fields.iter().position(|f| f.name() == name).or_else(|| {
                fields
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(name))
            });
            match found {
                Some(i) if fields[i].data_type().is_numeric() => Ok(i),
                Some(i) => Err(format!(
                    "{at}features({}): {key} names '{name}', which is {} and not numeric; only \
                     numeric columns are features (numeric columns: {})",
                    source.name,
                    fields[i].data_type(),
                    names_of(source, &numeric)
                )),
                None => {
                    let all: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                    let hint = did_you_mean(name, &all)
                        .map(|s| format!("did you mean '{s}'? "))
                        .unwrap_or_default();
                    Err(format!(
                        "{at}features({}): {key} names '{name}', which is not a column of the \
                         source; {hint}numeric columns: {}",
                        source.name,
                        names_of(source, &numeric)
                    ))
                }
            }
        })
        .collect()
}

/// How a monitor sees its source: the shape of the rows its plan reads.
#[derive(Debug, Clone)]
pub struct InputShape {
    source: Arc<SourceSchema>,
    window: Option<InputWindow>,
    long_view: bool,
    schema: SchemaRef,
    late_schema: SchemaRef,
    /// Indices of the source columns unpivoted by the long view (its features).
    numeric: Vec<usize>,
    /// Indices of the source columns kept as they are.
    kept: Vec<usize>,
}

impl InputShape {
    /// Describes a monitor input over `source`; `features` is the column selection of the
    /// long view `features(src, …)`, `None` for the source's own rows. Errors when the
    /// selection names no usable column (see [`select_features`]).
    pub fn new(
        source: Arc<SourceSchema>,
        window: Option<InputWindow>,
        features: Option<&FeatureSelection>,
    ) -> std::result::Result<Self, String> {
        let fields = source.arrow.fields();
        let long_view = features.is_some();
        let (numeric, kept): (Vec<usize>, Vec<usize>) = match features {
            Some(selection) => {
                let numeric = select_features(&source, selection)?;
                let kept = (0..fields.len()).filter(|i| !numeric.contains(i)).collect();
                (numeric, kept)
            }
            None => (Vec::new(), (0..fields.len()).collect()),
        };
        let mut out: Vec<Field> = kept.iter().map(|&i| fields[i].as_ref().clone()).collect();
        if long_view {
            out.push(Field::new(FEATURE, DataType::Utf8, false));
            out.push(Field::new(VALUE, DataType::Float64, true));
        }
        if window.is_some() {
            out.push(Field::new(WINDOW_START, EVENT_TIME_TYPE, false));
            out.push(Field::new(WINDOW_END, EVENT_TIME_TYPE, false));
        }
        let mut late: Vec<Field> = fields.iter().map(|f| f.as_ref().clone()).collect();
        late.push(Field::new(LATE_REASON, DataType::Utf8, false));
        late.push(Field::new(LATE_WATERMARK, EVENT_TIME_TYPE, true));
        Ok(Self {
            source,
            window,
            long_view,
            schema: Arc::new(Schema::new(out)),
            late_schema: Arc::new(Schema::new(late)),
            numeric,
            kept,
        })
    }

    /// The feature names of the long view, in the order their rows are emitted (empty when
    /// the monitor reads the source's own rows).
    pub fn features(&self) -> Vec<&str> {
        let fields = self.source.arrow.fields();
        self.numeric
            .iter()
            .map(|&i| fields[i].name().as_str())
            .collect()
    }

    /// Schema of the rows the plan reads.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Schema of the late table: the source columns plus reason and watermark.
    pub fn late_schema(&self) -> &SchemaRef {
        &self.late_schema
    }

    /// The window, if the monitor is windowed.
    pub fn window(&self) -> Option<&InputWindow> {
        self.window.as_ref()
    }

    /// Splits a source batch into on-time rows (transformed to [`Self::schema`]) and late
    /// rows (in [`Self::late_schema`]), given the watermark covering earlier batches and
    /// the latest plausible event time `future_after` (rows after it are quarantined, see
    /// [`crate::sources::feed`]).
    pub fn transform(
        &self,
        batch: &RecordBatch,
        watermark: i64,
        future_after: i64,
    ) -> Result<(Option<RecordBatch>, Option<RecordBatch>)> {
        let (on_time, late) = match &self.window {
            None => (batch.clone(), None),
            Some(window) => self.split_late(batch, window, watermark, future_after)?,
        };
        let on_time = if on_time.num_rows() == 0 {
            None
        } else {
            Some(self.shape(&on_time)?)
        };
        Ok((on_time, late))
    }

    fn split_late(
        &self,
        batch: &RecordBatch,
        window: &InputWindow,
        watermark: i64,
        future_after: i64,
    ) -> Result<(RecordBatch, Option<RecordBatch>)> {
        let ts = event_times(batch, window.time_index)?;
        let lateness = window.allowed_lateness_ms;
        let kind = window.kind;
        let mut late_count = 0usize;
        let mut reasons: Vec<Option<&'static str>> = Vec::new();
        let keep: BooleanArray = ts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let reason = match t {
                    None => Some("event time is NULL"),
                    Some(t) if kind.first_window_end(t).saturating_add(lateness) <= watermark => {
                        Some("window already emitted (row later than the watermark allows)")
                    }
                    Some(t) if t > future_after => Some(
                        "event time is further ahead of its arrival than the source's max_future",
                    ),
                    Some(_) => None,
                };
                if let Some(r) = reason {
                    if reasons.is_empty() {
                        reasons = vec![None; ts.len()];
                    }
                    reasons[i] = Some(r);
                    late_count += 1;
                }
                Some(reason.is_none())
            })
            .collect();
        if late_count == 0 {
            return Ok((batch.clone(), None));
        }
        let on_time = filter_record_batch(batch, &keep)?;
        let is_late = arrow::compute::not(&keep)?;
        let late_rows = filter_record_batch(batch, &is_late)?;
        let reason: StringArray = reasons.into_iter().flatten().map(Some).collect();
        // Before the first watermark there is none: NULL, never the internal sentinel.
        let at_arrival =
            (watermark != crate::sources::watermark::NO_WATERMARK).then_some(watermark);
        let wm = TimestampMillisecondArray::from(vec![at_arrival; late_count]);
        let mut columns = late_rows.columns().to_vec();
        columns.push(Arc::new(reason));
        columns.push(Arc::new(wm));
        let late = RecordBatch::try_new(Arc::clone(&self.late_schema), columns)?;
        Ok((on_time, Some(late)))
    }

    fn shape(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef>;
        let repeat = if self.long_view {
            self.numeric.len()
        } else {
            1
        };
        if self.long_view {
            let indices: UInt32Array = (0..repeat)
                .flat_map(|_| 0..rows as u32)
                .collect::<Vec<_>>()
                .into();
            columns = self
                .kept
                .iter()
                .map(|&i| take(batch.column(i), &indices, None))
                .collect::<std::result::Result<_, _>>()?;
            let fields = self.source.arrow.fields();
            let name_bytes: usize = self.numeric.iter().map(|&i| fields[i].name().len()).sum();
            let mut names =
                arrow::array::StringBuilder::with_capacity(rows * repeat, name_bytes * rows);
            for &i in &self.numeric {
                for _ in 0..rows {
                    names.append_value(fields[i].name());
                }
            }
            let names = names.finish();
            let values: Vec<ArrayRef> = self
                .numeric
                .iter()
                .map(|&i| cast(batch.column(i), &DataType::Float64))
                .collect::<std::result::Result<_, _>>()?;
            let refs: Vec<&dyn Array> = values.iter().map(|a| a.as_ref()).collect();
            columns.push(Arc::new(names));
            columns.push(if refs.is_empty() {
                arrow::array::new_empty_array(&DataType::Float64)
            } else {
                concat(&refs)?
            });
        } else {
            columns = batch.columns().to_vec();
        }
        if let Some(window) = &self.window {
            let ts = event_times(batch, window.time_index)?;
            let kind = window.kind;
            let (start, end): (TimestampMillisecondArray, TimestampMillisecondArray) =
                match kind.pane() {
                    Some(pane) => (
                        arrow::compute::kernels::arity::unary(&ts, |t| kind.pane_start(t)),
                        arrow::compute::kernels::arity::unary(&ts, |t| kind.pane_start(t) + pane),
                    ),
                    None => (
                        ts.clone(),
                        arrow::compute::kernels::arity::unary(&ts, |t| t + kind.size()),
                    ),
                };
            let (start, end): (ArrayRef, ArrayRef) = if repeat > 1 {
                let s: Vec<&dyn Array> =
                    std::iter::repeat_n(&start as &dyn Array, repeat).collect();
                let e: Vec<&dyn Array> = std::iter::repeat_n(&end as &dyn Array, repeat).collect();
                (concat(&s)?, concat(&e)?)
            } else {
                (Arc::new(start), Arc::new(end))
            };
            columns.push(start);
            columns.push(end);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

fn event_times(batch: &RecordBatch, index: usize) -> Result<TimestampMillisecondArray> {
    let column = batch.column(index);
    match column.as_any().downcast_ref::<TimestampMillisecondArray>() {
        Some(ts) => Ok(ts.clone()),
        None => exec_err!(
            "event-time column has type {}, expected {}",
            column.data_type(),
            EVENT_TIME_TYPE
        ),
    }
}

/// The receiving end of a monitor's feed, taken by the first execution of the plan.
pub type FeedReceiver = mpsc::Receiver<FeedMessage>;

/// A monitor's view of its source, registered under the source's name in the monitor's
/// planning context.
pub struct MonitorInputTable {
    shape: Arc<InputShape>,
    feed: Arc<Mutex<Option<FeedReceiver>>>,
    progress: Arc<StreamProgress>,
    late: mpsc::UnboundedSender<RecordBatch>,
}

impl fmt::Debug for MonitorInputTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorInputTable")
            .field("schema", &self.shape.schema)
            .finish()
    }
}

impl MonitorInputTable {
    /// A table reading `feed`, publishing progress to `progress` and late rows to `late`.
    pub fn new(
        shape: Arc<InputShape>,
        feed: Option<FeedReceiver>,
        progress: Arc<StreamProgress>,
        late: mpsc::UnboundedSender<RecordBatch>,
    ) -> Self {
        Self {
            shape,
            feed: Arc::new(Mutex::new(feed)),
            progress,
            late,
        }
    }
}

#[async_trait]
impl TableProvider for MonitorInputTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.shape.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(MonitorInputExec::new(
            Arc::clone(&self.shape),
            projection.cloned(),
            Arc::clone(&self.feed),
            Arc::clone(&self.progress),
            self.late.clone(),
        )?))
    }
}

/// Unbounded execution plan yielding a monitor's input rows as they arrive.
pub struct MonitorInputExec {
    shape: Arc<InputShape>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    feed: Arc<Mutex<Option<FeedReceiver>>>,
    progress: Arc<StreamProgress>,
    late: mpsc::UnboundedSender<RecordBatch>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for MonitorInputExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorInputExec")
            .field("schema", &self.schema)
            .finish()
    }
}

impl MonitorInputExec {
    fn new(
        shape: Arc<InputShape>,
        projection: Option<Vec<usize>>,
        feed: Arc<Mutex<Option<FeedReceiver>>>,
        progress: Arc<StreamProgress>,
        late: mpsc::UnboundedSender<RecordBatch>,
    ) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(shape.schema.project(p)?),
            None => Arc::clone(&shape.schema),
        };
        // Declared bounded so that DataFusion's planner accepts the aggregate that the
        // monitor planner then replaces with the streaming window operator, which is the
        // node that declares the plan unbounded.
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            shape,
            projection,
            schema,
            feed,
            progress,
            late,
            properties: Arc::new(properties),
        })
    }

    /// The monitor's input shape.
    pub fn shape(&self) -> &Arc<InputShape> {
        &self.shape
    }

    /// Progress shared with the window operator.
    pub fn progress(&self) -> &Arc<StreamProgress> {
        &self.progress
    }
}

impl DisplayAs for MonitorInputExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MonitorInputExec: source={}", self.shape.source.name)?;
        if self.shape.long_view {
            write!(f, ", features=[{}]", self.shape.features().join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for MonitorInputExec {
    fn name(&self) -> &str {
        "MonitorInputExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("MonitorInputExec has one partition, asked for {partition}");
        }
        let feed = self
            .feed
            .lock()
            .map_err(|_| DataFusionError::Internal("feed lock poisoned".into()))?
            .take();
        let Some(feed) = feed else {
            return exec_err!(
                "the input of this monitor was already started (a monitor plan runs once)"
            );
        };
        Ok(Box::pin(MonitorInputStream {
            shape: Arc::clone(&self.shape),
            projection: self.projection.clone(),
            schema: Arc::clone(&self.schema),
            feed,
            progress: Arc::clone(&self.progress),
            late: self.late.clone(),
            done: false,
        }))
    }
}

struct MonitorInputStream {
    shape: Arc<InputShape>,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    feed: FeedReceiver,
    progress: Arc<StreamProgress>,
    late: mpsc::UnboundedSender<RecordBatch>,
    done: bool,
}

impl MonitorInputStream {
    fn on_batch(&mut self, batch: &RecordBatch, future_after: i64) -> Result<Option<RecordBatch>> {
        let (on_time, late) =
            self.shape
                .transform(batch, self.progress.watermark(), future_after)?;
        if let Some(late) = late {
            self.progress.add_late(late.num_rows() as u64);
            // The runtime drains this channel into the monitor's late table.
            let _ = self.late.send(late);
        }
        match (on_time, &self.projection) {
            (Some(b), Some(p)) => Ok(Some(b.project(p)?)),
            (b, _) => Ok(b),
        }
    }
}

impl Stream for MonitorInputStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // Parked at a checkpoint barrier: nothing after it is read until it is released.
        if self.progress.is_parked(cx.waker()) {
            return Poll::Pending;
        }
        loop {
            match self.feed.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(FeedMessage::End)) => {
                    self.done = true;
                    self.progress.end();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(FeedMessage::Watermark(wm))) => {
                    // Everything before this message was yielded in earlier polls.
                    self.progress.advance(wm);
                }
                Poll::Ready(Some(FeedMessage::PartitionProgress { .. })) => {
                    // Only partitioned subscribers (a cluster's stage 1) receive these.
                }
                Poll::Ready(Some(FeedMessage::Barrier(id))) => {
                    // Everything before the barrier was yielded in earlier polls.
                    self.progress.park(id, cx.waker());
                    return Poll::Pending;
                }
                Poll::Ready(Some(FeedMessage::Batch {
                    batch,
                    taken,
                    future_after,
                    ..
                })) => {
                    let out = self.on_batch(&batch, future_after);
                    if let Some(taken) = taken {
                        let _ = taken.send(());
                    }
                    match out {
                        Ok(Some(b)) => return Poll::Ready(Some(Ok(b))),
                        Ok(None) => continue,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    }
                }
            }
        }
    }
}

impl RecordBatchStream for MonitorInputStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

impl MonitorInputTable {
    /// Downcast helper used by the planner.
    pub fn as_any(&self) -> &dyn Any {
        self
    }
}
