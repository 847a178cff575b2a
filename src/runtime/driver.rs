//! [`Driftwatch`]: executes monitor-dialect statements against a running system — creates
//! sources (and their connectors), baselines and monitors; drops them; lists them — and runs
//! everything until bounded input ends or shutdown is requested.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use driftwatch_sql::{
    analyze_monitor, analyze_monitor_with, did_you_mean, CreateMonitor, CreateSource, ObjectKind,
    Statement,
};
use driftwatch_udfs::BaselineRegistry;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::baselines::create_baseline;
use super::control::{
    Control, ControlHandle, MonitorResult, MonitorStatus, Outcome, SourceStatus, SystemSnapshot,
    FOLLOW_BUFFER,
};
use super::metrics::{MonitorMetrics, SourceMetrics};
use super::monitor_task::{run_monitor, ResultObserver};
use super::sources::{build_source, SourceParts};
use super::RuntimeError;
use crate::engine::{plan_monitor, MonitorPlanOptions};
use crate::query::QueryEngine;
use crate::sinks::ResultStore;
use crate::sources::http::HttpIngest;
use crate::sources::{Connector, RejectedRecord, SourceFeed, SourceSchema, EVENT_TIME_TYPE};

/// Settings of a running system.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Data dir: result tables, baselines.
    pub data_dir: PathBuf,
    /// Address of the HTTP ingest (used when an `http` source exists).
    pub http_listen: SocketAddr,
    /// Retention of result files.
    pub retention: Option<Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("driftwatch-data"),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            retention: None,
        }
    }
}

struct SourceEntry {
    def: CreateSource,
    schema: Arc<SourceSchema>,
    feed: SourceFeed,
    connector: Arc<dyn Connector>,
    task: Option<JoinHandle<()>>,
    metrics: Arc<SourceMetrics>,
}

struct MonitorEntry {
    def: CreateMonitor,
    source: String,
    task: JoinHandle<Result<(), RuntimeError>>,
    stop: CancellationToken,
    metrics: Arc<MonitorMetrics>,
}

/// A running Driftwatch system.
pub struct Driftwatch {
    config: RuntimeConfig,
    store: ResultStore,
    baselines: Arc<BaselineRegistry>,
    http: Arc<HttpIngest>,
    http_addr: Option<SocketAddr>,
    sources: BTreeMap<String, SourceEntry>,
    monitors: BTreeMap<String, MonitorEntry>,
    shutdown: CancellationToken,
    observer: ResultObserver,
    control_tx: mpsc::Sender<Control>,
    control_rx: Option<mpsc::Receiver<Control>>,
    results: broadcast::Sender<MonitorResult>,
}

impl Driftwatch {
    /// A system with nothing defined yet.
    pub fn new(config: RuntimeConfig) -> Self {
        let store = ResultStore::new(&config.data_dir);
        let (control_tx, control_rx) = mpsc::channel(64);
        let (results, _) = broadcast::channel(FOLLOW_BUFFER);
        Self {
            control_tx,
            control_rx: Some(control_rx),
            results,
            store,
            config,
            baselines: Arc::new(BaselineRegistry::new()),
            http: HttpIngest::new(),
            http_addr: None,
            sources: BTreeMap::new(),
            monitors: BTreeMap::new(),
            shutdown: CancellationToken::new(),
            observer: Arc::new(|_, _| {}),
        }
    }

    /// Sets the callback that sees every result batch.
    pub fn with_observer(mut self, observer: ResultObserver) -> Self {
        self.observer = observer;
        self
    }

    /// A handle to change and inspect this system while [`Driftwatch::wait`] runs.
    pub fn control(&self) -> ControlHandle {
        ControlHandle(self.control_tx.clone())
    }

    /// Subscribes to every monitor's results as they are emitted (see [`FOLLOW_BUFFER`]).
    pub fn subscribe_results(&self) -> broadcast::Receiver<MonitorResult> {
        self.results.subscribe()
    }

