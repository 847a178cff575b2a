//! [`Driftwatch`]: executes monitor-dialect statements against a running system — creates
//! sources (and their connectors), baselines and monitors; drops them; lists them. Running
//! it (start, checkpoints, shutdown) is in [`super::lifecycle`].
//!
//! What happens to open windows when a monitor is dropped or redefined: `DROP MONITOR`
//! discards them (nothing partial is emitted; results already in the store stay);
//! `CREATE OR REPLACE MONITOR` does the same and the new definition starts with empty
//! windows at the source's current position. A monitor whose definition changed between
//! two runs starts the same way: state is restored only into the same definition.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use driftwatch_sql::{
    analyze_monitor, analyze_monitor_with, did_you_mean, CreateMonitor, CreateSource, MonitorInput,
    ObjectKind, Statement,
};
use driftwatch_udfs::BaselineRegistry;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::checkpointing::Checkpointer;
use super::control::{
    Control, ControlHandle, MonitorResult, Outcome, SystemSnapshot, FOLLOW_BUFFER,
};
use super::dead_letters::spawn_dead_letters;
use super::monitor_task::{MonitorTask, ResultObserver};
use super::sources::{build_source, SourceParts};
use super::status_board::{MonitorCard, SourceCard, StatusBoard};
use super::RuntimeError;
use crate::checkpoint::{CheckpointMessage, CheckpointStore, SinkPosition};
use crate::durable::DataDirLock;
use crate::engine::window_agg::StateLimits;
use crate::engine::{plan_monitor, MonitorPlanOptions};
use crate::metrics::{MonitorMetrics, SourceMetrics};
use crate::sinks::ResultStore;
use crate::sources::http::{HttpIngest, HttpSettings};
use crate::sources::{Connector, SourceFeed, SourceSchema};

/// Capacity of the queue of checkpoint parts (monitors and dead-letter writers to the
/// control loop). Each participant sends at most one part per barrier and one checkpoint
/// collects at a time, so it holds about one message per monitor and source; senders wait
/// when it is full (backpressure), never drop a part.
pub const CHECKPOINT_QUEUE: usize = 1024;

/// Capacity of a source's queue of rejected records to its dead-letter writer, in
/// messages (one per delivery with rejects, at most a decoded batch of records each); a
/// connector delivering more waits for the writer (backpressure to the source).
pub const REJECT_QUEUE: usize = 64;

/// Default time between checkpoints.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// Settings of a running system.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Data dir: result tables, baselines, checkpoints, write-ahead logs.
    pub data_dir: PathBuf,
    /// Address of the HTTP ingest (used when an `http` source exists).
    pub http_listen: SocketAddr,
    /// Retention of result files.
    pub retention: Option<Duration>,
    /// Time between checkpoints; `None` turns checkpoints (and the HTTP write-ahead log)
    /// off: nothing is restored and a restart starts from scratch (benchmarks only).
    pub checkpoint_interval: Option<Duration>,
    /// Start over: discard checkpoints, write-ahead logs and committed Kafka offsets, and
    /// move earlier results aside.
    pub from_scratch: bool,
    /// Tokens, limits and bind rules of the HTTP ingest.
    pub http: HttpSettings,
    /// Validate without contacting external systems (`driftwatch check`): sink options are
    /// checked, a Kafka sink's topic is not looked up.
    pub offline: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("driftwatch-data"),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            retention: None,
            checkpoint_interval: Some(DEFAULT_CHECKPOINT_INTERVAL),
            from_scratch: false,
            http: HttpSettings::default(),
            offline: false,
        }
    }
}

pub(super) struct SourceEntry {
    pub(super) def: CreateSource,
    pub(super) schema: Arc<SourceSchema>,
    pub(super) feed: SourceFeed,
    pub(super) connector: Arc<dyn Connector>,
    pub(super) task: Option<JoinHandle<()>>,
    pub(super) metrics: Arc<SourceMetrics>,
    /// Positions were restored from the checkpoint (its monitors may restore state).
    pub(super) restored: bool,
}

