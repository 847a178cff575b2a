//! `CREATE BASELINE`: reads the reference data (a file or a query), profiles it once, and
//! persists the profile and a copy of the data in `<data dir>/baselines/<name>/`. A later
//! run with the same definition over an unchanged file reloads the stored profile instead of
//! profiling again. The statement's `WITH (…)` options choose how the profile is built (see
//! [`profile_options`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use driftwatch_sql::{BaselineInput, BaselineOptions, BinSpec, CreateBaseline};
use driftwatch_udfs::baseline::CovarianceMethod;
use driftwatch_udfs::{BaselineProfile, BaselineRegistry, BinRule, ProfileOptions};

use super::RuntimeError;
use crate::query::DATA_FILE;
use crate::sinks::ResultStore;

/// File with the statement that defined a stored baseline.
pub(super) const DEFINITION: &str = "definition.sql";
/// File with the fingerprint of the input file a stored baseline was profiled from.
const FINGERPRINT: &str = "input.fingerprint";

fn fingerprint(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("{}:{}:{}", path.display(), meta.len(), modified))
}

/// Reads a CSV, Parquet or JSON-lines file (or directory) into batches with DataFusion.
pub async fn read_file(
    ctx: &SessionContext,
    path: &str,
    format: Option<&str>,
) -> Result<Vec<RecordBatch>, RuntimeError> {
    let lower = path.to_ascii_lowercase();
    let format = format.map(str::to_ascii_lowercase).unwrap_or_else(|| {
        if lower.ends_with(".parquet") {
            "parquet".into()
        } else if lower.ends_with(".json")
            || lower.ends_with(".jsonl")
            || lower.ends_with(".ndjson")
        {
            "json".into()
        } else {
            "csv".into()
        }
    });
    let ext = Path::new(path)
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let df = match format.as_str() {
        "parquet" => {
            ctx.read_parquet(path, ParquetReadOptions::default().file_extension(&ext))
                .await
        }
        "json" | "jsonl" | "ndjson" => {
            ctx.read_json(path, JsonReadOptions::default().file_extension(&ext))
                .await
        }
        "csv" => {
            ctx.read_csv(path, CsvReadOptions::new().file_extension(&ext))
                .await
        }
        other => {
            return Err(RuntimeError::Invalid(format!(
                "unknown format '{other}': use csv, parquet or json"
            )))
        }
    }
    .map_err(|e| RuntimeError::Invalid(format!("reading '{path}': {e}")))?;
    df.collect()
        .await
        .map_err(|e| RuntimeError::Invalid(format!("reading '{path}': {e}")))
}

// The SQL layer caps `bin_count` at the same number of bins as the data-driven rules.
const _: () = assert!(driftwatch_sql::MAX_BIN_COUNT == driftwatch_udfs::math::describe::MAX_BINS);

/// The profile settings of validated `CREATE BASELINE` options: every option left out keeps
/// its [`ProfileOptions::default`] value. An unknown `covariance` (which the SQL layer already
/// rejects) is an error listing the accepted ones.
pub fn profile_options(options: &BaselineOptions) -> Result<ProfileOptions, RuntimeError> {
    let d = ProfileOptions::default();
    let covariance = match options.covariance.as_deref() {
        Some(m) => CovarianceMethod::parse(m).map_err(RuntimeError::Invalid)?,
        None => d.covariance,
    };
    Ok(ProfileOptions {
        max_sample: options.max_sample.unwrap_or(d.max_sample),
        bins: match &options.bins {
            BinSpec::Fd => BinRule::Fd,
            BinSpec::Sturges => BinRule::Sturges,
            BinSpec::Quantile(k) => BinRule::Quantile(*k),
            BinSpec::Equal(k) => BinRule::Count(*k),
            BinSpec::Explicit(e) => BinRule::Explicit(e.clone()),
        },
        quantiles: options.quantiles.clone().unwrap_or(d.quantiles),
        row_sample: options.row_sample.unwrap_or(d.row_sample),
        iforest_trees: options.iforest_trees.unwrap_or(d.iforest_trees),
        iforest_sample: options.iforest_sample.unwrap_or(d.iforest_sample),
        seed: options.seed.unwrap_or(d.seed),
        categorical: options.categorical.clone(),
        covariance,
        sketch_above: options.sketch_above.unwrap_or(d.sketch_above),
    })
}

