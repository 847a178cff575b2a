//! What snapshots of a running system read (`system.*` tables, status lines, `/ready`):
//! the catalog as of the last statement the control loop applied, with live counters.
//!
//! The control loop publishes the board after every statement it applies and on every turn;
//! a [`ControlHandle`](super::ControlHandle) reads it directly. A snapshot therefore never
//! waits for the loop — not for a `CREATE MONITOR` restoring its state, a source
//! connecting, a checkpoint being written, nor a script queued behind a `CREATE BASELINE` —
//! and shows every statement whose reply was sent.

use std::sync::{Arc, RwLock};

use driftwatch_udfs::BaselineRegistry;

use super::checkpointing::CheckpointStats;
use super::control::{MonitorStatus, SourceStatus, SystemSnapshot};
use crate::metrics::{MonitorMetrics, SourceMetrics};

/// A source on the board: its definition and its live counters.
pub(super) struct SourceCard {
    pub name: String,
    pub sql: String,
    pub metrics: Arc<SourceMetrics>,
}

/// A monitor on the board: its definition and its live counters.
pub(super) struct MonitorCard {
    pub name: String,
    pub sql: String,
    pub source: String,
    pub metrics: Arc<MonitorMetrics>,
}

/// One published state of the catalog.
#[derive(Default)]
struct Board {
    sources: Vec<SourceCard>,
    monitors: Vec<MonitorCard>,
    checkpoint: CheckpointStats,
}

/// The catalog published by the control loop, readable from any task (see the module docs).
#[derive(Clone)]
pub struct StatusBoard {
    board: Arc<RwLock<Arc<Board>>>,
    baselines: Arc<BaselineRegistry>,
}

impl std::fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusBoard").finish_non_exhaustive()
    }
}

impl StatusBoard {
    /// An empty board; baselines are read live from `baselines`.
    pub(super) fn new(baselines: Arc<BaselineRegistry>) -> Self {
        Self {
            board: Arc::default(),
            baselines,
        }
    }

    /// Replaces the published catalog.
    pub(super) fn publish(
        &self,
        sources: Vec<SourceCard>,
        monitors: Vec<MonitorCard>,
        checkpoint: CheckpointStats,
    ) {
        let board = Arc::new(Board {
            sources,
            monitors,
            checkpoint,
        });
        // A poisoned lock only means a reader panicked while cloning an `Arc`.
        *self.board.write().unwrap_or_else(|e| e.into_inner()) = board;
    }

    /// Sources, monitors and baselines with their counters now.
    pub fn snapshot(&self) -> SystemSnapshot {
        let board = Arc::clone(&self.board.read().unwrap_or_else(|e| e.into_inner()));
        let mut baselines = self.baselines.names();
        baselines.sort();
        SystemSnapshot {
            sources: board
                .sources
                .iter()
                .map(|s| SourceStatus {
                    name: s.name.clone(),
                    sql: s.sql.clone(),
                    rows_in: s.metrics.total_rows(),
                    rejected: s.metrics.total_rejected(),
                    unknown_fields: s.metrics.total_unknown_fields(),
                    watermark_ms: s.metrics.watermark(),
                    status: s.metrics.health.health().as_str().to_string(),
                    error: s.metrics.health.error(),
                })
                .collect(),
            monitors: board
                .monitors
                .iter()
                .map(|m| MonitorStatus {
                    name: m.name.clone(),
                    sql: m.sql.clone(),
                    source: m.source.clone(),
                    windows: m.metrics.total_windows(),
                    rows_out: m.metrics.total_rows_out(),
                    late_rows: m.metrics.total_late(),
                    last_window_end_ms: m.metrics.last_window_end(),
                    status: m.metrics.health.health().as_str().to_string(),
                    error: m.metrics.health.error(),
                    last_error: m.metrics.health.last_error(),
                    failed_at_ms: m.metrics.health.failed_at(),
                })
                .collect(),
            baselines,
            missing_features: self.baselines.missing_features(),
            checkpoint: board.checkpoint.clone(),
        }
    }
}
