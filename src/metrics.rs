//! Counters and health of sources and monitors: shown in the periodic status line and in the
//! `system` tables, and (for monitors) carried across restarts by checkpoints.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::metrics::histogram::Histogram;
use serde::{Deserialize, Serialize};

/// Buckets (seconds) of the window emit-delay histogram: 1 ms to about 17 min.
pub const EMIT_DELAY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 1024.0,
];

/// Figures of one partition of a source, for the per-partition metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    /// Rows delivered from the partition by this process.
    pub rows: u64,
    /// Watermark this partition alone allows: its largest event time minus the source's
    /// watermark delay (epoch ms; `i64::MIN` before data).
    pub watermark_ms: i64,
    /// Messages the partition holds past what was delivered (Kafka: high watermark minus
    /// position), when the connector knows it.
    pub lag: Option<i64>,
}

impl Default for PartitionStats {
    fn default() -> Self {
        Self {
            rows: 0,
            watermark_ms: i64::MIN,
            lag: None,
        }
    }
}

/// Size of a monitor's window state, read at scrape time (implemented by the window
/// operator's state gauge).
pub trait StateProbe: Send + Sync + std::fmt::Debug {
    /// Bytes held by the open windows' accumulators and keys.
    fn state_bytes(&self) -> u64;
    /// Distinct groups held.
    fn groups(&self) -> u64;
    /// Open windows (panes or sessions).
    fn open_windows(&self) -> u64;
}

/// When a window could first be emitted (implemented by the engine's stream progress): the
/// emit-delay histogram measures from there.
pub trait EmitClock: Send + Sync + std::fmt::Debug {
    /// The moment the watermark reached `threshold_ms` (or bounded input ended), if it has.
    fn closable_since(&self, threshold_ms: i64) -> Option<std::time::Instant>;
}

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
#[derive(Debug)]
pub struct HealthCell {
    state: AtomicU8,
    error: Mutex<Option<String>>,
    /// The most recent error ever set (kept after a recovery, for `last_error`).
    last_error: Mutex<Option<String>>,
    /// When the health became [`Health::Failed`] (epoch ms; `i64::MIN`: never).
    failed_at: AtomicI64,
}

impl Default for HealthCell {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(Health::Running as u8),
            error: Mutex::new(None),
            last_error: Mutex::new(None),
            failed_at: AtomicI64::new(i64::MIN),
        }
    }
}

impl HealthCell {
    /// Sets the health and the error that explains it (None clears it; the last error stays
    /// in [`HealthCell::last_error`]). Becoming [`Health::Failed`] records the time.
    pub fn set(&self, health: Health, error: Option<String>) {
        if health == Health::Failed && self.health() != Health::Failed {
            self.failed_at
                .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        }
        if let Some(e) = &error {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
        }
        self.state.store(health as u8, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
    }
    /// The most recent error, even after the task recovered from it.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// When the task failed (epoch ms), if it did.
    pub fn failed_at(&self) -> Option<i64> {
        let t = self.failed_at.load(Ordering::Relaxed);
        (t != i64::MIN).then_some(t)
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
    partitions: Mutex<BTreeMap<u32, PartitionStats>>,
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
            partitions: Mutex::new(BTreeMap::new()),
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

    fn partition_mut<R>(&self, partition: u32, f: impl FnOnce(&mut PartitionStats) -> R) -> R {
        let mut map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(partition).or_default())
    }
    /// Records a delivery from `partition`: `rows` rows whose largest event time, minus the
    /// source's watermark delay, is `watermark_ms` (the partition's watermark never goes
    /// back).
    pub fn partition_delivered(&self, partition: u32, rows: u64, watermark_ms: Option<i64>) {
        self.partition_mut(partition, |p| {
            p.rows += rows;
            if let Some(wm) = watermark_ms {
                p.watermark_ms = p.watermark_ms.max(wm);
            }
        });
    }
    /// Records how many messages `partition` holds past the delivered position.
    pub fn set_partition_lag(&self, partition: u32, lag: i64) {
        self.partition_mut(partition, |p| p.lag = Some(lag.max(0)));
    }
    /// Figures of every partition seen so far.
    pub fn partitions(&self) -> Vec<(u32, PartitionStats)> {
        let map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(p, s)| (*p, *s)).collect()
    }
}

