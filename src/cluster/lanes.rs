//! Stage 1's input: one partitioned subscription of a source feed
//! ([`crate::sources::SourceFeed::subscribe_partitioned`]) split into one *lane* per source
//! partition, each lane the input of that partition's own copy of the monitor plan
//! ([`crate::engine::cluster_plan::stage1_plan`]).
//!
//! A lane carries its partition's batches (with their delivery acknowledgement, so the
//! source still waits for the plan that takes them), that partition's own watermark as
//! [`FeedMessage::Watermark`] (never the source's, which other partitions hold back), and
//! every checkpoint barrier and the end of input. The source-wide watermark is dropped:
//! lateness in stage 1 is judged by the partition alone (see [`crate::cluster`]). Each
//! partition's progress, idle flag included, is also reported to the caller, which
//! publishes it to the repartition topic as a watermark mark.

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use crate::sources::watermark::{PartitionProgress, NO_WATERMARK};
use crate::sources::{FeedMessage, PartitionId};

/// Opens the lane of a partition seen for the first time: the sender of its plan's input.
pub type OpenLane = Box<dyn FnMut(PartitionId) -> mpsc::Sender<FeedMessage> + Send>;

/// Called with every change of a partition's own progress, after its lane got it.
pub type OnProgress = Box<dyn FnMut(PartitionId, PartitionProgress) + Send>;

/// Splits a partitioned feed subscription into lanes (see the module docs).
pub struct PartitionLanes {
    lanes: BTreeMap<PartitionId, Lane>,
    open: OpenLane,
    on_progress: OnProgress,
}

struct Lane {
    tx: mpsc::Sender<FeedMessage>,
    /// Last watermark sent down the lane.
    watermark: i64,
    /// The plan reading the lane went away: its partition's batches are acknowledged and
    /// dropped (never re-opened behind the task's back).
    closed: bool,
}

impl PartitionLanes {
    /// Lanes opened by `open`, progress reported to `on_progress`.
    pub fn new(open: OpenLane, on_progress: OnProgress) -> Self {
        Self {
            lanes: BTreeMap::new(),
            open,
            on_progress,
        }
    }

    fn lane(&mut self, partition: PartitionId) -> &mut Lane {
        let open = &mut self.open;
        self.lanes.entry(partition).or_insert_with(|| Lane {
            tx: open(partition),
            watermark: NO_WATERMARK,
            closed: false,
        })
    }

    /// Routes `input` until it ends. A lane whose plan went away is closed: its partition's
    /// later batches are acknowledged and dropped, so the source is never held back by a
    /// plan that failed (reporting the failure is the task's job).
    pub async fn run(mut self, mut input: mpsc::Receiver<FeedMessage>) {
        while let Some(message) = input.recv().await {
            match message {
                FeedMessage::Batch { partition, .. } => {
                    let lane = self.lane(partition);
                    let unsent = if lane.closed {
                        Some(message)
                    } else {
                        lane.tx.send(message).await.err().map(|e| e.0)
                    };
                    if let Some(FeedMessage::Batch { taken, .. }) = unsent {
                        lane.closed = true;
                        if let Some(t) = taken {
                            let _ = t.send(());
                        }
                    }
                }
                FeedMessage::PartitionProgress {
                    partition,
                    progress,
                } => {
                    let lane = self.lane(partition);
                    if progress.watermark > lane.watermark && !lane.closed {
                        lane.watermark = progress.watermark;
                        let message = FeedMessage::Watermark(progress.watermark);
                        lane.closed = lane.tx.send(message).await.is_err();
                    }
                    (self.on_progress)(partition, progress);
                }
                // Stage 1 judges lateness by each partition's own watermark.
                FeedMessage::Watermark(_) => {}
                FeedMessage::Barrier(id) => {
                    self.send_to_every_lane(|| FeedMessage::Barrier(id)).await
                }
                FeedMessage::End => {
                    self.send_to_every_lane(|| FeedMessage::End).await;
                    return;
                }
            }
        }
    }

