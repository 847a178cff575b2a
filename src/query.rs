//! Ad-hoc SQL over a data dir (`driftwatch query`): every monitor result, late and
//! dead-letter table, every baseline (as `baselines.<name>`, with the drift functions bound
//! to the stored profiles), and files named by path in FROM (`FROM 'current.parquet'`).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::error::DataFusionError;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use driftwatch_flight::suggest::{known_tables, missing_table, with_table_hint};
use driftwatch_udfs::{BaselineProfile, BaselineRegistry};

use crate::sinks::store::StoreTable;
use crate::sinks::ResultStore;

/// Schema of `store_errors` (the `system` schema of the Flight server).
pub const STORE_ERRORS_SCHEMA: &str = "system";

/// Why a query failed: the message says what and where (a missing table names the tables
/// that exist).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Copy of a stored baseline's rows in its directory of the data dir, queryable as
/// `baselines.<name>`.
pub const DATA_FILE: &str = "data.parquet";

/// Loads every stored baseline of the data dir into `registry` (for `driftwatch query`).
pub fn load_stored(store: &ResultStore, registry: &BaselineRegistry) -> Vec<String> {
    let mut loaded = Vec::new();
    let Ok(entries) = std::fs::read_dir(store.root().join("baselines")) else {
        return loaded;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        match BaselineProfile::read_from(&entry.path()) {
            Ok(profile) => {
                loaded.push(profile.name.clone());
                registry.insert(profile);
            }
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "skipping unreadable baseline")
            }
        }
    }
    loaded
}

/// Table listing unreadable result files (see [`QueryEngine::store_errors`]).
pub const STORE_ERRORS_TABLE: &str = "store_errors";

/// Schema under which baselines' rows are queryable.
pub const BASELINE_SCHEMA: &str = "baselines";

/// Output formats of `driftwatch query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header line.
    Csv,
    /// A JSON array of row objects.
    Json,
}

/// Whether a session may read files named as tables (`SELECT * FROM 'x.csv'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAccess {
    /// Yes: the local user's own files (`driftwatch query`, monitor files).
    Paths,
    /// No: only the catalog's tables (Flight SQL clients).
    CatalogOnly,
}

/// Batch SQL over a data dir.
pub struct QueryEngine;

/// The result of [`QueryEngine::execute`].
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Columns of the result, also when no row came back.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

/// The message of a failed query; a missing table is explained (see [`QueryEngine::execute`]).
fn explain(ctx: &SessionContext, store: &ResultStore, err: &DataFusionError) -> String {
    if missing_table(err).is_none() {
        return err.to_string();
    }
    let root = store.root();
    if !root.is_dir() {
        let shown = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        return format!(
            "{err}: the data dir {} does not exist; run a monitor file into it first \
             (`driftwatch run FILE.sql --data-dir DIR`), or name an existing one with \
             --data-dir DIR or DRIFTWATCH_DATA_DIR",
            shown.display()
        );
    }
    let known: Vec<String> = known_tables(ctx)
        .into_iter()
        .filter(|t| !t.starts_with("information_schema."))
        .collect();
    let message = with_table_hint(err, &known);
    if known.is_empty() {
        format!(
            "{message}; the data dir {} has no tables yet",
            root.display()
        )
    } else if message.ends_with('?') {
        message
    } else {
        const SHOWN: usize = 20;
        let more = known.len().saturating_sub(SHOWN);
        let mut list = known[..known.len().min(SHOWN)].join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more (SHOW TABLES lists them)"));
        }
        format!("{message}; tables: {list}")
    }
}

impl QueryEngine {
    /// A session over `store` with Driftwatch's functions bound to `baselines`. With
    /// [`FileAccess::Paths`], a path named as a table in FROM reads that file (the local
    /// user's command line and monitor files); sessions for Flight SQL clients use
    /// [`FileAccess::CatalogOnly`].
    pub fn session(
        store: &ResultStore,
        baselines: &Arc<BaselineRegistry>,
        files: FileAccess,
    ) -> Result<SessionContext, QueryError> {
        // DataFusion settings can be overridden from the environment
        // (`DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`, …), as in datafusion-cli.
        let config = SessionConfig::from_env()
            .map_err(|e| QueryError(format!("DataFusion settings from the environment: {e}")))?
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let ctx = match files {
            FileAccess::Paths => ctx.enable_url_table(),
            FileAccess::CatalogOnly => ctx,
        };
        driftwatch_udfs::register_all(&ctx, baselines);
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| QueryError("default catalog missing".into()))?;
        catalog
            .register_schema(BASELINE_SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .map_err(|e| QueryError(e.to_string()))?;
        let _ = store;
        Ok(ctx)
    }

