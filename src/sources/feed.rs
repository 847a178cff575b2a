//! The hand-off between a connector and the monitors that read its source.
//!
//! A connector decodes raw input into Arrow micro-batches and [`SourceFeed::deliver`]s them
//! together with the source position they reach (a Kafka offset, a file offset, a WAL
//! sequence number) and the records that failed to decode. The feed tracks the source's
//! watermark (see [`super::watermark`]) and forwards batches, watermark advances and
//! checkpoint barriers, in one order, to every subscribed monitor; rejected records go, in
//! the same order, to the dead-letter writer. `deliver` resolves once every monitor has taken
//! the batch into its plan, which gives natural back-pressure.
//!
//! Positions are what checkpoints are made of: [`SourceFeed::barrier`] records, under the
//! same lock that orders deliveries, the position of every partition *and* sends the barrier
//! behind the last delivery it covers, so a checkpoint's positions and its monitors' state
//! describe exactly the same rows.
//!
//! Event time can't be pushed ahead by one bad clock: a row whose event time is more than
//! `max_future` after its arrival time is left out of the watermark and quarantined by
//! windowed monitors into their late table.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use super::position::SourcePosition;
use super::rejected::{PartitionId, RejectedRecord};
use super::schema::SourceSchema;
use super::watermark::{PartitionProgress, WatermarkState, WatermarkTracker, NO_WATERMARK};
use crate::metrics::SourceMetrics;

/// Messages a monitor's input receives from its source, in order.
#[derive(Debug)]
pub enum FeedMessage {
    /// A decoded micro-batch; `taken` is signalled when the monitor's plan consumed it.
    Batch {
        /// Partition the rows came from.
        partition: PartitionId,
        /// Rows in the source schema.
        batch: RecordBatch,
        /// Rows with a later event time are quarantined (`max_future`).
        future_after: i64,
        /// Signalled when the batch entered the monitor's plan.
        taken: Option<oneshot::Sender<()>>,
    },
    /// The source watermark advanced to this value (epoch milliseconds); it covers every
    /// batch sent before it.
    Watermark(i64),
    /// A partition's own progress changed (its watermark or idle flag): only for
    /// subscribers of [`SourceFeed::subscribe_partitioned`], sent after the batch that
    /// moved it.
    PartitionProgress {
        /// The partition.
        partition: PartitionId,
        /// Its own watermark and idle flag.
        progress: PartitionProgress,
    },
    /// Checkpoint barrier: the monitor snapshots what came before it.
    Barrier(u64),
    /// Bounded input ended: flush every window.
    End,
}

/// What the dead-letter writer of a source receives, in delivery order.
#[derive(Debug)]
pub enum RejectMessage {
    /// Records that failed to decode.
    Records(Vec<RejectedRecord>),
    /// Checkpoint barrier: persist what came before it.
    Barrier(u64),
    /// Write what came before it now, then answer (the end of a run).
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl RejectMessage {
    /// The records (none for a barrier).
    pub fn records(self) -> Vec<RejectedRecord> {
        match self {
            Self::Records(r) => r,
            Self::Barrier(_) | Self::Flush(_) => Vec::new(),
        }
    }
}

/// One step of a connector on one partition.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Decoded rows, if any.
    pub batch: Option<RecordBatch>,
    /// Records that failed to decode.
    pub rejected: Vec<RejectedRecord>,
    /// Position of the partition after this delivery (`None`: unchanged).
    pub position: Option<SourcePosition>,
    /// When the rows arrived (epoch ms): the reference of `max_future`.
    pub arrival_ms: i64,
}

/// What a barrier recorded about its source.
#[derive(Debug, Clone)]
pub struct SourceBarrier {
    /// Position of every partition, covering exactly the rows before the barrier.
    pub positions: BTreeMap<PartitionId, SourcePosition>,
    /// Watermark state at the barrier.
    pub watermark: WatermarkState,
    /// Whether bounded input had ended (no barrier travels then).
    pub finished: bool,
    /// Monitors that received the barrier, each owing a checkpoint part; for a finished
    /// source the monitors still reading it, each owing its final part.
    pub monitors: Vec<String>,
}

