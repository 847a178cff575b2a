//! The file connector (`connector = 'file'`): bounded input from a JSON lines, JSON, CSV or
//! Parquet file, or from every file of a directory in file-name order, replayed as fast as
//! possible or paced by event time.
//!
//! Files are decoded on a blocking thread and handed to the async side through a small
//! channel, so decoding the next chunk overlaps with the engine consuming the previous one.
//! JSON lines and CSV files are read whole and decoded in chunks of `batch_size` lines.
//!
//! Every chunk carries its [`SourcePosition`] (file name, byte or record offset, next line),
//! so a checkpoint records exactly how far the files were read. A restarted run resumes
//! there: files before the position are skipped, the file at it is read from its offset,
//! and running the same script again on the same data dir reads (and stores) nothing twice.
//! Files added to a directory later, with names after the last one read, are read by the
//! next run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMillisecondType;
use arrow::record_batch::RecordBatch;
use axum::http::HeaderMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connector::{Connector, ConnectorError, ConnectorSpec, GENERIC_OPTIONS};
use super::decode::{self, CsvDecoder, Decoded, HttpDecodeOptions, JsonLinesDecoder};
use super::feed::{Delivery, SourceFeed};
use super::position::SourcePosition;
use super::rejected::RejectedRecord;
use super::schema::SourceSchema;

/// Options the file connector understands (besides the generic source options).
pub const FILE_OPTIONS: &[&str] = &[
    "path",
    "format",
    "replay",
    "replay_speed",
    "batch_size",
    "header",
    "delimiter",
];

/// File formats the connector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object per line.
    JsonLines,
    /// A JSON array of objects (or envelopes), a single object, or NDJSON.
    Json,
    /// Comma (or `delimiter`) separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl FileFormat {
    /// Parses the `format` option.
    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json_lines" | "jsonlines" => Some(Self::JsonLines),
            "json" | "inference-log" => Some(Self::Json),
            "csv" | "tsv" => Some(Self::Csv),
            "parquet" | "pq" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// Infers the format from a file extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        Self::parse(path.extension()?.to_str()?)
    }
}

/// How fast a file is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Replay {
    /// As fast as the engine takes it.
    Fast,
    /// Event-time gaps become wall-clock gaps divided by `speed`.
    Realtime {
        /// Speed-up factor (2.0 replays twice as fast as recorded).
        speed: f64,
    },
}

/// Bounded connector reading one file or a directory of files as partition 0.
#[derive(Debug, Clone)]
pub struct FileConnector {
    schema: Arc<SourceSchema>,
    path: PathBuf,
    format: Option<FileFormat>,
    replay: Replay,
    batch_size: usize,
    header: bool,
    delimiter: u8,
}