/// Counters of one monitor.
#[derive(Debug)]
pub struct MonitorMetrics {
    rows_out: AtomicU64,
    windows: AtomicU64,
    late_rows: AtomicU64,
    last_window_end: AtomicI64,
    emit_delay: Histogram,
    state: Mutex<Option<Arc<dyn StateProbe>>>,
    /// The plan's progress and allowed lateness, to time emissions.
    clock: Mutex<Option<(Arc<dyn EmitClock>, i64)>>,
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
            emit_delay: Histogram::new(EMIT_DELAY_BUCKETS),
            state: Mutex::new(None),
            clock: Mutex::new(None),
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

    /// Records the delay of one emitted window: wall-clock seconds from the moment it could
    /// first be emitted (the monitor's watermark passed its end plus `allowed_lateness`, or
    /// bounded input ended) to the moment the monitor task received it.
    pub fn observe_emit_delay(&self, seconds: f64) {
        self.emit_delay.observe(seconds.max(0.0));
    }
    /// The emit-delay histogram (process-local: it starts empty after a restart).
    pub fn emit_delay(&self) -> &Histogram {
        &self.emit_delay
    }
    /// Attaches the probe of the monitor's window state (set when its plan starts).
    pub fn set_state_probe(&self, probe: Arc<dyn StateProbe>) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(probe);
    }
    /// The probe of the monitor's window state, for windowed monitors that started.
    pub fn state_probe(&self) -> Option<Arc<dyn StateProbe>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts timing a running monitor's emissions: `clock` says when each window could
    /// first be emitted, `allowed_lateness_ms` later than its end (see
    /// `engine::observe` for how a plan attaches itself).
    pub fn set_emit_clock(&self, clock: Arc<dyn EmitClock>, allowed_lateness_ms: i64) {
        *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some((clock, allowed_lateness_ms));
    }
    /// Records that the window ending at `end_ms` was emitted now: its delay is measured
    /// from the moment the watermark reached `end_ms + allowed_lateness` (or bounded input
    /// ended). See [`Self::observe_emit_delay`].
    pub fn window_emitted(&self, end_ms: i64) {
        let clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        let Some((progress, lateness)) = clock.as_ref() else {
            return;
        };
        if let Some(since) = progress.closable_since(end_ms.saturating_add(*lateness)) {
            self.observe_emit_delay(since.elapsed().as_secs_f64());
        }
    }
}

/// Counters of one monitor's webhook sink, read by `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// Delivered `firing` notifications.
    pub firing: AtomicU64,
    /// Delivered `resolved` notifications.
    pub resolved: AtomicU64,
    /// Failed attempts (error, timeout, non-2xx).
    pub failures: AtomicU64,
    /// Notifications dropped (outbox full, or refused for good).
    pub dropped: AtomicU64,
    /// Notifications in the outbox not delivered yet.
    pub pending: AtomicU64,
}

fn webhook_registry() -> &'static Mutex<std::collections::BTreeMap<String, Arc<WebhookMetrics>>> {
    static REGISTRY: OnceLock<Mutex<std::collections::BTreeMap<String, Arc<WebhookMetrics>>>> =
        OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The counters of `monitor`'s webhook sink (shared by every sink of that name in this
/// process, so a replaced monitor continues them).
pub fn webhook_metrics_for(monitor: &str) -> Arc<WebhookMetrics> {
    let mut map = webhook_registry().lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(map.entry(monitor.to_string()).or_default())
}

/// Every monitor's webhook counters, by monitor name.
pub fn all_webhook_metrics() -> Vec<(String, Arc<WebhookMetrics>)> {
    let map = webhook_registry().lock().unwrap_or_else(|e| e.into_inner());
    map.iter()
        .map(|(k, v)| (k.clone(), Arc::clone(v)))
        .collect()
}