pub(super) struct MonitorEntry {
    pub(super) def: CreateMonitor,
    pub(super) source: String,
    pub(super) task: JoinHandle<Result<(), RuntimeError>>,
    pub(super) stop: CancellationToken,
    pub(super) metrics: Arc<MonitorMetrics>,
    /// It failed and was taken out of the checkpoint protocol (see
    /// `Driftwatch::isolate_failed_monitors`).
    pub(super) isolated: bool,
}

/// A running Driftwatch system.
pub struct Driftwatch {
    pub(super) config: RuntimeConfig,
    pub(super) store: ResultStore,
    pub(super) baselines: Arc<BaselineRegistry>,
    pub(super) http: Arc<HttpIngest>,
    pub(super) http_addr: Option<SocketAddr>,
    pub(super) sources: BTreeMap<String, SourceEntry>,
    pub(super) monitors: BTreeMap<String, MonitorEntry>,
    /// Cancelled to ask for a graceful stop (Ctrl-C, SIGTERM, tests).
    pub(super) stop_requested: CancellationToken,
    /// Stops connectors and the HTTP ingest (first step of a stop).
    pub(super) inputs: CancellationToken,
    /// Stops monitors and tickers (last step of a stop).
    pub(super) engine: CancellationToken,
    pub(super) observer: ResultObserver,
    pub(super) control_tx: mpsc::Sender<Control>,
    /// What snapshots read without the control loop.
    pub(super) board: StatusBoard,
    pub(super) control_rx: Option<mpsc::Receiver<Control>>,
    pub(super) results: broadcast::Sender<MonitorResult>,
    pub(super) checkpointer: Checkpointer,
    pub(super) checkpoint_tx: mpsc::Sender<CheckpointMessage>,
    pub(super) checkpoint_rx: Option<mpsc::Receiver<CheckpointMessage>>,
    /// Scripts of the control loop waiting for DDL that runs off it.
    pub(super) ddl: super::ddl::DdlQueue,
    _lock: DataDirLock,
}

impl Driftwatch {
    /// Opens the data dir of `config` with nothing defined yet: takes its lock (a second
    /// process on the same data dir fails here), loads the newest valid checkpoint and
    /// deletes the result files it does not cover (see [`crate::checkpoint`]).
    pub fn open(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let lock = DataDirLock::acquire(&config.data_dir)
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        let store = ResultStore::new(&config.data_dir);
        let checkpoints = CheckpointStore::new(&config.data_dir);
        if config.from_scratch {
            super::lifecycle::start_from_scratch(&config.data_dir, &checkpoints)?;
        }
        super::baselines::recover_baseline_dirs(&store);
        let checkpointer = Checkpointer::open(checkpoints, config.checkpoint_interval);
        if checkpointer.enabled() {
            let removed = store.discard_uncovered(checkpointer.restored_id())?;
            if !removed.is_empty() {
                tracing::info!(
                    files = removed.len(),
                    checkpoint = checkpointer.restored_id(),
                    "deleted result files written after the restored checkpoint; their windows are emitted again"
                );
            }
        }
        let (control_tx, control_rx) = mpsc::channel(64);
        let (results, _) = broadcast::channel(FOLLOW_BUFFER);
        let (checkpoint_tx, checkpoint_rx) = mpsc::channel(CHECKPOINT_QUEUE);
        let http = HttpIngest::with_settings(config.http.clone());
        let baselines = Arc::new(BaselineRegistry::new());
        Ok(Self {
            control_tx,
            board: StatusBoard::new(Arc::clone(&baselines)),
            control_rx: Some(control_rx),
            results,
            store,
            config,
            baselines,
            http,
            http_addr: None,
            sources: BTreeMap::new(),
            monitors: BTreeMap::new(),
            stop_requested: CancellationToken::new(),
            inputs: CancellationToken::new(),
            engine: CancellationToken::new(),
            observer: Arc::new(|_, _| {}),
            checkpointer,
            checkpoint_tx,
            checkpoint_rx: Some(checkpoint_rx),
            ddl: Default::default(),
            _lock: lock,
        })
    }

