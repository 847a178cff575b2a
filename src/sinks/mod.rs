//! Where monitor results go: always the result store in the data dir (queryable with
//! `driftwatch query`), and optionally external sinks chosen with `WITH (sink = …)`.

pub mod kafka;
pub mod store;
pub mod webhook;

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use driftwatch_sql::Options;

use crate::checkpoint::SinkPosition;

pub use store::{ResultStore, StoreError, TableWriter};

/// Error from an external sink, naming the sink and what failed.
#[derive(Debug, thiserror::Error)]
#[error("sink '{sink}': {message}")]
pub struct SinkError {
    /// Sink kind (e.g. `kafka`).
    pub sink: String,
    /// What failed.
    pub message: String,
}

/// An external destination for a monitor's results, besides the result store.
#[async_trait::async_trait]
pub trait ResultSink: Send + Sync + std::fmt::Debug {
    /// Identifies the sink in checkpoints (`kafka:<topic>`).
    fn name(&self) -> String;
    /// Hands one batch of results of `monitor` to the sink. It may return before the sink
    /// acknowledged them; [`ResultSink::flush`] waits for that.
    async fn send(&self, monitor: &str, batch: &RecordBatch) -> Result<(), SinkError>;
    /// Waits, for a bounded time, until everything sent is acknowledged. What is not (a
    /// failed delivery, an unwritable topic) is kept to be sent again and reported as an
    /// error, never dropped: call again (with backoff) until it succeeds.
    async fn flush(&self) -> Result<(), SinkError>;
    /// Called when the monitor is created (`CREATE MONITOR`, not `driftwatch check`): makes
    /// sure the destination exists and answers, within a bounded time, so a wrong topic or
    /// address fails the statement at once (the Kafka sink creates a missing topic when its
    /// options allow).
    async fn check(&self) -> Result<(), SinkError> {
        Ok(())
    }
    /// The sink only takes windowed results (the webhook sink's notifications are per group
    /// and window): a row-level monitor with it is refused at `CREATE MONITOR`.
    fn needs_windows(&self) -> bool {
        false
    }
    /// Called by the running monitor before [`ResultSink::prepare`]: opens the sink's own
    /// files under the data dir (the webhook sink's outbox) and starts its background work.
    async fn start(&self, _monitor: &str, _data_dir: &std::path::Path) -> Result<(), SinkError> {
        Ok(())
    }
    /// The monitor's output is complete up to `emitted_until_ms`: every window ending at or
    /// before it was emitted (called at checkpoints and at the end of bounded input). The
    /// webhook sink resolves alerts of keys absent from those windows.
    async fn progress(&self, _monitor: &str, _emitted_until_ms: i64) {}
    /// Called once when bounded input ended and everything was flushed: the webhook sink
    /// waits, for a bounded time, until its outbox is delivered.
    async fn finish(&self) {}
    /// Called once before the first result: learns where the sink starts (the Kafka sink
    /// notes the end of every partition, its checkpoint position until it writes there).
    async fn prepare(&self) -> Result<(), SinkError> {
        Ok(())
    }
    /// How far the sink was written, recorded by every checkpoint right after
    /// [`ResultSink::flush`] (None: nothing to record).
    async fn position(&self) -> Option<SinkPosition> {
        None
    }
    /// After a restore from a checkpoint that recorded `position`: learn what was written
    /// after it (by the run that crashed), so that results emitted again are not written
    /// twice. `windowed`: results are identified by window and group (else by content).
    async fn recover(
        &self,
        _monitor: &str,
        _position: &SinkPosition,
        _windowed: bool,
    ) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Monitor options read by the sinks: `sink` and the Kafka sink's own.
pub fn sink_options() -> impl Iterator<Item = &'static str> {
    std::iter::once("sink")
        .chain(kafka::KAFKA_SINK_OPTIONS.iter().copied())
        .chain(webhook::WEBHOOK_SINK_OPTIONS.iter().copied())
}

/// Builds the external sinks a monitor's options ask for (`sink = 'store'` or no `sink`
/// option: none besides the result store).
pub fn build_sinks(
    monitor: &str,
    options: &Options,
) -> Result<Vec<Arc<dyn ResultSink>>, SinkError> {
    match options.get_str("sink").as_deref() {
        None | Some("store") => Ok(Vec::new()),
        Some("kafka") => Ok(vec![Arc::new(kafka::KafkaSink::from_options(monitor, options)?)]),
        Some("webhook") => Ok(vec![Arc::new(webhook::WebhookSink::from_options(monitor, options)?)]),
        Some(other) => Err(SinkError {
            sink: other.to_string(),
            message: format!(
                "monitor '{monitor}': unknown sink '{other}'; available: 'store', 'kafka', 'webhook' (results always \
                 go to the result store)"
            ),
        }),
    }
}
