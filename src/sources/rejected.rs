//! Records that could not be decoded: counted and kept with their reason, never dropped.

/// Identifies a partition of a source (a Kafka partition, a file, an HTTP ingest stream).
pub type PartitionId = u32;

/// One raw record that failed to decode, kept in the source's dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// Partition the record came from.
    pub partition: PartitionId,
    /// Position within the partition when known (line number, Kafka offset).
    pub position: Option<i64>,
    /// The raw record, as text (lossy UTF-8 for binary input), truncated to 64 KiB.
    pub raw: String,
    /// Why it was rejected, e.g. `line 3: column 'ts': cannot parse "abc" as RFC 3339`.
    pub reason: String,
}

/// Largest raw record kept in a dead-letter row.
pub const MAX_RAW_LEN: usize = 64 * 1024;

impl RejectedRecord {
    /// Builds a rejected record, truncating `raw` to [`MAX_RAW_LEN`] bytes.
    pub fn new(
        partition: PartitionId,
        position: Option<i64>,
        raw: &[u8],
        reason: impl Into<String>,
    ) -> Self {
        let raw = &raw[..raw.len().min(MAX_RAW_LEN)];
        Self {
            partition,
            position,
            raw: String::from_utf8_lossy(raw).into_owned(),
            reason: reason.into(),
        }
    }
}