/// Creates (or reloads) the baseline defined by `stmt` and registers it: [`BaselineJob::prepare`]
/// then [`BaselineJob::run`] on this task.
pub async fn create_baseline(
    stmt: &CreateBaseline,
    store: &ResultStore,
    registry: &Arc<BaselineRegistry>,
    query_ctx: &SessionContext,
) -> Result<Arc<BaselineProfile>, RuntimeError> {
    let job = BaselineJob::prepare(stmt, store, query_ctx.clone())?;
    Ok(registry.insert(job.run().await?))
}

/// A `CREATE BASELINE` whose options are checked, ready to read, profile and persist its
/// input. It owns everything it needs, so the slow part ([`BaselineJob::run`]) can run on
/// its own task while the control loop keeps answering snapshots and other requests; the
/// caller registers the profile it returns.
pub struct BaselineJob {
    stmt: CreateBaseline,
    options: BaselineOptions,
    profile_opts: ProfileOptions,
    dir: PathBuf,
    query_ctx: SessionContext,
}

impl BaselineJob {
    /// Checks the statement's options and where the profile will be stored (fast: no input
    /// is read).
    pub fn prepare(
        stmt: &CreateBaseline,
        store: &ResultStore,
        query_ctx: SessionContext,
    ) -> Result<Self, RuntimeError> {
        let options = stmt.baseline_options().map_err(RuntimeError::Sql)?;
        let profile_opts = profile_options(&options)
            .map_err(|e| RuntimeError::Invalid(format!("baseline '{}': {e}", stmt.name)))?;
        profile_opts
            .validate()
            .map_err(|e| RuntimeError::Invalid(format!("baseline '{}': {e}", stmt.name)))?;
        let dir = store
            .baseline_dir(&stmt.name)
            .map_err(|e| RuntimeError::Invalid(format!("baseline '{}': {e}", stmt.name)))?;
        Ok(Self {
            stmt: stmt.clone(),
            options,
            profile_opts,
            dir,
            query_ctx,
        })
    }

    /// The baseline's name.
    pub fn name(&self) -> &str {
        &self.stmt.name
    }

    /// Reuses the stored profile when the definition and input file are unchanged, else
    /// reads the input, profiles it and persists profile and rows. File reads, profiling
    /// and writes run on blocking threads, never on the async workers.
    pub async fn run(self) -> Result<BaselineProfile, RuntimeError> {
        let Self {
            stmt,
            options,
            profile_opts,
            dir,
            query_ctx,
        } = self;
        let blocking = |what: &'static str| {
            let name = stmt.name.clone();
            move |e: tokio::task::JoinError| {
                RuntimeError::Invalid(format!("baseline '{name}': {what} stopped: {e}"))
            }
        };
        let input_print = match &stmt.input {
            BaselineInput::Path(p) => fingerprint(Path::new(p)),
            BaselineInput::Query { .. } => None,
        };
        let stored = {
            let (dir, sql, print) = (dir.clone(), stmt.sql.clone(), input_print.clone());
            tokio::task::spawn_blocking(move || reuse_stored(&dir, &sql, print.as_deref()))
                .await
                .map_err(blocking("reading the stored profile"))?
        };
        if let Some(profile) = stored.filter(|p| p.options == profile_opts) {
            tracing::info!(baseline = %stmt.name, "reloaded stored profile");
            return Ok(profile);
        }
        let batches = match &stmt.input {
            BaselineInput::Path(path) => {
                if !Path::new(path).exists() {
                    // Say where it was looked for: a relative path is the working directory's.
                    let tried = super::script::absolute(Path::new(path));
                    return Err(RuntimeError::Invalid(format!(
                        "baseline '{}': file '{}' does not exist",
                        stmt.name,
                        tried.display()
                    )));
                }
                read_file(&query_ctx, path, options.format.as_deref()).await?
            }
            BaselineInput::Query { sql, .. } => query_ctx
                .sql(sql)
                .await
                .map_err(|e| RuntimeError::Invalid(format!("baseline '{}': {e}", stmt.name)))?
                .collect()
                .await
                .map_err(|e| RuntimeError::Invalid(format!("baseline '{}': {e}", stmt.name)))?,
        };
        let name = stmt.name.clone();
        tokio::task::spawn_blocking(move || {
            let profile = BaselineProfile::from_batches(&stmt.name, &batches, &profile_opts)
                .map_err(|e| RuntimeError::Invalid(format!("baseline '{}': {e}", stmt.name)))?;
            persist(&dir, &profile, &batches, &stmt.sql, input_print.as_deref())?;
            tracing::info!(
                baseline = %stmt.name,
                rows = batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                "profiled"
            );
            Ok(profile)
        })
        .await
        .map_err(|e| RuntimeError::Invalid(format!("baseline '{name}': profiling stopped: {e}")))?
    }
}

