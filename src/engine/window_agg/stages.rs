//! Window state of the two stages of a cluster ([`crate::cluster`]).
//!
//! - [`PartialPanes`] (stage 1, one per source partition): aggregates rows into tumbling
//!   panes of the window's pane length and, when the watermark passes a pane's end, emits
//!   the pane's partial state instead of evaluated values: one row per group with
//!   `_pane_start`, the key columns (`_key<i>`) and every aggregate's state columns
//!   (`_s<aggregate>_<field>`), the columns of a checkpoint ([`crate::engine::snapshot`]).
//! - [`MergedPanes`] (stage 2): takes those rows, tagged with the source partition they came
//!   from (`_source_partition`), keeps each pane's parts apart until the watermark passes the
//!   pane's end, then merges them in ascending source-partition order (parts of one partition
//!   in arrival order) and hands the pane to ordinary [`PaneWindows`] for window emission.
//!
//! A pane's merged state is thereby a function of each partition's rows alone: it does not
//! depend on which instance aggregated which partition, on micro-batch boundaries or on the
//! order in which the shuffle delivered the parts. That is what makes a cluster's results
//! identical, value for value, to one instance's.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::{exec_err, Result};

use super::aggregates::AggregateSet;
use super::layout::{Grouping, OutputLayout};
use super::panes::PaneWindows;
use super::sliding::{Merger, PartialState};
use super::usage::StateUsage;
use super::WindowState;
use crate::engine::snapshot::{check_columns, concat_parts, split_states, WindowSnapshot};
use crate::engine::window::WindowKind;

/// Column of a partial row: the start of its pane.
pub const PARTIAL_PANE_START: &str = "_pane_start";
/// Column of a stage-2 input row: the source partition whose rows it aggregates.
pub const SOURCE_PARTITION: &str = "_source_partition";

/// Schema of the partial rows stage 1 emits: `_pane_start`, `_key<i>`, `_s<a>_<f>`.
pub fn partial_schema(grouping: &Grouping, aggregates: &AggregateSet) -> Result<SchemaRef> {
    let mut fields = vec![Field::new(PARTIAL_PANE_START, DataType::Int64, false)];
    fields.extend(state_fields(grouping, aggregates)?);
    Ok(Arc::new(Schema::new(fields)))
}

/// Schema of stage 2's input: `_source_partition` followed by [`partial_schema`].
pub fn merge_input_schema(grouping: &Grouping, aggregates: &AggregateSet) -> Result<SchemaRef> {
    let mut fields = vec![
        Field::new(SOURCE_PARTITION, DataType::Int32, false),
        Field::new(PARTIAL_PANE_START, DataType::Int64, false),
    ];
    fields.extend(state_fields(grouping, aggregates)?);
    Ok(Arc::new(Schema::new(fields)))
}

fn state_fields(grouping: &Grouping, aggregates: &AggregateSet) -> Result<Vec<Field>> {
    let mut fields = Vec::new();
    for (i, t) in grouping.key_types.iter().enumerate() {
        fields.push(Field::new(format!("_key{i}"), t.clone(), true));
    }
    for (i, agg) in aggregates.aggregates().iter().enumerate() {
        for (j, f) in agg.state_fields()?.iter().enumerate() {
            fields.push(Field::new(
                format!("_s{i}_{j}"),
                f.data_type().clone(),
                true,
            ));
        }
    }
    Ok(fields)
}

/// The pane length of a tumbling or hopping window.
fn pane_of(kind: WindowKind) -> Result<i64> {
    match kind.pane() {
        Some(p) => Ok(p),
        None => exec_err!("SESSION windows do not run in cluster mode yet"),
    }
}

/// Stage 1: partial pane states of one source partition (see the module docs).
pub struct PartialPanes {
    inner: PaneWindows,
    schema: SchemaRef,
}

impl PartialPanes {
    /// Empty state for windows of `kind`, emitting rows of `schema` ([`partial_schema`]).
    pub fn new(
        kind: WindowKind,
        grouping: Grouping,
        aggregates: AggregateSet,
        layout: OutputLayout,
        schema: SchemaRef,
    ) -> Result<Self> {
        let pane = WindowKind::Tumble {
            size: pane_of(kind)?,
        };
        Ok(Self {
            inner: PaneWindows::new(pane, grouping, aggregates, layout)?,
            schema,
        })
    }

