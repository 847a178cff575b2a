//! SESSION windows under steady traffic, for `scripts/bench-session.sh`: per-batch latency of
//! the window operator and the process RSS over the run, to show both stay flat.
//!
//! `session_steady [ROWS]` (default 10 000 000): 10 000 rows per second of event time in
//! batches of 10 000 rows; 2 000 keys active at a time, the population rotating every minute
//! of event time (old keys go quiet, so their sessions close by the 10 s gap as the watermark
//! passes), plus one hot key that is never quiet (its session stays open the whole run).
//! count, sum, avg, min, max, stddev of one value per session and key.
//!
//! A batch's latency is the time from the input handing the batch to the operator until the
//! operator asks for the next one (the update, the sessions it closes and their output).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use driftwatch::engine::input::{InputWindow, WINDOW_END, WINDOW_START};
use driftwatch::engine::planner::replace_aggregate;
use driftwatch::engine::progress::StreamProgress;
use driftwatch::engine::window_agg::{StateGauge, WindowAggregateExec};
use driftwatch::engine::{streaming_session, WindowKind};
use driftwatch::sources::EVENT_TIME_TYPE;
use driftwatch_udfs::BaselineRegistry;
use futures::{Stream, StreamExt};

const BATCH: usize = 10_000;
const RATE: i64 = 10_000;
const ACTIVE_KEYS: i64 = 2_000;
const ROTATE_MS: i64 = 60_000;
const GAP_MS: i64 = 10_000;
const T0: i64 = 1_767_225_600_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", EVENT_TIME_TYPE, false),
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Float64, true),
        Field::new(WINDOW_START, EVENT_TIME_TYPE, false),
        Field::new(WINDOW_END, EVENT_TIME_TYPE, false),
    ]))
}

fn batch(schema: &SchemaRef, from: usize, n: usize) -> RecordBatch {
    let ts: Vec<i64> = (from..from + n)
        .map(|r| T0 + r as i64 * 1_000 / RATE)
        .collect();
    let keys = ts.iter().zip(from..).map(|(&t, r)| {
        if r % 101 == 0 {
            -1
        } else {
            (t - T0) / ROTATE_MS * ACTIVE_KEYS + r as i64 % ACTIVE_KEYS
        }
    });
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(ts.clone())),
        Arc::new(Int64Array::from_iter_values(keys)),
        Arc::new(Float64Array::from_iter_values(
            (from..from + n).map(|r| ((r * 7_919) % 1_000) as f64 * 0.01),
        )),
        Arc::new(TimestampMillisecondArray::from(ts.clone())),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            ts.iter().map(|t| t + GAP_MS),
        )),
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).expect("batch")
}

/// Per batch: latency, RSS and state bytes after it.
type Samples = Arc<Mutex<Vec<(Duration, u64, usize)>>>;

/// Generates the rows, advancing the watermark (2 s behind) and timing the consumer.
struct Generator {
    schema: SchemaRef,
    rows: usize,
    at: usize,
    progress: Arc<StreamProgress>,
    handed: Option<Instant>,
    samples: Samples,
    gauge: Arc<Mutex<Option<Arc<StateGauge>>>>,
}

impl Stream for Generator {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(handed) = self.handed.take() {
            let latency = handed.elapsed();
            let state = self
                .gauge
                .lock()
                .unwrap()
                .as_ref()
                .map_or(0, |g| g.get().bytes);
            self.samples
                .lock()
                .unwrap()
                .push((latency, rss_bytes(), state));
        }
        if self.at >= self.rows {
            return Poll::Ready(None);
        }
        let n = BATCH.min(self.rows - self.at);
        let b = batch(&self.schema, self.at, n);
        self.at += n;
        self.progress
            .advance(T0 + self.at as i64 * 1_000 / RATE - 2_000);
        self.handed = Some(Instant::now());
        Poll::Ready(Some(Ok(b)))
    }
}

#[derive(Debug)]
struct Feed {
    schema: SchemaRef,
    rows: usize,
    progress: Arc<StreamProgress>,
    samples: Samples,
    gauge: Arc<Mutex<Option<Arc<StateGauge>>>>,
}

impl PartitionStream for Feed {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            Generator {
                schema: Arc::clone(&self.schema),
                rows: self.rows,
                at: 0,
                progress: Arc::clone(&self.progress),
                handed: None,
                samples: Arc::clone(&self.samples),
                gauge: Arc::clone(&self.gauge),
            },
        ))
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4_096)
}

fn find_gauge(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<StateGauge>> {
    if let Some(w) = plan.downcast_ref::<WindowAggregateExec>() {
        return Some(w.state_gauge());
    }
    plan.children().into_iter().find_map(find_gauge)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.replace('_', "").parse().expect("ROWS is a number"))
        .unwrap_or(10_000_000);
    let progress = Arc::new(StreamProgress::new(true));
    let samples: Samples = Arc::new(Mutex::new(Vec::new()));
    let gauge = Arc::new(Mutex::new(None));
    let reg = Arc::new(BaselineRegistry::new());
    let ctx = streaming_session(&reg);
    let feed = Feed {
        schema: schema(),
        rows,
        progress: Arc::clone(&progress),
        samples: Arc::clone(&samples),
        gauge: Arc::clone(&gauge),
    };
    ctx.register_table(
        "t",
        Arc::new(StreamingTable::try_new(schema(), vec![Arc::new(feed)])?),
    )?;
    let plan = ctx
        .sql(
            "SELECT window_start, window_end, k, count(*) AS n, sum(v), avg(v), min(v), max(v),
             stddev(v) FROM t GROUP BY window_start, window_end, k",
        )
        .await?
        .create_physical_plan()
        .await?;
    let window = InputWindow {
        kind: WindowKind::Session { gap: GAP_MS },
        time_index: 0,
        allowed_lateness_ms: 0,
    };
    let plan = replace_aggregate(plan, window, Default::default(), &progress)
        .map_err(datafusion::common::DataFusionError::Plan)?;
    *gauge.lock().unwrap() = find_gauge(&plan);
    progress.end();
    let started = Instant::now();
    let mut out = execute_stream(plan, ctx.task_ctx())?;
    let mut sessions = 0usize;
    while let Some(b) = out.next().await {
        sessions += b?.num_rows();
    }
    let elapsed = started.elapsed();
    let samples = samples.lock().unwrap().clone();
    println!(
        "SESSION gap 10 s, {rows} rows in {} batches of {BATCH}: {:.2} s, {:.0} rows/s, \
         {sessions} sessions emitted",
        samples.len(),
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64()
    );
    println!("decile  batches  p50_ms  p99_ms  max_ms  rss_mib  state_kib");
    let per = samples.len().div_ceil(10).max(1);
    for (d, chunk) in samples.chunks(per).enumerate() {
        let mut lat: Vec<Duration> = chunk.iter().map(|s| s.0).collect();
        lat.sort();
        let last = chunk.last().expect("non-empty chunk");
        println!(
            "{:>6}  {:>7}  {:>6.2}  {:>6.2}  {:>6.2}  {:>7.1}  {:>9.1}",
            d + 1,
            chunk.len(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().expect("non-empty").as_secs_f64() * 1e3,
            last.1 as f64 / (1 << 20) as f64,
            last.2 as f64 / 1024.0
        );
    }
    Ok(())
}
