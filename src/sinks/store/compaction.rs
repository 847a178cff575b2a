//! Background compaction: the small files of a table are merged into hourly files, and the
//! files of a closed day into one daily file, so the number of files a query plans over
//! grows with days of history, not with windows.
//!
//! **Buckets.** A windowed result table is bucketed by `window_start` (a file goes to the
//! bucket of its earliest window); other tables (late rows, dead letters, row-level
//! monitors) by the wall-clock time the file was written. An hour (day) is *closed* once
//! the table's newest window (or the clock, for write-time tables) is [`Policy::grace`]
//! past its end. Per round and table:
//! * a closed day with two or more files becomes one daily file;
//! * in an open day, a closed hour with two or more files becomes one hourly file;
//! * in the open hour, once [`Policy::open_hour_files`] appended files accumulated, they
//!   are merged together with the hour's compacted file (if still small), so a table
//!   written every second keeps a bounded number of files in its current hour too.
//!
//! Results arriving late for a compacted bucket are appended as usual and merged into its
//! file by a later round.
//!
//! **Only files no restart can discard are merged.** Recovery deletes the files of epochs
//! after the restored checkpoint. A restart restores one of the checkpoints on disk (or
//! none), so files of epochs up to the oldest checkpoint on disk are kept by every restart
//! that restores one; a compacted file carries the largest epoch of its inputs and never
//! mixes epoch 0 (never discarded) with later epochs. So any restart keeps or discards a
//! compacted file exactly as it would have kept or discarded all of its inputs.
//!
//! **Atomic switch.** The output is written durably first; it is invisible until the
//! table's manifest lists it. Then the manifest is replaced atomically, making the output
//! visible and the inputs invisible at once. Inputs are deleted [`Policy::delete_after`]
//! later, so a reader that listed the table before the switch can still open them. After a
//! crash: a leftover temporary file or an unlisted compacted file is deleted (it was never
//! visible); superseded inputs are invisible and deleted later. No reader sees a row twice
//! or not at all.
//!
//! **Off the data path.** Rounds run on their own thread, every
//! `DRIFTWATCH_COMPACTION_INTERVAL` (default 30 s; `off` disables it), with bounded work
//! per round ([`Policy::max_round_bytes`], [`Policy::max_round_files`]); appends never wait
//! for them. Rounds, retention, recovery and schema replacement of one data dir hold one
//! lock, so they never interleave.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::index::{FileInfo, StoreFault};
use super::manifest::{Basis, ColumnRange, Compacted, Manifest};
use super::names::{self, FileName, Level};
use super::writer::write_parquet;
use super::{maintenance_lock, now_ms, ResultStore, StoreError};
use crate::checkpoint::CheckpointStore;
use crate::durable;

/// Tuning of compaction.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Time between background rounds (None: no background compaction).
    pub interval: Option<Duration>,
    /// How far past its end a bucket's table must be before the bucket is closed (late
    /// results still arriving for it are merged later anyway).
    pub grace: Duration,
    /// Appended files in the open hour that trigger a merge.
    pub open_hour_files: usize,
    /// Largest compacted file written (bigger buckets stay hourly, or as they are).
    pub max_output_bytes: u64,
    /// An open hour's compacted file is rewritten with new files only while smaller.
    pub max_rewrite_bytes: u64,
    /// Input bytes read per round.
    pub max_round_bytes: u64,
    /// Input files read per round.
    pub max_round_files: usize,
    /// How long replaced files stay on disk for readers that listed them before.
    pub delete_after: Duration,
    /// Rows per row group of compacted files (the unit Parquet statistics prune).
    pub row_group_rows: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(30)),
            grace: Duration::from_secs(300),
            open_hour_files: 32,
            max_output_bytes: 512 << 20,
            max_rewrite_bytes: 32 << 20,
            max_round_bytes: 256 << 20,
            max_round_files: 20_000,
            delete_after: Duration::from_secs(300),
            row_group_rows: 65_536,
        }
    }
}

