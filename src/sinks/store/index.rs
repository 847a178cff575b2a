//! The cached listing of every table: which files a reader sees (the manifest's visibility
//! rule), their sizes, row counts and time ranges, and the table's schema. Compacted files
//! are described by their manifest entry (rows, bytes, schema fingerprint, time ranges), so
//! a new reader of a compacted table opens only the footers of appended files (and one per
//! schema); other files' footers are read once per file. Queries plan from this cache, so
//! planning does not list the directory or read footers again: a table is listed afresh
//! only when a writer of this process appended, a compaction switched its manifest, or the
//! directory or manifest changed on disk (another process); only new files' footers are
//! read then.
//!
//! A file whose footer cannot be read (truncated, overwritten, not Parquet) is skipped,
//! reported once (a warning, [`super::ResultStore::faults`], `system.store_errors`) and
//! moved to `<data dir>/quarantine/<table>/`, so no query of its table fails because of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{Array, Int64Array};
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

use super::manifest::{Compacted, Manifest};
use super::names::FileName;
use super::{now_ms, ResultStore, StoreError};

/// One visible file of a table, as planning needs it.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// File name in the table directory.
    pub name: String,
    /// Absolute path.
    pub path: PathBuf,
    /// What the name says.
    pub kind: FileName,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows (from the footer).
    pub rows: u64,
    /// `(column, min, max)` of every timestamp column whose statistics every row group has,
    /// in the column's own unit.
    pub ranges: Vec<(String, i64, i64)>,
    /// Fingerprint of the file's schema (files of another schema are not scanned).
    pub schema_id: u64,
}

impl FileInfo {
    /// Min and max of timestamp column `column`, when known.
    pub fn range(&self, column: &str) -> Option<(i64, i64)> {
        self.ranges
            .iter()
            .find(|(c, _, _)| c == column)
            .map(|(_, lo, hi)| (*lo, *hi))
    }
}

/// What a table looks like to a reader at one moment.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    /// Schema of the table (of its newest readable file); None: no readable file.
    pub schema: Option<SchemaRef>,
    /// Fingerprint of `schema`.
    pub schema_id: u64,
    /// Visible, readable files, oldest first.
    pub files: Arc<Vec<Arc<FileInfo>>>,
    /// The manifest the snapshot was built from.
    pub manifest: Arc<Manifest>,
}

/// A file that was skipped because it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFault {
    /// Table of the file.
    pub table: String,
    /// File name.
    pub file: String,
    /// Why it cannot be read.
    pub error: String,
    /// When it was found (epoch ms).
    pub detected_ms: i64,
    /// Where it was moved (None: it could not be moved).
    pub moved_to: Option<PathBuf>,
}

/// Fingerprint of a schema's fields.
pub fn schema_id(schema: &SchemaRef) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    schema.fields().hash(&mut h);
    h.finish()
}

/// `(column, min, max)` of a timestamp column in a file.
pub type TimeRange = (String, i64, i64);

/// Reads a file's footer: schema, rows and time ranges.
pub fn read_footer(path: &Path) -> Result<(SchemaRef, u64, Vec<TimeRange>), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::default())
        .map_err(|e| e.to_string())?;
    let schema = Arc::clone(meta.schema());
    let md = meta.metadata();
    let rows = md.file_metadata().num_rows().max(0) as u64;
    let mut ranges = Vec::new();
    if md.num_row_groups() > 0 {
        for field in schema.fields() {
            if !matches!(field.data_type(), DataType::Timestamp(_, _)) {
                continue;
            }
            let Ok(conv) = StatisticsConverter::try_new(
                field.name(),
                &schema,
                md.file_metadata().schema_descr(),
            ) else {
                continue;
            };
            let as_i64 = |a: arrow::array::ArrayRef| -> Option<Int64Array> {
                let a = arrow::compute::cast(&a, &DataType::Int64).ok()?;
                let a = a.as_any().downcast_ref::<Int64Array>()?.clone();
                (a.null_count() == 0 && !a.is_empty()).then_some(a)
            };
            let (Some(mins), Some(maxs)) = (
                conv.row_group_mins(md.row_groups().iter())
                    .ok()
                    .and_then(as_i64),
                conv.row_group_maxes(md.row_groups().iter())
                    .ok()
                    .and_then(as_i64),
            ) else {
                continue;
            };
            if let (Some(lo), Some(hi)) = (arrow::compute::min(&mins), arrow::compute::max(&maxs)) {
                ranges.push((field.name().clone(), lo, hi));
            }
        }
    }
    Ok((schema, rows, ranges))
}

