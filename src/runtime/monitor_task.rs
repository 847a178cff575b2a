//! Runs one compiled monitor: drives its plan, appends results and late rows to the result
//! store and the monitor's sinks, reports each emitted window, and takes the monitor's part
//! of every checkpoint (see [`crate::checkpoint`]).
//!
//! What an emitted window promises: it is written durably to the result store before the
//! next window is taken up, and queued to every sink, which acknowledges it before the next
//! checkpoint completes; once that checkpoint completes no crash removes it. A crash before
//! it makes recovery delete the window from the store and emit it again from the same input,
//! once (sinks skip what they already hold, see [`crate::sinks::kafka`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::TimestampMillisecondArray;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::execute_stream;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::RuntimeError;
use crate::checkpoint::{CheckpointMessage, MonitorPart};
use crate::engine::MonitorPlan;
use crate::metrics::{Health, MonitorMetrics};
use crate::sinks::{ResultSink, ResultStore, TableWriter};

/// Called for every batch of results a monitor emits (the CLI prints them).
pub type ResultObserver = Arc<dyn Fn(&str, &RecordBatch) + Send + Sync>;

/// Suffix of a monitor's late-row table.
pub const LATE_SUFFIX: &str = "_late";

/// Everything a running monitor needs besides its plan.
pub struct MonitorTask {
    /// Monitor name.
    pub name: String,
    /// Its CREATE statement (checkpoints restore state only into the same definition).
    pub definition: String,
    /// The source it reads.
    pub source: String,
    /// Where results go.
    pub store: ResultStore,
    /// External sinks.
    pub sinks: Vec<Arc<dyn ResultSink>>,
    /// Sink positions of the restored checkpoint, by sink name: what was written after
    /// them is read back so it is not written twice.
    pub restore_sinks: BTreeMap<String, crate::checkpoint::SinkPosition>,
    /// Counters and health.
    pub metrics: Arc<MonitorMetrics>,
    /// Sees every result batch.
    pub observer: ResultObserver,
    /// Stops the monitor (open windows are neither emitted nor dropped: the last
    /// checkpoint holds them).
    pub shutdown: CancellationToken,
    /// Where checkpoint parts go.
    pub checkpoints: mpsc::Sender<CheckpointMessage>,
    /// Epoch of the first results (the restored checkpoint's id + 1).
    pub epoch: u64,
}

struct Writers {
    results: TableWriter,
    late: TableWriter,
}

