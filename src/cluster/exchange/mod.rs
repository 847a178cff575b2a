//! Records of a monitor's repartition topic: partial pane state and watermark marks.
//!
//! Every record value starts with the same validated header, little-endian throughout:
//!
//! | bytes | field                                                                |
//! |-------|----------------------------------------------------------------------|
//! | 4     | magic [`MAGIC`]                                                      |
//! | 2     | format version ([`FORMAT_VERSION`])                                  |
//! | 1     | kind: 1 = [`PartialPane`], 2 = [`WatermarkMark`]                     |
//! | 4     | CRC-32 of every other byte of the record (header and body)           |
//! | 2 + n | monitor name: u16 length (at most [`MAX_MONITOR_NAME_BYTES`]), UTF-8 |
//! | 8     | plan fingerprint (u64)                                               |
//! | 4     | source partition (i32, not negative)                                 |
//!
//! then, for a partial pane: pane start (i64 epoch ms), chunk index and chunk count (u32,
//! index < count), the length of the rest (u32) and the state rows as an Arrow IPC *stream*
//! holding exactly one batch; for a watermark mark: watermark (i64 epoch ms, `i64::MIN` =
//! none), idle flag (one byte, 0 or 1) and the source offset it covers (i64, not negative),
//! and nothing after.
//!
//! [`decode`] validates everything it takes from the bytes and never panics: the CRC catches
//! truncation and corruption, the IPC stream's framing (message and body lengths, buffer
//! ranges, no compression) is checked before Arrow's reader sees it, so no length read from
//! the bytes drives an allocation, and as a last line of defence a panic inside Arrow's
//! decoder on crafted input is turned into [`ExchangeError::Ipc`].
//!
//! [`partition_rows`] assigns each group to a repartition partition with a hash that depends
//! only on the key *values* (not on Arrow's row format, which may change between releases,
//! nor on the physical string or dictionary encoding), so every process and every version
//! agrees on it.

use std::io::Cursor;

use arrow::array::RecordBatch;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::MetadataVersion;

/// First bytes of every repartition-topic record.
pub const MAGIC: [u8; 4] = *b"DWSX";
/// Version of the record layout written by this build (the only one it reads).
pub const FORMAT_VERSION: u16 = 1;
/// Longest monitor name a record may carry, in bytes.
pub const MAX_MONITOR_NAME_BYTES: usize = 1024;

const KIND_PARTIAL: u8 = 1;
const KIND_WATERMARK: u8 = 2;
/// Magic, version, kind.
const CRC_AT: usize = 7;
/// Magic, version, kind, CRC.
const PREFIX_LEN: usize = 11;
const IPC_CONTINUATION: u32 = 0xFFFF_FFFF;