    /// Registers every table and baseline of the data dir in `ctx`. Result tables are
    /// [`StoreTable`]s, planned from the store's cached listing (no directory listing or
    /// footer reading per query, files pruned by window time). Unreadable result files are
    /// skipped, moved aside and reported ([`ResultStore::faults`], `system.store_errors`);
    /// a table that cannot be read at all is skipped with a warning rather than failing
    /// every query.
    pub async fn register_data_dir(
        ctx: &SessionContext,
        store: &ResultStore,
    ) -> Result<(), QueryError> {
        for name in store.table_names() {
            match StoreTable::open(store, &name).await {
                Ok(Some(table)) => {
                    if let Err(e) = ctx.register_table(format!("\"{name}\""), Arc::new(table)) {
                        tracing::warn!(table = %name, error = %e, "table skipped");
                    }
                }
                Ok(None) => {
                    tracing::warn!(table = %name, "table skipped: it has no readable file")
                }
                Err(e) => {
                    tracing::warn!(table = %name, error = %e, "table skipped: it cannot be read")
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(store.root().join("baselines")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let data = entry.path().join(DATA_FILE);
                if !data.exists() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().to_string();
                ctx.register_parquet(
                    format!("{BASELINE_SCHEMA}.\"{name}\""),
                    data.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await
                .map_err(|e| QueryError(format!("baseline '{name}': {e}")))?;
            }
        }
        Ok(())
    }

    /// The `system.store_errors` table: every result file skipped because it cannot be
    /// read (found by this process, or moved to the quarantine directory earlier), with
    /// why and where it went.
    pub fn store_errors(store: &ResultStore) -> Result<RecordBatch, QueryError> {
        use arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray};
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        let faults = store.faults();
        let schema = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("file", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, false),
            Field::new(
                "detected_at",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("moved_to", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                faults.iter().map(|f| &f.table),
            )),
            Arc::new(StringArray::from_iter_values(
                faults.iter().map(|f| &f.file),
            )),
            Arc::new(StringArray::from_iter_values(
                faults.iter().map(|f| &f.error),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                faults.iter().map(|f| f.detected_ms),
            )),
            Arc::new(StringArray::from_iter(
                faults
                    .iter()
                    .map(|f| f.moved_to.as_ref().map(|p| p.display().to_string())),
            )),
        ];
        RecordBatch::try_new(schema, columns).map_err(|e| QueryError(e.to_string()))
    }

    /// Registers `system.store_errors` ([`QueryEngine::store_errors`]) in `ctx`, creating
    /// the `system` schema when the session has none, replacing an earlier registration.
    pub fn register_store_errors(
        ctx: &SessionContext,
        store: &ResultStore,
    ) -> Result<(), QueryError> {
        let invalid = |e: DataFusionError| QueryError(e.to_string());
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| QueryError("default catalog missing".into()))?;
        if catalog.schema(STORE_ERRORS_SCHEMA).is_none() {
            catalog
                .register_schema(STORE_ERRORS_SCHEMA, Arc::new(MemorySchemaProvider::new()))
                .map_err(invalid)?;
        }
        let batch = Self::store_errors(store)?;
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), vec![vec![batch]])
            .map_err(invalid)?;
        let name = format!("{STORE_ERRORS_SCHEMA}.{STORE_ERRORS_TABLE}");
        ctx.deregister_table(name.as_str()).map_err(invalid)?;
        ctx.register_table(name.as_str(), Arc::new(table))
            .map_err(invalid)?;
        Ok(())
    }

    /// Runs `sql` over the data dir at `store` and returns the result batches.
    pub async fn run(store: &ResultStore, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        Ok(Self::execute(store, sql).await?.batches)
    }

    /// Runs `sql` over the data dir at `store`: the result's schema (known also when no row
    /// comes back) and its batches. A table that does not exist is explained: the data dir
    /// itself is missing (which path, and how to name another), or the closest table's
    /// name ("did you mean …?", see [`driftwatch_flight::suggest`]).
    pub async fn execute(store: &ResultStore, sql: &str) -> Result<QueryOutput, QueryError> {
        let baselines = Arc::new(BaselineRegistry::new());
        load_stored(store, &baselines);
        let ctx = Self::session(store, &baselines, FileAccess::Paths)?;
        Self::register_data_dir(&ctx, store).await?;
        Self::register_store_errors(&ctx, store)?;
        let df = ctx
            .sql(sql)
            .await
            .map_err(|e| QueryError(explain(&ctx, store, &e)))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df
            .collect()
            .await
            .map_err(|e| QueryError(explain(&ctx, store, &e)))?;
        Ok(QueryOutput { schema, batches })
    }

    /// Renders a query's result in `format`; no rows still give the header (table, CSV) or
    /// `[]` (JSON).
    pub fn render_output(output: &QueryOutput, format: OutputFormat) -> Result<String, QueryError> {
        if output.batches.iter().all(|b| b.num_rows() == 0) {
            let empty = RecordBatch::new_empty(Arc::clone(&output.schema));
            return Self::render(&[empty], format);
        }
        Self::render(&output.batches, format)
    }

    /// Renders batches in `format`.
    pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String, QueryError> {
        let err = |e: arrow::error::ArrowError| QueryError(e.to_string());
        match format {
            OutputFormat::Table => Ok(arrow::util::pretty::pretty_format_batches(batches)
                .map_err(err)?
                .to_string()),
            OutputFormat::Csv => {
                let mut buf = Vec::new();
                {
                    let mut writer = arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(&mut buf);
                    for b in batches {
                        writer.write(b).map_err(err)?;
                    }
                }
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
            OutputFormat::Json => {
                let mut buf = Vec::new();
                {
                    let mut writer = arrow::json::ArrayWriter::new(&mut buf);
                    let refs: Vec<&RecordBatch> = batches.iter().collect();
                    writer.write_batches(&refs).map_err(err)?;
                    writer.finish().map_err(err)?;
                }
                if buf.is_empty() {
                    buf.extend_from_slice(b"[]");
                }
                Ok(String::from_utf8_lossy(&buf).into_owned())
            }
        }
    }
}