    /// A snapshot of sources, monitors and baselines with their counters.
    pub fn snapshot(&self) -> SystemSnapshot {
        let mut baselines = self.baselines.names();
        baselines.sort();
        SystemSnapshot {
            sources: self
                .sources
                .iter()
                .map(|(name, s)| SourceStatus {
                    name: name.clone(),
                    sql: s.def.sql.clone(),
                    rows_in: s.metrics.total_rows(),
                    rejected: s.metrics.total_rejected(),
                    watermark_ms: s.metrics.watermark(),
                })
                .collect(),
            monitors: self
                .monitors
                .iter()
                .map(|(name, m)| MonitorStatus {
                    name: name.clone(),
                    sql: m.def.sql.clone(),
                    source: m.source.clone(),
                    windows: m.metrics.total_windows(),
                    rows_out: m.metrics.total_rows_out(),
                    late_rows: m.metrics.total_late(),
                    last_window_end_ms: m.metrics.last_window_end(),
                })
                .collect(),
            baselines,
        }
    }

    async fn serve_control(&mut self, request: Control) {
        match request {
            Control::Execute { sql, reply } => {
                let mut result = self.execute_script(&sql).await;
                if result.is_ok() {
                    if let Err(e) = self.start().await {
                        result = Err(e);
                    }
                }
                let _ = reply.send(result);
            }
            Control::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
        }
    }

    /// The baseline registry.
    pub fn baselines(&self) -> &Arc<BaselineRegistry> {
        &self.baselines
    }

    /// The result store.
    pub fn store(&self) -> &ResultStore {
        &self.store
    }

    /// Token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Address the HTTP ingest listens on, once started.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Executes every statement of a script. Connectors are not started: call
    /// [`Driftwatch::start`] once the script is loaded so monitors see input from its first row.
    pub async fn execute_script(&mut self, sql: &str) -> Result<Vec<Outcome>, RuntimeError> {
        let statements = driftwatch_sql::parse_statements(sql)?;
        let mut out = Vec::new();
        for stmt in statements {
            out.push(self.execute(stmt).await?);
        }
        Ok(out)
    }

    /// Executes one statement.
    pub async fn execute(&mut self, stmt: Statement) -> Result<Outcome, RuntimeError> {
        match stmt {
            Statement::CreateSource(def) => self.create_source(def).await,
            Statement::CreateBaseline(def) => {
                if self.baselines.get(&def.name).is_some() && !def.or_replace {
                    return Err(RuntimeError::Exists(ObjectKind::Baseline, def.name.clone()));
                }
                let ctx = QueryEngine::session(&self.store, &self.baselines)?;
                let profile = create_baseline(&def, &self.store, &self.baselines, &ctx).await?;
                Ok(Outcome::Done(format!(
                    "baseline {} ({} numeric columns)",
                    profile.name,
                    profile.numeric_columns().len()
                )))
            }
            Statement::CreateMonitor(def) => self.create_monitor(def).await,
            Statement::Drop {
                kind,
                name,
                if_exists,
            } => self.drop_object(kind, &name, if_exists).await,
            Statement::Show(kind) => Ok(Outcome::Rows(self.show(kind))),
            Statement::Other(other) => Err(RuntimeError::Invalid(format!(
                "only CREATE / DROP / SHOW belong in a monitor file; run queries with \
                 `driftwatch query`: {other}"
            ))),
        }
    }

    async fn create_source(&mut self, def: CreateSource) -> Result<Outcome, RuntimeError> {
        if self.sources.contains_key(&def.name) {
            if def.if_not_exists {
                return Ok(Outcome::Done(format!("source {} exists", def.name)));
            }
            if !def.or_replace {
                return Err(RuntimeError::Exists(ObjectKind::Source, def.name.clone()));
            }
            self.drop_object(ObjectKind::Source, &def.name.clone(), false)
                .await?;
        }
        let SourceParts {
            schema,
            connector,
            idle_timeout,
        } = build_source(&def, &self.http)?;
        let metrics = Arc::new(SourceMetrics::default());
        let (reject_tx, reject_rx) = mpsc::unbounded_channel();
        let feed = SourceFeed::new(
            Arc::clone(&schema),
            idle_timeout,
            reject_tx,
            Arc::clone(&metrics),
        );
        self.spawn_dead_letters(&def.name, reject_rx)?;
        if let Some(timeout) = idle_timeout {
            spawn_ticker(feed.clone(), timeout, self.shutdown.clone());
        }
        let name = def.name.clone();
        self.sources.insert(
            name.clone(),
            SourceEntry {
                def,
                schema,
                feed,
                connector,
                task: None,
                metrics,
            },
        );
        Ok(Outcome::Done(format!("source {name}")))
    }

