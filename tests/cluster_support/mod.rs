//! Harness of the cluster-stage tests: six source partitions of generated rows, monitor
//! plans over a scripted feed, stage 1 per partition, the shuffle, stage 2, one instance, and
//! comparisons of result tables.
#![allow(dead_code)]

pub use std::collections::BTreeMap;
pub use std::sync::{Arc, Mutex};

pub use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, StringArray, TimestampMillisecondArray,
    UInt32Array,
};
pub use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
pub use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
pub use arrow::record_batch::RecordBatch;
pub use datafusion::catalog::streaming::StreamingTable;
pub use datafusion::execution::{SendableRecordBatchStream, TaskContext};
pub use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
pub use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
pub use datafusion::physical_plan::{collect, ExecutionPlan};
pub use driftwatch::engine::cluster_plan::{stage1_plan, stage2_input_schema, stage2_plan};
pub use driftwatch::engine::input::{InputWindow, WINDOW_END, WINDOW_START};
pub use driftwatch::engine::planner::replace_aggregate;
pub use driftwatch::engine::progress::StreamProgress;
pub use driftwatch::engine::{streaming_session, WindowKind};
pub use driftwatch::sources::EVENT_TIME_TYPE;
pub use driftwatch_udfs::baseline::{BaselineProfile, ProfileOptions};
pub use driftwatch_udfs::BaselineRegistry;

pub use rand::rngs::StdRng;
pub use rand::{Rng, SeedableRng};

pub const PARTITIONS: i32 = 6;
pub const ROWS_PER_PARTITION: usize = 2_000;
pub const DELAY_MS: i64 = 2_000;
pub const T0: i64 = 1_767_225_600_000;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", EVENT_TIME_TYPE, false),
        Field::new("k", DataType::Utf8, false),
        Field::new("feature", DataType::Utf8, false),
        Field::new("value", DataType::Float64, true),
        Field::new(WINDOW_START, EVENT_TIME_TYPE, false),
        Field::new(WINDOW_END, EVENT_TIME_TYPE, false),
    ]))
}

/// One source partition's rows in offset order: `(ts, k, feature, value)`, out of order by
/// less than the watermark delay, so no row is late whatever the batching.
pub type Row = (i64, String, String, Option<f64>);

pub fn partition_rows(p: i32) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(1_000 + p as u64);
    let mut t = T0 + p as i64 * 137;
    (0..ROWS_PER_PARTITION)
        .map(|i| {
            t += rng.gen_range(50..150);
            let jitter = rng.gen_range(0..DELAY_MS / 2);
            let k = format!("k{}", rng.gen_range(0..4));
            let feature = format!("f{}", i % 2);
            let shift = if t > T0 + 100_000 { 0.7 } else { 0.0 };
            let value = (rng.gen::<f64>() * 2.0 - 1.0) * 1.7 + shift + p as f64 * 0.01;
            let value = (i % 97 != 0).then_some(value);
            (t - jitter, k, feature, value)
        })
        .collect()
}

/// Rows as batches of the monitor's input (window columns for `kind`'s panes).
pub fn to_batch(rows: &[Row], kind: WindowKind) -> RecordBatch {
    let pane = kind.pane().unwrap();
    let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let start: Vec<i64> = ts.iter().map(|&t| kind.pane_start(t)).collect();
    let end: Vec<i64> = start.iter().map(|s| s + pane).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(ts)),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.2))),
        Arc::new(Float64Array::from(
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )),
        Arc::new(TimestampMillisecondArray::from(start)),
        Arc::new(TimestampMillisecondArray::from(end)),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

/// What a feed yields: a batch, after setting the watermark.
#[derive(Debug, Clone)]
pub struct Step {
    pub watermark: i64,
    pub batch: RecordBatch,
}

#[derive(Debug)]
pub struct Feed {
    pub schema: SchemaRef,
    pub steps: Mutex<Option<Vec<Step>>>,
    pub progress: Arc<StreamProgress>,
}

