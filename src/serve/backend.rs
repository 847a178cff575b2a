//! [`SystemBackend`]: the Flight SQL [`Backend`] of a running [`Driftwatch`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use driftwatch_flight::{Backend, BackendError};
use driftwatch_udfs::BaselineRegistry;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::{broadcast, Mutex};

use super::catalog::CatalogFile;
use super::ddl_policy::DdlPolicy;
use super::system_tables::{system_tables, SYSTEM_SCHEMA};
use crate::query::{FileAccess, QueryEngine};
use crate::runtime::{
    ControlHandle, Driftwatch, MonitorResult, Outcome, SystemSnapshot, FOLLOW_BUFFER,
};
use crate::sinks::ResultStore;

/// How long a snapshot of the system (for the `system` tables) is reused.
const SNAPSHOT_TTL: Duration = Duration::from_millis(250);

struct Cached {
    generation: u64,
    ctx: SessionContext,
    snapshot_at: Option<Instant>,
}

/// Sessions, DDL and follow streams of a running system.
///
/// The session (tables of the data dir, baselines, functions) is built once and rebuilt
/// after DDL; result files written since are seen because DataFusion's list-files cache is
/// cleared for every request. The `system` tables are refreshed from a snapshot at most every
/// `SNAPSHOT_TTL`.
pub struct SystemBackend {
    store: ResultStore,
    baselines: Arc<BaselineRegistry>,
    control: ControlHandle,
    results: broadcast::Sender<MonitorResult>,
    catalog: CatalogFile,
    policy: DdlPolicy,
    generation: AtomicU64,
    cached: Mutex<Option<Cached>>,
    /// Held from executing DDL until it is recorded in the catalog, so statements are
    /// recorded in the order they took effect (queries and snapshots never take it).
    ddl: Mutex<()>,
}

fn invalid(e: impl std::fmt::Display) -> BackendError {
    BackendError::Invalid(e.to_string())
}