    fn spawn_dead_letters(
        &self,
        source: &str,
        mut rx: mpsc::UnboundedReceiver<Vec<RejectedRecord>>,
    ) -> Result<(), RuntimeError> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("partition", DataType::UInt32, false),
            Field::new("position", DataType::Int64, true),
            Field::new("raw", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
            Field::new("received_at", EVENT_TIME_TYPE, false),
        ]));
        let mut writer = self
            .store
            .open(&format!("{source}_errors"), Arc::clone(&schema))?;
        let source = source.to_string();
        tokio::spawn(async move {
            while let Some(records) = rx.recv().await {
                let now = chrono::Utc::now().timestamp_millis();
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(UInt32Array::from_iter_values(
                        records.iter().map(|r| r.partition),
                    )),
                    Arc::new(Int64Array::from_iter(records.iter().map(|r| r.position))),
                    Arc::new(StringArray::from_iter_values(
                        records.iter().map(|r| r.raw.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        records.iter().map(|r| r.reason.as_str()),
                    )),
                    Arc::new(TimestampMillisecondArray::from(vec![now; records.len()])),
                ];
                for r in records.iter().take(3) {
                    tracing::warn!(source = %source, reason = %r.reason, "record rejected");
                }
                match RecordBatch::try_new(Arc::clone(&schema), columns) {
                    Ok(batch) => {
                        if let Err(e) = writer.append(batch).and_then(|_| writer.flush()) {
                            tracing::error!(source = %source, error = %e, "writing dead letters failed");
                        }
                    }
                    Err(e) => tracing::error!(source = %source, error = %e, "dead-letter batch"),
                }
            }
        });
        Ok(())
    }

    async fn create_monitor(&mut self, def: CreateMonitor) -> Result<Outcome, RuntimeError> {
        if self.monitors.contains_key(&def.name) {
            if !def.or_replace {
                return Err(RuntimeError::Exists(ObjectKind::Monitor, def.name.clone()));
            }
            self.drop_object(ObjectKind::Monitor, &def.name.clone(), false)
                .await?;
        }
        let mut known = vec!["allowed_lateness", "retention"];
        known.extend_from_slice(crate::sinks::SINK_OPTIONS);
        def.options.check_known(&known, "monitor")?;
        let sinks = crate::sinks::build_sinks(&def.name, &def.options)
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        let options = MonitorPlanOptions {
            allowed_lateness_ms: def
                .options
                .get_duration_ms("allowed_lateness")?
                .unwrap_or(0),
        };
        let sources: Vec<String> = self.sources.keys().cloned().collect();
        // First find what the monitor reads, to name an unknown source precisely; then
        // analyse again knowing which names are streams (rejects joins of two streams).
        let named = analyze_monitor(&def.query)?;
        if !self.sources.contains_key(&named.source) {
            let refs: Vec<&str> = sources.iter().map(String::as_str).collect();
            let hint = did_you_mean(&named.source, &refs)
                .map(|s| format!("did you mean '{s}'? "))
                .unwrap_or_default();
            let at = named
                .location
                .map(|l| format!("line {}, column {}: ", l.line, l.column))
                .unwrap_or_default();
            let known = if sources.is_empty() {
                "none".to_string()
            } else {
                sources.join(", ")
            };
            return Err(RuntimeError::Invalid(format!(
                "{at}monitor '{}': unknown source '{}'; {hint}known sources: {known}",
                def.name, named.source
            )));
        }
        let input = analyze_monitor_with(&def.query, &|n| sources.iter().any(|s| s == n))?;
        let Some(source) = self.sources.get(&input.source) else {
            return Err(RuntimeError::Unknown(
                ObjectKind::Source,
                input.source.clone(),
            ));
        };
        let feed = source.feed.subscribe();
        let plan = plan_monitor(
            &def.name,
            &input,
            Arc::clone(&source.schema),
            Some(feed),
            &options,
            &self.baselines,
        )
        .await?;
        let metrics = Arc::new(MonitorMetrics::default());
        let stop = self.shutdown.child_token();
        let task = tokio::spawn(run_monitor(
            def.name.clone(),
            plan,
            self.store.clone(),
            sinks,
            Arc::clone(&metrics),
            self.observer_with_broadcast(),
            stop.clone(),
        ));
        let name = def.name.clone();
        self.monitors.insert(
            name.clone(),
            MonitorEntry {
                def,
                source: input.source,
                task,
                stop,
                metrics,
            },
        );
        Ok(Outcome::Done(format!("monitor {name}")))
    }

    async fn drop_object(
        &mut self,
        kind: ObjectKind,
        name: &str,
        if_exists: bool,
    ) -> Result<Outcome, RuntimeError> {
        let missing = || {
            if if_exists {
                Ok(Outcome::Done(format!("{kind} {name} did not exist")))
            } else {
                Err(RuntimeError::Unknown(kind, name.to_string()))
            }
        };
        match kind {
            ObjectKind::Monitor => {
                let Some(m) = self.monitors.remove(name) else {
                    return missing();
                };
                m.stop.cancel();
                let _ = m.task.await;
            }
            ObjectKind::Source => {
                let users: Vec<&String> = self
                    .monitors
                    .iter()
                    .filter(|(_, m)| m.source == name)
                    .map(|(n, _)| n)
                    .collect();
                if !users.is_empty() {
                    return Err(RuntimeError::Invalid(format!(
                        "source '{name}' is read by monitors {users:?}; drop them first"
                    )));
                }
                let Some(s) = self.sources.remove(name) else {
                    return missing();
                };
                if let Some(task) = s.task {
                    task.abort();
                }
                self.http.unregister(name);
            }
            ObjectKind::Baseline => {
                if !self.baselines.remove(name) {
                    return missing();
                }
                let _ = std::fs::remove_dir_all(self.store.baseline_dir(name));
            }
        }
        Ok(Outcome::Done(format!("dropped {kind} {name}")))
    }

    fn observer_with_broadcast(&self) -> ResultObserver {
        let user = Arc::clone(&self.observer);
        let results = self.results.clone();
        Arc::new(move |monitor: &str, batch: &RecordBatch| {
            user(monitor, batch);
            // No subscriber is not an error.
            let _ = results.send(MonitorResult {
                monitor: monitor.to_string(),
                batch: batch.clone(),
            });
        })
    }

    fn show(&self, kind: ObjectKind) -> RecordBatch {
        let (names, details): (Vec<String>, Vec<String>) = match kind {
            ObjectKind::Source => self
                .sources
                .iter()
                .map(|(n, s)| (n.clone(), s.def.sql.clone()))
                .unzip(),
            ObjectKind::Monitor => self
                .monitors
                .iter()
                .map(|(n, m)| (n.clone(), m.def.sql.clone()))
                .unzip(),
            ObjectKind::Baseline => {
                let mut names = self.baselines.names();
                names.sort();
                names
                    .into_iter()
                    .map(|n| {
                        let cols = self
                            .baselines
                            .get(&n)
                            .map(|p| p.numeric_columns().join(", "))
                            .unwrap_or_default();
                        (n, cols)
                    })
                    .unzip()
            }
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("definition", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(StringArray::from(details)),
            ],
        )
        .expect("two utf8 columns")
    }

    /// Starts every connector not started yet (and the HTTP ingest when needed).
    pub async fn start(&mut self) -> Result<(), RuntimeError> {
        let needs_http = self.sources.values().any(|s| {
            s.def.options.get_str("connector").as_deref() == Some("http")
                || s.def.options.get_str("ingest").as_deref() == Some("http")
        });
        if needs_http && self.http_addr.is_none() {
            let listener = tokio::net::TcpListener::bind(self.config.http_listen)
                .await
                .map_err(|e| {
                    RuntimeError::Invalid(format!(
                        "HTTP ingest cannot listen on {}: {e}",
                        self.config.http_listen
                    ))
                })?;
            let addr = listener
                .local_addr()
                .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
            self.http_addr = Some(addr);
            tracing::info!(%addr, "HTTP ingest listening (POST /ingest/<source>)");
            let http = Arc::clone(&self.http);
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = http.serve(listener, shutdown).await {
                    tracing::error!(error = %e, "HTTP ingest stopped");
                }
            });
        }
        for (name, source) in self.sources.iter_mut() {
            if source.task.is_some() {
                continue;
            }
            let connector = Arc::clone(&source.connector);
            let feed = source.feed.clone();
            let shutdown = self.shutdown.clone();
            let name = name.clone();
            source.task = Some(tokio::spawn(async move {
                if let Err(e) = connector.run(feed.clone(), shutdown).await {
                    tracing::error!(source = %name, error = %e, "source failed");
                    // End the stream so monitors of a failed bounded source still finish.
                    let _ = feed.finish().await;
                }
            }));
        }
        Ok(())
    }

    /// Whether every source is bounded (the run ends by itself).
    pub fn is_bounded(&self) -> bool {
        self.sources.values().all(|s| s.connector.is_bounded())
    }

    /// One status line: rows in, watermark, windows emitted, late rows.
    pub fn status_line(&self) -> String {
        let mut parts = Vec::new();
        for (name, s) in &self.sources {
            let wm = s.metrics.watermark();
            let wm = if wm == i64::MIN {
                "-".to_string()
            } else {
                chrono::DateTime::from_timestamp_millis(wm)
                    .map(|t| t.format("%H:%M:%S%.3f").to_string())
                    .unwrap_or_else(|| wm.to_string())
            };
            parts.push(format!(
                "{name}: rows={} rejected={} watermark={wm}",
                s.metrics.total_rows(),
                s.metrics.total_rejected()
            ));
        }
        for (name, m) in &self.monitors {
            parts.push(format!(
                "{name}: windows={} rows_out={} late={}",
                m.metrics.total_windows(),
                m.metrics.total_rows_out(),
                m.metrics.total_late()
            ));
        }
        parts.join(" | ")
    }

    /// Runs until bounded input is consumed and every monitor has flushed, or until the
    /// shutdown token is cancelled. Prints a status line every `status_every`.
    pub async fn wait(&mut self, status_every: Option<Duration>) -> Result<(), RuntimeError> {
        let bounded = self.is_bounded();
        let mut ticker = tokio::time::interval(status_every.unwrap_or(Duration::from_secs(3600)));
        ticker.tick().await;
        let retention = self.config.retention;
        let mut control = self.control_rx.take();
        let shutdown = self.shutdown.clone();
        loop {
            let all_done = self.monitors.values().all(|m| m.task.is_finished())
                && self
                    .sources
                    .values()
                    .all(|s| s.task.as_ref().is_none_or(|t| t.is_finished()));
            if bounded && all_done {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(request) = async {
                    match control.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => self.serve_control(request).await,
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
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        self.shutdown.cancel();
        let mut first_error = None;
        for (name, m) in std::mem::take(&mut self.monitors) {
            match m.task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(monitor = %name, error = %e, "monitor failed");
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(RuntimeError::Invalid(format!(
                        "monitor '{name}' panicked: {e}"
                    )));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn spawn_ticker(feed: SourceFeed, idle_timeout: Duration, shutdown: CancellationToken) {
    let every = (idle_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {
                    if feed.is_finished() || feed.tick().await.is_err() {
                        break;
                    }
                }
            }
        }
    });
}
