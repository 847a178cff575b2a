//! Per-row cost of the streaming window operator by window shape, over the same rows: TUMBLE
//! 1 s, HOP 1 s / 1 min, HOP 1 s / 1 h (3600 panes per window) and SESSION (gap 10 s) under
//! steady traffic (every key active throughout, so its session never closes before the end).
//!
//! Two hours of event time at 100 rows per second over 10 keys (720 k rows), in batches of
//! 2 048 rows; the watermark advances with every batch, so windows emit as the stream goes
//! (not all at the end). count, sum, avg, min, max of one f64 column, grouped by key.
//!
//! Each shape runs twice: `*_drain`, where the input ends and every open window is flushed
//! (a HOP 1 s / 1 h monitor then emits the 3 599 windows per key that overlap the end of
//! data, 1.5× TUMBLE's count over these two hours), and `*_steady`, where the input stops
//! without ending, as an unbounded source does, and only windows the watermark closed are
//! emitted: one window per key and second for TUMBLE and HOP alike. `*_steady` is the
//! per-row cost of a monitor that runs for months; the drain is a one-time cost at the end
//! of a bounded replay.
//!
//! `cargo bench --bench window_shapes` prints rows/s per shape (criterion "thrpt"), with the
//! shipped binary's global allocator (mimalloc).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{collect, ExecutionPlan};
use driftwatch::engine::input::{InputWindow, WINDOW_END, WINDOW_START};
use driftwatch::engine::planner::replace_aggregate;
use driftwatch::engine::progress::StreamProgress;
use driftwatch::engine::{streaming_session, WindowKind};
use driftwatch::sources::EVENT_TIME_TYPE;
use driftwatch_udfs::BaselineRegistry;

/// The shipped binary's allocator (see `src/main.rs`): the operator's per-window partial
/// states are many small short-lived buffers, so the figures depend on it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECONDS: i64 = 7_200;
const RATE: i64 = 100;
const KEYS: i64 = 10;
const BATCH: usize = 2_048;
const ROWS: usize = (SECONDS * RATE) as usize;
const GAP_MS: i64 = 10_000;
/// Event time of the first row (2026-01-01, a whole hour, so windows align with the data).
const T0: i64 = 1_767_225_600_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", EVENT_TIME_TYPE, false),
        Field::new("k", DataType::Int64, false),
        Field::new("a", DataType::Float64, true),
        Field::new(WINDOW_START, EVENT_TIME_TYPE, false),
        Field::new(WINDOW_END, EVENT_TIME_TYPE, false),
    ]))
}

/// The rows with the `window_start` / `window_end` columns the input computes for `kind`.
fn batches(kind: WindowKind) -> Vec<RecordBatch> {
    let schema = schema();
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < ROWS {
        let n = BATCH.min(ROWS - i);
        let ts: Vec<i64> = (i..i + n).map(|r| T0 + r as i64 * 1_000 / RATE).collect();
        let (start, end): (Vec<i64>, Vec<i64>) = match kind.pane() {
            Some(pane) => ts
                .iter()
                .map(|&t| (kind.pane_start(t), kind.pane_start(t) + pane))
                .unzip(),
            None => ts.iter().map(|&t| (t, t + kind.size())).unzip(),
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from(ts)),
            Arc::new(Int64Array::from_iter_values(
                (i..i + n).map(|r| r as i64 % KEYS),
            )),
            Arc::new(Float64Array::from_iter_values(
                (i..i + n).map(|r| ((r * 7_919) % 1_000) as f64 * 0.01),
            )),
            Arc::new(TimestampMillisecondArray::from(start)),
            Arc::new(TimestampMillisecondArray::from(end)),
        ];
        out.push(RecordBatch::try_new(Arc::clone(&schema), columns).unwrap());
        i += n;
    }
    out
}

/// Yields the batches, advancing the watermark to just before each batch's first row.
#[derive(Debug)]
struct Feed {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    progress: Arc<StreamProgress>,
}

impl PartitionStream for Feed {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let progress = Arc::clone(&self.progress);
        let batches = self.batches.clone();
        let stream = futures::stream::iter(batches.into_iter().map(move |b| {
            let ts = b
                .column(0)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap();
            progress.advance(ts.value(0) - 1);
            Ok(b)
        }));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

const QUERY: &str = "SELECT window_start, window_end, k, count(*) AS n, sum(a), avg(a), min(a),
    max(a) FROM t GROUP BY window_start, window_end, k";

/// Runs the monitor over `data`; `drain`: the input ends (flush every window) rather than
/// stops. Returns the number of result rows.
async fn run(kind: WindowKind, data: &[RecordBatch], drain: bool) -> usize {
    let progress = Arc::new(StreamProgress::new(true));
    let reg = Arc::new(BaselineRegistry::new());
    let ctx = streaming_session(&reg);
    let feed = Feed {
        schema: schema(),
        batches: data.to_vec(),
        progress: Arc::clone(&progress),
    };
    let table = StreamingTable::try_new(schema(), vec![Arc::new(feed)]).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    let plan: Arc<dyn ExecutionPlan> = ctx
        .sql(QUERY)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let window = InputWindow {
        kind,
        time_index: 0,
        allowed_lateness_ms: 0,
    };
    let plan = replace_aggregate(plan, window, Default::default(), &progress).unwrap();
    if drain {
        // The stream ends after the last batch: flush what is still open.
        progress.end();
    }
    let out = collect(plan, ctx.task_ctx()).await.unwrap();
    out.iter().map(|b| b.num_rows()).sum()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shapes = [
        ("tumble_1s", WindowKind::Tumble { size: 1_000 }),
        (
            "hop_1s_1min",
            WindowKind::Hop {
                size: 60_000,
                slide: 1_000,
            },
        ),
        (
            "hop_1s_1h",
            WindowKind::Hop {
                size: 3_600_000,
                slide: 1_000,
            },
        ),
        ("session_gap_10s", WindowKind::Session { gap: GAP_MS }),
    ];
    let mut group = c.benchmark_group("window_shapes");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    for (name, kind) in shapes {
        let data = batches(kind);
        // Draining, every window (and, for sessions, one session per key) comes out once.
        let drained = match kind {
            WindowKind::Tumble { .. } => (SECONDS * KEYS) as usize,
            WindowKind::Hop { size, slide } => ((SECONDS + size / slide - 1) * KEYS) as usize,
            WindowKind::Session { .. } => KEYS as usize,
        };
        // Stopping, the windows ending by the last watermark (just before the last batch's
        // first row): one per key and second for TUMBLE and HOP; sessions stay open.
        let last = data.last().expect("rows");
        let last_start = last
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap()
            .value(0);
        let closed_seconds = (last_start - 1 - T0) / 1_000;
        let steady = match kind {
            WindowKind::Session { .. } => 0,
            _ => (closed_seconds * KEYS) as usize,
        };
        for (mode, drain, expected) in [("drain", true, drained), ("steady", false, steady)] {
            let id = format!("{name}_{mode}");
            assert_eq!(rt.block_on(run(kind, &data, drain)), expected, "{id}");
            group.bench_function(BenchmarkId::new(id, ROWS), |b| {
                b.iter(|| rt.block_on(run(kind, &data, drain)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