impl SystemBackend {
    /// A backend for `system` whose DDL may read files as `policy` allows; spawns the task
    /// that fans results out to followers.
    pub fn new(system: &Driftwatch, policy: DdlPolicy) -> Self {
        // Our own broadcast, fed by one task, so followers subscribe at any time without
        // holding a receiver (and its buffered batches) open in between.
        let (results, _) = broadcast::channel(FOLLOW_BUFFER);
        let mut rx = system.subscribe_results();
        let tx = results.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(r) => {
                        let _ = tx.send(r);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(dropped = n, "follow fan-out lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Self {
            store: system.store().clone(),
            baselines: Arc::clone(system.baselines()),
            control: system.control(),
            results,
            catalog: CatalogFile::new(system.store().root()),
            policy,
            generation: AtomicU64::new(0),
            cached: Mutex::new(None),
            ddl: Mutex::new(()),
        }
    }

    async fn snapshot(&self) -> Result<SystemSnapshot, BackendError> {
        self.control
            .snapshot()
            .await
            .map_err(|e| BackendError::Unavailable(e.to_string()))
    }

    async fn build_session(&self) -> Result<SessionContext, BackendError> {
        let ctx = QueryEngine::session(&self.store, &self.baselines, FileAccess::CatalogOnly)
            .map_err(invalid)?;
        QueryEngine::register_data_dir(&ctx, &self.store)
            .await
            .map_err(invalid)?;
        ctx.catalog("datafusion")
            .ok_or_else(|| invalid("default catalog missing"))?
            .register_schema(SYSTEM_SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .map_err(invalid)?;
        Ok(ctx)
    }

    async fn refresh_system_tables(&self, ctx: &SessionContext) -> Result<(), BackendError> {
        let snap = self.snapshot().await?;
        let now = chrono::Utc::now().timestamp_millis();
        for (name, batch) in system_tables(&snap, now).map_err(invalid)? {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(invalid)?;
            let qualified = format!("{SYSTEM_SCHEMA}.{name}");
            ctx.deregister_table(qualified.as_str()).map_err(invalid)?;
            ctx.register_table(qualified.as_str(), Arc::new(table))
                .map_err(invalid)?;
        }
        // Unreadable result files skipped by the store (`system.store_errors`).
        QueryEngine::register_store_errors(ctx, &self.store).map_err(invalid)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for SystemBackend {
    async fn session(&self) -> Result<SessionContext, BackendError> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_none_or(|c| c.generation != generation) {
            let ctx = self.build_session().await?;
            *cached = Some(Cached {
                generation,
                ctx,
                snapshot_at: None,
            });
        }
        let c = cached.as_mut().expect("session cached above");
        if c.snapshot_at.is_none_or(|t| t.elapsed() >= SNAPSHOT_TTL) {
            self.refresh_system_tables(&c.ctx).await?;
            c.snapshot_at = Some(Instant::now());
        }
        // Result files are appended all the time: list them afresh for every request.
        if let Some(files) = c.ctx.runtime_env().cache_manager.get_list_files_cache() {
            files.clear();
        }
        Ok(c.ctx.clone())
    }

    async fn execute_ddl(&self, sql: &str) -> Result<String, BackendError> {
        self.policy.check(sql).map_err(BackendError::Invalid)?;
        let _in_order = self.ddl.lock().await;
        let outcomes = self.control.execute(sql).await.map_err(invalid)?;
        // EXPLAIN / SHOW CREATE change nothing: not recorded, answered with their rows.
        if read_only(sql) {
            return Ok(outcomes
                .into_iter()
                .map(|o| match o {
                    Outcome::Done(what) => what,
                    Outcome::Rows(b) => rows_text(&b),
                })
                .collect::<Vec<_>>()
                .join("\n"));
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.catalog.record(sql) {
            tracing::error!(error = %e, "DDL executed but not persisted");
            return Err(BackendError::Unavailable(format!(
                "executed, but not persisted to {}: {e}",
                self.catalog.path().display()
            )));
        }
        let messages: Vec<String> = outcomes
            .into_iter()
            .map(|o| match o {
                Outcome::Done(what) => what,
                Outcome::Rows(b) => format!("{} rows", b.num_rows()),
            })
            .collect();
        Ok(messages.join("; "))
    }

    async fn follow(
        &self,
        monitor: &str,
    ) -> Result<
        (
            SchemaRef,
            BoxStream<'static, Result<RecordBatch, BackendError>>,
        ),
        BackendError,
    > {
        // Subscribe first so no window emitted after this call is missed.
        let rx = self.results.subscribe();
        let snap = self.snapshot().await?;
        if !snap.monitors.iter().any(|m| m.name == monitor) {
            let known: Vec<&str> = snap.monitors.iter().map(|m| m.name.as_str()).collect();
            return Err(BackendError::NotFound(format!(
                "unknown monitor '{monitor}'; running monitors: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )));
        }
        let ctx = self.session().await?;
        let schema = ctx
            .table(format!("\"{monitor}\""))
            .await
            .map_err(invalid)?
            .schema()
            .inner()
            .clone();
        let name = monitor.to_string();
        let stream = futures::stream::unfold(rx, move |mut rx| {
            let name = name.clone();
            async move {
                loop {
                    match rx.recv().await {
                        Ok(r) if r.monitor == name => return Some((Ok(r.batch), rx)),
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            return Some((Err(BackendError::Lagged(n)), rx))
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok((schema, stream.boxed()))
    }
}

/// Whether every statement of `sql` only reads (`EXPLAIN …`, `SHOW CREATE …`).
fn read_only(sql: &str) -> bool {
    use driftwatch_sql::Statement;
    driftwatch_sql::parse_statements(sql).is_ok_and(|s| {
        s.iter()
            .all(|s| matches!(s, Statement::Explain(_) | Statement::ShowCreate { .. }))
    })
}

/// Rows as text: one line per row, `column: value` per field, values on their own lines
/// (plans are multi-line).
fn rows_text(batch: &RecordBatch) -> String {
    let options = arrow::util::display::FormatOptions::default().with_null("NULL");
    let schema = batch.schema();
    let formatters: Vec<_> = batch
        .columns()
        .iter()
        .filter_map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options).ok())
        .collect();
    let mut out = Vec::new();
    for i in 0..batch.num_rows() {
        for (f, field) in formatters.iter().zip(schema.fields()) {
            out.push(format!("{}: {}", field.name(), f.value(i)));
        }
    }
    out.join("\n")
}
