//! The hand-off between a connector and the monitors that read its source.
//!
//! A connector decodes raw input into Arrow micro-batches and [`SourceFeed::push`]es them.
//! The feed tracks the source's watermark (see [`crate::engine::watermark`]) and forwards
//! batches and watermark advances, in order, to every subscribed monitor. `push` resolves
//! once every monitor has taken the batch into its plan, which is what lets the HTTP ingest
//! answer 2xx only when rows are in the engine, and gives natural back-pressure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, TimestampMillisecondArray};
use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use super::rejected::{PartitionId, RejectedRecord};
use super::schema::SourceSchema;
use crate::engine::watermark::{WatermarkTracker, NO_WATERMARK};
use crate::runtime::metrics::SourceMetrics;

/// Messages a monitor's input receives from its source, in order.
#[derive(Debug)]
pub enum FeedMessage {
    /// A decoded micro-batch; `taken` is signalled when the monitor's plan consumed it.
    Batch {
        /// Partition the rows came from.
        partition: PartitionId,
        /// Rows in the source schema.
        batch: RecordBatch,
        /// Signalled when the batch entered the monitor's plan.
        taken: Option<oneshot::Sender<()>>,
    },
    /// The source watermark advanced to this value (epoch milliseconds); it covers every
    /// batch sent before it.
    Watermark(i64),
    /// Bounded input ended: flush every window.
    End,
}

/// Error returned when the engine side of a feed has shut down.
#[derive(Debug, thiserror::Error)]
#[error("source '{0}' is shut down")]
pub struct FeedClosed(pub String);

/// Channel capacity per subscribed monitor, in messages.
const SUBSCRIBER_CAPACITY: usize = 16;

struct FeedState {
    tracker: WatermarkTracker,
    subscribers: Vec<mpsc::Sender<FeedMessage>>,
    ended: bool,
}

/// Cloneable handle through which a connector delivers a source's rows to the engine.
#[derive(Clone)]
pub struct SourceFeed {
    schema: Arc<SourceSchema>,
    state: Arc<Mutex<FeedState>>,
    /// Serialises pushes so that batches and watermarks reach every subscriber in one order.
    order: Arc<tokio::sync::Mutex<()>>,
    rejected: mpsc::UnboundedSender<Vec<RejectedRecord>>,
    metrics: Arc<SourceMetrics>,
}

impl SourceFeed {
    /// Creates a feed for `schema`; rejected records are sent to `rejected`.
    pub fn new(
        schema: Arc<SourceSchema>,
        idle_timeout: Option<Duration>,
        rejected: mpsc::UnboundedSender<Vec<RejectedRecord>>,
        metrics: Arc<SourceMetrics>,
    ) -> Self {
        let delay = schema.event_time.as_ref().map_or(0, |e| e.delay_ms);
        Self {
            schema,
            state: Arc::new(Mutex::new(FeedState {
                tracker: WatermarkTracker::new(delay, idle_timeout),
                subscribers: Vec::new(),
                ended: false,
            })),
            order: Arc::new(tokio::sync::Mutex::new(())),
            rejected,
            metrics,
        }
    }

    /// The source's schema: every pushed batch must have exactly this schema.
    pub fn schema(&self) -> &Arc<SourceSchema> {
        &self.schema
    }

    /// Counters of this source.
    pub fn metrics(&self) -> &Arc<SourceMetrics> {
        &self.metrics
    }

    /// Subscribes a monitor; it receives every batch pushed from now on.
    pub fn subscribe(&self) -> mpsc::Receiver<FeedMessage> {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
        let mut state = self.state.lock().expect("feed state poisoned");
        if state.ended {
            // A monitor created after bounded input ended sees an empty, finished stream.
            let _ = tx.try_send(FeedMessage::End);
        }
        state.subscribers.push(tx);
        rx
    }

    /// Current watermark of the source (epoch ms, `i64::MIN` before any data).
    pub fn watermark(&self) -> i64 {
        self.state
            .lock()
            .expect("feed state poisoned")
            .tracker
            .current()
    }