impl FileConnector {
    /// Validates the options of a `connector = 'file'` source. The path must exist.
    pub fn from_spec(spec: &ConnectorSpec) -> Result<Self, ConnectorError> {
        let name = &spec.schema.name;
        let err = |message: String| ConnectorError::Config {
            source_name: name.clone(),
            message,
        };
        let opts = &spec.options;
        for key in opts.keys() {
            if !FILE_OPTIONS.contains(&key.as_str()) && !GENERIC_OPTIONS.contains(&key.as_str()) {
                return Err(err(format!(
                    "unknown option '{key}' for connector 'file' (valid: {})",
                    FILE_OPTIONS.join(", ")
                )));
            }
        }
        let path = PathBuf::from(opts.get("path").ok_or_else(|| {
            err("connector 'file' needs option path = '<file or directory>'".into())
        })?);
        if !path.exists() {
            // Say where it was looked for: a relative path is the working directory's.
            let tried = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            return Err(err(format!("path '{}' does not exist", tried.display())));
        }
        let format = match opts.get("format") {
            Some(f) => Some(FileFormat::parse(f).ok_or_else(|| {
                err(format!("format '{f}' is not supported (valid: jsonl, json, csv, parquet)"))
            })?),
            None if path.is_file() => Some(FileFormat::from_path(&path).ok_or_else(|| {
                err(format!(
                    "cannot infer the format of '{}' from its extension; set format = 'jsonl' | 'json' | 'csv' | 'parquet'",
                    path.display()
                ))
            })?),
            None => None,
        };
        let speed = match opts.get("replay_speed") {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| err(format!("replay_speed must be a positive number, got '{s}'")))?,
            None => 1.0,
        };
        let replay = match opts
            .get("replay")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("fast") => Replay::Fast,
            Some("realtime") | Some("real_time") => Replay::Realtime { speed },
            Some(other) => {
                return Err(err(format!(
                    "replay must be 'fast' or 'realtime', got '{other}'"
                )))
            }
        };
        if matches!(replay, Replay::Realtime { .. }) && spec.schema.event_time.is_none() {
            return Err(err(
                "replay = 'realtime' needs an event-time column (declare WATERMARK FOR …)".into(),
            ));
        }
        let batch_size =
            match opts.get("batch_size") {
                Some(s) => s.parse::<usize>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    err(format!("batch_size must be a positive integer, got '{s}'"))
                })?,
                None => 8192,
            };
        let header = match opts
            .get("header")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("true") | Some("yes") | Some("1") => true,
            Some("false") | Some("no") | Some("0") => false,
            Some(other) => return Err(err(format!("header must be true or false, got '{other}'"))),
        };
        let delimiter = match opts.get("delimiter").map(String::as_str) {
            None if format_is_tsv(opts.get("format"), &path) => b'\t',
            None => b',',
            Some("\\t") | Some("tab") | Some("\t") => b'\t',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(d) => {
                return Err(err(format!(
                    "delimiter must be a single character, got '{d}'"
                )))
            }
        };
        Ok(Self {
            schema: spec.schema.clone(),
            path,
            format,
            replay,
            batch_size,
            header,
            delimiter,
        })
    }

    /// Files to read, in order, with their formats.
    fn files(&self) -> Result<Vec<(PathBuf, FileFormat)>, String> {
        if self.path.is_file() {
            let format = self.format.or_else(|| FileFormat::from_path(&self.path));
            return Ok(vec![(self.path.clone(), format.ok_or("unknown format")?)]);
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .map_err(|e| format!("cannot list '{}': {e}", self.path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
            })
            .collect();
        entries.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        Ok(entries
            .into_iter()
            .filter_map(
                |p| match self.format.or_else(|| FileFormat::from_path(&p)) {
                    Some(f) => Some((p, f)),
                    None => {
                        tracing::warn!(file = %p.display(), "skipping file with unknown format");
                        None
                    }
                },
            )
            .collect())
    }

    /// Reads and decodes every file from `start` on, sending decoded chunks with the
    /// position after each; runs on a blocking thread.
    fn produce(
        &self,
        start: Option<SourcePosition>,
        tx: mpsc::Sender<Result<Chunk, ConnectorError>>,
    ) {
        let io = |message: String| ConnectorError::Io {
            source_name: self.schema.name.clone(),
            message,
        };
        let files = match self.files() {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(io(e)));
                return;
            }
        };
        let resume = match start {
            Some(SourcePosition::File {
                file,
                offset,
                line,
                done,
            }) => Some((file, offset, line, done)),
            _ => None,
        };
        for (path, format) in files {
            let name = file_name(&path);
            // Files are append-only: earlier files are done; the file of the position
            // continues at its offset (reading what was appended since, if anything).
            let from = match &resume {
                Some((file, _, _, _)) if name < *file => continue,
                Some((file, offset, line, _)) if name == *file => Resume {
                    offset: *offset,
                    line: *line,
                },
                _ => Resume::default(),
            };
            tracing::info!(source = %self.schema.name, file = %path.display(), ?format, offset = from.offset, "reading");
            let send = |decoded: Decoded, offset: u64, line: i64, done: bool| {
                let position = SourcePosition::File {
                    file: name.clone(),
                    offset,
                    line,
                    done,
                };
                tx.blocking_send(Ok(Chunk { decoded, position })).is_ok()
            };
            let result = match format {
                FileFormat::Parquet => self.read_parquet(&path, from, &send),
                _ => match std::fs::read(&path) {
                    Ok(bytes) => Ok(self.decode_text(format, &path, &bytes, from, &send)),
                    Err(e) => Err(format!("cannot read '{}': {e}", path.display())),
                },
            };
            match result {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(io(e)));
                    return;
                }
            }
        }
    }

    fn read_parquet(&self, path: &Path, from: Resume, send: &Send<'_>) -> Result<bool, String> {
        let mut batches =
            decode::parquet_batches(path, &self.schema, 0, self.batch_size, from.offset as usize)
                .map_err(|e| e.to_string())?;
        while let Some(d) = batches.next() {
            let d = d.map_err(|e| e.to_string())?;
            if !send(d, batches.next_row(), 0, false) {
                return Ok(false);
            }
        }
        Ok(send(Decoded::default(), batches.next_row(), 0, true))
    }

    fn decode_text(
        &self,
        format: FileFormat,
        path: &Path,
        bytes: &[u8],
        from: Resume,
        send: &Send<'_>,
    ) -> bool {
        let len = bytes.len() as u64;
        match format {
            FileFormat::JsonLines => {
                let mut decoder = JsonLinesDecoder::new(self.schema.clone(), self.batch_size);
                let start = (from.offset as usize).min(bytes.len());
                let first_line = if from.offset == 0 { 1 } else { from.line };
                let mut next_line = first_line;
                for c in line_chunks(&bytes[start..], first_line, self.batch_size) {
                    let decoded = decoder.decode(0, c.line, &bytes[start + c.start..start + c.end]);
                    next_line = c.next_line;
                    if !send(decoded, (start + c.end) as u64, next_line, false) {
                        return false;
                    }
                }
                send(Decoded::default(), len.max(from.offset), next_line, true)
            }
            FileFormat::Csv => {
                let mut decoder = CsvDecoder::new(self.schema.clone(), self.delimiter);
                let mut body_start = 0;
                let mut first = 1;
                if self.header {
                    let end = bytes
                        .iter()
                        .position(|b| *b == b'\n')
                        .unwrap_or(bytes.len());
                    decoder.set_header(&bytes[..end]);
                    body_start = (end + 1).min(bytes.len());
                    first = 2;
                }
                let (start, first) = if from.offset as usize > body_start {
                    ((from.offset as usize).min(bytes.len()), from.line)
                } else {
                    (body_start, first)
                };
                let body = &bytes[start..];
                let (mut offset, mut next_line) = (start as u64, first);
                for (line, chunk) in decode::csv_chunks(body, first, self.batch_size) {
                    // A record's end (before its newline): resuming there reads the newline
                    // first, so line numbers continue.
                    offset =
                        (chunk.as_ptr() as usize - bytes.as_ptr() as usize + chunk.len()) as u64;
                    next_line = line + chunk.iter().filter(|b| **b == b'\n').count() as i64;
                    if !send(decoder.decode(0, line, chunk), offset, next_line, false) {
                        return false;
                    }
                }
                send(Decoded::default(), offset, next_line, true)
            }
            FileFormat::Json => {
                let options = HttpDecodeOptions::default();
                match decode::decode_http_body(&self.schema, &HeaderMap::new(), bytes, &options) {
                    Ok(body) => {
                        let skip = (from.offset as usize).min(body.batch.num_rows());
                        let rest = body.batch.slice(skip, body.batch.num_rows() - skip);
                        let mut rows = skip as u64;
                        for b in slices(&rest, self.batch_size) {
                            rows += b.num_rows() as u64;
                            let decoded = Decoded {
                                batch: Some(b),
                                rejected: Vec::new(),
                            };
                            if !send(decoded, rows, 0, false) {
                                return false;
                            }
                        }
                        send(Decoded::default(), rows, 0, true)
                    }
                    Err(e) => send(
                        Decoded {
                            batch: None,
                            rejected: vec![RejectedRecord::new(
                                0,
                                None,
                                bytes,
                                format!("{}: {e}", path.display()),
                            )],
                        },
                        0,
                        0,
                        true,
                    ),
                }
            }
            FileFormat::Parquet => unreachable!("parquet is read by parquet_batches"),
        }
    }
}

