//! Counters shown in the periodic status line and, later, in system tables.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters of one source.
#[derive(Debug)]
pub struct SourceMetrics {
    rows_in: AtomicU64,
    rejected: AtomicU64,
    watermark: AtomicI64,
}

impl Default for SourceMetrics {
    fn default() -> Self {
        Self {
            rows_in: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
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
}

impl Default for MonitorMetrics {
    fn default() -> Self {
        Self {
            rows_out: AtomicU64::new(0),
            windows: AtomicU64::new(0),
            late_rows: AtomicU64::new(0),
            last_window_end: AtomicI64::new(i64::MIN),
        }
    }
}

impl MonitorMetrics {
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