    fn partial_batch(&self, start: i64, state: PartialState) -> Result<RecordBatch> {
        let n = state.num_groups;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        columns.push(Arc::new(Int64Array::from(vec![start; n])));
        columns.extend(self.inner.codec().columns(state.keys.as_ref())?);
        columns.extend(state.states.into_iter().flatten());
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

impl WindowState for PartialPanes {
    fn snapshot(&mut self) -> Result<WindowSnapshot> {
        self.inner.snapshot()
    }

    fn restore(&mut self, snapshot: WindowSnapshot) -> Result<()> {
        self.inner.restore(snapshot)
    }

    fn update(&mut self, batch: &RecordBatch) -> Result<u64> {
        self.inner.update(batch)
    }

    fn emit(&mut self, limit: i64, out: &mut Vec<RecordBatch>) -> Result<usize> {
        let drained = self.inner.drain_panes(limit)?;
        let count = drained.len();
        for (start, state) in drained {
            if state.num_groups > 0 {
                out.push(self.partial_batch(start, state)?);
            }
        }
        Ok(count)
    }

    fn usage(&self) -> StateUsage {
        self.inner.usage()
    }
}

/// Parts of one pane not merged yet: per source partition, in arrival order.
type PendingPane = BTreeMap<i32, Vec<PartialState>>;

/// Stage 2: merges partial panes in source-partition order, then emits windows (see the
/// module docs).
pub struct MergedPanes {
    inner: PaneWindows,
    pane: i64,
    pending: BTreeMap<i64, PendingPane>,
    pending_bytes: usize,
    /// Panes ending at or before this were merged into `inner` (or dropped).
    moved_until: i64,
    merger: Merger,
    num_keys: usize,
    widths: Vec<usize>,
}

/// Bookkeeping columns of a stage-2 snapshot row.
const SNAPSHOT_LEADING: usize = 3;

impl MergedPanes {
    /// Empty state for windows of `kind`.
    pub fn new(
        kind: WindowKind,
        grouping: Grouping,
        aggregates: AggregateSet,
        layout: OutputLayout,
    ) -> Result<Self> {
        let pane = pane_of(kind)?;
        let num_keys = grouping.key_types.len();
        let widths = aggregates.state_widths()?;
        let inner = PaneWindows::new(kind, grouping, aggregates, layout)?;
        let merger = Merger::new(inner.codec(), inner.aggregate_set())?;
        Ok(Self {
            inner,
            pane,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            moved_until: i64::MIN,
            merger,
            num_keys,
            widths,
        })
    }

    /// Whether a part for the pane at `start` comes too late to be merged.
    fn is_late(&self, start: i64) -> bool {
        start.saturating_add(self.pane) <= self.moved_until
            || self.inner.pane_is_closed(start)
            || self.inner.has_pane(start)
    }

    /// The partial state held by `batch` (one pane of one partition; keys from column
    /// `keys_at` on).
    fn part(&self, batch: &RecordBatch, keys_at: usize) -> Result<PartialState> {
        let n = batch.num_rows();
        let keys: Vec<ArrayRef> = batch.columns()[keys_at..keys_at + self.num_keys].to_vec();
        let (rows, distinct) = self.inner.codec().distinct_rows(&keys, n)?;
        if !distinct {
            return exec_err!("a partial pane repeats a group key");
        }
        let states = split_states(&batch.columns()[keys_at + self.num_keys..], &self.widths);
        Ok(PartialState {
            keys: rows,
            num_groups: n,
            states,
        })
    }
}

/// Runs of equal values in `(partition, pane start)` order of appearance: `(begin, end)`.
fn runs(partitions: &Int32Array, starts: &Int64Array) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut begin = 0;
    for i in 1..=starts.len() {
        if i == starts.len()
            || starts.value(i) != starts.value(begin)
            || partitions.value(i) != partitions.value(begin)
        {
            out.push((begin, i));
            begin = i;
        }
    }
    out
}

impl WindowState for MergedPanes {
    fn update(&mut self, batch: &RecordBatch) -> Result<u64> {
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        check_columns(batch, 2, self.num_keys, &self.widths)?;
        if batch.column(0).null_count() > 0 || batch.column(1).null_count() > 0 {
            return exec_err!("a partial pane has no source partition or pane start");
        }
        let partitions = batch.column(0).as_primitive::<Int32Type>().clone();
        let starts = batch.column(1).as_primitive::<Int64Type>().clone();
        let mut dropped = 0u64;
        for (begin, end) in runs(&partitions, &starts) {
            let (p, start) = (partitions.value(begin), starts.value(begin));
            if start.rem_euclid(self.pane) != 0 {
                return exec_err!("partial pane start {start} is not a multiple of the pane");
            }
            if self.is_late(start) {
                dropped += (end - begin) as u64;
                continue;
            }
            let part = self.part(&batch.slice(begin, end - begin), 2)?;
            self.pending_bytes += part.bytes();
            self.pending
                .entry(start)
                .or_default()
                .entry(p)
                .or_default()
                .push(part);
        }
        Ok(dropped)
    }

