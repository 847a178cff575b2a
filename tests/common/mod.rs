//! Test harness: runs one monitor's plan over a source feed the test pushes rows into.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use driftwatch::engine::progress::StreamProgress;
use driftwatch::engine::snapshot::WindowSnapshot;
use driftwatch::engine::window_agg::{StateGauge, StateLimits, WindowAggregateExec};
use driftwatch::engine::{plan_monitor, MonitorPlanOptions, PlanError};
use driftwatch::runtime::metrics::SourceMetrics;
use driftwatch::runtime::sources::source_schema;
use driftwatch::sources::{RejectMessage, SourceFeed, SourceSchema};
use driftwatch_sql::{analyze_monitor, parse_statements, Statement};
use driftwatch_udfs::BaselineRegistry;
use futures::StreamExt;
use tokio::sync::mpsc;

/// A running monitor fed by the test.
pub struct Harness {
    pub feed: SourceFeed,
    pub schema: Arc<SourceSchema>,
    pub results: Arc<Mutex<Vec<RecordBatch>>>,
    pub late: mpsc::UnboundedReceiver<RecordBatch>,
    pub done: tokio::task::JoinHandle<datafusion::common::Result<()>>,
    /// Watermark and barrier alignment of the plan.
    pub progress: Arc<StreamProgress>,
    /// State usage of the window operator (windowed monitors).
    pub gauge: Option<Arc<StateGauge>>,
}

/// The `(source, monitor)` statements of `sql` compiled against each other.
pub async fn start(sql: &str, idle_timeout: Option<Duration>) -> Result<Harness, PlanError> {
    start_with(sql, idle_timeout, &Arc::new(BaselineRegistry::new())).await
}

/// Like [`start`] with baselines.
pub async fn start_with(
    sql: &str,
    idle_timeout: Option<Duration>,
    baselines: &Arc<BaselineRegistry>,
) -> Result<Harness, PlanError> {
    start_restored(sql, idle_timeout, baselines, None).await
}

/// Like [`start_with`], the window operator starting from `restore` (state and the
/// watermark it had applied) as after a restart from a checkpoint.
pub async fn start_restored(
    sql: &str,
    idle_timeout: Option<Duration>,
    baselines: &Arc<BaselineRegistry>,
    restore: Option<(WindowSnapshot, i64)>,
) -> Result<Harness, PlanError> {
    start_limited(
        sql,
        idle_timeout,
        baselines,
        restore,
        StateLimits::default(),
    )
    .await
}

/// Like [`start_restored`], with these bounds on the window state.
pub async fn start_limited(
    sql: &str,
    idle_timeout: Option<Duration>,
    baselines: &Arc<BaselineRegistry>,
    restore: Option<(WindowSnapshot, i64)>,
    limits: StateLimits,
) -> Result<Harness, PlanError> {
    let stmts = parse_statements(sql).expect("test SQL parses");
    let (Statement::CreateSource(src), Statement::CreateMonitor(mon)) = (&stmts[0], &stmts[1])
    else {
        panic!("expected CREATE SOURCE then CREATE MONITOR");
    };
    let schema = source_schema(src).expect("source schema");
    let (reject_tx, _reject_rx) = mpsc::channel::<RejectMessage>(64);
    let feed = SourceFeed::new(
        Arc::clone(&schema),
        idle_timeout,
        reject_tx,
        Arc::new(SourceMetrics::default()),
    );
    let input = analyze_monitor(&mon.query).expect("monitor analyses");
    let options = MonitorPlanOptions {
        allowed_lateness_ms: mon
            .options
            .get_duration_ms("allowed_lateness")
            .unwrap()
            .unwrap_or(0),
        limits,
    };
    let plan = plan_monitor(
        &mon.name,
        &input,
        Arc::clone(&schema),
        Some(feed.subscribe(&mon.name)),
        &options,
        baselines,
    )
    .await?;
    if let Some((snapshot, watermark)) = restore {
        plan.progress.set_restore(snapshot);
        plan.progress.advance(watermark);
    }
    let progress = Arc::clone(&plan.progress);
    let gauge = find_gauge(&plan.plan);
    let results = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&results);
    let mut stream = execute_stream(plan.plan, plan.task_ctx).expect("plan executes");
    let done = tokio::spawn(async move {
        while let Some(batch) = stream.next().await {
            sink.lock().unwrap().push(batch?);
        }
        Ok(())
    });
    Ok(Harness {
        feed,
        schema,
        results,
        late: plan.late,
        done,
        progress,
        gauge,
    })
}

/// The state gauge of the plan's window operator, if it has one.
fn find_gauge(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<StateGauge>> {
    if let Some(w) = plan.downcast_ref::<WindowAggregateExec>() {
        return Some(w.state_gauge());
    }
    plan.children().into_iter().find_map(find_gauge)
}

impl Harness {
    /// Ends input and waits for the plan to flush.
    pub async fn finish(self) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
        self.feed.finish().await.unwrap();
        self.done.await.unwrap().unwrap();
        let mut late_rx = self.late;
        let mut late = Vec::new();
        while let Ok(b) = late_rx.try_recv() {
            late.push(b);
        }
        let results = self.results.lock().unwrap().clone();
        (results, late)
    }

    /// Result batches so far.
    pub fn results(&self) -> Vec<RecordBatch> {
        self.results.lock().unwrap().clone()
    }

    /// Takes a checkpoint barrier through the plan, as the runtime does: returns the window
    /// state and the watermark the input had applied, then releases the input.
    pub async fn checkpoint(&self, id: u64) -> (Option<WindowSnapshot>, i64) {
        self.feed.barrier(id).await;
        let drained = tokio::time::timeout(Duration::from_secs(10), self.progress.drained())
            .await
            .expect("the barrier drains");
        assert_eq!(drained, id);
        let snapshot = self.progress.take_snapshot();
        let watermark = self.progress.watermark();
        self.progress.release();
        (snapshot, watermark)
    }
}

/// A batch of `(ts ms, key, value)` rows for a source `(ts TIMESTAMP, k VARCHAR, v DOUBLE)`.
pub fn rows(schema: &SourceSchema, rows: &[(i64, &str, f64)]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(
            rows.iter().map(|r| r.0),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
    ];
    RecordBatch::try_new(Arc::clone(&schema.arrow), columns).unwrap()
}

/// Rows of a result set as strings, one `Vec` per row, for order-insensitive comparison.
pub fn table(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            out.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    out
}

/// Cuts `path` to half its length in place: a result file damaged by a crash or a full disk.
pub fn truncate_half(path: &std::path::Path) {
    let len = std::fs::metadata(path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}
