//! The result store: every monitor's output, late rows and dead letters are appended as
//! Parquet files under `<data dir>/tables/<table>/`, one directory per table.
//!
//! Layout of a table directory (see [`names`] and [`manifest`]): appended files
//! `part-<write ms>-<epoch>-<seq>.parquet`, compacted files `cpt-…parquet` and the
//! manifest `_manifest.json` that says which compacted files are live and which files they
//! replaced. Each table starts with an empty file that carries its schema, so a monitor
//! that produced nothing yet is still queryable.
//!
//! Readers plan from a cached listing ([`index`]) through [`StoreTable`]; small files are
//! merged in the background ([`compaction`]); an unreadable file is skipped and reported
//! ([`ResultStore::faults`]).
//!
//! Exactly once across crashes: the *epoch* of a file is the checkpoint that will cover it
//! (results emitted after checkpoint `n-1`'s barrier and before checkpoint `n`'s are in
//! epoch `n`). Every file is written durably (temp file, fsync, rename, directory fsync)
//! before the checkpoint covering it is written. On restart from checkpoint `c`,
//! [`ResultStore::discard_uncovered`] deletes the files of epochs after `c`: the input they
//! came from is read again and their windows are emitted again, once. Compaction only
//! merges files no restart can discard (see [`compaction`]).

pub mod compaction;
pub mod index;
pub mod manifest;
pub mod names;
pub mod provider;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::datatypes::SchemaRef;

pub use index::{FileInfo, StoreFault, TableSnapshot};
use manifest::Manifest;
use names::FileName;
pub use provider::StoreTable;
pub use writer::TableWriter;

use crate::durable;

/// Error of the result store.
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
    /// Parquet encoding or decoding error.
    #[error("{path}: {source}")]
    Parquet {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        source: parquet::errors::ParquetError,
    },
    /// A table's manifest cannot be read or written.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// Path of the manifest.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// State shared by the clones of one store.
#[derive(Debug, Default)]
struct Shared {
    seq: AtomicU64,
    index: Mutex<index::StoreIndex>,
    fault_count: AtomicU64,
    /// Parquet footers read by listings (files the manifest describes need none).
    footer_reads: AtomicU64,
    compactor_started: AtomicBool,
    /// Retention asked for while maintenance was busy: applied by the compactor.
    pending_retention: Mutex<Option<Duration>>,
    /// Totals of compaction rounds (for status and tests).
    compaction: Mutex<compaction::CompactionTotals>,
}

/// The result store of a data dir. Clones share their caches and counters.
#[derive(Debug, Clone)]
pub struct ResultStore {
    root: PathBuf,
    shared: Arc<Shared>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The lock serialising maintenance of one data dir in this process: recovery at start,
/// schema replacement, compaction rounds and retention never run at the same time.
fn maintenance_lock(root: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let key = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(locks.entry(key).or_default())
}

impl ResultStore {
    /// A store rooted at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            root: data_dir.into(),
            shared: Arc::new(Shared::default()),
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

    /// Names of the table directories (tables moved aside by a schema change excluded).
    pub fn table_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.tables_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.contains(".replaced-") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
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