impl Policy {
    /// The default policy, with the interval from `DRIFTWATCH_COMPACTION_INTERVAL`
    /// (`30s`, `5m`, …; `off` or `0` disables background compaction).
    pub fn from_env() -> Self {
        let mut p = Self::default();
        if let Ok(v) = std::env::var("DRIFTWATCH_COMPACTION_INTERVAL") {
            let v = v.trim();
            p.interval = match v {
                "off" | "0" | "" => None,
                _ => match humantime::parse_duration(v) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        tracing::warn!(value = v, error = %e, "DRIFTWATCH_COMPACTION_INTERVAL ignored");
                        p.interval
                    }
                },
            };
        }
        p
    }
}

/// Totals of this process's compaction rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionTotals {
    /// Rounds run.
    pub rounds: u64,
    /// Compacted files written.
    pub merges: u64,
    /// Files merged into them.
    pub inputs: u64,
    /// Replaced files deleted.
    pub deleted: u64,
    /// Merges abandoned (an input unreadable or gone; retried next round).
    pub failed: u64,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Compacted files written.
    pub merges: usize,
    /// Files merged into them.
    pub inputs: usize,
    /// Replaced files deleted.
    pub deleted: usize,
    /// The round stopped at its budget: more work is waiting.
    pub more: bool,
}

/// One planned merge.
#[derive(Debug)]
struct Merge {
    level: Level,
    bucket_ms: i64,
    inputs: Vec<Arc<FileInfo>>,
}

fn to_ms(v: i64, unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1000),
        TimeUnit::Millisecond => v,
        TimeUnit::Microsecond => v.div_euclid(1000),
        TimeUnit::Nanosecond => v.div_euclid(1_000_000),
    }
}

/// The window column and its unit, when the table is windowed.
fn window_column(schema: &SchemaRef) -> Option<TimeUnit> {
    match schema
        .field_with_name(crate::engine::input::WINDOW_START)
        .ok()?
        .data_type()
    {
        DataType::Timestamp(unit, _) => Some(*unit),
        _ => None,
    }
}

/// Time ranges of a merge of `inputs`: per column, the smallest min and the largest max
/// over the inputs holding rows; a column is kept only when every such input had it (a
/// missing range only means the file cannot be pruned by that column).
fn union_ranges(inputs: &[Arc<FileInfo>]) -> Vec<ColumnRange> {
    let mut with_rows = inputs.iter().filter(|f| f.rows > 0);
    let Some(first) = with_rows.next() else {
        return Vec::new();
    };
    let mut out: Vec<ColumnRange> = first
        .ranges
        .iter()
        .map(|(column, min, max)| ColumnRange {
            column: column.clone(),
            min: *min,
            max: *max,
        })
        .collect();
    for f in with_rows {
        out.retain_mut(|r| match f.range(&r.column) {
            Some((lo, hi)) => {
                r.min = r.min.min(lo);
                r.max = r.max.max(hi);
                true
            }
            None => false,
        });
    }
    out
}

/// Files of one day by hour.
type Hours = BTreeMap<i64, Vec<Arc<FileInfo>>>;

