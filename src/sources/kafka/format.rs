//! Kafka messages → Arrow micro-batches in a source's schema, with the message metadata
//! columns filled from Kafka.
//!
//! Metadata columns are declared in `CREATE SOURCE` by name: `_partition` (INT),
//! `_offset` (BIGINT), `_timestamp` (TIMESTAMP: the Kafka message timestamp, usable as the
//! event-time column) and `_key` (VARCHAR, lossy UTF-8). They are never read from the
//! payload; every other column is decoded from it.
//!
//! `json` and `csv` messages of one partition are decoded together, one message per line,
//! by the vectorised line decoders; the envelope formats (`inference-log`, `cloudevents`)
//! go through the HTTP ingest's body decoder one message at a time (a message may hold
//! several instances). An undecodable message becomes a [`RejectedRecord`] with its Kafka
//! partition and offset; the other messages are kept.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use arrow::array::{RecordBatch, TimestampMillisecondArray};
use arrow::compute::{cast, concat_batches};
use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::options::MessageFormat;
use crate::sources::decode::{
    decode_http_body, time, CsvDecoder, Decoded, HttpDecodeOptions, JsonLinesDecoder, LogType,
};
use crate::sources::rejected::RejectedRecord;
use crate::sources::schema::SourceSchema;

/// One consumed Kafka message, owned (detached from the consumer's buffers).
#[derive(Debug, Clone, Default)]
pub struct RawMessage {
    /// Kafka partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Message timestamp (epoch ms), when the broker or producer set one.
    pub timestamp: Option<i64>,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value (`None` for a tombstone).
    pub payload: Option<Vec<u8>>,
    /// Headers (kept only for the `cloudevents` format).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A metadata column of a Kafka source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Partition,
    Offset,
    Timestamp,
    Key,
}

impl Meta {
    fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "_partition" => Some(Self::Partition),
            "_offset" => Some(Self::Offset),
            "_timestamp" => Some(Self::Timestamp),
            "_key" => Some(Self::Key),
            _ => None,
        }
    }

    fn array(self, messages: &[&RawMessage]) -> ArrayRef {
        match self {
            Self::Partition => Arc::new(Int32Array::from_iter_values(
                messages.iter().map(|m| m.partition),
            )),
            Self::Offset => Arc::new(Int64Array::from_iter_values(
                messages.iter().map(|m| m.offset),
            )),
            Self::Timestamp => Arc::new(TimestampMillisecondArray::from_iter(
                messages.iter().map(|m| m.timestamp),
            )),
            Self::Key => Arc::new(StringArray::from_iter(messages.iter().map(|m| {
                m.key
                    .as_deref()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
            }))),
        }
    }
}

/// Where each column of the source schema comes from.
#[derive(Debug, Clone, Copy)]
enum Column {
    /// Index into the payload schema.
    Payload(usize),
    /// Kafka metadata.
    Meta(Meta),
}

/// Decodes Kafka messages of one source into batches of its schema.
pub struct MessageDecoder {
    schema: Arc<SourceSchema>,
    payload: Arc<SourceSchema>,
    columns: Vec<Column>,
    format: MessageFormat,
    http_options: HttpDecodeOptions,
    json: JsonLinesDecoder,
    csv: CsvDecoder,
}

impl std::fmt::Debug for MessageDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageDecoder")
            .field("source", &self.schema.name)
            .field("format", &self.format)
            .finish()
    }
}

impl MessageDecoder {
    /// A decoder for `schema`; fails when no column is left for the payload.
    pub fn new(
        schema: Arc<SourceSchema>,
        format: MessageFormat,
        log_type: Option<&str>,
        csv_delimiter: u8,
        batch_size: usize,
    ) -> Result<Self, String> {
        let mut columns = Vec::new();
        let mut payload_fields = Vec::new();
        for field in schema.arrow.fields() {
            match Meta::from_name(field.name()) {
                Some(meta) => columns.push(Column::Meta(meta)),
                None => {
                    columns.push(Column::Payload(payload_fields.len()));
                    payload_fields.push(field.as_ref().clone());
                }
            }
        }
        if payload_fields.is_empty() {
            return Err("declare at least one column besides the metadata columns \
                        (_partition, _offset, _timestamp, _key)"
                .into());
        }
        let watermark = schema
            .event_time
            .as_ref()
            .filter(|e| Meta::from_name(&e.column).is_none())
            .map(|e| (e.column.clone(), e.delay_ms));
        let payload = Arc::new(SourceSchema::new(
            schema.name.clone(),
            payload_fields,
            watermark,
            schema.time_format,
        )?);
        let log_type = log_type.and_then(LogType::parse).unwrap_or_default();
        Ok(Self {
            json: JsonLinesDecoder::new(Arc::clone(&payload), batch_size),
            csv: CsvDecoder::new(Arc::clone(&payload), csv_delimiter),
            schema,
            payload,
            columns,
            format,
            http_options: HttpDecodeOptions { log_type },
        })
    }