impl PartitionStream for Feed {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let progress = Arc::clone(&self.progress);
        let steps = self.steps.lock().unwrap().take().expect("executed once");
        let stream = futures::stream::iter(steps.into_iter().map(move |s| {
            progress.advance(s.watermark);
            Ok(s.batch)
        }));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

pub fn registry() -> Arc<BaselineRegistry> {
    let mut rng = StdRng::seed_from_u64(7);
    let n = 2_000;
    let f0: Vec<f64> = (0..n).map(|_| rng.gen::<f64>() * 3.4 - 1.7).collect();
    let f1: Vec<f64> = (0..n).map(|_| rng.gen::<f64>() * 3.0 - 1.4).collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("f0", DataType::Float64, false),
            Field::new("f1", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Float64Array::from(f0)),
            Arc::new(Float64Array::from(f1)),
        ],
    )
    .unwrap();
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(BaselineProfile::from_batches("ref", &[batch], &ProfileOptions::default()).unwrap());
    reg
}

/// A monitor plan over `steps`, with its progress.
pub async fn monitor_plan(
    query: &str,
    kind: WindowKind,
    reg: &Arc<BaselineRegistry>,
    steps: Vec<Step>,
) -> (
    Arc<dyn ExecutionPlan>,
    Arc<TaskContext>,
    Arc<StreamProgress>,
) {
    let progress = Arc::new(StreamProgress::new(true));
    let ctx = streaming_session(reg);
    let feed = Feed {
        schema: schema(),
        steps: Mutex::new(Some(steps)),
        progress: Arc::clone(&progress),
    };
    let table = StreamingTable::try_new(schema(), vec![Arc::new(feed)]).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    let plan = ctx
        .sql(query)
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
    (plan, ctx.task_ctx(), progress)
}

/// Cuts `rows` into batches of random sizes; each step's watermark is the partition's own
/// (max event time of the earlier batches − delay).
pub fn steps_of(rows: &[Row], kind: WindowKind, rng: &mut StdRng) -> Vec<Step> {
    let mut out = Vec::new();
    let mut max_ts = i64::MIN;
    let mut i = 0;
    while i < rows.len() {
        let n = rng.gen_range(1..300).min(rows.len() - i);
        let part = &rows[i..i + n];
        out.push(Step {
            watermark: max_ts.saturating_sub(DELAY_MS),
            batch: to_batch(part, kind),
        });
        max_ts = max_ts.max(part.iter().map(|r| r.0).max().unwrap());
        i += n;
    }
    out
}

/// One instance: every partition's rows through one plan (global watermark), flushed at
/// the end.
pub async fn one_instance(
    query: &str,
    kind: WindowKind,
    reg: &Arc<BaselineRegistry>,
) -> RecordBatch {
    let mut rows: Vec<Row> = (0..PARTITIONS).flat_map(partition_rows).collect();
    rows.sort_by_key(|r| r.0);
    let mut rng = StdRng::seed_from_u64(99);
    let steps = steps_of(&rows, kind, &mut rng);
    let (plan, ctx, progress) = monitor_plan(query, kind, reg, steps).await;
    progress.end();
    let schema = plan.schema();
    sorted(concat_batches(&schema, &collect(plan, ctx).await.unwrap()).unwrap())
}

/// A record of the shuffle from one source partition.
#[derive(Debug, Clone)]
pub enum Record {
    Partial(RecordBatch),
    Watermark(i64),
}

