//! Ad-hoc SQL over a data dir (`driftwatch query`): every monitor result, late and
//! dead-letter table, every baseline (as `baselines.<name>`, with the drift functions bound
//! to the stored profiles), and files named by path in FROM (`FROM 'current.parquet'`).

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use driftwatch_udfs::BaselineRegistry;

use crate::runtime::baselines::{load_stored, DATA_FILE};
use crate::runtime::RuntimeError;
use crate::sinks::ResultStore;

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

impl QueryEngine {
    /// A session over `store` with Driftwatch's functions bound to `baselines`. With
    /// [`FileAccess::Paths`], a path named as a table in FROM reads that file (the local
    /// user's command line and monitor files); sessions for Flight SQL clients use
    /// [`FileAccess::CatalogOnly`].
    pub fn session(
        store: &ResultStore,
        baselines: &Arc<BaselineRegistry>,
        files: FileAccess,
    ) -> Result<SessionContext, RuntimeError> {
        // DataFusion settings can be overridden from the environment
        // (`DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`, …), as in datafusion-cli.
        let config = SessionConfig::from_env()
            .map_err(|e| {
                RuntimeError::Invalid(format!("DataFusion settings from the environment: {e}"))
            })?
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let ctx = match files {
            FileAccess::Paths => ctx.enable_url_table(),
            FileAccess::CatalogOnly => ctx,
        };
        driftwatch_udfs::register_all(&ctx, baselines);
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| RuntimeError::Invalid("default catalog missing".into()))?;
        catalog
            .register_schema(BASELINE_SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        let _ = store;
        Ok(ctx)
    }

    /// Registers every table and baseline of the data dir in `ctx`. Unreadable result
    /// files are moved aside first ([`ResultStore::quarantine_unreadable`], logged as
    /// warnings); a table that still cannot be registered is skipped with a warning rather
    /// than failing every query.
    pub async fn register_data_dir(
        ctx: &SessionContext,
        store: &ResultStore,
    ) -> Result<(), RuntimeError> {
        store.quarantine_unreadable();
        if let Ok(entries) = std::fs::read_dir(store.tables_dir()) {
            let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            for dir in dirs {
                let Some(name) = dir.file_name().map(|n| n.to_string_lossy().to_string()) else {
                    continue;
                };
                if name.contains(".replaced-") || !dir.is_dir() {
                    continue;
                }
                let path = format!("{}/", dir.display());
                if let Err(e) = ctx
                    .register_parquet(format!("\"{name}\""), &path, ParquetReadOptions::default())
                    .await
                {
                    tracing::warn!(table = %name, error = %e, "table skipped: it cannot be read");
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
                .map_err(|e| RuntimeError::Invalid(format!("baseline '{name}': {e}")))?;
            }
        }
        Ok(())
    }

    /// Runs `sql` over the data dir at `store` and returns the result batches.
    pub async fn run(store: &ResultStore, sql: &str) -> Result<Vec<RecordBatch>, RuntimeError> {
        let baselines = Arc::new(BaselineRegistry::new());
        load_stored(store, &baselines);
        let ctx = Self::session(store, &baselines, FileAccess::Paths)?;
        Self::register_data_dir(&ctx, store).await?;
        let df = ctx
            .sql(sql)
            .await
            .map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        df.collect()
            .await
            .map_err(|e| RuntimeError::Invalid(e.to_string()))
    }

    /// Renders batches in `format`.
    pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String, RuntimeError> {
        let err = |e: arrow::error::ArrowError| RuntimeError::Invalid(e.to_string());
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
