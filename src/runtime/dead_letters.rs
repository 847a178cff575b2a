//! The dead-letter writer of a source: records that failed to decode go, in delivery
//! order, to the `<source>_errors` table, with their partition, position and reason. At a
//! checkpoint barrier everything before it is made durable (epoch files, see
//! [`crate::sinks::store`]) before the writer reports to the checkpoint coordinator.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use super::RuntimeError;
use crate::checkpoint::CheckpointMessage;
use crate::sinks::ResultStore;
use crate::sources::{RejectMessage, RejectedRecord, EVENT_TIME_TYPE};

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
    mut rx: mpsc::UnboundedReceiver<RejectMessage>,
    checkpoints: mpsc::UnboundedSender<CheckpointMessage>,
) -> Result<(), RuntimeError> {
    let schema = dead_letter_schema();
    let mut writer = store.open(
        &format!("{source}{ERRORS_SUFFIX}"),
        Arc::clone(&schema),
        epoch,
    )?;
    let source = source.to_string();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match message {
                RejectMessage::Records(records) => {
                    for r in records.iter().take(3) {
                        tracing::warn!(source = %source, reason = %r.reason, "record rejected");
                    }
                    let written = batch(&schema, &records).and_then(|b| {
                        writer.append(b)?;
                        writer.flush()?;
                        Ok(())
                    });
                    if let Err(e) = written {
                        tracing::error!(source = %source, error = %e, "writing dead letters failed");
                    }
                }
                RejectMessage::Barrier(id) => match writer.start_epoch(id + 1) {
                    Ok(()) => {
                        let _ = checkpoints.send(CheckpointMessage::DeadLetters {
                            id,
                            source: source.clone(),
                        });
                    }
                    // Not reporting keeps the checkpoint from completing: the records stay
                    // covered by the previous one and are read again after a restart.
                    Err(e) => {
                        tracing::error!(source = %source, error = %e, "dead letters not persisted for checkpoint {id}")
                    }
                },
            }
        }
    });
    Ok(())
}
