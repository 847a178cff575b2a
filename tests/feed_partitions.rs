//! A partitioned subscription of a source feed (what a cluster's stage 1 reads): after each
//! batch it gets that partition's own watermark, not held back by the other partitions; idle
//! flags flip on `tick`; only changes are sent; plain subscribers see none of it.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use driftwatch::runtime::metrics::SourceMetrics;
use driftwatch::sources::watermark::PartitionProgress;
use driftwatch::sources::{FeedMessage, SourceFeed, SourceSchema, TimeFormat, EVENT_TIME_TYPE};
use tokio::sync::mpsc;

const DELAY: i64 = 1_000;
/// Long enough that no partition turns idle while the pushes run, even on a loaded machine.
const IDLE: Duration = Duration::from_millis(1_500);

fn schema() -> Arc<SourceSchema> {
    let fields = vec![
        Field::new("ts", EVENT_TIME_TYPE, false),
        Field::new("x", DataType::Float64, true),
    ];
    Arc::new(SourceSchema::new("s", fields, Some(("ts".into(), DELAY)), TimeFormat::Auto).unwrap())
}

fn batch(schema: &SourceSchema, ts: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::clone(&schema.arrow),
        vec![
            Arc::new(TimestampMillisecondArray::from(ts.to_vec())),
            Arc::new(Float64Array::from(vec![1.0; ts.len()])),
        ],
    )
    .unwrap()
}

/// What a subscriber received, batches acknowledged (`taken`) as a plan would.
#[derive(Debug, PartialEq)]
enum Seen {
    Batch(u32, usize),
    Watermark(i64),
    Progress(u32, PartitionProgress),
    Other,
}

/// Drains every message available now.
fn drain(rx: &mut mpsc::Receiver<FeedMessage>) -> Vec<Seen> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        out.push(match m {
            FeedMessage::Batch {
                partition,
                batch,
                taken,
                ..
            } => {
                if let Some(t) = taken {
                    let _ = t.send(());
                }
                Seen::Batch(partition, batch.num_rows())
            }
            FeedMessage::Watermark(w) => Seen::Watermark(w),
            FeedMessage::PartitionProgress {
                partition,
                progress,
            } => Seen::Progress(partition, progress),
            _ => Seen::Other,
        });
    }
    out
}

/// Drains both subscribers (acknowledging batches, which the push waits for) until `push`
/// resolved, then once more.
async fn until_done(
    push: tokio::task::JoinHandle<()>,
    plain: &mut mpsc::Receiver<FeedMessage>,
    split: &mut mpsc::Receiver<FeedMessage>,
) -> (Vec<Seen>, Vec<Seen>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while !push.is_finished() {
        a.extend(drain(plain));
        b.extend(drain(split));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    push.await.unwrap();
    a.extend(drain(plain));
    b.extend(drain(split));
    (a, b)
}

fn own(watermark: i64, idle: bool) -> PartitionProgress {
    PartitionProgress { watermark, idle }
}

#[tokio::test]
async fn partitioned_subscribers_get_each_partitions_own_progress() {
    let schema = schema();
    let (reject_tx, _rejected) = mpsc::channel(16);
    let feed = SourceFeed::new(
        Arc::clone(&schema),
        Some(IDLE),
        reject_tx,
        Arc::new(SourceMetrics::default()),
    );
    feed.register_partition(0);
    feed.register_partition(1);
    let mut plain = feed.subscribe("one instance");
    let mut split = feed.subscribe_partitioned("stage 1");

    // Each push resolves once both subscribers took the batch: drain them concurrently.
    let push = |p: u32, ts: &'static [i64]| {
        let feed = feed.clone();
        let b = batch(&schema, ts);
        tokio::spawn(async move { feed.push(p, b).await.unwrap() })
    };
    let (a, b) = until_done(push(0, &[10_000, 12_000]), &mut plain, &mut split).await;
    // Partition 1 holds the source watermark back; partition 0's own one moved.
    assert_eq!(a, vec![Seen::Batch(0, 2)]);
    assert_eq!(
        b,
        vec![Seen::Batch(0, 2), Seen::Progress(0, own(11_000, false))]
    );

    let (a, b) = until_done(push(1, &[5_000]), &mut plain, &mut split).await;
    assert_eq!(a, vec![Seen::Batch(1, 1), Seen::Watermark(4_000)]);
    assert_eq!(
        b,
        vec![
            Seen::Batch(1, 1),
            Seen::Watermark(4_000),
            Seen::Progress(1, own(4_000, false)),
        ],
        "the source watermark and partition 1's own"
    );

    // A tick with nothing changed sends nothing; after the idle timeout both partitions
    // (caught up, silent) turn idle, each reported once.
    feed.tick().await.unwrap();
    assert_eq!(drain(&mut split), vec![]);
    tokio::time::sleep(IDLE + Duration::from_millis(300)).await;
    feed.tick().await.unwrap();
    let b = drain(&mut split);
    assert!(
        b.contains(&Seen::Progress(0, own(11_000, true))),
        "partition 0 idle: {b:?}"
    );
    assert!(
        b.contains(&Seen::Progress(1, own(4_000, true))),
        "partition 1 idle: {b:?}"
    );
    assert!(
        !drain(&mut plain)
            .iter()
            .any(|m| matches!(m, Seen::Progress(..))),
        "plain subscribers never see partition progress"
    );
    feed.tick().await.unwrap();
    assert!(
        !drain(&mut split)
            .iter()
            .any(|m| matches!(m, Seen::Progress(..))),
        "unchanged progress is not sent again"
    );
}