fn reuse_stored(dir: &Path, sql: &str, input_print: Option<&str>) -> Option<BaselineProfile> {
    let stored_sql = std::fs::read_to_string(dir.join(DEFINITION)).ok()?;
    if stored_sql != sql {
        return None;
    }
    let stored_print = std::fs::read_to_string(dir.join(FINGERPRINT)).ok();
    // Query baselines have no fingerprint: their definition alone decides.
    if stored_print.as_deref() != input_print {
        return None;
    }
    BaselineProfile::read_from(dir).ok()
}

/// Stores a baseline's profile, rows and definition durably, replacing what `dir` held
/// without a moment where a reader finds neither: everything is written into a hidden
/// sibling directory and fsynced, then swapped in by two renames (a crash between them leaves
/// the previous version as `.<name>.old-*`, restored by [`recover_baseline_dirs`]).
fn persist(
    dir: &Path,
    profile: &BaselineProfile,
    batches: &[RecordBatch],
    sql: &str,
    input_print: Option<&str>,
) -> Result<(), RuntimeError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| RuntimeError::Invalid(format!("{}: {e}", p.display()))
    };
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = chrono::Utc::now().timestamp_millis();
    let staging = parent.join(format!(".{name}.new-{stamp}"));
    std::fs::create_dir_all(&staging).map_err(io(&staging))?;
    profile
        .write_to(&staging)
        .map_err(|e| RuntimeError::Invalid(format!("saving baseline: {e}")))?;
    if let Some(first) = batches.first() {
        let path = staging.join(DATA_FILE);
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, first.schema(), None)
            .map_err(|e| RuntimeError::Invalid(format!("{}: {e}", path.display())))?;
        for b in batches {
            writer
                .write(b)
                .map_err(|e| RuntimeError::Invalid(format!("{}: {e}", path.display())))?;
        }
        writer
            .close()
            .map_err(|e| RuntimeError::Invalid(format!("{}: {e}", path.display())))?;
    }
    std::fs::write(staging.join(DEFINITION), sql).map_err(io(&staging.join(DEFINITION)))?;
    if let Some(p) = input_print {
        std::fs::write(staging.join(FINGERPRINT), p).map_err(io(&staging.join(FINGERPRINT)))?;
    }
    crate::durable::sync_tree(&staging).map_err(io(&staging))?;
    let old = parent.join(format!(".{name}.old-{stamp}"));
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&staging, dir).map_err(io(dir))?;
    crate::durable::sync_dir(parent).map_err(io(parent))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Finishes baseline replacements a crash interrupted: a baseline whose directory is
/// missing gets its previous version (`.<name>.old-*`) back; unfinished new versions are
/// deleted.
pub fn recover_baseline_dirs(store: &ResultStore) {
    let root = store.root().join("baselines");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix('.') else {
            continue;
        };
        if let Some((name, _)) = rest.split_once(".old-") {
            let target = root.join(name);
            let result = if target.exists() {
                std::fs::remove_dir_all(entry.path())
            } else {
                tracing::warn!(
                    baseline = name,
                    "restoring the baseline a crash left mid-replacement"
                );
                std::fs::rename(entry.path(), &target)
            };
            if let Err(e) = result {
                tracing::warn!(path = %entry.path().display(), error = %e, "baseline recovery");
            }
        } else if rest.contains(".new-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