/// Stage 1 of every partition (batches cut by `rng`): each partition's partials (tagged
/// with the partition) in pane order, each followed by the watermark that released it (the
/// pane's end), then the end of input; and the schema of stage 2's input.
pub async fn stage1(
    query: &str,
    kind: WindowKind,
    reg: &Arc<BaselineRegistry>,
    rng: &mut StdRng,
) -> (Vec<Vec<Record>>, SchemaRef) {
    let mut per_partition: Vec<Vec<Record>> = Vec::new();
    let mut merge_schema = None;
    for p in 0..PARTITIONS {
        let steps = steps_of(&partition_rows(p), kind, rng);
        let (plan, ctx, progress) = monitor_plan(query, kind, reg, steps).await;
        merge_schema = Some(stage2_input_schema(&plan).unwrap());
        let stage1 = stage1_plan(&plan).unwrap();
        progress.end();
        let partials = collect(stage1, ctx).await.unwrap();
        let pane = kind.pane().unwrap();
        let mut records = Vec::new();
        for b in partials {
            let start = b
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0);
            records.push(Record::Partial(tag(&b, p, merge_schema.as_ref().unwrap())));
            records.push(Record::Watermark(start + pane));
        }
        records.push(Record::Watermark(i64::MAX));
        per_partition.push(records);
    }
    (per_partition, merge_schema.unwrap())
}

/// Stage 2 of one partition over `steps` (tagged partials, each after its watermark).
pub async fn stage2(
    query: &str,
    kind: WindowKind,
    reg: &Arc<BaselineRegistry>,
    merge_schema: &SchemaRef,
    steps: Vec<Step>,
) -> RecordBatch {
    let (plan, ctx, progress) = monitor_plan(query, kind, reg, Vec::new()).await;
    let feed = Feed {
        schema: Arc::clone(merge_schema),
        steps: Mutex::new(Some(steps)),
        progress: Arc::clone(&progress),
    };
    let plan = stage2_plan(plan, stage2_input(merge_schema, Arc::new(feed))).unwrap();
    progress.end();
    let schema = plan.schema();
    concat_batches(&schema, &collect(plan, ctx).await.unwrap()).unwrap()
}

pub fn stage2_input(schema: &SchemaRef, feed: Arc<dyn PartitionStream>) -> Arc<dyn ExecutionPlan> {
    Arc::new(
        StreamingTableExec::try_new(Arc::clone(schema), vec![feed], None, Vec::new(), true, None)
            .unwrap(),
    )
}

/// The cluster: stage 1 per partition (batches cut by `seed`), partials spread over
/// `partitions` stage-2 partitions by key and interleaved at random, stage 2 per partition.
pub async fn cluster(
    query: &str,
    kind: WindowKind,
    reg: &Arc<BaselineRegistry>,
    seed: u64,
    partitions: usize,
) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let (per_partition, merge_schema) = stage1(query, kind, reg, &mut rng).await;

    let mut outputs = Vec::new();
    for r in 0..partitions {
        let steps = shuffled(&per_partition, r, partitions, &mut rng);
        outputs.push(stage2(query, kind, reg, &merge_schema, steps).await);
    }
    let schema = outputs[0].schema();
    sorted(concat_batches(&schema, &outputs).unwrap())
}

/// The shuffle as stage-2 partition `r` of `partitions` sees it: each partial's groups go to
/// the stage-2 partition of their key, every watermark to every stage-2 partition; source
/// partitions interleaved at random, each in order.
pub fn shuffled(
    per_partition: &[Vec<Record>],
    r: usize,
    partitions: usize,
    rng: &mut StdRng,
) -> Vec<Step> {
    let mut cursors = vec![0usize; PARTITIONS as usize];
    let mut marks = vec![i64::MIN; PARTITIONS as usize];
    let mut steps = Vec::new();
    loop {
        let live: Vec<usize> = (0..PARTITIONS as usize)
            .filter(|&p| cursors[p] < per_partition[p].len())
            .collect();
        if live.is_empty() {
            break;
        }
        let p = live[rng.gen_range(0..live.len())];
        match &per_partition[p][cursors[p]] {
            Record::Watermark(w) => marks[p] = marks[p].max(*w),
            Record::Partial(b) => {
                let mine = rows_of_partition(b, r, partitions);
                if mine.num_rows() > 0 {
                    steps.push(Step {
                        watermark: *marks.iter().min().unwrap(),
                        batch: mine,
                    });
                }
            }
        }
        cursors[p] += 1;
    }
    steps
}