    /// Sets the callback that sees every result batch.
    pub fn with_observer(mut self, observer: ResultObserver) -> Self {
        self.observer = observer;
        self
    }

    /// A handle to change and inspect this system while [`Driftwatch::wait`] runs.
    pub fn control(&self) -> ControlHandle {
        self.board.publish_checkpoint(self.checkpointer.stats());
        ControlHandle {
            tx: self.control_tx.clone(),
            board: self.board.clone(),
        }
    }

    /// Subscribes to every monitor's results as they are emitted (see [`FOLLOW_BUFFER`]).
    pub fn subscribe_results(&self) -> broadcast::Receiver<MonitorResult> {
        self.results.subscribe()
    }

    /// A snapshot of sources, monitors and baselines with their counters.
    pub fn snapshot(&self) -> SystemSnapshot {
        self.board.publish_checkpoint(self.checkpointer.stats());
        self.board.snapshot()
    }

    /// Publishes the catalog as it is now to the [`StatusBoard`] snapshots read.
    fn publish_catalog(&self) {
        let sources = self
            .sources
            .iter()
            .map(|(name, s)| SourceCard {
                name: name.clone(),
                sql: s.def.sql.clone(),
                metrics: Arc::clone(&s.metrics),
            })
            .collect();
        let monitors = self
            .monitors
            .iter()
            .map(|(name, m)| MonitorCard {
                name: name.clone(),
                sql: m.def.sql.clone(),
                source: m.source.clone(),
                metrics: Arc::clone(&m.metrics),
            })
            .collect();
        self.board.publish_catalog(sources, monitors);
    }

    /// The baseline registry.
    pub fn baselines(&self) -> &Arc<BaselineRegistry> {
        &self.baselines
    }

    /// The HTTP server (ingest and operations endpoints), e.g. to add the live page's
    /// routes ([`HttpIngest::add_routes`]) before [`Driftwatch::start`] serves it.
    pub fn http(&self) -> &Arc<HttpIngest> {
        &self.http
    }

    /// The result store.
    pub fn store(&self) -> &ResultStore {
        &self.store
    }

    /// Token that asks for a graceful stop when cancelled: inputs stop, a final checkpoint
    /// persists open windows, then everything ends ([`Driftwatch::wait`] returns).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.stop_requested.clone()
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

    /// Executes one statement, then publishes the catalog it left (failed statements
    /// included: one may fail after changing it, e.g. a replaced monitor that won't start).
    pub async fn execute(&mut self, stmt: Statement) -> Result<Outcome, RuntimeError> {
        let result = self.execute_statement(stmt).await;
        self.publish_catalog();
        result
    }

