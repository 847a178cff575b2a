//! State of tumbling and hopping windows: rows are aggregated once into panes; a window is
//! emitted, exactly once, by merging the partial states of the panes it covers when the
//! watermark passes its end.

use std::collections::BTreeMap;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, UInt32Array};
use arrow::datatypes::Int64Type;
use arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use super::aggregates::{AggregateInputs, AggregateSet};
use super::group_keys::GroupKeys;
use super::layout::{constant_ts, Grouping, OutputLayout};
use super::WindowState;
use crate::engine::snapshot::{
    check_columns, concat_parts, snapshot_batch, split_states, WindowSnapshot,
};
use crate::engine::window::WindowKind;

/// Bookkeeping columns of a pane snapshot.
const PANE_START: &str = "_pane_start";
const PANE_FROZEN: &str = "_frozen";

/// A pane still receiving rows.
struct OpenPane {
    keys: GroupKeys,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
}

/// A pane whose first window was emitted: its partial state, kept for later windows.
struct FrozenPane {
    keys: Vec<ArrayRef>,
    num_groups: usize,
    states: Vec<Vec<ArrayRef>>,
}

enum Pane {
    Open(OpenPane),
    Frozen(FrozenPane),
}

/// Tumbling or hopping window state.
pub struct PaneWindows {
    kind: WindowKind,
    grouping: Grouping,
    aggregates: AggregateSet,
    layout: OutputLayout,
    panes: BTreeMap<i64, Pane>,
    /// End of the last emitted window.
    emitted_until: i64,
    scratch: Vec<usize>,
}

impl PaneWindows {
    /// Empty state for `kind` (tumble or hop).
    pub fn new(
        kind: WindowKind,
        grouping: Grouping,
        aggregates: AggregateSet,
        layout: OutputLayout,
    ) -> Self {
        Self {
            kind,
            grouping,
            aggregates,
            layout,
            panes: BTreeMap::new(),
            emitted_until: i64::MIN,
            scratch: Vec::new(),
        }
    }

    fn open_pane(&mut self, start: i64) -> Result<&mut OpenPane> {
        if !self.panes.contains_key(&start) {
            let pane = OpenPane {
                keys: GroupKeys::new(&self.grouping.key_types)?,
                accumulators: self.aggregates.groups_accumulators()?,
            };
            self.panes.insert(start, Pane::Open(pane));
        }
        match self.panes.get_mut(&start) {
            Some(Pane::Open(p)) => Ok(p),
            _ => unreachable!("frozen panes are filtered out before update"),
        }
    }

    fn update_pane(
        &mut self,
        start: i64,
        keys: &[ArrayRef],
        inputs: &AggregateInputs,
        rows: usize,
    ) -> Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let pane = self.open_pane(start)?;
        pane.keys.intern(keys, rows, &mut scratch)?;
        let total = pane.keys.len();
        for (i, acc) in pane.accumulators.iter_mut().enumerate() {
            acc.update_batch(&inputs.args[i], &scratch, inputs.filters[i].as_ref(), total)?;
        }
        self.scratch = scratch;
        Ok(())
    }

    fn is_closed(&self, pane_start: i64) -> bool {
        self.kind.first_window_end(pane_start) <= self.emitted_until
    }

    fn freeze(pane: &mut Pane) -> Result<&FrozenPane> {
        if let Pane::Open(open) = pane {
            let keys = open.keys.key_columns()?;
            let num_groups = open.keys.len();
            let states = open
                .accumulators
                .iter_mut()
                .map(|a| a.state(EmitTo::All))
                .collect::<Result<Vec<_>>>()?;
            *pane = Pane::Frozen(FrozenPane {
                keys,
                num_groups,
                states,
            });
        }
        match pane {
            Pane::Frozen(f) => Ok(f),
            Pane::Open(_) => unreachable!(),
        }
    }

    /// Emits the window [start, end) from the panes it covers.
    fn emit_window(&mut self, start: i64, end: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        if let WindowKind::Tumble { .. } = self.kind {
            // One pane per window: evaluate it directly, no state round trip.
            if let Some(Pane::Open(mut pane)) = self.panes.remove(&start) {
                self.evaluate(start, end, &pane.keys, &mut pane.accumulators, out)?;
            }
            return Ok(());
        }
        let mut window_keys = GroupKeys::new(&self.grouping.key_types)?;
        let mut accumulators = self.aggregates.groups_accumulators()?;
        let mut indices = Vec::new();
        for (_, pane) in self.panes.range_mut(start..end) {
            let frozen = Self::freeze(pane)?;
            if frozen.num_groups == 0 {
                continue;
            }
            window_keys.intern(&frozen.keys, frozen.num_groups, &mut indices)?;
            let total = window_keys.len();
            for (acc, state) in accumulators.iter_mut().zip(&frozen.states) {
                acc.merge_batch(state, &indices, total)?;
            }
        }
        self.evaluate(start, end, &window_keys, &mut accumulators, out)
    }

    /// Evaluates the accumulators of window [start, end) into one output batch.
    fn evaluate(
        &self,
        start: i64,
        end: i64,
        keys: &GroupKeys,
        accumulators: &mut [Box<dyn GroupsAccumulator>],
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let n = keys.len();
        if n == 0 {
            return Ok(());
        }
        let values = accumulators
            .iter_mut()
            .map(|a| a.evaluate(EmitTo::All))
            .collect::<Result<Vec<_>>>()?;
        out.push(self.layout.batch(
            constant_ts(start, n),
            constant_ts(end, n),
            keys.key_columns()?,
            values,
        )?);
        Ok(())
    }
}

