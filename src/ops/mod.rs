//! Operations endpoints: what operators scrape and probe.
//!
//! One [`Ops`] per running system gathers what the endpoints report: the counters of every
//! source and monitor (the same atomics `system.*` shows, so counters that checkpoints
//! restore stay monotonic across restarts), readiness, checkpoint figures, Flight SQL call
//! latency and HTTP ingest answers. It is served on the HTTP port (the ingest's port,
//! `--http-listen`) whether or not an HTTP source exists:
//!
//! - [`prometheus`]: `GET /metrics`, Prometheus text exposition format 0.0.4;
//! - [`health`]: `GET /health` (live), `GET /ready` (sources connected, state restored),
//!   `GET /healthz` (alias of `/health`), and the readiness the Flight port's gRPC health
//!   service (`grpc.health.v1`) reports;
//! - [`http`]: the axum routes and their auth rule ([`OpsSettings::metrics_auth`]).
//!
//! This module depends on [`crate::metrics`] only, so `sources` (which serves these routes)
//! and `serve` (which hands readiness to Flight) can both use it without a cycle.

pub mod health;
pub mod http;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::watch;

use crate::metrics::{MonitorMetrics, SourceMetrics};

/// Buckets (seconds) of the checkpoint-duration histogram.
pub const CHECKPOINT_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets (seconds) of the Flight SQL call-latency histogram.
pub const QUERY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Who may read the operations endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpsSettings {
    /// Serve `/metrics`, `/health`, `/ready` on the HTTP port even without an HTTP source
    /// (`driftwatch run` and `demo` do, unless `--no-ops`; embedded systems opt in).
    pub enabled: bool,
    /// `/metrics` needs a bearer token of the auth file (any role) when one is given
    /// (`--metrics-auth`). Off by default: Prometheus usually scrapes a private port.
    /// `/health`, `/ready` and `/healthz` never need one (probes carry no credentials).
    pub metrics_auth: bool,
}

/// A monitor as the endpoints see it.
#[derive(Debug, Clone)]
pub struct OpsMonitor {
    /// The source it reads.
    pub source: String,
    /// Its counters and health.
    pub metrics: Arc<MonitorMetrics>,
}

/// Figures of the last completed checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckpointFigures {
    /// File size of the last one.
    pub bytes: u64,
    /// Checkpoints completed by this process.
    pub completed: u64,
    /// Checkpoints abandoned by this process.
    pub abandoned: u64,
    /// When the last one completed (epoch ms; 0: none yet).
    pub last_completed_ms: i64,
}

/// What the operations endpoints report for one running system (see the module docs).
#[derive(Debug)]
pub struct Ops {
    settings: OpsSettings,
    sources: RwLock<BTreeMap<String, Arc<SourceMetrics>>>,
    monitors: RwLock<BTreeMap<String, OpsMonitor>>,
    /// The catalog is loaded and state restored (first [`Ops::mark_started`]).
    started: AtomicBool,
    /// A stop was requested.
    stopping: AtomicBool,
    /// Epoch ms of the control loop's last turn (0: the loop has not run yet).
    heartbeat_ms: AtomicI64,
    /// Epoch ms of the last readiness evaluation by the loop.
    evaluated_ms: AtomicI64,
    ready: watch::Sender<bool>,
    checkpoint: Mutex<CheckpointFigures>,
    last_checkpoint_id: AtomicU64,
    checkpoint_duration: Histogram,
    query_latency: LatencyFamily,
    http_requests: Family<[(&'static str, String); 2], Counter>,
    created: Instant,
}

/// Flight call latencies by method and outcome.
type LatencyFamily = Family<[(&'static str, String); 2], Histogram, fn() -> Histogram>;

fn query_histogram() -> Histogram {
    Histogram::new(QUERY_BUCKETS)
}

impl Ops {
    /// Operations state with `settings`, nothing registered, not ready.
    pub fn new(settings: OpsSettings) -> Arc<Self> {
        let (ready, _) = watch::channel(false);
        Arc::new(Self {
            settings,
            sources: RwLock::new(BTreeMap::new()),
            monitors: RwLock::new(BTreeMap::new()),
            started: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            heartbeat_ms: AtomicI64::new(0),
            evaluated_ms: AtomicI64::new(0),
            ready,
            checkpoint: Mutex::new(CheckpointFigures::default()),
            last_checkpoint_id: AtomicU64::new(0),
            checkpoint_duration: Histogram::new(CHECKPOINT_BUCKETS),
            query_latency: Family::new_with_constructor(query_histogram),
            http_requests: Family::default(),
            created: Instant::now(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> OpsSettings {
        self.settings
    }

    /// Replaces the registered sources and monitors with the system's current ones (called
    /// after every change of the catalog).
    pub fn sync(
        &self,
        sources: impl IntoIterator<Item = (String, Arc<SourceMetrics>)>,
        monitors: impl IntoIterator<Item = (String, OpsMonitor)>,
    ) {
        *self.sources.write().unwrap_or_else(|e| e.into_inner()) = sources.into_iter().collect();
        *self.monitors.write().unwrap_or_else(|e| e.into_inner()) = monitors.into_iter().collect();
        self.refresh_ready();
    }

    /// The catalog is loaded, state restored and connectors started.
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
        self.refresh_ready();
    }

    /// A stop was requested: not ready any more.
    pub fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
        self.refresh_ready();
    }

    /// One turn of the control loop: refreshes liveness, and readiness at most every 250 ms.
    pub fn heartbeat(&self) {
        let now = chrono::Utc::now().timestamp_millis();
        self.heartbeat_ms.store(now, Ordering::Relaxed);
        if now - self.evaluated_ms.load(Ordering::Relaxed) >= 250 {
            self.evaluated_ms.store(now, Ordering::Relaxed);
            self.refresh_ready();
        }
    }

    /// Readiness as it changes (`true`: ready), for the gRPC health service.
    pub fn subscribe_ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    fn refresh_ready(&self) {
        let ready = self.readiness().ready;
        self.ready.send_if_modified(|r| {
            let changed = *r != ready;
            *r = ready;
            changed
        });
    }

    /// Records a completed checkpoint (`id` dedups repeated reports of the same one).
    pub fn checkpoint_completed(&self, id: u64, duration: Duration, figures: CheckpointFigures) {
        if self.last_checkpoint_id.swap(id, Ordering::Relaxed) != id {
            self.checkpoint_duration.observe(duration.as_secs_f64());
        }
        *self.checkpoint.lock().unwrap_or_else(|e| e.into_inner()) = figures;
    }

    /// Records one Flight SQL call: its method and how long it took until its answer (for
    /// streams, until the last batch was sent).
    pub fn observe_query(&self, method: &str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.query_latency
            .get_or_create(&[("method", method.to_string()), ("outcome", outcome.into())])
            .observe(took.as_secs_f64());
    }

    /// Counts one HTTP ingest answer for `source` (`-` when no registered source matched).
    pub fn count_http(&self, source: &str, status: u16) {
        self.http_requests
            .get_or_create(&[("source", source.to_string()), ("code", status.to_string())])
            .inc();
    }

    pub(crate) fn source_list(&self) -> Vec<(String, Arc<SourceMetrics>)> {
        let map = self.sources.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    pub(crate) fn monitor_list(&self) -> Vec<(String, OpsMonitor)> {
        let map = self.monitors.read().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
