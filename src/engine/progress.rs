//! State shared between a monitor's input and its window operator: the watermark that
//! covers every row already handed to the plan, and whether input has ended.
//!
//! Only pass-through operators (projections, filters) sit between the two, and the input
//! publishes a watermark only when it is polled *after* yielding the batches the watermark
//! covers, so whenever the window operator reads the watermark every row it covers has
//! already reached the operator. See [`crate::engine::planner`] for the check that enforces
//! the pass-through rule.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use super::watermark::NO_WATERMARK;

/// Watermark and end-of-input flag of one monitor's input.
#[derive(Debug)]
pub struct StreamProgress {
    watermark: AtomicI64,
    ended: AtomicBool,
    late_rows: AtomicU64,
}

impl Default for StreamProgress {
    fn default() -> Self {
        Self {
            watermark: AtomicI64::new(NO_WATERMARK),
            ended: AtomicBool::new(false),
            late_rows: AtomicU64::new(0),
        }
    }
}

impl StreamProgress {
    /// The watermark covering every row delivered so far (epoch ms).
    pub fn watermark(&self) -> i64 {
        self.watermark.load(Ordering::Acquire)
    }
    /// Advances the watermark (never backwards).
    pub fn advance(&self, wm: i64) {
        self.watermark.fetch_max(wm, Ordering::AcqRel);
    }
    /// Marks the end of bounded input: every window may be flushed.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }
    /// Whether bounded input has ended.
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
    /// Counts late rows.
    pub fn add_late(&self, n: u64) {
        self.late_rows.fetch_add(n, Ordering::Relaxed);
    }
    /// Late rows so far.
    pub fn late_rows(&self) -> u64 {
        self.late_rows.load(Ordering::Relaxed)
    }
}