/// Where reading of one file starts.
#[derive(Debug, Clone, Copy, Default)]
struct Resume {
    /// Bytes (text) or records (Parquet, JSON) already read.
    offset: u64,
    /// Line number at `offset` (text formats).
    line: i64,
}

/// Sends one decoded chunk with the position after it: `(decoded, offset, next line,
/// file done)`; false when the receiver is gone.
type Send<'a> = dyn Fn(Decoded, u64, i64, bool) -> bool + 'a;

/// What the reading thread hands to the async side.
struct Chunk {
    decoded: Decoded,
    position: SourcePosition,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn format_is_tsv(format: Option<&String>, path: &Path) -> bool {
    match format {
        Some(f) => f.eq_ignore_ascii_case("tsv"),
        None => path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("tsv")),
    }
}

/// A chunk of at most `lines` lines of a text: its first line number, byte range and the
/// number of the line after it.
struct LineChunk {
    line: i64,
    start: usize,
    end: usize,
    next_line: i64,
}

/// Splits text into chunks of at most `lines` lines, numbering lines from `first_line`.
fn line_chunks(
    bytes: &[u8],
    first_line: i64,
    lines: usize,
) -> impl Iterator<Item = LineChunk> + '_ {
    let mut start = 0;
    let mut line_no = first_line;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let mut end = start;
        let mut n = 0;
        while end < bytes.len() && n < lines {
            end = bytes[end..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(bytes.len(), |i| end + i + 1);
            n += 1;
        }
        let chunk = LineChunk {
            line: line_no,
            start,
            end,
            next_line: line_no + n as i64,
        };
        line_no += n as i64;
        start = end;
        Some(chunk)
    })
}