/// A partial batch tagged with its source partition.
pub fn tag(partial: &RecordBatch, p: i32, schema: &SchemaRef) -> RecordBatch {
    let mut columns = vec![Arc::new(Int32Array::from(vec![p; partial.num_rows()])) as ArrayRef];
    columns.extend(partial.columns().iter().cloned());
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

/// The rows of a tagged partial whose group key (column 2) falls in stage-2 partition `r`.
pub fn rows_of_partition(b: &RecordBatch, r: usize, n: usize) -> RecordBatch {
    let keys = b.column(2).as_string::<i32>();
    let idx: Vec<u32> = (0..b.num_rows())
        .filter(|&i| keys.value(i).bytes().map(usize::from).sum::<usize>() % n == r)
        .map(|i| i as u32)
        .collect();
    take_record_batch(b, &UInt32Array::from(idx)).unwrap()
}

/// Rows ordered by window start, window end and key (the first three columns).
pub fn sorted(b: RecordBatch) -> RecordBatch {
    let columns: Vec<SortColumn> = (0..3)
        .map(|i| SortColumn {
            values: Arc::clone(b.column(i)),
            options: None,
        })
        .collect();
    let idx = lexsort_to_indices(&columns, None).unwrap();
    take_record_batch(&b, &idx).unwrap()
}

/// Every value of two result tables, as bits: equal means bit-identical.
pub fn cells(b: &RecordBatch) -> BTreeMap<(usize, usize), String> {
    let mut out = BTreeMap::new();
    for (c, col) in b.columns().iter().enumerate() {
        for row in 0..b.num_rows() {
            let v = if col.is_null(row) {
                "NULL".to_string()
            } else if let Some(f) = col.as_any().downcast_ref::<Float64Array>() {
                format!("{:016x}", f.value(row).to_bits())
            } else {
                arrow::util::display::array_value_to_string(col, row).unwrap()
            };
            out.insert((row, c), v);
        }
    }
    out
}

/// Same windows and groups as one instance, counts exact, floating values to 1e-9.
pub fn assert_close(cluster: &RecordBatch, single: &RecordBatch, what: &str) {
    assert_eq!(cluster.num_rows(), single.num_rows(), "{what}: rows");
    assert!(
        cluster.num_rows() > 20,
        "{what}: too few windows to mean anything"
    );
    for c in 0..single.num_columns() {
        let (a, b) = (cluster.column(c), single.column(c));
        match (
            a.as_any().downcast_ref::<Float64Array>(),
            b.as_any().downcast_ref::<Float64Array>(),
        ) {
            (Some(a), Some(b)) => {
                for i in 0..a.len() {
                    assert_eq!(a.is_null(i), b.is_null(i), "{what}: null at {i},{c}");
                    if a.is_valid(i) {
                        let (x, y) = (a.value(i), b.value(i));
                        let tol = 1e-9 * y.abs().max(1.0);
                        assert!((x - y).abs() <= tol, "{what}: row {i} col {c}: {x} vs {y}");
                    }
                }
            }
            _ => assert_eq!(a.as_ref(), b.as_ref(), "{what}: column {c}"),
        }
    }
}

pub const STATS: &str = "SELECT window_start, window_end, k, count(*) AS n, count(value) AS nv,
    sum(value) AS s, avg(value) AS a, stddev(value) AS sd, var_pop(value) AS vp, min(value) AS lo,
    max(value) AS hi FROM t GROUP BY window_start, window_end, k";

pub const DRIFT: &str = "SELECT window_start, window_end, feature, count(value) AS n,
    wasserstein(value, 'ref', feature) AS w, ks_pvalue(value, 'ref', feature) AS ks_p,
    psi(value, 'ref', feature) AS psi FROM t GROUP BY window_start, window_end, feature";
