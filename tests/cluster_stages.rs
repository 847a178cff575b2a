//! The two stages of a cluster ([`driftwatch::cluster`]) give the same windows, value for
//! value, however the source partitions' rows were cut into micro-batches, however many
//! stage-2 partitions the groups were spread over and in whatever order the shuffle
//! delivered the partials — and the same windows as one instance (to rounding).
//!
//! Six source partitions, each with its own watermark (rows out of order by less than the
//! delay), stage 1 per partition, partials spread over 1, 2 or 3 stage-2 partitions by key
//! and interleaved at random (each partition's records in order, as Kafka keeps them).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, StringArray, TimestampMillisecondArray,
    UInt32Array,
};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{collect, ExecutionPlan};
use driftwatch::engine::cluster_plan::{stage1_plan, stage2_input_schema, stage2_plan};
use driftwatch::engine::input::{InputWindow, WINDOW_END, WINDOW_START};
use driftwatch::engine::planner::replace_aggregate;
use driftwatch::engine::progress::StreamProgress;
use driftwatch::engine::{streaming_session, WindowKind};
use driftwatch::sources::EVENT_TIME_TYPE;
use driftwatch_udfs::baseline::{BaselineProfile, ProfileOptions};
use driftwatch_udfs::BaselineRegistry;
mod kafka_support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PARTITIONS: i32 = 6;
const ROWS_PER_PARTITION: usize = 2_000;
const DELAY_MS: i64 = 2_000;
const T0: i64 = 1_767_225_600_000;

