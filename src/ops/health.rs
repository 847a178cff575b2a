//! Liveness and readiness of a running system.
//!
//! - **Live** (`GET /health`, `/healthz`): the process answers and its control loop turns.
//!   It fails (503) only when the loop, once running, has not turned for
//!   [`LIVENESS_STALL`]: a restart would help. Slow or failing inputs never make it fail.
//! - **Ready** (`GET /ready`, gRPC health `SERVING`): the catalog is loaded, checkpointed
//!   state restored and connectors started; every source is connected (not retrying or
//!   failed; an HTTP source has replayed its write-ahead log); no stop was requested.
//!   A failed monitor does not make the system unready (its inputs still take rows for the
//!   other monitors): it is listed under `failed_monitors` and `driftwatch_monitor_up` is 0.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::Ops;
use crate::metrics::Health;

/// How long the control loop may stand still before `/health` fails.
pub const LIVENESS_STALL: Duration = Duration::from_secs(120);

/// The answer of `/ready`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the system takes traffic.
    pub ready: bool,
    /// What is not ready, one sentence each (empty when ready).
    pub not_ready: Vec<String>,
    /// Monitors that failed, with their errors (they do not make the system unready).
    pub failed_monitors: Vec<String>,
}

/// The answer of `/health`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Liveness {
    /// Whether the process is live.
    pub live: bool,
    /// Seconds since the control loop last turned (`None` before it runs).
    pub loop_idle_seconds: Option<f64>,
    /// Seconds since the system was opened.
    pub uptime_seconds: f64,
}

impl Ops {
    /// Readiness now (see the module docs).
    pub fn readiness(&self) -> Readiness {
        let mut not_ready = Vec::new();
        if self.stopping.load(Ordering::Acquire) {
            not_ready.push("shutting down".to_string());
        }
        if !self.started.load(Ordering::Acquire) {
            not_ready.push(
                "starting: the catalog is being loaded and checkpointed state restored".into(),
            );
        }
        for (name, s) in self.source_list() {
            let why = s.health.error().unwrap_or_default();
            match s.health.health() {
                Health::Running | Health::Finished => {}
                Health::Retrying => not_ready.push(format!(
                    "source '{name}' is not connected (retrying): {why}"
                )),
                Health::Failed => not_ready.push(format!("source '{name}' failed: {why}")),
            }
        }
        let failed_monitors = self
            .monitor_list()
            .into_iter()
            .filter(|(_, m)| m.metrics.health.health() == Health::Failed)
            .map(|(name, m)| {
                format!(
                    "monitor '{name}': {}",
                    m.metrics.health.error().unwrap_or_default()
                )
            })
            .collect();
        Readiness {
            ready: not_ready.is_empty(),
            not_ready,
            failed_monitors,
        }
    }

    /// Liveness now (see the module docs).
    pub fn liveness(&self) -> Liveness {
        let beat = self.heartbeat_ms.load(Ordering::Relaxed);
        let idle = (beat > 0).then(|| {
            let now = chrono::Utc::now().timestamp_millis();
            (now - beat).max(0) as f64 / 1000.0
        });
        Liveness {
            live: idle.is_none_or(|s| s < LIVENESS_STALL.as_secs_f64()),
            loop_idle_seconds: idle,
            uptime_seconds: self.created.elapsed().as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::{MonitorMetrics, SourceMetrics};
    use crate::ops::{OpsMonitor, OpsSettings};

    #[test]
    fn ready_needs_start_and_connected_sources() {
        let ops = Ops::new(OpsSettings::default());
        let rx = ops.subscribe_ready();
        let source = Arc::new(SourceMetrics::default());
        let monitor = Arc::new(MonitorMetrics::default());
        ops.sync(
            [("s".to_string(), Arc::clone(&source))],
            [(
                "m".to_string(),
                OpsMonitor {
                    source: "s".into(),
                    metrics: Arc::clone(&monitor),
                },
            )],
        );
        let r = ops.readiness();
        assert!(!r.ready);
        assert!(r.not_ready[0].contains("starting"), "{r:?}");
        ops.mark_started();
        assert!(ops.readiness().ready);
        assert!(*rx.borrow());

        source
            .health
            .set(Health::Retrying, Some("broker down".into()));
        ops.heartbeat();
        let r = ops.readiness();
        assert!(!r.ready);
        assert_eq!(
            r.not_ready,
            vec!["source 's' is not connected (retrying): broker down"]
        );
        assert!(!*rx.borrow());

        source.health.set(Health::Running, None);
        monitor.health.set(Health::Failed, Some("boom".into()));
        let r = ops.readiness();
        assert!(r.ready, "{r:?}");
        assert_eq!(r.failed_monitors, vec!["monitor 'm': boom"]);

        ops.mark_stopping();
        assert_eq!(ops.readiness().not_ready, vec!["shutting down"]);
        assert!(!*rx.borrow());
    }

    #[test]
    fn live_until_the_loop_stalls() {
        let ops = Ops::new(OpsSettings::default());
        assert!(ops.liveness().live);
        assert_eq!(ops.liveness().loop_idle_seconds, None);
        ops.heartbeat();
        assert!(ops.liveness().live);
        let stalled = chrono::Utc::now().timestamp_millis() - 121_000;
        ops.heartbeat_ms.store(stalled, Ordering::Relaxed);
        assert!(!ops.liveness().live);
    }
}
