//! How a running monitor plan is observed by its [`MonitorMetrics`]: the window operator's
//! state gauge (for `/metrics`) and the stream progress that times emissions. Kept in the
//! engine so that `metrics` stays below it (it only defines the probe traits).

use std::sync::Arc;

use crate::metrics::{EmitClock, MonitorMetrics, StateProbe};

use super::progress::StreamProgress;
use super::window_agg::{StateGauge, WindowAggregateExec};
use super::MonitorPlan;

impl StateProbe for StateGauge {
    fn state_bytes(&self) -> u64 {
        self.get().bytes as u64
    }
    fn groups(&self) -> u64 {
        self.get().groups as u64
    }
    fn open_windows(&self) -> u64 {
        self.get().open_windows as u64
    }
}

impl EmitClock for StreamProgress {
    fn closable_since(&self, threshold_ms: i64) -> Option<std::time::Instant> {
        StreamProgress::closable_since(self, threshold_ms)
    }
}

/// Starts watching `plan` in `metrics`: its window operator's state gauge and when its
/// watermark advances (for the emit-delay histogram).
pub fn watch(plan: &MonitorPlan, metrics: &MonitorMetrics) {
    let mut stack = vec![Arc::clone(&plan.plan)];
    let mut lateness = 0;
    while let Some(node) = stack.pop() {
        if let Some(w) = node.downcast_ref::<WindowAggregateExec>() {
            metrics.set_state_probe(w.state_gauge());
            lateness = w.allowed_lateness_ms();
            break;
        }
        stack.extend(node.children().into_iter().cloned());
    }
    let clock: Arc<dyn EmitClock> = Arc::clone(&plan.progress) as Arc<dyn EmitClock>;
    metrics.set_emit_clock(clock, lateness);
}