    /// Decodes messages (all of one partition, in offset order).
    pub fn decode(&mut self, messages: &[RawMessage]) -> Decoded {
        let mut rejected = Vec::new();
        let mut good: Vec<&RawMessage> = Vec::with_capacity(messages.len());
        let reads_timestamp = self
            .columns
            .iter()
            .any(|c| matches!(c, Column::Meta(Meta::Timestamp)));
        for m in messages {
            match m.payload.as_deref() {
                Some(p) if p.iter().all(u8::is_ascii_whitespace) => {
                    rejected.push(reject(m, "empty message (no value)"))
                }
                None => rejected.push(reject(m, "empty message (no value)")),
                Some(_) => match m.timestamp {
                    Some(t) if reads_timestamp && time::in_range(t).is_none() => {
                        let why = format!("message timestamp: {}", time::out_of_range(t));
                        rejected.push(reject(m, &why));
                    }
                    _ => good.push(m),
                },
            }
        }
        let (batch, per_row) = match self.format {
            MessageFormat::Json | MessageFormat::Csv => self.lines(&good, &mut rejected),
            MessageFormat::InferenceLog | MessageFormat::CloudEvents => {
                self.envelopes(&good, &mut rejected)
            }
        };
        rejected.sort_by_key(|r| r.position);
        let batch = batch.and_then(|b| match self.with_metadata(b, &per_row) {
            Ok(b) => Some(b),
            Err(e) => {
                rejected.extend(per_row.iter().map(|m| reject(m, &e)));
                None
            }
        });
        Decoded {
            batch: batch.filter(|b| b.num_rows() > 0),
            rejected,
        }
    }