    async fn send_to_every_lane(&mut self, message: impl Fn() -> FeedMessage) {
        for lane in self.lanes.values_mut().filter(|l| !l.closed) {
            lane.closed = lane.tx.send(message()).await.is_err();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use arrow::array::Int64Array;
    use arrow::record_batch::RecordBatch;
    use tokio::sync::oneshot;

    use super::*;

    fn batch(partition: PartitionId, n: i64) -> (FeedMessage, oneshot::Receiver<()>) {
        let b =
            RecordBatch::try_from_iter([("x", Arc::new(Int64Array::from_iter_values(0..n)) as _)])
                .unwrap();
        let (tx, rx) = oneshot::channel();
        let m = FeedMessage::Batch {
            partition,
            batch: b,
            future_after: i64::MAX,
            taken: Some(tx),
        };
        (m, rx)
    }

    fn progress(partition: PartitionId, watermark: i64, idle: bool) -> FeedMessage {
        FeedMessage::PartitionProgress {
            partition,
            progress: PartitionProgress { watermark, idle },
        }
    }

    /// What a lane received, in order.
    #[derive(Debug, PartialEq)]
    enum Got {
        Rows(usize),
        Watermark(i64),
        Barrier(u64),
        End,
    }

    fn received(rx: &mut mpsc::Receiver<FeedMessage>) -> Vec<Got> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(match m {
                FeedMessage::Batch { batch, taken, .. } => {
                    if let Some(t) = taken {
                        let _ = t.send(());
                    }
                    Got::Rows(batch.num_rows())
                }
                FeedMessage::Watermark(w) => Got::Watermark(w),
                FeedMessage::Barrier(id) => Got::Barrier(id),
                FeedMessage::End => Got::End,
                FeedMessage::PartitionProgress { .. } => panic!("lanes carry watermarks"),
            });
        }
        out
    }

    #[tokio::test]
    async fn each_lane_gets_its_rows_its_own_watermark_and_every_barrier() {
        let lanes: Arc<Mutex<BTreeMap<PartitionId, mpsc::Receiver<FeedMessage>>>> = Arc::default();
        let reported: Arc<Mutex<Vec<(PartitionId, PartitionProgress)>>> = Arc::default();
        let opened = Arc::clone(&lanes);
        let seen = Arc::clone(&reported);
        let router = PartitionLanes::new(
            Box::new(move |p| {
                let (tx, rx) = mpsc::channel(64);
                opened.lock().unwrap().insert(p, rx);
                tx
            }),
            Box::new(move |p, pp| seen.lock().unwrap().push((p, pp))),
        );
        let (tx, rx) = mpsc::channel(64);
        let (b0, _t0) = batch(0, 3);
        let (b1, _t1) = batch(1, 2);
        let (b0b, _t2) = batch(0, 1);
        for m in [
            b0,
            progress(0, 10_000, false),
            b1,
            FeedMessage::Watermark(4_000),
            progress(1, 4_000, false),
            FeedMessage::Barrier(7),
            b0b,
            progress(0, 10_000, true),
            progress(1, 9_000, false),
            FeedMessage::End,
        ] {
            tx.send(m).await.unwrap();
        }
        drop(tx);
        router.run(rx).await;
        let mut lanes = lanes.lock().unwrap();
        assert_eq!(
            received(lanes.get_mut(&0).unwrap()),
            vec![
                Got::Rows(3),
                Got::Watermark(10_000),
                Got::Barrier(7),
                Got::Rows(1),
                Got::End
            ],
            "an idle flag alone does not move the lane's watermark"
        );
        assert_eq!(
            received(lanes.get_mut(&1).unwrap()),
            vec![
                Got::Rows(2),
                Got::Watermark(4_000),
                Got::Barrier(7),
                Got::Watermark(9_000),
                Got::End
            ],
            "the source watermark is not forwarded, the partition's own is"
        );
        assert_eq!(
            reported.lock().unwrap().len(),
            4,
            "every progress is reported"
        );
        assert!(reported.lock().unwrap()[2].1.idle);
    }

    #[tokio::test]
    async fn a_lane_whose_plan_is_gone_acknowledges_and_drops_its_batches() {
        let router = PartitionLanes::new(
            Box::new(|_| {
                let (tx, rx) = mpsc::channel(1);
                drop(rx);
                tx
            }),
            Box::new(|_, _| {}),
        );
        let (tx, rx) = mpsc::channel(8);
        let (b, taken) = batch(3, 5);
        tx.send(b).await.unwrap();
        let (b, taken2) = batch(3, 5);
        tx.send(b).await.unwrap();
        tx.send(FeedMessage::End).await.unwrap();
        drop(tx);
        router.run(rx).await;
        assert!(taken.await.is_ok(), "the source is not held back");
        assert!(taken2.await.is_ok());
    }
}