impl MonitorTask {
    /// Runs `plan` until its input ends or the shutdown token is cancelled.
    ///
    /// An error of the plan (a crossed state limit, the memory pool exhausted, a UDF error)
    /// or a panic fails this monitor alone: it is logged at once, the monitor's health turns
    /// `failed` with the error, and the plan — its subscription to the source included — is
    /// dropped here, so the source and the other monitors go on without waiting for it.
    pub async fn run(self, mut plan: MonitorPlan) -> Result<(), RuntimeError> {
        let outcome = std::panic::AssertUnwindSafe(self.drive(&mut plan))
            .catch_unwind()
            .await;
        // The input (and with it the subscription) goes before the failure is visible, so
        // whoever sees `failed` sees a monitor that no longer holds its source back.
        drop(plan);
        let result = outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(RuntimeError::Invalid(format!(
                "monitor '{}' panicked: {what}",
                self.name
            )))
        });
        if let Err(e) = &result {
            tracing::error!(
                monitor = %self.name,
                error = %e,
                "monitor failed; it stopped, the source and the other monitors keep running \
                 (CREATE OR REPLACE MONITOR to start it again)"
            );
            self.metrics.health.set(Health::Failed, Some(e.to_string()));
        }
        result
    }

    async fn drive(&self, plan: &mut MonitorPlan) -> Result<(), RuntimeError> {
        let name = &self.name;
        let mut w = Writers {
            results: self
                .store
                .open(name, Arc::clone(&plan.schema), self.epoch)?,
            late: self.store.open(
                &format!("{name}{LATE_SUFFIX}"),
                Arc::clone(&plan.late_schema),
                self.epoch,
            )?,
        };
        let windowed = plan.window.is_some();
        let progress = Arc::clone(&plan.progress);
        crate::engine::observe::watch(plan, &self.metrics);
        if !self.prepare_sinks(windowed).await {
            return Ok(());
        }
        let mut stream = execute_stream(Arc::clone(&plan.plan), Arc::clone(&plan.task_ctx))
            .map_err(|e| RuntimeError::Invalid(format!("monitor '{name}': {e}")))?;
        // Row-level results are buffered up to a second; this tick makes them visible even
        // when traffic stops.
        let mut flush_tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => {
                    // Results already emitted stay (they are in the current epoch, covered by
                    // the final checkpoint when one is taken); open windows are not flushed.
                    self.drain_late(plan, &mut w)?;
                    w.results.flush()?;
                    w.late.flush()?;
                    return Ok(());
                }
                // Late rows before the plan: their queue (unbounded, the input stream cannot
                // wait) holds at most one batch per feed message the plan took since the last
                // turn of this loop, which tokio's cooperative budget caps at 128 messages.
                Some(rows) = plan.late.recv() => {
                    self.metrics.late(rows.num_rows() as u64);
                    w.late.append(rows)?;
                }
                item = stream.next() => match item {
                    None => break,
                    Some(Err(e)) => {
                        return Err(RuntimeError::Invalid(format!("monitor '{name}' failed: {e}")));
                    }
                    Some(Ok(batch)) => self.emit(batch, windowed, &mut w).await?,
                },
                id = progress.drained() => self.checkpoint(id, plan, &mut w).await?,
                _ = flush_tick.tick() => {
                    w.results.flush()?;
                    w.late.flush()?;
                }
            }
        }
        self.drain_late(plan, &mut w)?;
        w.results.flush()?;
        w.late.flush()?;
        let Some(sinks) = self.flush_sinks().await else {
            return Ok(());
        };
        if progress.has_ended() {
            // Bounded input ended and every window was flushed: what remains (the emitted
            // horizon) goes into every later checkpoint.
            let last = progress.take_final();
            for sink in &self.sinks {
                if let Some(s) = &last {
                    sink.progress(&self.name, s.emitted_until).await;
                }
                sink.finish().await;
            }
            let part = self.part(plan, last, sinks);
            self.hand_in(CheckpointMessage::Final(part)).await;
            self.metrics.health.set(Health::Finished, None);
        }
        Ok(())
    }

    /// Waits until every sink acknowledged everything sent (retrying failed deliveries with
    /// backoff) and returns how far each was written; `None` when stopped meanwhile.
    async fn flush_sinks(&self) -> Option<BTreeMap<String, crate::checkpoint::SinkPosition>> {
        let mut positions = BTreeMap::new();
        for sink in &self.sinks {
            if !self
                .retry(&format!("sink {}", sink.name()), || sink.flush())
                .await
            {
                return None;
            }
            if let Some(p) = sink.position().await {
                positions.insert(sink.name(), p);
            }
        }
        Some(positions)
    }

    /// One bounded flush of every sink (see [`crate::sinks::kafka::FLUSH_WAIT`]) and how far
    /// each was written; the first sink error otherwise.
    async fn flush_sinks_once(
        &self,
    ) -> Result<BTreeMap<String, crate::checkpoint::SinkPosition>, String> {
        let mut positions = BTreeMap::new();
        for sink in &self.sinks {
            sink.flush()
                .await
                .map_err(|e| format!("sink {}: {e}", sink.name()))?;
            if let Some(p) = sink.position().await {
                positions.insert(sink.name(), p);
            }
        }
        Ok(positions)
    }

    /// Prepares every sink (and reads back what the crashed run wrote after the restored
    /// checkpoint), retrying with backoff while the sink is unreachable. Returns false when
    /// stopped meanwhile.
    async fn prepare_sinks(&self, windowed: bool) -> bool {
        for sink in &self.sinks {
            let restored = self.restore_sinks.get(&sink.name());
            let attempt = || async {
                sink.start(&self.name, self.store.root()).await?;
                sink.prepare().await?;
                if let Some(position) = restored {
                    sink.recover(&self.name, position, windowed).await?;
                }
                Ok::<(), crate::sinks::SinkError>(())
            };
            if !self.retry(&format!("sink {}", sink.name()), attempt).await {
                return false;
            }
        }
        true
    }

    /// Runs `attempt` until it succeeds, with exponential backoff (0.5 s to 10 s) and the
    /// monitor's health showing the error meanwhile. Returns false when stopped first.
    async fn retry<F, Fut, E>(&self, what: &str, mut attempt: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut backoff = std::time::Duration::from_millis(500);
        let mut failed = false;
        loop {
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                r = attempt() => r,
            };
            match result {
                Ok(()) => {
                    if failed {
                        tracing::info!(monitor = %self.name, "{what} works again");
                        self.metrics.health.set(Health::Running, None);
                    }
                    return true;
                }
                Err(e) => {
                    failed = true;
                    let message = format!("{what}: {e}");
                    tracing::warn!(monitor = %self.name, error = %message, retry_in_ms = backoff.as_millis() as u64, "retrying");
                    self.metrics.health.set(Health::Retrying, Some(message));
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
    }

    async fn emit(
        &self,
        batch: RecordBatch,
        windowed: bool,
        w: &mut Writers,
    ) -> Result<(), RuntimeError> {
        let name = &self.name;
        self.metrics.rows_out(batch.num_rows() as u64);
        if windowed {
            self.metrics.windows(1);
            if let Some(end) = batch
                .column_by_name("window_end")
                .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
                .and_then(arrow::compute::max)
            {
                self.metrics.window_end(end);
                self.metrics.window_emitted(end);
            }
            tracing::info!(monitor = %name, "{}", describe_window(&batch));
        }
        (self.observer)(name, &batch);
        for sink in &self.sinks {
            // A failed delivery is retried (what arrived is not sent twice); a stop while
            // retrying leaves the window to the last checkpoint, to be emitted again.
            if !self
                .retry(&format!("sink {}", sink.name()), || sink.send(name, &batch))
                .await
            {
                return Ok(());
            }
        }
        w.results.append(batch)?;
        if windowed {
            // Windows are rare and final: make them visible (and durable) at once.
            w.results.flush()?;
        }
        Ok(())
    }

    fn drain_late(&self, plan: &mut MonitorPlan, w: &mut Writers) -> Result<(), RuntimeError> {
        while let Ok(rows) = plan.late.try_recv() {
            self.metrics.late(rows.num_rows() as u64);
            w.late.append(rows)?;
        }
        Ok(())
    }

    /// Barrier `id` is drained: everything emitted before it is made durable in epoch `id`,
    /// the part handed in, and the input released.
    async fn checkpoint(
        &self,
        id: u64,
        plan: &mut MonitorPlan,
        w: &mut Writers,
    ) -> Result<(), RuntimeError> {
        let started = Instant::now();
        // Late rows of batches before the barrier were sent before the input parked.
        self.drain_late(plan, w)?;
        w.results.start_epoch(id + 1)?;
        w.late.start_epoch(id + 1)?;
        let sinks = match self.flush_sinks_once().await {
            Ok(sinks) => sinks,
            Err(message) => {
                // A sink could not confirm everything emitted before the barrier, so this
                // checkpoint must not complete: the monitor hands in no part (the checkpoint
                // is abandoned, the previous one still covers everything) and reads on; the
                // sink keeps the undelivered results and retries them, and the source and
                // its other monitors are not held back.
                tracing::warn!(monitor = %self.name, checkpoint = id, error = %message, "sink not flushed: this checkpoint cannot complete");
                self.metrics.health.set(Health::Retrying, Some(message));
                plan.progress.release();
                return Ok(());
            }
        };
        if self.metrics.health.health() == Health::Retrying {
            tracing::info!(monitor = %self.name, "sinks work again");
            self.metrics.health.set(Health::Running, None);
        }
        let snapshot = plan.progress.take_snapshot();
        if let Some(s) = &snapshot {
            for sink in &self.sinks {
                sink.progress(&self.name, s.emitted_until).await;
            }
        }
        let mut part = self.part(plan, snapshot, sinks);
        part.copy = plan.progress.snapshot_time();
        let stall = plan.progress.release();
        part.stall = stall.unwrap_or_else(|| started.elapsed());
        tracing::debug!(monitor = %self.name, checkpoint = id, stall_us = part.stall.as_micros() as u64, "checkpoint part");
        self.hand_in(CheckpointMessage::Monitor { id, part }).await;
        Ok(())
    }

    /// Sends a checkpoint part, waiting while the bounded queue is full (see
    /// [`super::driver::CHECKPOINT_QUEUE`]) but never past a stop of this monitor (a monitor
    /// being dropped must end even if the control loop is not reading).
    async fn hand_in(&self, message: CheckpointMessage) {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = self.checkpoints.send(message) => {}
        }
    }

    fn part(
        &self,
        plan: &MonitorPlan,
        snapshot: Option<crate::engine::snapshot::WindowSnapshot>,
        sinks: BTreeMap<String, crate::checkpoint::SinkPosition>,
    ) -> MonitorPart {
        MonitorPart {
            monitor: self.name.clone(),
            definition: self.definition.clone(),
            source: self.source.clone(),
            snapshot,
            watermark: plan.progress.watermark(),
            counters: self.metrics.counters(),
            sinks,
            stall: Default::default(),
            copy: Default::default(),
        }
    }
}

