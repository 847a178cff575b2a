//! The bookkeeping of one checkpoint in flight: which barriers were injected, which monitors
//! and dead-letter writers still owe their part, and — once all arrived — the
//! [`Checkpoint`] to write.
//!
//! One checkpoint is in flight at a time. A monitor's part arrives once everything it
//! emitted before the barrier is durable in the result store; a dead-letter writer's once
//! the rejected records before the barrier are. So when the last part arrives, every result
//! file of epochs up to the checkpoint id is on disk, and writing the checkpoint file
//! commits them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

use super::manifest::{
    Checkpoint, Manifest, MonitorCounters, MonitorEntry, SinkPosition, SourceEntry,
    MANIFEST_VERSION,
};
use crate::engine::snapshot::WindowSnapshot;
use crate::sources::SourceBarrier;

/// What a monitor hands in for a checkpoint.
#[derive(Debug, Clone)]
pub struct MonitorPart {
    /// Monitor name.
    pub monitor: String,
    /// Its CREATE statement.
    pub definition: String,
    /// The source it reads.
    pub source: String,
    /// Window state (None for row-level monitors).
    pub snapshot: Option<WindowSnapshot>,
    /// Watermark its input had applied.
    pub watermark: i64,
    /// Counters.
    pub counters: MonitorCounters,
    /// How far each external sink was written.
    pub sinks: BTreeMap<String, SinkPosition>,
    /// How long ingestion of this monitor stood still for the barrier (parked input to
    /// release): the state copy plus making what was emitted before the barrier durable.
    pub stall: Duration,
    /// How long copying the window state took.
    pub copy: Duration,
}

/// A message to the coordinator.
#[derive(Debug)]
pub enum CheckpointMessage {
    /// A monitor's part of checkpoint `id`.
    Monitor {
        /// Checkpoint id.
        id: u64,
        /// The part.
        part: MonitorPart,
    },
    /// A monitor's bounded input ended and everything was flushed: its final part, used by
    /// every later checkpoint.
    Final(MonitorPart),
    /// A source's dead-letter writer persisted everything before barrier `id`.
    DeadLetters {
        /// Checkpoint id.
        id: u64,
        /// Source name.
        source: String,
    },
}

/// A checkpoint in flight.
#[derive(Debug)]
pub struct Pending {
    id: u64,
    started: Instant,
    created_ms: i64,
    sources: BTreeMap<String, SourceEntry>,
    waiting_monitors: BTreeSet<String>,
    /// Monitors of finished sources whose final part has not arrived yet.
    waiting_finals: BTreeSet<String>,
    waiting_dead_letters: BTreeSet<String>,
    parts: BTreeMap<String, MonitorPart>,
}

impl Pending {
    /// Starts checkpoint `id`.
    pub fn new(id: u64, created_ms: i64) -> Self {
        Self {
            id,
            started: Instant::now(),
            created_ms,
            sources: BTreeMap::new(),
            waiting_monitors: BTreeSet::new(),
            waiting_finals: BTreeSet::new(),
            waiting_dead_letters: BTreeSet::new(),
            parts: BTreeMap::new(),
        }
    }

    /// Checkpoint id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Time since the barriers were injected.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records the barrier injected into source `name` (identity: see
    /// [`SourceEntry::identity`]). For a finished source no barrier travels: the checkpoint
    /// waits instead for the final part of each of its monitors not in `finals` yet.
    pub fn add_source(
        &mut self,
        name: &str,
        identity: String,
        barrier: SourceBarrier,
        finals: &BTreeMap<String, MonitorPart>,
    ) {
        if barrier.finished {
            self.waiting_finals.extend(
                barrier
                    .monitors
                    .iter()
                    .filter(|m| !finals.contains_key(*m))
                    .cloned(),
            );
        } else {
            self.waiting_dead_letters.insert(name.to_string());
            self.waiting_monitors
                .extend(barrier.monitors.iter().cloned());
        }
        self.sources.insert(
            name.to_string(),
            SourceEntry {
                identity,
                finished: barrier.finished,
                positions: barrier.positions,
                watermark: barrier.watermark,
            },
        );
    }

    /// Takes a message; returns whether it belonged to this checkpoint.
    pub fn on_message(&mut self, message: &CheckpointMessage) -> bool {
        match message {
            CheckpointMessage::Monitor { id, part } if *id == self.id => {
                self.waiting_monitors.remove(&part.monitor);
                self.parts.insert(part.monitor.clone(), part.clone());
                true
            }
            CheckpointMessage::DeadLetters { id, source } if *id == self.id => {
                self.waiting_dead_letters.remove(source);
                true
            }
            CheckpointMessage::Final(part) => {
                self.waiting_monitors.remove(&part.monitor);
                self.waiting_finals.remove(&part.monitor)
            }
            _ => false,
        }
    }

    /// Stops waiting for a monitor that was dropped or ended.
    pub fn forget_monitor(&mut self, monitor: &str) {
        self.waiting_monitors.remove(monitor);
        self.waiting_finals.remove(monitor);
    }

    /// Monitors (and dead-letter writers, by source name) whose part is still missing.
    pub fn missing(&self) -> Vec<String> {
        self.waiting_monitors
            .iter()
            .chain(&self.waiting_finals)
            .chain(&self.waiting_dead_letters)
            .cloned()
            .collect()
    }

    /// Whether every part arrived.
    pub fn is_complete(&self) -> bool {
        self.waiting_monitors.is_empty()
            && self.waiting_finals.is_empty()
            && self.waiting_dead_letters.is_empty()
    }

    /// Builds the checkpoint: the parts of this checkpoint, plus the final parts of
    /// monitors whose bounded input ended (`finals`).
    pub fn to_checkpoint(&self, finals: &BTreeMap<String, MonitorPart>) -> Checkpoint {
        let mut monitors = BTreeMap::new();
        let mut states: BTreeMap<String, RecordBatch> = BTreeMap::new();
        let parts = finals
            .iter()
            .filter(|(m, _)| !self.parts.contains_key(*m))
            .map(|(m, p)| (m, p, true))
            .chain(self.parts.iter().map(|(m, p)| (m, p, false)));
        for (name, part, finished) in parts {
            let (emitted_until, state) = match &part.snapshot {
                Some(s) => (s.emitted_until, s.state.clone()),
                None => (i64::MIN, None),
            };
            if let Some(batch) = state.clone() {
                states.insert(name.clone(), batch);
            }
            monitors.insert(
                name.clone(),
                MonitorEntry {
                    definition: part.definition.clone(),
                    source: part.source.clone(),
                    watermark: part.watermark,
                    emitted_until,
                    has_state: state.is_some(),
                    counters: part.counters,
                    sinks: part.sinks.clone(),
                    finished,
                },
            );
        }
        Checkpoint {
            manifest: Manifest {
                version: MANIFEST_VERSION,
                id: self.id,
                created_ms: self.created_ms,
                sources: self.sources.clone(),
                monitors,
            },
            states,
        }
    }

    /// The longest stall any monitor reported.
    pub fn max_stall(&self) -> Duration {
        self.parts
            .values()
            .map(|p| p.stall)
            .max()
            .unwrap_or_default()
    }

    /// The longest state copy any monitor reported.
    pub fn max_copy(&self) -> Duration {
        self.parts
            .values()
            .map(|p| p.copy)
            .max()
            .unwrap_or_default()
    }
}
