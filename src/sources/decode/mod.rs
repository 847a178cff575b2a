//! Vectorised decoding of raw input (JSON lines, CSV, Parquet, HTTP inference-log bodies)
//! into Arrow [`RecordBatch`]es whose schema is exactly [`SourceSchema::arrow`], with every
//! timestamp column converted to [`EVENT_TIME_TYPE`] according to
//! [`SourceSchema::time_format`].
//!
//! Bad input never fails a whole chunk: decoders take a fast path over the whole chunk and,
//! only when it fails, isolate the bad records, keep the good ones and return each bad one
//! as a [`RejectedRecord`] with its position and a readable reason.
//!
//! [`EVENT_TIME_TYPE`]: crate::sources::EVENT_TIME_TYPE

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::sources::rejected::RejectedRecord;
use crate::sources::schema::{SourceSchema, TimeFormat};

mod builders;
mod csv;
mod envelope;
mod json;
mod messages;
mod parquet;
mod rows;
mod tensor;
pub mod time;
mod unknown;

pub use self::csv::{csv_chunks, decode_csv, CsvDecoder};
pub use self::envelope::{
    decode_http_body, BodyError, BodyKind, DecodedBody, HttpDecodeOptions, LogType,
};
pub use self::json::JsonLinesDecoder;
pub use self::parquet::{parquet_batches, ParquetBatches, ParquetError};
pub use self::unknown::UnknownFields;

/// Result of decoding one chunk: the good rows (in the source schema) and the bad records.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Decoded rows, `None` when the chunk held no good row.
    pub batch: Option<RecordBatch>,
    /// Records that could not be decoded, with position and reason.
    pub rejected: Vec<RejectedRecord>,
}

impl Decoded {
    /// Number of decoded rows.
    pub fn num_rows(&self) -> usize {
        self.batch.as_ref().map_or(0, |b| b.num_rows())
    }
}

/// Whether a declared column holds a timestamp (converted per `time_format`).
pub(crate) fn is_time(dt: &DataType) -> bool {
    matches!(dt, DataType::Timestamp(_, _))
}

/// The schema raw input is decoded with before time conversion: identical to the source
/// schema except that timestamp columns have `raw_type(format)`.
pub(crate) fn raw_schema(
    schema: &SourceSchema,
    raw_type: impl Fn(TimeFormat) -> DataType,
) -> SchemaRef {
    let fields: Vec<Field> = schema
        .arrow
        .fields()
        .iter()
        .map(|f| {
            if is_time(f.data_type()) {
                Field::new(f.name(), raw_type(schema.time_format), f.is_nullable())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Converts a batch decoded with a raw schema into the source schema: time columns are
/// converted (and range-checked), other columns cast when the types differ. Rows with a bad
/// time value are removed from the returned batch and reported as
/// `(row index in the input, reason)`.
pub(crate) fn finish_batch(
    schema: &SourceSchema,
    columns: Vec<ArrayRef>,
    num_rows: usize,
) -> Result<(RecordBatch, Vec<(usize, String)>), String> {
    let mut bad = Vec::new();
    let mut out = Vec::with_capacity(columns.len());
    for (field, col) in schema.arrow.fields().iter().zip(columns) {
        // Time columns are converted even when already in the event-time type: the
        // conversion also rejects values beyond `time::MAX_TIME_MS`.
        let col = if is_time(field.data_type()) {
            let (converted, errs) = time::to_event_time(col.as_ref(), schema.time_format);
            bad.extend(
                errs.into_iter()
                    .map(|b| (b.row, format!("column '{}': {}", field.name(), b.reason))),
            );
            cast_to(converted, field)?
        } else {
            cast_to(col, field)?
        };
        out.push(col);
    }
    let mut num_rows = num_rows;
    if !bad.is_empty() {
        bad.sort_by_key(|(row, _)| *row);
        bad.dedup_by_key(|(row, _)| *row);
        let mut keep = vec![true; num_rows];
        for (row, _) in &bad {
            keep[*row] = false;
        }
        let mask = arrow::array::BooleanArray::from(keep);
        out = out
            .iter()
            .map(|c| arrow::compute::filter(c, &mask))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        num_rows = mask.true_count();
    }
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(num_rows));
    let batch = RecordBatch::try_new_with_options(schema.arrow.clone(), out, &options)
        .map_err(|e| readable(&e.to_string(), schema))?;
    Ok((batch, bad))
}

fn cast_to(col: ArrayRef, field: &Field) -> Result<ArrayRef, String> {
    if col.data_type() == field.data_type() {
        return Ok(col);
    }
    if col.data_type() == &DataType::Null {
        return Ok(new_null_array(field.data_type(), col.len()));
    }
    arrow::compute::cast(&col, field.data_type())
        .map_err(|e| format!("column '{}': {e}", field.name()))
}

/// Turns an Arrow error message into one a user can act on.
pub(crate) fn readable(message: &str, schema: &SourceSchema) -> String {
    let message = message
        .trim_start_matches("Json error: ")
        .trim_start_matches("Parser error: ")
        .trim_start_matches("Invalid argument error: ");
    if message.contains("non-nullable") || message.contains("is declared as non-nullable") {
        let required: Vec<&str> = schema
            .arrow
            .fields()
            .iter()
            .filter(|f| !f.is_nullable())
            .map(|f| f.name().as_str())
            .filter(|n| message.contains(&format!("\"{n}\"")) || message.contains(n))
            .collect();
        if let Some(name) = required.first() {
            return format!("column '{name}' is NOT NULL but is missing or null");
        }
    }
    if let Some(rest) = message.strip_prefix("whilst decoding field '") {
        if let Some((name, why)) = rest.split_once("': ") {
            return format!("column '{name}': {why}");
        }
    }
    message.to_string()
}

/// Splits `input` into non-blank lines with their 1-based line numbers (offset by
/// `first_line_no - 1`).
pub(crate) fn lines(first_line_no: i64, input: &[u8]) -> Vec<(i64, &[u8])> {
    input
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (first_line_no + i as i64, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .collect()
}

/// Number of non-blank lines in `input` (the lines [`lines`] returns), without allocating.
pub(crate) fn count_lines(input: &[u8]) -> usize {
    input
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count()
}