/// Cached state of one table.
#[derive(Debug, Default)]
pub(super) struct TableIndex {
    /// Directory and manifest modification times when last listed.
    stamp: Option<(SystemTime, Option<SystemTime>)>,
    /// Changed by this process since last listed.
    dirty: bool,
    /// Readable files by name (visible or not yet known to be superseded).
    known: HashMap<String, Arc<FileInfo>>,
    /// Schemas by fingerprint.
    schemas: HashMap<u64, SchemaRef>,
    /// The current snapshot.
    snapshot: Option<TableSnapshot>,
}

/// The index of every table of a store, plus the faults found.
#[derive(Debug, Default)]
pub(super) struct StoreIndex {
    pub(super) tables: HashMap<String, TableIndex>,
    pub(super) faults: Vec<StoreFault>,
}

/// Whether the manifest entry of a compacted file of `len` bytes describes it fully (its
/// statistics were recorded, for this very file, in a schema already known): then its
/// footer need not be read. One footer per schema is read to learn the schema itself.
fn described<'a>(
    c: &'a Compacted,
    len: u64,
    schemas: &HashMap<u64, SchemaRef>,
) -> Option<(&'a Compacted, u64)> {
    let id = c.schema_id.filter(|id| schemas.contains_key(id))?;
    (c.bytes == len).then_some((c, id))
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ResultStore {
    /// Marks `table` changed by this process: the next snapshot lists it again.
    pub(super) fn invalidate(&self, table: &str) {
        let mut index = self.shared.index.lock().unwrap_or_else(|e| e.into_inner());
        index.tables.entry(table.to_string()).or_default().dirty = true;
    }

    /// What a reader of `table` sees now: listed afresh only when something changed since
    /// the last call (see the module docs). Blocking (reads footers of new files).
    pub fn snapshot(&self, table: &str) -> Result<TableSnapshot, StoreError> {
        let dir = self.table_dir(table)?;
        let mut index = self.shared.index.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = mtime(&dir).map(|d| (d, mtime(&Manifest::path(&dir))));
        let entry = index.tables.entry(table.to_string()).or_default();
        if let Some(snap) = &entry.snapshot {
            if !entry.dirty && stamp.is_some() && entry.stamp == stamp {
                return Ok(snap.clone());
            }
        }
        entry.dirty = false;
        entry.stamp = stamp;
        let (snap, faults) = self.list(table, &dir, entry)?;
        entry.snapshot = Some(snap.clone());
        for f in faults {
            self.shared
                .fault_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            index.faults.push(f);
        }
        Ok(snap)
    }

    /// Lists `dir` under the visibility rule, reading footers of files not known yet.
    fn list(
        &self,
        table: &str,
        dir: &Path,
        entry: &mut TableIndex,
    ) -> Result<(TableSnapshot, Vec<StoreFault>), StoreError> {
        // Manifest first, listing second: a compaction switching in between leaves its
        // inputs on disk (they are deleted only after a grace period), so they are seen.
        let manifest = Manifest::load(dir)?;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((
                    TableSnapshot {
                        schema: None,
                        schema_id: 0,
                        files: Arc::new(Vec::new()),
                        manifest: Arc::new(manifest),
                    },
                    Vec::new(),
                ))
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        };
        let mut faults = Vec::new();
        let mut visible: BTreeMap<(i64, String), Arc<FileInfo>> = BTreeMap::new();
        let mut known = HashMap::new();
        let live: HashMap<&str, &Compacted> = manifest
            .compacted
            .iter()
            .map(|c| (c.file.as_str(), c))
            .collect();
        let superseded: HashSet<&str> = manifest
            .superseded
            .iter()
            .map(|s| s.file.as_str())
            .collect();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(kind) = FileName::parse(&name) else {
                continue;
            };
            let listed = live.get(name.as_str()).copied();
            let shown = if kind.is_compacted() {
                listed.is_some()
            } else {
                !superseded.contains(name.as_str())
            };
            if !shown {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            let path = || std::path::absolute(e.path()).unwrap_or_else(|_| e.path());
            let cached = entry.known.remove(&name).filter(|i| i.bytes == meta.len());
            let described = listed.and_then(|c| described(c, meta.len(), &entry.schemas));
            let info = if let Some(info) = cached {
                info
            } else if let Some((c, schema_id)) = described {
                // A compacted file the manifest describes: planned without its footer.
                Arc::new(FileInfo {
                    name: name.clone(),
                    path: path(),
                    kind,
                    bytes: c.bytes,
                    rows: c.rows,
                    ranges: c
                        .ranges
                        .iter()
                        .map(|r| (r.column.clone(), r.min, r.max))
                        .collect(),
                    schema_id,
                })
            } else {
                self.shared
                    .footer_reads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match read_footer(&e.path()) {
                    Ok((schema, rows, ranges)) => {
                        let id = schema_id(&schema);
                        entry.schemas.entry(id).or_insert(schema);
                        Arc::new(FileInfo {
                            name: name.clone(),
                            path: path(),
                            kind,
                            bytes: meta.len(),
                            rows,
                            ranges,
                            schema_id: id,
                        })
                    }
                    Err(error) => {
                        faults.push(self.set_aside(table, &e.path(), &name, error));
                        continue;
                    }
                }
            };
            known.insert(name.clone(), Arc::clone(&info));
            visible.insert((kind.write_ms(), name), info);
        }
        entry.known = known;
        // The newest file's schema is the table's (an older file of another schema is
        // left out of scans).
        let schema_id = visible.values().next_back().map_or(0, |f| f.schema_id);
        let schema = entry.schemas.get(&schema_id).cloned();
        entry
            .schemas
            .retain(|id, _| visible.values().any(|f| f.schema_id == *id));
        let files: Vec<Arc<FileInfo>> = visible.into_values().collect();
        Ok((
            TableSnapshot {
                schema,
                schema_id,
                files: Arc::new(files),
                manifest: Arc::new(manifest),
            },
            faults,
        ))
    }

    /// Reports an unreadable file once and moves it to the quarantine directory.
    pub(super) fn set_aside(
        &self,
        table: &str,
        path: &Path,
        name: &str,
        error: String,
    ) -> StoreFault {
        let aside = self.quarantine_dir().join(table);
        let target = aside.join(name);
        let moved = std::fs::create_dir_all(&aside).and_then(|_| std::fs::rename(path, &target));
        let moved_to = match moved {
            Ok(()) => {
                tracing::warn!(table, file = %path.display(), moved_to = %target.display(), reason = %error, "unreadable result file skipped");
                Some(target)
            }
            Err(e) => {
                tracing::warn!(table, file = %path.display(), reason = %error, move_error = %e, "unreadable result file skipped (it cannot be moved aside)");
                None
            }
        };
        StoreFault {
            table: table.to_string(),
            file: name.to_string(),
            error,
            detected_ms: now_ms(),
            moved_to,
        }
    }

    /// Unreadable files found by this process (each reported once), then files found in the
    /// quarantine directory that earlier processes moved there.
    pub fn faults(&self) -> Vec<StoreFault> {
        let mut out = self
            .shared
            .index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .faults
            .clone();
        if let Ok(tables) = std::fs::read_dir(self.quarantine_dir()) {
            for t in tables.flatten() {
                let table = t.file_name().to_string_lossy().into_owned();
                let Ok(files) = std::fs::read_dir(t.path()) else {
                    continue;
                };
                for f in files.flatten() {
                    let file = f.file_name().to_string_lossy().into_owned();
                    if out.iter().any(|x| x.table == table && x.file == file) {
                        continue;
                    }
                    let detected_ms = f
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as i64);
                    out.push(StoreFault {
                        table: table.clone(),
                        file,
                        error: "moved to quarantine by an earlier run".into(),
                        detected_ms,
                        moved_to: Some(f.path()),
                    });
                }
            }
        }
        out
    }

    /// Parquet footers read by this store's listings so far: a new reader of a compacted
    /// table reads those of appended files and one per schema, not one per file.
    pub fn footer_reads(&self) -> u64 {
        self.shared
            .footer_reads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Unreadable files found by this process (a counter for metrics).
    pub fn fault_count(&self) -> u64 {
        self.shared
            .fault_count
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
