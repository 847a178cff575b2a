//! What a checkpoint holds: per source the positions it covers and its watermark state; per
//! monitor its window state (as Arrow, stored beside the manifest), counters, the last
//! emitted window and how far its external sinks were written.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::snapshot::WindowSnapshot;
pub use crate::metrics::MonitorCounters;
use crate::sources::watermark::WatermarkState;
use crate::sources::{PartitionId, SourcePosition};

/// Version of the manifest layout; a checkpoint of another version is not restored.
pub const MANIFEST_VERSION: u32 = 1;

/// A checkpoint in memory: manifest plus the monitors' window state.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    /// Everything but the window state.
    pub manifest: Manifest,
    /// Window state per monitor (absent when nothing was open).
    pub states: BTreeMap<String, RecordBatch>,
}

/// The JSON part of a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Layout version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// Checkpoint id: increases by one per checkpoint, across restarts. Result files of
    /// epochs up to `id` are covered by this checkpoint.
    pub id: u64,
    /// Wall-clock time the checkpoint was started (epoch ms).
    pub created_ms: i64,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceEntry>,
    /// Monitors by name.
    pub monitors: BTreeMap<String, MonitorEntry>,
}

/// A source in a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceEntry {
    /// What the positions refer to (`kafka:<topic>`, `file:<path>`, `http`): positions are
    /// restored only into a source with the same identity.
    pub identity: String,
    /// Bounded input had ended.
    pub finished: bool,
    /// Position per partition.
    pub positions: BTreeMap<PartitionId, SourcePosition>,
    /// Watermark state.
    pub watermark: WatermarkState,
}

/// Next offset to read back per partition of a Kafka sink topic: everything the monitor
/// had written there before the checkpoint lies before it.
pub type SinkPosition = BTreeMap<i32, i64>;

/// A monitor in a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorEntry {
    /// The monitor's CREATE statement: state is restored only into the same definition.
    pub definition: String,
    /// The source it reads.
    pub source: String,
    /// Watermark its input had applied (epoch ms).
    pub watermark: i64,
    /// End of the last emitted window (panes) / closed horizon (sessions).
    pub emitted_until: i64,
    /// Whether window state is stored (in [`Checkpoint::states`]).
    pub has_state: bool,
    /// Counters.
    pub counters: MonitorCounters,
    /// Per external sink (by name), how far it was written.
    pub sinks: BTreeMap<String, SinkPosition>,
    /// The monitor's bounded input had ended and everything was flushed.
    pub finished: bool,
}

impl Checkpoint {
    /// The window snapshot of `monitor` (empty state when nothing was open).
    pub fn window_snapshot(&self, monitor: &str) -> Option<WindowSnapshot> {
        let entry = self.manifest.monitors.get(monitor)?;
        Some(WindowSnapshot {
            emitted_until: entry.emitted_until,
            state: self.states.get(monitor).cloned(),
        })
    }
}