/// Plans the merges of one table (see the module docs).
fn plan(
    files: &[Arc<FileInfo>],
    manifest: &Manifest,
    schema: &SchemaRef,
    schema_id: u64,
    floor: u64,
    policy: &Policy,
    now: i64,
) -> (Basis, Vec<Merge>) {
    let unit = window_column(schema);
    let basis = if unit.is_some() {
        Basis::Window
    } else {
        Basis::Write
    };
    let time_of = |f: &FileInfo| -> Option<i64> {
        if let FileName::Compacted { bucket_ms, .. } = f.kind {
            return Some(bucket_ms);
        }
        match unit {
            Some(u) => f
                .range(crate::engine::input::WINDOW_START)
                .map(|(lo, _)| to_ms(lo, u)),
            None => Some(f.kind.write_ms()),
        }
    };
    let now_ref = match unit {
        Some(u) => files
            .iter()
            .filter(|f| f.rows > 0)
            .filter_map(|f| f.range(crate::engine::input::WINDOW_START))
            .map(|(_, hi)| to_ms(hi, u))
            .max()
            .unwrap_or(i64::MIN),
        None => now,
    };
    let grace = policy.grace.as_millis() as i64;
    let closed = |start: i64, level: Level| now_ref >= start + level.span_ms() + grace;
    // (epoch-0 class, day) → (hour → files).
    let mut days: BTreeMap<(bool, i64), Hours> = BTreeMap::new();
    for f in files {
        let epoch = f.kind.epoch();
        if f.rows == 0 || f.schema_id != schema_id || (epoch != 0 && epoch > floor) {
            continue;
        }
        if f.kind.is_compacted()
            && manifest
                .compacted
                .iter()
                .find(|c| c.file == f.name)
                .is_none_or(|c| c.basis != basis)
        {
            continue;
        }
        let Some(t) = time_of(f) else { continue };
        days.entry((epoch == 0, Level::Day.bucket_of(t)))
            .or_default()
            .entry(Level::Hour.bucket_of(t))
            .or_default()
            .push(Arc::clone(f));
    }
    let is_daily = |f: &FileInfo| {
        matches!(
            f.kind,
            FileName::Compacted {
                level: Level::Day,
                ..
            }
        )
    };
    let mut merges = Vec::new();
    for ((_, day), hours) in days {
        let all: Vec<Arc<FileInfo>> = hours.values().flatten().cloned().collect();
        let bytes: u64 = all.iter().map(|f| f.bytes).sum();
        if closed(day, Level::Day) && bytes <= policy.max_output_bytes {
            if all.len() >= 2 {
                merges.push(Merge {
                    level: Level::Day,
                    bucket_ms: day,
                    inputs: all,
                });
            }
            continue;
        }
        for (hour, files) in hours {
            let files: Vec<Arc<FileInfo>> = files.into_iter().filter(|f| !is_daily(f)).collect();
            let bytes: u64 = files.iter().map(|f| f.bytes).sum();
            if closed(hour, Level::Hour) {
                if files.len() >= 2 && bytes <= policy.max_output_bytes {
                    merges.push(Merge {
                        level: Level::Hour,
                        bucket_ms: hour,
                        inputs: files,
                    });
                }
                continue;
            }
            let (compacted, mut parts): (Vec<_>, Vec<_>) =
                files.into_iter().partition(|f| f.kind.is_compacted());
            if parts.len() < policy.open_hour_files {
                continue;
            }
            if let Some(c) = compacted
                .into_iter()
                .filter(|c| c.bytes < policy.max_rewrite_bytes)
                .max_by_key(|c| c.kind.write_ms())
            {
                parts.insert(0, c);
            }
            merges.push(Merge {
                level: Level::Hour,
                bucket_ms: hour,
                inputs: parts,
            });
        }
    }
    (basis, merges)
}

impl ResultStore {
    /// Epochs up to this are never discarded by a restart (see the module docs).
    fn compaction_floor(&self) -> u64 {
        CheckpointStore::new(&self.root)
            .ids()
            .first()
            .copied()
            .unwrap_or(0)
    }

