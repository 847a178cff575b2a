//! The dead-letter writer of a source: records that failed to decode go, in delivery
//! order, to the `<source>_errors` table, with their partition, position and reason. At a
//! checkpoint barrier everything before it is made durable (epoch files, see
//! [`crate::sinks::store`]) before the writer reports to the checkpoint coordinator.
//!
//! Rejected records are batched, not written one file per record or request: the writer
//! flushes at most once per [`FLUSH_EVERY`] (or when [`MAX_BUFFERED_ROWS`] or [`MAX_BUFFERED_BYTES`] are waiting, or
//! at a barrier), so a client sending 10 000 bad requests a second makes a bounded number of
//! files per minute. Log lines about rejections are rate limited the same way (a count per
//! interval, with the first reasons).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::RuntimeError;
use crate::checkpoint::CheckpointMessage;
use crate::sinks::ResultStore;
use crate::sources::{RejectMessage, RejectedRecord, EVENT_TIME_TYPE};

/// Longest time rejected records wait before they are written (and least time between two
/// dead-letter files of one source outside barriers).
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Rejected records buffered before they are written anyway.
pub const MAX_BUFFERED_ROWS: usize = 50_000;
/// Bytes of rejected records buffered before they are written anyway.
pub const MAX_BUFFERED_BYTES: usize = 16 * 1024 * 1024;
/// Reasons logged per interval; the rest are counted.
const LOGGED_PER_INTERVAL: usize = 3;

/// Suffix of a source's dead-letter table.
pub const ERRORS_SUFFIX: &str = "_errors";

/// Schema of a dead-letter table.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::UInt32, false),
        Field::new("position", DataType::Int64, true),
        Field::new("raw", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("received_at", EVENT_TIME_TYPE, false),
    ]))
}

fn batch(schema: &SchemaRef, records: &[RejectedRecord]) -> Result<RecordBatch, RuntimeError> {
    let now = chrono::Utc::now().timestamp_millis();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            records.iter().map(|r| r.partition),
        )),
        Arc::new(Int64Array::from_iter(records.iter().map(|r| r.position))),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.raw.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.reason.as_str()),
        )),
        Arc::new(TimestampMillisecondArray::from(vec![now; records.len()])),
    ];
    RecordBatch::try_new(Arc::clone(schema), columns)
        .map_err(|e| RuntimeError::Invalid(format!("dead-letter batch: {e}")))
}

/// Starts the dead-letter writer of `source`, writing epoch `epoch` first.
pub fn spawn_dead_letters(
    store: &ResultStore,
    source: &str,
    epoch: u64,
    mut rx: mpsc::Receiver<RejectMessage>,
    checkpoints: mpsc::Sender<CheckpointMessage>,
) -> Result<(), RuntimeError> {
    let schema = dead_letter_schema();
    let mut writer = store.open(
        &format!("{source}{ERRORS_SUFFIX}"),
        Arc::clone(&schema),
        epoch,
    )?;
    let source = source.to_string();
    tokio::spawn(async move {
        let mut buffer: Vec<RecordBatch> = Vec::new();
        let mut buffered = 0usize;
        let mut buffered_bytes = 0usize;
        let mut logged = 0usize;
        let mut unlogged = 0usize;
        let mut last_flush = Instant::now();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let flush = |buffer: &mut Vec<RecordBatch>,
                     buffered: &mut usize,
                     writer: &mut crate::sinks::store::TableWriter|
         -> Result<(), RuntimeError> {
            for b in buffer.drain(..) {
                writer.append(b)?;
            }
            *buffered = 0;
            writer.flush()?;
            Ok(())
        };
        loop {
            let message = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = tick.tick() => {
                    if unlogged > 0 {
                        tracing::warn!(source = %source, more = unlogged, "more records rejected (see the {source}{ERRORS_SUFFIX} table)");
                    }
                    logged = 0;
                    unlogged = 0;
                    if buffered > 0 && last_flush.elapsed() >= FLUSH_EVERY {
                        last_flush = Instant::now();
                        if let Err(e) = { buffered_bytes = 0; flush(&mut buffer, &mut buffered, &mut writer) } {
                            tracing::error!(source = %source, error = %e, "writing dead letters failed");
                        }
                    }
                    continue;
                }
            };
            match message {
                RejectMessage::Records(records) => {
                    for r in &records {
                        if logged < LOGGED_PER_INTERVAL {
                            logged += 1;
                            tracing::warn!(source = %source, reason = %r.reason, "record rejected");
                        } else {
                            unlogged += 1;
                        }
                    }
                    match batch(&schema, &records) {
                        Ok(b) => {
                            buffered += b.num_rows();
                            buffered_bytes += b.get_array_memory_size();
                            buffer.push(b);
                        }
                        Err(e) => {
                            tracing::error!(source = %source, error = %e, "dead letters not kept")
                        }
                    }
                    if buffered >= MAX_BUFFERED_ROWS || buffered_bytes >= MAX_BUFFERED_BYTES {
                        last_flush = Instant::now();
                        if let Err(e) = {
                            buffered_bytes = 0;
                            flush(&mut buffer, &mut buffered, &mut writer)
                        } {
                            tracing::error!(source = %source, error = %e, "writing dead letters failed");
                        }
                    }
                }
                RejectMessage::Flush(done) => {
                    last_flush = Instant::now();
                    if let Err(e) = {
                        buffered_bytes = 0;
                        flush(&mut buffer, &mut buffered, &mut writer)
                    } {
                        tracing::error!(source = %source, error = %e, "writing dead letters failed");
                    }
                    let _ = done.send(());
                }
                RejectMessage::Barrier(id) => {
                    let persisted = {
                        buffered_bytes = 0;
                        flush(&mut buffer, &mut buffered, &mut writer)
                    }
                    .and_then(|()| Ok(writer.start_epoch(id + 1)?));
                    last_flush = Instant::now();
                    match persisted {
                        Ok(()) => {
                            // Waits when the queue is full (bounded, see `CHECKPOINT_QUEUE`).
                            let _ = checkpoints
                                .send(CheckpointMessage::DeadLetters {
                                    id,
                                    source: source.clone(),
                                })
                                .await;
                        }
                        // Not reporting keeps the checkpoint from completing: the records stay
                        // covered by the previous one and are read again after a restart.
                        Err(e) => {
                            tracing::error!(source = %source, error = %e, "dead letters not persisted for checkpoint {id}")
                        }
                    }
                }
            }
        }
        if let Err(e) = flush(&mut buffer, &mut buffered, &mut writer) {
            tracing::error!(source = %source, error = %e, "writing dead letters failed");
        }
    });
    Ok(())
}
