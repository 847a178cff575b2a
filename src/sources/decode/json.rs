//! JSON lines (NDJSON) → Arrow, with arrow-json's vectorised tape decoder on the fast path
//! and bisection to isolate bad lines when a chunk fails.

use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::json::reader::{Decoder, ReaderBuilder};
use arrow::record_batch::RecordBatch;

use super::{count_lines, finish_batch, lines, raw_schema, readable, time, Decoded};
use crate::sources::rejected::{PartitionId, RejectedRecord};
use crate::sources::schema::SourceSchema;

/// Decodes chunks of JSON lines (one object per line) into batches of a source's schema.
///
/// Unknown fields are ignored, missing nullable fields become NULL, numbers are accepted
/// for string columns. Timestamp columns are decoded as the raw type their `time_format`
/// needs and converted array-at-a-time. A chunk with bad lines keeps its good lines; each
/// bad line becomes a [`RejectedRecord`] with its line number.
pub struct JsonLinesDecoder {
    schema: Arc<SourceSchema>,
    raw: SchemaRef,
    batch_size: usize,
    /// Reused between chunks while decoding succeeds (rebuilt after an error).
    decoder: Option<Decoder>,
    /// Whether to find out if lines have fields that match no column (see
    /// [`Self::check_unknown_fields`]).
    check_unknown: bool,
    /// What the check found: `Some(false)` no line of the chunks decoded so far had an
    /// unknown field, `Some(true)` some had, `None` not known.
    unknown: Option<bool>,
}