    fn emit(&mut self, limit: i64, out: &mut Vec<RecordBatch>) -> Result<usize> {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start.saturating_add(self.pane) > limit {
                break;
            }
            let parts = entry.remove();
            for part in parts.values().flatten() {
                self.pending_bytes -= part.bytes();
                self.merger.merge(part)?;
            }
            self.inner.insert_open_pane(start, &mut self.merger)?;
        }
        self.moved_until = self.moved_until.max(limit);
        self.inner.emit(limit, out)
    }

    fn snapshot(&mut self) -> Result<WindowSnapshot> {
        let merged = self.inner.snapshot()?;
        let emitted_until = merged.emitted_until;
        let mut batches: Vec<RecordBatch> = Vec::new();
        // Panes merged already: `_source_partition` is -1.
        if let Some(b) = merged.state {
            let mut columns = vec![Arc::new(Int32Array::from(vec![-1; b.num_rows()])) as ArrayRef];
            columns.extend(b.columns().iter().cloned());
            batches.push(snapshot_rows(columns)?);
        }
        for (&start, parts) in &self.pending {
            for (&p, list) in parts {
                for part in list {
                    let n = part.num_groups;
                    let mut columns: Vec<ArrayRef> = vec![
                        Arc::new(Int32Array::from(vec![p; n])),
                        Arc::new(Int64Array::from(vec![start; n])),
                        Arc::new(arrow::array::BooleanArray::from(vec![false; n])),
                    ];
                    columns.extend(self.inner.codec().columns(part.keys.as_ref())?);
                    columns.extend(part.states.iter().flatten().cloned());
                    batches.push(snapshot_rows(columns)?);
                }
            }
        }
        if batches.is_empty() {
            return Ok(WindowSnapshot::empty(emitted_until));
        }
        let width = batches[0].num_columns();
        let mut columns = Vec::with_capacity(width);
        for c in 0..width {
            let parts: Vec<ArrayRef> = batches.iter().map(|b| Arc::clone(b.column(c))).collect();
            columns.push(concat_parts(&parts)?);
        }
        Ok(WindowSnapshot {
            emitted_until,
            state: Some(snapshot_rows(columns)?),
        })
    }

    fn restore(&mut self, snapshot: WindowSnapshot) -> Result<()> {
        self.pending.clear();
        self.pending_bytes = 0;
        let Some(batch) = snapshot.state else {
            self.moved_until = snapshot.emitted_until;
            return self.inner.restore(snapshot);
        };
        check_columns(&batch, SNAPSHOT_LEADING, self.num_keys, &self.widths)?;
        let partitions = batch.column(0).as_primitive::<Int32Type>().clone();
        let merged_rows: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|&i| partitions.value(i as usize) < 0)
            .collect();
        let take = |rows: &[u32]| -> Result<RecordBatch> {
            let idx = arrow::array::UInt32Array::from(rows.to_vec());
            Ok(arrow::compute::take_record_batch(&batch, &idx)?)
        };
        let width = batch.num_columns();
        // Merged panes: the inner snapshot's columns, without `_source_partition`.
        let inner_state = take(&merged_rows)?.project(&(1..width).collect::<Vec<_>>())?;
        let mut moved = snapshot.emitted_until;
        let starts = inner_state.column(0).as_primitive::<Int64Type>();
        for i in 0..starts.len() {
            moved = moved.max(starts.value(i) + self.pane);
        }
        self.inner.restore(WindowSnapshot {
            emitted_until: snapshot.emitted_until,
            state: (inner_state.num_rows() > 0).then_some(inner_state),
        })?;
        self.moved_until = moved;
        let pending_rows: Vec<u32> = (0..batch.num_rows() as u32)
            .filter(|&i| partitions.value(i as usize) >= 0)
            .collect();
        // Pending parts as stage-2 input: `_source_partition`, `_pane_start`, keys, states
        // (without `_frozen`).
        let columns: Vec<usize> = [0, 1].into_iter().chain(3..width).collect();
        let input = take(&pending_rows)?.project(&columns)?;
        let dropped = self.update(&input)?;
        if dropped > 0 {
            return exec_err!("stage-2 snapshot holds {dropped} rows of panes already merged");
        }
        Ok(())
    }

    fn usage(&self) -> StateUsage {
        let mut usage = self.inner.usage();
        usage.bytes += self.pending_bytes;
        usage.open_windows += self.pending.len();
        usage
    }
}

/// A snapshot batch from its columns (names as in [`crate::engine::snapshot`]).
fn snapshot_rows(columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("_c{i}"), a.data_type().clone(), true))
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
