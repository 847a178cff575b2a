//! The streaming window operator alone: count, avg, stddev, min, max of 4 f64 columns over
//! 15 s tumbling windows, on pre-built Arrow batches (no decoding, no channels), next to
//! DataFusion's own batch `AggregateExec` doing the same GROUP BY on the same batches; and
//! the same operator running a drift monitor (wasserstein, ks_stat, ks_pvalue of the 4
//! columns against a 100 k-row baseline: 150 k rows per window).
//!
//! `cargo bench --bench window_operator` prints rows/s (criterion "thrpt").

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use datafusion::datasource::MemTable;
use datafusion::physical_plan::{collect, ExecutionPlan};
use driftwatch::engine::input::{InputWindow, WINDOW_END, WINDOW_START};
use driftwatch::engine::planner::replace_aggregate;
use driftwatch::engine::progress::StreamProgress;
use driftwatch::engine::{streaming_session, WindowKind};
use driftwatch::sources::EVENT_TIME_TYPE;
use driftwatch_udfs::{BaselineProfile, BaselineRegistry, ProfileOptions};

const ROWS: usize = 2_000_000;
const BATCH: usize = 8_192;
const WINDOW_MS: i64 = 15_000;
/// Event time advances 10,000 rows per second of event time (as in the anchors' generator).
const RATE: i64 = 10_000;

fn batches() -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("ts", EVENT_TIME_TYPE, false),
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Float64, true),
        Field::new("c", DataType::Float64, true),
        Field::new("d", DataType::Float64, true),
        Field::new(WINDOW_START, EVENT_TIME_TYPE, false),
        Field::new(WINDOW_END, EVENT_TIME_TYPE, false),
    ]));
    let t0 = 1_767_225_600_000i64;
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < ROWS {
        let n = BATCH.min(ROWS - i);
        let ts: Vec<i64> = (i..i + n).map(|k| t0 + k as i64 * 1000 / RATE).collect();
        let col = |f: f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(
                (i..i + n).map(|k| ((k * 7919) % 1000) as f64 * f),
            ))
        };
        let start: Vec<i64> = ts
            .iter()
            .map(|t| t.div_euclid(WINDOW_MS) * WINDOW_MS)
            .collect();
        let end: Vec<i64> = start.iter().map(|s| s + WINDOW_MS).collect();
        out.push(
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(TimestampMillisecondArray::from(ts)),
                    col(0.01),
                    col(0.02),
                    col(0.03),
                    col(0.04),
                    Arc::new(TimestampMillisecondArray::from(start)),
                    Arc::new(TimestampMillisecondArray::from(end)),
                ],
            )
            .unwrap(),
        );
        i += n;
    }
    (schema, out)
}

const QUERY: &str = "SELECT window_start, window_end, count(*) AS n,
    avg(a), stddev(a), min(a), max(a), avg(b), stddev(b), min(b), max(b),
    avg(c), stddev(c), min(c), max(c), avg(d), stddev(d), min(d), max(d)
    FROM t GROUP BY window_start, window_end";

const DRIFT_QUERY: &str = "SELECT window_start, window_end,
    wasserstein(a, 'ref'), ks_stat(a, 'ref'), ks_pvalue(a, 'ref'),
    wasserstein(b, 'ref'), ks_stat(b, 'ref'), ks_pvalue(b, 'ref'),
    wasserstein(c, 'ref'), ks_stat(c, 'ref'), ks_pvalue(c, 'ref'),
    wasserstein(d, 'ref'), ks_stat(d, 'ref'), ks_pvalue(d, 'ref')
    FROM t GROUP BY window_start, window_end";

/// Baseline `ref`: 100 k rows of the columns a..d, shifted by 1 % so the windows drift a little.
fn baselines(data: &[RecordBatch]) -> Arc<BaselineRegistry> {
    let reference: Vec<RecordBatch> = data
        .iter()
        .take(100_000 / BATCH)
        .map(|b| {
            let cols = (1..=4)
                .map(|i| {
                    let c = b.column(i).as_any().downcast_ref::<Float64Array>().unwrap();
                    Arc::new(Float64Array::from_iter_values(
                        c.values().iter().map(|v| v * 1.01),
                    )) as ArrayRef
                })
                .collect();
            let fields: Vec<Field> = (1..=4).map(|i| b.schema().field(i).clone()).collect();
            RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
        })
        .collect();
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(
        BaselineProfile::from_batches("ref", &reference, &ProfileOptions::default()).unwrap(),
    );
    reg
}

async fn batch_plan(
    query: &str,
    baselines: &Arc<BaselineRegistry>,
    schema: Arc<Schema>,
    data: Vec<RecordBatch>,
) -> Arc<dyn ExecutionPlan> {
    let ctx = streaming_session(baselines);
    let table = MemTable::try_new(schema, vec![data]).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    ctx.sql(query)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (schema, data) = batches();
    let mut group = c.benchmark_group("window_operator");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    let no_baselines = Arc::new(BaselineRegistry::new());
    let with_ref = baselines(&data);
    for (name, query, reg) in [
        ("driftwatch_tumble_15s", QUERY, &no_baselines),
        ("driftwatch_drift_tumble_15s", DRIFT_QUERY, &with_ref),
    ] {
        group.bench_function(BenchmarkId::new(name, ROWS), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let plan = batch_plan(query, reg, Arc::clone(&schema), data.clone()).await;
                    let progress = Arc::new(StreamProgress::new(true));
                    progress.end();
                    let window = InputWindow {
                        kind: WindowKind::Tumble { size: WINDOW_MS },
                        time_index: 0,
                        allowed_lateness_ms: 0,
                    };
                    let plan =
                        replace_aggregate(plan, window, Default::default(), &progress).unwrap();
                    let ctx = streaming_session(reg);
                    let out = collect(plan, ctx.task_ctx()).await.unwrap();
                    assert_eq!(
                        out.iter().map(|b| b.num_rows()).sum::<usize>(),
                        ROWS / RATE as usize / 15 + 1
                    );
                })
            })
        });
    }
    group.bench_function(BenchmarkId::new("datafusion_aggregate_exec", ROWS), |b| {
        b.iter(|| {
            rt.block_on(async {
                let plan =
                    batch_plan(QUERY, &no_baselines, Arc::clone(&schema), data.clone()).await;
                let ctx = streaming_session(&no_baselines);
                collect(plan, ctx.task_ctx()).await.unwrap()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
