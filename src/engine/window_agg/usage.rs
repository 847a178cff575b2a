//! What a window operator's open state costs ([`StateUsage`]) and a shared, lock-free handle
//! to the latest figures ([`StateGauge`]) that `/metrics` and `system.monitors` read while
//! the operator runs.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Size of one window operator's open state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateUsage {
    /// Bytes of accumulators, group keys and kept (frozen) pane states.
    pub bytes: usize,
    /// Panes: most groups in one open pane; sessions: keys with an open session.
    pub groups: usize,
    /// Open panes (TUMBLE/HOP) or open sessions (SESSION).
    pub open_windows: usize,
}

/// Latest [`StateUsage`] of a running operator, updated after every batch, emission and
/// restore. Readers may see the three figures from different moments (no lock).
#[derive(Debug, Default)]
pub struct StateGauge {
    bytes: AtomicUsize,
    groups: AtomicUsize,
    open_windows: AtomicUsize,
}

impl StateGauge {
    /// Publishes `usage`.
    pub fn set(&self, usage: StateUsage) {
        self.bytes.store(usage.bytes, Ordering::Relaxed);
        self.groups.store(usage.groups, Ordering::Relaxed);
        self.open_windows
            .store(usage.open_windows, Ordering::Relaxed);
    }

    /// The last published usage (all zero before the operator ran).
    pub fn get(&self) -> StateUsage {
        StateUsage {
            bytes: self.bytes.load(Ordering::Relaxed),
            groups: self.groups.load(Ordering::Relaxed),
            open_windows: self.open_windows.load(Ordering::Relaxed),
        }
    }
}