fn slices(batch: &RecordBatch, size: usize) -> Vec<RecordBatch> {
    (0..batch.num_rows())
        .step_by(size.max(1))
        .map(|off| batch.slice(off, size.min(batch.num_rows() - off)))
        .collect()
}

/// Paces rows by event time for `replay = 'realtime'`.
struct Pacer {
    speed: f64,
    index: usize,
    origin: Option<(tokio::time::Instant, i64)>,
}

/// Rows whose due times lie within this wall-clock span are pushed together.
const PACE_GRANULARITY_MS: f64 = 20.0;

impl Pacer {
    /// Splits `batch` into slices, each with the wall-clock instant it is due.
    fn plan(&mut self, batch: &RecordBatch) -> Vec<(tokio::time::Instant, RecordBatch)> {
        let times = batch
            .column(self.index)
            .as_primitive::<TimestampMillisecondType>();
        let due = |origin: (tokio::time::Instant, i64), t: i64| {
            let offset_ms = ((t - origin.1) as f64 / self.speed).max(0.0);
            origin.0 + Duration::from_micros((offset_ms * 1000.0) as u64)
        };
        let mut out = Vec::new();
        let mut start = 0;
        let mut group_due = None;
        for row in 0..times.len() {
            if times.is_null(row) {
                continue;
            }
            let t = times.value(row);
            let origin = *self.origin.get_or_insert((tokio::time::Instant::now(), t));
            let d = due(origin, t);
            match group_due {
                None => group_due = Some(d),
                Some(g) if d > g + Duration::from_micros((PACE_GRANULARITY_MS * 1000.0) as u64) => {
                    out.push((g, batch.slice(start, row - start)));
                    start = row;
                    group_due = Some(d);
                }
                Some(_) => {}
            }
        }
        let last = group_due.unwrap_or_else(tokio::time::Instant::now);
        if start < batch.num_rows() {
            out.push((last, batch.slice(start, batch.num_rows() - start)));
        }
        out
    }
}

#[async_trait::async_trait]
impl Connector for FileConnector {
    fn is_bounded(&self) -> bool {
        true
    }

    fn identity(&self) -> String {
        format!("file:{}", self.path.display())
    }

    async fn run(
        self: Arc<Self>,
        feed: SourceFeed,
        shutdown: CancellationToken,
    ) -> Result<(), ConnectorError> {
        feed.register_partition(0);
        let (tx, mut rx) = mpsc::channel(2);
        let start = feed.position(0);
        let producer = {
            let this = self.clone();
            tokio::task::spawn_blocking(move || this.produce(start, tx))
        };
        let mut pacer = match self.replay {
            Replay::Fast => None,
            Replay::Realtime { speed } => self.schema.event_time.as_ref().map(|e| Pacer {
                speed,
                index: e.index,
                origin: None,
            }),
        };
        let mut result = Ok(());
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => break,
                item = rx.recv() => item,
            };
            let Chunk { decoded, position } = match item {
                None => break,
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::error!(source = %self.schema.name, error = %e, "file source failed");
                    result = Err(e);
                    break;
                }
            };
            let mut rejected = decoded.rejected;
            let plan = match (decoded.batch, pacer.as_mut()) {
                (None, _) => vec![(tokio::time::Instant::now(), None)],
                (Some(batch), None) => vec![(tokio::time::Instant::now(), Some(batch))],
                (Some(batch), Some(p)) => p
                    .plan(&batch)
                    .into_iter()
                    .map(|(d, b)| (d, Some(b)))
                    .collect(),
            };
            let last = plan.len().saturating_sub(1);
            for (i, (due, slice)) in plan.into_iter().enumerate() {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(due) => {}
                }
                let delivery = Delivery {
                    batch: slice,
                    rejected: std::mem::take(&mut rejected),
                    // Only the last slice of a chunk reaches the chunk's position.
                    position: (i == last).then(|| position.clone()),
                    arrival_ms: chrono::Utc::now().timestamp_millis(),
                };
                if feed.deliver(0, delivery).await.is_err() {
                    tracing::debug!(source = %self.schema.name, "feed closed, stopping file source");
                    return Ok(());
                }
            }
        }
        drop(rx);
        let _ = producer.await;
        if shutdown.is_cancelled() {
            return Ok(());
        }
        result?;
        let _ = feed.finish().await;
        Ok(())
    }
}
