//! Runs one compiled monitor: drives its plan, appends results and late rows to the result
//! store, and reports each emitted window.

use std::sync::Arc;

use arrow::array::TimestampMillisecondArray;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::metrics::MonitorMetrics;
use super::RuntimeError;
use crate::engine::MonitorPlan;
use crate::sinks::{ResultSink, ResultStore};

/// Called for every batch of results a monitor emits (the CLI prints them).
pub type ResultObserver = Arc<dyn Fn(&str, &RecordBatch) + Send + Sync>;

/// Suffix of a monitor's late-row table.
pub const LATE_SUFFIX: &str = "_late";

/// Runs `plan` until its input ends or `shutdown` is cancelled.
pub async fn run_monitor(
    name: String,
    mut plan: MonitorPlan,
    store: ResultStore,
    sinks: Vec<Arc<dyn ResultSink>>,
    metrics: Arc<MonitorMetrics>,
    observer: ResultObserver,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    let mut results = store.open(&name, Arc::clone(&plan.schema))?;
    let mut late = store.open(
        &format!("{name}{LATE_SUFFIX}"),
        Arc::clone(&plan.late_schema),
    )?;
    let windowed = plan.window.is_some();
    let mut stream = execute_stream(Arc::clone(&plan.plan), Arc::clone(&plan.task_ctx))
        .map_err(|e| RuntimeError::Invalid(format!("monitor '{name}': {e}")))?;
    // Row-level results are buffered up to a second; this tick makes them visible even when
    // traffic stops.
    let mut flush_tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = flush_tick.tick() => {
                results.flush()?;
                late.flush()?;
            }
            Some(rows) = plan.late.recv() => {
                metrics.late(rows.num_rows() as u64);
                late.append(rows)?;
            }
            item = stream.next() => match item {
                None => break,
                Some(Err(e)) => {
                    return Err(RuntimeError::Invalid(format!("monitor '{name}' failed: {e}")));
                }
                Some(Ok(batch)) => {
                    metrics.rows_out(batch.num_rows() as u64);
                    if windowed {
                        metrics.windows(1);
                        if let Some(end) = batch
                            .column_by_name("window_end")
                            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
                            .and_then(arrow::compute::max)
                        {
                            metrics.window_end(end);
                        }
                        tracing::info!(monitor = %name, "{}", describe_window(&batch));
                    }
                    observer(&name, &batch);
                    for sink in &sinks {
                        sink.send(&name, &batch)
                            .await
                            .map_err(|e| RuntimeError::Invalid(format!("monitor '{name}': {e}")))?;
                    }
                    results.append(batch)?;
                    if windowed {
                        // Windows are rare and final: make them visible at once.
                        results.flush()?;
                    }
                }
            }
        }
    }
    while let Ok(rows) = plan.late.try_recv() {
        metrics.late(rows.num_rows() as u64);
        late.append(rows)?;
    }
    results.flush()?;
    late.flush()?;
    for sink in &sinks {
        sink.flush()
            .await
            .map_err(|e| RuntimeError::Invalid(format!("monitor '{name}': {e}")))?;
    }
    Ok(())
}

/// One line describing an emitted window: bounds, rows, and the first row's values.
pub fn describe_window(batch: &RecordBatch) -> String {
    let options = FormatOptions::default().with_null("NULL");
    let schema = batch.schema();
    let mut parts = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let Ok(fmt) = ArrayFormatter::try_new(batch.column(i).as_ref(), &options) else {
            continue;
        };
        parts.push(format!("{}={}", field.name(), fmt.value(0)));
    }
    format!("rows={} {}", batch.num_rows(), parts.join(" "))
}