/// Why a record could not be encoded, decoded or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The record ends inside a field.
    #[error("record truncated: {field} needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the record.
        available: usize,
    },
    /// The record does not start with [`MAGIC`].
    #[error("not a repartition record: magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A format version this build does not read.
    #[error("unsupported repartition record version {found} (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version in the record.
        found: u16,
    },
    /// A record kind this build does not know.
    #[error("unknown repartition record kind {0}")]
    UnknownKind(u8),
    /// The CRC does not match the bytes.
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// CRC stored in the header.
        stored: u32,
        /// CRC of the bytes received.
        computed: u32,
    },
    /// A field holds a value outside its bounds.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes follow the last field.
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
    /// The Arrow IPC stream is malformed or does not hold exactly one batch.
    #[error("bad Arrow IPC stream: {0}")]
    Ipc(String),
    /// A record from another monitor or another definition of this monitor.
    #[error("record from {found}, expected {expected}")]
    WrongOrigin {
        /// Monitor and fingerprint expected.
        expected: String,
        /// Monitor and fingerprint in the record.
        found: String,
    },
    /// A group key column of a type [`partition_rows`] cannot hash stably.
    #[error("group key of type {0} cannot be assigned to a repartition partition")]
    UnsupportedKeyType(String),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ExchangeError {
    ExchangeError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// The partial state of one pane from one source partition, for the groups that hash to
/// one repartition partition (possibly one chunk of several).
#[derive(Debug, Clone, PartialEq)]
pub struct PartialPane {
    /// Monitor name.
    pub monitor: String,
    /// Fingerprint of the monitor's plan: stage 2 rejects other definitions.
    pub plan_fingerprint: u64,
    /// Source partition whose records the state covers.
    pub source_partition: i32,
    /// Start of the pane (epoch ms).
    pub pane_start: i64,
    /// Index of this chunk among the pane's chunks (< `chunk_count`).
    pub chunk_index: u32,
    /// Number of chunks the pane's rows were split into (>= 1).
    pub chunk_count: u32,
    /// State rows (`_pane_start`, key columns, state columns; any schema).
    pub batch: RecordBatch,
}

/// A source partition's watermark, published by stage 1 to every repartition partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkMark {
    /// Monitor name.
    pub monitor: String,
    /// Fingerprint of the monitor's plan.
    pub plan_fingerprint: u64,
    /// Source partition the watermark is of.
    pub source_partition: i32,
    /// Watermark (epoch ms, `i64::MIN` = none yet).
    pub watermark: i64,
    /// Whether the partition is idle (caught up and silent).
    pub idle: bool,
    /// Next offset to read in the source partition: the mark covers everything before it.
    pub source_offset: i64,
}

/// A decoded repartition-topic record.
#[derive(Debug, Clone, PartialEq)]
pub enum ShuffleRecord {
    /// Partial pane state.
    Partial(PartialPane),
    /// A watermark mark.
    Watermark(WatermarkMark),
}

impl ShuffleRecord {
    /// The monitor the record belongs to.
    pub fn monitor(&self) -> &str {
        match self {
            Self::Partial(p) => &p.monitor,
            Self::Watermark(w) => &w.monitor,
        }
    }

    /// The plan fingerprint of the producer.
    pub fn plan_fingerprint(&self) -> u64 {
        match self {
            Self::Partial(p) => p.plan_fingerprint,
            Self::Watermark(w) => w.plan_fingerprint,
        }
    }

    /// The source partition the record is about.
    pub fn source_partition(&self) -> i32 {
        match self {
            Self::Partial(p) => p.source_partition,
            Self::Watermark(w) => w.source_partition,
        }
    }

