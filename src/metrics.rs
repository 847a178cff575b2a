//! Counters and health of sources and monitors: shown in the periodic status line and in the
//! `system` tables, and (for monitors) carried across restarts by checkpoints.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Counters of a monitor carried across restarts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MonitorCounters {
    /// Windows emitted.
    pub windows: u64,
    /// Result rows written.
    pub rows_out: u64,
    /// Late rows kept aside.
    pub late_rows: u64,
    /// End of the last emitted window (epoch ms; `i64::MIN` if none).
    pub last_window_end: i64,
}

/// Health of a source or monitor, as `system.sources.status` / `system.monitors.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Running,
    /// A transient error is being retried with backoff (see `error`).
    Retrying,
    /// Bounded input ended and everything was flushed.
    Finished,
    /// Stopped by an error (see `error`).
    Failed,
}

impl Health {
    /// The status text.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Running => "running",
            Health::Retrying => "retrying",
            Health::Finished => "finished",
            Health::Failed => "failed",
        }
    }
}

/// Health plus the last error, shared by a task and whoever reports on it.
#[derive(Debug, Default)]
pub struct HealthCell {
    state: AtomicU8,
    error: Mutex<Option<String>>,
}

impl HealthCell {
    /// Sets the health and the error that explains it (None clears it).
    pub fn set(&self, health: Health, error: Option<String>) {
        self.state.store(health as u8, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
    /// Current health.
    pub fn health(&self) -> Health {
        match self.state.load(Ordering::Relaxed) {
            1 => Health::Retrying,
            2 => Health::Finished,
            3 => Health::Failed,
            _ => Health::Running,
        }
    }
    /// The last error, if the health has one.
    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Counters of one source.
#[derive(Debug)]
pub struct SourceMetrics {
    rows_in: AtomicU64,
    rejected: AtomicU64,
    unknown_fields: AtomicU64,
    watermark: AtomicI64,
    /// Health and last error.
    pub health: HealthCell,
}

impl Default for SourceMetrics {
    fn default() -> Self {
        Self {
            rows_in: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unknown_fields: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            health: HealthCell::default(),
        }
    }
}

impl SourceMetrics {
    /// Adds decoded rows.
    pub fn rows_in(&self, n: u64) {
        self.rows_in.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds rejected (undecodable) records.
    pub fn rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds fields of accepted input that matched no column (ignored).
    pub fn unknown_fields(&self, n: u64) {
        self.unknown_fields.fetch_add(n, Ordering::Relaxed);
    }
    /// Fields ignored so far because they matched no column.
    pub fn total_unknown_fields(&self) -> u64 {
        self.unknown_fields.load(Ordering::Relaxed)
    }
    /// Records the current watermark.
    pub fn set_watermark(&self, wm: i64) {
        self.watermark.store(wm, Ordering::Relaxed);
    }
    /// Rows decoded so far.
    pub fn total_rows(&self) -> u64 {
        self.rows_in.load(Ordering::Relaxed)
    }
    /// Records rejected so far.
    pub fn total_rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    /// Current watermark (epoch ms; `i64::MIN` before any data).
    pub fn watermark(&self) -> i64 {
        self.watermark.load(Ordering::Relaxed)
    }
}

/// Counters of one monitor.
#[derive(Debug)]
pub struct MonitorMetrics {
    rows_out: AtomicU64,
    windows: AtomicU64,
    late_rows: AtomicU64,
    last_window_end: AtomicI64,
    /// Health and last error.
    pub health: HealthCell,
}

impl Default for MonitorMetrics {
    fn default() -> Self {
        Self {
            rows_out: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            last_window_end: AtomicI64::new(i64::MIN),
            health: HealthCell::default(),
        }
    }
}

impl MonitorMetrics {
    /// Continues the counters of a restored checkpoint.
    pub fn restore(&self, c: &MonitorCounters) {
        self.rows_out.store(c.rows_out, Ordering::Relaxed);
        self.windows.store(c.windows, Ordering::Relaxed);
        self.late_rows.store(c.late_rows, Ordering::Relaxed);
        self.last_window_end
            .store(c.last_window_end, Ordering::Relaxed);
    }

    /// The counters a checkpoint keeps.
    pub fn counters(&self) -> MonitorCounters {
        MonitorCounters {
            windows: self.total_windows(),
            rows_out: self.total_rows_out(),
            late_rows: self.total_late(),
            last_window_end: self.last_window_end(),
        }
    }

    /// Adds result rows written.
    pub fn rows_out(&self, n: u64) {
        self.rows_out.fetch_add(n, Ordering::Relaxed);
    }
    /// Adds emitted windows.
    pub fn windows(&self, n: u64) {
        self.windows.fetch_add(n, Ordering::Relaxed);
    }
    /// Records the end of an emitted window (epoch ms).
    pub fn window_end(&self, end_ms: i64) {
        self.last_window_end.fetch_max(end_ms, Ordering::Relaxed);
    }
    /// End of the last emitted window (epoch ms; `i64::MIN` if none).
    pub fn last_window_end(&self) -> i64 {
        self.last_window_end.load(Ordering::Relaxed)
    }
    /// Adds late rows.
    pub fn late(&self, n: u64) {
        self.late_rows.fetch_add(n, Ordering::Relaxed);
    }
    /// Result rows written so far.
    pub fn total_rows_out(&self) -> u64 {
        self.rows_out.load(Ordering::Relaxed)
    }
    /// Windows emitted so far.
    pub fn total_windows(&self) -> u64 {
        self.windows.load(Ordering::Relaxed)
    }
    /// Late rows so far.
    pub fn total_late(&self) -> u64 {
        self.late_rows.load(Ordering::Relaxed)
    }
}
