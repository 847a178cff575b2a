//! The result store: every monitor's output, late rows and dead letters are appended as
//! Parquet files under `<data dir>/tables/<table>/`, one directory per table, so DataFusion
//! can query each directory as a listing table.
//!
//! Files are named `part-<write ms>-<epoch>-<seq>.parquet`. Retention deletes files whose
//! write time is older than the retention period. Each table starts with an empty file that
//! carries its schema, so a monitor that produced nothing yet is still queryable.
//!
//! Exactly once across crashes: the *epoch* of a file is the checkpoint that will cover it
//! (results emitted after checkpoint `n-1`'s barrier and before checkpoint `n`'s are in
//! epoch `n`). Every file is written durably (temp file, fsync, rename, directory fsync)
//! before the checkpoint covering it is written. On restart from checkpoint `c`,
//! [`ResultStore::discard_uncovered`] deletes the files of epochs after `c`: the input they
//! came from is read again and their windows are emitted again, once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::durable;

/// Error writing to the result store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Parquet encoding error.
    #[error("writing {path}: {source}")]
    Parquet {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        source: parquet::errors::ParquetError,
    },
}

/// Directory layout of the data dir.
#[derive(Debug, Clone)]
pub struct ResultStore {
    root: PathBuf,
    seq: Arc<AtomicU64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl ResultStore {
    /// A store rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: data_dir.into(),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The data dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory holding all tables.
    pub fn tables_dir(&self) -> PathBuf {
        self.root.join("tables")
    }

    /// Directory of one table.
    ///
    /// Fails for a name that would leave the tables directory (see
    /// [`crate::durable::child_path`]).
    pub fn table_dir(&self, table: &str) -> Result<PathBuf, StoreError> {
        let dir = self.tables_dir();
        crate::durable::child_path(&dir, table)
            .map_err(|source| StoreError::Io { path: dir, source })
    }

    /// Directory of one baseline.
    ///
    /// Fails for a name that would leave the baselines directory.
    pub fn baseline_dir(&self, baseline: &str) -> Result<PathBuf, StoreError> {
        let dir = self.root.join("baselines");
        crate::durable::child_path(&dir, baseline)
            .map_err(|source| StoreError::Io { path: dir, source })
    }

    /// Deletes every result file of an epoch after `covered` (and leftover temporary files)
    /// in every table; returns the files deleted. Called once at start, before any writer
    /// opens, with the id of the restored checkpoint (0 when there is none).
    pub fn discard_uncovered(&self, covered: u64) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = Vec::new();
        let Ok(tables) = std::fs::read_dir(self.tables_dir()) else {
            return Ok(removed);
        };
        for table in tables.flatten() {
            let dir = table.path();
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut changed = false;
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                let stale_temp = name.starts_with('.') && name.contains(".tmp");
                if stale_temp || file_epoch(&name).is_some_and(|e| e > covered) {
                    let path = f.path();
                    std::fs::remove_file(&path).map_err(|source| StoreError::Io {
                        path: path.clone(),
                        source,
                    })?;
                    if !stale_temp {
                        removed.push(path);
                    }
                    changed = true;
                }
            }
            if changed {
                durable::sync_dir(&dir).map_err(|source| StoreError::Io {
                    path: dir.clone(),
                    source,
                })?;
            }
        }
        Ok(removed)
    }

    /// Opens (creating if needed) a table with `schema` for appending results of epoch
    /// `epoch` (see the module docs). When the table exists with a different schema (the
    /// monitor was redefined), old files are moved aside into `<table>.replaced-<ms>/`.
    pub fn open(
        &self,
        table: &str,
        schema: SchemaRef,
        epoch: u64,
    ) -> Result<TableWriter, StoreError> {
        let dir = self.table_dir(table)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        if dir.exists() && !self.same_schema(&dir, &schema) {
            let aside = self
                .tables_dir()
                .join(format!("{table}.replaced-{}", now_ms()));
            std::fs::rename(&dir, &aside).map_err(io(&dir))?;
            tracing::warn!(table, moved_to = %aside.display(), "table schema changed; old results moved aside");
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let has_files = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .flatten()
            .any(|e| file_epoch(&e.file_name().to_string_lossy()).is_some());
        let writer = TableWriter {
            store: self.clone(),
            table: table.to_string(),
            dir,
            schema,
            epoch,
            buffer: Vec::new(),
            buffered_rows: 0,
            last_flush: Instant::now(),
        };
        if !has_files {
            // An empty file carries the schema until the first results arrive. Epoch 0: it
            // is never discarded by recovery.
            writer.write_file(&[], 0)?;
        }
        Ok(writer)
    }

    fn same_schema(&self, dir: &Path, schema: &SchemaRef) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                let Ok(file) = std::fs::File::open(&path) else {
                    continue;
                };
                let Ok(reader) =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                else {
                    continue;
                };
                return reader.schema().fields() == schema.fields();
            }
        }
        true
    }

    /// Directory unreadable result files are moved to.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Moves result files whose Parquet footer cannot be read (truncated, overwritten, not
    /// Parquet) out of their table into `quarantine/<table>/`, so that one damaged file does
    /// not fail every query of its table; returns what was moved and why. Files already
    /// checked (same path, size and modification time) are not read again.
    pub fn quarantine_unreadable(&self) -> Vec<(PathBuf, String)> {
        static CHECKED: std::sync::OnceLock<
            std::sync::Mutex<std::collections::HashSet<(PathBuf, u64, SystemTime)>>,
        > = std::sync::OnceLock::new();
        let checked = CHECKED.get_or_init(Default::default);
        let mut moved = Vec::new();
        let Ok(tables) = std::fs::read_dir(self.tables_dir()) else {
            return moved;
        };
        for table in tables.flatten() {
            let Ok(files) = std::fs::read_dir(table.path()) else {
                continue;
            };
            for f in files.flatten() {
                let path = f.path();
                let name = f.file_name().to_string_lossy().to_string();
                if name.starts_with('.') || !name.ends_with(".parquet") {
                    continue;
                }
                let Ok(meta) = f.metadata() else { continue };
                let key = (
                    path.clone(),
                    meta.len(),
                    meta.modified().unwrap_or(UNIX_EPOCH),
                );
                if checked
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(&key)
                {
                    continue;
                }
                let readable = std::fs::File::open(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|file| {
                        parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
                            &file,
                            Default::default(),
                        )
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                    });
                match readable {
                    Ok(()) => {
                        checked
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(key);
                    }
                    Err(reason) => {
                        let aside = self.quarantine_dir().join(table.file_name());
                        let target = aside.join(&name);
                        let result = std::fs::create_dir_all(&aside)
                            .and_then(|_| std::fs::rename(&path, &target));
                        match result {
                            Ok(()) => {
                                tracing::warn!(file = %path.display(), moved_to = %target.display(), %reason, "unreadable result file skipped");
                                moved.push((path, reason));
                            }
                            Err(e) => {
                                tracing::warn!(file = %path.display(), error = %e, "cannot move unreadable result file aside")
                            }
                        }
                    }
                }
            }
        }
        moved
    }

    /// Deletes result files written more than `retention` ago; returns how many.
    pub fn apply_retention(&self, retention: Duration) -> Result<usize, StoreError> {
        let cutoff = now_ms() - retention.as_millis() as i64;
        let mut removed = 0;
        let tables = self.tables_dir();
        let Ok(dirs) = std::fs::read_dir(&tables) else {
            return Ok(0);
        };
        for dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            let mut names: Vec<(i64, PathBuf)> = files
                .flatten()
                .filter_map(|f| {
                    let name = f.file_name().to_string_lossy().to_string();
                    let ms = name
                        .strip_prefix("part-")?
                        .split('-')
                        .next()?
                        .parse()
                        .ok()?;
                    Some((ms, f.path()))
                })
                .collect();
            names.sort();
            // Keep the newest file of each table: it carries the schema.
            names.pop();
            for (ms, path) in names {
                if ms < cutoff {
                    std::fs::remove_file(&path)
                        .map_err(|source| StoreError::Io { path, source })?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// The epoch in a result file name: `part-<ms>-<epoch>-<seq>.parquet`, or 0 for files
/// written before epochs existed (`part-<ms>-<seq>.parquet`). `None`: not a result file.
pub fn file_epoch(name: &str) -> Option<u64> {
    let stem = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let parts: Vec<&str> = stem.split('-').collect();
    match parts.as_slice() {
        [_ms, epoch, _seq] => epoch.parse().ok(),
        [_ms, _seq] => Some(0),
        _ => None,
    }
}

/// Rows buffered before a row-level table is flushed to a file.
const FLUSH_ROWS: usize = 65_536;
/// Longest time rows stay buffered.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Appends batches to one table.
pub struct TableWriter {
    store: ResultStore,
    table: String,
    dir: PathBuf,
    schema: SchemaRef,
    epoch: u64,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    last_flush: Instant,
}

impl TableWriter {
    /// Table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Schema of the table.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Flushes what is buffered (durably, into the current epoch) and moves to `epoch`:
    /// called at a checkpoint barrier with the next checkpoint's id.
    pub fn start_epoch(&mut self, epoch: u64) -> Result<(), StoreError> {
        self.flush()?;
        self.epoch = epoch;
        Ok(())
    }

    /// Buffers `batch`; flushes when enough rows or time accumulated.
    pub fn append(&mut self, batch: RecordBatch) -> Result<(), StoreError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.buffered_rows += batch.num_rows();
        self.buffer.push(batch);
        if self.buffered_rows >= FLUSH_ROWS || self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes buffered rows to a new file now.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.last_flush = Instant::now();
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.buffer);
        self.buffered_rows = 0;
        self.write_file(&batches, self.epoch)
    }

    fn write_file(&self, batches: &[RecordBatch], epoch: u64) -> Result<(), StoreError> {
        let seq = self.store.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("part-{:013}-{epoch:010}-{seq:06}.parquet", now_ms());
        let path = self.dir.join(&name);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut encode_error = None;
        // Temp file, fsync, rename, directory fsync: readers never see a half-written file
        // and a file that exists survives a power loss.
        let written = durable::write_atomic_with(&path, |file| {
            let result = (|| {
                let mut writer =
                    ArrowWriter::try_new(&mut *file, Arc::clone(&self.schema), Some(props))?;
                for b in batches {
                    writer.write(b)?;
                }
                writer.close()?;
                Ok(())
            })();
            result.map_err(|e: parquet::errors::ParquetError| {
                encode_error = Some(e);
                std::io::Error::other("parquet encoding failed")
            })
        });
        if let Some(source) = encode_error {
            return Err(StoreError::Parquet { path, source });
        }
        written.map_err(|source| StoreError::Io { path, source })
    }
}

impl Drop for TableWriter {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(table = %self.table, error = %e, "flushing results on close failed");
        }
    }
}