    /// Fails with [`ExchangeError::WrongOrigin`] unless the record comes from `monitor` as
    /// defined by the plan with `plan_fingerprint`.
    pub fn check_origin(&self, monitor: &str, plan_fingerprint: u64) -> Result<(), ExchangeError> {
        if self.monitor() == monitor && self.plan_fingerprint() == plan_fingerprint {
            return Ok(());
        }
        Err(ExchangeError::WrongOrigin {
            expected: format!("monitor {monitor:?} plan {plan_fingerprint:#018x}"),
            found: format!(
                "monitor {:?} plan {:#018x}",
                self.monitor(),
                self.plan_fingerprint()
            ),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Encoding

fn start_record(
    kind: u8,
    monitor: &str,
    fingerprint: u64,
    partition: i32,
) -> Result<Vec<u8>, ExchangeError> {
    if monitor.len() > MAX_MONITOR_NAME_BYTES {
        return Err(invalid(
            "monitor name",
            format!(
                "{} bytes, the limit is {MAX_MONITOR_NAME_BYTES}",
                monitor.len()
            ),
        ));
    }
    if partition < 0 {
        return Err(invalid(
            "source partition",
            format!("{partition} is negative"),
        ));
    }
    let mut buf = Vec::with_capacity(64 + monitor.len());
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(monitor.len() as u16).to_le_bytes());
    buf.extend_from_slice(monitor.as_bytes());
    buf.extend_from_slice(&fingerprint.to_le_bytes());
    buf.extend_from_slice(&partition.to_le_bytes());
    Ok(buf)
}

fn record_crc(buf: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[..CRC_AT]);
    h.update(&buf[PREFIX_LEN..]);
    h.finalize()
}

fn seal(mut buf: Vec<u8>) -> Vec<u8> {
    let crc = record_crc(&buf);
    buf[CRC_AT..PREFIX_LEN].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// Encodes a partial pane as a record value. Fails on a monitor name over the bound, a
/// negative source partition, chunk bounds (`chunk_count >= 1`, `chunk_index <
/// chunk_count`) or a batch Arrow IPC cannot write.
pub fn encode_partial(pane: &PartialPane) -> Result<Vec<u8>, ExchangeError> {
    check_chunk(pane.chunk_index, pane.chunk_count)?;
    let mut buf = start_record(
        KIND_PARTIAL,
        &pane.monitor,
        pane.plan_fingerprint,
        pane.source_partition,
    )?;
    buf.extend_from_slice(&pane.pane_start.to_le_bytes());
    buf.extend_from_slice(&pane.chunk_index.to_le_bytes());
    buf.extend_from_slice(&pane.chunk_count.to_le_bytes());
    let len_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    write_ipc_stream(&mut buf, &pane.batch)?;
    let ipc_len = u32::try_from(buf.len() - len_at - 4)
        .map_err(|_| invalid("state batch", "its Arrow IPC stream exceeds 4 GiB"))?;
    buf[len_at..len_at + 4].copy_from_slice(&ipc_len.to_le_bytes());
    Ok(seal(buf))
}

/// Encodes a watermark mark as a record value. Fails on a monitor name over the bound or a
/// negative source partition or offset.
pub fn encode_watermark(mark: &WatermarkMark) -> Result<Vec<u8>, ExchangeError> {
    if mark.source_offset < 0 {
        return Err(invalid(
            "source offset",
            format!("{} is negative", mark.source_offset),
        ));
    }
    let mut buf = start_record(
        KIND_WATERMARK,
        &mark.monitor,
        mark.plan_fingerprint,
        mark.source_partition,
    )?;
    buf.extend_from_slice(&mark.watermark.to_le_bytes());
    buf.push(u8::from(mark.idle));
    buf.extend_from_slice(&mark.source_offset.to_le_bytes());
    Ok(seal(buf))
}

fn check_chunk(index: u32, count: u32) -> Result<(), ExchangeError> {
    if count == 0 {
        return Err(invalid("chunk count", "0 (a pane has at least one chunk)"));
    }
    if index >= count {
        return Err(invalid(
            "chunk index",
            format!("{index} is not below the count {count}"),
        ));
    }
    Ok(())
}

/// Writes `batch` as an IPC stream (schema, batch, end of stream), buffers padded to 8 bytes.
fn write_ipc_stream(buf: &mut Vec<u8>, batch: &RecordBatch) -> Result<(), ExchangeError> {
    let ipc = |e: arrow::error::ArrowError| ExchangeError::Ipc(e.to_string());
    let options = IpcWriteOptions::try_new(8, false, MetadataVersion::V5).map_err(ipc)?;
    let mut writer =
        StreamWriter::try_new_with_options(&mut *buf, batch.schema_ref(), options).map_err(ipc)?;
    writer.write(batch).map_err(ipc)?;
    writer.finish().map_err(ipc)
}

/// The Kafka key of a partial pane's chunk: `b'P'`, the monitor name (u32 length, big
/// endian, then its bytes), source partition, pane start and chunk, all big endian.
/// Deterministic, and distinct for every distinct argument tuple.
pub fn record_key(monitor: &str, source_partition: i32, pane_start: i64, chunk: u32) -> Vec<u8> {
    let mut key = key_prefix(b'P', monitor, source_partition);
    key.extend_from_slice(&pane_start.to_be_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The Kafka key of a watermark mark: `b'W'`, then monitor and source partition as in
/// [`record_key`].
pub fn watermark_key(monitor: &str, source_partition: i32) -> Vec<u8> {
    key_prefix(b'W', monitor, source_partition)
}

fn key_prefix(tag: u8, monitor: &str, source_partition: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 4 + monitor.len() + 16);
    key.push(tag);
    key.extend_from_slice(&(monitor.len() as u32).to_be_bytes());
    key.extend_from_slice(monitor.as_bytes());
    key.extend_from_slice(&source_partition.to_be_bytes());
    key
}

// ---------------------------------------------------------------------------------------
// Decoding

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ExchangeError> {
        let available = self.buf.len() - self.pos;
        if n > available {
            return Err(ExchangeError::Truncated {
                field,
                needed: n,
                available,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ExchangeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ExchangeError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ExchangeError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, ExchangeError> {
        self.array(field).map(i32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ExchangeError> {
        self.array(field).map(u64::from_le_bytes)
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, ExchangeError> {
        self.array(field).map(i64::from_le_bytes)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Decodes and validates a repartition-topic record value. Never panics.
pub fn decode(bytes: &[u8]) -> Result<ShuffleRecord, ExchangeError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let magic = r.array::<4>("magic")?;
    if magic != MAGIC {
        return Err(ExchangeError::BadMagic(magic));
    }
    let version = r.u16("format version")?;
    if version != FORMAT_VERSION {
        return Err(ExchangeError::UnsupportedVersion { found: version });
    }
    let kind = r.array::<1>("kind")?[0];
    if kind != KIND_PARTIAL && kind != KIND_WATERMARK {
        return Err(ExchangeError::UnknownKind(kind));
    }
    let stored = r.u32("checksum")?;
    let computed = record_crc(bytes);
    if stored != computed {
        return Err(ExchangeError::Checksum { stored, computed });
    }
    let name_len = usize::from(r.u16("monitor name length")?);
    if name_len > MAX_MONITOR_NAME_BYTES {
        return Err(invalid(
            "monitor name",
            format!("{name_len} bytes, the limit is {MAX_MONITOR_NAME_BYTES}"),
        ));
    }
    let monitor = std::str::from_utf8(r.take(name_len, "monitor name")?)
        .map_err(|e| invalid("monitor name", e.to_string()))?
        .to_string();
    let plan_fingerprint = r.u64("plan fingerprint")?;
    let source_partition = r.i32("source partition")?;
    if source_partition < 0 {
        return Err(invalid(
            "source partition",
            format!("{source_partition} is negative"),
        ));
    }
    if kind == KIND_WATERMARK {
        let watermark = r.i64("watermark")?;
        let idle = match r.array::<1>("idle flag")?[0] {
            0 => false,
            1 => true,
            b => return Err(invalid("idle flag", format!("{b} is neither 0 nor 1"))),
        };
        let source_offset = r.i64("source offset")?;
        if source_offset < 0 {
            return Err(invalid(
                "source offset",
                format!("{source_offset} is negative"),
            ));
        }
        if r.remaining() > 0 {
            return Err(ExchangeError::TrailingBytes(r.remaining()));
        }
        return Ok(ShuffleRecord::Watermark(WatermarkMark {
            monitor,
            plan_fingerprint,
            source_partition,
            watermark,
            idle,
            source_offset,
        }));
    }
    let pane_start = r.i64("pane start")?;
    let chunk_index = r.u32("chunk index")?;
    let chunk_count = r.u32("chunk count")?;
    check_chunk(chunk_index, chunk_count)?;
    let ipc_len = r.u32("state batch length")? as usize;
    let body = r.take(ipc_len, "state batch")?;
    if r.remaining() > 0 {
        return Err(ExchangeError::TrailingBytes(r.remaining()));
    }
    Ok(ShuffleRecord::Partial(PartialPane {
        monitor,
        plan_fingerprint,
        source_partition,
        pane_start,
        chunk_index,
        chunk_count,
        batch: read_ipc_stream(body)?,
    }))
}

mod chunks;
mod ipc;
mod routing;
#[cfg(test)]
mod tests;

pub use chunks::split_into_chunks;
use ipc::read_ipc_stream;
pub use routing::partition_rows;
