//! How far a source partition has been read: what a checkpoint stores per partition and
//! where a connector resumes after a restart.

use serde::{Deserialize, Serialize};

/// Position of one source partition: everything before it has been delivered to the
/// engine (and, once a checkpoint holds it, is covered by that checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourcePosition {
    /// Kafka: the next offset to read.
    Kafka {
        /// Next offset.
        next_offset: i64,
    },
    /// File source: files before `file` (in name order) are read; of `file`, the first
    /// `offset` bytes (JSON lines, CSV) or records (Parquet, JSON documents) are read, and
    /// the next line is `line`. `done` says `file` was read to its end.
    File {
        /// File name (not the full path: the source's `path` locates it).
        file: String,
        /// Bytes (text formats) or records (Parquet, JSON documents) read.
        offset: u64,
        /// Next line number of text formats (1-based).
        line: i64,
        /// Whether `file` was read completely.
        done: bool,
    },
    /// HTTP ingest: the next write-ahead-log sequence number.
    Wal {
        /// Next LSN.
        next_lsn: u64,
    },
}

impl SourcePosition {
    /// The Kafka offset, when this is a Kafka position.
    pub fn kafka_offset(&self) -> Option<i64> {
        match self {
            Self::Kafka { next_offset } => Some(*next_offset),
            _ => None,
        }
    }

    /// The WAL sequence number, when this is a WAL position.
    pub fn wal_lsn(&self) -> Option<u64> {
        match self {
            Self::Wal { next_lsn } => Some(*next_lsn),
            _ => None,
        }
    }
}
