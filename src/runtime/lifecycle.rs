//! Running a [`Driftwatch`] system: starting connectors (restarted with backoff when they
//! fail), taking checkpoints, and stopping.
//!
//! Stop and failure policy:
//! - a stop request (Ctrl-C, SIGTERM, [`Driftwatch::shutdown_token`]) stops the inputs
//!   first (HTTP answers 503, Kafka and file sources stop reading), takes a final checkpoint
//!   that persists every open window, then stops the monitors: nothing is emitted partial,
//!   nothing is dropped, and the next run continues where this one stopped;
//! - when every source is bounded and has ended, monitors flush their last windows, a final
//!   checkpoint records the end, and [`Driftwatch::wait`] returns (running the same script
//!   again reads nothing twice);
//! - a source error (broker unreachable, unreadable file, dead-letter topic unwritable) is
//!   retried with backoff and shown in `system.sources` (`status = 'retrying'`, `error`);
//!   open windows are never flushed because of it. A bounded source that fails
//!   [`BOUNDED_SOURCE_ATTEMPTS`] times in a row stops the run with its error;
//! - a monitor that fails (a run-time error in its plan: a crossed `max_state`,
//!   `max_groups` or `max_open_windows`, the `--memory-limit` pool exhausted, a UDF error,
//!   a panic) fails alone: the error is logged at once with the monitor's name, the monitor
//!   shows `status = 'failed'`, `error`, `last_error` and `failed_at` in `system.monitors`
//!   and in the status line, and it stops reading (its subscription is dropped, so it
//!   never holds the source back). The process, the sources and the other monitors keep
//!   running, and checkpoints keep completing without it. Its results already written
//!   stay; its open windows are lost: later checkpoints have no entry for it, so it starts
//!   afresh (empty windows, at the source's position then) when created again with
//!   `CREATE OR REPLACE MONITOR` (e.g. with a higher limit) or when the process restarts
//!   after a checkpoint completed. A bounded run still reads to the end for the other
//!   monitors, takes its final checkpoint, and then [`Driftwatch::wait`] returns an error
//!   naming every failed monitor (the CLI exits with status 1); an unbounded run returns
//!   that error when it is stopped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::driver::Driftwatch;
use super::RuntimeError;
use crate::checkpoint::CheckpointMessage;
use crate::checkpoint::CheckpointStore;
use crate::metrics::{Health, SourceMetrics};
use crate::sources::{Connector, SourceFeed};

/// Consecutive failures after which a bounded source stops the run.
pub const BOUNDED_SOURCE_ATTEMPTS: u32 = 5;

/// Longest time `start` waits for HTTP sources to replay their write-ahead logs.
const HTTP_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest time a stop waits for its final checkpoint.
const FINAL_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(60);

/// `--from-scratch`: deletes checkpoints and write-ahead logs and moves earlier results
/// aside (into `tables.before-<ms>/`), so the run starts over without storing any window
/// twice. Baselines and the catalog stay.
pub fn start_from_scratch(
    data_dir: &Path,
    checkpoints: &CheckpointStore,
) -> Result<(), RuntimeError> {
    let io = |what: &Path, e: std::io::Error| {
        RuntimeError::Invalid(format!("--from-scratch: {}: {e}", what.display()))
    };
    checkpoints
        .clear()
        .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    let wal = data_dir.join(crate::sources::http::WAL_DIR);
    if wal.exists() {
        std::fs::remove_dir_all(&wal).map_err(|e| io(&wal, e))?;
    }
    let tables = data_dir.join("tables");
    if tables.exists() {
        let aside = data_dir.join(format!(
            "tables.before-{}",
            chrono::Utc::now().timestamp_millis()
        ));
        std::fs::rename(&tables, &aside).map_err(|e| io(&tables, e))?;
        tracing::info!(moved_to = %aside.display(), "--from-scratch: earlier results moved aside");
    }
    crate::durable::sync_dir(data_dir).map_err(|e| io(data_dir, e))?;
    Ok(())
}