/// Error returned when the engine side of a feed has shut down.
#[derive(Debug, thiserror::Error)]
#[error("source '{0}' is shut down")]
pub struct FeedClosed(pub String);

/// Partition progress to send to one subscriber.
type ProgressChanges = Vec<(PartitionId, PartitionProgress)>;

/// Channel capacity per subscribed monitor, in messages.
const SUBSCRIBER_CAPACITY: usize = 16;

struct Subscriber {
    monitor: String,
    tx: mpsc::Sender<FeedMessage>,
    /// `Some` for [`SourceFeed::subscribe_partitioned`]: the progress last sent per
    /// partition (only changes are sent).
    partitions: Option<BTreeMap<PartitionId, PartitionProgress>>,
}

struct FeedState {
    tracker: WatermarkTracker,
    subscribers: Vec<Subscriber>,
    positions: BTreeMap<PartitionId, SourcePosition>,
    ended: bool,
}

/// Cloneable handle through which a connector delivers a source's rows to the engine.
#[derive(Clone)]
pub struct SourceFeed {
    schema: Arc<SourceSchema>,
    max_future_ms: Option<i64>,
    state: Arc<Mutex<FeedState>>,
    /// Serialises deliveries and barriers so that every subscriber (and the dead-letter
    /// writer) sees them in one order.
    order: Arc<tokio::sync::Mutex<()>>,
    /// Bounded: a delivery waits for the dead-letter writer when it is behind.
    rejected: mpsc::Sender<RejectMessage>,
    metrics: Arc<SourceMetrics>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl SourceFeed {
    /// Creates a feed for `schema`; rejected records are sent to `rejected` (a bounded
    /// queue: a delivery with rejects waits while it is full).
    pub fn new(
        schema: Arc<SourceSchema>,
        idle_timeout: Option<Duration>,
        rejected: mpsc::Sender<RejectMessage>,
        metrics: Arc<SourceMetrics>,
    ) -> Self {
        let delay = schema.event_time.as_ref().map_or(0, |e| e.delay_ms);
        Self {
            schema,
            max_future_ms: None,
            state: Arc::new(Mutex::new(FeedState {
                tracker: WatermarkTracker::new(delay, idle_timeout),
                subscribers: Vec::new(),
                positions: BTreeMap::new(),
                ended: false,
            })),
            order: Arc::new(tokio::sync::Mutex::new(())),
            rejected,
            metrics,
        }
    }

    /// Quarantines rows whose event time is more than `max_future` after their arrival.
    pub fn with_max_future(mut self, max_future: Option<Duration>) -> Self {
        self.max_future_ms = max_future.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The source's schema: every delivered batch must have exactly this schema.
    pub fn schema(&self) -> &Arc<SourceSchema> {
        &self.schema
    }

    /// Counters of this source.
    pub fn metrics(&self) -> &Arc<SourceMetrics> {
        &self.metrics
    }

    /// Subscribes monitor `monitor`; it receives every batch delivered from now on.
    pub fn subscribe(&self, monitor: &str) -> mpsc::Receiver<FeedMessage> {
        self.add_subscriber(monitor, None)
    }

    /// Like [`SourceFeed::subscribe`], and the subscriber also receives
    /// [`FeedMessage::PartitionProgress`] whenever a partition's own watermark or idle flag
    /// changes (idle flags are re-evaluated by [`SourceFeed::tick`]): what a cluster's
    /// stage 1 needs to run one task per partition.
    pub fn subscribe_partitioned(&self, monitor: &str) -> mpsc::Receiver<FeedMessage> {
        self.add_subscriber(monitor, Some(BTreeMap::new()))
    }

    fn add_subscriber(
        &self,
        monitor: &str,
        partitions: Option<BTreeMap<PartitionId, PartitionProgress>>,
    ) -> mpsc::Receiver<FeedMessage> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
        let mut state = self.lock();
        if state.ended {
            // A monitor created after bounded input ended sees an empty, finished stream.
            let _ = tx.try_send(FeedMessage::End);
        }
        state.subscribers.push(Subscriber {
            monitor: monitor.to_string(),
            tx,
            partitions,
        });
        rx
    }

    /// Current watermark of the source (epoch ms, `i64::MIN` before any data).
    pub fn watermark(&self) -> i64 {
        self.lock().tracker.current()
    }

    /// Starts from a checkpoint: partition positions and watermark state. Call before the
    /// connector runs.
    pub fn restore(
        &self,
        positions: BTreeMap<PartitionId, SourcePosition>,
        watermark: &WatermarkState,
    ) {
        let mut state = self.lock();
        state.positions = positions;
        state.tracker.restore(watermark, Instant::now());
        self.metrics.set_watermark(state.tracker.current());
    }

    /// Position of `partition` reached by the deliveries so far (or restored).
    pub fn position(&self, partition: PartitionId) -> Option<SourcePosition> {
        self.lock().positions.get(&partition).cloned()
    }

    /// Positions of every partition.
    pub fn positions(&self) -> BTreeMap<PartitionId, SourcePosition> {
        self.lock().positions.clone()
    }

    /// Declares a partition so the watermark waits for its first rows (or its idle timeout).
    pub fn register_partition(&self, partition: PartitionId) {
        self.lock().tracker.register(partition, Instant::now());
    }

    /// Says whether a partition has consumed everything its source holds (Kafka: position at
    /// the high watermark). A partition that is behind never counts as idle.
    pub fn set_caught_up(&self, partition: PartitionId, caught_up: bool) {
        self.lock().tracker.set_caught_up(partition, caught_up);
    }

    /// Removes a partition (finished file, revoked Kafka partition).
    pub async fn unregister_partition(&self, partition: PartitionId) -> Result<(), FeedClosed> {
        let _order = self.order.lock().await;
        let advanced = self.lock().tracker.unregister(partition, Instant::now());
        if let Some(wm) = advanced {
            self.metrics.set_watermark(wm);
            self.broadcast(|| FeedMessage::Watermark(wm)).await?;
        }
        Ok(())
    }

    /// Delivers a decoded micro-batch from `partition` with no position, arriving now.
    pub async fn push(&self, partition: PartitionId, batch: RecordBatch) -> Result<(), FeedClosed> {
        self.deliver(
            partition,
            Delivery {
                batch: Some(batch),
                arrival_ms: now_ms(),
                ..Delivery::default()
            },
        )
        .await
    }

    /// Delivers one step of a connector: rejected records to the dead-letter writer, rows
    /// to every subscribed monitor, then the new position. Resolves when every monitor's
    /// plan has taken the rows.
    pub async fn deliver(
        &self,
        partition: PartitionId,
        delivery: Delivery,
    ) -> Result<(), FeedClosed> {
        let Delivery {
            batch,
            rejected,
            position,
            arrival_ms,
        } = delivery;
        let future_after = self
            .max_future_ms
            .map_or(i64::MAX, |m| arrival_ms.saturating_add(m));
        let batch = batch.filter(|b| b.num_rows() > 0);
        let max_event = batch
            .as_ref()
            .and_then(|b| self.max_event_time(b, future_after));
        let order = self.order.lock().await;
        if !rejected.is_empty() {
            self.metrics.rejected(rejected.len() as u64);
            if self
                .rejected
                .send(RejectMessage::Records(rejected))
                .await
                .is_err()
            {
                tracing::error!(source = %self.schema.name, "dead-letter writer is gone");
            }
        }
        let mut waits = Vec::new();
        if let Some(batch) = &batch {
            debug_assert_eq!(batch.schema().fields(), self.schema.arrow.fields());
            self.metrics.rows_in(batch.num_rows() as u64);
            self.broadcast(|| {
                let (tx, rx) = oneshot::channel();
                waits.push(rx);
                FeedMessage::Batch {
                    partition,
                    batch: batch.clone(),
                    future_after,
                    taken: Some(tx),
                }
            })
            .await?;
        }
        let advanced = {
            let mut state = self.lock();
            if let Some(p) = position {
                state.positions.insert(partition, p);
            }
            match &batch {
                Some(b) => {
                    let delay = self.schema.event_time.as_ref().map_or(0, |e| e.delay_ms);
                    let wm = max_event.map(|m| m.saturating_sub(delay));
                    self.metrics
                        .partition_delivered(partition, b.num_rows() as u64, wm);
                    state.tracker.observe(partition, max_event, Instant::now())
                }
                None => None,
            }
        };
        if let Some(wm) = advanced {
            self.metrics.set_watermark(wm);
            self.broadcast(|| FeedMessage::Watermark(wm)).await?;
        }
        if batch.is_some() {
            self.send_partition_progress(Some(partition)).await;
        }
        drop(order);
        for rx in waits {
            // A monitor dropped mid-flight is not an error for the producer.
            let _ = rx.await;
        }
        Ok(())
    }

    /// Injects checkpoint barrier `id` behind every delivery so far, and records the
    /// positions and watermark it covers. After bounded input ended nothing travels: the
    /// result is marked `finished` and the monitors' final states cover the end.
    pub async fn barrier(&self, id: u64) -> SourceBarrier {
        let _order = self.order.lock().await;
        let (positions, watermark, ended) = {
            let mut state = self.lock();
            state.subscribers.retain(|s| !s.tx.is_closed());
            (state.positions.clone(), state.tracker.state(), state.ended)
        };
        if ended {
            return SourceBarrier {
                positions,
                watermark,
                finished: true,
                monitors: self
                    .lock()
                    .subscribers
                    .iter()
                    .map(|s| s.monitor.clone())
                    .collect(),
            };
        }
        let subscribers: Vec<(String, mpsc::Sender<FeedMessage>)> = self
            .lock()
            .subscribers
            .iter()
            .map(|s| (s.monitor.clone(), s.tx.clone()))
            .collect();
        let mut monitors = Vec::new();
        for (monitor, tx) in subscribers {
            if tx.send(FeedMessage::Barrier(id)).await.is_ok() {
                monitors.push(monitor);
            }
        }
        self.lock().subscribers.retain(|s| !s.tx.is_closed());
        let _ = self.rejected.send(RejectMessage::Barrier(id)).await;
        SourceBarrier {
            positions,
            watermark,
            finished: false,
            monitors,
        }
    }

    /// Re-evaluates idle partitions; called periodically by the runtime.
    pub async fn tick(&self) -> Result<(), FeedClosed> {
        let _order = self.order.lock().await;
        let advanced = {
            let mut state = self.lock();
            if state.ended {
                return Ok(());
            }
            state.tracker.tick(Instant::now())
        };
        if let Some(wm) = advanced {
            self.metrics.set_watermark(wm);
            self.broadcast(|| FeedMessage::Watermark(wm)).await?;
        }
        self.send_partition_progress(None).await;
        Ok(())
    }

    /// Sends each partitioned subscriber the progress of `partition` (every partition with
    /// `None`) where it changed since the last one sent to it.
    async fn send_partition_progress(&self, partition: Option<PartitionId>) {
        let now = Instant::now();
        let sends: Vec<(mpsc::Sender<FeedMessage>, ProgressChanges)> = {
            let mut state = self.lock();
            let FeedState {
                tracker,
                subscribers,
                ..
            } = &mut *state;
            if subscribers.iter().all(|s| s.partitions.is_none()) {
                return;
            }
            let ids = match partition {
                Some(p) => vec![p],
                None => tracker.partitions(),
            };
            let current: Vec<(PartitionId, PartitionProgress)> = ids
                .into_iter()
                .filter_map(|p| tracker.partition_progress(p, now).map(|pp| (p, pp)))
                .collect();
            subscribers
                .iter_mut()
                .filter_map(|s| {
                    let sent = s.partitions.as_mut()?;
                    let changed: Vec<(PartitionId, PartitionProgress)> = current
                        .iter()
                        .filter(|(p, pp)| sent.get(p) != Some(pp))
                        .copied()
                        .collect();
                    sent.extend(changed.iter().copied());
                    (!changed.is_empty()).then(|| (s.tx.clone(), changed))
                })
                .collect()
        };
        for (tx, changed) in sends {
            for (partition, progress) in changed {
                // A subscriber that went away is dropped by the next broadcast.
                let _ = tx
                    .send(FeedMessage::PartitionProgress {
                        partition,
                        progress,
                    })
                    .await;
            }
        }
    }

    /// Keeps records that failed to decode and have no source position (counted, stored
    /// with their reason). For callers that cannot wait (an HTTP body rejected whole): when
    /// the queue is full the records are handed to a task that waits for room, so nothing
    /// is dropped; such callers are bounded by the HTTP ingest's concurrency and body
    /// limits. Connectors with positions use [`SourceFeed::deliver`], which waits.
    pub fn reject(&self, records: Vec<RejectedRecord>) {
        if records.is_empty() {
            return;
        }
        self.metrics.rejected(records.len() as u64);
        match self.rejected.try_send(RejectMessage::Records(records)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                let tx = self.rejected.clone();
                let source = self.schema.name.clone();
                tokio::spawn(async move {
                    if tx.send(message).await.is_err() {
                        tracing::error!(source = %source, "dead-letter writer is gone");
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!(source = %self.schema.name, "dead-letter writer is gone");
            }
        }
    }

    /// Has the dead-letter writer write every record rejected so far; resolves once it did
    /// (or the writer is gone).
    pub async fn flush_rejects(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.rejected.send(RejectMessage::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Signals the end of bounded input: monitors flush every open window.
    pub async fn finish(&self) -> Result<(), FeedClosed> {
        let _order = self.order.lock().await;
        self.lock().ended = true;
        self.broadcast(|| FeedMessage::End).await
    }

    /// Whether [`SourceFeed::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.lock().ended
    }

    /// Whether any monitor is subscribed (an HTTP source without one answers 503).
    pub fn has_subscribers(&self) -> bool {
        let mut state = self.lock();
        state.subscribers.retain(|s| !s.tx.is_closed());
        !state.subscribers.is_empty()
    }

    /// Largest event time of `batch` not after `limit` (the max_future bound).
    fn max_event_time(&self, batch: &RecordBatch, limit: i64) -> Option<i64> {
        let event = self.schema.event_time.as_ref()?;
        let column = batch
            .column(event.index)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()?;
        if column.null_count() == column.len() {
            return None;
        }
        if limit == i64::MAX {
            return arrow::compute::max(column);
        }
        column.iter().flatten().filter(|&t| t <= limit).max()
    }

    async fn broadcast(&self, mut message: impl FnMut() -> FeedMessage) -> Result<(), FeedClosed> {
        let subscribers: Vec<mpsc::Sender<FeedMessage>> = self
            .lock()
            .subscribers
            .iter()
            .map(|s| s.tx.clone())
            .collect();
        let mut closed = false;
        for tx in &subscribers {
            if tx.send(message()).await.is_err() {
                closed = true;
            }
        }
        if closed {
            self.lock().subscribers.retain(|s| !s.tx.is_closed());
        }
        Ok(())
    }
}

impl std::fmt::Debug for SourceFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFeed")
            .field("source", &self.schema.name)
            .field("watermark", &self.watermark())
            .finish()
    }
}

/// Watermark value used before any data arrived.
pub const INITIAL_WATERMARK: i64 = NO_WATERMARK;