    /// Declares a partition so the watermark waits for its first rows (or its idle timeout).
    pub fn register_partition(&self, partition: PartitionId) {
        let mut state = self.state.lock().expect("feed state poisoned");
        state.tracker.register(partition, Instant::now());
    }

    /// Removes a partition (finished file, revoked Kafka partition).
    pub async fn unregister_partition(&self, partition: PartitionId) -> Result<(), FeedClosed> {
        let _order = self.order.lock().await;
        let advanced = {
            let mut state = self.state.lock().expect("feed state poisoned");
            state.tracker.unregister(partition, Instant::now())
        };
        if let Some(wm) = advanced {
            self.broadcast(|| FeedMessage::Watermark(wm)).await?;
        }
        Ok(())
    }

    /// Delivers a decoded micro-batch from `partition` to every subscribed monitor. Resolves
    /// when every monitor's plan has taken the batch.
    pub async fn push(&self, partition: PartitionId, batch: RecordBatch) -> Result<(), FeedClosed> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        debug_assert_eq!(batch.schema().fields(), self.schema.arrow.fields());
        let max_event = self.max_event_time(&batch);
        self.metrics.rows_in(batch.num_rows() as u64);
        let _order = self.order.lock().await;
        let mut waits = Vec::new();
        self.broadcast(|| {
            let (tx, rx) = oneshot::channel();
            waits.push(rx);
            FeedMessage::Batch {
                partition,
                batch: batch.clone(),
                taken: Some(tx),
            }
        })
        .await?;
        let advanced = {
            let mut state = self.state.lock().expect("feed state poisoned");
            state.tracker.observe(partition, max_event, Instant::now())
        };
        if let Some(wm) = advanced {
            self.metrics.set_watermark(wm);
            self.broadcast(|| FeedMessage::Watermark(wm)).await?;
        }
        drop(_order);
        for rx in waits {
            // A monitor dropped mid-flight is not an error for the producer.
            let _ = rx.await;
        }
        Ok(())
    }

    /// Re-evaluates idle partitions; called periodically by the runtime.
    pub async fn tick(&self) -> Result<(), FeedClosed> {
        let _order = self.order.lock().await;
        let advanced = {
            let mut state = self.state.lock().expect("feed state poisoned");
            if state.ended {
                return Ok(());
            }
            state.tracker.tick(Instant::now())
        };
        if let Some(wm) = advanced {
            self.metrics.set_watermark(wm);
            self.broadcast(|| FeedMessage::Watermark(wm)).await?;
        }
        Ok(())
    }

    /// Keeps records that failed to decode (counted, stored with their reason).
    pub fn reject(&self, records: Vec<RejectedRecord>) {
        if records.is_empty() {
            return;
        }
        self.metrics.rejected(records.len() as u64);
        if self.rejected.send(records).is_err() {
            tracing::error!(source = %self.schema.name, "dead-letter writer is gone");
        }
    }

    /// Signals the end of bounded input: monitors flush every open window.
    pub async fn finish(&self) -> Result<(), FeedClosed> {
        let _order = self.order.lock().await;
        self.state.lock().expect("feed state poisoned").ended = true;
        self.broadcast(|| FeedMessage::End).await
    }

    /// Whether [`SourceFeed::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.state.lock().expect("feed state poisoned").ended
    }

    fn max_event_time(&self, batch: &RecordBatch) -> Option<i64> {
        let event = self.schema.event_time.as_ref()?;
        let column = batch
            .column(event.index)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()?;
        if column.null_count() == column.len() {
            return None;
        }
        arrow::compute::max(column)
    }

    async fn broadcast(&self, mut message: impl FnMut() -> FeedMessage) -> Result<(), FeedClosed> {
        let subscribers = self
            .state
            .lock()
            .expect("feed state poisoned")
            .subscribers
            .clone();
        let mut closed = Vec::new();
        for (i, tx) in subscribers.iter().enumerate() {
            if tx.send(message()).await.is_err() {
                closed.push(i);
            }
        }
        if !closed.is_empty() {
            let mut state = self.state.lock().expect("feed state poisoned");
            state.subscribers.retain(|tx| !tx.is_closed());
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