/// Runs a connector until its input ends or `stop`, restarting it with backoff when it
/// fails; it resumes from the feed's positions, so nothing is read twice or skipped.
async fn run_source(
    name: String,
    connector: Arc<dyn Connector>,
    feed: SourceFeed,
    stop: tokio_util::sync::CancellationToken,
    metrics: Arc<SourceMetrics>,
) {
    let mut backoff = Duration::from_millis(500);
    let mut failures = 0u32;
    loop {
        let result = Arc::clone(&connector).run(feed.clone(), stop.clone()).await;
        match result {
            Ok(()) => {
                if feed.is_finished() {
                    metrics.health.set(Health::Finished, None);
                }
                return;
            }
            Err(e) if stop.is_cancelled() => {
                tracing::debug!(source = %name, error = %e, "source stopped with an error");
                return;
            }
            Err(e) => {
                failures += 1;
                let message = e.to_string();
                if connector.is_bounded() && failures >= BOUNDED_SOURCE_ATTEMPTS {
                    tracing::error!(source = %name, error = %message, "source failed {failures} times; stopping");
                    metrics.health.set(Health::Failed, Some(message));
                    return;
                }
                tracing::warn!(source = %name, error = %message, retry_in_ms = backoff.as_millis() as u64, "source failed; retrying");
                metrics.health.set(Health::Retrying, Some(message));
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

impl Driftwatch {
    /// Starts every connector not started yet, and the HTTP server when an HTTP source
    /// needs it or the operations endpoints are on ([`crate::ops`]); then reports the
    /// system's sources and monitors to those endpoints.
    pub async fn start(&mut self) -> Result<(), RuntimeError> {
        let needs_http = self.sources.values().any(|s| {
            s.def.options.get_str("connector").as_deref() == Some("http")
                || s.def.options.get_str("ingest").as_deref() == Some("http")
        });
        let ops_only = !needs_http && self.config.http.ops.enabled;
        if (needs_http || ops_only) && self.http_addr.is_none() {
            self.start_http(ops_only).await?;
        }
        let mut http_sources = Vec::new();
        for (name, source) in self.sources.iter_mut() {
            if source.task.is_some() {
                continue;
            }
            if source.def.options.get_str("connector").as_deref() == Some("http") {
                http_sources.push(name.clone());
            }
            source.metrics.health.set(Health::Running, None);
            source.task = Some(tokio::spawn(run_source(
                name.clone(),
                Arc::clone(&source.connector),
                source.feed.clone(),
                self.inputs.clone(),
                Arc::clone(&source.metrics),
            )));
        }
        // An HTTP source answers once its write-ahead log is replayed: wait for that, so a
        // client posting right after start is not told the source does not exist.
        let deadline = tokio::time::Instant::now() + HTTP_READY_TIMEOUT;
        for name in http_sources {
            loop {
                let registered = self
                    .http
                    .source_names()
                    .contains(&name.to_ascii_lowercase());
                let s = &self.sources[&name];
                let ended = s.task.as_ref().is_none_or(|t| t.is_finished())
                    || s.metrics.health.health() != Health::Running;
                if registered || ended || tokio::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        self.sync_ops();
        Ok(())
    }

    /// Binds the HTTP port and serves it until the inputs stop. When only the operations
    /// endpoints need it (`ops_only`), a port that cannot be bound is logged, not fatal: a
    /// run replaying files does not fail because another process holds the port.
    async fn start_http(&mut self, ops_only: bool) -> Result<(), RuntimeError> {
        let listen = self.config.http_listen;
        self.config
            .http
            .validate(listen)
            .map_err(RuntimeError::Invalid)?;
        // A bad certificate fails here, not in the server task.
        self.config
            .http
            .tls_config()
            .map_err(RuntimeError::Invalid)?;
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) if ops_only => {
                tracing::error!(
                    %listen,
                    error = %e,
                    "cannot serve /metrics, /health and /ready: the HTTP port cannot be bound \
                     (choose another with --http-listen, or turn them off with --no-ops)"
                );
                return Ok(());
            }
            Err(e) => {
                return Err(RuntimeError::Invalid(format!(
                    "HTTP ingest cannot listen on {listen}: {e}"
                )))
            }
        };
        let addr = listener
            .local_addr()
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        self.http_addr = Some(addr);
        tracing::info!(%addr, "HTTP listening (POST /ingest/<source>; GET /metrics, /health, /ready)");
        let http = Arc::clone(&self.http);
        let stop = self.inputs.clone();
        tokio::spawn(async move {
            if let Err(e) = http.serve(listener, stop).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        Ok(())
    }

    /// What the operations endpoints report: `/metrics`, `/health`, `/ready`, and the
    /// readiness the Flight port's gRPC health service follows.
    pub fn ops(&self) -> &Arc<crate::ops::Ops> {
        self.http.ops()
    }

    /// Hands the current sources and monitors to the operations endpoints, and the window
    /// state gauges of monitors that started; the catalog is loaded from here on.
    fn sync_ops(&self) {
        let ops = self.http.ops();
        ops.sync(
            self.sources
                .iter()
                .map(|(n, s)| (n.clone(), Arc::clone(&s.metrics))),
            self.monitors.iter().map(|(n, m)| {
                (
                    n.clone(),
                    crate::ops::OpsMonitor {
                        source: m.source.clone(),
                        metrics: Arc::clone(&m.metrics),
                    },
                )
            }),
        );
        ops.mark_started();
    }

    /// Whether every source is bounded (the run ends by itself).
    pub fn is_bounded(&self) -> bool {
        self.sources.values().all(|s| s.connector.is_bounded())
    }

    /// One status line: rows in, watermark (with its date, UTC: `2030-01-01 12:00:00.000Z`,
    /// so a watermark far from today stands out), windows emitted, late rows, last
    /// checkpoint.
    pub fn status_line(&self) -> String {
        let mut parts = Vec::new();
        for (name, s) in &self.sources {
            let wm = s.metrics.watermark();
            let wm = if wm == i64::MIN {
                "-".to_string()
            } else {
                chrono::DateTime::from_timestamp_millis(wm)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
                    .unwrap_or_else(|| wm.to_string())
            };
            let health = s.metrics.health.health();
            let health = match health {
                Health::Running | Health::Finished => String::new(),
                other => format!(" {}", other.as_str()),
            };
            parts.push(format!(
                "{name}: rows={} rejected={} watermark={wm}{health}",
                s.metrics.total_rows(),
                s.metrics.total_rejected()
            ));
        }
        for (name, m) in &self.monitors {
            let health = match m.metrics.health.health() {
                Health::Running | Health::Finished => String::new(),
                other => format!(
                    " {}: {}",
                    other.as_str().to_uppercase(),
                    m.metrics.health.error().unwrap_or_default()
                ),
            };
            parts.push(format!(
                "{name}: windows={} rows_out={} late={}{health}",
                m.metrics.total_windows(),
                m.metrics.total_rows_out(),
                m.metrics.total_late()
            ));
        }
        let c = self.checkpointer.stats();
        if c.completed > 0 {
            parts.push(format!(
                "checkpoint {}: {} B in {} ms (max stall {} µs)",
                c.id,
                c.bytes,
                c.duration.as_millis(),
                c.max_stall.as_micros()
            ));
        }
        parts.join(" | ")
    }

    /// Injects the barriers of a new checkpoint into every source.
    async fn trigger_checkpoint(&mut self) {
        let Some(id) = self.checkpointer.begin() else {
            return;
        };
        let mut barriers = Vec::new();
        for (name, s) in &self.sources {
            barriers.push((
                name.clone(),
                s.connector.identity(),
                s.feed.barrier(id).await,
            ));
        }
        let finals = self.checkpointer.finals().clone();
        if let Some(p) = self.checkpointer.pending_mut() {
            for (name, identity, barrier) in barriers {
                p.add_source(&name, identity, barrier, &finals);
            }
        }
        self.checkpointer.poll_pending();
    }

    /// After a checkpoint is durable: commit its positions (Kafka group offsets) and let
    /// sources drop what the oldest kept checkpoint covers (WAL segments).
    async fn after_checkpoint(&mut self) -> Result<(), RuntimeError> {
        let Some(result) = self.checkpointer.finish_write().await else {
            return Ok(());
        };
        let (_, committed, oldest) = result?;
        let c = self.checkpointer.stats();
        self.http.ops().checkpoint_completed(
            c.id,
            c.duration,
            crate::ops::CheckpointFigures {
                bytes: c.bytes,
                completed: c.completed,
                abandoned: c.abandoned,
                last_completed_ms: chrono::Utc::now().timestamp_millis(),
            },
        );
        let empty = BTreeMap::new();
        for (name, s) in &self.sources {
            let c = committed.get(name).unwrap_or(&empty);
            let o = oldest.get(name).unwrap_or(&empty);
            s.connector.on_checkpoint(c, o).await;
        }
        Ok(())
    }

    /// Takes the checkpoint messages that arrived, and starts writing a complete checkpoint.
    fn drain_checkpoint_messages(
        &mut self,
        rx: &mut tokio::sync::mpsc::Receiver<CheckpointMessage>,
    ) {
        while let Ok(m) = rx.try_recv() {
            self.checkpointer.on_message(m);
        }
        self.checkpointer.poll_pending();
    }

    /// Takes monitors that failed out of the checkpoint protocol, once each and only after
    /// their task ended (their subscription is gone then): the checkpoint in flight no
    /// longer waits for their part, and no later one lists them. A monitor task that ended
    /// on its own in an unbounded run (it should read forever) is marked failed here.
    fn isolate_failed_monitors(&mut self) {
        let bounded = self.is_bounded();
        for (name, m) in self.monitors.iter_mut() {
            if m.isolated || !m.task.is_finished() {
                continue;
            }
            match m.metrics.health.health() {
                Health::Failed => {}
                Health::Running if !bounded => {
                    tracing::error!(monitor = %name, "monitor stopped unexpectedly; the others keep running");
                    m.metrics
                        .health
                        .set(Health::Failed, Some("stopped unexpectedly".into()));
                }
                _ => continue,
            }
            m.isolated = true;
            self.checkpointer.forget_monitor(name);
        }
    }

    /// Every failed monitor, as one error (what a run that ended or was stopped returns).
    fn failed_monitors(&self) -> Option<RuntimeError> {
        let failed: Vec<String> = self
            .monitors
            .iter()
            .filter(|(_, m)| m.metrics.health.health() == Health::Failed)
            .map(|(name, m)| {
                let at = m
                    .metrics
                    .health
                    .failed_at()
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M:%S%.3fZ")))
                    .unwrap_or_default();
                let e = m.metrics.health.error().unwrap_or_default();
                format!("monitor '{name}' failed{at}: {e}")
            })
            .collect();
        (!failed.is_empty()).then(|| {
            RuntimeError::Invalid(format!(
                "{}; the other monitors ran on. Fix the cause (e.g. raise the limit the error \
                 names) and create the monitor again (CREATE OR REPLACE MONITOR, or rerun: it \
                 starts with empty windows at the source's current position; add \
                 --from-scratch to replay a bounded input for it)",
                failed.join("; ")
            ))
        })
    }

    /// The first failed source, as an error (a failed monitor does not stop the run, see
    /// [`Driftwatch::isolate_failed_monitors`]).
    fn failure(&self) -> Option<RuntimeError> {
        for (name, s) in &self.sources {
            if s.metrics.health.health() == Health::Failed {
                let e = s.metrics.health.error().unwrap_or_default();
                return Some(RuntimeError::Invalid(format!(
                    "source '{name}' failed: {e}"
                )));
            }
        }
        None
    }

    /// Runs until bounded input is consumed and every monitor has flushed, or until a stop
    /// is requested, taking checkpoints meanwhile; then stops as described in the module
    /// docs. Prints a status line every `status_every`.
    pub async fn wait(&mut self, status_every: Option<Duration>) -> Result<(), RuntimeError> {
        let bounded = self.is_bounded();
        let mut ticker = tokio::time::interval(status_every.unwrap_or(Duration::from_secs(3600)));
        ticker.tick().await;
        let mut checkpoints = tokio::time::interval(
            self.checkpointer
                .interval()
                .unwrap_or(Duration::from_secs(3600)),
        );
        checkpoints.tick().await;
        let retention = self.config.retention;
        let mut control = self.control_rx.take();
        let mut parts = self.checkpoint_rx.take().expect("wait runs once");
        let stop = self.stop_requested.clone();
        let mut failure = None;
        loop {
            let all_done = self.monitors.values().all(|m| m.task.is_finished())
                && self
                    .sources
                    .values()
                    .all(|s| s.task.as_ref().is_none_or(|t| t.is_finished()));
            self.isolate_failed_monitors();
            self.board.publish_checkpoint(self.checkpointer.stats());
            if bounded && all_done {
                break;
            }
            self.http.ops().heartbeat();
            if let Some(f) = self.failure() {
                failure = Some(f);
                break;
            }
            if self.checkpointer.write_done() {
                if let Err(e) = self.after_checkpoint().await {
                    tracing::error!(error = %e, "checkpoint failed");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(request) = async {
                    match control.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.serve_control(request).await,
                Some(message) = parts.recv() => {
                    self.checkpointer.on_message(message);
                    self.drain_checkpoint_messages(&mut parts);
                }
                _ = checkpoints.tick(), if self.checkpointer.enabled() => {
                    self.trigger_checkpoint().await;
                }
                _ = ticker.tick() => {
                    if status_every.is_some() {
                        tracing::info!("status: {}", self.status_line());
                    }
                    if let Some(r) = retention {
                        if let Err(e) = self.store.apply_retention(r) {
                            tracing::warn!(error = %e, "retention");
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    self.checkpointer.poll_pending();
                }
            }
        }
        match failure {
            Some(e) => {
                tracing::error!(error = %e, "stopping");
                self.inputs.cancel();
                self.engine.cancel();
                self.stop_requested.cancel();
                self.join_tasks().await;
                Err(e)
            }
            None => {
                self.stop(&mut parts).await;
                self.stop_requested.cancel();
                let joined = self.join_tasks().await;
                match self.failed_monitors() {
                    Some(e) => {
                        tracing::error!(error = %e, "run ended with failed monitors");
                        Err(e)
                    }
                    None => joined.map_or(Ok(()), Err),
                }
            }
        }
    }

    /// Graceful stop: inputs first, then a final checkpoint, then the monitors.
    async fn stop(&mut self, parts: &mut tokio::sync::mpsc::Receiver<CheckpointMessage>) {
        self.http.ops().mark_stopping();
        self.inputs.cancel();
        for s in self.sources.values_mut() {
            if let Some(task) = s.task.take() {
                let _ = task.await;
            }
        }
        if self.checkpointer.enabled() {
            self.final_checkpoint(parts).await;
        }
        self.engine.cancel();
    }

    async fn final_checkpoint(
        &mut self,
        parts: &mut tokio::sync::mpsc::Receiver<CheckpointMessage>,
    ) {
        let deadline = tokio::time::Instant::now() + FINAL_CHECKPOINT_TIMEOUT;
        // Final parts of monitors that already ended are in the channel.
        while let Ok(m) = parts.try_recv() {
            self.checkpointer.on_message(m);
        }
        // Let a checkpoint in flight finish first.
        while self.checkpointer.is_busy() && tokio::time::Instant::now() < deadline {
            if self.checkpointer.write_done() {
                let _ = self.after_checkpoint().await;
                continue;
            }
            tokio::select! {
                Some(m) = parts.recv() => self.checkpointer.on_message(m),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            self.checkpointer.poll_pending();
        }
        self.trigger_checkpoint().await;
        while self.checkpointer.is_busy() && tokio::time::Instant::now() < deadline {
            if self.checkpointer.write_done() {
                if let Err(e) = self.after_checkpoint().await {
                    tracing::error!(error = %e, "final checkpoint failed");
                }
                return;
            }
            tokio::select! {
                Some(m) = parts.recv() => self.checkpointer.on_message(m),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            self.checkpointer.poll_pending();
        }
        if self.checkpointer.is_busy() {
            tracing::error!("final checkpoint did not complete in {FINAL_CHECKPOINT_TIMEOUT:?}; the next run resumes from the previous one");
        }
    }

    /// Waits for every monitor task; returns the first error.
    async fn join_tasks(&mut self) -> Option<RuntimeError> {
        let mut first_error = None;
        // The monitors stay in the map (their metrics make the final status line); each task
        // is awaited here once.
        for (name, m) in self.monitors.iter_mut() {
            match (&mut m.task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // Logged when it failed (see `MonitorTask::run`).
                    tracing::debug!(monitor = %name, error = %e, "monitor had failed");
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(RuntimeError::Invalid(format!(
                        "monitor '{name}' panicked: {e}"
                    )));
                }
            }
        }
        for s in self.sources.values_mut() {
            if let Some(task) = s.task.take() {
                let _ = task.await;
            }
        }
        // Rejected records are written in batches: write what is waiting.
        for s in self.sources.values() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.feed.flush_rejects()).await;
        }
        first_error
    }
}