    /// Directory unreadable result files are moved to.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Deletes every result file of an epoch after `covered` (and leftover temporary files,
    /// and compacted files a crash left unswitched) in every table; returns the result
    /// files deleted. Called once at start, before any writer opens, with the id of the
    /// restored checkpoint (0 when there is none).
    pub fn discard_uncovered(&self, covered: u64) -> Result<Vec<PathBuf>, StoreError> {
        let lock = maintenance_lock(&self.root);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut removed = Vec::new();
        for table in self.table_names() {
            let dir = self.table_dir(&table)?;
            let mut manifest = match Manifest::load(&dir) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(table, error = %e, "table left as it is: its manifest cannot be read");
                    continue;
                }
            };
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            let io = |path: &Path| {
                let path = path.to_path_buf();
                move |source| StoreError::Io { path, source }
            };
            let mut changed = false;
            let mut manifest_changed = false;
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                let path = f.path();
                if names::is_temp(&name) {
                    std::fs::remove_file(&path).map_err(io(&path))?;
                    changed = true;
                    continue;
                }
                let Some(kind) = FileName::parse(&name) else {
                    continue;
                };
                let live = manifest.is_live(&name);
                let discard = match kind {
                    FileName::Part { epoch, .. } => epoch > covered,
                    // Not switched in before a crash: its inputs are still visible.
                    FileName::Compacted { .. } if !live => {
                        std::fs::remove_file(&path).map_err(io(&path))?;
                        changed = true;
                        continue;
                    }
                    FileName::Compacted { epoch, .. } => epoch > covered,
                };
                if discard {
                    if live {
                        manifest.compacted.retain(|c| c.file != name);
                        manifest.save(&dir)?;
                        manifest_changed = true;
                    }
                    std::fs::remove_file(&path).map_err(io(&path))?;
                    removed.push(path);
                    changed = true;
                }
            }
            if manifest_changed {
                tracing::info!(
                    table,
                    "compacted files after the restored checkpoint dropped"
                );
            }
            if changed {
                durable::sync_dir(&dir).map_err(io(&dir))?;
            }
            self.invalidate(&table);
        }
        Ok(removed)
    }

    /// Opens (creating if needed) a table with `schema` for appending results of epoch
    /// `epoch` (see the module docs). When the table exists with a different schema (the
    /// monitor was redefined), old files are moved aside into `<table>.replaced-<ms>/`.
    /// Starts the background compaction of the store (see [`compaction`]).
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
        let has_files = {
            let lock = maintenance_lock(&self.root);
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            if dir.exists() && !self.same_schema(table, &schema) {
                let aside = self
                    .tables_dir()
                    .join(format!("{table}.replaced-{}", now_ms()));
                std::fs::rename(&dir, &aside).map_err(io(&dir))?;
                tracing::warn!(table, moved_to = %aside.display(), "table schema changed; old results moved aside");
            }
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            self.invalidate(table);
            std::fs::read_dir(&dir)
                .map_err(io(&dir))?
                .flatten()
                .any(|e| FileName::parse(&e.file_name().to_string_lossy()).is_some())
        };
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
        self.start_compactor();
        Ok(writer)
    }

    /// Whether the table's visible files have `schema` (true when none is readable).
    fn same_schema(&self, table: &str, schema: &SchemaRef) -> bool {
        match self.snapshot(table) {
            Ok(snap) => snap.schema.is_none_or(|s| s.fields() == schema.fields()),
            Err(_) => true,
        }
    }

    /// Deletes result files written more than `retention` ago (a compacted file counts as
    /// written when the newest file it replaced was), keeping each table's newest file (it
    /// carries the schema); returns how many. When compaction is busy, the deletion is
    /// handed to it and happens right after its round (0 is returned).
    pub fn apply_retention(&self, retention: Duration) -> Result<usize, StoreError> {
        let lock = maintenance_lock(&self.root);
        let guard = match lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                *self
                    .shared
                    .pending_retention
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(retention);
                return Ok(0);
            }
        };
        let removed = self.retention_locked(retention);
        drop(guard);
        removed
    }

    /// [`ResultStore::apply_retention`] with the maintenance lock held.
    fn retention_locked(&self, retention: Duration) -> Result<usize, StoreError> {
        let cutoff = now_ms() - retention.as_millis() as i64;
        let mut removed = 0;
        for table in self.table_names() {
            let dir = self.table_dir(&table)?;
            let Ok(mut manifest) = Manifest::load(&dir) else {
                continue;
            };
            let Ok(files) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut visible: Vec<(i64, String, bool)> = files
                .flatten()
                .filter_map(|f| {
                    let name = f.file_name().to_string_lossy().to_string();
                    let kind = FileName::parse(&name)?;
                    if !manifest.visible(&name, kind.is_compacted()) {
                        return None;
                    }
                    let ms = if kind.is_compacted() {
                        manifest
                            .compacted
                            .iter()
                            .find(|c| c.file == name)
                            .map_or(kind.write_ms(), |c| c.max_write_ms)
                    } else {
                        kind.write_ms()
                    };
                    Some((ms, name, kind.is_compacted()))
                })
                .collect();
            visible.sort();
            // Keep the newest file of each table: it carries the schema.
            visible.pop();
            let expired: Vec<(String, bool)> = visible
                .into_iter()
                .filter(|(ms, _, _)| *ms < cutoff)
                .map(|(_, n, c)| (n, c))
                .collect();
            if expired.is_empty() {
                continue;
            }
            if expired.iter().any(|(_, c)| *c) {
                // Out of the manifest first: a crash before the deletion leaves an unlisted
                // compacted file, which recovery deletes.
                manifest
                    .compacted
                    .retain(|c| !expired.iter().any(|(n, _)| *n == c.file));
                manifest.save(&dir)?;
            }
            for (name, _) in expired {
                let path = dir.join(&name);
                std::fs::remove_file(&path).map_err(|source| StoreError::Io { path, source })?;
                removed += 1;
            }
            self.invalidate(&table);
        }
        Ok(removed)
    }
}

/// The epoch in a result file name (see [`names`]); `None`: not a result file.
pub fn file_epoch(name: &str) -> Option<u64> {
    FileName::parse(name).map(|n| n.epoch())
}