impl std::fmt::Debug for JsonLinesDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesDecoder")
            .field("source", &self.schema.name)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl JsonLinesDecoder {
    /// Creates a decoder for `schema`; `batch_size` bounds the rows decoded per internal
    /// flush (a chunk with more lines is decoded in several flushes and concatenated).
    pub fn new(schema: Arc<SourceSchema>, batch_size: usize) -> Self {
        let raw = raw_schema(&schema, time::json_raw_type);
        Self {
            schema,
            raw,
            batch_size: batch_size.max(1),
            decoder: None,
            check_unknown: false,
            unknown: None,
        }
    }

    /// Also finds out whether lines have fields that match no column (which are ignored):
    /// the whole-chunk decode first runs in arrow-json's strict mode, which costs nothing
    /// when every field is known; when one is not, the chunk is decoded again as usual and
    /// [`Self::had_unknown_fields`] says so.
    pub fn check_unknown_fields(mut self) -> Self {
        self.check_unknown = true;
        self.unknown = Some(false);
        self
    }

    /// With [`Self::check_unknown_fields`]: `Some(false)` when no line decoded so far had
    /// an unknown field, `Some(true)` when one had, `None` when the check could not tell
    /// (a chunk took the line-by-line path). Without the check: `None`.
    pub fn had_unknown_fields(&self) -> Option<bool> {
        self.unknown
    }

    /// The source schema produced batches have.
    pub fn schema(&self) -> &Arc<SourceSchema> {
        &self.schema
    }

    fn build(&self, strict: bool) -> Decoder {
        ReaderBuilder::new(self.raw.clone())
            .with_batch_size(self.batch_size)
            .with_coerce_primitive(true)
            .with_strict_mode(strict)
            .build_decoder()
            .expect("every source column type has a JSON decoder")
    }

    /// Decodes one chunk of JSON lines; `first_line_no` is the line number of the chunk's
    /// first line (used in rejected records and reasons).
    pub fn decode(&mut self, partition: PartitionId, first_line_no: i64, input: &[u8]) -> Decoded {
        let fast = match self.fast(input, self.check_unknown) {
            Err(e) if self.check_unknown && e.contains("missing from schema") => {
                self.unknown = Some(true);
                self.decoder = None;
                self.fast(input, false)
            }
            Err(e) if self.check_unknown => {
                self.unknown = self.unknown.filter(|u| *u);
                self.decoder = None;
                Err(e)
            }
            other => other,
        };
        match fast {
            Ok(None) if count_lines(input) == 0 => Decoded::default(),
            // A value spanning lines, or several values on one line: only line by line can
            // tell which lines are bad (and the fast path must not accept what the slow path
            // rejects).
            Ok(None) => self.slow(partition, first_line_no, input),
            Ok(Some((batch, bad))) if batch.num_rows() + bad.len() != count_lines(input) => {
                self.slow(partition, first_line_no, input)
            }
            Ok(Some((batch, bad))) if bad.is_empty() => Decoded {
                batch: Some(batch),
                rejected: Vec::new(),
            },
            Ok(Some((batch, bad))) => {
                let spans = lines(first_line_no, input);
                let mut rejected: Vec<RejectedRecord> = Vec::with_capacity(bad.len());
                for (row, reason) in bad {
                    let (line_no, raw) = spans[row];
                    if rejected.last().is_some_and(|r| r.position == Some(line_no)) {
                        continue;
                    }
                    rejected.push(RejectedRecord::new(
                        partition,
                        Some(line_no),
                        raw,
                        format!("line {line_no}: {reason}"),
                    ));
                }
                Decoded {
                    batch: (batch.num_rows() > 0).then_some(batch),
                    rejected,
                }
            }
            Err(e) => {
                tracing::debug!(source = %self.schema.name, error = %e, "chunk failed, isolating bad lines");
                self.slow(partition, first_line_no, input)
            }
        }
    }

    /// Whole-chunk decode. Bad time values come back as `(row, reason)`.
    #[allow(clippy::type_complexity)]
    fn fast(
        &mut self,
        input: &[u8],
        strict: bool,
    ) -> Result<Option<(RecordBatch, Vec<(usize, String)>)>, String> {
        let mut decoder = self.decoder.take().unwrap_or_else(|| self.build(strict));
        let mut batches = Vec::new();
        let mut offset = 0;
        loop {
            let read = decoder
                .decode(&input[offset..])
                .map_err(|e| e.to_string())?;
            offset += read;
            if offset >= input.len() {
                break;
            }
            if read == 0 || decoder.len() >= self.batch_size {
                if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
                    batches.push(b);
                } else if read == 0 {
                    return Err("decoder made no progress".into());
                }
            }
        }
        if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
            batches.push(b);
        }
        self.decoder = Some(decoder);
        let raw = match batches.len() {
            0 => return Ok(None),
            1 => batches.pop().expect("one batch"),
            _ => concat_batches(&self.raw, &batches).map_err(|e| e.to_string())?,
        };
        let rows = raw.num_rows();
        finish_batch(&self.schema, raw.columns().to_vec(), rows).map(Some)
    }

    /// Decodes exactly these lines (each must be one JSON object) or fails with a reason.
    fn decode_lines(&self, lines: &[(i64, &[u8])]) -> Result<Option<RecordBatch>, String> {
        let mut decoder = self.build(false);
        let mut batches = Vec::new();
        for (_, line) in lines {
            let mut rest: &[u8] = line;
            while !rest.is_empty() {
                let read = decoder
                    .decode(rest)
                    .map_err(|e| readable(&e.to_string(), &self.schema))?;
                rest = &rest[read..];
                if !rest.is_empty() || decoder.len() >= self.batch_size {
                    if let Some(b) = decoder
                        .flush()
                        .map_err(|e| readable(&e.to_string(), &self.schema))?
                    {
                        batches.push(b);
                    }
                }
            }
            decoder.decode(b"\n").map_err(|e| e.to_string())?;
            if decoder.has_partial_record() {
                return Err("truncated JSON (the line ends inside a value)".into());
            }
        }
        if let Some(b) = decoder
            .flush()
            .map_err(|e| readable(&e.to_string(), &self.schema))?
        {
            batches.push(b);
        }
        if batches.is_empty() {
            return Ok(None);
        }
        let raw = concat_batches(&self.raw, &batches).map_err(|e| e.to_string())?;
        if raw.num_rows() != lines.len() {
            return Err(format!(
                "expected one JSON object per line, found {} values",
                raw.num_rows()
            ));
        }
        let (batch, bad) = finish_batch(&self.schema, raw.columns().to_vec(), raw.num_rows())?;
        match bad.into_iter().next() {
            Some((_, reason)) => Err(reason),
            None => Ok(Some(batch)),
        }
    }

    /// Isolates bad lines by bisection: ranges that decode are kept whole, failing ranges
    /// are split until single bad lines remain.
    fn slow(&mut self, partition: PartitionId, first_line_no: i64, input: &[u8]) -> Decoded {
        let spans = lines(first_line_no, input);
        let mut good = Vec::new();
        let mut rejected = Vec::new();
        let mut stack = vec![&spans[..]];
        while let Some(range) = stack.pop() {
            if range.is_empty() {
                continue;
            }
            match self.decode_lines(range) {
                Ok(Some(b)) => good.push(b),
                Ok(None) => {}
                Err(reason) if range.len() == 1 => {
                    let (line_no, raw) = range[0];
                    rejected.push(RejectedRecord::new(
                        partition,
                        Some(line_no),
                        raw,
                        format!("line {line_no}: {reason}"),
                    ));
                }
                Err(_) => {
                    let (left, right) = range.split_at(range.len() / 2);
                    // Right first so the left half is decoded (and kept) first: order is kept.
                    stack.push(right);
                    stack.push(left);
                }
            }
        }
        rejected.sort_by_key(|r| r.position);
        let batch = match good.len() {
            0 => None,
            1 => good.pop(),
            _ => Some(
                concat_batches(&self.schema.arrow, &good).expect("batches share the source schema"),
            ),
        };
        if !rejected.is_empty() {
            tracing::debug!(source = %self.schema.name, rejected = rejected.len(), "rejected lines");
        }
        Decoded { batch, rejected }
    }
}

