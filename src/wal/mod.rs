//! Segmented write-ahead log (WAL) for the HTTP ingest.
//!
//! The ingest answers a request with 2xx only once its rows are in this log, so a crash after
//! the answer loses nothing: on restart the rows are replayed from the log. The API is blocking
//! (std I/O, no async runtime); the caller owns the [`WalWriter`] on a dedicated thread.
//!
//! # Use
//! - [`WalWriter::open`] on start-up (it repairs a torn tail left by a crash), then
//!   [`replay`] from the last checkpointed LSN to re-feed what was not yet processed;
//! - [`WalWriter::append`] one group of entries per request (or per batch of requests), with
//!   [`WalSync::Always`] for "fsync before answering", or [`WalSync::Never`] plus a periodic
//!   [`WalWriter::sync`] for interval-based durability;
//! - [`WalWriter::truncate_before`] once everything below an LSN is persisted elsewhere.
//!
//! # On-disk layout
//! A log is a directory of segment files:
//!
//! ```text
//! <dir>/seg-00000000000000000000.wal      first record has lsn 0
//! <dir>/seg-00000000000000001234.wal      first record has lsn 1234
//! ```
//!
//! A segment is named after the LSN of its first record, zero-padded to 20 digits, so that name
//! order is LSN order. Files with other names are ignored. Every integer is little-endian.
//!
//! ```text
//! segment  = magic "DWWAL001" (8 bytes) , record*
//! record   = payload_len: u32 , crc: u32 (crc32 of payload, crc32fast) , payload
//! payload  = lsn: u64 , arrival_ms: i64 , kind: u8 , body
//! kind 0   (batch)    body = Arrow IPC stream: schema message, one record batch, end-of-stream
//! kind 1   (rejected) body = reason_len: u32 , reason (UTF-8) , raw request bytes
//! ```
//!
//! LSNs are dense: each record's LSN is its predecessor's plus one, across segments, and the
//! first record of a segment carries the LSN in the file name. Readers check this, so a lost,
//! repeated or misplaced record is reported as corruption. A payload is at least 17 bytes and at
//! most 1 GiB; a length prefix outside that range is treated like a CRC mismatch, so garbage is
//! never used as an allocation size.
//!
//! # Crash semantics
//! - A group of entries is encoded into one buffer and written with one `write` call; a group
//!   never spans two segments. [`WalSync::Always`] fsyncs (`sync_data`) before `append` returns.
//! - A crash can leave the last segment with a torn tail: a short header, a short payload or a
//!   payload whose CRC does not match. [`WalWriter::open`] cuts it off (and logs a warning), and
//!   [`replay`] stops cleanly before it.
//! - Every segment but the last is complete: rotation fsyncs the old segment before creating the
//!   new one, and a new segment's file and directory entry are fsynced before it is used. A bad
//!   record in a non-last segment is therefore real damage: [`replay`] returns
//!   [`WalError::Corrupt`] naming the file and offset, and nothing repairs it automatically.
//! - After an fsync error or a failed rotation the writer refuses further appends (the state of
//!   the page cache is unknown after a failed fsync); reopen it. Records of a failed append may
//!   or may not be in the log, so a retried request can be replayed twice (at-least-once).

mod reader;
mod record;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

pub use reader::{replay, WalReplay};
pub use writer::WalWriter;

/// Default segment size for [`WalOptions`]: 64 MiB, large enough that rotation (two fsyncs) is
/// rare and small enough that truncation frees space in useful steps.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// Largest record payload the log writes or reads (1 GiB). A length prefix above it is treated
/// as corruption, so a damaged header never turns into a huge allocation.
pub const MAX_PAYLOAD_BYTES: u32 = 1 << 30;

/// When appended records are forced to disk.
///
/// `Always` makes an append durable against power loss before it returns; `Never` only hands it
/// to the OS (it survives a process crash, not a power loss) and leaves it to the caller to call
/// [`WalWriter::sync`], e.g. on an interval or before acknowledging a batch of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalSync {
    /// fsync (`File::sync_data`) the segment before `append` returns.
    Always,
    /// Only write; durability comes from a later [`WalWriter::sync`] or rotation.
    Never,
}

/// Settings of a [`WalWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Rotate to a new segment before appending a group once the current segment holds at least
    /// this many bytes. Segments are the unit of [`WalWriter::truncate_before`], so this bounds
    /// how much space a fully processed prefix can keep occupied.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    /// Segments of [`DEFAULT_SEGMENT_BYTES`].
    fn default() -> Self {
        Self {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// What one record holds.
#[derive(Debug, Clone, PartialEq)]
pub enum WalEntry {
    /// Decoded rows of one request, stored as Arrow IPC stream bytes (schema + one batch), so
    /// the schema, nulls and field metadata come back exactly.
    Batch {
        /// When the request arrived (milliseconds since the Unix epoch).
        arrival_ms: i64,
        /// The decoded rows.
        batch: RecordBatch,
    },
    /// A request body that failed to decode, kept so that it survives a crash and can still be
    /// reported (e.g. to a dead-letter sink) after a restart.
    Rejected {
        /// When the request arrived (milliseconds since the Unix epoch).
        arrival_ms: i64,
        /// The raw body, already truncated by the caller to what it wants to keep.
        raw: Vec<u8>,
        /// Why decoding failed.
        reason: String,
    },
}

impl WalEntry {
    /// When the request behind this entry arrived (milliseconds since the Unix epoch).
    pub fn arrival_ms(&self) -> i64 {
        match self {
            WalEntry::Batch { arrival_ms, .. } | WalEntry::Rejected { arrival_ms, .. } => {
                *arrival_ms
            }
        }
    }
}

/// One record read back by [`replay`]: an entry and the log sequence number it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct WalRecord {
    /// The record's log sequence number (dense: 0, 1, 2, … across segments).
    pub lsn: u64,
    /// What was appended.
    pub entry: WalEntry,
}

/// Errors of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O call failed on `path` (a segment file or the log directory).
    #[error("WAL I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The log holds bytes that are not a valid record where one must be (a bad record in a
    /// non-last segment, a gap or repeat in the LSNs, a bad segment header).
    #[error("corrupt WAL segment {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record (or header) in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A replay was asked to start at an LSN whose segment was already deleted by
    /// [`WalWriter::truncate_before`].
    #[error("WAL records before lsn {first_available} were truncated; replay from {requested} is impossible")]
    Truncated {
        /// The LSN the replay was asked to start at.
        requested: u64,
        /// The oldest LSN still in the log.
        first_available: u64,
    },
    /// Arrow failed to encode a batch as IPC (e.g. an unsupported type).
    #[error("WAL could not encode a batch as Arrow IPC: {0}")]
    Arrow(#[from] ArrowError),
    /// An entry encodes to more than [`MAX_PAYLOAD_BYTES`]; nothing of its group was written.
    #[error("WAL entry of {len} bytes exceeds the {max}-byte record limit")]
    TooLarge {
        /// The encoded payload size.
        len: u64,
        /// The limit ([`MAX_PAYLOAD_BYTES`]).
        max: u64,
    },
}