    /// `json` / `csv`: one message per line, decoded together; falls back to one message
    /// at a time when a message spans several lines or rows.
    fn lines<'m>(
        &mut self,
        good: &[&'m RawMessage],
        rejected: &mut Vec<RejectedRecord>,
    ) -> (Option<RecordBatch>, Vec<&'m RawMessage>) {
        if good.is_empty() {
            return (None, Vec::new());
        }
        let json = self.format == MessageFormat::Json;
        let total: usize = good.iter().map(|m| payload(m).len() + 1).sum();
        let mut buf = Vec::with_capacity(total);
        for m in good {
            let start = buf.len();
            buf.extend_from_slice(payload(m));
            if json {
                // Newlines are whitespace in JSON (never inside strings): one line each.
                for b in &mut buf[start..] {
                    if *b == b'\n' || *b == b'\r' {
                        *b = b' ';
                    }
                }
            } else {
                while matches!(buf.last(), Some(b'\n' | b'\r')) && buf.len() > start {
                    buf.pop();
                }
            }
            buf.push(b'\n');
        }
        let out = self.decode_lines(&buf);
        let mut keep = vec![true; good.len()];
        for r in &out.rejected {
            let idx = r.position.unwrap_or(0) as usize;
            if idx == 0 || idx > good.len() {
                return self.one_by_one(good, rejected);
            }
            // A message of several lines or values (NDJSON in one message) is a bad line
            // here but decodes on its own.
            if self.message(good[idx - 1]).rejected.is_empty() {
                return self.one_by_one(good, rejected);
            }
            keep[idx - 1] = false;
        }
        let kept: Vec<&RawMessage> = good
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(m, _)| *m)
            .collect();
        if out.num_rows() != kept.len() {
            return self.one_by_one(good, rejected);
        }
        for r in out.rejected {
            let m = good[r.position.unwrap_or(1) as usize - 1];
            let reason = r.reason.split_once(": ").map_or(r.reason.as_str(), |x| x.1);
            rejected.push(reject(m, reason));
        }
        (out.batch, kept)
    }

    fn decode_lines(&mut self, buf: &[u8]) -> Decoded {
        match self.format {
            MessageFormat::Csv => self.csv.decode(0, 1, buf),
            _ => self.json.decode(0, 1, buf),
        }
    }

    /// One `json` / `csv` message alone: its lines as they are (several JSON values or CSV
    /// records); for JSON, failing that, the message as one value spread over lines.
    fn message(&mut self, m: &RawMessage) -> Decoded {
        let out = self.decode_lines(payload(m));
        let multi_line = payload(m).iter().any(|b| matches!(b, b'\n' | b'\r'));
        if out.rejected.is_empty() || self.format != MessageFormat::Json || !multi_line {
            return out;
        }
        let flat: Vec<u8> = payload(m)
            .iter()
            .map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b })
            .collect();
        let one = self.decode_lines(&flat);
        if one.rejected.is_empty() {
            one
        } else {
            out
        }
    }

    fn one_by_one<'m>(
        &mut self,
        good: &[&'m RawMessage],
        rejected: &mut Vec<RejectedRecord>,
    ) -> (Option<RecordBatch>, Vec<&'m RawMessage>) {
        let mut batches = Vec::new();
        let mut per_row = Vec::new();
        for m in good {
            let out = self.message(m);
            if let Some(r) = out.rejected.first() {
                rejected.push(reject(m, &r.reason));
                continue;
            }
            if let Some(b) = out.batch {
                per_row.extend(std::iter::repeat_n(*m, b.num_rows()));
                batches.push(b);
            }
        }
        (self.concat(batches, &per_row, rejected), per_row)
    }

    /// Envelope formats: each message through the HTTP body decoder.
    fn envelopes<'m>(
        &mut self,
        good: &[&'m RawMessage],
        rejected: &mut Vec<RejectedRecord>,
    ) -> (Option<RecordBatch>, Vec<&'m RawMessage>) {
        let mut batches = Vec::with_capacity(good.len());
        let mut per_row = Vec::with_capacity(good.len());
        for m in good {
            let headers = if self.format == MessageFormat::CloudEvents {
                match cloudevent_headers(m) {
                    Ok(h) => h,
                    Err(e) => {
                        rejected.push(reject(m, &e));
                        continue;
                    }
                }
            } else {
                HeaderMap::new()
            };
            match decode_http_body(&self.payload, &headers, payload(m), &self.http_options) {
                Ok(d) if d.batch.num_rows() > 0 => {
                    per_row.extend(std::iter::repeat_n(*m, d.batch.num_rows()));
                    batches.push(d.batch);
                }
                Ok(_) => {}
                Err(e) => rejected.push(reject(m, &e.to_string())),
            }
        }
        (self.concat(batches, &per_row, rejected), per_row)
    }

    fn concat(
        &self,
        batches: Vec<RecordBatch>,
        per_row: &[&RawMessage],
        rejected: &mut Vec<RejectedRecord>,
    ) -> Option<RecordBatch> {
        match batches.len() {
            0 => None,
            1 => batches.into_iter().next(),
            _ => match concat_batches(&self.payload.arrow, &batches) {
                Ok(b) => Some(b),
                Err(e) => {
                    rejected.extend(per_row.iter().map(|m| reject(m, &e.to_string())));
                    None
                }
            },
        }
    }

    /// The payload batch widened to the source schema, metadata columns filled from the
    /// message each row came from.
    fn with_metadata(
        &self,
        batch: RecordBatch,
        per_row: &[&RawMessage],
    ) -> Result<RecordBatch, String> {
        if self.columns.iter().all(|c| matches!(c, Column::Payload(_))) {
            return Ok(batch);
        }
        let mut out = Vec::with_capacity(self.columns.len());
        for (column, field) in self.columns.iter().zip(self.schema.arrow.fields()) {
            let array = match column {
                Column::Payload(i) => Arc::clone(batch.column(*i)),
                Column::Meta(meta) => {
                    let a = meta.array(per_row);
                    if a.data_type() == field.data_type() {
                        a
                    } else {
                        cast(&a, field.data_type())
                            .map_err(|e| format!("column '{}': {e}", field.name()))?
                    }
                }
            };
            out.push(array);
        }
        RecordBatch::try_new(Arc::clone(&self.schema.arrow), out).map_err(|e| e.to_string())
    }
}

fn payload(m: &RawMessage) -> &[u8] {
    m.payload.as_deref().unwrap_or_default()
}

fn reject(m: &RawMessage, reason: &str) -> RejectedRecord {
    RejectedRecord::new(
        m.partition.max(0) as u32,
        Some(m.offset),
        payload(m),
        format!("partition {} offset {}: {reason}", m.partition, m.offset),
    )
}

/// The CloudEvents binary-mode Kafka headers (`ce_type`, `ce_id`, `ce_time`, …) as the HTTP
/// headers the body decoder reads (`ce-type`, …).
fn cloudevent_headers(m: &RawMessage) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &m.headers {
        let lower = name.to_ascii_lowercase();
        let Some(rest) = lower
            .strip_prefix("ce_")
            .or_else(|| lower.strip_prefix("ce-"))
        else {
            continue;
        };
        let name = HeaderName::from_bytes(format!("ce-{rest}").as_bytes())
            .map_err(|_| format!("header {name:?} is not a valid header name"))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("header {name}: value is not valid text"))?;
        headers.insert(name, value);
    }
    if !headers.contains_key("ce-type") {
        return Err("format 'cloudevents' needs a ce_type header (binary-mode CloudEvent)".into());
    }
    Ok(headers)
}