/// Checks that `batch` has a column array for every field of the source schema (used by
/// tests and debug assertions).
#[allow(dead_code)]
pub(crate) fn has_schema(batch: &RecordBatch, schema: &SourceSchema) -> bool {
    batch.schema().fields() == schema.arrow.fields()
        && batch.columns().iter().all(|c| c.len() == batch.num_rows())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::schema::{TimeFormat, EVENT_TIME_TYPE};
    use arrow::array::{Array, AsArray, Float64Array};
    use arrow::datatypes::{DataType, Field, TimestampMillisecondType};

    fn schema(format: TimeFormat) -> Arc<SourceSchema> {
        Arc::new(
            SourceSchema::new(
                "t",
                vec![
                    Field::new("id", DataType::Utf8, true),
                    Field::new("ts", EVENT_TIME_TYPE, false),
                    Field::new("x", DataType::Float64, true),
                ],
                Some(("ts".into(), 0)),
                format,
            )
            .unwrap(),
        )
    }

    #[test]
    fn isolates_bad_lines() {
        let mut d = JsonLinesDecoder::new(schema(TimeFormat::Auto), 1024);
        let input = b"{\"id\":\"a\",\"ts\":1000,\"x\":1.5,\"extra\":[1]}\n{\"id\":\"b\",\"ts\":2000,\"x\":\"oops\"}\n\n{\"ts\":\"1970-01-01T00:00:03Z\"}\n{\"id\":1,\"x\":2}\n{bad\n";
        let out = d.decode(0, 1, input);
        let b = out.batch.unwrap();
        assert_eq!(b.num_rows(), 2);
        let ts = b.column(1).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.values(), &[1000, 3000]);
        assert!(b
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .is_null(1));
        let pos: Vec<_> = out.rejected.iter().map(|r| r.position.unwrap()).collect();
        assert_eq!(pos, vec![2, 5, 6]);
        assert!(
            out.rejected[0].reason.contains("line 2"),
            "{:?}",
            out.rejected
        );
        assert!(
            out.rejected[1].reason.contains("'ts'"),
            "{:?}",
            out.rejected
        );
    }

    #[test]
    fn time_formats() {
        let mut d = JsonLinesDecoder::new(schema(TimeFormat::EpochSeconds), 2);
        let out = d.decode(
            0,
            1,
            b"{\"ts\":1.5}\n{\"ts\":2}\n{\"ts\":\"3\"}\n{\"ts\":\"x\"}\n",
        );
        let b = out.batch.unwrap();
        let ts = b.column(1).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.values(), &[1500, 2000, 3000]);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].position, Some(4));

        let mut d = JsonLinesDecoder::new(schema(TimeFormat::Rfc3339), 16);
        let out = d.decode(
            0,
            10,
            b"{\"ts\":\"2023-11-14T22:13:20.5Z\"}\n{\"ts\":\"yesterday\"}\n",
        );
        assert_eq!(out.num_rows(), 1);
        assert_eq!(out.rejected[0].position, Some(11));
        assert!(out.rejected[0].reason.contains("yesterday"));
    }
}
