//! The two stages of a cluster ([`driftwatch::cluster`]) give the same windows, value for
//! value, however the source partitions' rows were cut into micro-batches, however many
//! stage-2 partitions the groups were spread over and in whatever order the shuffle
//! delivered the partials — and the same windows as one instance (to rounding).
//!
//! Six source partitions, each with its own watermark (rows out of order by less than the
//! delay), stage 1 per partition, partials spread over 1, 2 or 3 stage-2 partitions by key
//! and interleaved at random (each partition's records in order, as Kafka keeps them).

mod cluster_support;
mod kafka_support;

use cluster_support::*;

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
