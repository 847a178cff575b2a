//! Live follow streams: the rows of every window of one monitor, sent the moment the window
//! is emitted.
//!
//! Ask for one with a DoGet whose ticket bytes are `follow:<monitor>` (plain UTF-8, not a
//! protobuf), or with the query `SELECT * FROM follow('<monitor>')` through
//! `CommandStatementQuery` (so ADBC and every Flight SQL client can follow too). The stream
//! starts with the monitor's result schema and never ends by itself: it stops when the
//! client cancels or the server shuts down.
//!
//! **Slow subscribers.** Buffers are bounded: each follower has a queue of
//! `FOLLOW_BUFFER` (1024) result batches in the engine's broadcast channel. A follower that
//! falls further behind loses the *oldest* batches — it skips ahead to the newest — and the
//! server logs how many were dropped. The engine never waits for a follower: monitors, the
//! result store and other followers are unaffected. Whatever a follower missed is still in
//! the monitor's result table (query it by `window_end`).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::error::FlightError;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::backend::{Backend, BackendError};

/// The record batches of a follow stream, with lag reported in the log and skipped.
pub async fn follow_batches(
    backend: &Arc<dyn Backend>,
    monitor: &str,
) -> Result<
    (
        SchemaRef,
        BoxStream<'static, Result<RecordBatch, FlightError>>,
    ),
    BackendError,
> {
    let (schema, stream) = backend.follow(monitor).await?;
    let name = monitor.to_string();
    tracing::info!(monitor = %name, "follow stream opened");
    let out = stream.filter_map(move |item| {
        let name = name.clone();
        async move {
            match item {
                Ok(batch) => Some(Ok(batch)),
                Err(BackendError::Lagged(n)) => {
                    tracing::warn!(monitor = %name, dropped = n, "slow follower: oldest result batches dropped");
                    None
                }
                Err(e) => Some(Err(FlightError::ExternalError(Box::new(e)))),
            }
        }
    });
    Ok((schema, out.boxed()))
}
