//! The runtime side of checkpoints: what was restored at start, the checkpoint in flight,
//! the final parts of finished monitors, and what happens once a checkpoint is durable.
//! The protocol itself is described in [`crate::checkpoint`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::RuntimeError;
use crate::checkpoint::{
    Checkpoint, CheckpointMessage, CheckpointStore, MonitorEntry, MonitorPart, Pending,
    SourceEntry, Written, KEEP_CHECKPOINTS,
};
use crate::sources::{PartitionId, SourcePosition};

/// How long a checkpoint may stay in flight before it is abandoned (the next one starts;
/// nothing is lost, the previous checkpoint still covers everything).
const MIN_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(60);

/// Positions of every source, by source name.
pub type SourcePositions = BTreeMap<String, BTreeMap<PartitionId, SourcePosition>>;

/// Figures of the last completed checkpoint (status line, `system.checkpoints`).
#[derive(Debug, Clone, Default)]
pub struct CheckpointStats {
    /// Checkpoint id.
    pub id: u64,
    /// Barrier injection to durable file.
    pub duration: Duration,
    /// Longest time a monitor's ingestion stood still for it.
    pub max_stall: Duration,
    /// Longest time a window operator took to copy its state for it.
    pub max_copy: Duration,
    /// File size.
    pub bytes: u64,
    /// Checkpoints completed by this process.
    pub completed: u64,
    /// Checkpoints abandoned by this process (timed out).
    pub abandoned: u64,
    /// Id of the checkpoint restored at start (0: none).
    pub restored: u64,
}

/// Result of writing a checkpoint on a blocking thread.
type WriteTask = JoinHandle<Result<(Written, Pending), RuntimeError>>;

/// Checkpoint state of a running system.
pub struct Checkpointer {
    store: CheckpointStore,
    interval: Option<Duration>,
    restored: Option<Checkpoint>,
    next_id: u64,
    pending: Option<Pending>,
    writing: Option<(WriteTask, SourcePositions, Instant, Duration)>,
    finals: BTreeMap<String, MonitorPart>,
    /// Positions of the checkpoints kept on disk, oldest first.
    history: VecDeque<(u64, SourcePositions)>,
    stats: CheckpointStats,
}

impl Checkpointer {
    /// Loads the newest valid checkpoint of `store` (unless `interval` is None: checkpoints
    /// off) and prepares the next id.
    pub fn open(store: CheckpointStore, interval: Option<Duration>) -> Self {
        let mut restored = None;
        let mut history = VecDeque::new();
        if interval.is_some() {
            let valid = store.valid_newest_first();
            for c in valid.iter().rev() {
                history.push_back((c.manifest.id, positions_of(&c.manifest.sources)));
            }
            restored = valid.into_iter().next();
        }
        let last_id = store.ids().last().copied().unwrap_or(0);
        let restored_id = restored.as_ref().map_or(0, |c| c.manifest.id);
        if let Some(c) = &restored {
            tracing::info!(
                checkpoint = c.manifest.id,
                sources = c.manifest.sources.len(),
                monitors = c.manifest.monitors.len(),
                "restoring checkpoint"
            );
        }
        Self {
            store,
            interval,
            // Ids never repeat, even over an invalid newer file.
            next_id: last_id.max(restored_id) + 1,
            restored,
            pending: None,
            writing: None,
            finals: BTreeMap::new(),
            history,
            stats: CheckpointStats {
                restored: restored_id,
                ..CheckpointStats::default()
            },
        }
    }

    /// Whether checkpoints are taken.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    /// The interval between checkpoints.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Id of the restored checkpoint (0: none): result files of later epochs are discarded.
    pub fn restored_id(&self) -> u64 {
        self.stats.restored
    }

    /// Epoch of the first results written by this process.
    pub fn first_epoch(&self) -> u64 {
        if self.enabled() {
            self.next_id
        } else {
            0
        }
    }

    /// The restored entry of source `name`, if its identity matches.
    pub fn restored_source(&self, name: &str, identity: &str) -> Option<&SourceEntry> {
        let entry = self.restored.as_ref()?.manifest.sources.get(name)?;
        if same_source(&entry.identity, identity) {
            Some(entry)
        } else {
            tracing::warn!(
                source = name, checkpoint = %entry.identity, now = identity,
                "source changed since the checkpoint; starting it (and its monitors) afresh"
            );
            None
        }
    }

    /// The restored entry and window state of monitor `name`, if its definition and source
    /// are unchanged. Taken once: a monitor dropped and created again starts afresh.
    pub fn take_restored_monitor(
        &mut self,
        name: &str,
        definition: &str,
        source: &str,
    ) -> Option<(
        MonitorEntry,
        Option<crate::engine::snapshot::WindowSnapshot>,
    )> {
        let c = self.restored.as_mut()?;
        let entry = c.manifest.monitors.remove(name)?;
        if entry.definition.trim() != definition.trim() || entry.source != source {
            tracing::warn!(
                monitor = name,
                "monitor definition changed since the checkpoint; its open windows start afresh"
            );
            return None;
        }
        let snapshot = crate::engine::snapshot::WindowSnapshot {
            emitted_until: entry.emitted_until,
            state: c.states.remove(name),
        };
        Some((entry, Some(snapshot)))
    }

    /// The next id, when a checkpoint may start now.
    pub fn begin(&mut self) -> Option<u64> {
        if !self.enabled() || self.pending.is_some() || self.writing.is_some() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending = Some(Pending::new(id, chrono::Utc::now().timestamp_millis()));
        Some(id)
    }