impl WindowState for PaneWindows {
    fn update(&mut self, batch: &RecordBatch) -> Result<u64> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(0);
        }
        let (starts, keys) = self.grouping.evaluate(batch)?;
        let inputs = self.aggregates.evaluate(batch)?;
        let values = starts.values();
        let (min, max) = values
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if min == max && starts.null_count() == 0 {
            if self.is_closed(min) {
                return Ok(rows as u64);
            }
            return self.update_pane(min, &keys, &inputs, rows).map(|_| 0);
        }
        // Several panes in one batch: split rows by pane (few distinct panes per batch).
        let mut by_pane: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let mut dropped = 0u64;
        for (i, start) in starts.iter().enumerate() {
            match start {
                Some(s) if !self.is_closed(s) => by_pane.entry(s).or_default().push(i as u32),
                _ => dropped += 1,
            }
        }
        for (start, idx) in by_pane {
            let idx = UInt32Array::from(idx);
            let part_keys = keys
                .iter()
                .map(|k| arrow::compute::take(k, &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let part_inputs = inputs.take(&idx)?;
            self.update_pane(start, &part_keys, &part_inputs, idx.len())?;
        }
        Ok(dropped)
    }

    fn snapshot(&mut self) -> Result<WindowSnapshot> {
        let mut starts: Vec<i64> = Vec::new();
        let mut frozen_flags: Vec<bool> = Vec::new();
        let mut key_parts: Vec<Vec<ArrayRef>> = vec![Vec::new(); self.grouping.key_types.len()];
        let mut state_parts: Vec<Vec<Vec<ArrayRef>>> = Vec::new();
        for (&start, pane) in self.panes.iter_mut() {
            let (keys, n, states, frozen) = match pane {
                Pane::Open(open) => {
                    let n = open.keys.len();
                    if n == 0 {
                        continue;
                    }
                    // `state` resets an accumulator: merge the state straight back into
                    // fresh ones so the live computation continues unchanged.
                    let states = open
                        .accumulators
                        .iter_mut()
                        .map(|a| a.state(EmitTo::All))
                        .collect::<Result<Vec<_>>>()?;
                    let mut fresh = self.aggregates.groups_accumulators()?;
                    let indices: Vec<usize> = (0..n).collect();
                    for (acc, state) in fresh.iter_mut().zip(&states) {
                        acc.merge_batch(state, &indices, n)?;
                    }
                    open.accumulators = fresh;
                    (open.keys.key_columns()?, n, states, false)
                }
                Pane::Frozen(f) => {
                    if f.num_groups == 0 {
                        continue;
                    }
                    (f.keys.clone(), f.num_groups, f.states.clone(), true)
                }
            };
            starts.extend(std::iter::repeat_n(start, n));
            frozen_flags.extend(std::iter::repeat_n(frozen, n));
            for (part, key) in key_parts.iter_mut().zip(keys) {
                part.push(key);
            }
            state_parts.push(states);
        }
        if starts.is_empty() {
            return Ok(WindowSnapshot::empty(self.emitted_until));
        }
        let keys = key_parts
            .iter()
            .map(|p| concat_parts(p))
            .collect::<Result<Vec<_>>>()?;
        let mut states = Vec::with_capacity(self.aggregates.aggregates().len());
        for a in 0..self.aggregates.aggregates().len() {
            let width = state_parts[0][a].len();
            let mut columns = Vec::with_capacity(width);
            for f in 0..width {
                let parts: Vec<ArrayRef> =
                    state_parts.iter().map(|p| Arc::clone(&p[a][f])).collect();
                columns.push(concat_parts(&parts)?);
            }
            states.push(columns);
        }
        let batch = snapshot_batch(
            vec![
                (PANE_START, Arc::new(Int64Array::from(starts)) as ArrayRef),
                (
                    PANE_FROZEN,
                    Arc::new(BooleanArray::from(frozen_flags)) as ArrayRef,
                ),
            ],
            keys,
            states,
        )?;
        Ok(WindowSnapshot {
            emitted_until: self.emitted_until,
            state: Some(batch),
        })
    }

    fn restore(&mut self, snapshot: WindowSnapshot) -> Result<()> {
        self.panes.clear();
        self.emitted_until = snapshot.emitted_until;
        let Some(batch) = snapshot.state else {
            return Ok(());
        };
        let num_keys = self.grouping.key_types.len();
        let widths = self.aggregates.state_widths()?;
        check_columns(&batch, 2, num_keys, &widths)?;
        let starts = batch.column(0).as_primitive::<Int64Type>().clone();
        let frozen = batch.column(1).as_boolean().clone();
        let mut begin = 0;
        while begin < batch.num_rows() {
            let start = starts.value(begin);
            let mut end = begin + 1;
            while end < batch.num_rows() && starts.value(end) == start {
                end += 1;
            }
            let part = batch.slice(begin, end - begin);
            let n = part.num_rows();
            let keys: Vec<ArrayRef> = part.columns()[2..2 + num_keys].to_vec();
            let states = split_states(&part.columns()[2 + num_keys..], &widths);
            let pane = if frozen.value(begin) {
                Pane::Frozen(FrozenPane {
                    keys,
                    num_groups: n,
                    states,
                })
            } else {
                let mut group_keys = GroupKeys::new(&self.grouping.key_types)?;
                let mut indices = Vec::new();
                group_keys.intern(&keys, n, &mut indices)?;
                let total = group_keys.len();
                let mut accumulators = self.aggregates.groups_accumulators()?;
                for (acc, state) in accumulators.iter_mut().zip(&states) {
                    acc.merge_batch(state, &indices, total)?;
                }
                Pane::Open(OpenPane {
                    keys: group_keys,
                    accumulators,
                })
            };
            self.panes.insert(start, pane);
            begin = end;
        }
        Ok(())
    }

    fn emit(&mut self, limit: i64, out: &mut Vec<RecordBatch>) -> Result<usize> {
        let mut windows = 0;
        while let Some((&first, _)) = self.panes.iter().next() {
            let Some((start, end)) = self
                .kind
                .windows_of_pane(first)
                .into_iter()
                .find(|&(_, end)| end > self.emitted_until)
            else {
                // Every window of this pane was emitted: it is no longer needed.
                self.panes.remove(&first);
                continue;
            };
            if end > limit {
                break;
            }
            let before = out.len();
            self.emit_window(start, end, out)?;
            windows += out.len() - before;
            self.emitted_until = end;
            // Drop panes whose last window is now emitted.
            let kind = self.kind;
            self.panes.retain(|&p, _| {
                kind.windows_of_pane(p)
                    .last()
                    .is_some_and(|&(_, e)| e > end)
            });
        }
        Ok(windows)
    }
}
