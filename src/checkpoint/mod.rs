//! Checkpoints: consistent snapshots of every monitor's window state together with the
//! source positions and watermarks they cover, written atomically to the data dir and
//! restored after a crash, a restart or a shutdown.
//!
//! How a checkpoint is taken (aligned barriers, as in Flink and Arroyo):
//!
//! 1. every `checkpoint_interval` the runtime injects barrier `n` into each source feed
//!    ([`crate::sources::SourceFeed::barrier`]); under the feed's ordering lock it records
//!    the position of every partition and the watermark state;
//! 2. each monitor's input parks at the barrier; the window operator emits what the
//!    watermark before the barrier closes, snapshots its accumulator state
//!    ([`crate::engine::snapshot`]) and reports the barrier drained
//!    ([`crate::engine::progress`]); the monitor task makes its results durable (result
//!    files of epoch `n`), notes how far its Kafka sinks were written, hands in its
//!    [`MonitorPart`] and releases the input — ingestion stalls only for this;
//! 3. the dead-letter writer of each source does the same for rejected records;
//! 4. when every part is in, [`CheckpointStore::write`] writes one checksummed file
//!    (temp file, fsync, rename, directory fsync); only then are Kafka offsets committed
//!    to the consumer group, the HTTP write-ahead log truncated and old checkpoints deleted.
//!
//! What a completed checkpoint `n` promises: its positions, the monitors' state and the
//! result files of epochs `<= n` describe exactly the same input. Restoring it (the newest
//! valid one; a corrupt or truncated file falls back to the previous one) deletes result
//! files of later epochs, restores state and positions, and re-reads the input from there,
//! so every window ends up in the result store exactly once.

pub mod coordinator;
pub mod manifest;
pub mod store;

pub use coordinator::{CheckpointMessage, MonitorPart, Pending};
pub use manifest::{
    Checkpoint, Manifest, MonitorCounters, MonitorEntry, SinkPosition, SourceEntry,
    MANIFEST_VERSION,
};
pub use store::{CheckpointError, CheckpointStore, Written, KEEP_CHECKPOINTS};

#[cfg(test)]
mod tests;