    async fn execute_statement(&mut self, stmt: Statement) -> Result<Outcome, RuntimeError> {
        match stmt {
            Statement::CreateSource(def) => self.create_source(def).await,
            Statement::CreateBaseline(def) => {
                // Runs here, on the caller's task; the control loop runs it off the loop
                // instead (see `super::ddl`).
                let profile = self.baselines.insert(self.baseline_job(&def)?.run().await?);
                Ok(super::ddl::baseline_outcome(&profile))
            }
            Statement::CreateMonitor(def) => self.create_monitor(def).await,
            Statement::Drop {
                kind,
                name,
                if_exists,
            } => self.drop_object(kind, &name, if_exists).await,
            Statement::Show(kind) => Ok(Outcome::Rows(self.show(kind))),
            Statement::ShowCreate { kind, name } => self.show_create(kind, &name),
            Statement::Explain(target) => self.explain(target).await,
            Statement::Other(other) => Err(RuntimeError::Invalid(format!(
                "only CREATE / DROP / SHOW / EXPLAIN belong in a monitor file; run queries with \
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
            max_future,
        } = build_source(&def, &self.http, &self.source_context())?;
        let metrics = Arc::new(SourceMetrics::default());
        let (reject_tx, reject_rx) = mpsc::channel(REJECT_QUEUE);
        let feed = SourceFeed::new(
            Arc::clone(&schema),
            idle_timeout,
            reject_tx,
            Arc::clone(&metrics),
        )
        .with_max_future(max_future);
        let restored = match self
            .checkpointer
            .restored_source(&def.name, &connector.identity())
        {
            Some(entry) => {
                feed.restore(entry.positions.clone(), &entry.watermark);
                tracing::info!(source = %def.name, positions = ?entry.positions, "source positions restored");
                true
            }
            None => false,
        };
        spawn_dead_letters(
            &self.store,
            &def.name,
            self.checkpointer.first_epoch(),
            reject_rx,
            self.checkpoint_tx.clone(),
        )?;
        if let Some(timeout) = idle_timeout {
            spawn_ticker(feed.clone(), timeout, self.engine.clone());
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
                restored,
            },
        );
        Ok(Outcome::Done(format!("source {name}")))
    }

    /// What connectors need to know about the running system.
    fn source_context(&self) -> super::sources::SourceContext {
        super::sources::SourceContext {
            data_dir: self.config.data_dir.clone(),
            durable: self.checkpointer.enabled(),
            ignore_committed_offsets: self.config.from_scratch,
        }
    }

    /// Checks a monitor definition's options and finds what it reads: the analysed input
    /// (naming an unknown source precisely) and the planning options.
    pub(super) fn prepare_monitor(
        &self,
        def: &CreateMonitor,
    ) -> Result<(MonitorInput, MonitorPlanOptions), RuntimeError> {
        let mut known = vec!["allowed_lateness", "retention"];
        known.extend(LIMIT_OPTIONS);
        known.extend(crate::sinks::sink_options());
        def.options.check_known(&known, "monitor")?;
        let options = MonitorPlanOptions {
            allowed_lateness_ms: def
                .options
                .get_duration_ms("allowed_lateness")?
                .unwrap_or(0),
            limits: state_limits(&def.options)?,
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
        Ok((input, options))
    }

    async fn create_monitor(&mut self, def: CreateMonitor) -> Result<Outcome, RuntimeError> {
        if self.monitors.contains_key(&def.name) {
            if !def.or_replace {
                return Err(RuntimeError::Exists(ObjectKind::Monitor, def.name.clone()));
            }
            self.drop_object(ObjectKind::Monitor, &def.name.clone(), false)
                .await?;
        }
        let (input, options) = self
            .prepare_monitor(&def)
            .map_err(|e| name_monitor(e, &def.name))?;
        let sinks = crate::sinks::build_sinks(&def.name, &def.options)
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        let Some(source) = self.sources.get(&input.source) else {
            return Err(RuntimeError::Unknown(
                ObjectKind::Source,
                input.source.clone(),
            ));
        };
        if !self.config.offline {
            // The sink's destination must exist now (bounded wait), not at the first result.
            for sink in &sinks {
                sink.check()
                    .await
                    .map_err(|e| RuntimeError::Invalid(format!("monitor '{}': {e}", def.name)))?;
            }
        }
        let source_restored = source.restored;
        let feed = source.feed.subscribe(&def.name);
        let plan = plan_monitor(
            &def.name,
            &input,
            Arc::clone(&source.schema),
            Some(feed),
            &options,
            &self.baselines,
        )
        .await?;
        if plan.window.is_none() {
            if let Some(sink) = sinks.iter().find(|s| s.needs_windows()) {
                return Err(RuntimeError::Invalid(format!(
                    "monitor '{}': sink '{}' needs a windowed monitor (FROM TUMBLE, HOP or \
                     SESSION … GROUP BY window_start, window_end, …): it notifies once when a \
                     group starts alerting and once when a window passes without it",
                    def.name,
                    sink.name()
                )));
            }
        }
        let metrics = Arc::new(MonitorMetrics::default());
        let mut restore_sinks: BTreeMap<String, SinkPosition> = BTreeMap::new();
        if source_restored {
            if let Some((entry, snapshot)) =
                self.checkpointer
                    .take_restored_monitor(&def.name, &def.sql, &input.source)
            {
                if let Some(snapshot) = snapshot.filter(|_| plan.progress.is_windowed()) {
                    tracing::info!(
                        monitor = %def.name,
                        open_rows = snapshot.rows(),
                        emitted_until = snapshot.emitted_until,
                        "window state restored"
                    );
                    plan.progress.set_restore(snapshot);
                }
                plan.progress.advance(entry.watermark);
                metrics.restore(&entry.counters);
                restore_sinks = entry.sinks;
            }
        }
        let stop = self.engine.child_token();
        let task = MonitorTask {
            name: def.name.clone(),
            definition: def.sql.clone(),
            source: input.source.clone(),
            store: self.store.clone(),
            sinks,
            restore_sinks,
            metrics: Arc::clone(&metrics),
            observer: self.observer_with_broadcast(),
            shutdown: stop.clone(),
            checkpoints: self.checkpoint_tx.clone(),
            epoch: self.checkpointer.first_epoch(),
        };
        let task = tokio::spawn(task.run(plan));
        let name = def.name.clone();
        self.monitors.insert(
            name.clone(),
            MonitorEntry {
                def,
                source: input.source,
                task,
                stop,
                metrics,
                isolated: false,
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
                // Open windows are discarded (never emitted partial); results stay.
                m.stop.cancel();
                let _ = m.task.await;
                self.checkpointer.forget_monitor(name);
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
                if let Ok(dir) = self.store.baseline_dir(name) {
                    let _ = std::fs::remove_dir_all(dir);
                }
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
                .map(|(n, s)| (n.clone(), driftwatch_sql::redact_secrets(&s.def.sql)))
                .unzip(),
            ObjectKind::Monitor => self
                .monitors
                .iter()
                .map(|(n, m)| (n.clone(), driftwatch_sql::redact_secrets(&m.def.sql)))
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
}

/// The `WITH` options that bound a monitor's window state.
pub const LIMIT_OPTIONS: [&str; 3] = ["max_state", "max_groups", "max_open_windows"];

/// Accepted `max_state`: 1 KiB to 1 TiB.
const MAX_STATE_RANGE: std::ops::RangeInclusive<usize> = 1 << 10..=1 << 40;
/// Accepted `max_groups`.
const MAX_GROUPS_RANGE: std::ops::RangeInclusive<usize> = 1..=1_000_000_000;
/// Accepted `max_open_windows`.
const MAX_OPEN_WINDOWS_RANGE: std::ops::RangeInclusive<usize> = 1..=10_000_000;

/// The state limits of `WITH (max_state = '256MB', max_groups = 100000,
/// max_open_windows = 10000)`; an option not given keeps its default
/// ([`StateLimits::default`]). A malformed or out-of-range value is an error naming the option
/// and where it is written.
pub fn state_limits(options: &driftwatch_sql::Options) -> Result<StateLimits, RuntimeError> {
    let d = StateLimits::default();
    Ok(StateLimits {
        max_state_bytes: options
            .get_size_in("max_state", MAX_STATE_RANGE)?
            .unwrap_or(d.max_state_bytes),
        max_groups: options
            .get_usize_in("max_groups", MAX_GROUPS_RANGE)?
            .unwrap_or(d.max_groups),
        max_open_windows: options
            .get_usize_in("max_open_windows", MAX_OPEN_WINDOWS_RANGE)?
            .unwrap_or(d.max_open_windows),
    })
}

/// Puts the monitor's name into an analysis error of its query ("line 3, column 8: monitor
/// 'm': ORDER BY cannot stream …"), as planning errors have it.
pub(super) fn name_monitor(e: RuntimeError, monitor: &str) -> RuntimeError {
    match e {
        RuntimeError::Sql(mut e) => {
            e.message = format!("monitor '{monitor}': {}", e.message);
            RuntimeError::Sql(e)
        }
        other => other,
    }
}

/// Re-evaluates a source's idle partitions periodically.
pub(super) fn spawn_ticker(feed: SourceFeed, idle_timeout: Duration, shutdown: CancellationToken) {
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
