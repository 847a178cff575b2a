//! What snapshots of a running system read (`system.*` tables, status lines): the catalog
//! as of the last statement applied, with live counters.
//!
//! The catalog is published by [`Driftwatch::execute`](super::Driftwatch::execute) after
//! every statement, before its reply is sent; the checkpoint figures by the control loop on
//! every turn. A [`ControlHandle`](super::ControlHandle) reads the board directly. A
//! snapshot therefore never waits for the loop — not for a `CREATE MONITOR` restoring its
//! state, a source connecting, a checkpoint being written, nor a script queued behind a
//! `CREATE BASELINE` — and shows every statement whose reply was sent.

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
struct Catalog {
    sources: Vec<SourceCard>,
    monitors: Vec<MonitorCard>,
}

/// The catalog and checkpoint figures, readable from any task (see the module docs).
#[derive(Clone)]
pub struct StatusBoard {
    catalog: Arc<RwLock<Arc<Catalog>>>,
    checkpoint: Arc<RwLock<CheckpointStats>>,
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
            catalog: Arc::default(),
            checkpoint: Arc::default(),
            baselines,
        }
    }

    /// Replaces the published catalog.
    pub(super) fn publish_catalog(&self, sources: Vec<SourceCard>, monitors: Vec<MonitorCard>) {
        let catalog = Arc::new(Catalog { sources, monitors });
        // A poisoned lock only means a reader panicked while cloning an `Arc`.
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = catalog;
    }

    /// Replaces the published checkpoint figures.
    pub(super) fn publish_checkpoint(&self, stats: CheckpointStats) {
        *self.checkpoint.write().unwrap_or_else(|e| e.into_inner()) = stats;
    }

    /// Sources, monitors and baselines with their counters now.
    pub fn snapshot(&self) -> SystemSnapshot {
        let board = Arc::clone(&self.catalog.read().unwrap_or_else(|e| e.into_inner()));
        let checkpoint = self
            .checkpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
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
            checkpoint,
        }
    }
}