    /// Totals of this process's compaction rounds.
    pub fn compaction_totals(&self) -> CompactionTotals {
        *self
            .shared
            .compaction
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one compaction round over every table (blocking), then any retention handed
    /// over by [`ResultStore::apply_retention`].
    pub fn compact_round(&self, policy: &Policy) -> Result<RoundReport, StoreError> {
        let lock = maintenance_lock(&self.root);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = RoundReport::default();
        let floor = self.compaction_floor();
        let mut budget_bytes = policy.max_round_bytes;
        let mut budget_files = policy.max_round_files;
        for table in self.table_names() {
            match self.collect_garbage(&table, policy) {
                Ok(n) => report.deleted += n,
                Err(e) => tracing::warn!(table, error = %e, "deleting replaced result files"),
            }
            let snap = match self.snapshot(&table) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(table, error = %e, "table not compacted");
                    continue;
                }
            };
            let Some(schema) = snap.schema.clone() else {
                continue;
            };
            let (basis, merges) = plan(
                &snap.files,
                &snap.manifest,
                &schema,
                snap.schema_id,
                floor,
                policy,
                now_ms(),
            );
            for m in merges {
                let bytes: u64 = m.inputs.iter().map(|f| f.bytes).sum();
                if report.merges > 0 && (bytes > budget_bytes || m.inputs.len() > budget_files) {
                    report.more = true;
                    break;
                }
                budget_bytes = budget_bytes.saturating_sub(bytes);
                budget_files = budget_files.saturating_sub(m.inputs.len());
                let n = m.inputs.len();
                match self.merge(&table, &schema, basis, m, policy) {
                    Ok(()) => {
                        report.merges += 1;
                        report.inputs += n;
                    }
                    Err(e) => {
                        self.shared
                            .compaction
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .failed += 1;
                        tracing::warn!(table, error = %e, "compaction of a bucket abandoned; retried next round");
                    }
                }
            }
            if report.more {
                break;
            }
        }
        let pending = self
            .shared
            .pending_retention
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(retention) = pending {
            if let Err(e) = self.retention_locked(retention) {
                tracing::warn!(error = %e, "retention");
            }
        }
        let mut totals = self
            .shared
            .compaction
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        totals.rounds += 1;
        totals.merges += report.merges as u64;
        totals.inputs += report.inputs as u64;
        totals.deleted += report.deleted as u64;
        Ok(report)
    }

    /// Runs rounds until one finds nothing to merge; returns what they did in total.
    pub fn compact_until_idle(&self, policy: &Policy) -> Result<RoundReport, StoreError> {
        let mut total = RoundReport::default();
        loop {
            let r = self.compact_round(policy)?;
            total.merges += r.merges;
            total.inputs += r.inputs;
            total.deleted += r.deleted;
            if r.merges == 0 && !r.more {
                return Ok(total);
            }
        }
    }

    /// Writes one compacted file and switches the manifest to it.
    fn merge(
        &self,
        table: &str,
        schema: &SchemaRef,
        basis: Basis,
        m: Merge,
        policy: &Policy,
    ) -> Result<(), StoreError> {
        let dir = self.table_dir(table)?;
        let epoch = m.inputs.iter().map(|f| f.kind.epoch()).max().unwrap_or(0);
        let max_write_ms = m
            .inputs
            .iter()
            .map(|f| f.kind.write_ms())
            .max()
            .unwrap_or(0);
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let name = names::compacted_name(m.level, m.bucket_ms, now_ms(), epoch, seq);
        let out = dir.join(&name);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(policy.row_group_rows))
            .build();
        let mut bad_input: Option<(PathBuf, String, String)> = None;
        let mut rows = 0u64;
        let written = write_parquet(&out, schema, props, |w| {
            for f in &m.inputs {
                let read = (|| -> Result<Vec<_>, String> {
                    let file = std::fs::File::open(&f.path).map_err(|e| e.to_string())?;
                    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                        .map_err(|e| e.to_string())?
                        .with_batch_size(8192)
                        .build()
                        .map_err(|e| e.to_string())?;
                    reader
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())
                })();
                let batches = match read {
                    Ok(b) => b,
                    Err(reason) => {
                        bad_input = Some((f.path.clone(), f.name.clone(), reason.clone()));
                        return Err(StoreError::Manifest {
                            path: f.path.clone(),
                            reason: format!("input unreadable: {reason}"),
                        });
                    }
                };
                for b in batches {
                    rows += b.num_rows() as u64;
                    let b = b.with_schema(Arc::clone(schema)).map_err(|source| {
                        StoreError::Parquet {
                            path: f.path.clone(),
                            source: source.into(),
                        }
                    })?;
                    w.write(&b).map_err(|source| StoreError::Parquet {
                        path: out.clone(),
                        source,
                    })?;
                }
            }
            Ok(())
        });
        if let Some((path, file, reason)) = bad_input {
            // Its footer was fine but its data is not: skip and report it like a file
            // whose footer is damaged.
            if path.exists() {
                let fault: StoreFault = self.set_aside(table, &path, &file, reason);
                self.shared.fault_count.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .index
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .faults
                    .push(fault);
                self.invalidate(table);
            }
        }
        let bytes = written?;
        let expected: u64 = m.inputs.iter().map(|f| f.rows).sum();
        let mut manifest = Manifest::load(&dir)?;
        let still_there = m
            .inputs
            .iter()
            .all(|f| f.path.exists() && manifest.visible(&f.name, f.kind.is_compacted()));
        if rows != expected || !still_there {
            let _ = durable::remove_durably(&out);
            return Err(StoreError::Manifest {
                path: out,
                reason: format!(
                    "inputs changed while merging ({rows} rows read, {expected} expected)"
                ),
            });
        }
        let inputs: Vec<String> = m.inputs.iter().map(|f| f.name.clone()).collect();
        manifest.switch(
            Compacted {
                file: name,
                level: m.level,
                bucket_ms: m.bucket_ms,
                basis,
                rows,
                bytes,
                max_write_ms,
                epoch,
                schema_id: Some(super::index::schema_id(schema)),
                ranges: union_ranges(&m.inputs),
            },
            &inputs,
            now_ms(),
        );
        if let Err(e) = manifest.save(&dir) {
            let _ = durable::remove_durably(&out);
            return Err(e);
        }
        self.invalidate(table);
        tracing::debug!(table, files = inputs.len(), rows, level = ?m.level, "compacted");
        Ok(())
    }

    /// Deletes files replaced longer than [`Policy::delete_after`] ago and compacted files
    /// the manifest does not list (a merge interrupted by a crash); drops manifest entries
    /// of files that are gone. Returns the files deleted.
    fn collect_garbage(&self, table: &str, policy: &Policy) -> Result<usize, StoreError> {
        let dir = self.table_dir(table)?;
        let mut manifest = Manifest::load(&dir)?;
        let cutoff = now_ms() - policy.delete_after.as_millis() as i64;
        let mut deleted = 0;
        let mut changed = false;
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if FileName::parse(&name).is_some_and(|k| k.is_compacted())
                    && !manifest.is_live(&name)
                    && !manifest.is_superseded(&name)
                {
                    std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
                    deleted += 1;
                }
            }
        }
        let mut kept = Vec::new();
        for s in std::mem::take(&mut manifest.superseded) {
            let path = dir.join(&s.file);
            if s.since_ms <= cutoff {
                match std::fs::remove_file(&path) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
                changed = true;
            } else {
                kept.push(s);
            }
        }
        manifest.superseded = kept;
        let before = manifest.compacted.len();
        manifest.compacted.retain(|c| {
            let there = dir.join(&c.file).exists();
            if !there {
                tracing::warn!(table, file = %c.file, "compacted file gone (moved aside?); dropped from the manifest");
            }
            there
        });
        changed |= manifest.compacted.len() != before;
        if deleted > 0 {
            durable::sync_dir(&dir).map_err(io(&dir))?;
        }
        if changed {
            // Deleted first, forgotten second: a crash in between leaves entries for files
            // that are gone, dropped by the next round.
            manifest.save(&dir)?;
            self.invalidate(table);
        }
        Ok(deleted)
    }

    /// Starts the background compaction thread of this store (once), unless disabled. It
    /// ends when the last clone of the store is dropped.
    pub(super) fn start_compactor(&self) {
        let policy = Policy::from_env();
        let Some(interval) = policy.interval else {
            return;
        };
        if self.shared.compactor_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.shared);
        let root = self.root.clone();
        let spawned = std::thread::Builder::new()
            .name("store-compaction".into())
            .spawn(move || {
                let step = Duration::from_millis(200).min(interval);
                loop {
                    let mut waited = Duration::ZERO;
                    while waited < interval {
                        std::thread::sleep(step);
                        waited += step;
                        if weak.strong_count() == 0 {
                            return;
                        }
                    }
                    let Some(shared) = weak.upgrade() else { return };
                    let store = ResultStore {
                        root: root.clone(),
                        shared,
                    };
                    match store.compact_round(&policy) {
                        Ok(r) if r.merges > 0 || r.deleted > 0 => {
                            tracing::info!(
                                merged = r.merges,
                                files = r.inputs,
                                deleted = r.deleted,
                                "result store compacted"
                            )
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "compaction round failed"),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "compaction thread not started");
            self.shared
                .compactor_started
                .store(false, Ordering::Release);
        }
    }
}