    /// The checkpoint in flight (to record source barriers).
    pub fn pending_mut(&mut self) -> Option<&mut Pending> {
        self.pending.as_mut()
    }

    /// Final parts of finished monitors.
    pub fn finals(&self) -> &BTreeMap<String, MonitorPart> {
        &self.finals
    }

    /// Takes a message from a monitor or dead-letter writer.
    pub fn on_message(&mut self, message: CheckpointMessage) {
        if let Some(p) = &mut self.pending {
            p.on_message(&message);
        }
        if let CheckpointMessage::Final(part) = message {
            self.finals.insert(part.monitor.clone(), part);
        }
    }

    /// A monitor was dropped: its parts are no longer awaited or kept.
    pub fn forget_monitor(&mut self, monitor: &str) {
        self.finals.remove(monitor);
        if let Some(p) = &mut self.pending {
            p.forget_monitor(monitor);
        }
    }

    /// Starts writing the pending checkpoint when it is complete; abandons it when it has
    /// waited too long. Call after every message and periodically.
    pub fn poll_pending(&mut self) {
        let Some(p) = &self.pending else { return };
        let timeout = self.interval.map_or(MIN_CHECKPOINT_TIMEOUT, |i| {
            (i * 10).max(MIN_CHECKPOINT_TIMEOUT)
        });
        if !p.is_complete() {
            if p.age() > timeout {
                tracing::warn!(
                    checkpoint = p.id(),
                    missing = ?p.missing(),
                    "checkpoint abandoned: parts missing after {timeout:?}; the previous one still covers everything"
                );
                self.pending = None;
                self.stats.abandoned += 1;
            }
            return;
        }
        let pending = self.pending.take().expect("checked above");
        let started = Instant::now();
        let age = pending.age();
        let checkpoint = pending.to_checkpoint(&self.finals);
        let positions = positions_of(&checkpoint.manifest.sources);
        let store = self.store.clone();
        let task = tokio::task::spawn_blocking(move || {
            let written = store
                .write(&checkpoint)
                .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
            Ok((written, pending))
        });
        self.writing = Some((task, positions, started, age));
    }

    /// Whether the checkpoint being written is done ([`Checkpointer::finish_write`] then
    /// returns at once).
    pub fn write_done(&self) -> bool {
        self.writing.as_ref().is_some_and(|(t, ..)| t.is_finished())
    }

    /// Whether a checkpoint is in flight (collecting parts or being written).
    pub fn is_busy(&self) -> bool {
        self.pending.is_some() || self.writing.is_some()
    }

    /// Waits for the checkpoint being written; returns its positions (to commit) and the
    /// positions of the oldest checkpoint still kept (what the WAL must keep).
    pub async fn finish_write(
        &mut self,
    ) -> Option<Result<(u64, SourcePositions, SourcePositions), RuntimeError>> {
        let (task, positions, _, age) = self.writing.as_mut()?;
        let result = task.await;
        let (positions, age) = (std::mem::take(positions), *age);
        self.writing = None;
        let (written, pending) = match result {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => return Some(Err(e)),
            Err(e) => {
                return Some(Err(RuntimeError::Invalid(format!(
                    "checkpoint writer: {e}"
                ))))
            }
        };
        self.stats.id = written.id;
        self.stats.bytes = written.bytes;
        self.stats.max_stall = pending.max_stall();
        self.stats.max_copy = pending.max_copy();
        self.stats.duration = age;
        self.stats.completed += 1;
        tracing::info!(
            checkpoint = written.id,
            bytes = written.bytes,
            ms = age.as_millis() as u64,
            max_stall_us = self.stats.max_stall.as_micros() as u64,
            max_copy_us = self.stats.max_copy.as_micros() as u64,
            "checkpoint written"
        );
        self.history.push_back((written.id, positions.clone()));
        while self.history.len() > KEEP_CHECKPOINTS {
            self.history.pop_front();
        }
        if let Err(e) = self.store.retain(KEEP_CHECKPOINTS) {
            tracing::warn!(error = %e, "deleting old checkpoints failed");
        }
        let oldest = self
            .history
            .front()
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        Some(Ok((written.id, positions, oldest)))
    }

    /// Figures of the last checkpoint.
    pub fn stats(&self) -> CheckpointStats {
        self.stats.clone()
    }
}

fn positions_of(sources: &BTreeMap<String, SourceEntry>) -> SourcePositions {
    sources
        .iter()
        .map(|(n, s)| (n.clone(), s.positions.clone()))
        .collect()
}

/// Whether a checkpointed source identity names the source `now` has. Equal identities do;
/// so does a file source checkpointed with a relative path (before paths were resolved
/// against the monitor file) that, taken against the working directory as it was then
/// resolved, is the file `now` names.
fn same_source(checkpointed: &str, now: &str) -> bool {
    if checkpointed == now {
        return true;
    }
    match (
        checkpointed.strip_prefix("file:"),
        now.strip_prefix("file:"),
    ) {
        (Some(old), Some(new)) if std::path::Path::new(old).is_relative() => {
            std::path::absolute(old).is_ok_and(|old| old == std::path::Path::new(new))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::same_source;

    #[test]
    fn a_relative_file_identity_matches_its_absolute_form() {
        let cwd = std::env::current_dir().unwrap();
        let abs = format!("file:{}", cwd.join("data/in.jsonl").display());
        assert!(same_source(&abs, &abs));
        assert!(same_source("file:data/in.jsonl", &abs));
        assert!(!same_source("file:other/in.jsonl", &abs));
        assert!(!same_source("file:/elsewhere/in.jsonl", &abs));
        assert!(!same_source("kafka:data/in.jsonl", &abs));
    }
}