/// One line describing an emitted window for the log: its bounds (with their dates), its
/// row count and, for a one-row window, the row's other values. Every row is printed by the
/// CLI on stdout; the log only says that the window was emitted.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{Float64Array, StringArray, TimestampMillisecondArray};
/// use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
/// use arrow::record_batch::RecordBatch;
/// let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("window_start", ts.clone(), false),
///     Field::new("window_end", ts, false),
///     Field::new("feature", DataType::Utf8, false),
///     Field::new("w", DataType::Float64, false),
/// ]));
/// let t0 = 1_893_499_200_000; // 2030-01-01 12:00:00Z
/// let batch = RecordBatch::try_new(schema, vec![
///     Arc::new(TimestampMillisecondArray::from(vec![t0, t0])),
///     Arc::new(TimestampMillisecondArray::from(vec![t0 + 10_000, t0 + 10_000])),
///     Arc::new(StringArray::from(vec!["a", "b"])),
///     Arc::new(Float64Array::from(vec![0.5, 0.25])),
/// ]).unwrap();
/// assert_eq!(
///     driftwatch::runtime::monitor_task::describe_window(&batch),
///     "window [2030-01-01 12:00:00Z, 2030-01-01 12:00:10Z) rows=2"
/// );
/// assert_eq!(
///     driftwatch::runtime::monitor_task::describe_window(&batch.slice(1, 1)),
///     "window [2030-01-01 12:00:00Z, 2030-01-01 12:00:10Z) rows=1 feature=b w=0.25"
/// );
/// ```
pub fn describe_window(batch: &RecordBatch) -> String {
    let options = FormatOptions::default()
        .with_null("NULL")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3fZ"));
    let bound = |name: &str, f: fn(&TimestampMillisecondArray) -> Option<i64>| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
            .and_then(f)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.fZ").to_string())
    };
    let mut line = match (
        bound("window_start", arrow::compute::min),
        bound("window_end", arrow::compute::max),
    ) {
        (Some(start), Some(end)) => format!("window [{start}, {end}) rows={}", batch.num_rows()),
        _ => format!("rows={}", batch.num_rows()),
    };
    if batch.num_rows() == 1 {
        let schema = batch.schema();
        for (i, field) in schema.fields().iter().enumerate() {
            if matches!(field.name().as_str(), "window_start" | "window_end") {
                continue;
            }
            let Ok(fmt) = ArrayFormatter::try_new(batch.column(i).as_ref(), &options) else {
                continue;
            };
            line.push_str(&format!(" {}={}", field.name(), fmt.value(0)));
        }
    }
    line
}