fn schema() -> SchemaRef {
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
type Row = (i64, String, String, Option<f64>);

fn partition_rows(p: i32) -> Vec<Row> {
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
fn to_batch(rows: &[Row], kind: WindowKind) -> RecordBatch {
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
struct Step {
    watermark: i64,
    batch: RecordBatch,
}

#[derive(Debug)]
struct Feed {
    schema: SchemaRef,
    steps: Mutex<Option<Vec<Step>>>,
    progress: Arc<StreamProgress>,
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

fn registry() -> Arc<BaselineRegistry> {
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
async fn monitor_plan(
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
fn steps_of(rows: &[Row], kind: WindowKind, rng: &mut StdRng) -> Vec<Step> {
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
async fn one_instance(query: &str, kind: WindowKind, reg: &Arc<BaselineRegistry>) -> RecordBatch {
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
enum Record {
    Partial(RecordBatch),
    Watermark(i64),
}

/// Stage 1 of every partition (batches cut by `rng`): each partition's partials (tagged
/// with the partition) in pane order, each followed by the watermark that released it (the
/// pane's end), then the end of input; and the schema of stage 2's input.
async fn stage1(
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
async fn stage2(
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
    let input = Arc::new(
        StreamingTableExec::try_new(
            Arc::clone(merge_schema),
            vec![Arc::new(feed)],
            None,
            Vec::new(),
            true,
            None,
        )
        .unwrap(),
    );
    let plan = stage2_plan(plan, input).unwrap();
    progress.end();
    let schema = plan.schema();
    concat_batches(&schema, &collect(plan, ctx).await.unwrap()).unwrap()
}

/// The cluster: stage 1 per partition (batches cut by `seed`), partials spread over
/// `partitions` stage-2 partitions by key and interleaved at random, stage 2 per partition.
async fn cluster(
    query: &str,
    kind: WindowKind,
    reg: &Arc<BaselineRegistry>,
    seed: u64,
    partitions: usize,
) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let (per_partition, merge_schema) = stage1(query, kind, reg, &mut rng).await;

    // The shuffle: each partial's groups to the stage-2 partition of their key; every
    // watermark to every stage-2 partition; partitions interleaved at random, each in order.
    let mut outputs = Vec::new();
    for r in 0..partitions {
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
        outputs.push(stage2(query, kind, reg, &merge_schema, steps).await);
    }
    let schema = outputs[0].schema();
    sorted(concat_batches(&schema, &outputs).unwrap())
}

/// A partial batch tagged with its source partition.
fn tag(partial: &RecordBatch, p: i32, schema: &SchemaRef) -> RecordBatch {
    let mut columns = vec![Arc::new(Int32Array::from(vec![p; partial.num_rows()])) as ArrayRef];
    columns.extend(partial.columns().iter().cloned());
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

/// The rows of a tagged partial whose group key (column 2) falls in stage-2 partition `r`.
fn rows_of_partition(b: &RecordBatch, r: usize, n: usize) -> RecordBatch {
    let keys = b.column(2).as_string::<i32>();
    let idx: Vec<u32> = (0..b.num_rows())
        .filter(|&i| keys.value(i).bytes().map(usize::from).sum::<usize>() % n == r)
        .map(|i| i as u32)
        .collect();
    take_record_batch(b, &UInt32Array::from(idx)).unwrap()
}

/// Rows ordered by window start, window end and key (the first three columns).
fn sorted(b: RecordBatch) -> RecordBatch {
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
fn cells(b: &RecordBatch) -> BTreeMap<(usize, usize), String> {
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
fn assert_close(cluster: &RecordBatch, single: &RecordBatch, what: &str) {
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

const STATS: &str = "SELECT window_start, window_end, k, count(*) AS n, count(value) AS nv,
    sum(value) AS s, avg(value) AS a, stddev(value) AS sd, var_pop(value) AS vp, min(value) AS lo,
    max(value) AS hi FROM t GROUP BY window_start, window_end, k";

const DRIFT: &str = "SELECT window_start, window_end, feature, count(value) AS n,
    wasserstein(value, 'ref', feature) AS w, ks_pvalue(value, 'ref', feature) AS ks_p,
    psi(value, 'ref', feature) AS psi FROM t GROUP BY window_start, window_end, feature";

async fn check(query: &str, kind: WindowKind, what: &str) {
    let reg = registry();
    let a = cluster(query, kind, &reg, 1, 1).await;
    let b = cluster(query, kind, &reg, 2, 3).await;
    let c = cluster(query, kind, &reg, 3, 2).await;
    assert_eq!(cells(&a), cells(&b), "{what}: 1 vs 3 stage-2 partitions");
    assert_eq!(cells(&a), cells(&c), "{what}: 1 vs 2 stage-2 partitions");
    let single = one_instance(query, kind, &reg).await;
    assert_close(&a, &single, what);
}

#[tokio::test]
async fn tumbling_statistics_do_not_depend_on_batching_or_shuffle() {
    check(STATS, WindowKind::Tumble { size: 15_000 }, "tumble stats").await;
}

#[tokio::test]
async fn hopping_statistics_do_not_depend_on_batching_or_shuffle() {
    let kind = WindowKind::Hop {
        size: 15_000,
        slide: 5_000,
    };
    check(STATS, kind, "hop stats").await;
}

#[tokio::test]
async fn tumbling_drift_do_not_depend_on_batching_or_shuffle() {
    check(DRIFT, WindowKind::Tumble { size: 15_000 }, "tumble drift").await;
}

#[tokio::test]
async fn hopping_drift_do_not_depend_on_batching_or_shuffle() {
    let kind = WindowKind::Hop {
        size: 15_000,
        slide: 5_000,
    };
    check(DRIFT, kind, "hop drift").await;
}

/// A repartition record to produce: (partition, key, value).
type Produced = (i32, Vec<u8>, Vec<u8>);

/// The shuffle over the real broker: stage-1 partials encoded as repartition records,
/// spread over 3 partitions by key hash, chunked, produced with every watermark to every
/// partition — and source partition 2 published twice, as after it moved to another
/// instance; stage 2 reads each partition back, drops the duplicates and gives exactly the
/// in-process cluster's windows.
#[tokio::test]
async fn shuffle_through_kafka_drops_republished_partials_and_matches() {
    use driftwatch::cluster::exchange::{
        decode, encode_partial, encode_watermark, partition_rows, record_key, split_into_chunks,
        watermark_key, PartialPane, ShuffleRecord, WatermarkMark,
    };
    use driftwatch::cluster::progress::{PartialLedger, ShuffleWatermark};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

    const REPARTITIONS: i32 = 3;
    const MONITOR: &str = "hop_stats";
    const FINGERPRINT: u64 = 0x5eed;
    let kind = WindowKind::Hop {
        size: 15_000,
        slide: 5_000,
    };
    let reg = registry();
    let mut rng = StdRng::seed_from_u64(11);
    let (per_partition, merge_schema) = stage1(STATS, kind, &reg, &mut rng).await;

    // Encode: (repartition partition, key, value), each source partition in order.
    let mut encoded: Vec<Vec<Produced>> = Vec::new();
    for (p, records) in per_partition.iter().enumerate() {
        let p = p as i32;
        let mut out = Vec::new();
        for record in records {
            match record {
                Record::Watermark(w) => {
                    let mark = WatermarkMark {
                        monitor: MONITOR.into(),
                        plan_fingerprint: FINGERPRINT,
                        source_partition: p,
                        watermark: *w,
                        idle: false,
                        source_offset: 0,
                    };
                    for r in 0..REPARTITIONS {
                        out.push((
                            r,
                            watermark_key(MONITOR, p),
                            encode_watermark(&mark).unwrap(),
                        ));
                    }
                }
                Record::Partial(tagged) => {
                    let untagged = tagged
                        .project(&(1..tagged.num_columns()).collect::<Vec<_>>())
                        .unwrap();
                    let pane_start = untagged
                        .column(0)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .value(0);
                    let targets = partition_rows(
                        &untagged.columns()[1..2],
                        untagged.num_rows(),
                        REPARTITIONS as u32,
                    )
                    .unwrap();
                    for r in 0..REPARTITIONS {
                        let idx: Vec<u32> = (0..targets.len() as u32)
                            .filter(|&i| targets[i as usize] == r as u32)
                            .collect();
                        if idx.is_empty() {
                            continue;
                        }
                        let mine = take_record_batch(&untagged, &UInt32Array::from(idx)).unwrap();
                        let chunks = split_into_chunks(&mine, 120);
                        for (i, chunk) in chunks.iter().enumerate() {
                            let pane = PartialPane {
                                monitor: MONITOR.into(),
                                plan_fingerprint: FINGERPRINT,
                                source_partition: p,
                                pane_start,
                                chunk_index: i as u32,
                                chunk_count: chunks.len() as u32,
                                batch: chunk.clone(),
                            };
                            out.push((
                                r,
                                record_key(MONITOR, p, pane_start, i as u32),
                                encode_partial(&pane).unwrap(),
                            ));
                        }
                    }
                }
            }
        }
        encoded.push(out);
    }
    // The moved partition: everything of source partition 2 again, after the rest.
    let mut order: Vec<usize> = Vec::new();
    let mut cursors = vec![0usize; encoded.len()];
    while let Some(p) = {
        let live: Vec<usize> = (0..encoded.len())
            .filter(|&p| cursors[p] < encoded[p].len())
            .collect();
        (!live.is_empty()).then(|| live[rng.gen_range(0..live.len())])
    } {
        order.push(p);
        cursors[p] += 1;
    }
    let mut sends: Vec<&Produced> = Vec::new();
    let mut cursors = vec![0usize; encoded.len()];
    for p in order {
        sends.push(&encoded[p][cursors[p]]);
        cursors[p] += 1;
    }
    sends.extend(encoded[2].iter());
    assert!(
        encoded
            .iter()
            .flatten()
            .any(|(_, k, _)| k != &encoded[0][0].1),
        "records carry distinct keys"
    );
    assert!(
        sends.iter().filter(|(_, _, v)| matches!(decode(v).unwrap(), ShuffleRecord::Partial(ref p) if p.chunk_count > 1)).count() > 0,
        "some panes span several records"
    );

    let topic = kafka_support::unique("repartition");
    kafka_support::create_topic(&topic, REPARTITIONS).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_support::brokers())
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for batch in sends.chunks(500) {
        let futures = batch.iter().map(|(r, key, value)| {
            producer.send(
                FutureRecord::to(&topic)
                    .partition(*r)
                    .key(key)
                    .payload(value),
                std::time::Duration::from_secs(30),
            )
        });
        for result in futures::future::join_all(futures).await {
            result.expect("record acknowledged");
        }
    }
    let mut expected_per_r = vec![0usize; REPARTITIONS as usize];
    for (r, _, _) in &sends {
        expected_per_r[*r as usize] += 1;
    }

    let mut outputs = Vec::new();
    for r in 0..REPARTITIONS {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_support::brokers())
            .set("group.id", kafka_support::unique("stage2"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, r, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut watermark = ShuffleWatermark::new(PARTITIONS as usize);
        let mut ledger = PartialLedger::new();
        let mut steps = Vec::new();
        let (mut read, mut duplicates) = (0usize, 0usize);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while read < expected_per_r[r as usize] {
            assert!(
                std::time::Instant::now() < deadline,
                "partition {r}: read {read}"
            );
            let Some(message) = consumer.poll(std::time::Duration::from_millis(200)) else {
                continue;
            };
            let message = message.unwrap();
            read += 1;
            let record = decode(message.payload().unwrap()).unwrap();
            record.check_origin(MONITOR, FINGERPRINT).unwrap();
            match record {
                ShuffleRecord::Watermark(mark) => {
                    watermark.observe(&mark).unwrap();
                }
                ShuffleRecord::Partial(pane) => {
                    if !ledger.accept(&pane).unwrap() {
                        duplicates += 1;
                        continue;
                    }
                    steps.push(Step {
                        watermark: watermark.current(),
                        batch: tag(&pane.batch, pane.source_partition, &merge_schema),
                    });
                }
            }
        }
        let republished = encoded[2]
            .iter()
            .filter(|(t, _, v)| *t == r && matches!(decode(v).unwrap(), ShuffleRecord::Partial(_)))
            .count();
        assert_eq!(
            duplicates, republished,
            "partition {r}: every re-published partial dropped"
        );
        outputs.push(stage2(STATS, kind, &reg, &merge_schema, steps).await);
    }
    let schema = outputs[0].schema();
    let through_kafka = sorted(concat_batches(&schema, &outputs).unwrap());
    let in_process = cluster(STATS, kind, &reg, 5, 2).await;
    assert_eq!(cells(&through_kafka), cells(&in_process));
}
